package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func blob(n int, seed byte) ([]byte, string) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// server serves content by id with Range support and HTTP Basic auth, and
// lets a test misbehave per request. Asked with chunks=1, it puts the
// content's list from lists in front (unless noLists), as the controller
// does, of whatever a test serves.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	lists    map[string][]byte                                        // content id → its chunk list
	noLists  bool                                                     // answer chunks=1 with the audio alone, as a proxy that drops the query
	requests []string                                                 // Range header of each request ("" for none)
	handle   func(n int, w http.ResponseWriter, r *http.Request) bool // true: handled
}

func newServer(t *testing.T) *server {
	s := &server{files: map[string][]byte{}, lists: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "n1" || pass != "s3cret" {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/content/"), "/audio")
		s.mu.Lock()
		s.requests = append(s.requests, r.Header.Get("Range"))
		n := len(s.requests)
		h := s.handle
		b, ok := s.files[id]
		list, listed := s.lists[id]
		if r.URL.Query().Get("chunks") == "1" && listed && !s.noLists {
			w = protocol.ChunkedAudioWriter(w, list)
		}
		s.mu.Unlock()
		if h != nil && h(n, w, r) {
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(s.Close)
	return s
}

// chunked returns the ref of content id with b's chunk list, which s
// serves: b is what id names, whatever s serves as its audio.
func (s *server) chunked(r protocol.ContentRef, b []byte) protocol.ContentRef {
	list, err := protocol.ChunkList(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.lists[r.ID] = list
	s.mu.Unlock()
	r.Chunks = protocol.ChunkRoot(list)
	return r
}

func (s *server) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func newCache(t *testing.T, s *server) *Cache {
	t.Helper()
	return newCacheIn(t, s, filepath.Join(t.TempDir(), "content"))
}

// newCacheIn opens the cache in dir: what a restarted node finds there.
func newCacheIn(t *testing.T, s *server, dir string) *Cache {
	t.Helper()
	c, err := Open(Config{
		Dir: dir, BaseURL: s.URL, Username: "n1", Secret: "s3cret",
		Client:     s.Client(),
		BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ref(id string, size int) protocol.ContentRef {
	return protocol.ContentRef{ID: id, Size: int64(size), Path: "/api/v1/content/" + id + "/audio"}
}

func leftovers(t *testing.T, c *Cache) []string {
	t.Helper()
	es, err := os.ReadDir(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetch(t *testing.T) {
	s := newServer(t)
	b, id := blob(100_000, 1)
	s.files[id] = b
	c := newCache(t, s)
	if c.Has(id) {
		t.Fatal("Has before fetch")
	}
	if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(c.Path(id))
	if err != nil || !bytes.Equal(got, b) || !c.Has(id) {
		t.Fatalf("cached file: %v, equal %v, Has %v", err, bytes.Equal(got, b), c.Has(id))
	}
	if names := leftovers(t, c); !slices.Equal(names, []string{id}) {
		t.Fatalf("cache dir holds %v", names)
	}
	// A second cache over the same directory finds it without fetching.
	c2, err := Open(Config{Dir: c.Dir(), BaseURL: s.URL, Username: "n1", Secret: "s3cret"})
	if err != nil || !c2.Has(id) {
		t.Fatalf("reopened cache: %v, Has %v", err, c2.Has(id))
	}
}

func TestFetchWrongCredentials(t *testing.T) {
	s := newServer(t)
	b, id := blob(100, 1)
	s.files[id] = b
	c := newCache(t, s)
	c.cfg.Secret = "wrong"
	if err := c.Fetch(context.Background(), ref(id, len(b))); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Fetch with a wrong secret = %v, want a 401 error", err)
	}
}

func TestFetchResumesAfterCut(t *testing.T) {
	s := newServer(t)
	b, id := blob(200_000, 2)
	s.files[id] = b
	const cutAt = 70_000
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		// Send the headers and part of the body, then drop the link.
		w.Header().Set("Content-Length", "200000")
		w.WriteHeader(http.StatusOK)
		w.Write(b[:cutAt])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
	c := newCache(t, s)
	if err := c.Fetch(context.Background(), ref(id, len(b))); err == nil {
		t.Fatal("Fetch over a cut link: no error")
	}
	part, err := os.Stat(c.Path(id) + partSuffix)
	if err != nil || part.Size() == 0 || part.Size() > cutAt {
		t.Fatalf("part file after the cut: %v, %v bytes", err, part.Size())
	}
	if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(c.Path(id))
	if !bytes.Equal(got, b) {
		t.Fatal("resumed file differs")
	}
	if r := s.ranges(); len(r) != 2 || r[0] != "" || r[1] != "bytes="+itoa(part.Size())+"-" {
		t.Fatalf("requests had Range %q, want none then bytes=%d-", r, part.Size())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFetchMismatchStartsOver(t *testing.T) {
	s := newServer(t)
	b, id := blob(50_000, 3)
	bad, _ := blob(50_000, 4)
	s.files[id] = bad // the server has the wrong bytes under this id
	c := newCache(t, s)
	err := c.Fetch(context.Background(), ref(id, len(b)))
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Fetch of wrong bytes = %v, want ErrMismatch", err)
	}
	if names := leftovers(t, c); len(names) != 0 || c.Has(id) {
		t.Fatalf("after a mismatch the cache holds %v (Has %v)", names, c.Has(id))
	}
	s.mu.Lock()
	s.files[id] = b
	s.mu.Unlock()
	if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
		t.Fatal(err)
	}
	if r := s.ranges(); len(r) != 2 || r[1] != "" {
		t.Fatalf("requests had Range %q: the retry must start from zero", r)
	}
}

func TestFetchServerIgnoresRange(t *testing.T) {
	s := newServer(t)
	b, id := blob(30_000, 5)
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Write(b) // always 200 with everything
		return true
	}
	c := newCache(t, s)
	if err := os.WriteFile(c.Path(id)+partSuffix, b[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c.Path(id)); !bytes.Equal(got, b) {
		t.Fatal("file differs after a 200 answer to a range request")
	}
}

// TestFetchServerIgnoresRangeOverADamagedStart: a partial file whose
// first bytes the card damaged, fetched through a proxy that ignores
// ranges, is replaced by the content whole when the answer has the
// content's length; compared with the damaged start, the real content
// would be refused as a captive portal's page on every attempt.
func TestFetchServerIgnoresRangeOverADamagedStart(t *testing.T) {
	s := newServer(t)
	b, id := blob(30_000, 5)
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b) // always 200 with everything
		return true
	}
	c := newCache(t, s)
	damaged := bytes.Clone(b[:1000])
	damaged[10] ^= 0xff
	if err := os.WriteFile(c.Path(id)+partSuffix, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(context.Background(), ref(id, len(b))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c.Path(id)); !bytes.Equal(got, b) {
		t.Fatal("file differs after a 200 answer of the content's length over a damaged partial")
	}
}

func TestFetchStalls(t *testing.T) {
	s := newServer(t)
	b, id := blob(30_000, 6)
	release := make(chan struct{})
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Length", "30000")
		w.Write(b[:10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	defer close(release)
	c := newCache(t, s)
	c.cfg.StallTimeout = 50 * time.Millisecond
	if err := c.Fetch(context.Background(), ref(id, len(b))); !errors.Is(err, ErrStalled) {
		t.Fatalf("Fetch from a stalled server = %v, want ErrStalled", err)
	}
}

func TestRunFetchesWantedWithRetries(t *testing.T) {
	s := newServer(t)
	b1, id1 := blob(10_000, 7)
	b2, id2 := blob(20_000, 8)
	s.files[id1], s.files[id2] = b1, b2
	var failures atomic.Int32
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n <= 3 {
			failures.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	c := newCache(t, s)
	// Something unwanted is in the cache: it stays while there is room,
	// but its partial download goes.
	stale := strings.Repeat("ab", 32)
	os.WriteFile(c.Path(stale), []byte("x"), 0o644)
	os.WriteFile(c.Path(stale)+partSuffix, []byte("x"), 0o644)
	c2, _ := Open(c.cfg)
	c = c2

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	c.Want(wants(ref(id2, len(b2)), ref(id1, len(b1)), protocol.ContentRef{ID: "not-an-id"}))
	if m := c.Missing(); !slices.Equal(m, []string{id2, id1}) {
		t.Fatalf("Missing() = %v, want need order", m)
	}
	deadline := time.After(10 * time.Second)
	for len(c.Missing()) > 0 {
		select {
		case <-c.Changed():
		case <-deadline:
			t.Fatalf("still missing %v after %d failures", c.Missing(), failures.Load())
		}
	}
	if failures.Load() != 3 {
		t.Fatalf("%d failures, want 3", failures.Load())
	}
	if names := leftovers(t, c); len(names) != 3 || !c.Has(id1) || !c.Has(id2) || !c.Has(stale) {
		t.Fatalf("cache holds %v", names)
	}
	// Content dropped from the wanted set stays while there is room.
	c.Want(wants(ref(id1, len(b1))))
	if names := leftovers(t, c); len(names) != 3 || !c.Has(id2) {
		t.Fatalf("after Want(id1) the cache holds %v", names)
	}
}

// wants makes Wanted of refs no occurrence plays yet.
func wants(refs ...protocol.ContentRef) []Wanted {
	out := make([]Wanted, len(refs))
	for i, r := range refs {
		out[i] = Wanted{ContentRef: r}
	}
	return out
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	s := newServer(t)
	files := map[string]string{} // name → id
	for i, name := range []string{"a", "b", "c", "d"} {
		b, id := blob(10_000, byte(i))
		s.files[id] = b
		files[name] = id
	}
	r := func(name string) protocol.ContentRef { return ref(files[name], 10_000) }
	fake := clock.NewFake(time.Date(2025, 5, 1, 5, 0, 0, 0, time.UTC))
	cfg := Config{
		Dir: filepath.Join(t.TempDir(), "content"), BaseURL: s.URL, Username: "n1", Secret: "s3cret",
		Client: s.Client(), Clock: fake, MaxBytes: 25_000,
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(c *Cache, names ...string) {
		t.Helper()
		for _, n := range names {
			fake.Advance(time.Minute)
			if err := c.Fetch(context.Background(), r(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	holds := func(c *Cache, want ...string) {
		t.Helper()
		var got []string
		for _, n := range []string{"a", "b", "c", "d"} {
			if c.Has(files[n]) {
				got = append(got, n)
				if _, err := os.Stat(c.Path(files[n])); err != nil {
					t.Errorf("%s is indexed but its file is gone: %v", n, err)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("cache holds %v, want %v (files %v)", got, want, leftovers(t, c))
		}
		if used, _, n := c.Usage(); used != int64(len(want))*10_000 || n != len(want) {
			t.Errorf("Usage = %d bytes in %d files, want %d files of 10000", used, n, len(want))
		}
	}

	c.Want(wants(r("a"), r("b")))
	fetch(c, "a", "b")
	fake.Advance(time.Minute)
	f, err := c.Open(files["a"]) // a played after b arrived
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	// A new schedule wants c only: a and b stay while there is room, and
	// c takes the place of the least recently used, b.
	c.Want(wants(r("c")))
	holds(c, "a", "b")
	fetch(c, "c")
	holds(c, "a", "c")

	// After a restart the order is still known: a was used before c came.
	c2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	holds(c2, "a", "c")
	c2.Want(wants(r("d")))
	fetch(c2, "d")
	holds(c2, "c", "d")

	// Wanted content is never evicted, even past the limit.
	c2.Want(wants(r("a"), r("b"), r("c"), r("d")))
	fetch(c2, "a", "b")
	holds(c2, "a", "b", "c", "d")
	if used, limit, _ := c2.Usage(); used != 40_000 || limit != 25_000 {
		t.Errorf("Usage = %d of %d", used, limit)
	}
	// Once not wanted, the least recently used go first: c and d, not a,
	// which was fetched again.
	c2.Want(wants(r("b")))
	holds(c2, "a", "b")
}

func TestSpreadFirstFetches(t *testing.T) {
	fake := clock.NewFake(time.Date(2025, 5, 1, 5, 0, 0, 0, time.UTC))
	c, err := Open(Config{Dir: t.TempDir(), BaseURL: "http://ctl", Clock: fake, Spread: 40 * time.Second, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	_, soon := blob(10, 1)
	_, later := blob(10, 2)
	_, unplayed := blob(10, 3)
	now := fake.Now()
	c.Want([]Wanted{
		{ContentRef: ref(soon, 10), Need: now.Add(8 * time.Second)},                 // waits 0.5 × 8s/4
		{ContentRef: ref(later, 10), Need: now.Add(time.Hour)},                      // waits 0.5 × 40s
		{ContentRef: ref(unplayed, 10)},                                             // waits 0.5 × 40s
		{ContentRef: ref(strings.Repeat("0", 64), 10), Need: now.Add(-time.Second)}, // overdue: at once
	})
	waits := func() map[string]time.Duration {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := map[string]time.Duration{}
		for id, rt := range c.retry {
			out[id] = rt.next.Sub(fake.Now())
		}
		return out
	}
	w := waits()
	if w[soon] != time.Second || w[later] != 20*time.Second || w[unplayed] != 20*time.Second || w[strings.Repeat("0", 64)] != 0 {
		t.Errorf("first waits %v", w)
	}
	// The same content wanted again keeps its place.
	fake.Advance(500 * time.Millisecond)
	c.Want([]Wanted{{ContentRef: ref(soon, 10), Need: now.Add(8 * time.Second)}, {ContentRef: ref(later, 10), Need: now.Add(time.Hour)}})
	if w := waits(); w[soon] != 500*time.Millisecond || w[later] != 19500*time.Millisecond {
		t.Errorf("waits after the same Want %v", w)
	}
	// A reconnect spreads the retries again, from now.
	c.mu.Lock()
	c.retry[later] = retry{attempts: 7, next: fake.Now().Add(5 * time.Minute)}
	c.mu.Unlock()
	c.Reconnected()
	if w := waits(); w[later] != 20*time.Second || w[soon] != 937500*time.Microsecond {
		t.Errorf("waits after a reconnect %v", w)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	c := &Cache{cfg: Config{BackoffMin: time.Second, BackoffMax: time.Minute}}
	for _, tc := range []struct {
		attempts int
		jitter   float64
		want     time.Duration
	}{
		{0, 0.5, 500 * time.Millisecond},
		{0, 0, 0},
		{1, 0.5, time.Second},
		{3, 0.5, 4 * time.Second},
		{6, 1, time.Minute},         // 64s capped to 60s
		{50, 0.5, 30 * time.Second}, // no overflow far out
	} {
		c.cfg.Jitter = func() float64 { return tc.jitter }
		if got := c.backoff(tc.attempts, c.cfg.BackoffMax); got != tc.want {
			t.Errorf("backoff(%d) with jitter %v = %v, want %v", tc.attempts, tc.jitter, got, tc.want)
		}
	}
}

func TestURL(t *testing.T) {
	c := &Cache{cfg: Config{BaseURL: "http://ctl:8080/"}}
	id := strings.Repeat("0f", 32)
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/content/" + id + "/audio", "http://ctl:8080/api/v1/content/" + id + "/audio"},
		{"", "http://ctl:8080/api/v1/content/" + id + "/audio"},
		{"//evil.example/x", "http://ctl:8080/api/v1/content/" + id + "/audio"},
		{"http://evil.example/x", "http://ctl:8080/api/v1/content/" + id + "/audio"},
	} {
		if got := c.URL(protocol.ContentRef{ID: id, Path: tc.path}); got != tc.want {
			t.Errorf("URL(path %q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func FuzzRangeStart(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 70000-199999/200000", "bytes */100", "bytes -5/10", "", "items 1-2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := rangeStart(v)
		if err == nil && !strings.HasPrefix(v, "bytes ") {
			t.Fatalf("rangeStart(%q) = %d without the bytes unit", v, n)
		}
	})
}

// stallingServer serves the content of id stalled: the first request for
// it gets its first 64 KiB and then nothing, as over a link that is
// slowly downloading tomorrow's bulletin, until the client gives up on it;
// started is closed once those bytes are sent, gaveUp once the client
// left. Later requests are served whole. It records each request as
// "<id prefix> <Range>".
func stallingServer(t *testing.T, s *server, id string) (started, gaveUp chan struct{}) {
	started, gaveUp = make(chan struct{}), make(chan struct{})
	first := true
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		s.mu.Lock()
		s.requests[n-1] = r.URL.Path[len("/api/v1/content/"):][:8] + " " + r.Header.Get("Range")
		stall := first && strings.Contains(r.URL.Path, id)
		if stall {
			first = false
		}
		b := s.files[id]
		s.mu.Unlock()
		if !stall {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		w.Write(b[:64<<10])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		close(gaveUp)
		return true
	}
	return started, gaveUp
}

// runCache runs c until the test ends.
func runCache(t *testing.T, c *Cache) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor waits for cond, woken by the cache's changes.
func waitFor(t *testing.T, c *Cache, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-c.Changed():
		case <-time.After(10 * time.Millisecond): // cond may hold on what Changed does not signal
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestSoonerNeedMakesWay: an alert's message, needed in 300 ms (the
// alert's lead), does not wait behind a download of a bulletin needed in
// four hours over a slow link: that download pauses, the message comes in
// after its spread (a quarter of the lead at most), and the bulletin
// resumes from the bytes it had (a Range request), with no failure
// counted.
func TestSoonerNeedMakesWay(t *testing.T) {
	s := newServer(t)
	bulletin, bid := blob(1<<20, 3)
	alert, aid := blob(50_000, 4)
	s.files[bid], s.files[aid] = bulletin, alert
	started, gaveUp := stallingServer(t, s, bid)
	c := newCache(t, s)
	c.cfg.Spread, c.cfg.Jitter = 200*time.Millisecond, func() float64 { return 0.5 }
	runCache(t, c)

	now := time.Now()
	c.Want([]Wanted{{ContentRef: ref(bid, len(bulletin)), Need: now.Add(4 * time.Hour)}})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the bulletin's download did not start")
	}
	waitFor(t, c, "the bulletin's first bytes on disk", func() bool {
		fi, err := os.Stat(c.Path(bid) + partSuffix)
		return err == nil && fi.Size() > 0
	})
	c.Want([]Wanted{{ContentRef: ref(aid, len(alert)), Need: time.Now().Add(300 * time.Millisecond)}, {ContentRef: ref(bid, len(bulletin)), Need: now.Add(4 * time.Hour)}})
	waitFor(t, c, "the alert's message", func() bool { return c.Has(aid) })
	select {
	case <-gaveUp:
	default:
		t.Error("the alert's message came in while the bulletin's download still held the link")
	}
	waitFor(t, c, "the bulletin", func() bool { return c.Has(bid) })
	got, _ := os.ReadFile(c.Path(bid))
	if !bytes.Equal(got, bulletin) {
		t.Fatal("the resumed bulletin differs")
	}
	r := s.ranges()
	if len(r) != 3 || r[0] != bid[:8]+" " || r[1] != aid[:8]+" " || !strings.HasPrefix(r[2], bid[:8]+" bytes=") || r[2] == bid[:8]+" bytes=0-" {
		t.Errorf("requests %q, want the bulletin, the alert, then the bulletin from where it stopped", r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt, ok := c.retry[bid]; ok && rt.attempts > 0 {
		t.Errorf("the pause counted as %d failures", rt.attempts)
	}
}

// TestLentDownloadMakesWayForAPlaysContent: a release of the agent
// downloading beside the cache kept the link while an alert's message
// waited. A download lent the link (Lend) goes on while only kept content
// (no play) is missing, ends with ErrMakeWay once content a play needs is
// to be fetched, and AwaitWay holds it back until that content is in.
func TestLentDownloadMakesWayForAPlaysContent(t *testing.T) {
	s := newServer(t)
	chime, cid := blob(20_000, 5)
	alert, aid := blob(50_000, 6)
	s.files[aid] = alert // the chime is not served: it stays missing
	c := newCache(t, s)
	c.cfg.Jitter = func() float64 { return 0 }
	ctx := context.Background()

	c.Want([]Wanted{{ContentRef: ref(cid, len(chime))}})
	if err := c.AwaitWay(ctx); err != nil {
		t.Fatal(err)
	}
	lctx, done := c.Lend(ctx, "release 2.0.0")
	defer done()
	if lctx.Err() != nil {
		t.Fatal("a loan ended for content no play needs")
	}
	c.Want([]Wanted{{ContentRef: ref(aid, len(alert)), Need: time.Now()}, {ContentRef: ref(cid, len(chime))}})
	if !errors.Is(context.Cause(lctx), ErrMakeWay) {
		t.Fatalf("the loan goes on (cause %v) while an alert's message is to be fetched", context.Cause(lctx))
	}
	waited := make(chan error, 1)
	go func() { waited <- c.AwaitWay(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("AwaitWay returned (%v) before the alert's message was cached", err)
	default:
	}
	runCache(t, c)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if !c.Has(aid) {
		t.Error("AwaitWay returned before the alert's message was cached")
	}
}

// TestNoTurnsWithinTheMargin: content needed less than MakeWayMargin
// sooner does not pause a download; content nothing wants any more stops
// it.
func TestNoTurnsWithinTheMargin(t *testing.T) {
	s := newServer(t)
	first, fid := blob(1<<20, 5)
	second, sid := blob(50_000, 6)
	s.files[fid], s.files[sid] = first, second
	started, gaveUp := stallingServer(t, s, fid)
	c := newCache(t, s)
	runCache(t, c)

	at := time.Now().Add(time.Hour)
	c.Want([]Wanted{{ContentRef: ref(fid, len(first)), Need: at}})
	<-started
	// The second bulletin of the same session: 30 s sooner.
	c.Want([]Wanted{{ContentRef: ref(sid, len(second)), Need: at.Add(-30 * time.Second)}, {ContentRef: ref(fid, len(first)), Need: at}})
	// Want decides at once: the download's context says whether it did.
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	if cur == nil || cur.id != fid || cur.ctx.Err() != nil {
		t.Fatalf("downloading %+v, want the first bulletin still going", cur)
	}
	// The first bulletin is dropped from the schedule: its download stops
	// and the second comes in.
	c.Want([]Wanted{{ContentRef: ref(sid, len(second)), Need: at.Add(-30 * time.Second)}})
	waitFor(t, c, "the second bulletin", func() bool { return c.Has(sid) })
	select {
	case <-gaveUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the download of content nothing wants went on")
	}
	if c.Has(fid) {
		t.Error("content nothing wants was cached")
	}
}

// TestSoonerNeedShortensTheSpread: content wanted with no play (kept at
// all times, as the emergency chimes are) waits up to the whole spread
// before its first fetch; when an alert then needs it in 300 ms, it waits
// at most a quarter of that instead.
func TestSoonerNeedShortensTheSpread(t *testing.T) {
	s := newServer(t)
	chime, id := blob(20_000, 9)
	s.files[id] = chime
	c := newCache(t, s)
	c.cfg.Spread, c.cfg.Jitter = time.Hour, func() float64 { return 0.5 }
	runCache(t, c)

	c.Want([]Wanted{{ContentRef: ref(id, len(chime))}})
	c.mu.Lock()
	first := c.retry[id].next
	c.mu.Unlock()
	if wait := time.Until(first); wait < 25*time.Minute {
		t.Fatalf("kept content waits %v before its first fetch, want half the hour's spread", wait)
	}
	c.Want([]Wanted{{ContentRef: ref(id, len(chime)), Need: time.Now().Add(300 * time.Millisecond)}})
	waitFor(t, c, "the chime, needed by an alert", func() bool { return c.Has(id) })
}

// TestKeepSpread: content wanted with no play waits up to KeepSpread
// before its first fetch; content a play needs, up to Spread.
func TestKeepSpread(t *testing.T) {
	s := newServer(t)
	c := newCache(t, s)
	c.cfg.Spread, c.cfg.KeepSpread, c.cfg.Jitter = 30*time.Second, 10*time.Minute, func() float64 { return 1 }
	now := time.Now()
	kept := Wanted{ContentRef: ref(strings.Repeat("ab", 32), 1000)}
	played := Wanted{ContentRef: ref(strings.Repeat("cd", 32), 1000), Need: now.Add(time.Hour)}
	if got := c.spread(kept, now); got != 10*time.Minute {
		t.Errorf("kept content waits up to %v, want 10m", got)
	}
	if got := c.spread(played, now); got != 30*time.Second {
		t.Errorf("content played in an hour waits up to %v, want 30s", got)
	}
	c.cfg.KeepSpread = 0
	if got := c.spread(kept, now); got != 30*time.Second {
		t.Errorf("without KeepSpread kept content waits up to %v, want Spread", got)
	}
}

// TestNeededContentRetriesSooner: after many failed downloads, content
// no play needs, or needed only after the longest wait, waits up to
// BackoffMax before the next attempt; content needed before then (an
// alert's message, now) at most BackoffUrgent.
func TestNeededContentRetriesSooner(t *testing.T) {
	s := newServer(t)
	b, id := blob(20_000, 12)
	s.files[id] = b
	s.handle = func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	}
	c := newCache(t, s)
	c.cfg.BackoffMin, c.cfg.BackoffMax, c.cfg.BackoffUrgent = time.Second, time.Hour, 10*time.Second
	c.cfg.Jitter = func() float64 { return 0.5 }
	for _, tc := range []struct {
		name string
		need time.Duration // after now; 0: no play needs it
		want time.Duration
	}{
		{"no play needs it", 0, 512 * time.Second}, // 2^10 s, half of it
		{"needed after the longest wait", 2 * time.Hour, 512 * time.Second},
		{"needed within it", 30 * time.Minute, 5 * time.Second},
		{"needed now", -time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Wanted{ContentRef: ref(id, len(b))}
			if tc.need != 0 {
				w.Need = time.Now().Add(tc.need)
			}
			c.Want([]Wanted{w})
			c.mu.Lock()
			c.retry[id] = retry{attempts: 10}
			c.mu.Unlock()
			before := time.Now()
			c.fetchOne(context.Background(), w.ContentRef)
			took := time.Since(before) // the attempt's own time, before the wait began
			c.mu.Lock()
			rt := c.retry[id]
			c.mu.Unlock()
			if got := rt.next.Sub(before); rt.attempts != 11 || got < tc.want || got > tc.want+took {
				t.Errorf("after the 11th failure (%d counted) the next attempt is in %v, want %v after the failure", rt.attempts, got.Round(time.Millisecond), tc.want)
			}
		})
	}
}

// TestAlertCutsTheBackoff: kept content whose download failed backs off;
// an alert that needs it before the backoff ends tries again at once, and
// the failures still count.
func TestAlertCutsTheBackoff(t *testing.T) {
	s := newServer(t)
	warning, id := blob(20_000, 10)
	s.files[id] = warning
	var refused atomic.Bool
	refused.Store(true)
	s.handle = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if refused.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	c := newCache(t, s)
	c.cfg.BackoffMin, c.cfg.BackoffMax = time.Hour, time.Hour
	c.cfg.Jitter = func() float64 { return 0.5 }
	runCache(t, c)
	c.Want([]Wanted{{ContentRef: ref(id, len(warning))}})
	waitFor(t, c, "the first attempt to fail", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.retry[id].attempts == 1
	})
	refused.Store(false)
	c.Want([]Wanted{{ContentRef: ref(id, len(warning)), Need: time.Now().Add(300 * time.Millisecond)}})
	waitFor(t, c, "the warning, needed by an alert within the backoff", func() bool { return c.Has(id) })
}

// TestReadOnlyDirKeepsWhatTheCardHolds: a cache over a card that takes no
// writes (ReadOnlyDir) plays what the card holds from there, downloads
// into its own directory in memory, and counts and evicts only what it
// downloaded; the card's files stay, and its record of damaged files
// counts on.
func TestReadOnlyDirKeepsWhatTheCardHolds(t *testing.T) {
	s := newServer(t)
	ids := map[string]string{} // name → id
	for i, name := range []string{"chime", "a", "b"} {
		b, id := blob(10_000, byte(i))
		s.files[id] = b
		ids[name] = id
	}
	r := func(name string) protocol.ContentRef { return ref(ids[name], 10_000) }
	card := filepath.Join(t.TempDir(), "content")
	before := newCacheIn(t, s, card)
	if err := before.Fetch(context.Background(), r("chime")); err != nil {
		t.Fatal(err)
	}
	before.NoteDamaged() // the card has failed before
	onCard := leftovers(t, before)

	mem := filepath.Join(t.TempDir(), "memory")
	c, err := Open(Config{Dir: mem, ReadOnlyDir: card, BaseURL: s.URL, Username: "n1", Secret: "s3cret",
		Client: s.Client(), MaxBytes: 15_000})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Has(ids["chime"]) || c.Path(ids["chime"]) != filepath.Join(card, ids["chime"]) {
		t.Fatalf("the chime on the card: Has %v, path %s", c.Has(ids["chime"]), c.Path(ids["chime"]))
	}
	if got := c.Damaged(); got != 1 {
		t.Errorf("Damaged = %d, want the card's 1", got)
	}
	f, err := c.openCached(ids["chime"]) // read as a play reads it, checked against its list
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, s.files[ids["chime"]]) {
		t.Fatalf("the chime read from the card: %v, equal %v", err, bytes.Equal(got, s.files[ids["chime"]]))
	}

	c.Want(wants(r("a")))
	if err := c.Fetch(context.Background(), r("a")); err != nil {
		t.Fatal(err)
	}
	c.Want(wants(r("b")))
	if err := c.Fetch(context.Background(), r("b")); err != nil {
		t.Fatal(err)
	}
	// Over the limit with a and b: a goes, from memory; the chime on the
	// card is neither counted nor evicted.
	if c.Has(ids["a"]) || !c.Has(ids["b"]) || !c.Has(ids["chime"]) {
		t.Errorf("holds a %v, b %v, chime %v; want b and the chime", c.Has(ids["a"]), c.Has(ids["b"]), c.Has(ids["chime"]))
	}
	if used, _, n := c.Usage(); used != 10_000 || n != 2 {
		t.Errorf("Usage = %d bytes in %d files, want b's 10000 counted, 2 files", used, n)
	}
	if c.Path(ids["b"]) != filepath.Join(mem, ids["b"]) {
		t.Errorf("b downloaded to %s, want in memory", c.Path(ids["b"]))
	}
	if after := leftovers(t, before); !slices.Equal(after, onCard) {
		t.Errorf("the card holds %v after, %v before: nothing may be written there", after, onCard)
	}
}

// readsTransport tells, at each read of an answer's body, how many bytes
// the reader had before it: a reader that asks for more has done with
// those (the cache has noted their arrival).
type readsTransport struct {
	base  http.RoundTripper
	reads chan int64
}

func (t *readsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		resp.Body = &readsBody{ReadCloser: resp.Body, reads: t.reads}
	}
	return resp, err
}

type readsBody struct {
	io.ReadCloser
	reads chan int64
	n     int64
}

func (b *readsBody) Read(p []byte) (int, error) {
	select {
	case b.reads <- b.n:
	default:
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// awaitRead waits until the client reads on after n bytes of the answer.
func awaitRead(t *testing.T, reads chan int64, n int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-reads:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("the client did not read %d bytes of the answer", n)
		}
	}
}

// TestSlowChunkListIsNoStall: over a weak link the chunk list in front of
// a long bulletin (2 KB for 1 MiB) came slowly but steadily, a piece every
// 40 s, and the download was cut as stalled a minute after the answer
// began, although bytes kept coming; every attempt then failed the same
// way. A stall is no byte for the stall timeout (on the cache's clock),
// in the list as in the audio: the download goes on, and is cut only once
// nothing comes for the whole timeout.
func TestSlowChunkListIsNoStall(t *testing.T) {
	b, id := blob(1<<20, 43)
	s := newServer(t)
	list, err := protocol.ChunkList(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := ref(id, len(b))
	r.Chunks = protocol.ChunkRoot(list)
	answer := slices.Concat(list, b)
	const pieces = 4
	more := make(chan int)
	s.handle = func(n int, w http.ResponseWriter, req *http.Request) bool {
		w.Header().Set("Content-Type", protocol.ChunkedAudioType)
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for from := 0; from < len(answer); {
			select {
			case k := <-more:
				end := min(from+k, len(answer))
				w.Write(answer[from:end])
				w.(http.Flusher).Flush()
				from = end
			case <-req.Context().Done():
				return true
			}
		}
		return true
	}
	c := newCache(t, s)
	fake := onFakeClock(c)
	reads := make(chan int64, 64)
	c.cfg.Client = &http.Client{Transport: &readsTransport{base: s.Client().Transport, reads: reads}}
	start := fake.Now()
	fetched := fetchInTest(t, c, r)
	sent := 0
	send := func(k int) {
		t.Helper()
		select {
		case more <- k:
			sent += k
			awaitRead(t, reads, int64(sent))
		case err := <-fetched:
			t.Fatalf("Fetch = %v while bytes kept coming (%d bytes of the answer sent, %v since the first)", err, sent, fake.Now().Sub(start))
		}
	}
	for range pieces { // the list, a piece every 40 s: 160 s in all
		send(len(list) / pieces)
		fake.Advance(40 * time.Second)
	}
	send(len(b) / 2)
	fake.Advance(c.cfg.StallTimeout - time.Second)
	if fake.Timers() != 1 {
		t.Fatalf("%d timers waiting %v after the last bytes, want the download's watchdog", fake.Timers(), c.cfg.StallTimeout-time.Second)
	}
	fake.Advance(time.Second) // nothing for the whole timeout
	select {
	case err := <-fetched:
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("Fetch = %v after nothing came for the stall timeout, want ErrStalled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the download still ran 10 s after nothing came for the stall timeout")
	}
	if st, err := os.Stat(c.Path(id) + partSuffix); err != nil || st.Size() != int64(len(b)/2) {
		t.Errorf("after the stall the partial file is %v (%v), want the %d bytes that came", st, err, len(b)/2)
	}
}

// TestCaptivePortalKeepsThePartial: a node's 4G provider (or a guest
// Wi-Fi on its backhaul) answered the request that resumed a bulletin
// with 200 and its login page; the node took it for the whole file, cut
// the 32 KiB it had, and stored the page in their place, so the next
// attempt resumed after the page and the download ended in a mismatch,
// all of it fetched again. A 200 that is not the content whole (its
// length, or its first bytes, not the content's) is refused, and the
// partial file stays as it was; the next answer that is the content
// resumes it.
func TestCaptivePortalKeepsThePartial(t *testing.T) {
	s := newServer(t)
	b, id := blob(100_000, 44)
	s.files[id] = b
	r := s.chunked(ref(id, len(b)), b)
	page := []byte("<!DOCTYPE html><html><body>Đăng nhập để dùng Internet / Log in to use the Internet</body></html>")
	s.handle = func(n int, w http.ResponseWriter, req *http.Request) bool {
		switch n {
		case 1: // with its length
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			w.WriteHeader(http.StatusOK)
			w.Write(page)
			return true
		case 2: // without one: sent as it is made
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			w.Write(bytes.Repeat(page, 100))
			return true
		}
		return false
	}
	c := newCache(t, s)
	if err := os.WriteFile(c.Path(id)+partSuffix, b[:2*protocol.ChunkSize], 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Fetch(context.Background(), r); !errors.Is(err, ErrNotContent) {
			t.Fatalf("Fetch answered by a captive portal (%d) = %v, want ErrNotContent", i+1, err)
		}
		if part, err := os.ReadFile(c.Path(id) + partSuffix); err != nil || !bytes.Equal(part, b[:2*protocol.ChunkSize]) {
			t.Fatalf("after the portal's page (%d) the partial file is %d bytes (%v), equal to the content's first %d: %v",
				i+1, len(part), err, 2*protocol.ChunkSize, bytes.Equal(part, b[:len(part)]))
		}
	}
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c.Path(id)); !bytes.Equal(got, b) {
		t.Fatal("the cached file is not the content")
	}
	want := "bytes=" + itoa(2*protocol.ChunkSize) + "-"
	if rs := s.ranges(); len(rs) != 3 || rs[2] != want {
		t.Errorf("requests had Range %q, want the last one %s", rs, want)
	}
}

// portal is the ResponseWriter a captive portal answers with: in front of
// the controller, so without the chunk list the test server adds.
func portal(w http.ResponseWriter) http.ResponseWriter {
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		return u.Unwrap()
	}
	return w
}

// TestCaptivePortalRefusedAtOnce: a captive portal's login page, sent
// without a length as the answer to a download with nothing downloaded
// yet, is refused at its header. It was written to the partial file to
// its end; the hash refused it there, so nothing reached the speaker, but
// the node had spent its thin 4G link and the time on it, and the next
// attempt resumed after the page. A 200 without a length must say a type
// the controller serves content with.
func TestCaptivePortalRefusedAtOnce(t *testing.T) {
	s := newServer(t)
	b, id := blob(100_000, 45)
	s.files[id] = b
	r := s.chunked(ref(id, len(b)), b)
	page := []byte("<!DOCTYPE html><html><body>Đăng nhập để dùng Internet / Log in to use the Internet</body></html>")
	s.handle = func(n int, w http.ResponseWriter, req *http.Request) bool {
		if n > 1 {
			return false
		}
		w = portal(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(bytes.Repeat(page, 100))
		return true
	}
	c := newCache(t, s)
	err := c.Fetch(context.Background(), r)
	if !errors.Is(err, ErrNotContent) || !strings.Contains(err.Error(), `"text/html; charset=utf-8"`) {
		t.Fatalf("Fetch answered by a captive portal = %v, want ErrNotContent naming the page's type", err)
	}
	if part, err := os.ReadFile(c.Path(id) + partSuffix); len(part) > 0 {
		t.Fatalf("the portal's page left %d bytes in the partial file (%v), want none", len(part), err)
	}
	if err := c.Fetch(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if rs := s.ranges(); len(rs) != 2 || rs[1] != "" {
		t.Errorf("requests had Range %q, want the second from the start", rs)
	}
}

// TestContentWithoutALengthIsTaken: the controller's answers without a
// length (sent as they are made, through a proxy that drops it) are
// content, with the chunk list in front or without it.
func TestContentWithoutALengthIsTaken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
		typ     string
	}{
		{"audio", false, "audio/wav"},
		{"audio with its chunk list", true, protocol.ChunkedAudioType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			b, id := blob(100_000, 46)
			r := ref(id, len(b))
			if tc.chunked {
				r = s.chunked(r, b)
			}
			s.handle = func(n int, w http.ResponseWriter, req *http.Request) bool {
				w.Header().Set("Content-Type", tc.typ)
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				w.Write(b)
				return true
			}
			c := newCache(t, s)
			if err := c.Fetch(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(c.Path(id)); !bytes.Equal(got, b) {
				t.Fatal("the cached file is not the content")
			}
		})
	}
}

// TestFetchFollowsNoRedirectAwayFromTheController: the controller's
// answer redirecting a content download to another host sent the node
// there (the SHA-256 checked, Go dropping the credentials, but the node
// downloading from a host nobody chose). Such a redirect is refused with
// ErrRedirectAway, saying where it led, the other host is never asked and
// nothing is cached; a redirect on the controller itself is followed.
func TestFetchFollowsNoRedirectAwayFromTheController(t *testing.T) {
	b, id := blob(10_000, 3)
	var away atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		away.Add(1)
		w.Write(b)
	}))
	defer other.Close()
	s := newServer(t)
	s.files[id] = b
	s.handle = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Query().Get("via") {
		case "away":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
		case "here":
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		default:
			return false
		}
		return true
	}
	c := newCache(t, s)
	r := ref(id, len(b))
	r.Path += "?via=away"
	err := c.Fetch(context.Background(), r)
	if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "http://")) {
		t.Errorf("content redirected to %s: %v; want it refused as away from the controller, naming where it led", other.URL, err)
	}
	if n := away.Load(); n != 0 {
		t.Errorf("the other host was asked %d time(s) for the content", n)
	}
	if c.Has(id) {
		t.Error("content fetched through a redirect away from the controller is cached")
	}
	r.Path = ref(id, len(b)).Path + "?via=here"
	if err := c.Fetch(context.Background(), r); err != nil || !c.Has(id) {
		t.Errorf("content redirected on the controller itself: %v, cached %v; want it fetched", err, c.Has(id))
	}
}
