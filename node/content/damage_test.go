package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// TestDamageIsCounted: each file Discard drops counts in Damaged for a
// day, across a restart of the node (the record is in the cache's
// directory); a Discard of content not cached (a second report of the
// same damage) does not count, and a record the card damaged in turn
// loses only its broken lines.
func TestDamageIsCounted(t *testing.T) {
	s := newServer(t)
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	dir := filepath.Join(t.TempDir(), "content")
	open := func() *Cache {
		c, err := Open(Config{Dir: dir, BaseURL: s.URL, Username: "n1", Secret: "s3cret", Client: s.Client(), Clock: fake})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	var ids []string
	for i := range 3 {
		b, id := blob(20_000, byte(40+i))
		s.files[id] = b
		if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if n := c.Damaged(); n != 0 {
		t.Fatalf("a new cache counts %d damaged files", n)
	}
	c.Discard(ids[0])
	c.Discard(ids[0])
	if n := c.Damaged(); n != 1 {
		t.Errorf("one file discarded twice counts %d, want 1", n)
	}
	fake.Advance(20 * time.Hour)
	c.Discard(ids[1])
	if n := open().Damaged(); n != 2 {
		t.Errorf("after a restart the cache counts %d damaged files, want 2", n)
	}
	fake.Advance(5 * time.Hour) // the first is more than a day old
	if n := c.Damaged(); n != 1 {
		t.Errorf("a day after the first, the cache counts %d, want 1", n)
	}
	rec, err := os.ReadFile(filepath.Join(dir, damageFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, damageFile), append([]byte("2026-11-3\x00T08:00:00Z\n"), rec...), 0o644); err != nil {
		t.Fatal(err)
	}
	c = open()
	if n := c.Damaged(); n != 1 {
		t.Errorf("with a broken line in the record the cache counts %d, want 1", n)
	}
	if !c.Has(ids[2]) {
		t.Error("the record was indexed as content, or the cached file lost")
	}
	fake.Advance(20 * time.Hour)
	if n := c.Damaged(); n != 0 {
		t.Errorf("a day after the last, the cache counts %d, want 0", n)
	}
}

// FuzzReadDamage: a damage record a failing card garbled reads as the
// lines that still parse, never an error or a panic; what it read
// survives a write and a read again.
func FuzzReadDamage(f *testing.F) {
	f.Add([]byte("2026-11-30T08:00:00Z\n2026-11-30T09:00:00Z\n"))
	f.Add([]byte("2026-11-3\x00T08:00:00Z\n\n2026-11-30T09:00:00+07:00"))
	f.Add([]byte{0xff, '\n', '\r'})
	f.Fuzz(func(t *testing.T, rec []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, damageFile), rec, 0o644); err != nil {
			t.Fatal(err)
		}
		ts, err := readDamage(dir)
		if err != nil {
			t.Fatalf("a record on a readable file: %v", err)
		}
		if lines := bytes.Count(rec, []byte("\n")) + 1; len(ts) > lines {
			t.Fatalf("%d times from %d lines", len(ts), lines)
		}
		if err := writeDamage(dir, ts); err != nil {
			t.Fatal(err)
		}
		again, err := readDamage(dir)
		if err != nil || len(again) != len(ts) {
			t.Fatalf("read %d times, wrote and read back %d (%v)", len(ts), len(again), err)
		}
		for i := range ts {
			if !again[i].Equal(ts[i].Truncate(time.Second)) {
				t.Fatalf("time %d: wrote %v, read back %v", i, ts[i], again[i])
			}
		}
	})
}

// TestUnlistedFileIsListed: a file cached without its chunk list (by an
// earlier build; here from a ref without a root) gets the list from its
// own bytes once its ref names the root, and plays then check it a chunk
// at a time. A file whose bytes the storage changed before that is found
// so: discarded, counted, fetched again whole.
func TestUnlistedFileIsListed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(b []byte) []byte // nil: intact
	}{
		{"intact", nil},
		{"a changed bit", func(b []byte) []byte {
			changed := bytes.Clone(b)
			changed[protocol.ChunkSize+7] ^= 4
			return changed
		}},
		{"cut short", func(b []byte) []byte { return b[:protocol.ChunkSize+100] }},
	} {
		damaged := tt.damage != nil
		t.Run(tt.name, func(t *testing.T) {
			b, id := blob(50_000, 61)
			s := newServer(t)
			s.files[id] = b
			c := newCache(t, s)
			if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
				t.Fatal(err)
			}
			if got := leftovers(t, c); !slices.Equal(got, []string{id}) {
				t.Fatalf("cache holds %v, want the file alone", got)
			}
			if damaged {
				if err := os.WriteFile(c.Path(id), tt.damage(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A restart of the node: the index finds the file without a list.
			c = newCacheIn(t, s, c.Dir())
			runCache(t, c)
			c.Want([]Wanted{{ContentRef: s.streamRef(id, b, 6*time.Second)}})
			waitFor(t, c, "the list beside the file", func() bool {
				_, err := os.Stat(c.Path(id) + listSuffix)
				return err == nil && c.Has(id)
			})
			if got, err := os.ReadFile(c.Path(id)); err != nil || !bytes.Equal(got, b) {
				t.Errorf("cached file of %d bytes (%v), want the content", len(got), err)
			}
			want := map[bool]int{false: 0, true: 1}[damaged]
			s.mu.Lock()
			gets := len(s.requests)
			s.mu.Unlock()
			if n := c.Damaged(); n != want || gets != 1+want {
				t.Errorf("%d damaged files counted, %d downloads; want %d and %d", n, gets, want, 1+want)
			}
			// The list is the file's: a changed byte is found as a play reads.
			changed := bytes.Clone(b)
			changed[2*protocol.ChunkSize+9] ^= 1
			if err := os.WriteFile(c.Path(id), changed, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := c.OpenStream(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res := <-readAll(st)
			if !errors.Is(res.err, ErrDamaged) || !bytes.Equal(res.b, b[:2*protocol.ChunkSize]) {
				t.Errorf("a play read %d bytes, %v; want the first two chunks and ErrDamaged", len(res.b), res.err)
			}
		})
	}
}

// TestLeftoversAreCleared: files the power went off in the middle of
// writing (the damage record's, a chunk list's) and the list of a file
// gone are deleted when the cache opens; the files, their lists and the
// damage record stay.
func TestLeftoversAreCleared(t *testing.T) {
	s := newServer(t)
	c := newCache(t, s)
	var ids []string
	for i := range 2 {
		b, id := blob(20_000, byte(70+i))
		s.files[id] = b
		if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	kept, gone := ids[0], ids[1]
	c.Discard(gone) // its list goes with it; the damage record stays
	_, lost := blob(100, 99)
	for name, body := range map[string]string{
		kept + listSuffix:             "a list",
		kept + listSuffix + tmpSuffix: "half a list",
		damageFile + tmpSuffix:        "half a record",
		lost + listSuffix:             "the list of a file gone",
	} {
		if err := os.WriteFile(filepath.Join(c.Dir(), name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c = newCacheIn(t, s, c.Dir())
	want := []string{damageFile, kept, kept + listSuffix}
	slices.Sort(want)
	if got := leftovers(t, c); !slices.Equal(got, want) {
		t.Errorf("cache holds %v after it opened, want %v", got, want)
	}
	if !c.Has(kept) || c.Has(gone) || c.Damaged() != 1 {
		t.Errorf("after it opened: has the kept file %v, the discarded one %v, %d damaged; want true, false, 1", c.Has(kept), c.Has(gone), c.Damaged())
	}
}
