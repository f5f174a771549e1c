package bolt_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func liveCallIDs(cs []*loaxa.LiveCall) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestLiveCallService(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewLiveCallService(db)
	ctx := context.Background()
	// Ids are random, so the order comes from the starts, not the ids.
	for i, id := range []string{"live-c", "live-a", "live-b"} {
		must(t, s.CreateLiveCall(ctx, &loaxa.LiveCall{ID: id, CreatedBy: "an", Areas: []string{"31"},
			Priority: protocol.PriorityHigh, Started: t0.Add(time.Duration(i) * time.Minute)}))
	}
	wantCode(t, s.CreateLiveCall(ctx, &loaxa.LiveCall{ID: "live-a", Started: t0}), loaxa.EConflict)
	wantCode(t, s.CreateLiveCall(ctx, &loaxa.LiveCall{ID: "a000001", Started: t0}), loaxa.EInvalid)
	wantCode(t, s.CreateLiveCall(ctx, &loaxa.LiveCall{ID: "live-d"}), loaxa.EInvalid)

	ended, err := s.UpdateLiveCall(ctx, "live-a", func(c *loaxa.LiveCall) error {
		c.Ended, c.EndReason, c.CutBy, c.FramesSent = t0.Add(2*time.Minute), loaxa.LiveEndCut, "binh", 75
		c.Started = t0.Add(time.Hour) // ignored: the start makes the key
		return nil
	})
	must(t, err)
	if !ended.Started.Equal(t0.Add(time.Minute)) || ended.CutBy != "binh" || ended.Active() {
		t.Fatalf("updated call %+v", ended)
	}
	got, err := s.FindLiveCallByID(ctx, "live-a")
	must(t, err)
	if got.EndReason != loaxa.LiveEndCut || got.FramesSent != 75 || got.CutBy != "binh" {
		t.Errorf("stored call %+v, want the update", got)
	}
	_, err = s.FindLiveCallByID(ctx, "live-zz")
	wantCode(t, err, loaxa.ENotFound)
	_, err = s.UpdateLiveCall(ctx, "live-zz", func(*loaxa.LiveCall) error { return nil })
	wantCode(t, err, loaxa.ENotFound)

	for _, tt := range []struct {
		f    loaxa.LiveCallFilter
		want []string
	}{
		{loaxa.LiveCallFilter{}, []string{"live-b", "live-a", "live-c"}},
		{loaxa.LiveCallFilter{Limit: 2}, []string{"live-b", "live-a"}},
		{loaxa.LiveCallFilter{Active: true}, []string{"live-b", "live-c"}},
		{loaxa.LiveCallFilter{Active: true, Limit: 1}, []string{"live-b"}},
	} {
		cs, err := s.FindLiveCalls(ctx, tt.f)
		must(t, err)
		if got := liveCallIDs(cs); !slices.Equal(got, tt.want) {
			t.Errorf("FindLiveCalls(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// A live call's deliveries are keyed by the call id, its own occurrence;
// the nodes' events move them and carry the frame counts.
func TestLiveCallDeliveries(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	ds, es := bolt.NewDeliveryService(db), bolt.NewEventService(db)
	ctx := context.Background()
	const call = "live-0123456789abcdef"
	wantCode(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{{Announcement: call, Occurrence: call + "@x", Node: "n1"}}), loaxa.EInvalid)
	must(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: call, Occurrence: call, Node: "n1", Start: t0, Priority: protocol.PriorityHigh},
		{Announcement: call, Occurrence: call, Node: "n2", Start: t0, Priority: protocol.PriorityHigh},
	}))
	ev := func(seq uint64, typ protocol.EventType) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: t0.Add(time.Duration(seq) * time.Second), Occurrence: call, Announcement: call}
	}
	done := ev(3, protocol.EventCompleted)
	done.Reason, done.PlayedMS, done.FramesPlayed, done.FramesLost, done.FramesLate = protocol.ReasonCut, 3000, 70, 3, 1
	if _, _, err := es.RecordEvents(ctx, "n1", protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
		ev(1, protocol.EventReceived), ev(2, protocol.EventStarted), done,
	}}, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	failed := ev(1, protocol.EventFailed)
	failed.Reason = protocol.ReasonStream
	if _, _, err := es.RecordEvents(ctx, "n2", protocol.EventBatch{Epoch: "e2", Events: []protocol.Event{failed}}, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: call})
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("deliveries %q, want n1 and n2", deliveryIDs(got))
	}
	n1, n2 := got[0], got[1]
	if n1.State != loaxa.DeliveryCompleted || n1.Reason != protocol.ReasonCut || n1.PlayedMS != 3000 ||
		n1.FramesPlayed != 70 || n1.FramesLost != 3 || n1.FramesLate != 1 {
		t.Errorf("n1 delivery %+v, want completed (cut) with 70 played, 3 lost, 1 late", *n1)
	}
	if n2.State != loaxa.DeliveryFailed || n2.Reason != protocol.ReasonStream {
		t.Errorf("n2 delivery %+v, want failed (stream)", *n2)
	}
	// A started call is not "failed to sound" while it may still run.
	n1.State = loaxa.DeliveryStarted
	n1.CheckSilence(t0.Add(time.Hour), loaxa.SilenceBound)
	if n1.FailedToSound {
		t.Error("a live call started an hour ago is flagged failed to sound")
	}
}

// TestFindLiveCallsReadsOnlyWhatItNeeds: the calls on air, and those
// started since a time, were found by decoding every call record, a
// province's year of them at each start of the controller (and each
// listing of the calls on air). Older records, and those ended, must not
// be read: one that does not decode stands in the way of nothing.
func TestFindLiveCallsReadsOnlyWhatItNeeds(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewLiveCallService(db)
	ctx := context.Background()
	call := func(id string, started time.Duration, ended bool) {
		t.Helper()
		c := &loaxa.LiveCall{ID: id, CreatedBy: "an", Areas: []string{"31"}, Priority: protocol.PriorityHigh, Started: t0.Add(started)}
		must(t, s.CreateLiveCall(ctx, c))
		if ended {
			_, err := s.UpdateLiveCall(ctx, id, func(c *loaxa.LiveCall) error {
				c.Ended, c.EndReason = c.Started.Add(10*time.Minute), loaxa.LiveEndSpeakerStopped
				return nil
			})
			must(t, err)
		}
	}
	call("live-old", -365*24*time.Hour, true)
	call("live-left", -30*24*time.Hour, false) // left on air by a crash
	call("live-week", -7*24*time.Hour, true)
	call("live-hour", -time.Hour, true)
	call("live-now", 0, false)
	for _, id := range []string{"live-old", "live-week"} {
		repair, err := bolt.DamageLiveCall(db, id)
		must(t, err)
		defer func() { must(t, repair()) }()
	}
	if _, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{}); err == nil {
		t.Fatal("every call found with two records damaged: the test would not see them read")
	}
	for _, tt := range []struct {
		f    loaxa.LiveCallFilter
		want []string
	}{
		{loaxa.LiveCallFilter{Active: true}, []string{"live-now", "live-left"}},
		{loaxa.LiveCallFilter{Since: t0.Add(-2 * time.Hour)}, []string{"live-now", "live-hour"}},
		{loaxa.LiveCallFilter{Since: t0.Add(-2 * time.Hour), Active: true}, []string{"live-now"}},
		{loaxa.LiveCallFilter{Since: t0.Add(-time.Hour)}, []string{"live-now", "live-hour"}},
		{loaxa.LiveCallFilter{Limit: 1}, []string{"live-now"}},
	} {
		cs, err := s.FindLiveCalls(ctx, tt.f)
		if err != nil {
			t.Errorf("FindLiveCalls(%+v): %v", tt.f, err)
			continue
		}
		if got := liveCallIDs(cs); !slices.Equal(got, tt.want) {
			t.Errorf("FindLiveCalls(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// BenchmarkLiveCallsReadAtStart is what a controller's start reads of a
// year of live calls (20,000: a province's hundred communes speaking live
// a few times a week), one of them left on air: "every record" is what
// each of its two look-ups read before (the calls on air, and those ended
// in the last 2 h), "on air and lately" both look-ups as they are now.
func BenchmarkLiveCallsReadAtStart(b *testing.B) {
	const year = 20000
	db, _ := MustOpenDB(b)
	calls := make([]*loaxa.LiveCall, year)
	for i := range calls {
		started := t0.Add(-time.Duration(i) * (365 * 24 * time.Hour / year))
		calls[i] = &loaxa.LiveCall{ID: fmt.Sprintf("live-%016d", i), CreatedBy: "can-bo-phat", Areas: []string{"12346"},
			Priority: protocol.PriorityHigh, Title: "Phòng chống bão số 3", Nodes: 25, Started: started,
			Ended: started.Add(12 * time.Minute), EndReason: loaxa.LiveEndSpeakerStopped, FramesSent: 12000, Bytes: 23040000}
	}
	calls[year/2].Ended, calls[year/2].EndReason = time.Time{}, ""
	must(b, bolt.SeedLiveCalls(db, calls))
	s := bolt.NewLiveCallService(db)
	ctx := context.Background()
	b.Run("every record", func(b *testing.B) {
		for b.Loop() {
			if cs, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{}); err != nil || len(cs) != year {
				b.Fatal(err, len(cs))
			}
		}
	})
	b.Run("on air and lately", func(b *testing.B) {
		for b.Loop() {
			open, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{Active: true})
			if err != nil || len(open) != 1 {
				b.Fatal(err, len(open))
			}
			lately, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{Since: t0.Add(-5 * time.Hour)})
			if err != nil || len(lately) != 12 {
				b.Fatal(err, len(lately))
			}
		}
	})
}
