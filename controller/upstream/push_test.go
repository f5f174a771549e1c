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

// TestPushPeriodsAreVietnamDays: with --upstream-every 24h each export is
// one calendar day in Vietnam, 00:00 to 24:00 (17:00Z to 17:00Z), the
// report of a date the province can file; they ran from the controller's
// first start (05:38 to 05:38). A store whose push began before, with a
// period ending off midnight, goes on with one shorter period up to the
// next midnight: no gap, no overlap.
func TestPushPeriodsAreVietnamDays(t *testing.T) {
	ep := &endpoint{key: "khoa-he-thong"}
	ts := httptest.NewServer(ep)
	defer ts.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 2, 22, 38, 22, 0, time.UTC) // 05:38 on 3 December in Vietnam
	at := func(t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		now = t
	}
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	day := func(d int) time.Time { return time.Date(2026, 12, d, 17, 0, 0, 0, time.UTC) } // midnight starting d+1 December
	for _, tc := range []struct {
		name      string
		ended     time.Time // the period end the store holds; zero: first start
		wantFirst [2]time.Time
	}{
		{"first start", time.Time{}, [2]time.Time{day(2), day(3)}},
		{"a period that ended off midnight", now.Add(-time.Hour), [2]time.Time{now.Add(-time.Hour), day(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep.mu.Lock()
			ep.docs = nil
			ep.mu.Unlock()
			at(time.Date(2026, 12, 2, 22, 38, 22, 0, time.UTC))
			db, src, out := open(t, filepath.Join(t.TempDir(), "loaxa.db"))
			defer db.Close()
			if !tc.ended.IsZero() {
				if err := out.AppendExport(context.Background(), nil, tc.ended); err != nil {
					t.Fatal(err)
				}
			}
			p := &upstream.Pusher{URL: ts.URL, Key: ep.key, Every: 24 * time.Hour, Source: src, Outbox: out, Now: clock,
				BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			stop := run(t, p)
			eventually(t, "the period under way noted", func() bool {
				st, _ := p.Status(context.Background())
				return !st.PeriodEnd.IsZero()
			})
			stop()
			if st, _ := p.Status(context.Background()); len(ep.taken()) != 0 || !st.PeriodEnd.Equal(tc.wantFirst[0]) {
				t.Fatalf("at the start: %d exports sent, period end %v; want none and %v", len(ep.taken()), st.PeriodEnd, tc.wantFirst[0])
			}
			// Two days later (a restart runs the export at once).
			at(day(4).Add(time.Minute))
			stop = run(t, p)
			eventually(t, "the days' exports sent", func() bool { return len(ep.taken()) >= 2 })
			stop()
			docs := ep.taken()
			want := [][2]time.Time{tc.wantFirst, {day(3), day(4)}}
			for i, x := range docs {
				if i >= len(want) || !x.From.Equal(want[i][0]) || !x.To.Equal(want[i][1]) {
					t.Errorf("export %d covers %v to %v; want the periods %v", i, x.From, x.To, want)
				}
			}
		})
	}
}
