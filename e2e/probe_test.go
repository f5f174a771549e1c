package e2e

import (
	"testing"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// TestFirstAlertLedByAProbe: a commune that has never had an alert is
// probed (one probe on each of its areas' cmd topics, the district's and
// then the commune's), its nodes report when they had it with their
// heartbeat, and its first alert is led by that measurement ("probed"),
// not by a guess from its number of nodes; the alert sounds on both
// nodes.
func TestFirstAlertLedByAProbe(t *testing.T) {
	t.Parallel()
	testFirstAlertLedByAProbe(t, nil)
}

func TestFirstAlertLedByAProbeMosquitto(t *testing.T) {
	t.Parallel()
	testFirstAlertLedByAProbe(t, rig.StartMosquitto(t, 0))
}

func testFirstAlertLedByAProbe(t *testing.T, m *rig.Mosquitto) {
	opt := rig.ControllerOptions{Configure: func(cfg *app.Config) {
		// Rounds again and again, so that one comes after the nodes are
		// up; a node's heartbeat (1 s here) brings its receipt.
		cfg.Probing = emergency.Probing{Every: 2 * time.Second, First: time.Second, Window: 4 * time.Second}
	}}
	if m != nil {
		opt.Broker = m.ControllerBroker()
	}
	c := rig.StartControllerWith(t, opt)
	c.CreateArea("318", "Huyện Tiên Lãng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "318")
	var creds []*protocol.Credentials
	for _, id := range []string{"tt-01", "tt-02"} {
		creds = append(creds, c.CreateNode(id, "12346"))
	}
	m.Install(t, c, creds[0])
	for _, cr := range creds {
		rig.StartNode(t, cr, rig.NodeOptions{Tune: func(cfg *agent.Config) { cfg.Heartbeat = time.Second }})
	}
	for _, area := range []string{"318", "12346"} {
		rig.Eventually(t, time.Minute, "a probe measured area "+area, func() bool {
			_, from := c.App.Emergency.LeadFor(area, 2)
			return from == emergency.LeadProbed
		})
	}

	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "repeat": 1, "drill": true}, &em)
	// (Its value is the newest probe's; rounds go on meanwhile here.)
	if a := em.Areas[0]; a.LeadFrom != emergency.LeadProbed || a.LeadMS < emergency.DefaultLead.Min.Milliseconds() {
		t.Errorf("the first alert's lead: %d ms from %q, want a probe's", a.LeadMS, a.LeadFrom)
	}
	rig.Eventually(t, time.Minute, "both nodes played the alert", func() bool {
		return report(c, em.ID).Summary.Completed == 2
	})
}
