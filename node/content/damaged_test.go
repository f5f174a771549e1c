package content

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"loaxa.vn/internal/rocard"
	"loaxa.vn/protocol"
)

// TestCachedFileCutShortIsDamaged: a cached, listed file that the card
// cut short (or lengthened) by a chunk or more is not what was verified:
// opening it says it is damaged (the agent fetches it again). It was handed
// out unchecked, and read to a clean end.
func TestCachedFileCutShortIsDamaged(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		cut  func(b []byte) []byte
	}{
		{"cut short", 50_000, func(b []byte) []byte { return b[:2*protocol.ChunkSize] }},
		{"lengthened", 3 * protocol.ChunkSize, func(b []byte) []byte { return append(bytes.Clone(b), make([]byte, 100)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, id := blob(tc.size, 32)
			s := newServer(t)
			s.files[id] = b
			c := newCache(t, s)
			if err := c.Fetch(context.Background(), s.streamRef(id, b, 6*time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := leftovers(t, c); !slices.Equal(got, []string{id, id + listSuffix}) {
				t.Fatalf("cache holds %v, want the file and its list", got)
			}
			damaged := tc.cut(b)
			if err := os.WriteFile(c.Path(id), damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := c.OpenStream(context.Background(), id)
			var damagedErr *DamagedError
			if !errors.As(err, &damagedErr) || damagedErr.ID != id {
				if err == nil {
					res := <-readAll(st)
					st.Close()
					t.Fatalf("file of %d bytes listed for %d opened, and read %d bytes, err %v; want it damaged", len(damaged), len(b), len(res.b), res.err)
				}
				t.Fatalf("opening a file of %d bytes listed for %d: %v; want a DamagedError naming %s", len(damaged), len(b), err, id)
			}
		})
	}
}

// TestTornTailOfAPartialFileIsAskedAgain: a power cut leaves a partial
// download whose first chunk is whole and good but whose last bytes (less
// than a chunk, never synced) are zeros. The unchecked tail is asked for
// again, and the download completes. It was hashed into the next chunk,
// which then "differed from the list": ErrMismatch, the partial file with
// its good chunk deleted and a stream playing it broken for good, though
// neither the controller nor the link sent a wrong byte.
func TestTornTailOfAPartialFileIsAskedAgain(t *testing.T) {
	b, id := blob(50_000, 9)
	s := newServer(t)
	s.files[id] = b
	c := newCache(t, s)
	r := s.streamRef(id, b, 6*time.Second)
	part := bytes.Clone(b[:20_000])
	clear(part[protocol.ChunkSize:]) // the unsynced tail
	if err := os.WriteFile(c.fresh(id)+partSuffix, part, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Fetch(context.Background(), r)
	if errors.Is(err, ErrMismatch) {
		t.Errorf("Fetch = %v; the server sent the right bytes, only the partial file's unchecked tail was torn", err)
	}
	if st, serr := os.Stat(c.fresh(id) + partSuffix); err != nil && (serr != nil || st.Size() < protocol.ChunkSize) {
		t.Errorf("the partial file's good first chunk was thrown away (stat: %v)", serr)
	}
}

// TestShortAnswerIsResumed: an answer that ends cleanly before the
// content's size (a body without Content-Length, closed early by a proxy)
// is a cut link, not wrong bytes: the next attempt resumes. The short file
// was verified, called ErrMismatch, its good bytes deleted and the stream
// ended for good.
func TestShortAnswerIsResumed(t *testing.T) {
	b, id := blob(50_000, 5)
	s := newServer(t)
	s.files[id] = b
	r := s.streamRef(id, b, 6*time.Second)
	s.handle = func(n int, w http.ResponseWriter, req *http.Request) bool {
		if n > 1 {
			return false
		}
		// No Content-Length: the body is chunked and ends cleanly.
		w.WriteHeader(http.StatusOK)
		w.Write(b[:2*protocol.ChunkSize])
		w.(http.Flusher).Flush()
		return true
	}
	c := newCache(t, s)
	err := c.Fetch(context.Background(), r)
	if err == nil {
		t.Fatal("a short answer was taken for the whole content")
	}
	if errors.Is(err, ErrMismatch) {
		t.Errorf("Fetch = %v; want a resumable failure, the bytes that came were right", err)
	}
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := s.ranges(); len(got) != 2 || got[1] != "bytes=32768-" {
		t.Errorf("requests' ranges %q; want the second to resume at byte 32768", got)
	}
}

// TestDiscardKeepsTheFreshCopy: Discard deletes the damaged file before
// it forgets the content, so a fetch of it that follows (it is missing and
// due at once) keeps its new copy. Discard forgot it first, recorded the
// damage on the (failing, slow) card, and only then deleted the file by
// name: the new, verified file, while the cache said it had the content.
// saveMu is held here to stand for the slow write of the damage record.
func TestDiscardKeepsTheFreshCopy(t *testing.T) {
	b, id := blob(50_000, 11)
	s := newServer(t)
	s.files[id] = b
	c := newCache(t, s)
	r := s.streamRef(id, b, 6*time.Second)
	c.Want(wants(r))
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	c.saveMu.Lock() // the card takes its time recording the damage
	discarded := make(chan struct{})
	go func() { defer close(discarded); c.Discard(id) }()
	waitFor(t, c, "Discard to forget the content", func() bool { return !c.Has(id) })
	// Run, meanwhile, fetches the missing content again.
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	c.saveMu.Unlock()
	<-discarded
	if _, err := os.Stat(c.Path(id)); !c.Has(id) || err != nil {
		t.Errorf("Has(%s) = %t, its file: %v; want the fresh copy kept", id[:8], c.Has(id), err)
	}
}

// TestFullCardMakesRoom: the card fills before the cache reaches its size
// (a card smaller than MaxBytes, other files on it). Content no one wants
// any more is deleted to make room, and the wanted bulletin arrives at the
// next attempt. Before, every attempt failed "no space left on device"
// while the old bulletins stayed on the card.
func TestFullCardMakesRoom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "content")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rocard.Small(t, dir, 256<<10)
	s := newServer(t)
	old1, id1 := blob(100_000, 41)
	old2, id2 := blob(100_000, 42)
	fresh, id3 := blob(100_000, 43)
	s.files[id1], s.files[id2], s.files[id3] = old1, old2, fresh
	c := newCacheIn(t, s, dir)
	r1, r2, r3 := ref(id1, len(old1)), ref(id2, len(old2)), ref(id3, len(fresh))
	c.Want(wants(r1, r2))
	for _, r := range []protocol.ContentRef{r1, r2} {
		if err := c.Fetch(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	c.Want(wants(r3)) // the old bulletins are over; a new one is due
	err := c.Fetch(context.Background(), r3)
	if err == nil {
		t.Fatal("a 100 kB download fitted in the 56 kB left: the test's card is not full")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("first attempt: %v, want no space left", err)
	}
	if err := c.Fetch(context.Background(), r3); err != nil {
		t.Fatalf("after making room: %v", err)
	}
	// As much as the rest of the download needed: one old bulletin.
	if !c.Has(id3) || c.Has(id1) == c.Has(id2) {
		t.Errorf("has the new one %t, the old ones %t %t; want the new one and one old one", c.Has(id3), c.Has(id1), c.Has(id2))
	}
}
