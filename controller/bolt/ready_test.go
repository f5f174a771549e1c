package bolt_test

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestContentReadyMarksDeliveries checks that a node's content-ready event
// shows on its delivery without moving the state, and that a start counts
// as proof of content for a node that never said content-ready.
func TestContentReadyMarksDeliveries(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	ds, es := bolt.NewDeliveryService(db), bolt.NewEventService(db)
	ctx := context.Background()
	occ := loaxa.OccurrenceID("a000001", t0.Add(time.Hour))
	must(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "a000001", Occurrence: occ, Node: "n1", Start: t0.Add(time.Hour)},
		{Announcement: "a000001", Occurrence: occ, Node: "n2", Start: t0.Add(time.Hour)},
	}))
	ev := func(seq uint64, typ protocol.EventType, at time.Time) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: at, Occurrence: occ, Announcement: "a000001", Content: "c"}
	}
	readyAt := t0.Add(5 * time.Minute)
	if _, _, err := es.RecordEvents(ctx, "n1", protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
		ev(1, protocol.EventReceived, t0.Add(time.Minute)),
		ev(2, protocol.EventContentReady, readyAt),
		ev(3, protocol.EventContentReady, readyAt.Add(time.Minute)), // a repeat changes nothing
	}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := es.RecordEvents(ctx, "n2", protocol.EventBatch{Epoch: "e2", Events: []protocol.Event{
		ev(1, protocol.EventReceived, t0.Add(time.Minute)),
	}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: "a000001"})
	must(t, err)
	if n1, n2 := got[0], got[1]; n1.State != loaxa.DeliveryReceived || !n1.ContentReady || !n1.ContentReadyAt.Equal(readyAt) || n2.ContentReady {
		t.Fatalf("n1 %+v\nn2 %+v", n1, n2)
	}

	startAt := t0.Add(time.Hour)
	if _, _, err := es.RecordEvents(ctx, "n2", protocol.EventBatch{Epoch: "e2", Events: []protocol.Event{
		ev(2, protocol.EventStarted, startAt), ev(3, protocol.EventCompleted, startAt.Add(time.Second)),
	}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	got, err = ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n2"})
	must(t, err)
	if d := got[0]; d.State != loaxa.DeliveryCompleted || !d.ContentReady || !d.ContentReadyAt.Equal(startAt) {
		t.Fatalf("n2 after playing: %+v", d)
	}
}
