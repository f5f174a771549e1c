package upstream_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// endpoint is the upstream system: it refuses while down, and keeps what
// it takes.
type endpoint struct {
	down atomic.Bool
	mu   sync.Mutex
	docs []upstream.Export
	key  string
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.down.Load() {
		http.Error(w, "bảo trì", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+e.key {
		http.Error(w, "bad key", http.StatusUnauthorized)
		return
	}
	var x upstream.Export
	if err := json.NewDecoder(r.Body).Decode(&x); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.docs = append(e.docs, x)
	e.mu.Unlock()
}

func (e *endpoint) taken() []upstream.Export {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]upstream.Export(nil), e.docs...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func open(t *testing.T, path string) (*bolt.DB, *upstream.Source, *bolt.UpstreamService) {
	db := bolt.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	src := &upstream.Source{Areas: bolt.NewAreaService(db), Nodes: bolt.NewNodeService(db), Deliveries: bolt.NewDeliveryService(db),
		Announcements: bolt.NewAnnouncementService(db), System: "hai-phong"}
	return db, src, bolt.NewUpstreamService(db)
}

func run(t *testing.T, p *upstream.Pusher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	return func() { cancel(); <-done }
}

// The endpoint is down at first and again across a controller restart:
// every period's export arrives once, in order, with no gap between
// periods.
func TestPushSurvivesOutagesAndRestarts(t *testing.T) {
	ep := &endpoint{key: "khoa-he-thong"}
	ep.down.Store(true)
	ts := httptest.NewServer(ep)
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "loaxa.db")

	db, src, out := open(t, path)
	if err := src.Areas.CreateArea(context.Background(), &loaxa.Area{ID: "31", Name: "Thành phố Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	if err := src.Nodes.CreateNode(context.Background(), &loaxa.Node{ID: "n1", Name: "Cụm loa chợ", Area: "31"}); err != nil {
		t.Fatal(err)
	}
	newPusher := func(src *upstream.Source, out *bolt.UpstreamService) *upstream.Pusher {
		return &upstream.Pusher{URL: ts.URL, Key: ep.key, Every: 50 * time.Millisecond, Source: src, Outbox: out,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	p := newPusher(src, out)
	stop := run(t, p)
	eventually(t, "three exports queued while the endpoint is down", func() bool {
		st, _ := p.Status(context.Background())
		return st.Pending >= 3 && st.LastError != ""
	})
	ep.down.Store(false)
	eventually(t, "the queue sent", func() bool { return len(ep.taken()) >= 3 })
	ep.down.Store(true)
	eventually(t, "more queued while down again", func() bool {
		st, _ := p.Status(context.Background())
		return st.Pending >= 2
	})
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := len(ep.taken())

	// The controller restarts; the endpoint comes back.
	db, src, out = open(t, path)
	defer db.Close()
	ep.down.Store(false)
	p = newPusher(src, out)
	stop = run(t, p)
	eventually(t, "the queue kept across the restart sent", func() bool { return len(ep.taken()) >= before+3 })
	stop()

	docs := ep.taken()
	for i, x := range docs {
		if x.Format != upstream.Format || x.System != "hai-phong" || len(x.Communes) != 1 || x.Communes[0].Clusters[0].Node != "n1" {
			t.Fatalf("export %d: %+v", i, x)
		}
		if i > 0 && !x.From.Equal(docs[i-1].To) {
			t.Fatalf("export %d covers from %v, the one before ended %v: a period lost or sent twice", i, x.From, docs[i-1].To)
		}
	}
}

// TestPushFollowsNoRedirectAwayFromTheUpstream: the export went with
// "Authorization: Bearer <key>" to --upstream-url, and Go's client
// follows a 307 or 308 with the same body, and the key when only the port
// differs (or to a subdomain, or from https to http): another server on
// the upstream system's host got the province's key and its report. The
// push now follows redirects on the URL's own scheme, host and port
// only; the other server is not asked, and the outbox's last_error says
// where the redirect led.
func TestPushFollowsNoRedirectAwayFromTheUpstream(t *testing.T) {
	other := &endpoint{key: "khoa-he-thong"}
	ots := httptest.NewServer(other)
	defer ots.Close()
	var asked atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, ots.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()

	db, src, out := open(t, filepath.Join(t.TempDir(), "loaxa.db"))
	defer db.Close()
	p := &upstream.Pusher{URL: front.URL, Key: other.key, Every: 50 * time.Millisecond, Source: src, Outbox: out,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	stop := run(t, p)
	defer stop()
	var st upstream.Status
	eventually(t, "an export refused by the redirect, or taken through it", func() bool {
		st, _ = p.Status(context.Background())
		return (st.LastError != "" && asked.Load() > 0) || len(other.taken()) > 0
	})
	stop()
	if !strings.Contains(st.LastError, "redirected away from the upstream system") || !strings.Contains(st.LastError, ots.URL) {
		t.Errorf("last_error %q: want it to say the redirect led to %s, away from the upstream system", st.LastError, ots.URL)
	}
	if n := len(other.taken()); n != 0 {
		t.Errorf("the other server took %d exports, with the province's key", n)
	}
}

// TestPushSaysWhyTheUpstreamRefused: a refusal's body, which says why (a
// key the receiver does not know), is in last_error, on one line and cut
// short when long.
func TestPushSaysWhyTheUpstreamRefused(t *testing.T) {
	ep := &endpoint{key: "khoa-dung"}
	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "khóa không đúng\r\n\tcho hệ thống hai-phong "+strings.Repeat("x", 500), http.StatusUnauthorized)
	}))
	defer long.Close()
	ts := httptest.NewServer(ep)
	defer ts.Close()
	for _, tc := range []struct {
		url, key, want string
	}{
		{ts.URL, "khoa-sai", `answered 401 Unauthorized: "bad key"`},
		{long.URL, "khoa-sai", `answered 401 Unauthorized: "khóa không đúng cho hệ thống hai-phong xxx`},
	} {
		db, src, out := open(t, filepath.Join(t.TempDir(), "loaxa.db"))
		p := &upstream.Pusher{URL: tc.url, Key: tc.key, Every: 50 * time.Millisecond, Source: src, Outbox: out,
			BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		stop := run(t, p)
		var st upstream.Status
		eventually(t, "a refused export", func() bool {
			st, _ = p.Status(context.Background())
			return st.LastError != ""
		})
		stop()
		db.Close()
		if !strings.Contains(st.LastError, tc.want) || len(st.LastError) > 400 {
			t.Errorf("last_error %q: want it to hold %s and at most 200 characters of the answer", st.LastError, tc.want)
		}
	}
}
