package agent_test

import (
	"slices"
	"testing"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestProbeRidesOnTheHeartbeat: a probe on an ancestor area's cmd topic
// is noted with when the node had it and reported in its next state (the
// heartbeat's, nothing else changing), once per probe however often it
// comes; it makes no event.
func TestProbeRidesOnTheHeartbeat(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1", "p1"), options{tune: func(c *agent.Config) {
		c.Heartbeat = 500 * time.Millisecond
	}})
	waitConnected(t, n)
	before := ctl.Now()
	ctl.SendAreaCommand("d1", protocol.Command{Name: protocol.CmdProbe, Probe: "pr-1"}, time.Minute)
	ctl.SendAreaCommand("p1", protocol.Command{Name: protocol.CmdProbe, Probe: "pr-2"}, time.Minute)
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdProbe, Probe: "pr-1"}) // the same probe again
	var got []protocol.ProbeReceipt
	nodetest.Eventually(t, 10*time.Second, "a state with both probes", func() bool {
		states := ctl.Log("n1").States
		if len(states) == 0 {
			return false
		}
		got = states[len(states)-1].ProbeReceipts
		return len(got) == 2
	})
	after := ctl.Now()
	if got[0].ID != "pr-1" || got[1].ID != "pr-2" {
		t.Errorf("probe receipts %v, want pr-1 then pr-2, each once", got)
	}
	for _, r := range got {
		if r.At.Before(before.Add(-50*time.Millisecond)) || r.At.After(after) {
			t.Errorf("probe %s had at %v, want between %v and %v", r.ID, r.At, before, after)
		}
	}
	if ev := ctl.Events("n1"); len(ev) > 0 {
		t.Errorf("probes made events %v, want none", nodetest.Summary(ev))
	}
}

// TestProbeReceiptsAreBounded: a state carries the newest
// protocol.MaxProbeReceipts receipts.
func TestProbeReceiptsAreBounded(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{})
	waitConnected(t, n)
	var want []string
	for i := range protocol.MaxProbeReceipts + 3 {
		id := "pr-" + string(rune('a'+i))
		ctl.SendAreaCommand("x1", protocol.Command{Name: protocol.CmdProbe, Probe: id}, time.Minute)
		want = append(want, id)
	}
	want = want[3:]
	nodetest.Eventually(t, 10*time.Second, "the newest receipts", func() bool {
		var ids []string
		for _, r := range n.a.Status().ProbeReceipts {
			ids = append(ids, r.ID)
		}
		return slices.Equal(ids, want)
	})
}
