package store

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// salvaged runs Salvage on path and returns the events it read back, by
// epoch.
func salvaged(t *testing.T, path string) (map[string][]protocol.Event, error) {
	t.Helper()
	var k Kept
	err := Salvage(path, damageNow, func(f Found) error {
		if err := k.Add(f); err != nil {
			t.Errorf("Salvage found what Kept does not take: %v", err)
		}
		return nil
	})
	return k.Events, err
}

// ackedStore is fullStore with its first 120 events acknowledged: 121–200
// are unsent.
func ackedStore(t *testing.T, path string) string {
	t.Helper()
	_, epoch := fullStore(t, path)
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ack(epoch, 120); err != nil {
		t.Fatal(err)
	}
	return epoch
}

// garble writes value under key in bucket name, as a torn write leaves it.
func garble(t *testing.T, path string, put func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(put); err != nil {
		t.Fatal(err)
	}
}

func TestSalvageReadsBackTheUnsentEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		want    []uint64
		earlier []uint64 // of epoch "e-old", kept by the store before
	}{
		{"its desired state garbled", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF}) })
		}, seqRange(121, 200), nil},
		{"an event garbled", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(seqKey(150), []byte("{\"seq\":15")) })
		}, seqRange(121, 149), nil},
		{"an event missing", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(seqKey(170)) })
		}, seqRange(121, 169), nil},
		{"an event under another number", func(t *testing.T, path string) {
			garble(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketEvents).Put(seqKey(130), []byte(`{"seq":31,"type":"received"}`))
			})
		}, seqRange(121, 129), nil},
		{"with events of an earlier store", func(t *testing.T, path string) {
			s, err := OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			err = s.AddSalvaged("e-old", []protocol.Event{{Seq: 4, Type: protocol.EventCompleted}, {Seq: 5, Type: protocol.EventStarted}})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, seqRange(121, 200), []uint64{4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			epoch := ackedStore(t, path)
			tc.damage(t, path)
			got, err := salvaged(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got[epoch]), tc.want) {
				t.Errorf("read back %v of epoch %s, want %v", seqs(got[epoch]), epoch, tc.want)
			}
			if es := got[epoch]; len(es) > 0 && (es[0].Type != protocol.EventReceived || es[0].Occurrence == "") {
				t.Errorf("first event read back: %+v", es[0])
			}
			if !slices.Equal(seqs(got["e-old"]), tc.earlier) {
				t.Errorf("read back %v of the earlier epoch, want %v", seqs(got["e-old"]), tc.earlier)
			}
		})
	}
}

// TestSalvageOfAWreckedFile: what cannot be read gives an error or stops
// the run, never a panic or an event out of order. (Cut in half, this
// store still holds its event pages: its pages past the half are free.)
func TestSalvageOfAWreckedFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wreck func(raw []byte) []byte
		fails bool
	}{
		{"cut short", func(raw []byte) []byte { return raw[:len(raw)/2] }, false},
		{"cut to its meta pages", func(raw []byte) []byte { return raw[:8192] }, true},
		{"every data page overwritten", func(raw []byte) []byte {
			for i := 8192; i < len(raw); i++ {
				raw[i] = 0xAB
			}
			return raw
		}, true},
		{"not a store", func([]byte) []byte { return []byte("loaxa loaxa loaxa") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			epoch := ackedStore(t, path)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.wreck(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := salvaged(t, path)
			t.Logf("read back %d events, err %v", len(got[epoch]), err)
			if tc.fails && err == nil {
				t.Error("no error")
			}
			for ep, es := range got {
				if ep != epoch {
					t.Errorf("events of an epoch %q the store never had", ep)
				}
				if s := seqs(es); len(s) > 0 && !slices.Equal(s, seqRange(121, 120+uint64(len(s)))) {
					t.Errorf("read back %v: not the run from 121", s)
				}
			}
		})
	}
}

// TestSalvageKeepsFinishedMarksKeysAndTheReplayGuard: from a damaged store
// the new one gets the marks of what the node finished (not of what it
// had only begun), the learnt keys (not one garbled) and the unexpired
// replay guard, with the unsent events.
func TestSalvageKeepsFinishedMarksKeysAndTheReplayGuard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	done := agent.Progress{Occurrence: "a1@1", Phase: agent.PhaseDone, Start: damageNow}
	begun := agent.Progress{Occurrence: "e1@2", Phase: agent.PhaseStarted, Start: damageNow}
	guard := protocol.ReplayEntry{KeyID: "k1", Seq: 9, Expires: damageNow.Add(time.Hour).UnixMilli()}
	pub, _, _ := ed25519.GenerateKey(nil)
	key := protocol.NewPublicKey(pub)
	garbled := key
	garbled.Key = protocol.NewPublicKey(append(ed25519.PublicKey{pub[0] ^ 1}, pub[1:]...)).Key
	epoch := s.Epoch()
	for _, err := range []error{
		s.SetKeys([]protocol.PublicKey{key, garbled}),
		func() error {
			_, err := s.Append([]protocol.Event{{Type: protocol.EventCompleted, Occurrence: "a1@1", At: damageNow}}, []agent.Progress{done, begun})
			return err
		}(),
		s.AddReplay(guard, damageNow),
		s.AddReplay(protocol.ReplayEntry{KeyID: "k1", Seq: 10, Expires: damageNow.Add(time.Minute).UnixMilli()}, damageNow),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF}) })

	var k Kept
	later := damageNow.Add(30 * time.Minute) // the second entry has expired
	if err := Salvage(path, later, func(f Found) error { return k.Add(f) }); err != nil {
		t.Fatal(err)
	}
	if ev, marks, replay := k.Len(); ev != 1 || marks != 1 || replay != 1 {
		t.Fatalf("read back %d events, %d marks, %d replay entries; want 1 each", ev, marks, replay)
	}
	ns, _, err := StartAnew(path, later, errors.New("damaged"))
	if ns == nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Keep(&k, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := ns.Progress(); !reflect.DeepEqual(got, map[string]agent.Progress{done.Occurrence: done}) {
		t.Errorf("marks in the new store %+v, want only the finished %+v", got, done)
	}
	if got, _ := ns.Keys(); !reflect.DeepEqual(got, []protocol.PublicKey{key}) {
		t.Errorf("keys of the new store %v, want the one intact %v", got, key)
	}
	if got, _ := ns.ReplayEntries(later); !reflect.DeepEqual(got, []protocol.ReplayEntry{guard}) {
		t.Errorf("replay guard of the new store %v, want %v", got, guard)
	}
	if ep, es, _ := ns.Salvaged(10); ep != epoch || !slices.Equal(seqs(es), []uint64{1}) {
		t.Errorf("salvaged events %v of %q, want 1 of %s", seqs(es), ep, epoch)
	}
	if o, _ := ns.Outbox(); o.Len() != 0 {
		t.Errorf("the new store's own outbox %+v: the marks came with events", o)
	}
}

// TestSalvageKeepsTheClockFloor: a board whose store a power cut damaged
// is the one that starts with its clock behind, and its new store had no
// clock floor, so it took alerts recorded long before as new until its
// first measurement. The floor is read back with the rest, and the new
// store keeps the newest of it and any floor it already has.
func TestSalvageKeepsTheClockFloor(t *testing.T) {
	floor := damageNow.Add(-2 * time.Minute)
	for _, tc := range []struct {
		name string
		had  time.Time // the new store's floor before the read-back
		want time.Time
	}{
		{"into a new store", time.Time{}, floor},
		{"older than the new store's", floor.Add(time.Hour), floor.Add(time.Hour)},
		{"newer than the new store's", floor.Add(-time.Hour), floor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			ackedStore(t, path)
			s, err := OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			err = s.SetClockFloor(floor)
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF}) })

			var k Kept
			if err := Salvage(path, damageNow, k.Add); err != nil {
				t.Fatal(err)
			}
			ns, _, err := StartAnew(path, damageNow, errors.New("damaged"))
			if ns == nil {
				t.Fatal(err)
			}
			defer ns.Close()
			if !tc.had.IsZero() {
				if err := ns.SetClockFloor(tc.had); err != nil {
					t.Fatal(err)
				}
			}
			if err := ns.Keep(&k, damageNow); err != nil {
				t.Fatal(err)
			}
			if got, err := ns.ClockFloor(); err != nil || !got.Equal(tc.want) {
				t.Errorf("clock floor of the new store = %v (%v), want %v", got, err, tc.want)
			}
		})
	}

	// A floor that does not read as a time is not read back.
	path := filepath.Join(t.TempDir(), "node.db")
	ackedStore(t, path)
	garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFloor, []byte("2026-09-1\xff")) })
	var k Kept
	if err := Salvage(path, damageNow, k.Add); err != nil {
		t.Fatal(err)
	}
	ns, err := OpenBolt(filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Keep(&k, damageNow); err != nil {
		t.Fatal(err)
	}
	if got, err := ns.ClockFloor(); err != nil || !got.IsZero() {
		t.Errorf("a garbled floor read back as %v (%v)", got, err)
	}
}

func TestKeptRefusesWhatSalvageDoesNotWrite(t *testing.T) {
	var k Kept
	for _, f := range []Found{
		{Epoch: "e1", Event: &protocol.Event{Seq: 4}},
		{Epoch: "e1", Event: &protocol.Event{Seq: 5}},
	} {
		if err := k.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	for name, f := range map[string]Found{
		"an event out of order":    {Epoch: "e1", Event: &protocol.Event{Seq: 7}},
		"an event without epoch":   {Event: &protocol.Event{Seq: 1}},
		"an event numbered 0":      {Epoch: "e2", Event: &protocol.Event{Seq: 0}},
		"an epoch of 65 bytes":     {Epoch: strings.Repeat("e", 65), Event: &protocol.Event{Seq: 1}},
		"an unfinished mark":       {Mark: &agent.Progress{Occurrence: "o", Phase: agent.PhaseStarted}},
		"a replay entry of no key": {Replay: &protocol.ReplayEntry{Seq: 3}},
		"a key not its id's":       {Keys: []protocol.PublicKey{{ID: "0011223344556677", Key: "AAAA"}}},
		"a zero clock floor":       {Floor: &time.Time{}},
		"nothing":                  {},
	} {
		if err := k.Add(f); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if ev, marks, replay := k.Len(); ev != 2 || marks != 0 || replay != 0 {
		t.Errorf("kept %d events, %d marks, %d replay entries; want the 2 events", ev, marks, replay)
	}
}

// FuzzSalvage: whatever the file holds, Salvage returns (an error at
// worst), everything it finds is what Kept takes, and a new store takes
// all of it.
func FuzzSalvage(f *testing.F) {
	path := filepath.Join(f.TempDir(), "node.db")
	raw, _ := fullStore(f, path)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	s, err := OpenBolt(path)
	if err != nil {
		f.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	for _, err := range []error{
		s.AddSalvaged("e-old", []protocol.Event{{Seq: 3, Type: protocol.EventCompleted}, {Seq: 4, Type: protocol.EventStarted}}),
		s.SetKeys([]protocol.PublicKey{protocol.NewPublicKey(pub)}),
		s.AddReplay(protocol.ReplayEntry{KeyID: "k1", Seq: 9, Expires: damageNow.Add(time.Hour).UnixMilli()}, damageNow),
		s.Ack(s.Epoch(), 150),
	} {
		if err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	raw, err = os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("loaxa"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "node.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var k Kept
		Salvage(path, damageNow, func(f Found) error {
			if err := k.Add(f); err != nil {
				t.Fatalf("Salvage found %+v, which Kept refuses: %v", f, err)
			}
			return nil
		})
		ns, err := OpenBolt(filepath.Join(dir, "new.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		if err := ns.Keep(&k, damageNow); err != nil {
			t.Fatalf("the new store does not take what was read back: %v", err)
		}
	})
}
