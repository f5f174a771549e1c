package mqtt

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestEventsAfterABackupRestoreAreStored: a node whose events the
// controller stored and acknowledged after the backup was taken has
// dropped them from its outbox; after the restore it sends its next
// events, numbered after those, saying what it holds acknowledged
// (EventBatch.Acked). The restored controller stores them and
// acknowledges them. It waited for the lost ones for ever: nothing the
// node reported was stored again (no proof of broadcast, no alert
// tracking) and its outbox never drained.
func TestEventsAfterABackupRestoreAreStored(t *testing.T) {
	w := newIngestWorld(t)
	ctx := context.Background()
	ev := func(seq uint64, typ protocol.EventType, occ string) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, Occurrence: occ, At: w.clk.Now()}
	}
	occ1 := "a000001@20260302T000000.000Z"
	occ2 := "a000001@20260302T100000.000Z"
	occ3 := "a000001@20260303T000000.000Z"
	// Morning bulletin: received, started, completed (seq 1–3).
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{
		ev(1, protocol.EventReceived, occ1), ev(2, protocol.EventStarted, occ1), ev(3, protocol.EventCompleted, occ1)}})

	// The nightly backup.
	backup := t.TempDir() + "/backup.db"
	err := w.db.Snapshot(ctx, func(s loaxa.Snapshot) error {
		f, err := os.Create(backup)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = s.WriteTo(f)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The evening bulletin (seq 4–6) is stored and acknowledged: the
	// node drops those events from its outbox.
	w.clk.Advance(10 * time.Hour)
	ack, _, err := w.events.RecordEvents(ctx, "tt-01", protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{
		ev(4, protocol.EventReceived, occ2), ev(5, protocol.EventStarted, occ2), ev(6, protocol.EventCompleted, occ2)}}, w.clk.Now())
	if err != nil || ack != 6 {
		t.Fatalf("evening events: ack %d, %v", ack, err)
	}

	// The controller's disk dies; the officer restores last night's backup.
	path := w.db.Path()
	if err := w.db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db := bolt.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w.db, w.nodes, w.alarms, w.events = db, bolt.NewNodeService(db), bolt.NewAlarmService(db), bolt.NewEventService(db)
	w.restartMonitor()

	// Next morning the node plays and reports (seq 7–9), and resends them
	// every AckTimeout until acknowledged.
	w.clk.Advance(14 * time.Hour)
	next := protocol.EventBatch{Epoch: "epoch-a", Acked: 6, Events: []protocol.Event{
		ev(7, protocol.EventReceived, occ3), ev(8, protocol.EventStarted, occ3), ev(9, protocol.EventCompleted, occ3)}}
	for range 3 { // three resends, 30 s apart
		w.ingest(next)
		w.clk.Advance(30 * time.Second)
	}
	evs, err := w.events.FindEvents(ctx, loaxa.EventFilter{Node: "tt-01"})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	_, held, _ := HeldAck(w.c, "tt-01")
	ds, err := bolt.NewDeliveryService(db).FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "tt-01"})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, d := range ds {
		states = append(states, fmt.Sprintf("%s=%s", d.Occurrence, d.State))
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3, 7, 8, 9}) || held != 9 {
		t.Fatalf("after a backup restore: stored seqs %v, acknowledgement up to %d, deliveries %v; want 1–3 and 7–9 stored and 9 acknowledged", seqs, held, states)
	}
}
