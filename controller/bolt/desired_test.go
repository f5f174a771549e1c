package bolt_test

import (
	"context"
	"strings"
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

// TestSaveDesiredBatch: the states of a batch are stored in one
// transaction, each with its head (what FindDesiredHead reads, kept in
// step); a state that cannot be stored (its node does not exist, or it is
// invalid) fails alone and the others are stored; a batch that cannot be
// written at all stores none.
func TestSaveDesiredBatch(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	s := bolt.NewDesiredService(db)
	ctx := context.Background()
	state := func(node string, version uint64) *protocol.DesiredState {
		return &protocol.DesiredState{Node: node, Version: version, Areas: []string{"hp"}, Generated: clk.Now(), Horizon: clk.Now().Add(48 * time.Hour),
			Occurrences: []protocol.Occurrence{}, Content: []protocol.ContentRef{}, Config: protocol.NodeConfig{Volume: 10, LateGraceMS: 60000}}
	}
	wantHead := func(node, hash string, version uint64, published time.Time) {
		t.Helper()
		h, err := s.FindDesiredHead(ctx, node)
		must(t, err)
		if h.Hash != hash || h.Version != version || !h.Published.Equal(published) {
			t.Errorf("%s: head %+v, want %s v%d published %v", node, h, hash, version, published)
		}
		d, err := s.FindDesired(ctx, node)
		must(t, err)
		if d.Hash != hash || d.State.Version != version || !d.Published.Equal(published) {
			t.Errorf("%s: stored %s v%d published %v, want %s v%d published %v", node, d.Hash, d.State.Version, d.Published, hash, version, published)
		}
	}

	errs := s.SaveDesiredBatch(ctx, []*loaxa.Desired{
		{Node: "n1", State: state("n1", 1), Hash: "a1"},
		{Node: "n9", State: state("n9", 1), Hash: "x"},  // no such node
		{Node: "n2", State: state("n1", 1), Hash: "x"},  // addressed to another node
		{Node: "n2", Hash: "x"},                         // no state
		{Node: "n2", State: state("n2", 1), Hash: "b1"}, // after the two invalid ones
	})
	if len(errs) != 5 {
		t.Fatalf("%d errors for 5 states", len(errs))
	}
	must(t, errs[0])
	wantCode(t, errs[1], loaxa.ENotFound)
	wantCode(t, errs[2], loaxa.EInvalid)
	wantCode(t, errs[3], loaxa.EInvalid)
	must(t, errs[4])
	wantHead("n1", "a1", 1, time.Time{})
	wantHead("n2", "b1", 1, time.Time{})
	_, err := s.FindDesiredHead(ctx, "n9")
	wantCode(t, err, loaxa.ENotFound)

	// Recording publishes: the heads follow.
	at := clk.Now()
	for i, err := range s.SaveDesiredBatch(ctx, []*loaxa.Desired{
		{Node: "n1", State: state("n1", 1), Hash: "a1", Published: at},
		{Node: "n2", State: state("n2", 2), Hash: "b2", Published: at},
	}) {
		if err != nil {
			t.Errorf("state %d: %v", i, err)
		}
	}
	wantHead("n1", "a1", 1, at)
	wantHead("n2", "b2", 2, at)

	// A batch that cannot be written: every state gets the error and
	// none is stored.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for i, err := range s.SaveDesiredBatch(cancelled, []*loaxa.Desired{
		{Node: "n1", State: state("n1", 3), Hash: "a3"},
		{Node: "n2", State: state("n2", 3), Hash: "b3"},
	}) {
		if err == nil {
			t.Errorf("state %d of a cancelled batch stored", i)
		}
	}
	wantHead("n1", "a1", 1, at)
	wantHead("n2", "b2", 2, at)
	if errs := s.SaveDesiredBatch(ctx, nil); len(errs) != 0 {
		t.Errorf("empty batch: %v", errs)
	}
	// The transaction itself fails (the store is closed): each state,
	// even the valid ones, has that error.
	must(t, db.Close())
	for i, err := range s.SaveDesiredBatch(ctx, []*loaxa.Desired{
		{Node: "n1", State: state("n1", 3), Hash: "a3"},
		{Node: "n2", State: state("n1", 3), Hash: "b3"},
	}) {
		if err == nil || i == 0 && !strings.Contains(err.Error(), "store 1 desired states") {
			t.Errorf("state %d in a closed store: %v, want the transaction's error", i, err)
		}
	}
}

// TestRecordPublished: a publish is recorded in the state's head alone
// (not by encoding its occurrences again), and FindDesired and
// FindDesiredHead both say it; a record for a version since replaced is
// left out; a state written by a version that kept no head (or whose
// head and state were written together, as every earlier version did)
// reads as it did, and takes a record too.
func TestRecordPublished(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	s := bolt.NewDesiredService(db)
	ctx := context.Background()
	state := &protocol.DesiredState{Node: "n1", Version: 1, Areas: []string{"hp"}, Generated: clk.Now(), Horizon: clk.Now().Add(48 * time.Hour),
		Occurrences: []protocol.Occurrence{{ID: loaxa.OccurrenceID("a000001", t0), Announcement: "a000001", Content: contentID("c"), Priority: protocol.PriorityNormal, Start: t0, DurationMS: 1000}},
		Content:     []protocol.ContentRef{}, Config: protocol.NodeConfig{Volume: 10, LateGraceMS: 60000}}
	must(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: state, Hash: "h1"}))
	published := func(want time.Time, what string) {
		t.Helper()
		got, err := s.FindDesired(ctx, "n1")
		must(t, err)
		head, err := s.FindDesiredHead(ctx, "n1")
		must(t, err)
		if !got.Published.Equal(want) || !head.Published.Equal(want) || len(got.State.Occurrences) != 1 || got.State.Version != head.Version {
			t.Errorf("%s: FindDesired published %v (version %d, %d occurrences), head %+v; want published %v",
				what, got.Published, got.State.Version, len(got.State.Occurrences), head, want)
		}
	}
	at := clk.Now().Add(time.Minute)
	for _, err := range s.RecordPublished(ctx, []loaxa.DesiredPublished{{Node: "n1", Version: 1, At: at}}) {
		must(t, err)
	}
	published(at, "recorded")

	// A record of a version replaced since is left out.
	state.Version = 2
	must(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: state, Hash: "h2"}))
	for _, err := range s.RecordPublished(ctx, []loaxa.DesiredPublished{{Node: "n1", Version: 1, At: at.Add(time.Minute)}}) {
		must(t, err)
	}
	published(time.Time{}, "a new state, and a late record of the old one")

	// A store of an earlier version: the head and the state written
	// together, or no head at all.
	old := at.Add(2 * time.Minute)
	must(t, s.SaveDesired(ctx, &loaxa.Desired{Node: "n1", State: state, Hash: "h2", Published: old}))
	published(old, "head and state written together")
	must(t, bolt.DropDesiredHead(db, "n1"))
	published(old, "no head")
	later := old.Add(time.Minute)
	for _, err := range s.RecordPublished(ctx, []loaxa.DesiredPublished{{Node: "n1", Version: 2, At: later}}) {
		must(t, err)
	}
	published(later, "recorded on a state that had no head")

	errs := s.RecordPublished(ctx, []loaxa.DesiredPublished{{Node: "n9", Version: 1, At: later}, {Node: "n1", Version: 2, At: later.Add(time.Minute)}})
	wantCode(t, errs[0], loaxa.ENotFound)
	must(t, errs[1])
	published(later.Add(time.Minute), "recorded beside an unknown node's")
}
