package bolt_test

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestDesiredService(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	s := bolt.NewDesiredService(db)
	ctx := context.Background()

	_, err := s.FindDesired(ctx, "n1")
	wantCode(t, err, loaxa.ENotFound)

	content := contentID("c")
	state := &protocol.DesiredState{
		Node: "n1", Version: 1, Areas: []string{"hp"}, Generated: clk.Now(), Horizon: clk.Now().Add(48 * time.Hour),
		Occurrences: []protocol.Occurrence{{ID: loaxa.OccurrenceID("a000001", t0), Announcement: "a000001", Content: content, Priority: protocol.PriorityNormal, Start: t0, DurationMS: 1000}},
		Content:     []protocol.ContentRef{{ID: content, Size: 10, DurationMS: 1000, Path: "/api/v1/content/" + content + "/audio"}},
		Config:      protocol.NodeConfig{Volume: 10, LateGraceMS: 60000},
	}
	must(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: state, Hash: "h1"}))
	got, err := s.FindDesired(ctx, "n1")
	must(t, err)
	if got.Hash != "h1" || got.State.Version != 1 || len(got.State.Occurrences) != 1 || !got.State.Occurrences[0].Start.Equal(t0) || !got.Published.IsZero() {
		t.Errorf("stored %+v", got)
	}
	if err := got.State.Validate(); err != nil {
		t.Errorf("stored state no longer validates: %v", err)
	}

	// Saving again replaces it.
	state.Version = 2
	must(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: state, Hash: "h2", Published: clk.Now()}))
	got, err = s.FindDesired(ctx, "n1")
	must(t, err)
	if got.Hash != "h2" || got.State.Version != 2 || !got.Published.Equal(clk.Now()) {
		t.Errorf("after replace %+v", got)
	}

	// The head alone: what the scheduler compares every node's with.
	head, err := s.FindDesiredHead(ctx, "n1")
	must(t, err)
	if want := (loaxa.DesiredHead{Hash: "h2", Version: 2, Published: clk.Now()}); head.Hash != want.Hash || head.Version != want.Version || !head.Published.Equal(want.Published) {
		t.Errorf("head %+v, want %+v", head, want)
	}
	_, err = s.FindDesiredHead(ctx, "n2")
	wantCode(t, err, loaxa.ENotFound)
	// A state saved before heads were kept is read whole.
	must(t, bolt.DropDesiredHead(db, "n1"))
	if head, err = s.FindDesiredHead(ctx, "n1"); err != nil || head.Hash != "h2" || head.Version != 2 || !head.Published.Equal(clk.Now()) {
		t.Errorf("head of a state saved without one: %+v, %v", head, err)
	}

	wantCode(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n9", State: &protocol.DesiredState{Node: "n9"}}), loaxa.ENotFound)
	wantCode(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1"}), loaxa.EInvalid)
	wantCode(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: &protocol.DesiredState{Node: "n2"}}), loaxa.EInvalid)
}
