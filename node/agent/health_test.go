package agent_test

import (
	"testing"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestHeartbeat: with nothing changing, the node still publishes its state
// once per heartbeat, with the interval, its uptime, free disk and the
// settings it applies.
func TestHeartbeat(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Heartbeat = 100 * time.Millisecond }})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "fewer than 5 states on an idle node", func() bool {
		return len(ctl.Log("n1").States) >= 5
	})
	st := ctl.Log("n1").States
	last := st[len(st)-1]
	if last.Status != protocol.StatusOnline || last.HeartbeatMS != 100 || last.DiskFreeBytes == nil || *last.DiskFreeBytes <= 0 ||
		last.AmplifierPolicy != protocol.AmpAuto {
		t.Errorf("heartbeat state: %+v", last)
	}
}
