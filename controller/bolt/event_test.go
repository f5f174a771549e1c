package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// batch builds an event batch of epoch with the given sequences, one second
// apart from t0.
func batch(epoch string, seqs ...uint64) protocol.EventBatch {
	b := protocol.EventBatch{Epoch: epoch}
	for _, seq := range seqs {
		b.Events = append(b.Events, protocol.Event{Seq: seq, Type: protocol.EventReceived, At: t0.Add(time.Duration(seq) * time.Second)})
	}
	return b
}

// salvaged marks b as events read back from a damaged store.
func salvaged(b protocol.EventBatch) protocol.EventBatch {
	b.Salvaged = true
	return b
}

// storedSeqs returns "epoch/seq" of every stored event of node, oldest first.
func storedSeqs(tb testing.TB, s *bolt.EventService, node string) []string {
	tb.Helper()
	es, err := s.FindEvents(context.Background(), loaxa.EventFilter{Node: node})
	must(tb, err)
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s/%d", e.Epoch, e.Seq))
	}
	slices.Sort(out)
	return out
}

func TestEventService_RecordEvents_Sequencing(t *testing.T) {
	type step struct {
		b   protocol.EventBatch
		ack uint64
	}
	tests := []struct {
		name   string
		steps  []step
		stored []string
	}{
		{"in order", []step{
			{batch("e1", 1, 2, 3), 3},
			{batch("e1", 4), 4},
		}, []string{"e1/1", "e1/2", "e1/3", "e1/4"}},
		{"resend is skipped and acknowledged again", []step{
			{batch("e1", 1, 2), 2},
			{batch("e1", 1, 2), 2},
		}, []string{"e1/1", "e1/2"}},
		{"overlapping resend stores only the new part", []step{
			{batch("e1", 1, 2), 2},
			{batch("e1", 2, 3, 4), 4},
		}, []string{"e1/1", "e1/2", "e1/3", "e1/4"}},
		{"gap between batches stores nothing", []step{
			{batch("e1", 1, 2), 2},
			{batch("e1", 4, 5), 2},
			{batch("e1", 3, 4, 5), 5},
		}, []string{"e1/1", "e1/2", "e1/3", "e1/4", "e1/5"}},
		{"gap inside a batch stops it there", []step{
			{batch("e1", 1, 2, 4, 5), 2},
		}, []string{"e1/1", "e1/2"}},
		{"first batch not starting at 1", []step{
			{batch("e1", 2, 3), 0},
		}, nil},
		{"out of order batch stops at the first gap", []step{
			{batch("e1", 2, 1), 0},
			{batch("e1", 1, 3, 2), 1},
		}, []string{"e1/1"}},
		{"sequence 0 is never stored", []step{
			{batch("e1", 0, 1), 1},
		}, []string{"e1/1"}},
		{"new epoch starts over", []step{
			{batch("e1", 1, 2, 3), 3},
			{batch("e2", 1), 1},
			{batch("e2", 2), 2},
		}, []string{"e1/1", "e1/2", "e1/3", "e2/1", "e2/2"}},
		{"late copy of an old epoch does not reset the new one", []step{
			{batch("e1", 1, 2), 2},
			{batch("e2", 1, 2), 2},
			{batch("e1", 1, 2), 2},
			{batch("e2", 1, 2, 3), 3},
		}, []string{"e1/1", "e1/2", "e2/1", "e2/2", "e2/3"}},
		{"empty batch", []step{
			{batch("e1"), 0},
		}, nil},
		// Events a node read back from its damaged store.
		{"salvaged events continue their epoch", []step{
			{batch("e1", 1, 2, 3), 3},
			{batch("e2", 1), 1},
			{salvaged(batch("e1", 2, 3, 4, 5)), 5},
		}, []string{"e1/1", "e1/2", "e1/3", "e1/4", "e1/5", "e2/1"}},
		{"salvaged events of an epoch not held start where they start", []step{
			{salvaged(batch("e1", 4, 5)), 5},
			{salvaged(batch("e1", 7)), 7},
			{batch("e1", 8), 8},
		}, []string{"e1/4", "e1/5", "e1/7", "e1/8"}},
		{"a gap inside a salvaged batch stops it there", []step{
			{salvaged(batch("e1", 4, 6)), 4},
		}, []string{"e1/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := MustOpenDB(t)
			mustArea(t, db, "hp", "")
			mustNode(t, db, "n1", "hp")
			s := bolt.NewEventService(db)
			for i, st := range tt.steps {
				ack, _, err := s.RecordEvents(context.Background(), "n1", st.b, clk.Now())
				must(t, err)
				if ack != st.ack {
					t.Errorf("step %d: ack %d, want %d", i, ack, st.ack)
				}
			}
			if got := storedSeqs(t, s, "n1"); !slices.Equal(got, tt.stored) {
				t.Errorf("stored %q, want %q", got, tt.stored)
			}
		})
	}
}

func TestEventService_RecordEvents_Refused(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	s := bolt.NewEventService(db)
	ctx := context.Background()

	_, _, err := s.RecordEvents(ctx, "n9", batch("e1", 1), clk.Now())
	wantCode(t, err, loaxa.ENotFound)
	_, _, err = s.RecordEvents(ctx, "n1", batch("", 1), clk.Now())
	wantCode(t, err, loaxa.EInvalid)
	_, _, err = s.RecordEvents(ctx, "n1", batch(string(make([]byte, 65)), 1), clk.Now())
	wantCode(t, err, loaxa.EInvalid)
	if got := storedSeqs(t, s, "n1"); got != nil {
		t.Errorf("refused batches stored %q", got)
	}
}

// A node's outbox sends its events in order and sends a batch again until
// it is acknowledged. One event the store could not keep (an occurrence
// longer than bbolt's key limit, a time that does not encode) failed the
// whole batch, for ever: the node resent it every 30 s and no later event
// of the cluster (proof of broadcast, alert acknowledgements) was stored.
// Such an event must be refused alone: its sequence is taken, so the
// acknowledgement passes it, the refusal is stored in its place (the play
// log shows it, and moves no delivery), and the events around it are
// stored.
func TestEventService_RecordEvents_UnstorableEventTakenNotStored(t *testing.T) {
	good := func(seq uint64) protocol.Event {
		return protocol.Event{Seq: seq, Type: protocol.EventReceived, At: t0.Add(time.Duration(seq) * time.Second)}
	}
	tests := []struct {
		name string
		bad  protocol.Event
	}{
		{"occurrence longer than a bbolt key", protocol.Event{Type: protocol.EventStarted, At: t0,
			Occurrence: "e" + strings.Repeat("x", 40000) + "@20250301T053000.000Z"}},
		{"start out of the years JSON can encode", protocol.Event{Type: protocol.EventStarted,
			At: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), LateMS: -86_400_000, Occurrence: "e1@20250301T053000.000Z"}},
		{"NUL inside the occurrence", protocol.Event{Type: protocol.EventStarted, At: t0, Occurrence: "e1\x00n2@20250301T053000.000Z"}},
		{"no type", protocol.Event{At: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := MustOpenDB(t)
			mustArea(t, db, "hp", "")
			mustNode(t, db, "n1", "hp")
			s := bolt.NewEventService(db)
			ctx := context.Background()

			bad := tt.bad
			bad.Seq = 2
			b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{good(1), bad, good(3)}}
			ack, stored, err := s.RecordEvents(ctx, "n1", b, clk.Now())
			if err != nil {
				t.Fatalf("batch with one unstorable event: %v", err)
			}
			if ack != 3 {
				t.Errorf("ack %d, want 3 (past the refused event)", ack)
			}
			if got := len(stored); got != 2 {
				t.Errorf("%d events stored now, want 2", got)
			}
			ack, _, err = s.RecordEvents(ctx, "n1", batch("e1", 4), clk.Now())
			must(t, err)
			if ack != 4 {
				t.Errorf("next batch: ack %d, want 4", ack)
			}
			if got, want := storedSeqs(t, s, "n1"), []string{"e1/1", "e1/2", "e1/3", "e1/4"}; !slices.Equal(got, want) {
				t.Errorf("stored %q, want %q", got, want)
			}
			es, err := s.FindEvents(ctx, loaxa.EventFilter{Node: "n1"})
			must(t, err)
			for _, e := range es {
				refused := e.Seq == 2
				if (e.Refused != "") != refused {
					t.Errorf("event %d: refused %q", e.Seq, e.Refused)
				}
				if refused && (e.Type != "" || e.Occurrence != "" || !e.At.Equal(clk.Now())) {
					t.Errorf("refused event stored with what it said: %+v", e.Event)
				}
			}
			ds, err := bolt.NewDeliveryService(db).FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
			must(t, err)
			if len(ds) != 0 {
				t.Errorf("a refused event made deliveries: %+v", ds)
			}
		})
	}
}

// TestEventService_RecordEvents_Stored: events are stored with the node,
// its area and the batch's epoch; one the node sent without a time (an
// old or hostile agent) is taken to mean "just now", both stored and in
// what RecordEvents returns: those went to the health monitor and the
// emergency's tracking at year 1 (a failed-to-sound alarm opened 2,025
// years ago, an alert received long before it was sent).
func TestEventService_RecordEvents_Stored(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	mustNode(t, db, "n1", "hp.an-duong.le-loi")
	s := bolt.NewEventService(db)
	received := clk.Now().Add(time.Minute)

	b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventReceived, At: t0.Add(time.Second)},
		{Seq: 2, Type: protocol.EventFailed, Reason: protocol.ReasonAmplifier}, // no At
	}}
	_, fresh, err := s.RecordEvents(context.Background(), "n1", b, received)
	must(t, err)
	es, err := s.FindEvents(context.Background(), loaxa.EventFilter{Node: "n1"})
	must(t, err)
	if len(es) != 2 || len(fresh) != 2 {
		t.Fatalf("%d events stored, %d fresh, want 2", len(es), len(fresh))
	}
	for i := range fresh {
		if !fresh[i].At.Equal(es[i].At) {
			t.Errorf("fresh event %d at %v, stored at %v: want the same", i+1, fresh[i].At, es[i].At)
		}
	}
	for _, e := range es {
		if e.Node != "n1" || e.Area != "hp.an-duong.le-loi" || e.Epoch != "e1" || !e.ReceivedAt.Equal(received) {
			t.Errorf("event %+v: want node n1, its area, epoch e1, received %v", e, received)
		}
	}
	if !es[0].At.Equal(t0.Add(time.Second)) {
		t.Errorf("event 1 at %v, want the node's time", es[0].At)
	}
	// A node that did not say when is taken to mean "just now".
	if !es[1].At.Equal(received) || es[1].Reason != protocol.ReasonAmplifier {
		t.Errorf("event 2 %+v: want At = received time and the reason kept", es[1])
	}
}

func TestEventService_RecordEvents_Deliveries(t *testing.T) {
	start := t0.Add(time.Hour)
	occ := loaxa.OccurrenceID("a000001", start)
	ev := func(typ protocol.EventType, f func(*protocol.Event)) protocol.Event {
		e := protocol.Event{Type: typ, Occurrence: occ, Announcement: "a000001", At: start}
		if f != nil {
			f(&e)
		}
		return e
	}
	late := func(ms int64) func(*protocol.Event) { return func(e *protocol.Event) { e.LateMS = ms } }
	played := func(ms int64) func(*protocol.Event) { return func(e *protocol.Event) { e.PlayedMS = ms } }
	reason := func(r string) func(*protocol.Event) { return func(e *protocol.Event) { e.Reason = r } }

	tests := []struct {
		name   string
		ensure bool // whether the scheduler created the delivery first
		events []protocol.Event
		want   loaxa.Delivery // State, Reason, LateMS, PlayedMS
	}{
		// A start proves the node had the content: ContentReady follows.
		{"a full play", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventStarted, late(120)),
			ev(protocol.EventCompleted, played(60000)),
		}, loaxa.Delivery{State: loaxa.DeliveryCompleted, LateMS: 120, PlayedMS: 60000, ContentReady: true, ContentReadyAt: start}},
		{"terminal state is not undone", true, []protocol.Event{
			ev(protocol.EventCompleted, played(60000)),
			ev(protocol.EventFailed, reason(protocol.ReasonInterrupted)),
			ev(protocol.EventStarted, late(5)),
		}, loaxa.Delivery{State: loaxa.DeliveryCompleted, PlayedMS: 60000}},
		// Late, it skipped into its chime to play in step; started again
		// after a cut, it keeps both.
		{"an alert that began late, into its chime", true, []protocol.Event{
			ev(protocol.EventStarted, func(e *protocol.Event) { e.LateMS, e.ChimeSkippedMS = 640, 640 }),
			ev(protocol.EventSuspended, reason(protocol.ReasonPreempted)),
			ev(protocol.EventStarted, late(95000)),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 640, ChimeSkippedMS: 640, ContentReady: true, ContentReadyAt: start}},
		{"states only move forward", true, []protocol.Event{
			ev(protocol.EventStarted, late(7)),
			ev(protocol.EventReceived, nil),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 7, ContentReady: true, ContentReadyAt: start}},
		// A start with its chime before the message could play proves
		// nothing; the content-ready event after it does.
		{"an alert that began with its chime, its message still to come", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventStarted, func(e *protocol.Event) { e.ContentPending = true }),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted}},
		{"and once its message came", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventStarted, func(e *protocol.Event) { e.ContentPending = true }),
			ev(protocol.EventContentReady, func(e *protocol.Event) { e.At = start.Add(2 * time.Second) }),
			ev(protocol.EventCompleted, func(e *protocol.Event) { e.PlayedMS, e.MessageMS = 14000, 5200 }),
		}, loaxa.Delivery{State: loaxa.DeliveryCompleted, PlayedMS: 14000, MessageMS: 5200, ContentReady: true, ContentReadyAt: start.Add(2 * time.Second)}},
		// Its message came after the chime's end: the content-ready event
		// says where it plays, before the play ends.
		{"a late message placed as it came", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventStarted, func(e *protocol.Event) { e.ContentPending = true }),
			ev(protocol.EventContentReady, func(e *protocol.Event) { e.At, e.MessageMS = start.Add(2*time.Second), 5200 }),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, MessageMS: 5200, ContentReady: true, ContentReadyAt: start.Add(2 * time.Second)}},
		{"failure keeps its reason", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventFailed, reason(protocol.ReasonContentMissing)),
		}, loaxa.Delivery{State: loaxa.DeliveryFailed, Reason: protocol.ReasonContentMissing}},
		{"preempted mid-play", true, []protocol.Event{
			ev(protocol.EventStarted, nil),
			ev(protocol.EventPreempted, played(1500)),
		}, loaxa.Delivery{State: loaxa.DeliveryPreempted, PlayedMS: 1500, ContentReady: true, ContentReadyAt: start}},
		// A play cut off to play again is suspended, not sounding, with
		// what cut it off; started again, it keeps how late it first began.
		{"suspended mid-play", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventStarted, late(120)),
			ev(protocol.EventSuspended, func(e *protocol.Event) { e.Reason, e.PlayedMS = protocol.ReasonContentMissing, 1500 }),
		}, loaxa.Delivery{State: loaxa.DeliverySuspended, Reason: protocol.ReasonContentMissing, LateMS: 120, PlayedMS: 1500, ContentReady: true, ContentReadyAt: start}},
		{"suspended, then started again", true, []protocol.Event{
			ev(protocol.EventStarted, late(120)),
			ev(protocol.EventSuspended, reason(protocol.ReasonPreempted)),
			ev(protocol.EventStarted, late(95000)),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 120, ContentReady: true, ContentReadyAt: start}},
		// Held back before it began (the node muted, or without its sound
		// device), it began only when started: as late as that start.
		{"held back, then started late", true, []protocol.Event{
			ev(protocol.EventReceived, nil),
			ev(protocol.EventSuspended, reason(protocol.ReasonMuted)),
			ev(protocol.EventStarted, late(34000)),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 34000, ContentReady: true, ContentReadyAt: start}},
		{"held back, started late, cut off and started again", true, []protocol.Event{
			ev(protocol.EventSuspended, reason(protocol.ReasonAudioDevice)),
			ev(protocol.EventStarted, late(34000)),
			ev(protocol.EventSuspended, reason(protocol.ReasonPreempted)),
			ev(protocol.EventStarted, late(95000)),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 34000, ContentReady: true, ContentReadyAt: start}},
		{"suspended twice, then completed", true, []protocol.Event{
			ev(protocol.EventStarted, nil),
			ev(protocol.EventSuspended, reason(protocol.ReasonPreempted)),
			ev(protocol.EventStarted, late(40000)),
			ev(protocol.EventSuspended, reason(protocol.ReasonInterrupted)),
			ev(protocol.EventStarted, late(90000)),
			ev(protocol.EventCompleted, played(60000)),
		}, loaxa.Delivery{State: loaxa.DeliveryCompleted, PlayedMS: 60000, ContentReady: true, ContentReadyAt: start}},
		{"suspended, then failed at its deadline", true, []protocol.Event{
			ev(protocol.EventStarted, nil),
			ev(protocol.EventSuspended, reason(protocol.ReasonContentMissing)),
			ev(protocol.EventFailed, reason(protocol.ReasonContentMissing)),
		}, loaxa.Delivery{State: loaxa.DeliveryFailed, Reason: protocol.ReasonContentMissing, ContentReady: true, ContentReadyAt: start}},
		{"a late received does not undo a suspension", true, []protocol.Event{
			ev(protocol.EventStarted, nil),
			ev(protocol.EventSuspended, reason(protocol.ReasonPreempted)),
			ev(protocol.EventReceived, nil),
		}, loaxa.Delivery{State: loaxa.DeliverySuspended, Reason: protocol.ReasonPreempted, ContentReady: true, ContentReadyAt: start}},
		{"missed", true, []protocol.Event{
			ev(protocol.EventMissed, reason(protocol.ReasonTooLate)),
		}, loaxa.Delivery{State: loaxa.DeliveryMissed, Reason: protocol.ReasonTooLate}},
		// Its start is the one the node was given: 30 ms before it began.
		{"unknown occurrence creates the delivery", false, []protocol.Event{
			ev(protocol.EventStarted, late(30)),
		}, loaxa.Delivery{State: loaxa.DeliveryStarted, LateMS: 30, ContentReady: true, ContentReadyAt: start, Start: start.Add(-30 * time.Millisecond)}},
		{"announcement is taken from the occurrence id", false, []protocol.Event{
			ev(protocol.EventCompleted, func(e *protocol.Event) { e.Announcement = "a000009" }),
		}, loaxa.Delivery{State: loaxa.DeliveryCompleted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := MustOpenDB(t)
			mustArea(t, db, "hp", "")
			mustNode(t, db, "n1", "hp")
			deliveries := bolt.NewDeliveryService(db)
			ctx := context.Background()
			if tt.ensure {
				must(t, deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{{Announcement: "a000001", Occurrence: occ, Node: "n1", Start: start}}))
			}
			clk.Advance(time.Hour)
			b := protocol.EventBatch{Epoch: "e1"}
			for i, e := range tt.events {
				e.Seq = uint64(i + 1)
				b.Events = append(b.Events, e)
			}
			ack, _, err := bolt.NewEventService(db).RecordEvents(ctx, "n1", b, clk.Now())
			must(t, err)
			if ack != uint64(len(tt.events)) {
				t.Fatalf("ack %d, want %d", ack, len(tt.events))
			}

			ds, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
			must(t, err)
			if len(ds) != 1 {
				t.Fatalf("deliveries %q, want one", deliveryIDs(ds))
			}
			d := ds[0]
			want := tt.want
			want.Announcement, want.Occurrence, want.Node, want.UpdatedAt = "a000001", occ, "n1", clk.Now()
			if want.Start.IsZero() {
				want.Start = start
			}
			if want.State != loaxa.DeliveryPending {
				want.ReceivedAt = start // the first event about it, whichever it is
			}
			want.Unplanned = !tt.ensure // made from the event
			if len(tt.events) > 0 {
				want.Epoch = "e1" // the outbox of its last report
			}
			// Began once a started event moved it (not after a final
			// state, which nothing undoes).
			for i, e := range tt.events {
				if e.Type == protocol.EventStarted && !slices.ContainsFunc(tt.events[:i], func(f protocol.Event) bool {
					return f.Type == protocol.EventCompleted || f.Type == protocol.EventFailed || f.Type == protocol.EventPreempted || f.Type == protocol.EventMissed
				}) {
					want.Began = true
				}
			}
			if fmt.Sprint(*d) != fmt.Sprint(want) {
				t.Errorf("delivery\n%+v\nwant\n%+v", *d, want)
			}
		})
	}
}

// TestEnsureDeliveriesPlansUnplanned: an emergency's node reports the
// alert received and started before the emergency stored its deliveries
// (it publishes while it stores them). The delivery made from the report
// then takes the plan, its start instant, level, planned length and drill
// mark, and keeps what the node reported; a planned delivery is never
// changed by a later plan. Until the plan comes, the delivery's start is
// the one the node's started event implies.
func TestEnsureDeliveriesPlansUnplanned(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	ctx := context.Background()
	deliveries := bolt.NewDeliveryService(db)
	issued := t0
	occ := loaxa.OccurrenceID("e000001", issued)
	start := issued.Add(1300 * time.Millisecond)
	b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventReceived, At: issued.Add(400 * time.Millisecond), Occurrence: occ},
		{Seq: 2, Type: protocol.EventStarted, At: start.Add(5 * time.Millisecond), Occurrence: occ, LateMS: 5},
	}}
	if _, _, err := bolt.NewEventService(db).RecordEvents(ctx, "n1", b, clk.Now()); err != nil {
		t.Fatal(err)
	}
	got := func(node string) loaxa.Delivery {
		t.Helper()
		ds, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: node})
		must(t, err)
		if len(ds) != 1 {
			t.Fatalf("deliveries of %s: %q, want one", node, deliveryIDs(ds))
		}
		return *ds[0]
	}
	// Before the plan the start is the one the node says it was given
	// (its start less how late it was), not the occurrence's own time.
	if d := got("n1"); !d.Unplanned || !d.Start.Equal(start) || d.Priority != "" {
		t.Fatalf("before the plan: %+v, want Unplanned with the node's start %s", d, start)
	}
	plan := func(node string, drill bool, at time.Time) *loaxa.Delivery {
		return &loaxa.Delivery{Announcement: "e000001", Occurrence: occ, Node: node, Start: at, State: loaxa.DeliveryPending,
			Priority: protocol.PriorityEmergency, PlannedMS: 9000, Drill: drill, UpdatedAt: issued}
	}
	must(t, deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{plan("n1", true, start), plan("n2", true, start)}))
	d := got("n1")
	if d.Unplanned || !d.Start.Equal(start) || d.Priority != protocol.PriorityEmergency || d.PlannedMS != 9000 || !d.Drill {
		t.Errorf("after the plan: %+v, want its start, level, length and drill mark", d)
	}
	if d.State != loaxa.DeliveryStarted || d.LateMS != 5 || !d.ReceivedAt.Equal(issued.Add(400*time.Millisecond)) {
		t.Errorf("after the plan: %+v, want what the node reported kept", d)
	}
	if d := got("n2"); d.Unplanned || d.State != loaxa.DeliveryPending || !d.Drill {
		t.Errorf("the node that had not reported: %+v, want the plan, pending", d)
	}
	// A planned delivery keeps its plan.
	must(t, deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{plan("n1", false, start.Add(time.Hour))}))
	if d := got("n1"); !d.Start.Equal(start) || !d.Drill {
		t.Errorf("a second plan changed a planned delivery: %+v", d)
	}
}

// TestLateReceivedOfDroppedOccurrenceLeavesNoDelivery: a node wrote
// "received" for a bulletin of its desired state v1; before the event
// reached the controller (a 4G drop, its outbox sent on reconnect) the
// officer cancelled or moved the bulletin and the scheduler dropped the
// delivery (DropDeliveries). The late event brought the delivery back as an
// Unplanned "received" one that nothing ends, since the node never reports
// again on an occurrence it only held: GET /reports/broadcast counted it
// scheduled and open, and two minutes after its time failed to sound, for a
// bulletin the officer cancelled. A late event that reports no play must
// leave the dropped delivery dropped.
func TestLateReceivedOfDroppedOccurrenceLeavesNoDelivery(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	ds := bolt.NewDeliveryService(db)
	es := bolt.NewEventService(db)
	ctx := context.Background()

	start := clk.Now().Add(3 * time.Hour)
	occ := loaxa.OccurrenceID("a000001", start)
	// v1: the scheduler plans the occurrence on n1.
	must(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{{
		Announcement: "a000001", Occurrence: occ, Node: "n1", Start: start,
		Priority: protocol.PriorityNormal, PlannedMS: 60_000,
	}}))
	// v2: the officer cancelled it; the scheduler drops the delivery.
	clk.Advance(10 * time.Second)
	must(t, ds.DropDeliveries(ctx, map[string]map[string]bool{"n1": {}}, clk.Now(), 10*time.Minute))

	// The node's received and content-ready events of v1 arrive late.
	clk.Advance(20 * time.Second)
	at := clk.Now().Add(-25 * time.Second)
	ack, _, err := es.RecordEvents(ctx, "n1", protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventReceived, Occurrence: occ, Announcement: "a000001", At: at},
		{Seq: 2, Type: protocol.EventContentReady, Occurrence: occ, Announcement: "a000001", At: at},
	}}, clk.Now())
	must(t, err)
	if ack != 2 {
		t.Fatalf("ack %d, want 2: the events themselves are stored", ack)
	}
	got, err := ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
	must(t, err)
	if len(got) != 0 {
		d := got[0]
		d.CheckSilence(start.Add(5*time.Minute), loaxa.SilenceBound)
		t.Fatalf("a late received event of a cancelled occurrence brought back its delivery: %s %s (unplanned %v, failed_to_sound %v at its time + 5 min), counted scheduled and open, and failed to sound, for ever",
			d.Occurrence, d.State, d.Unplanned, d.FailedToSound)
	}
}

// TestEventOfUnknownOccurrence: which events make the delivery of an
// occurrence that has none. An announcement's deliveries are stored before
// its desired state leaves, so only a play (started, suspended or final)
// makes one: the node played what it held. An emergency or a live call is
// sent while its deliveries are stored, so any report makes one.
func TestEventOfUnknownOccurrence(t *testing.T) {
	ann := loaxa.OccurrenceID("a000001", t0)
	em := loaxa.OccurrenceID("e000001", t0)
	const call = "live-0001"
	tests := []struct {
		name  string
		occ   string
		typ   protocol.EventType
		state loaxa.DeliveryState // "": no delivery
	}{
		{"announcement received", ann, protocol.EventReceived, ""},
		{"announcement content ready", ann, protocol.EventContentReady, ""},
		{"announcement, event that moves nothing", ann, "rebooted", ""},
		{"announcement started", ann, protocol.EventStarted, loaxa.DeliveryStarted},
		{"announcement suspended", ann, protocol.EventSuspended, loaxa.DeliverySuspended},
		{"announcement completed", ann, protocol.EventCompleted, loaxa.DeliveryCompleted},
		{"announcement failed", ann, protocol.EventFailed, loaxa.DeliveryFailed},
		{"announcement preempted", ann, protocol.EventPreempted, loaxa.DeliveryPreempted},
		{"announcement missed", ann, protocol.EventMissed, loaxa.DeliveryMissed},
		{"emergency received", em, protocol.EventReceived, loaxa.DeliveryReceived},
		{"emergency content ready", em, protocol.EventContentReady, loaxa.DeliveryPending},
		{"emergency, event that moves nothing", em, "rebooted", loaxa.DeliveryPending},
		{"live call received", call, protocol.EventReceived, loaxa.DeliveryReceived},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := MustOpenDB(t)
			mustArea(t, db, "hp", "")
			mustNode(t, db, "n1", "hp")
			ctx := context.Background()
			b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{{Seq: 1, Type: tt.typ, Occurrence: tt.occ, At: t0}}}
			ack, _, err := bolt.NewEventService(db).RecordEvents(ctx, "n1", b, clk.Now())
			must(t, err)
			if ack != 1 {
				t.Fatalf("ack %d, want 1: the event itself is stored", ack)
			}
			ds, err := bolt.NewDeliveryService(db).FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
			must(t, err)
			switch {
			case tt.state == "" && len(ds) != 0:
				t.Errorf("deliveries %q, want none", deliveryIDs(ds))
			case tt.state != "" && len(ds) != 1:
				t.Errorf("deliveries %q, want one", deliveryIDs(ds))
			case tt.state != "" && (ds[0].State != tt.state || !ds[0].Unplanned):
				t.Errorf("delivery %s unplanned %v, want %s unplanned", ds[0].State, ds[0].Unplanned, tt.state)
			}
		})
	}
}

// TestUnplannedDeliveryKeepsTheDrillMark: a delivery made from a node's
// report, before or without its plan, says drill when the node's events
// do (the node has the mark from the signed alert or call). It said drill
// false until the plan came, and for good if the plan never did (a
// controller stopped while an alert went out, a plan dropped): a drill
// counted as a real alert in the reports. The plan, when it comes, has
// the last word.
func TestUnplannedDeliveryKeepsTheDrillMark(t *testing.T) {
	for _, occ := range []string{"live-0001", loaxa.OccurrenceID("e000001", t0)} {
		t.Run(occ, func(t *testing.T) {
			db, clk := MustOpenDB(t)
			mustArea(t, db, "hp", "")
			mustNode(t, db, "n1", "hp")
			ctx := context.Background()
			ann, _, _ := strings.Cut(occ, "@")
			b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
				{Seq: 1, Type: protocol.EventReceived, Occurrence: occ, Announcement: ann, At: t0, Drill: true},
				{Seq: 2, Type: protocol.EventStarted, Occurrence: occ, Announcement: ann, At: t0, Drill: true},
			}}
			if _, _, err := bolt.NewEventService(db).RecordEvents(ctx, "n1", b, clk.Now()); err != nil {
				t.Fatal(err)
			}
			deliveries := bolt.NewDeliveryService(db)
			marks := func(ds []*loaxa.Delivery) (out []string) {
				for _, d := range ds {
					out = append(out, fmt.Sprintf("%s %s unplanned=%t drill=%t", d.Node, d.State, d.Unplanned, d.Drill))
				}
				return out
			}
			ds, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann})
			must(t, err)
			if len(ds) != 1 || !ds[0].Unplanned || !ds[0].Drill || ds[0].State != loaxa.DeliveryStarted {
				t.Fatalf("deliveries from the node's drill reports: %q; want one, unplanned, started, drill", marks(ds))
			}
			// A plan that says otherwise wins.
			must(t, deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{{Announcement: ann, Occurrence: occ, Node: "n1", Start: t0}}))
			ds, err = deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann})
			must(t, err)
			if len(ds) != 1 || ds[0].Unplanned || ds[0].Drill {
				t.Errorf("after a plan without the mark: %q; want planned, not drill", marks(ds))
			}
		})
	}
}

func TestEventService_RecordEvents_MalformedOccurrence(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{{Seq: 1, Type: protocol.EventStarted, At: t0, Occurrence: "no-announcement-part"}}}
	ack, _, err := bolt.NewEventService(db).RecordEvents(context.Background(), "n1", b, clk.Now())
	must(t, err)
	if ack != 1 {
		t.Fatalf("ack %d: the event itself must still be stored", ack)
	}
	ds, err := bolt.NewDeliveryService(db).FindDeliveries(context.Background(), loaxa.DeliveryFilter{})
	must(t, err)
	if len(ds) != 0 {
		t.Errorf("deliveries %q from an occurrence id without an announcement", deliveryIDs(ds))
	}
}

func TestEventService_FindEvents(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	mustNode(t, db, "n-ll", "hp.an-duong.le-loi")
	mustNode(t, db, "n-t1", "hp.an-duong.le-loi.t1")
	mustNode(t, db, "n-tn", "hp.thuy-nguyen")
	mustNode(t, db, "n-hn", "hn")
	s := bolt.NewEventService(db)

	// Each node reports events at the given minutes after t0.
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	record := func(node string, mins ...int) {
		b := protocol.EventBatch{Epoch: "e1"}
		for i, m := range mins {
			b.Events = append(b.Events, protocol.Event{Seq: uint64(i + 1), Type: protocol.EventReceived, At: at(m)})
		}
		_, _, err := s.RecordEvents(context.Background(), node, b, clk.Now())
		must(t, err)
	}
	record("n-ll", 1, 5, 9)
	record("n-t1", 2, 6)
	record("n-tn", 3, 7)
	record("n-hn", 4, 8)

	tests := []struct {
		name   string
		filter loaxa.EventFilter
		want   []string // node@minute
		code   string
	}{
		{"all", loaxa.EventFilter{}, []string{"n-ll@1", "n-t1@2", "n-tn@3", "n-hn@4", "n-ll@5", "n-t1@6", "n-tn@7", "n-hn@8", "n-ll@9"}, ""},
		{"node", loaxa.EventFilter{Node: "n-t1"}, []string{"n-t1@2", "n-t1@6"}, ""},
		{"within district", loaxa.EventFilter{Within: "hp.an-duong"}, []string{"n-ll@1", "n-t1@2", "n-ll@5", "n-t1@6", "n-ll@9"}, ""},
		{"within province", loaxa.EventFilter{Within: "hp"}, []string{"n-ll@1", "n-t1@2", "n-tn@3", "n-ll@5", "n-t1@6", "n-tn@7", "n-ll@9"}, ""},
		{"within leaf", loaxa.EventFilter{Within: "hp.an-duong.le-loi.t1"}, []string{"n-t1@2", "n-t1@6"}, ""},
		{"from inclusive, to exclusive", loaxa.EventFilter{From: at(3), To: at(7)}, []string{"n-tn@3", "n-hn@4", "n-ll@5", "n-t1@6"}, ""},
		{"from only", loaxa.EventFilter{From: at(8)}, []string{"n-hn@8", "n-ll@9"}, ""},
		{"to only", loaxa.EventFilter{To: at(2)}, []string{"n-ll@1"}, ""},
		{"node and range", loaxa.EventFilter{Node: "n-ll", From: at(2), To: at(9)}, []string{"n-ll@5"}, ""},
		{"node outside within", loaxa.EventFilter{Node: "n-hn", Within: "hp"}, nil, ""},
		{"within and range", loaxa.EventFilter{Within: "hp.an-duong", From: at(2), To: at(6)}, []string{"n-t1@2", "n-ll@5"}, ""},
		{"limit", loaxa.EventFilter{Limit: 3}, []string{"n-ll@1", "n-t1@2", "n-tn@3"}, ""},
		{"limit with filter", loaxa.EventFilter{Within: "hn", Limit: 1}, []string{"n-hn@4"}, ""},
		{"empty range", loaxa.EventFilter{From: at(5), To: at(5)}, nil, loaxa.EInvalid},
		{"reversed range", loaxa.EventFilter{From: at(6), To: at(5)}, nil, loaxa.EInvalid},
		{"unknown node", loaxa.EventFilter{Node: "n9"}, nil, loaxa.ENotFound},
		{"unknown area", loaxa.EventFilter{Within: "nowhere"}, nil, loaxa.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := s.FindEvents(context.Background(), tt.filter)
			wantCode(t, err, tt.code)
			var got []string
			for _, e := range es {
				got = append(got, fmt.Sprintf("%s@%d", e.Node, int(e.At.Sub(t0)/time.Minute)))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestEventService_FindEvents_SubMillisecond checks the bounds on At itself:
// keys order events by millisecond only.
func TestEventService_FindEvents_SubMillisecond(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "a", "hp")
	mustNode(t, db, "b", "hp")
	s := bolt.NewEventService(db)
	for node, at := range map[string]time.Time{"a": t0.Add(700 * time.Microsecond), "b": t0.Add(200 * time.Microsecond)} {
		_, _, err := s.RecordEvents(context.Background(), node, protocol.EventBatch{Epoch: "e", Events: []protocol.Event{{Seq: 1, Type: protocol.EventReceived, At: at}}}, clk.Now())
		must(t, err)
	}
	for _, tt := range []struct {
		from, to time.Duration
		want     []string
	}{
		{0, 500 * time.Microsecond, []string{"b"}},
		{500 * time.Microsecond, time.Millisecond, []string{"a"}},
		{0, time.Millisecond, []string{"a", "b"}},
	} {
		es, err := s.FindEvents(context.Background(), loaxa.EventFilter{From: t0.Add(tt.from), To: t0.Add(tt.to)})
		must(t, err)
		var got []string
		for _, e := range es {
			got = append(got, e.Node)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("[%v, %v): nodes %q, want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestEventService_FindEvents_Limits(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	s := bolt.NewEventService(db)
	const n = bolt.MaxEventLimit + 5
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	ack, _, err := s.RecordEvents(context.Background(), "n1", batch("e1", seqs...), clk.Now())
	must(t, err)
	if ack != n {
		t.Fatalf("ack %d, want %d", ack, n)
	}
	for _, tt := range []struct{ limit, want int }{
		{0, bolt.DefaultEventLimit},
		{-1, bolt.DefaultEventLimit},
		{5, 5},
		{n, bolt.MaxEventLimit},
	} {
		es, err := s.FindEvents(context.Background(), loaxa.EventFilter{Limit: tt.limit})
		must(t, err)
		if len(es) != tt.want {
			t.Errorf("limit %d: %d events, want %d", tt.limit, len(es), tt.want)
		}
		if es[0].Seq != 1 {
			t.Errorf("limit %d: first event %d, want the oldest", tt.limit, es[0].Seq)
		}
	}
}

// BenchmarkRecordEvents records one event per call, as a node reports
// them live, from parallel workers over thousands of nodes. Each event
// names an occurrence, so each call also creates or advances a delivery.
func BenchmarkRecordEvents(b *testing.B) {
	const nodes = 2000
	db, ids := seededDB(b, nodes)
	s := bolt.NewEventService(db)
	types := []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted}
	var workers atomic.Int64
	// The controller ingests with several workers (mqtt.Client.Workers).
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each worker owns a slice of the nodes, so that every node's
		// sequence stays gap-free.
		w := int(workers.Add(1))
		var mine []string
		for i := w; i < nodes; i += 64 {
			mine = append(mine, ids[i])
		}
		seq := make([]uint64, len(mine))
		i := 0
		for pb.Next() {
			k := i % len(mine)
			i++
			seq[k]++
			occ := loaxa.OccurrenceID("a000001", t0.Add(time.Duration(seq[k]/3)*time.Hour))
			ev := protocol.Event{Seq: seq[k], Type: types[seq[k]%3], At: time.Now(), Occurrence: occ}
			ack, _, err := s.RecordEvents(context.Background(), mine[k], protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{ev}}, time.Now())
			if err != nil || ack != seq[k] {
				b.Errorf("ack %d, %v; want %d", ack, err, seq[k])
				return
			}
		}
	})
}

// TestEventService_RecordEvents_Concurrent records from many nodes at once,
// so that batches share commits, with one sender for a node that does not
// exist: its errors must not cost the others an event.
func TestEventService_RecordEvents_Concurrent(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	const nodes, batches = 8, 15
	for i := range nodes {
		mustNode(t, db, fmt.Sprintf("n%d", i), "hp")
	}
	s := bolt.NewEventService(db)
	var wg sync.WaitGroup
	for i := range nodes + 1 {
		wg.Go(func() {
			node := fmt.Sprintf("n%d", i) // n8 does not exist
			for k := range batches {
				seq := uint64(2*k + 1)
				ack, _, err := s.RecordEvents(context.Background(), node, batch("e1", seq, seq+1), clk.Now())
				if i == nodes {
					if loaxa.ErrorCode(err) != loaxa.ENotFound {
						t.Errorf("unknown node: %v", err)
					}
					continue
				}
				if err != nil || ack != seq+1 {
					t.Errorf("%s: ack %d, %v; want %d", node, ack, err, seq+1)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range nodes {
		if got := storedSeqs(t, s, fmt.Sprintf("n%d", i)); len(got) != 2*batches {
			t.Errorf("n%d: %d events stored, want %d", i, len(got), 2*batches)
		}
	}
}

// TestEventService_FindEvents_MergeAndScan checks that the two ways
// FindEvents reads a Within (merging a few nodes' indexes, or scanning the
// time index when the subtree has many nodes) give what filtering the full
// time-ordered log gives, including events of several nodes in the same
// millisecond.
func TestEventService_FindEvents_MergeAndScan(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustArea(t, db, "hp.small", "hp")
	mustArea(t, db, "hp.big", "hp")
	mustArea(t, db, "hn", "")
	var big []string
	for i := range 300 { // more than FindEvents merges
		big = append(big, fmt.Sprintf("b%03d", i))
	}
	must(t, bolt.SeedNodes(db, "hp.big", big))
	area := map[string]string{"s1": "hp.small", "s2": "hp.small", "s3": "hp.small", "h1": "hn", "h2": "hn"}
	for n, a := range area {
		mustNode(t, db, n, a)
	}
	for _, n := range big[:5] {
		area[n] = "hp.big"
	}
	s := bolt.NewEventService(db)
	i := 0
	for n := range area {
		b := protocol.EventBatch{Epoch: "e1"}
		for seq := uint64(1); seq <= 20; seq++ {
			i++
			// Every third event shares its millisecond with others.
			at := t0.Add(time.Duration(i%7) * time.Minute).Add(time.Duration(seq) * time.Second)
			if i%3 == 0 {
				at = t0.Add(time.Hour)
			}
			b.Events = append(b.Events, protocol.Event{Seq: seq, Type: protocol.EventReceived, At: at})
		}
		_, _, err := s.RecordEvents(context.Background(), n, b, clk.Now())
		must(t, err)
	}
	all, err := s.FindEvents(context.Background(), loaxa.EventFilter{Limit: bolt.MaxEventLimit})
	must(t, err)
	if len(all) != 20*len(area) {
		t.Fatalf("%d events in the log, want %d", len(all), 20*len(area))
	}
	within := map[string][]string{"hp.small": {"hp.small"}, "hp.big": {"hp.big"}, "hp": {"hp.small", "hp.big"}, "hn": {"hn"}}
	render := func(es []*loaxa.Event) []string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s/%d@%s", e.Node, e.Seq, e.At.Format("15:04:05.000")))
		}
		return out
	}
	for w, areas := range within {
		for _, r := range []struct{ from, to time.Duration }{{0, 0}, {2 * time.Minute, 5 * time.Minute}, {time.Hour, 0}} {
			for _, limit := range []int{0, 7} {
				for _, newest := range []bool{false, true} {
					f := loaxa.EventFilter{Within: w, Limit: limit, Newest: newest}
					if r.from != 0 {
						f.From = t0.Add(r.from)
					}
					if r.to != 0 {
						f.To = t0.Add(r.to)
					}
					var want []*loaxa.Event
					for _, e := range all {
						if slices.Contains(areas, e.Area) && !e.At.Before(f.From) && (f.To.IsZero() || e.At.Before(f.To)) {
							want = append(want, e)
						}
					}
					if newest {
						// The log read backwards: the limit keeps the newest.
						slices.Reverse(want)
					}
					if limit != 0 {
						want = want[:min(limit, len(want))]
					}
					got, err := s.FindEvents(context.Background(), f)
					must(t, err)
					if !slices.Equal(render(got), render(want)) {
						t.Errorf("within %s from %v to %v limit %d newest %t:\n got %q\nwant %q", w, r.from, r.to, limit, newest, render(got), render(want))
					}
				}
			}
		}
	}
}

// FuzzRecordEvents feeds arbitrary sequences of batches, as a confused or
// hostile node might send them, and checks the sequencing rule against a
// model, that terminal delivery states never change, and (on cleanup) every
// store invariant.
func FuzzRecordEvents(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2, 1, 0, 3, 2})
	f.Add([]byte{0, 1, 10, 0, 1, 10, 1, 1, 11, 0, 2, 12, 0, 4, 2, 0, 3, 13})
	f.Add([]byte{1, 2, 0, 1, 1, 0, 0, 0, 0, 1, 3, 9, 1, 2, 10})
	types := []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted,
		protocol.EventFailed, protocol.EventMissed, protocol.EventPreempted, "unknown"}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 300 {
			return
		}
		db, clk := MustOpenDB(t)
		mustArea(t, db, "hp", "")
		mustNode(t, db, "n1", "hp")
		s := bolt.NewEventService(db)
		deliveries := bolt.NewDeliveryService(db)
		ctx := context.Background()

		// Every three bytes make an event: epoch, seq, and type with an
		// optional occurrence; every four events make a batch.
		var batches []protocol.EventBatch
		for i := 0; i+3 <= len(data); i += 3 {
			epoch := fmt.Sprintf("e%d", data[i]%2)
			if len(batches) == 0 || len(batches[len(batches)-1].Events) == 4 || batches[len(batches)-1].Epoch != epoch {
				batches = append(batches, protocol.EventBatch{Epoch: epoch})
			}
			ev := protocol.Event{Seq: uint64(data[i+1] % 8), Type: types[int(data[i+2])%len(types)], At: t0.Add(time.Duration(i) * time.Second)}
			if data[i+2]&8 != 0 {
				ev.Occurrence = loaxa.OccurrenceID("a000001", t0.Add(time.Duration(data[i+2]>>4)*time.Hour))
			}
			b := &batches[len(batches)-1]
			b.Events = append(b.Events, ev)
		}

		last := map[string]uint64{} // the model: last stored seq per epoch
		terminal := map[string]loaxa.DeliveryState{}
		for _, b := range batches {
			for _, ev := range b.Events {
				if ev.Seq == last[b.Epoch]+1 {
					last[b.Epoch]++
				} else if ev.Seq > last[b.Epoch] {
					break
				}
			}
			ack, _, err := s.RecordEvents(ctx, "n1", b, clk.Now())
			must(t, err)
			if ack != last[b.Epoch] {
				t.Fatalf("batch %+v: ack %d, model says %d", b, ack, last[b.Epoch])
			}
			ds, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
			must(t, err)
			for _, d := range ds {
				if was, ok := terminal[d.Occurrence]; ok && d.State != was {
					t.Fatalf("delivery %s left terminal state %s for %s", d.Occurrence, was, d.State)
				}
				if d.State.Terminal() {
					terminal[d.Occurrence] = d.State
				}
			}
		}
		var want []string
		for epoch, n := range last {
			for seq := uint64(1); seq <= n; seq++ {
				want = append(want, fmt.Sprintf("%s/%d", epoch, seq))
			}
		}
		slices.Sort(want)
		if got := storedSeqs(t, s, "n1"); !slices.Equal(got, want) {
			t.Fatalf("stored %q, want %q", got, want)
		}
	})
}

// FuzzRecordEventContents feeds the events of arbitrary event batches, in order,
// to RecordEvents: whatever a node sends, valid or not, the batch must be
// taken whole and acknowledged to its last event, so that one event the
// store cannot hold never stops the node's outbox (and the store's
// invariants, checked on cleanup, hold).
func FuzzRecordEventContents(f *testing.F) {
	for _, seed := range []string{
		`{"events":[{"type":"received","at":"2025-03-01T05:30:00Z","occurrence":"a1@20250301T053000.000Z"}]}`,
		`{"events":[{"type":"started","at":"9999-12-31T23:59:59Z","late_ms":-86400000,"occurrence":"e1@20250301T053000.000Z"}]}`,
		`{"events":[{"type":"started","at":"0000-01-01T00:00:00Z","late_ms":86400000,"occurrence":"e1@x"}]}`,
		`{"events":[{"type":"started","occurrence":"e1\u0000n2@20250301T053000.000Z"},{"type":""}]}`,
		`{"events":[{"type":"self-test","test":{"id":"t1","kind":"silent","pass":false,"problems":["busy"]}}]}`,
		`{"events":[{"type":"completed","occurrence":"live-` + strings.Repeat("x", 33000) + `"}]}`,
	} {
		f.Add([]byte(seed))
	}
	db, clk := MustOpenDB(f)
	mustArea(f, db, "hp", "")
	mustNode(f, db, "n1", "hp")
	s := bolt.NewEventService(db)
	epoch := 0
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b protocol.EventBatch
		if json.Unmarshal(raw, &b) != nil || len(b.Events) == 0 {
			return
		}
		epoch++
		b.Epoch, b.Salvaged, b.Acked = strconv.Itoa(epoch), false, 0
		for i := range b.Events {
			b.Events[i].Seq = uint64(i + 1)
		}
		ack, _, err := s.RecordEvents(context.Background(), "n1", b, clk.Now())
		if err != nil {
			t.Fatalf("batch refused: %v", err)
		}
		if ack != uint64(len(b.Events)) {
			t.Fatalf("acknowledged up to %d of %d events", ack, len(b.Events))
		}
	})
}

// TestEventService_RecordEvents_Salvaged: events a node read back from its
// damaged store are stored marked as such, and move a delivery only if no
// other outbox of the node has reported on it, leaving its epoch alone.
func TestEventService_RecordEvents_Salvaged(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	deliveries := bolt.NewDeliveryService(db)
	events := bolt.NewEventService(db)
	start := t0.Add(time.Hour)
	since := loaxa.OccurrenceID("a000001", start) // reported by the new store since
	never := loaxa.OccurrenceID("a000002", start) // planned, no report but the salvaged
	old := loaxa.OccurrenceID("a000003", start)   // reported by the old store
	must(t, deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "a000001", Occurrence: since, Node: "n1", Start: start},
		{Announcement: "a000002", Occurrence: never, Node: "n1", Start: start},
		{Announcement: "a000003", Occurrence: old, Node: "n1", Start: start},
	}))
	ev := func(seq uint64, typ protocol.EventType, occ string) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, Occurrence: occ, At: start}
	}
	record := func(b protocol.EventBatch, want uint64) {
		t.Helper()
		ack, _, err := events.RecordEvents(ctx, "n1", b, clk.Now())
		must(t, err)
		if ack != want {
			t.Fatalf("ack %d, want %d", ack, want)
		}
	}
	record(protocol.EventBatch{Epoch: "e-old", Events: []protocol.Event{ev(1, protocol.EventReceived, old)}}, 1)
	record(protocol.EventBatch{Epoch: "e-new", Events: []protocol.Event{ev(1, protocol.EventReceived, since)}}, 1)
	record(protocol.EventBatch{Epoch: "e-old", Salvaged: true, Events: []protocol.Event{
		ev(2, protocol.EventStarted, old), ev(3, protocol.EventCompleted, since), ev(4, protocol.EventStarted, never),
	}}, 4)

	ds, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
	must(t, err)
	got := map[string]string{}
	for _, d := range ds {
		got[d.Occurrence] = fmt.Sprintf("%s epoch %q", d.State, d.Epoch)
	}
	want := map[string]string{
		since: fmt.Sprintf("%s epoch %q", loaxa.DeliveryReceived, "e-new"),
		never: fmt.Sprintf("%s epoch %q", loaxa.DeliveryStarted, ""),
		old:   fmt.Sprintf("%s epoch %q", loaxa.DeliveryStarted, "e-old"),
	}
	for occ, w := range want {
		if got[occ] != w {
			t.Errorf("delivery %s: %s, want %s", occ, got[occ], w)
		}
	}
	es, err := events.FindEvents(ctx, loaxa.EventFilter{Node: "n1"})
	must(t, err)
	marked := 0
	for _, e := range es {
		if e.Salvaged != (e.Epoch == "e-old" && e.Seq > 1) {
			t.Errorf("event %s/%d stored with salvaged %v", e.Epoch, e.Seq, e.Salvaged)
		}
		if e.Salvaged {
			marked++
		}
	}
	if len(es) != 5 || marked != 3 {
		t.Errorf("%d events stored, %d marked salvaged; want 5 and 3", len(es), marked)
	}
}

// TestRecordEvents_BatchStoresAsOneByOne: a batch's events move their
// deliveries as the same events sent one batch each do, byte for byte,
// indexes included, though the batch reads and writes each delivery once:
// events of several occurrences interleaved, a dropped announcement's
// received, an alert's report before its plan, and a started that changes
// nothing, whose proof of the content is not stored (a later event of the
// same delivery in the batch must not store it either).
func TestRecordEvents_BatchStoresAsOneByOne(t *testing.T) {
	ctx := context.Background()
	planned := loaxa.OccurrenceID("e000001", t0)
	dropped := loaxa.OccurrenceID("a000007", t0)
	scheduled := loaxa.OccurrenceID("a000008", t0.Add(time.Minute))
	unplanned := loaxa.OccurrenceID("e000002", t0)
	ev := func(seq uint64, typ protocol.EventType, occ string) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, Occurrence: occ, At: t0.Add(time.Duration(seq) * time.Second)}
	}
	evs := []protocol.Event{
		ev(1, protocol.EventReceived, planned),
		ev(2, protocol.EventContentReady, planned),
		ev(3, protocol.EventReceived, dropped),
		ev(4, protocol.EventReceived, scheduled),
		ev(5, protocol.EventStarted, planned),
		ev(6, protocol.EventStarted, unplanned),
		ev(7, protocol.EventStarted, scheduled),
		ev(8, protocol.EventStarted, scheduled), // changes nothing
		ev(9, protocol.EventCompleted, scheduled),
		ev(10, protocol.EventContentReady, unplanned),
		ev(11, protocol.EventCompleted, planned),
	}
	evs[4].LateMS = 40
	evs[5].ContentPending = true
	evs[6].ContentPending = true // the content is still to come…
	evs[9].MessageMS = 2500
	evs[10].PlayedMS = 61000
	records := func(batches [][]protocol.Event) map[string]string {
		db, clk := MustOpenDB(t)
		mustArea(t, db, "hp", "")
		mustNode(t, db, "n1", "hp")
		must(t, bolt.NewDeliveryService(db).EnsureDeliveries(ctx, []*loaxa.Delivery{
			{Announcement: "e000001", Occurrence: planned, Node: "n1", Start: t0, Priority: protocol.PriorityEmergency, PlannedMS: 60000},
			{Announcement: "a000008", Occurrence: scheduled, Node: "n1", Start: t0.Add(time.Minute), Priority: protocol.PriorityNormal, PlannedMS: 30000},
		}))
		s := bolt.NewEventService(db)
		var stored []uint64
		for _, b := range batches {
			ack, fresh, err := s.RecordEvents(ctx, "n1", protocol.EventBatch{Epoch: "e1", Events: b}, clk.Now())
			if want := b[len(b)-1].Seq; err != nil || ack != want {
				t.Fatalf("ack %d, %v; want %d", ack, err, want)
			}
			for _, e := range fresh {
				stored = append(stored, e.Seq)
			}
		}
		if len(stored) != len(evs) {
			t.Errorf("events stored %v, want all %d", stored, len(evs))
		}
		recs, err := bolt.DeliveryRecords(db)
		must(t, err)
		return recs
	}
	var single [][]protocol.Event
	for _, e := range evs {
		single = append(single, []protocol.Event{e})
	}
	want := records(single)
	got := records([][]protocol.Event{evs})
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: stored from one batch\n%s\nwant, as from one batch an event,\n%s", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%q stored from one batch only: %s", k, got[k])
		}
	}
	if len(want) != 3+3 {
		// planned, scheduled and unplanned, each in the by-node index;
		// none open (started or completed)
		t.Errorf("%d records: %v", len(want), want)
	}
}

// BenchmarkRecordEventsRound stores what 10,000 nodes report of one
// emergency round (per op), as the controller's ingest workers do: each
// node's [received, content-ready], then [started], then [completed],
// from 512 callers at once, so that the batches share commits as they do
// in the controller (32 workers, each ingesting the nodes of up to 64
// queued messages concurrently: mqtt.Client.ingestBatch). Before each
// round, untimed, the alert's deliveries are stored and every node's
// status is written to its record, as the status flusher does during a
// round. Besides the time (which the commits' fsyncs set), it reports the
// process's CPU time per round (getrusage), what the ingest costs the
// controller's cores, and the page writes of its commits.
func BenchmarkRecordEventsRound(b *testing.B) {
	const nodes, workers, batches = 10000, 512, 3
	db, ids := seededDB(b, nodes)
	events, deliveries, ns := bolt.NewEventService(db), bolt.NewDeliveryService(db), bolt.NewNodeService(db)
	ctx := context.Background()
	var cpu time.Duration
	var writes int64
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		ann := fmt.Sprintf("e%06d", round+1)
		start := t0.Add(time.Duration(round) * time.Hour)
		occ := loaxa.OccurrenceID(ann, start)
		ds := make([]*loaxa.Delivery, nodes)
		for i, id := range ids {
			ds[i] = &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: start, Priority: protocol.PriorityEmergency, PlannedMS: 60000}
			must(b, ns.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) {
				st.State, st.LastSeen, st.Agent, st.ClockOffsetMS = loaxa.NodeOnline, start, "loaxa-node/1.4.2 linux/arm64", 12
				st.Playing = &protocol.Playing{Occurrence: occ, Content: "c-typhoon", Priority: protocol.PriorityEmergency, Since: start}
			}))
		}
		must(b, deliveries.EnsureDeliveries(ctx, ds))
		must(b, bolt.FlushStatus(db))
		cpu0, writes0 := cpuTime(b), bolt.PageWrites(db)
		b.StartTimer()

		first := uint64(round*4 + 1)
		phases := [][]protocol.Event{
			{{Seq: first, Type: protocol.EventReceived}, {Seq: first + 1, Type: protocol.EventContentReady}},
			{{Seq: first + 2, Type: protocol.EventStarted, LateMS: 3}},
			{{Seq: first + 3, Type: protocol.EventCompleted, PlayedMS: 60000}},
		}
		for k, phase := range phases {
			at := start.Add(time.Duration(k) * time.Second)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < nodes; i += workers {
						evs := slices.Clone(phase)
						for j := range evs {
							evs[j].At, evs[j].Occurrence, evs[j].Announcement, evs[j].Content = at, occ, ann, "c-typhoon"
						}
						ack, stored, err := events.RecordEvents(ctx, ids[i], protocol.EventBatch{Epoch: "e1", Events: evs}, at)
						if want := evs[len(evs)-1].Seq; err != nil || ack != want || len(stored) != len(evs) {
							b.Errorf("%s: ack %d, %d stored, %v; want %d, %d", ids[i], ack, len(stored), err, want, len(evs))
							return
						}
					}
				})
			}
			wg.Wait()
		}
		b.StopTimer()
		cpu += cpuTime(b) - cpu0
		writes += bolt.PageWrites(db) - writes0
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/round")
	b.ReportMetric(float64(writes)/float64(b.N), "page-writes/round")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nodes*batches), "ns/batch")
}
