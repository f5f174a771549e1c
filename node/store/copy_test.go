package store

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/rocard"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// TestMemoryFromCopiesWhatTheAgentNeeds: from a store on a card gone
// read-only, the desired state, keys, clock floor, held alerts, marks and
// replay guard come into memory, and the unacknowledged events as
// salvaged events of the card's epoch; the memory store has an epoch of
// its own, and no expired replay entry.
func TestMemoryFromCopiesWhatTheAgentNeeds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.db")
	_, epoch := fullStore(t, path) // desired state, 200 events and their marks
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := []protocol.PublicKey{{ID: "k1", Key: "AAAA"}}
	alerts := agent.HeldAlerts{Cancelled: map[string]time.Time{"e9@x": damageNow.Add(time.Hour).UTC()}}
	kept := protocol.ReplayEntry{KeyID: "k1", Seq: 7, Expires: damageNow.Add(time.Hour).UnixMilli()}
	for _, err := range []error{
		s.SetKeys(keys), s.SetHeldAlerts(alerts), s.SetClockFloor(damageNow),
		s.AddReplay(kept, damageNow),
		s.AddReplay(protocol.ReplayEntry{KeyID: "k1", Seq: 8, Expires: damageNow.Add(time.Minute).UnixMilli()}, damageNow),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(epoch, 150); err != nil {
		t.Fatal(err)
	}
	wantMarks, _ := s.Progress()
	s.Close()
	rocard.ReadOnly(t, dir)

	m, err := MemoryFrom(path, damageNow.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Desired(); d == nil || d.Version != 7 {
		t.Errorf("desired state %+v, want version 7", d)
	}
	if got, _ := m.Keys(); !reflect.DeepEqual(got, keys) {
		t.Errorf("keys %v, want %v", got, keys)
	}
	if got, _ := m.ClockFloor(); !got.Equal(damageNow) {
		t.Errorf("clock floor %v, want %v", got, damageNow)
	}
	if got, _ := m.HeldAlerts(); !reflect.DeepEqual(got.Cancelled, alerts.Cancelled) {
		t.Errorf("held alerts %+v, want %+v", got, alerts)
	}
	if got, _ := m.Progress(); len(got) != 200 || !reflect.DeepEqual(got, wantMarks) {
		t.Errorf("%d marks copied, want the 200 stored", len(got))
	}
	if got, _ := m.ReplayEntries(damageNow.Add(30 * time.Minute)); !reflect.DeepEqual(got, []protocol.ReplayEntry{kept}) {
		t.Errorf("replay guard %v, want the unexpired %v", got, kept)
	}
	if out, _ := m.Outbox(); m.Epoch() == epoch || out.Len() != 0 {
		t.Errorf("epoch %s (the file's %s), outbox %+v: want a new epoch and no events", m.Epoch(), epoch, out)
	}
	// The 50 events the card had not had acknowledged, under its epoch.
	if got, es, err := m.Salvaged(1000); err != nil || got != epoch || !slices.Equal(seqs(es), seqRange(151, 200)) {
		t.Errorf("salvaged events of epoch %q: %v (%v); want %v of %q", got, seqs(es), err, seqRange(151, 200), epoch)
	}
}

// seqRange is from, from+1, …, to.
func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestMemoryFromRefusesWhatIsNotAStore(t *testing.T) {
	dir := t.TempDir()
	if _, err := MemoryFrom(filepath.Join(dir, "none.db"), damageNow); err == nil {
		t.Error("no file: copied")
	}
	path := filepath.Join(dir, "node.db")
	raw, _ := fullStore(t, path)
	for i := 4096; i < len(raw); i++ {
		raw[i] = 0xA5 // every page after the meta pages garbled
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := MemoryFrom(path, damageNow); err == nil {
		t.Error("garbled pages: copied")
	}
}

// TestMemoryOf: a simulated box whose card goes read-only copies its open
// store through the Store interface, as MemoryFrom copies a file.
func TestMemoryOf(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			keys := []protocol.PublicKey{{ID: "k1", Key: "AAAA"}}
			guard := protocol.ReplayEntry{KeyID: "k1", Seq: 7, Expires: damageNow.Add(time.Hour).UnixMilli()}
			done := agent.Progress{Occurrence: "a@1", Phase: agent.PhaseDone, Start: damageNow}
			for _, err := range []error{
				s.SetDesired(&protocol.DesiredState{Version: 9, Node: "n1"}),
				s.SetKeys(keys),
				s.AddReplay(guard, damageNow),
				func() error {
					_, err := s.Append([]protocol.Event{{Type: protocol.EventReceived, Occurrence: "a@1"}, {Type: protocol.EventCompleted, Occurrence: "a@1"}}, []agent.Progress{done})
					return err
				}(),
				s.Ack(s.Epoch(), 1),
				s.(Keeper).AddSalvaged("e-old", []protocol.Event{{Seq: 4, Type: protocol.EventStarted}}),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			m, err := MemoryOf(s, damageNow)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := m.Desired(); d == nil || d.Version != 9 {
				t.Errorf("desired state %+v, want version 9", d)
			}
			if got, _ := m.Keys(); !reflect.DeepEqual(got, keys) {
				t.Errorf("keys %v", got)
			}
			if got, _ := m.Progress(); !reflect.DeepEqual(got, map[string]agent.Progress{"a@1": done}) {
				t.Errorf("marks %v", got)
			}
			if got, _ := m.ReplayEntries(damageNow); !reflect.DeepEqual(got, []protocol.ReplayEntry{guard}) {
				t.Errorf("replay guard %v", got)
			}
			if m.Epoch() == s.Epoch() {
				t.Error("the copy has the store's epoch")
			}
			// Its unacknowledged event under its epoch, then the earlier one's.
			got := map[string][]uint64{}
			for {
				epoch, es, _ := m.Salvaged(10)
				if len(es) == 0 {
					break
				}
				got[epoch] = seqs(es)
				if err := m.Ack(epoch, es[len(es)-1].Seq); err != nil {
					t.Fatal(err)
				}
			}
			if want := map[string][]uint64{s.Epoch(): {2}, "e-old": {4}}; !reflect.DeepEqual(got, want) {
				t.Errorf("salvaged %v, want %v", got, want)
			}
		})
	}
}
