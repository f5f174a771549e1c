package bolt_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// deliveryIDs renders deliveries as "occurrence/node state" for comparison.
func deliveryIDs(ds []*loaxa.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s/%s %s", d.Occurrence, d.Node, d.State))
	}
	return out
}

func TestDeliveryService_EnsureDeliveries(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	s := bolt.NewDeliveryService(db)
	ctx := context.Background()
	occ := loaxa.OccurrenceID("a000001", t0.Add(time.Hour))

	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "a000001", Occurrence: occ, Node: "n1", Start: t0.Add(time.Hour)},
		{Announcement: "a000001", Occurrence: occ, Node: "n2", Start: t0.Add(time.Hour), State: loaxa.DeliveryReceived},
	}))
	ds, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{})
	must(t, err)
	want := []string{occ + "/n1 pending", occ + "/n2 received"}
	if got := deliveryIDs(ds); !slices.Equal(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	if !ds[0].UpdatedAt.Equal(clk.Now()) {
		t.Errorf("UpdatedAt %v, want now %v", ds[0].UpdatedAt, clk.Now())
	}

	// Ensuring again changes nothing that exists, and adds what is missing.
	clk.Advance(time.Minute)
	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "a000001", Occurrence: occ, Node: "n2", Start: t0.Add(time.Hour), State: loaxa.DeliveryPending},
		{Announcement: "a000001", Occurrence: occ, Node: "n1", Start: t0.Add(time.Hour)},
	}))
	ds, err = s.FindDeliveries(ctx, loaxa.DeliveryFilter{})
	must(t, err)
	if got := deliveryIDs(ds); !slices.Equal(got, want) {
		t.Fatalf("deliveries after a second ensure %q, want %q", got, want)
	}

	tests := []struct {
		name string
		d    loaxa.Delivery
	}{
		{"unknown node", loaxa.Delivery{Announcement: "a000001", Occurrence: occ, Node: "n9"}},
		{"no node", loaxa.Delivery{Announcement: "a000001", Occurrence: occ}},
		{"no occurrence", loaxa.Delivery{Announcement: "a000001", Node: "n1"}},
		{"occurrence of another announcement", loaxa.Delivery{Announcement: "a000002", Occurrence: occ, Node: "n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid new delivery in the same call is not stored either.
			other := loaxa.OccurrenceID("a000001", t0.Add(2*time.Hour))
			wantCode(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{
				{Announcement: "a000001", Occurrence: other, Node: "n1"}, &tt.d,
			}), loaxa.EInvalid)
			ds, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{})
			must(t, err)
			if len(ds) != 2 {
				t.Errorf("%d deliveries after a failed ensure, want 2", len(ds))
			}
		})
	}
}

func TestDeliveryService_FindDeliveries(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	for _, n := range []string{"n1", "n2", "n3"} {
		mustNode(t, db, n, "hp")
	}
	s := bolt.NewDeliveryService(db)
	ctx := context.Background()

	// a000001 plays twice, on n1 and n2; a000002 once on n2 and n3. The id
	// a0000010 starts with a000001, and its deliveries must not leak into
	// a000001's prefix scan.
	var ds []*loaxa.Delivery
	add := func(ann string, start time.Time, nodes ...string) string {
		occ := loaxa.OccurrenceID(ann, start)
		for _, n := range nodes {
			ds = append(ds, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: n, Start: start})
		}
		return occ
	}
	late := add("a000001", t0.Add(24*time.Hour), "n2", "n1")
	early := add("a000001", t0, "n1", "n2")
	second := add("a000002", t0.Add(time.Hour), "n3", "n2")
	prefixed := add("a0000010", t0.Add(2*time.Hour), "n1")
	must(t, s.EnsureDeliveries(ctx, ds))

	tests := []struct {
		name   string
		filter loaxa.DeliveryFilter
		want   []string
	}{
		{"all", loaxa.DeliveryFilter{}, []string{early + "/n1", early + "/n2", second + "/n2", second + "/n3", prefixed + "/n1", late + "/n1", late + "/n2"}},
		{"announcement", loaxa.DeliveryFilter{Announcement: "a000001"}, []string{early + "/n1", early + "/n2", late + "/n1", late + "/n2"}},
		{"node", loaxa.DeliveryFilter{Node: "n2"}, []string{early + "/n2", second + "/n2", late + "/n2"}},
		{"announcement and node", loaxa.DeliveryFilter{Announcement: "a000001", Node: "n1"}, []string{early + "/n1", late + "/n1"}},
		{"unknown announcement", loaxa.DeliveryFilter{Announcement: "a000009"}, nil},
		{"unknown node", loaxa.DeliveryFilter{Node: "n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := s.FindDeliveries(ctx, tt.filter)
			must(t, err)
			var got []string
			for _, d := range ds {
				got = append(got, d.Occurrence+"/"+d.Node)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("deliveries\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestDeliveryService_ReceiptsAndResends: a delivery keeps when the node
// first reported having the occurrence (from whichever event came first)
// and counts the controller's resends, of the occurrence and of its
// cancel; all survive reopening the store.
func TestDeliveryService_ReceiptsAndResends(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	s, events := bolt.NewDeliveryService(db), bolt.NewEventService(db)
	ctx := context.Background()
	occ := loaxa.OccurrenceID("e000001", t0)
	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "e000001", Occurrence: occ, Node: "n1", Start: t0},
		{Announcement: "e000001", Occurrence: occ, Node: "n2", Start: t0},
	}))
	must(t, s.NoteResends(ctx, occ, []string{"n2", "n9"}, t0.Add(2*time.Second)))
	must(t, s.NoteResends(ctx, occ, []string{"n2"}, t0.Add(4*time.Second)))
	must(t, s.NoteCancelResends(ctx, occ, []string{"n1", "n9"}, t0.Add(6*time.Second)))
	// n1's started event comes before its received event (a later batch).
	record := func(node string, seq uint64, typ protocol.EventType, at time.Time) {
		t.Helper()
		ev := protocol.Event{Seq: seq, Type: typ, At: at, Occurrence: occ}
		if _, _, err := events.RecordEvents(ctx, node, protocol.EventBatch{Epoch: "ep", Events: []protocol.Event{ev}}, clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	record("n1", 1, protocol.EventContentReady, t0.Add(300*time.Millisecond))
	record("n1", 2, protocol.EventReceived, t0.Add(100*time.Millisecond))
	record("n2", 1, protocol.EventReceived, t0.Add(5*time.Second))

	ds, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: "e000001"})
	must(t, err)
	got := map[string]*loaxa.Delivery{}
	for _, d := range ds {
		got[d.Node] = d
	}
	if d := got["n1"]; !d.ReceivedAt.Equal(t0.Add(300*time.Millisecond)) || d.Resends != 0 || d.State != loaxa.DeliveryReceived {
		t.Errorf("n1: received at %v, %d resends, %s; want the first event's time, none, received", d.ReceivedAt, d.Resends, d.State)
	}
	if d := got["n2"]; !d.ReceivedAt.Equal(t0.Add(5*time.Second)) || d.Resends != 2 || !d.ResentAt.Equal(t0.Add(4*time.Second)) {
		t.Errorf("n2: received at %v, %d resends, last at %v", d.ReceivedAt, d.Resends, d.ResentAt)
	}
	if d1, d2 := got["n1"], got["n2"]; d1.CancelResends != 1 || !d1.CancelResentAt.Equal(t0.Add(6*time.Second)) || d2.CancelResends != 0 {
		t.Errorf("cancel resends: n1 %d, last at %v; n2 %d; want 1 at 6 s, 0", d1.CancelResends, d1.CancelResentAt, d2.CancelResends)
	}
	if err := s.NoteResends(ctx, "e000001", []string{"n1"}, t0); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("NoteResends with a bad occurrence id: %v, want invalid", err)
	}
	if err := s.NoteCancelResends(ctx, "e000001", []string{"n1"}, t0); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("NoteCancelResends with a bad occurrence id: %v, want invalid", err)
	}
}

// TestFindDeliveriesOfAnnouncementSeesChanges: the deliveries of an
// announcement are read again and again (an emergency's report) and kept
// decoded between reads; every change shows in the next read, and what a
// caller does to the deliveries it got changes nothing stored or read
// later.
func TestFindDeliveriesOfAnnouncementSeesChanges(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	s := bolt.NewDeliveryService(db)
	ctx := context.Background()
	occ := loaxa.OccurrenceID("e000001", t0.Add(time.Minute))
	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: "e000001", Occurrence: occ, Node: "n1", Start: t0.Add(time.Minute)},
		{Announcement: "e000001", Occurrence: occ, Node: "n2", Start: t0.Add(time.Minute)},
	}))
	read := func() []*loaxa.Delivery {
		t.Helper()
		ds, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: "e000001"})
		must(t, err)
		if len(ds) != 2 {
			t.Fatalf("%d deliveries, want 2", len(ds))
		}
		return ds
	}
	first := read()
	first[0].Resends = 99 // the caller's copy
	must(t, s.NoteResends(ctx, occ, []string{"n2"}, t0.Add(2*time.Minute)))
	again := read()
	if again[0].Resends != 0 || again[1].Resends != 1 || !again[1].ResentAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("after a resend to n2: n1 %d resends, n2 %d at %v; want 0, and 1 at %v",
			again[0].Resends, again[1].Resends, again[1].ResentAt, t0.Add(2*time.Minute))
	}
	if again[0] == first[0] {
		t.Error("two reads returned the same delivery value")
	}
}

// TestDropDeliveries: a schedule change drops a node's pending and received
// deliveries that are no longer planned and could still play, a due one
// waiting its turn included; what is kept, started, final, over, an
// emergency's or another node's stays. A delivery that moved on (an event)
// after it was stored is judged by its state now. Several nodes are
// dropped in one call, each by its own keep.
func TestDropDeliveries(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	mustNode(t, db, "n3", "hp")
	s, events := bolt.NewDeliveryService(db), bolt.NewEventService(db)
	ctx := context.Background()
	now := clk.Now()
	at := func(ann string, d time.Duration, node string, state loaxa.DeliveryState) *loaxa.Delivery {
		start := now.Add(d)
		return &loaxa.Delivery{Announcement: ann, Occurrence: loaxa.OccurrenceID(ann, start), Node: node,
			Start: start, State: state, PlannedMS: 5 * 60_000}
	}
	var (
		future   = at("a000001", time.Hour, "n1", loaxa.DeliveryPending)
		received = at("a000001", 2*time.Hour, "n1", loaxa.DeliveryReceived)
		kept     = at("a000002", time.Hour, "n1", loaxa.DeliveryPending)
		due      = at("a000003", -8*time.Minute, "n1", loaxa.DeliveryPending) // its 5 min and 10 min of grace not over
		over     = at("a000003", -24*time.Hour, "n1", loaxa.DeliveryPending)
		started  = at("a000004", -time.Minute, "n1", loaxa.DeliveryStarted)
		final    = at("a000004", time.Hour, "n1", loaxa.DeliveryFailed)
		alert    = at("e000001", time.Minute, "n1", loaxa.DeliveryPending)
		other    = at("a000001", time.Hour, "n2", loaxa.DeliveryPending)
		playing  = at("a000005", -time.Minute, "n1", loaxa.DeliveryPending) // started since it was stored
		third    = at("a000001", time.Hour, "n3", loaxa.DeliveryPending)
		thirdKey = at("a000002", time.Hour, "n3", loaxa.DeliveryPending)
	)
	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{future, received, kept, due, over, started, final, alert, other, playing, third, thirdKey}))
	if _, _, err := events.RecordEvents(ctx, "n1", protocol.EventBatch{Epoch: "ep", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventStarted, At: now, Occurrence: playing.Occurrence},
	}}, now); err != nil {
		t.Fatal(err)
	}
	must(t, s.DropDeliveries(ctx, map[string]map[string]bool{"n1": {kept.Occurrence: true}, "n3": {thirdKey.Occurrence: true}}, now, 10*time.Minute))
	got, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{})
	must(t, err)
	var want []string
	for _, d := range []*loaxa.Delivery{over, started, playing, alert, kept, final, other, thirdKey} {
		want = append(want, d.Occurrence+"/"+d.Node)
	}
	slices.Sort(want)
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Occurrence+"/"+d.Node)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Errorf("deliveries after the drop\n%q\nwant\n%q", ids, want)
	}
}

// BenchmarkFindDeliveriesOfAnnouncement reads the 10,000 deliveries of one
// emergency, as its report does each time it is built (per op: all of
// them), with one in a hundred changed between reads.
func BenchmarkFindDeliveriesOfAnnouncement(b *testing.B) {
	const nodes = 10000
	db, ids := seededDB(b, nodes)
	s := bolt.NewDeliveryService(db)
	ctx := context.Background()
	occ := loaxa.OccurrenceID("e000001", t0.Add(time.Minute))
	ds := make([]*loaxa.Delivery, nodes)
	for i, id := range ids {
		ds[i] = &loaxa.Delivery{Announcement: "e000001", Occurrence: occ, Node: id, Start: t0.Add(time.Minute), Priority: protocol.PriorityEmergency}
	}
	must(b, s.EnsureDeliveries(ctx, ds))
	i := 0
	for b.Loop() {
		b.StopTimer()
		must(b, s.NoteResends(ctx, occ, ids[i%100*100:i%100*100+100], t0.Add(time.Duration(i)*time.Second)))
		i++
		b.StartTimer()
		if got, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: "e000001"}); err != nil || len(got) != nodes {
			b.Fatal(err, len(got))
		}
	}
}

// BenchmarkDropDeliveriesWithHistory is one schedule change of a commune
// a year on (per op): the scheduler drops the cancelled occurrences of its
// 100 nodes, in one call as a pass does, each of which holds 3,000 past
// deliveries (ten daily bulletins for 300 days) and a week of pending
// ones, three of them cancelled.
func BenchmarkDropDeliveriesWithHistory(b *testing.B) {
	const (
		nodes         = 100
		announcements = 10
		pastDays      = 300
		futureDays    = 7
		cancelled     = 3
	)
	db, ids := seededDB(b, nodes)
	s := bolt.NewDeliveryService(db)
	ctx := context.Background()
	now := t0.Add(pastDays * 24 * time.Hour)
	var future []*loaxa.Delivery // of one node
	keep := make(map[string]bool)
	for i, id := range ids {
		var ds []*loaxa.Delivery
		for a := range announcements {
			ann := fmt.Sprintf("a%06d", a)
			for day := range pastDays + futureDays {
				start := t0.Add(time.Duration(day)*24*time.Hour + time.Duration(a)*5*time.Minute)
				d := &loaxa.Delivery{Announcement: ann, Occurrence: loaxa.OccurrenceID(ann, start), Node: id,
					Start: start, State: loaxa.DeliveryCompleted, PlannedMS: 180_000}
				if day >= pastDays {
					d.State = loaxa.DeliveryPending
					if i == 0 {
						future = append(future, d)
						keep[d.Occurrence] = a != 0 || day >= pastDays+cancelled
					}
				}
				ds = append(ds, d)
			}
		}
		must(b, s.EnsureDeliveries(ctx, ds))
	}
	var dropped []*loaxa.Delivery
	keeps := make(map[string]map[string]bool, len(ids))
	for _, id := range ids {
		keeps[id] = keep
		for _, d := range future {
			if !keep[d.Occurrence] {
				c := *d
				c.Node = id
				dropped = append(dropped, &c)
			}
		}
	}
	for b.Loop() {
		b.StopTimer()
		must(b, s.EnsureDeliveries(ctx, dropped))
		b.StartTimer()
		must(b, s.DropDeliveries(ctx, keeps, now, time.Minute))
	}
	b.StopTimer()
	left, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: ids[0], From: now})
	must(b, err)
	if want := announcements*futureDays - cancelled; len(left) != want {
		b.Fatalf("%d future deliveries left on %s, want %d", len(left), ids[0], want)
	}
}

// BenchmarkReportDuringRound is an emergency's report built again while
// its round goes on (per op, timed: one FindDeliveries of the
// announcement's 10,000 deliveries). Before it, untimed, the report was
// built once (the live board's previous poll) and every node then reported
// the alert received (RecordEvents), so every delivery changed since.
func BenchmarkReportDuringRound(b *testing.B) { benchmarkReportDuringRound(b, time.UTC) }

// BenchmarkReportDuringRoundICT is BenchmarkReportDuringRound on a
// controller whose clock is in Vietnam's zone, as an emergency's start
// then is: the stored start, in +07:00, does not decode to UTC, so the
// delivery cache takes none of the ingest's writes (keptByJSON) and the
// report decodes every delivery the round changed.
func BenchmarkReportDuringRoundICT(b *testing.B) {
	benchmarkReportDuringRound(b, time.FixedZone("ICT", 7*3600))
}

func benchmarkReportDuringRound(b *testing.B, zone *time.Location) {
	const nodes = 10000
	db, ids := seededDB(b, nodes)
	events, deliveries := bolt.NewEventService(db), bolt.NewDeliveryService(db)
	ctx := context.Background()
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		ann := fmt.Sprintf("e%06d", round)
		start := t0.Add(time.Duration(round) * time.Hour).In(zone)
		occ := loaxa.OccurrenceID(ann, start)
		ds := make([]*loaxa.Delivery, nodes)
		for i, id := range ids {
			ds[i] = &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: start, Priority: protocol.PriorityEmergency, PlannedMS: 60000}
		}
		must(b, deliveries.EnsureDeliveries(ctx, ds))
		if got, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann}); err != nil || len(got) != nodes {
			b.Fatal(err, len(got))
		}
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < nodes; i += 64 {
					ev := protocol.Event{Seq: uint64(round), Type: protocol.EventReceived, At: start, Occurrence: occ, Announcement: ann}
					if _, _, err := events.RecordEvents(ctx, ids[i], protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{ev}}, start); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StartTimer()
		got, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann})
		if err != nil || len(got) != nodes || got[0].State != loaxa.DeliveryReceived {
			b.Fatal(err, len(got))
		}
	}
}

// TestDropDeliveriesKeepsALiveCall: a live call's deliveries are the
// call's, not the scheduler's, which never holds them among a node's
// occurrences. A schedule change for the call's nodes in its first
// minutes (a bulletin saved for the commune, the node's first desired
// state) dropped them: the node's later reports made an unplanned
// delivery, no longer marked drill (TestLiveDrillMarked saw drill false
// on a completed drill call), and a node still pending left the call's
// report, and was not sent the call when it came online.
func TestDropDeliveriesKeepsALiveCall(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	s, events := bolt.NewDeliveryService(db), bolt.NewEventService(db)
	ctx := context.Background()
	now := clk.Now()
	const call = "live-0001"
	plan := func(node string) *loaxa.Delivery {
		return &loaxa.Delivery{Announcement: call, Occurrence: call, Node: node, Start: now, Priority: protocol.PriorityHigh, Drill: true}
	}
	must(t, s.EnsureDeliveries(ctx, []*loaxa.Delivery{plan("n1"), plan("n2")}))
	report := func(seq uint64, typ protocol.EventType) {
		t.Helper()
		b := protocol.EventBatch{Epoch: "ep", Events: []protocol.Event{{Seq: seq, Type: typ, At: now, Occurrence: call, Announcement: call, Drill: true}}}
		if _, _, err := events.RecordEvents(ctx, "n1", b, now); err != nil {
			t.Fatal(err)
		}
	}
	// n1 heard the start; n2 is offline, its delivery pending.
	report(1, protocol.EventReceived)
	must(t, s.DropDeliveries(ctx, map[string]map[string]bool{"n1": {}, "n2": {}}, now.Add(time.Second), 10*time.Minute))
	report(2, protocol.EventStarted)
	report(3, protocol.EventCompleted)

	got, err := s.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: call})
	must(t, err)
	byNode := map[string]*loaxa.Delivery{}
	for _, d := range got {
		byNode[d.Node] = d
	}
	for node, state := range map[string]loaxa.DeliveryState{"n1": loaxa.DeliveryCompleted, "n2": loaxa.DeliveryPending} {
		d := byNode[node]
		switch {
		case d == nil:
			t.Errorf("%s's delivery of the call is gone after a schedule change (left: %q)", node, deliveryIDs(got))
		case !d.Drill || d.Unplanned || d.Priority != protocol.PriorityHigh || d.State != state:
			t.Errorf("%s's delivery %+v: want %s with its plan kept (drill, not unplanned, priority)", node, d, state)
		}
	}
}
