package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

func TestPlayThrough(t *testing.T) {
	const size = 160_000 // 20 s of node audio
	play := 20 * time.Second
	for _, c := range []struct {
		name          string
		have, got     int64
		elapsed, play time.Duration
		want          bool
	}{
		{"complete", size, size, 0, play, true},
		{"no header yet", nodeaudio.HeaderSize - 1, nodeaudio.HeaderSize - 1, time.Second, play, false},
		{"too soon to tell", 100_000, 100_000, PlayThroughEvidence - time.Millisecond, play, false},
		{"faster than it plays", 16_000, 16_000, time.Second, play, true},                // 9 s to go
		{"slower, but done in time", 40_000, 40_000, 5 * time.Second, play, true},        // 15 s to go, 15 s allowed
		{"slower, done too late", 40_000, 39_000, 5 * time.Second, play, false},          // 15.4 s to go
		{"resumed: the rate is this attempt's", 150_000, 1_000, time.Second, play, true}, // 10 s to go
		{"resumed slowly", 100_000, 1_000, time.Second, play, false},                     // 60 s to go
		{"nothing this attempt", 100_000, 0, time.Second, play, false},
	} {
		if got := playThrough(size, c.have, c.got, c.elapsed, c.play); got != c.want {
			t.Errorf("%s: playThrough(have %d, got %d in %v) = %v, want %v", c.name, c.have, c.got, c.elapsed, got, c.want)
		}
	}
}

// pacedServer serves id's bytes in the chunks the test sends on more, one
// chunk per value (its length in bytes), and lets a test cut the answer
// by sending -1. Later requests (a resume) are served the same way from
// where they ask.
func pacedServer(t *testing.T, s *server, b []byte) chan int {
	more := make(chan int)
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		from := int64(0)
		if v := r.Header.Get("Range"); v != "" {
			from, _ = strconv.ParseInt(v[len("bytes="):len(v)-1], 10, 64)
			w.Header().Set("Content-Range", "bytes "+itoa(from)+"-"+itoa(int64(len(b)-1))+"/"+strconv.Itoa(len(b)))
			w.Header().Set("Content-Length", itoa(int64(len(b))-from))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
		}
		w.(http.Flusher).Flush()
		for from < int64(len(b)) {
			select {
			case k := <-more:
				if k < 0 {
					if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
						conn.Close()
					}
					return true
				}
				end := min(from+int64(k), int64(len(b)))
				w.Write(b[from:end])
				w.(http.Flusher).Flush()
				from = end
			case <-r.Context().Done():
				return true
			}
		}
		return true
	}
	return more
}

// pacedCache is a cache of a server that serves b in the chunks the test
// sends on more (pacedServer).
func pacedCache(t *testing.T, b []byte) (c *Cache, more chan int, s *server) {
	s = newServer(t)
	more = pacedServer(t, s, b)
	return newCache(t, s), more, s
}

// onFakeClock puts c on a fake clock, which times the download's rate.
func onFakeClock(c *Cache) *clock.Fake {
	fake := clock.NewFake(time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC))
	c.cfg.Clock = fake
	return fake
}

// streamRef is the ref of b as node audio of play time play, with its
// chunk list on s.
func (s *server) streamRef(id string, b []byte, play time.Duration) protocol.ContentRef {
	r := ref(id, len(b))
	r.DurationMS = play.Milliseconds()
	return s.chunked(r, b)
}

// readAll reads r to its end in a goroutine.
func readAll(r io.Reader) <-chan readResult {
	done := make(chan readResult, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- readResult{b, err}
	}()
	return done
}

type readResult struct {
	b   []byte
	err error
}

// fetchInTest runs one Fetch attempt in a goroutine, cancelled when the
// test ends (a failed test does not leave it waiting for bytes).
func fetchInTest(t *testing.T, c *Cache, r protocol.ContentRef) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Fetch(ctx, r) }()
	t.Cleanup(cancel)
	return done
}

// fetchAsync runs one Fetch attempt in a goroutine.
func fetchAsync(c *Cache, r protocol.ContentRef) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Fetch(context.Background(), r) }()
	return done
}

// TestStreamPlaysAsItArrives: 20 s of audio arriving faster than it plays
// becomes Playable once the download has run long enough to judge its
// rate (not before), with a Changed signal; a stream opened then reads
// every byte as it arrives and ends once the file is verified and in
// place.
func TestStreamPlaysAsItArrives(t *testing.T) {
	b, id := blob(160_000, 11)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	r := s.streamRef(id, b, 20*time.Second)
	fetched := fetchAsync(c, r)

	more <- 20_000
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == 20_000 })
	if c.Playable(id) {
		t.Fatal("Playable before the download ran PlayThroughEvidence")
	}
	drain(c.Changed())
	fake.Advance(time.Second)
	more <- 20_000 // 40,000 in 1 s: the rest in 3 s, far within 15 s
	select {
	case <-c.Changed():
	case <-time.After(10 * time.Second):
		t.Fatal("no Changed signal after the second chunk")
	}
	if !c.Playable(id) {
		t.Fatal("not Playable after the second chunk: 40,000 of 160,000 bytes in 1 s")
	}

	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	for left := len(b) - 40_000; left > 0; left -= 30_000 {
		more <- 30_000
	}
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || !bytes.Equal(res.b, b) {
		t.Fatalf("stream read %d bytes (equal %v), err %v; want the %d bytes of the content", len(res.b), bytes.Equal(res.b, b), res.err, len(b))
	}
	if !c.Has(id) || !c.Playable(id) {
		t.Errorf("after the download: Has %v, Playable %v", c.Has(id), c.Playable(id))
	}
}

// TestWaitForTheAnswerDoesNotCount: a controller busy with a province's
// downloads answers after 10 s; the rate that counts is the link's, from
// the first bytes on.
func TestWaitForTheAnswerDoesNotCount(t *testing.T) {
	b, id := blob(160_000, 18)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	fetched := fetchAsync(c, s.streamRef(id, b, 20*time.Second))
	waitFor(t, c, "the download begun", func() bool { return c.streamHas(id) == 0 })
	fake.Advance(10 * time.Second)
	more <- 10_000
	waitFor(t, c, "the first bytes", func() bool { return c.streamHas(id) == 10_000 })
	fake.Advance(time.Second)
	more <- 12_000 // 12 KB/s since the first bytes: the rest in 11.5 s, within 15 s
	waitFor(t, c, "Playable", func() bool { return c.Playable(id) })
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
}

// TestSlowDownloadIsNotPlayable: a download that would end after the play
// reached its end is not Playable, however long it runs.
func TestSlowDownloadIsNotPlayable(t *testing.T) {
	b, id := blob(160_000, 12)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	fetched := fetchAsync(c, s.streamRef(id, b, 20*time.Second))
	have := 0
	for range 10 {
		fake.Advance(time.Second)
		more <- 4_000 // 4 KB/s against 8 KB/s of play: 30 s for the rest at best
		have += 4_000
		waitFor(t, c, "the chunk on disk", func() bool { return c.streamHas(id) == int64(have) })
		if c.Playable(id) {
			t.Fatalf("Playable at %d of %d bytes, 4 KB/s", have, len(b))
		}
	}
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
}

// TestStreamWaitsForTheResume: the link is cut mid-download; the stream
// gives what arrived, waits, and goes on with the resumed attempt (a
// Range request, from the last whole chunk: the bytes after it were never
// checked) to the end.
func TestStreamWaitsForTheResume(t *testing.T) {
	b, id := blob(100_000, 13)
	c, more, s := pacedCache(t, b)
	r := s.streamRef(id, b, 12*time.Second)
	fetched := fetchAsync(c, r)
	more <- 30_000
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == 30_000 })
	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	more <- -1
	if err := <-fetched; err == nil {
		t.Fatal("the cut attempt ended without an error")
	}
	select {
	case res := <-got:
		t.Fatalf("the stream ended with the cut attempt: %d bytes, %v", len(res.b), res.err)
	default:
	}
	fetched = fetchAsync(c, r)
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if res := <-got; res.err != nil || !bytes.Equal(res.b, b) {
		t.Fatalf("stream across the resume: %d bytes (equal %v), err %v", len(res.b), bytes.Equal(res.b, b), res.err)
	}
	if rs := s.ranges(); len(rs) != 2 || rs[1] != "bytes=16384-" {
		t.Errorf("requests had Range %q, want none then bytes=16384-", rs)
	}
}

// TestStreamOfWrongBytesFails: bytes that do not match the id's chunk
// list end the download at the first chunk that differs and the stream
// with ErrStreamBroken (and ErrMismatch); the stream gave none of them,
// and the cache keeps nothing.
func TestStreamOfWrongBytesFails(t *testing.T) {
	good, id := blob(50_000, 14)
	bad, _ := blob(50_000, 15)
	c, more, s := pacedCache(t, bad)
	fetched := fetchAsync(c, s.streamRef(id, good, 6*time.Second))
	more <- 10_000
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == 10_000 })
	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	more <- len(bad)
	if err := <-fetched; !errors.Is(err, ErrMismatch) {
		t.Fatalf("Fetch = %v, want ErrMismatch", err)
	}
	res := <-got
	if !errors.Is(res.err, ErrStreamBroken) || !errors.Is(res.err, ErrMismatch) || len(res.b) != 0 {
		t.Fatalf("stream of wrong bytes gave %d bytes and ended with %v, want none and ErrStreamBroken wrapping ErrMismatch", len(res.b), res.err)
	}
	if c.Has(id) || c.Playable(id) || len(leftovers(t, c)) != 0 {
		t.Errorf("after wrong bytes: Has %v, Playable %v, files %v", c.Has(id), c.Playable(id), leftovers(t, c))
	}
}

// TestStreamStops: a reader waiting for bytes returns when its context
// ends, and with ErrStreamBroken when nothing needs the content any more.
func TestStreamStops(t *testing.T) {
	b, id := blob(50_000, 16)
	c, more, s := pacedCache(t, b)
	r := s.streamRef(id, b, 6*time.Second)
	c.Want(wants(r))
	fetched := fetchAsync(c, r)
	more <- protocol.ChunkSize
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == protocol.ChunkSize })

	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.OpenStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	cancel()
	if res := <-got; !errors.Is(res.err, context.Canceled) || len(res.b) != protocol.ChunkSize {
		t.Errorf("cancelled stream: %d bytes, %v; want the first chunk and context.Canceled", len(res.b), res.err)
	}

	st3, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	got = readAll(st3)
	c.Want(nil)
	if res := <-got; !errors.Is(res.err, ErrStreamBroken) || !errors.Is(res.err, errUnwanted) {
		t.Errorf("stream of content no longer wanted ended with %v, want ErrStreamBroken", res.err)
	}
	more <- len(b)
	<-fetched
}

// TestStreamStalls: a reader waiting for bytes that do not come gives up
// after the stall timeout with ErrStreamBroken wrapping ErrStalled.
func TestStreamStalls(t *testing.T) {
	b, id := blob(50_000, 17)
	c, more, s := pacedCache(t, b)
	c.cfg.StallTimeout = 50 * time.Millisecond
	fetched := fetchAsync(c, s.streamRef(id, b, 6*time.Second))
	more <- protocol.ChunkSize
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == protocol.ChunkSize })
	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if res := <-readAll(st); !errors.Is(res.err, ErrStreamBroken) || !errors.Is(res.err, ErrStalled) || len(res.b) != protocol.ChunkSize {
		t.Errorf("stalled stream: %d bytes, %v; want the first chunk and ErrStreamBroken wrapping ErrStalled", len(res.b), res.err)
	}
	if err := <-fetched; !errors.Is(err, ErrStalled) {
		t.Errorf("Fetch = %v, want ErrStalled", err)
	}
}

// streamHas returns the bytes the download of id has on disk, -1 without
// a download.
func (c *Cache) streamHas(id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[id]; s != nil {
		return s.have
	}
	return -1
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// awaitAsync runs AwaitPlayable in a goroutine.
func awaitAsync(ctx context.Context, c *Cache, id string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.AwaitPlayable(ctx, id) }()
	return done
}

// notYet fails the test if the wait ended.
func notYet(t *testing.T, waited <-chan error, when string) {
	t.Helper()
	select {
	case err := <-waited:
		t.Fatalf("AwaitPlayable returned %v %s; want it still waiting", err, when)
	default:
	}
}

// TestAwaitPlayable: a wait for wanted content that has not come returns
// when the download becomes Playable, not at its first bytes, and at once
// for content in place.
func TestAwaitPlayable(t *testing.T) {
	b, id := blob(160_000, 21)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	r := s.streamRef(id, b, 20*time.Second)
	c.Want([]Wanted{{ContentRef: r, Need: fake.Now()}})
	waited := awaitAsync(context.Background(), c, id)
	fetched := fetchAsync(c, r)
	more <- 20_000
	waitFor(t, c, "the first chunk on disk", func() bool { return c.streamHas(id) == 20_000 })
	notYet(t, waited, "at the first bytes")
	fake.Advance(time.Second)
	more <- 20_000 // Playable: 40,000 in 1 s
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("AwaitPlayable = %v, want nil once Playable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitPlayable still waiting 10 s after the download became Playable")
	}
	if !c.Playable(id) {
		t.Error("AwaitPlayable returned, Playable false")
	}
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitPlayable(context.Background(), id); err != nil {
		t.Errorf("AwaitPlayable of cached content = %v", err)
	}
}

// TestAwaitPlayableEnds: the wait fails when nothing wants the content any
// more, and ends with its context.
func TestAwaitPlayableEnds(t *testing.T) {
	b, id := blob(50_000, 22)
	s := newServer(t)
	c := newCache(t, s)
	c.Want([]Wanted{{ContentRef: s.streamRef(id, b, 6*time.Second)}})
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := awaitAsync(ctx, c, id)
	unwanted := awaitAsync(context.Background(), c, id)
	notYet(t, unwanted, "before anything changed")
	c.Want(nil)
	if err := <-unwanted; !errors.Is(err, ErrStreamBroken) || !errors.Is(err, errUnwanted) {
		t.Errorf("AwaitPlayable of content no longer wanted = %v, want ErrStreamBroken wrapping errUnwanted", err)
	}
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStreamBroken) {
		t.Errorf("AwaitPlayable after cancel = %v", err)
	}
	if err := c.AwaitPlayable(context.Background(), id); !errors.Is(err, ErrStreamBroken) {
		t.Errorf("AwaitPlayable of content never wanted = %v, want ErrStreamBroken", err)
	}
}

// TestAwaitPlayableStalls: bytes that keep coming, too slowly to play
// through, keep the wait going past the stall timeout (on the cache's
// clock); once nothing comes for the timeout, it fails as stalled.
func TestAwaitPlayableStalls(t *testing.T) {
	b, id := blob(160_000, 23)
	c, more, s := pacedCache(t, b)
	fake, waited, fetched := awaitWhileFetching(t, c, s.streamRef(id, b, 20*time.Second))
	// The rate: 100 bytes a minute, never Playable.
	trickleThenStall(t, c, fake, more, waited, fetched, 50, func(sent int) bool { return c.streamHas(id) == int64(sent) })
}

// awaitWhileFetching wants r on c, on a fake clock with a one-minute stall
// timeout, and starts a wait for r and then its download (cancelled when
// the test ends); it returns once both have set their timers: the wait's
// stall timer, the download's watchdog.
func awaitWhileFetching(t *testing.T, c *Cache, r protocol.ContentRef) (fake *clock.Fake, waited, fetched <-chan error) {
	t.Helper()
	c.cfg.StallTimeout = time.Minute
	fake = onFakeClock(c)
	c.Want([]Wanted{{ContentRef: r}})
	waited = awaitAsync(context.Background(), c, r.ID)
	waitFor(t, c, "the wait's stall timer", func() bool { return fake.Timers() == 1 })
	fetched = fetchInTest(t, c, r)
	waitFor(t, c, "the download's watchdog", func() bool { return fake.Timers() == 2 })
	return fake, waited, fetched
}

// trickleThenStall runs a download awaitWhileFetching started through
// three stall timeouts with bytes coming all the while (piece bytes sent
// on more every 20 s, two in each timeout: never a timeout between two;
// onDisk(sent) says the bytes sent so far are on disk), the wait still
// waiting after each; then nothing comes for a timeout, and the wait must
// fail as stalled (ErrStreamBroken wrapping ErrStalled), as must the
// download (its watchdog, on the same clock).
func trickleThenStall(t *testing.T, c *Cache, fake *clock.Fake, more chan<- int, waited, fetched <-chan error, piece int, onDisk func(sent int) bool) {
	t.Helper()
	sent := 0
	for range 3 {
		for range 2 {
			fake.Advance(20 * time.Second)
			more <- piece
			sent += piece
			waitFor(t, c, "the bytes on disk", func() bool { return onDisk(sent) })
		}
		fake.Advance(20 * time.Second)
		waitFor(t, c, "the stall timer set again", func() bool { return fake.Timers() == 2 || len(waited) > 0 })
		notYet(t, waited, "while bytes kept coming")
	}
	fake.Advance(time.Minute) // nothing came in this one
	select {
	case err := <-waited:
		if !errors.Is(err, ErrStreamBroken) || !errors.Is(err, ErrStalled) {
			t.Errorf("AwaitPlayable = %v, want ErrStreamBroken wrapping ErrStalled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitPlayable still waiting 10 s after a stall timeout without bytes")
	}
	if err := <-fetched; !errors.Is(err, ErrStalled) {
		t.Errorf("Fetch = %v, want ErrStalled", err)
	}
}

// TestAwaitPlayableStallsOneTimeoutAfterTheLastByte: a play waiting for
// its message learns of a stall one stall timeout after the last byte
// came, not later. The wait looked once a timeout whether anything had
// come since its last look: a byte 10 s into a one-minute timeout put the
// next look at 2 min, and the stall was reported 110 s after that byte,
// the speaker silent for the extra 50 s before the node tried again.
func TestAwaitPlayableStallsOneTimeoutAfterTheLastByte(t *testing.T) {
	b, id := blob(160_000, 24)
	c, more, s := pacedCache(t, b)
	fake, waited, fetched := awaitWhileFetching(t, c, s.streamRef(id, b, 20*time.Second))
	fake.Advance(10 * time.Second)
	more <- 50 // the last bytes that come: too few to play through
	waitFor(t, c, "the bytes on disk", func() bool { return c.streamHas(id) == 50 })
	fake.Advance(50 * time.Second) // a timeout into the wait, 50 s after the bytes
	waitFor(t, c, "the stall timer set again", func() bool { return fake.Timers() == 2 || len(waited) > 0 })
	notYet(t, waited, "50 s after the last bytes")
	fake.Advance(10 * time.Second) // a timeout after the last bytes
	// The download's watchdog, fed by the same bytes, cuts it now too.
	if err := <-fetched; !errors.Is(err, ErrStalled) {
		t.Errorf("Fetch = %v, want ErrStalled", err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, ErrStreamBroken) || !errors.Is(err, ErrStalled) {
			t.Errorf("AwaitPlayable = %v, want ErrStreamBroken wrapping ErrStalled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitPlayable still waiting a stall timeout after the last bytes came")
	}
}

// streamChecked returns the checked bytes of id's download, -1 without a
// download.
func (c *Cache) streamChecked(id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[id]; s != nil {
		return s.checked
	}
	return -1
}

// TestStreamReadsOnlyCheckedChunks: of 20,000 bytes arrived, a stream reads
// the first chunk, checked, and not the 3,616 after it until their chunk
// is whole and checked.
func TestStreamReadsOnlyCheckedChunks(t *testing.T) {
	b, id := blob(50_000, 24)
	c, more, s := pacedCache(t, b)
	fetched := fetchAsync(c, s.streamRef(id, b, 6*time.Second))
	more <- 20_000
	waitFor(t, c, "20,000 bytes on disk", func() bool { return c.streamHas(id) == 20_000 })
	if got := c.streamChecked(id); got != protocol.ChunkSize {
		t.Fatalf("checked %d of 20,000 bytes, want the first chunk (%d)", got, protocol.ChunkSize)
	}
	// A reader whose context is over reads what it may and stops there.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := c.OpenStream(done, id)
	if err != nil {
		t.Fatal(err)
	}
	res := <-readAll(st)
	st.Close()
	if !errors.Is(res.err, context.Canceled) || !bytes.Equal(res.b, b[:protocol.ChunkSize]) {
		t.Fatalf("stream of 20,000 bytes arrived read %d bytes (%v); want the first chunk's %d", len(res.b), res.err, protocol.ChunkSize)
	}
	more <- 3*protocol.ChunkSize - 20_000
	waitFor(t, c, "two more chunks checked", func() bool { return c.streamChecked(id) == 3*protocol.ChunkSize })
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
}

// TestPlayableOnceAChunkIsChecked: bytes coming fast enough to play
// through do not make the content Playable before its first chunk is
// whole and checked: a play begun then would wait for it.
func TestPlayableOnceAChunkIsChecked(t *testing.T) {
	b, id := blob(160_000, 28)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	fetched := fetchAsync(c, s.streamRef(id, b, 20*time.Second))
	more <- 1_000
	waitFor(t, c, "the first bytes", func() bool { return c.streamHas(id) == 1_000 })
	fake.Advance(time.Second)
	more <- 14_000 // 15,000 in 1 s since the first: the rest in 9.7 s, within 15 s
	waitFor(t, c, "15,000 bytes on disk", func() bool { return c.streamHas(id) == 15_000 })
	if c.Playable(id) {
		t.Fatal("Playable with no chunk checked")
	}
	more <- protocol.ChunkSize - 15_000
	waitFor(t, c, "Playable once the first chunk is checked", func() bool { return c.Playable(id) })
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
}

// TestResumeChecksThePartialFile: a partial file left by an earlier run
// whose second chunk is damaged (a disk that lost a write) is checked
// against the list that comes in front of the resumed bytes: the attempt
// (which asks from the last whole chunk: the bytes after it were never
// checked) keeps the first chunk only and fails, and the next resumes after
// it and ends with the content.
func TestResumeChecksThePartialFile(t *testing.T) {
	b, id := blob(50_000, 25)
	s := newServer(t)
	s.files[id] = b
	c := newCache(t, s)
	part := bytes.Clone(b[:40_000])
	part[protocol.ChunkSize+100] ^= 0xff
	if err := os.WriteFile(c.Path(id)+partSuffix, part, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.streamRef(id, b, 6*time.Second)
	if err := c.Fetch(context.Background(), r); err == nil {
		t.Fatal("the attempt that found the partial file damaged ended without an error")
	}
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if rs := s.ranges(); len(rs) != 2 || rs[0] != "bytes=32768-" || rs[1] != "bytes=16384-" {
		t.Errorf("requests had Range %q, want bytes=32768- then bytes=16384-", rs)
	}
	f, err := c.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, b) {
		t.Error("the cached file is not the content")
	}
}

// TestWrongChunkListPlaysOnlyWhenCached: a chunk list that does not hash
// to the ref's root (a network that changed it), or an answer without one
// (a proxy that dropped the query), checks nothing: the download, however
// fast, is not Playable until the whole file is in place, verified by its
// id.
func TestWrongChunkListPlaysOnlyWhenCached(t *testing.T) {
	for _, wrong := range []bool{true, false} {
		t.Run(map[bool]string{true: "wrong list", false: "no list"}[wrong], func(t *testing.T) { testNoGoodList(t, wrong) })
	}
}

func testNoGoodList(t *testing.T, wrong bool) {
	b, id := blob(160_000, 26)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	r := s.streamRef(id, b, 20*time.Second)
	if wrong {
		s.lists[id][5] ^= 1
	} else {
		s.noLists = true
	}
	fetched := fetchAsync(c, r)
	more <- 20_000
	waitFor(t, c, "the first bytes", func() bool { return c.streamHas(id) == 20_000 })
	fake.Advance(time.Second)
	more <- 40_000 // 60,000 in 1 s, three whole chunks
	waitFor(t, c, "60,000 bytes on disk", func() bool { return c.streamHas(id) == 60_000 })
	if c.Playable(id) || c.streamChecked(id) != 0 {
		t.Errorf("without a good list: Playable %v, %d bytes checked; want neither", c.Playable(id), c.streamChecked(id))
	}
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if !c.Has(id) || !c.Playable(id) {
		t.Errorf("after the download: Has %v, Playable %v", c.Has(id), c.Playable(id))
	}
}

// TestUnchunkedPlaysOnlyWhenCached: a ref without a chunk root (from a
// controller that makes no chunk lists) is not played as it arrives, however
// fast it comes: its bytes could not be checked before the speaker had them.
func TestUnchunkedPlaysOnlyWhenCached(t *testing.T) {
	b, id := blob(160_000, 27)
	c, more, _ := pacedCache(t, b)
	fake := onFakeClock(c)
	r := ref(id, len(b))
	r.DurationMS = 20_000
	fetched := fetchAsync(c, r)
	more <- 20_000
	fake.Advance(time.Second)
	more <- 20_000
	waitFor(t, c, "40,000 bytes on disk", func() bool {
		st, err := os.Stat(c.Path(id) + partSuffix)
		return err == nil && st.Size() == 40_000
	})
	if c.Playable(id) || c.streamHas(id) != -1 {
		t.Errorf("unchunked download at 40,000 of 160,000 bytes in 1 s: Playable %v, stream %d; want neither", c.Playable(id), c.streamHas(id))
	}
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if !c.Playable(id) {
		t.Error("not Playable once cached")
	}
}

// TestUncheckedBytesAreVerified: bytes no list could check (an answer
// without one, or a list made for them that the ref's root does not name:
// a network that changed both) are verified whole against the id, and
// refused.
func TestUncheckedBytesAreVerified(t *testing.T) {
	for _, name := range []string{"no list", "their own list"} {
		t.Run(name, func(t *testing.T) {
			good, id := blob(50_000, 30)
			bad, _ := blob(50_000, 31)
			s := newServer(t)
			c := newCache(t, s)
			r := s.streamRef(id, good, 6*time.Second)
			s.files[id] = bad
			if name == "no list" {
				s.noLists = true
			} else {
				s.chunked(protocol.ContentRef{ID: id}, bad) // serves bad's list for id
			}
			if err := c.Fetch(context.Background(), r); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Fetch = %v, want ErrMismatch", err)
			}
			if c.Has(id) || len(leftovers(t, c)) != 0 {
				t.Errorf("after wrong bytes: Has %v, files %v", c.Has(id), leftovers(t, c))
			}
		})
	}
}

// TestCachedFileIsCheckedAsItIsRead: content fetched with its chunk list
// keeps the list beside the file; a play's reader of the cached file
// checks each chunk before giving it, so a file the node's storage damaged
// gives its good first chunk and then ErrDamaged naming the content.
// Without the list the file is read as it is. Discard deletes both.
func TestCachedFileIsCheckedAsItIsRead(t *testing.T) {
	b, id := blob(50_000, 32)
	s := newServer(t)
	s.files[id] = b
	c := newCache(t, s)
	if err := c.Fetch(context.Background(), s.streamRef(id, b, 6*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, c); !slices.Equal(got, []string{id, id + listSuffix}) {
		t.Fatalf("cache holds %v, want the file and its list", got)
	}
	damaged := bytes.Clone(b)
	damaged[protocol.ChunkSize+100] ^= 1
	if err := os.WriteFile(c.Path(id), damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() readResult {
		st, err := c.OpenStream(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return <-readAll(st)
	}
	res := read()
	var de *DamagedError
	if !errors.As(res.err, &de) || de.ID != id || !errors.Is(res.err, ErrDamaged) || !bytes.Equal(res.b, b[:protocol.ChunkSize]) {
		t.Errorf("damaged file read %d bytes, %v; want the first chunk and a DamagedError naming %s", len(res.b), res.err, id)
	}
	if err := os.Remove(c.Path(id) + listSuffix); err != nil {
		t.Fatal(err)
	}
	if res := read(); res.err != nil || !bytes.Equal(res.b, damaged) {
		t.Errorf("without its list the file read %d bytes, %v; want it as it is", len(res.b), res.err)
	}
	os.WriteFile(c.Path(id)+listSuffix, s.lists[id], 0o644)
	c.Discard(id)
	if got := leftovers(t, c); c.Has(id) || !slices.Equal(got, []string{damageFile}) {
		t.Errorf("after Discard: Has %v, files %v; want only the damage record", c.Has(id), got)
	}
}

// TestStreamEndsWithAResumeWithoutAList: an alert's message was playing
// as it arrived when the link was cut; the resumed attempt came without a
// chunk list (a proxy that dropped the query), so nothing more was checked
// as it came, and the play waited the whole stall timeout after the
// message was in the cache, verified, and then stopped (suspended) to
// begin again. Once the download is verified every byte of it is checked:
// the stream reads to its end.
func TestStreamEndsWithAResumeWithoutAList(t *testing.T) {
	b, id := blob(100_000, 31)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	r := s.streamRef(id, b, 12*time.Second)
	fetched := fetchAsync(c, r)
	more <- 40_000
	waitFor(t, c, "two chunks checked", func() bool { return c.streamChecked(id) == 2*protocol.ChunkSize })
	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	more <- -1
	if err := <-fetched; err == nil {
		t.Fatal("the cut attempt ended without an error")
	}
	s.mu.Lock()
	s.noLists = true
	s.mu.Unlock()
	fetched = fetchAsync(c, r)
	more <- len(b)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.err != nil || !bytes.Equal(res.b, b) {
			t.Fatalf("stream across a resume without a list: %d bytes (equal %v), err %v", len(res.b), bytes.Equal(res.b, b), res.err)
		}
	case <-time.After(10 * time.Second):
		fake.Advance(c.cfg.StallTimeout)
		res := <-got
		t.Fatalf("the stream of verified content still waited 10 s after its download ended (then %d bytes, %v)", len(res.b), res.err)
	}
}

// TestStreamWaitsWhileBytesCome: a play reading a message as it arrived
// over a link that slowed down stopped as stalled a minute after it began
// to wait, although bytes kept coming, too slowly to complete the next
// chunk within the minute. A stream fails as stalled only when its
// download brings nothing for the stall timeout (on the cache's clock),
// whether or not the bytes that come complete a chunk.
func TestStreamWaitsWhileBytesCome(t *testing.T) {
	b, id := blob(100_000, 32)
	c, more, s := pacedCache(t, b)
	fake := onFakeClock(c)
	fetched := fetchInTest(t, c, s.streamRef(id, b, 12*time.Second))
	more <- 40_000
	waitFor(t, c, "two chunks checked", func() bool { return c.streamChecked(id) == 2*protocol.ChunkSize })
	st, err := c.OpenStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(st)
	armed := func(when string) {
		t.Helper()
		waitFor(t, c, "the stream's stall timer "+when, func() bool { return fake.Timers() == 2 || len(got) > 0 })
		if len(got) > 0 {
			res := <-got
			t.Fatalf("the stream ended %s: %d bytes, %v", when, len(res.b), res.err)
		}
	}
	armed("at the wait")
	have := 40_000
	for range 5 { // 1,000 bytes every 40 s: no chunk completes in 200 s
		more <- 1_000
		have += 1_000
		waitFor(t, c, "the bytes on disk", func() bool { return c.streamHas(id) == int64(have) })
		fake.Advance(40 * time.Second)
		armed("while bytes kept coming")
	}
	fake.Advance(c.cfg.StallTimeout) // nothing came in a whole timeout
	select {
	case res := <-got:
		if !errors.Is(res.err, ErrStreamBroken) || !errors.Is(res.err, ErrStalled) || !bytes.Equal(res.b, b[:2*protocol.ChunkSize]) {
			t.Errorf("stalled stream: %d bytes, %v; want the two checked chunks and ErrStreamBroken wrapping ErrStalled", len(res.b), res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream still waited 10 s after nothing came for the stall timeout")
	}
	if err := <-fetched; !errors.Is(err, ErrStalled) {
		t.Errorf("Fetch = %v, want ErrStalled", err)
	}
}

// TestAwaitPlayableFailsAtOnceOnWrongBytes: an alert's message whose first
// chunk did not match its list (a network that altered it) left the play
// waiting after its chime, the speaker on in silence, until the stall
// timeout, or for as long as each retry brought wrong bytes again. A wait
// learns of an attempt that ended in wrong bytes at once (ErrStreamBroken
// wrapping ErrMismatch), and the download is retried as any failed one.
func TestAwaitPlayableFailsAtOnceOnWrongBytes(t *testing.T) {
	good, id := blob(160_000, 33)
	bad, _ := blob(160_000, 34)
	s := newServer(t)
	s.files[id] = good
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false // the retry gets the content
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
		return true
	}
	c := newCache(t, s)
	fake := onFakeClock(c)
	c.cfg.Jitter = func() float64 { return 0.5 }
	r := s.streamRef(id, good, 20*time.Second)
	c.Want([]Wanted{{ContentRef: r, Need: fake.Now()}})
	waited := awaitAsync(context.Background(), c, id)
	waitFor(t, c, "the wait's stall timer", func() bool { return fake.Timers() == 1 })
	runCache(t, c) // the clock stands still: no stall timeout passes
	select {
	case err := <-waited:
		if !errors.Is(err, ErrStreamBroken) || !errors.Is(err, ErrMismatch) {
			t.Fatalf("AwaitPlayable = %v, want ErrStreamBroken wrapping ErrMismatch", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitPlayable still waiting 10 s after the download's bytes turned out wrong, the clock standing still")
	}
	waitFor(t, c, "the retry's backoff", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.retry[id].attempts == 1
	})
	// The failure notes the attempt before Run arms its timer for the
	// retry: advanced in between, the timer was set past the new time and
	// never fired (a full run under the race detector timed out so).
	waitFor(t, c, "the retry's timer", func() bool {
		next, ok := fake.Next()
		return ok && !next.After(fake.Now().Add(c.cfg.BackoffMin))
	})
	fake.Advance(c.cfg.BackoffMin)
	waitFor(t, c, "the content, retried", func() bool { return c.Has(id) })
	if err := c.AwaitPlayable(context.Background(), id); err != nil {
		t.Errorf("AwaitPlayable once the retry cached the content = %v", err)
	}
	if got := len(s.ranges()); got != 2 {
		t.Errorf("%d requests, want the wrong answer and the retry", got)
	}
}

// TestAwaitPlayableWaitsWhileUnchunkedBytesCome: an alert's message from a
// controller that makes no chunk lists (a ref without a chunk root) was
// reported stalled a minute after the play began to wait for it, its bytes
// coming steadily all the while: only chunked downloads recorded when
// bytes came. Every download's bytes count: the wait fails as stalled only
// once nothing comes for the stall timeout.
func TestAwaitPlayableWaitsWhileUnchunkedBytesCome(t *testing.T) {
	b, id := blob(160_000, 35)
	c, more, _ := pacedCache(t, b)
	r := ref(id, len(b)) // no chunk root
	r.DurationMS = 20_000
	fake, waited, fetched := awaitWhileFetching(t, c, r)
	// Unchunked, the download has no checked bytes to count: the part file's size.
	trickleThenStall(t, c, fake, more, waited, fetched, 10_000, func(sent int) bool {
		st, err := os.Stat(c.Path(id) + partSuffix)
		return err == nil && st.Size() == int64(sent)
	})
}
