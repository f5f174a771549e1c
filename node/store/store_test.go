package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// impl opens a store and reopens it as a restarted agent would see it.
type impl struct {
	name   string
	open   func(t *testing.T) agent.Store
	reopen func(t *testing.T, s agent.Store) agent.Store
}

func impls() []impl {
	return []impl{
		{
			name: "bolt",
			open: func(t *testing.T) agent.Store {
				s, err := OpenBolt(filepath.Join(t.TempDir(), "node.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { checkBolt(t, s); s.Close() })
				return s
			},
			reopen: func(t *testing.T, s agent.Store) agent.Store {
				b := s.(*Bolt)
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				nb, err := OpenBolt(b.Path())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { checkBolt(t, nb); nb.Close() })
				return nb
			},
		},
		{
			name: "memory",
			open: func(t *testing.T) agent.Store {
				m := NewMemory()
				t.Cleanup(func() { checkOutbox(t, m) })
				return m
			},
			reopen: func(t *testing.T, s agent.Store) agent.Store { return s },
		},
	}
}

// checkOutbox checks the outbox invariant: the stored events are exactly
// Acked+1 … Last, in order.
func checkOutbox(t *testing.T, s agent.Store) {
	t.Helper()
	o, err := s.Outbox()
	if err != nil {
		t.Errorf("invariant: %v", err)
		return
	}
	got := mustEvents(t, s, 0, 1<<30)
	for i, seq := range got {
		if seq != o.Acked+uint64(i)+1 {
			t.Errorf("invariant: outbox %+v holds sequences %v", o, got)
			return
		}
	}
	if uint64(len(got)) != o.Last-o.Acked {
		t.Errorf("invariant: outbox %+v holds %d events", o, len(got))
	}
}

// checkBolt checks the bbolt file's own consistency and the outbox.
func checkBolt(t *testing.T, s *Bolt) {
	t.Helper()
	if s.db.Path() == "" {
		return // closed by reopen
	}
	checkOutbox(t, s)
	if err := s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drain: the checker goroutine sends until done
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}); err != nil {
		t.Errorf("invariant: bbolt check: %v", err)
	}
}

// TestStore runs the one behaviour suite against every implementation.
func TestStore(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Run("epoch", func(t *testing.T) { testEpoch(t, im) })
			t.Run("desired", func(t *testing.T) { testDesired(t, im) })
			t.Run("outbox", func(t *testing.T) { testOutbox(t, im) })
			t.Run("progress", func(t *testing.T) { testProgress(t, im) })
			t.Run("replay", func(t *testing.T) { testReplay(t, im) })
			t.Run("keys", func(t *testing.T) { testKeys(t, im) })
			t.Run("clock floor", func(t *testing.T) { testClockFloor(t, im) })
			t.Run("alerts", func(t *testing.T) { testAlerts(t, im) })
			t.Run("salvaged", func(t *testing.T) { testSalvaged(t, im) })
			t.Run("keep", func(t *testing.T) { testKeep(t, im) })
		})
	}
}

var t0 = time.Date(2025, 3, 1, 5, 30, 0, 0, time.UTC)

func testEpoch(t *testing.T, im impl) {
	s := im.open(t)
	e := s.Epoch()
	if len(e) != 16 {
		t.Fatalf("epoch %q: want 16 hex digits", e)
	}
	if got := im.reopen(t, s).Epoch(); got != e {
		t.Fatalf("epoch after reopen = %q, want %q", got, e)
	}
	if other := im.open(t).Epoch(); other == e {
		t.Fatalf("two new stores share epoch %q", e)
	}
}

func testDesired(t *testing.T, im impl) {
	s := im.open(t)
	d, err := s.Desired()
	if err != nil || d != nil {
		t.Fatalf("Desired() of a new store = %v, %v; want nil, nil", d, err)
	}
	want := &protocol.DesiredState{
		Node: "n1", Version: 7, Areas: []string{"x1", "p1"},
		Occurrences: []protocol.Occurrence{{ID: "a@1", Announcement: "a", Content: "c", Priority: protocol.PriorityNormal, Start: t0}},
	}
	if err := s.SetDesired(want); err != nil {
		t.Fatal(err)
	}
	want.Version = 99 // the store must not share the caller's value
	s = im.reopen(t, s)
	got, err := s.Desired()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 7 || got.Node != "n1" || !slices.Equal(got.Areas, []string{"x1", "p1"}) || len(got.Occurrences) != 1 || !got.Occurrences[0].Start.Equal(t0) {
		t.Fatalf("Desired() = %+v", got)
	}
}

func events(types ...protocol.EventType) []protocol.Event {
	out := make([]protocol.Event, len(types))
	for i, ty := range types {
		out[i] = protocol.Event{Type: ty, At: t0, Occurrence: fmt.Sprintf("o%d", i)}
	}
	return out
}

func seqs(es []protocol.Event) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func mustEvents(t *testing.T, s agent.Store, after uint64, limit int) []uint64 {
	t.Helper()
	es, err := s.Events(after, limit)
	if err != nil {
		t.Fatal(err)
	}
	return seqs(es)
}

func mustOutbox(t *testing.T, s agent.Store) agent.Outbox {
	t.Helper()
	o, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func testOutbox(t *testing.T, im impl) {
	s := im.open(t)
	if o := mustOutbox(t, s); o != (agent.Outbox{}) || o.Len() != 0 {
		t.Fatalf("new outbox = %+v", o)
	}
	got, err := s.Append(events(protocol.EventReceived, protocol.EventReceived, protocol.EventStarted), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(got), []uint64{1, 2, 3}) || got[2].Type != protocol.EventStarted {
		t.Fatalf("Append returned %+v", got)
	}
	if _, err := s.Append(events(protocol.EventCompleted, protocol.EventMissed), nil); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	if o := mustOutbox(t, s); o != (agent.Outbox{Acked: 0, Last: 5}) || o.Len() != 5 {
		t.Fatalf("outbox = %+v, want 0..5", o)
	}
	for _, c := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 100, []uint64{1, 2, 3, 4, 5}},
		{0, 2, []uint64{1, 2}},
		{3, 100, []uint64{4, 5}},
		{5, 100, nil},
		{9, 100, nil},
		{0, 0, nil},
	} {
		if got := mustEvents(t, s, c.after, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("Events(%d, %d) = %v, want %v", c.after, c.limit, got, c.want)
		}
	}
	es, _ := s.Events(3, 1)
	if es[0].Type != protocol.EventCompleted || !es[0].At.Equal(t0) || es[0].Occurrence != "o0" {
		t.Errorf("event 4 = %+v", es[0])
	}

	// Acks: another epoch changes nothing; going back changes nothing.
	if err := s.Ack("0000000000000000", 5); !errors.Is(err, agent.ErrEpoch) {
		t.Fatalf("Ack(other epoch) = %v, want ErrEpoch", err)
	}
	if err := s.Ack(s.Epoch(), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(s.Epoch(), 1); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	if o := mustOutbox(t, s); o != (agent.Outbox{Acked: 2, Last: 5}) || o.Len() != 3 {
		t.Fatalf("outbox after ack 2 = %+v", o)
	}
	if got := mustEvents(t, s, 0, 100); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("Events after ack 2 = %v", got)
	}
	// Sequences keep counting after acks, across reopen, without gaps.
	got, err = s.Append(events(protocol.EventReceived), nil)
	if err != nil || got[0].Seq != 6 {
		t.Fatalf("Append after ack = %v, %v; want seq 6", seqs(got), err)
	}
	// An ack past the end drops everything and is clamped.
	if err := s.Ack(s.Epoch(), 1000); err != nil {
		t.Fatal(err)
	}
	if o := mustOutbox(t, s); o != (agent.Outbox{Acked: 6, Last: 6}) {
		t.Fatalf("outbox after ack 1000 = %+v", o)
	}
	got, _ = s.Append(events(protocol.EventReceived), nil)
	if got[0].Seq != 7 {
		t.Fatalf("seq after full ack = %d, want 7", got[0].Seq)
	}
	if got := mustEvents(t, s, 0, 100); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("Events = %v, want [7]", got)
	}
}

func testProgress(t *testing.T, im impl) {
	s := im.open(t)
	if p, err := s.Progress(); err != nil || len(p) != 0 {
		t.Fatalf("Progress() of new store = %v, %v", p, err)
	}
	mark := func(id string, ph agent.Phase, start time.Time) agent.Progress {
		return agent.Progress{Occurrence: id, Announcement: "a", Content: "c", Start: start, Phase: ph}
	}
	// Events and marks go in together; a later mark of the same occurrence
	// in one append wins.
	_, err := s.Append(events(protocol.EventReceived, protocol.EventMissed), []agent.Progress{
		mark("old", agent.PhaseReceived, t0.Add(-72*time.Hour)),
		mark("old", agent.PhaseDone, t0.Add(-72*time.Hour)),
		mark("kept", agent.PhaseDone, t0.Add(-72*time.Hour)),
		mark("new", agent.PhaseReceived, t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	started := mark("new", agent.PhaseStarted, t0)
	started.StartedAt = t0.Add(3 * time.Second)
	if _, err := s.Append(events(protocol.EventStarted), []agent.Progress{started}); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	p, err := s.Progress()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p["old"].Phase != agent.PhaseDone || p["new"].Phase != agent.PhaseStarted || !p["new"].StartedAt.Equal(started.StartedAt) || p["new"].Content != "c" {
		t.Fatalf("Progress() = %+v", p)
	}
	if o := mustOutbox(t, s); o.Last != 3 {
		t.Fatalf("outbox last = %d, want 3", o.Last)
	}
	// Pruning forgets old marks that the desired state no longer holds.
	if err := s.PruneProgress(map[string]bool{"kept": true}, t0.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	p, _ = im.reopen(t, s).Progress()
	if _, ok := p["old"]; ok || len(p) != 2 {
		t.Fatalf("Progress() after prune = %+v, want kept and new", p)
	}
	if _, err := s.Append(nil, []agent.Progress{{}}); err == nil {
		t.Fatal("Append of a mark without occurrence: no error")
	}
}

func testReplay(t *testing.T, im impl) {
	s := im.open(t)
	now := t0
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	for _, e := range []protocol.ReplayEntry{
		{KeyID: "k2", Seq: 1, Expires: ms(time.Hour)},
		{KeyID: "k1", Seq: 9, Expires: ms(time.Minute)},
		{KeyID: "k1", Seq: 3, Expires: ms(2 * time.Minute)},
		{KeyID: "k1", Seq: 4, Expires: ms(-time.Second)}, // already expired: not kept
	} {
		if err := s.AddReplay(e, now); err != nil {
			t.Fatal(err)
		}
	}
	s = im.reopen(t, s)
	got, err := s.ReplayEntries(now)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.ReplayEntry{
		{KeyID: "k1", Seq: 3, Expires: ms(2 * time.Minute)},
		{KeyID: "k1", Seq: 9, Expires: ms(time.Minute)},
		{KeyID: "k2", Seq: 1, Expires: ms(time.Hour)},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ReplayEntries = %v, want %v", got, want)
	}
	// Later, expired entries are neither returned nor kept.
	later := now.Add(90 * time.Second)
	if got, _ := s.ReplayEntries(later); !slices.Equal(got, []protocol.ReplayEntry{want[0], want[2]}) {
		t.Fatalf("ReplayEntries later = %v, want k1/3 and k2/1", got)
	}
	if err := s.AddReplay(protocol.ReplayEntry{KeyID: "k3", Seq: 1, Expires: ms(time.Hour)}, later); err != nil {
		t.Fatal(err)
	}
	got, _ = im.reopen(t, s).ReplayEntries(now)
	if len(got) != 3 || got[0].Seq != 3 || got[2].KeyID != "k3" {
		t.Fatalf("ReplayEntries after pruning add = %v, want k1/3, k2/1, k3/1", got)
	}
}

func testKeys(t *testing.T, im impl) {
	s := im.open(t)
	keys, err := s.Keys()
	if err != nil || keys != nil {
		t.Fatalf("Keys() of a new store = %v, %v; want nil, nil", keys, err)
	}
	want := []protocol.PublicKey{{ID: "k1", Key: "a2V5MQ=="}, {ID: "k2", Key: "a2V5Mg=="}}
	if err := s.SetKeys(want); err != nil {
		t.Fatal(err)
	}
	want[0].ID = "changed by the caller"
	got, err := im.reopen(t, s).Keys()
	if err != nil || len(got) != 2 || got[0].ID != "k1" || got[1] != want[1] {
		t.Fatalf("Keys() after reopen = %v, %v", got, err)
	}
}

func testClockFloor(t *testing.T, im impl) {
	s := im.open(t)
	if f, err := s.ClockFloor(); err != nil || !f.IsZero() {
		t.Fatalf("ClockFloor() of a new store = %v, %v; want zero, nil", f, err)
	}
	want := t0.Add(1234567 * time.Nanosecond)
	if err := s.SetClockFloor(want.In(time.FixedZone("ICT", 7*3600))); err != nil {
		t.Fatal(err)
	}
	if got, err := im.reopen(t, s).ClockFloor(); err != nil || !got.Equal(want) {
		t.Fatalf("ClockFloor() after reopen = %v, %v; want %v", got, err, want)
	}
}

func testAlerts(t *testing.T, im impl) {
	s := im.open(t)
	h, err := s.HeldAlerts()
	if err != nil || len(h.Alerts) != 0 || len(h.Cancelled) != 0 {
		t.Fatalf("HeldAlerts() of a new store = %+v, %v; want none", h, err)
	}
	al := protocol.Alert{
		Occurrence: protocol.Occurrence{ID: "e1@x", Announcement: "e1", Content: "c", Priority: protocol.PriorityEmergency,
			Start: t0, Expires: t0.Add(time.Hour), Repeat: 3, Drill: true},
		Content: []protocol.ContentRef{{ID: "c", Size: 10, DurationMS: 1000, Path: "/api/v1/content/c/audio"}},
	}
	want := agent.HeldAlerts{Alerts: []protocol.Alert{al}, Cancelled: map[string]time.Time{"e0@x": t0.Add(time.Minute)}}
	if err := s.SetHeldAlerts(want); err != nil {
		t.Fatal(err)
	}
	want.Alerts[0].Occurrence.Repeat = 9 // the store must not share the caller's value
	s = im.reopen(t, s)
	got, err := s.HeldAlerts()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Alerts) != 1 || got.Alerts[0].Occurrence.ID != "e1@x" || got.Alerts[0].Occurrence.Repeat != 3 ||
		!got.Alerts[0].Occurrence.Expires.Equal(t0.Add(time.Hour)) || !got.Alerts[0].Occurrence.Drill ||
		len(got.Alerts[0].Content) != 1 || got.Alerts[0].Content[0].Path != al.Content[0].Path {
		t.Fatalf("HeldAlerts().Alerts = %+v", got.Alerts)
	}
	if exp, ok := got.Cancelled["e0@x"]; !ok || !exp.Equal(t0.Add(time.Minute)) || len(got.Cancelled) != 1 {
		t.Fatalf("HeldAlerts().Cancelled = %v", got.Cancelled)
	}
	if err := s.SetHeldAlerts(agent.HeldAlerts{}); err != nil {
		t.Fatal(err)
	}
	if got, err := im.reopen(t, s).HeldAlerts(); err != nil || len(got.Alerts) != 0 || len(got.Cancelled) != 0 {
		t.Fatalf("HeldAlerts() after clearing = %+v, %v", got, err)
	}
}

func mustSalvaged(t *testing.T, s agent.Store, limit int) (string, []uint64) {
	t.Helper()
	epoch, es, err := s.Salvaged(limit)
	if err != nil {
		t.Fatal(err)
	}
	return epoch, seqs(es)
}

func testSalvaged(t *testing.T, im impl) {
	s := im.open(t)
	if epoch, got := mustSalvaged(t, s, 100); epoch != "" || got != nil {
		t.Fatalf("new store keeps salvaged events %v of %q", got, epoch)
	}
	numbered := func(from, to uint64) []protocol.Event {
		var out []protocol.Event
		for seq := from; seq <= to; seq++ {
			out = append(out, protocol.Event{Seq: seq, Type: protocol.EventCompleted, Occurrence: fmt.Sprintf("o%d", seq), At: t0})
		}
		return out
	}
	add := func(epoch string, es []protocol.Event) error { return s.(Keeper).AddSalvaged(epoch, es) }
	if err := add(s.Epoch(), numbered(1, 2)); err == nil {
		t.Fatal("AddSalvaged took events of the store's own epoch")
	}
	for _, err := range []error{
		add("e1", numbered(3, 5)), add("e0", numbered(7, 8)),
		add("e1", numbered(4, 6)), // read back again: kept once
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The store's own outbox is apart.
	if _, err := s.Append(events(protocol.EventReceived), nil); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	if epoch, got := mustSalvaged(t, s, 100); epoch != "e0" || !slices.Equal(got, []uint64{7, 8}) {
		t.Fatalf("Salvaged = %v of %q, want 7 8 of e0", got, epoch)
	}
	_, es, _ := s.Salvaged(1)
	if len(es) != 1 || es[0].Occurrence != "o7" || es[0].Type != protocol.EventCompleted || !es[0].At.Equal(t0) {
		t.Fatalf("Salvaged(1) = %+v, want event 7 as added", es)
	}
	for _, c := range []struct {
		epoch string
		seq   uint64
		want  string
		seqs  []uint64
	}{
		{"e0", 7, "e0", []uint64{8}},
		{"e0", 99, "e1", []uint64{3, 4, 5, 6}}, // e0 is gone
		{"e1", 2, "e1", []uint64{3, 4, 5, 6}},
		{"e1", 4, "e1", []uint64{5, 6}},
	} {
		if err := s.Ack(c.epoch, c.seq); err != nil {
			t.Fatalf("Ack(%s, %d): %v", c.epoch, c.seq, err)
		}
		if epoch, got := mustSalvaged(t, s, 100); epoch != c.want || !slices.Equal(got, c.seqs) {
			t.Fatalf("after Ack(%s, %d): Salvaged = %v of %q, want %v of %s", c.epoch, c.seq, got, epoch, c.seqs, c.want)
		}
	}
	if err := s.Ack("e0", 9); !errors.Is(err, agent.ErrEpoch) {
		t.Fatalf("Ack of an epoch no longer kept = %v, want ErrEpoch", err)
	}
	if o := mustOutbox(t, s); o != (agent.Outbox{Acked: 0, Last: 1}) {
		t.Fatalf("own outbox = %+v after salvaged acks, want 0..1", o)
	}
	if err := s.Ack("e1", 6); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	if epoch, got := mustSalvaged(t, s, 100); epoch != "" || got != nil {
		t.Fatalf("all acknowledged, Salvaged = %v of %q", got, epoch)
	}
}

// testKeep: what was read back of a damaged store goes in whole.
func testKeep(t *testing.T, im impl) {
	s := im.open(t)
	key := protocol.PublicKey{ID: "k1", Key: "AAAA"}
	done := agent.Progress{Occurrence: "a@1", Phase: agent.PhaseDone, Start: t0}
	guard := protocol.ReplayEntry{KeyID: "k1", Seq: 4, Expires: t0.Add(time.Hour).UnixMilli()}
	k := &Kept{
		Events: map[string][]protocol.Event{"e-old": {{Seq: 5, Type: protocol.EventCompleted, Occurrence: "a@1", At: t0}}},
		Keys:   []protocol.PublicKey{key},
		Marks:  []agent.Progress{done},
		Replay: []protocol.ReplayEntry{guard, {KeyID: "k1", Seq: 3, Expires: t0.UnixMilli()}}, // the second expired
		Floor:  t0.Add(-time.Minute),
	}
	if err := s.SetClockFloor(t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.(Keeper).Keep(k, t0); err != nil {
		t.Fatal(err)
	}
	s = im.reopen(t, s)
	if got, err := s.ClockFloor(); err != nil || !got.Equal(k.Floor) {
		t.Errorf("clock floor %v (%v), want the newer %v read back", got, err, k.Floor)
	}
	if epoch, got := mustSalvaged(t, s, 10); epoch != "e-old" || !slices.Equal(got, []uint64{5}) {
		t.Errorf("salvaged %v of %q, want 5 of e-old", got, epoch)
	}
	if got, _ := s.Keys(); !slices.Equal(got, []protocol.PublicKey{key}) {
		t.Errorf("keys %v", got)
	}
	if got, _ := s.Progress(); len(got) != 1 || got["a@1"].Phase != agent.PhaseDone {
		t.Errorf("marks %v", got)
	}
	if got, _ := s.ReplayEntries(t0); !slices.Equal(got, []protocol.ReplayEntry{guard}) {
		t.Errorf("replay guard %v, want %v", got, guard)
	}
	if o := mustOutbox(t, s); o != (agent.Outbox{}) {
		t.Errorf("own outbox %+v, want empty", o)
	}
	if err := s.(Keeper).Keep(&Kept{Events: map[string][]protocol.Event{s.Epoch(): {{Seq: 1}}}}, t0); err == nil {
		t.Error("Keep took events under the store's own epoch")
	}
}
