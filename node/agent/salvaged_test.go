package agent_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// TestSendsTheEventsSalvagedFromAnEarlierStore: events read back from a
// damaged store go to the controller under their old epoch and numbers,
// again until acknowledged, and leave the store as they are; those the
// controller had stored already are resends.
func TestSendsTheEventsSalvagedFromAnEarlierStore(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.AutoAck.Store(false)
	cred := ctl.Credentials("n1", "x1", "p1")
	const old = "00c0ffee00c0ffee"
	var lost []protocol.Event
	for seq := uint64(1); seq <= 250; seq++ {
		lost = append(lost, protocol.Event{Seq: seq, Type: protocol.EventCompleted, Occurrence: fmt.Sprintf("a1@%d", seq), At: time.Now().Add(-time.Hour).UTC()})
	}
	st := store.NewMemory()
	if err := st.AddSalvaged(old, lost); err != nil {
		t.Fatal(err)
	}
	ctl.Had("n1", old, 30) // stored before the power cut, never acknowledged
	n := startAgent(t, cred, options{store: st})
	waitConnected(t, n)

	// Unacknowledged, the first batch comes again (after AckTimeout, then
	// twice as long each time: TestSalvagedWait).
	nodetest.Eventually(t, 10*time.Second, "the salvaged batch not sent again", func() bool { return ctl.Log("n1").SalvagedBatches >= 2 })
	if epoch, es, _ := st.Salvaged(1000); epoch != old || len(es) != 250 {
		t.Fatalf("unacknowledged, the store keeps %d salvaged events of %q; want all 250", len(es), epoch)
	}
	ctl.Ack("n1", old, 100) // as the controller would have: then the next batch goes at once
	ctl.AutoAck.Store(true)
	nodetest.Eventually(t, 10*time.Second, "salvaged events still kept", func() bool {
		_, es, _ := st.Salvaged(1)
		return len(es) == 0
	})
	l := ctl.Log("n1")
	if got := l.Salvaged[old]; !slices.EqualFunc(got, lost[30:], func(a, b protocol.Event) bool {
		return a.Seq == b.Seq && a.Occurrence == b.Occurrence && a.Type == b.Type && a.At.Equal(b.At)
	}) {
		t.Fatalf("controller stored %d salvaged events of %s (first %+v), want 31–250 as they were", len(got), old, got[:min(1, len(got))])
	}
	if l.Epoch == old || slices.ContainsFunc(l.Events, func(e protocol.Event) bool { return e.Type == protocol.EventCompleted }) {
		t.Errorf("salvaged events came as the node's own (epoch %q, events %q)", l.Epoch, nodetest.Summary(l.Events))
	}
}
