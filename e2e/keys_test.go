package e2e

import (
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// TestClusterBackAfterAForcedKeyRotation: a cluster offline while the
// province rotated its signing key (activated with force) came back
// online trusting only the retired key: it showed online, with no alarm,
// and refused everything the controller sent. Its state now opens a
// key-untrusted alarm naming the key it lacks; rotated credentials
// installed on the board (re-enrolment) make it trust the new key, it
// runs its desired state again, and the alarm ends.
func TestClusterBackAfterAForcedKeyRotation(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	creds := c.CreateNode("tt-02", "12346")
	dir := t.TempDir()
	n := rig.StartNode(t, creds, rig.NodeOptions{Dir: dir})
	rig.Eventually(t, 20*time.Second, "tt-02 online, trusting the signing key", func() bool {
		st := c.Node("tt-02").Status
		return st.State == loaxa.NodeOnline && len(st.Keys) == 1
	})
	n.Stop(t)

	var next loaxa.SigningKey
	c.MustDo("POST", "/api/v1/keys", nil, &next)
	c.MustDo("POST", "/api/v1/keys/activate", map[string]any{"force": true}, nil)
	n = rig.StartNode(t, creds, rig.NodeOptions{Dir: dir})
	alarm := func() *loaxa.Alarm {
		var out struct {
			Alarms []*loaxa.Alarm `json:"alarms"`
		}
		c.MustDo("GET", "/api/v1/alarms?node=tt-02&kind=key-untrusted&state=open", nil, &out)
		if len(out.Alarms) == 0 {
			return nil
		}
		return out.Alarms[0]
	}
	var a *loaxa.Alarm
	rig.Eventually(t, 20*time.Second, "a key-untrusted alarm for tt-02", func() bool {
		a = alarm()
		return a != nil
	})
	if a.Severity != loaxa.SeverityCritical || a.Facts.Key != next.ID || len(a.Facts.Trusted) != 1 || a.Facts.Trusted[0] == next.ID {
		t.Errorf("alarm %+v; want critical, naming the signing key %s and the retired one trusted", a, next.ID)
	}

	var rotated struct {
		Credentials *protocol.Credentials `json:"credentials"`
	}
	c.MustDo("POST", "/api/v1/nodes/tt-02/rotate", nil, &rotated)
	n.Stop(t)
	n = rig.StartNode(t, rotated.Credentials, rig.NodeOptions{Dir: dir})
	rig.Eventually(t, 20*time.Second, "tt-02 enrolled again runs its desired state, and the alarm ends", func() bool {
		st := c.Node("tt-02").Status
		return alarm() == nil && st.State == loaxa.NodeOnline && st.RunningVersion == st.DesiredVersion
	})
}
