package agent_test

import (
	"testing"
	"time"

	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// unackedAgent starts an agent whose test controller acknowledges nothing
// until the test says so.
func unackedAgent(t *testing.T) (*nodetest.Controller, *node) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.AutoAck.Store(false)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{})
	waitConnected(t, n)
	// The first measurement of the controller's time can publish a state
	// of its own (what waited for it is judged again on the corrected
	// clock, and a change it makes is published): landing in a test's
	// quiet window (time answers of 300 ms on a loaded machine), it was
	// taken for a state published for the acknowledgement.
	waitMeasured(t, n)
	return ctl, n
}

// TestAckPublishesNoState: the controller's acknowledgement of a play's
// few events empties the outbox, and that alone publishes no state; the
// count rides on the next state the node publishes for another reason.
func TestAckPublishesNoState(t *testing.T) {
	ctl, n := unackedAgent(t)

	ref := ctl.AddContent(200 * time.Millisecond)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, time.Now().Add(time.Second))}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1", "started o1", "completed o1"})
	nodetest.Eventually(t, 5*time.Second, "the state after the play", func() bool {
		st := ctl.Log("n1").States
		return len(st) > 0 && st[len(st)-1].Playing == nil && st[len(st)-1].DesiredVersion == 1
	})
	held := n.a.Status().Outbox
	if held == 0 || held >= 10 {
		t.Fatalf("outbox holds %d events before the acknowledgement, want a play's few", held)
	}
	states := len(ctl.Log("n1").States)

	events := ctl.Events("n1")
	ctl.Ack("n1", n.a.Epoch(), events[len(events)-1].Seq)
	nodetest.Eventually(t, 5*time.Second, "outbox emptied by the acknowledgement", func() bool { return n.a.Status().Outbox == 0 })
	quiet(t, 300*time.Millisecond, "a state was published for the acknowledgement alone", func() bool {
		return len(ctl.Log("n1").States) > states
	})

	// The next state carries the count.
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdStateNow})
	nodetest.Eventually(t, 5*time.Second, "the asked-for state", func() bool { return len(ctl.Log("n1").States) > states })
	if st := ctl.Log("n1").States; st[len(st)-1].Outbox != 0 {
		t.Errorf("the next state says outbox %d, want 0", st[len(st)-1].Outbox)
	}
}

// TestOutboxBacklogPublishesStates: events the controller does not take
// pile up; from ten on the node publishes the count as it grows, and once
// more when the acknowledgement drains it.
func TestOutboxBacklogPublishesStates(t *testing.T) {
	ctl, n := unackedAgent(t)

	ref := ctl.AddContent(100 * time.Millisecond)
	t0 := time.Now().Add(time.Second)
	var occs []protocol.Occurrence
	var want []string
	for i, id := range []string{"o1", "o2", "o3", "o4"} {
		occs = append(occs, occurrence(id, ref, t0.Add(time.Duration(i)*400*time.Millisecond)))
		want = append(want, "received "+id)
	}
	for _, o := range occs {
		want = append(want, "started "+o.ID, "completed "+o.ID)
	}
	ctl.PublishDesired(desired("n1", 1, occs, ref))
	waitEvents(t, ctl, "n1", want)
	held := n.a.Status().Outbox // and each play's content-ready
	if held < 12 {
		t.Fatalf("outbox holds %d events, want 12 or more", held)
	}
	nodetest.Eventually(t, 5*time.Second, "a state with the backlog", func() bool {
		st := ctl.Log("n1").States
		return len(st) > 0 && st[len(st)-1].Outbox == held
	})

	events := ctl.Events("n1")
	ctl.Ack("n1", n.a.Epoch(), events[len(events)-1].Seq)
	nodetest.Eventually(t, 5*time.Second, "a state with the backlog drained", func() bool {
		st := ctl.Log("n1").States
		return st[len(st)-1].Outbox == 0
	})
}

// TestBatchesSayWhatIsAcknowledged: each event batch carries the sequence
// the node holds acknowledged (EventBatch.Acked), so that a controller
// restored from a backup, which lost events it had acknowledged, takes the
// node's next events rather than wait for those for ever.
func TestBatchesSayWhatIsAcknowledged(t *testing.T) {
	ctl, n := unackedAgent(t)
	ref := ctl.AddContent(200 * time.Millisecond)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, time.Now().Add(time.Second))}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1", "started o1", "completed o1"})
	if got := ctl.Log("n1").Acked; got != 0 {
		t.Fatalf("batch before any acknowledgement says acked %d, want 0", got)
	}
	events := ctl.Events("n1")
	last := events[len(events)-1].Seq
	ctl.Ack("n1", n.a.Epoch(), last)
	nodetest.Eventually(t, 5*time.Second, "outbox emptied by the acknowledgement", func() bool { return n.a.Status().Outbox == 0 })

	ctl.PublishDesired(desired("n1", 2, []protocol.Occurrence{occurrence("o2", ref, time.Now().Add(time.Hour))}, ref))
	nodetest.Eventually(t, 5*time.Second, "the next batch", func() bool { return len(ctl.Events("n1")) > len(events) })
	if got := ctl.Log("n1").Acked; got != last {
		t.Errorf("the next batch says acked %d, want %d", got, last)
	}
}
