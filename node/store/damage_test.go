package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"loaxa.vn/internal/rocard"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

var damageNow = time.Date(2026, 9, 14, 3, 20, 0, 0, time.UTC)

// fullStore writes a store with a desired state, events and progress, as a
// board that has run a while has, and returns its bytes and epoch.
func fullStore(t testing.TB, path string) ([]byte, string) {
	t.Helper()
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetDesired(&protocol.DesiredState{Version: 7, Node: "tt-01"}); err != nil {
		t.Fatal(err)
	}
	var events []protocol.Event
	var marks []agent.Progress
	for i := range 200 {
		occ := "a1@" + damageNow.Add(time.Duration(i)*time.Minute).Format("20060102T150405Z")
		events = append(events, protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: damageNow})
		marks = append(marks, agent.Progress{Occurrence: occ, Phase: agent.PhaseReceived, Start: damageNow})
	}
	if _, err := s.Append(events, marks); err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw, epoch
}

func TestOpenBoltOrSetAsideKeepsASoundStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	_, epoch := fullStore(t, path)
	s, aside, err := OpenBoltOrSetAside(path, damageNow)
	if err != nil || aside != "" {
		t.Fatalf("sound store: aside %q, err %v", aside, err)
	}
	defer s.Close()
	d, err := s.Desired()
	if err != nil || d == nil || d.Version != 7 || s.Epoch() != epoch {
		t.Fatalf("store reopened with desired %+v (%v), epoch %s; want version 7, epoch %s", d, err, s.Epoch(), epoch)
	}
	if p, err := s.Progress(); err != nil || len(p) != 200 {
		t.Fatalf("%d progress marks (%v), want 200", len(p), err)
	}
}

func TestOpenBoltOrSetAsideStartsAnewOnADamagedStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, raw []byte) []byte
	}{
		{"not a bbolt file", func(_ *testing.T, _ string, raw []byte) []byte { return bytes.Repeat([]byte("loaxa"), 100) }},
		{"cut short by a power cut", func(_ *testing.T, _ string, raw []byte) []byte { return raw[:len(raw)/2] }},
		{"cut to its first page", func(_ *testing.T, _ string, raw []byte) []byte { return raw[:4096] }},
		{"both meta pages overwritten", func(_ *testing.T, _ string, raw []byte) []byte {
			b := bytes.Clone(raw)
			copy(b, bytes.Repeat([]byte{0xAB}, 8192))
			return b
		}},
		{"every data page overwritten", func(_ *testing.T, _ string, raw []byte) []byte {
			b := bytes.Clone(raw)
			copy(b[8192:], bytes.Repeat([]byte{0xAB}, len(b)-8192))
			return b
		}},
		{"a stored value garbled", func(t *testing.T, path string, _ []byte) []byte {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF, 0x00})
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			raw, _ := os.ReadFile(path)
			return raw
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "node.db")
			raw, epoch := fullStore(t, path)
			bad := tc.damage(t, path, raw)
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			s, aside, err := OpenBoltOrSetAside(path, damageNow)
			var de *DamagedError
			if s == nil || !errors.As(err, &de) {
				t.Fatalf("store %v, err %v; want a new store and a DamagedError", s, err)
			}
			defer s.Close()
			if want := path + ".damaged-20260914T032000Z"; aside != want || de.Aside != want {
				t.Errorf("set aside as %q (error says %q), want %q", aside, de.Aside, want)
			}
			if kept, err := os.ReadFile(aside); err != nil || !bytes.Equal(kept, bad) {
				t.Errorf("the damaged file was not kept as it was (%v)", err)
			}
			if s.Epoch() == epoch || s.Epoch() == "" {
				t.Errorf("new store has epoch %q, want a new one (old %q)", s.Epoch(), epoch)
			}
			if d, err := s.Desired(); err != nil || d != nil {
				t.Errorf("new store has desired %+v (%v), want none", d, err)
			}
			if _, err := s.Append([]protocol.Event{{Type: protocol.EventReceived, Occurrence: "b@1", At: damageNow}}, nil); err != nil {
				t.Errorf("new store does not take events: %v", err)
			}
		})
	}
}

func TestOpenBoltOrSetAsideKeepsOnlyTheNewestDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	// As long as a whole store: a shorter file is removed, not kept
	// (TestStartAnewKeepsWhatAnUnfinishedStoreNeverHeld).
	garbage := bytes.Repeat([]byte("garbage!"), os.Getpagesize()/2)
	for i := range 3 {
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		s, _, err := OpenBoltOrSetAside(path, damageNow.Add(time.Duration(i)*time.Hour))
		var de *DamagedError
		if !errors.As(err, &de) {
			t.Fatalf("round %d: %v", i, err)
		}
		s.Close()
	}
	olds, _ := filepath.Glob(path + ".damaged-*")
	if len(olds) != 1 || olds[0] != path+".damaged-20260914T052000Z" {
		t.Errorf("damaged files kept: %v, want the newest only", olds)
	}
}

// A store another process holds is not damaged: it is left alone.
func TestOpenBoltOrSetAsideLeavesAHeldStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	fullStore(t, path)
	held, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	raw, _ := os.ReadFile(path)
	s, aside, err := OpenBoltOrSetAside(path, damageNow)
	if s != nil || aside != "" || !errors.Is(err, bolterrors.ErrTimeout) {
		t.Fatalf("held store: %v, aside %q, err %v; want ErrTimeout and nothing set aside", s, aside, err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, raw) {
		t.Error("the held store's file changed")
	}
}

// FuzzOpenBoltOrSetAside: whatever the file holds, the agent gets a store
// it can write to, never a panic.
func FuzzOpenBoltOrSetAside(f *testing.F) {
	raw, _ := fullStore(f, filepath.Join(f.TempDir(), "node.db"))
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:4096])
	f.Add([]byte{})
	f.Add([]byte("loaxa"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "node.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, _, err := OpenBoltOrSetAside(path, damageNow)
		var de *DamagedError
		if s == nil || err != nil && !errors.As(err, &de) {
			t.Fatalf("store %v, err %v", s, err)
		}
		defer s.Close()
		if _, err := s.Append([]protocol.Event{{Type: protocol.EventReceived, Occurrence: "b@1", At: damageNow}}, nil); err != nil {
			t.Fatalf("store does not take events: %v", err)
		}
	})
}

// BenchmarkCheck: the check an agent runs on its store as it starts, on a
// store holding 20,000 unsent events and their marks (a board offline for
// weeks), read from the page cache.
func BenchmarkCheck(b *testing.B) {
	path, size := weeksOffline(b, agent.PhaseReceived)
	for b.Loop() {
		if err := Check(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "store-MiB")
}

// BenchmarkSalvage: reading back what a new store can use of that store,
// its 20,000 plays finished, as the node program's child does (and then
// keeping it, as the parent does).
func BenchmarkSalvage(b *testing.B) {
	path, size := weeksOffline(b, agent.PhaseDone)
	for b.Loop() {
		var k Kept
		if err := Salvage(path, damageNow, k.Add); err != nil {
			b.Fatal(err)
		}
		if ev, marks, _ := k.Len(); ev != 20000 || marks != 20000 {
			b.Fatalf("read back %d events and %d marks, want 20,000 each", ev, marks)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "store-MiB")
}

// weeksOffline writes a store of 20,000 unsent completed events and their
// marks in phase, and returns its path and size.
func weeksOffline(b *testing.B, phase agent.Phase) (string, int64) {
	path := filepath.Join(b.TempDir(), "node.db")
	s, err := OpenBolt(path)
	if err != nil {
		b.Fatal(err)
	}
	for batch := range 100 {
		var events []protocol.Event
		var marks []agent.Progress
		for i := range 200 {
			occ := "a1@" + damageNow.Add(time.Duration(batch*200+i)*time.Minute).Format("20060102T150405Z")
			events = append(events, protocol.Event{Type: protocol.EventCompleted, Occurrence: occ, At: damageNow, Content: "c-0123456789abcdef"})
			marks = append(marks, agent.Progress{Occurrence: occ, Phase: phase, Start: damageNow})
		}
		if _, err := s.Append(events, marks); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

// TestSetAside: the newest damaged store beside a path, and when it was
// set aside, from its name.
func TestSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	if got, at := SetAside(path); got != "" || !at.IsZero() {
		t.Errorf("nothing set aside: %q at %v", got, at)
	}
	fullStore(t, path)
	s, aside, err := StartAnew(path, damageNow, errors.New("damaged"))
	if s == nil {
		t.Fatal(err)
	}
	s.Close()
	if got, at := SetAside(path); got != aside || !at.Equal(damageNow) {
		t.Errorf("SetAside = %q at %v, want %q at %v", got, at, aside, damageNow)
	}
}

// TestNearlyFullCardKeepsTheDamagedStoreToReadBack: a damaged store on a
// card with a few KiB left, less than a new store's first write. The new
// store was left half written; at the next start (a power cut, the
// watchdog) it looked damaged, was set aside, and the damaged store that
// held the unsent play reports, learnt keys and replay guard was deleted
// for it. A store the card cannot make is removed: the next start finds
// no store, fails as a card that takes no writes (storage-failed, not a
// damaged store), and the damaged store is still there to read back.
func TestNearlyFullCardKeepsTheDamagedStoreToReadBack(t *testing.T) {
	dir := t.TempDir()
	rocard.Small(t, dir, 1<<20)
	path := filepath.Join(dir, "node.db")
	epoch := ackedStore(t, path) // events 121–200 unsent
	garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDesired, []byte{'{', 0xFF}) })

	// Fill the card, then free 8 KiB: a new store's first write (four
	// pages) goes half way.
	rocard.Fill(t, dir)
	filler := filepath.Join(dir, "filler")
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-8192); err != nil {
		t.Fatal(err)
	}

	s, aside, err := OpenBoltOrSetAside(path, damageNow)
	if s != nil {
		s.Close()
		t.Fatal("a new store opened on the full card")
	}
	if aside == "" || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("first start: aside %q, err %v; want the damaged store set aside and the new one failing with ENOSPC", aside, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the new store the card could not hold is still there (%v)", err)
	}

	// Second start, the card still full: no store to open, nothing damaged.
	s, again, err := OpenBoltOrSetAside(path, damageNow.Add(time.Minute))
	if s != nil {
		s.Close()
		t.Fatal("a new store opened on the full card")
	}
	if again != "" || Damaged(path, err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second start: aside %q, err %v; want no file set aside and ENOSPC, a card that takes no writes", again, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the new store the card could not hold is still there (%v)", err)
	}
	// What the node program reads back into its store in memory.
	if got, _ := SetAside(path); got != aside {
		t.Fatalf("set aside: %q, want the damaged store %q", got, aside)
	}
	if got, err := salvaged(t, aside); len(got[epoch]) != 80 {
		t.Fatalf("the damaged store holds %d unsent events (%v), want 80", len(got[epoch]), err)
	}
}

// TestStartAnewKeepsWhatAnUnfinishedStoreNeverHeld: a power cut while
// bbolt made the new store after a damaged one was set aside leaves a
// file shorter than a whole store. At the next start it looked damaged
// too, and the store set aside before it, the only copy of the unsent
// play reports, was deleted. The short file held nothing: it is removed,
// the store set aside before is kept, and it is what is read back.
func TestStartAnewKeepsWhatAnUnfinishedStoreNeverHeld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.db")
	epoch := ackedStore(t, path) // events 121–200 unsent
	s, aside, err := StartAnew(path, damageNow, errors.New("damaged"))
	if s == nil {
		t.Fatal(err)
	}
	s.Close()
	// The new store, as a power cut leaves it: the first half of bbolt's
	// first write.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw[:2*os.Getpagesize()], 0o600); err != nil {
		t.Fatal(err)
	}
	why := Check(path)
	if !Damaged(path, why) {
		t.Fatalf("the unfinished store checks as %v, want damaged", why)
	}

	s, again, err := StartAnew(path, damageNow.Add(time.Minute), why)
	if s == nil {
		t.Fatalf("no new store: %v", err)
	}
	defer s.Close()
	var de *DamagedError
	if again != aside || !errors.As(err, &de) || de.Aside != aside {
		t.Fatalf("second start: aside %q, err %v; want the store set aside before, %q, to read back", again, err, aside)
	}
	if olds, _ := filepath.Glob(path + ".damaged-*"); len(olds) != 1 || olds[0] != aside {
		t.Fatalf("files set aside: %v, want only %s", olds, aside)
	}
	if got, err := salvaged(t, aside); len(got[epoch]) != 80 {
		t.Fatalf("the store set aside holds %d unsent events (%v), want 80", len(got[epoch]), err)
	}
	if err := s.SetDesired(&protocol.DesiredState{Version: 1, Node: "tt-01"}); err != nil {
		t.Fatalf("the new store takes no writes: %v", err)
	}
}
