package cap

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/internal/syncbuf"
)

// TestPollerReadsAlertsAndAtomFeeds: a feed URL that answers a CAP alert
// hands it on each poll (the receiver de-duplicates); an Atom feed's
// entries are fetched through their CAP link once per entry version.
func TestPollerReadsAlertsAndAtomFeeds(t *testing.T) {
	alert := string(sample(t))
	fetched := map[string]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched[r.URL.Path]++
		mu.Unlock()
		switch r.URL.Path {
		case "/alert.xml", "/a/1.xml":
			w.Write([]byte(alert))
		case "/feed.atom":
			w.Write([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><updated>2025-09-06T07:00:00+07:00</updated>
				<link rel="alternate" href="/page/1"/><link type="application/cap+xml" href="a/1.xml"/></entry>
				<entry><id>2</id><updated>x</updated></entry></feed>`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var got []string
	p := &Poller{URLs: []string{srv.URL + "/alert.xml", srv.URL + "/feed.atom", srv.URL + "/missing"},
		Handle: func(_ context.Context, raw []byte, feed string) error {
			if _, err := Parse(strings.NewReader(string(raw))); err != nil {
				t.Errorf("handed an alert that does not parse: %v", err)
			}
			mu.Lock() // feeds are polled at once
			defer mu.Unlock()
			got = append(got, feed[len(srv.URL):])
			return nil
		}}
	p.Poll(context.Background())
	p.Poll(context.Background())
	slices.Sort(got)
	if want := []string{"/alert.xml", "/alert.xml", "/feed.atom"}; !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	if fetched["/a/1.xml"] != 1 || fetched["/page/1"] != 0 {
		t.Errorf("fetched %v: the entry's CAP link once, never its page", fetched)
	}
}

// TestPollerMetrics: every poll of a feed counts as ok or error, and a
// feed's last good poll is kept, so a dashboard shows a feed that stopped
// answering; the feed's label carries no credentials.
func TestPollerMetrics(t *testing.T) {
	alert := string(sample(t))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/alert.xml" {
			w.Write([]byte(alert))
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	good, bad := srv.URL+"/alert.xml?token=bi-mat", strings.Replace(srv.URL, "http://", "http://nguoi-dung:bi-mat@", 1)+"/down.xml"
	p := &Poller{URLs: []string{good, bad}, Handle: func(context.Context, []byte, string) error { return nil }}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	before := time.Now()
	p.Poll(context.Background())
	p.Poll(context.Background())

	goodLabel, badLabel := srv.URL+"/alert.xml", srv.URL+"/down.xml"
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// value of metric name with the given labels (feed, and result for
	// the counter).
	value := func(name string, labels ...string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var got []string
				for _, l := range m.GetLabel() {
					got = append(got, l.GetValue())
				}
				if slices.Equal(got, labels) {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if n := value("loaxa_cap_feed_polls_total", goodLabel, "ok"); n != 2 {
		t.Errorf("good feed: %v ok polls, want 2", n)
	}
	if n := value("loaxa_cap_feed_polls_total", badLabel, "error"); n != 2 {
		t.Errorf("feed that is down: %v failed polls, want 2", n)
	}
	if at := value("loaxa_cap_feed_last_success_seconds", goodLabel); at < float64(before.Unix()) {
		t.Errorf("good feed last succeeded at %v, want after %v", at, before.Unix())
	}
	if at := value("loaxa_cap_feed_last_success_seconds", badLabel); at != -1 {
		t.Errorf("the feed that is down has a last success at %v", at)
	}
	var out strings.Builder
	for _, mf := range mfs {
		out.WriteString(mf.String())
	}
	if strings.Contains(out.String(), "bi-mat") {
		t.Errorf("metrics carry the feed's credentials:\n%s", out.String())
	}
}

// TestPollerStatus: each feed's status says when it was last polled
// without an error and how many polls failed since, with the newest error;
// credentials in the address (user information, a token in the query)
// appear nowhere in it. A feed that answers again is healthy again.
func TestPollerStatus(t *testing.T) {
	alert := string(sample(t))
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/alert.xml" || up.Load() {
			w.Write([]byte(alert))
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	good := srv.URL + "/alert.xml?token=bi-mat"
	bad := strings.Replace(srv.URL, "http://", "http://nguoi-dung:bi-mat@", 1) + "/down.xml?token=bi-mat"
	p := &Poller{URLs: []string{good, bad}, Handle: func(context.Context, []byte, string) error { return nil }}
	if st := p.Status(); len(st) != 2 || !st[0].LastOK.IsZero() || !st[1].LastErrorAt.IsZero() || st[1].Feed != srv.URL+"/down.xml" {
		t.Fatalf("before any poll: %+v", st)
	}
	before := time.Now()
	p.Poll(context.Background())
	p.Poll(context.Background())
	st := p.Status()
	if st[0].LastOK.Before(before) || st[0].Failures != 0 || st[0].LastError != "" {
		t.Errorf("good feed: %+v", st[0])
	}
	if !st[1].LastOK.IsZero() || st[1].Failures != 2 || !strings.Contains(st[1].LastError, "502") || st[1].LastErrorAt.Before(before) {
		t.Errorf("feed that is down: %+v, want 2 failures with the 502", st[1])
	}
	if s := fmt.Sprintf("%+v", st); strings.Contains(s, "bi-mat") || strings.Contains(s, "nguoi-dung") {
		t.Errorf("status carries the feed's credentials: %s", s)
	}
	up.Store(true)
	p.Poll(context.Background())
	if st := p.Status()[1]; st.Failures != 0 || st.LastOK.IsZero() {
		t.Errorf("the feed answering again: %+v", st)
	}
}

// TestPollerRetriesAnEntryNotTakenIn: an Atom entry whose alert could not
// be taken in for a passing reason (the store busy) is handed again at the
// next poll, and that poll of the feed counts as failed; an alert refused
// for what it is (ErrRefused, ErrInvalid) is not handed again.
func TestPollerRetriesAnEntryNotTakenIn(t *testing.T) {
	alert := string(sample(t))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/feed.atom":
			w.Write([]byte(`<feed xmlns="http://www.w3.org/2005/Atom">
				<entry><id>busy</id><updated>u</updated><link type="application/cap+xml" href="/a/busy.xml"/></entry>
				<entry><id>refused</id><updated>u</updated><link type="application/cap+xml" href="/a/refused.xml"/></entry>
				</feed>`))
		default:
			w.Write([]byte(alert))
		}
	}))
	defer srv.Close()
	handed := map[string]int{}
	var mu sync.Mutex
	p := &Poller{URLs: []string{srv.URL + "/feed.atom"}, Handle: func(ctx context.Context, raw []byte, feed string) error {
		mu.Lock()
		defer mu.Unlock()
		handed["any"]++
		switch handed["any"] {
		case 1:
			return fmt.Errorf("cap: nodes: database busy")
		case 2:
			return fmt.Errorf("%w: not allowed", ErrRefused)
		}
		return nil
	}}
	p.Poll(context.Background())
	if st := p.Status()[0]; st.Failures != 1 || !strings.Contains(st.LastError, "entry busy: cap: nodes: database busy") {
		t.Errorf("after an entry not taken in, status %+v; want one failure naming the entry", st)
	}
	p.Poll(context.Background())
	if handed["any"] != 3 {
		t.Errorf("handed %d alerts over two polls; want the busy entry's twice and the refused one's once", handed["any"])
	}
	if st := p.Status()[0]; st.Failures != 0 || st.LastOK.IsZero() {
		t.Errorf("after the entry was taken in, status %+v; want the poll good", st)
	}
}

// TestPollerFeedWithBrokenLinks: a feed whose entries' CAP links fail
// brings no alert in; each poll of it counts as failed, saying why, so
// the console does not show it working.
func TestPollerFeedWithBrokenLinks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/feed.atom" {
			w.Write([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><updated>u</updated>
				<link type="application/cap+xml" href="/gone.xml"/></entry></feed>`))
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer srv.Close()
	p := &Poller{URLs: []string{srv.URL + "/feed.atom"}, Handle: func(context.Context, []byte, string) error {
		t.Error("handed an alert no link gave")
		return nil
	}}
	p.Poll(context.Background())
	p.Poll(context.Background())
	if st := p.Status()[0]; st.Failures != 2 || !st.LastOK.IsZero() || !strings.Contains(st.LastError, "500 Internal Server Error") {
		t.Errorf("status %+v; want two failed polls saying the link answered 500", st)
	}
}

// TestPollerFeedsDoNotWaitForEachOther: a feed whose entries' links never
// answer does not keep another feed from being polled every Interval: the
// good feed is polled again and again while the hanging one's requests
// are cut at the end of each of its polls (its status says so).
func TestPollerFeedsDoNotWaitForEachOther(t *testing.T) {
	var good atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good.xml":
			good.Add(1)
			w.Write(sample(t))
		case "/hangs.atom":
			var b strings.Builder
			b.WriteString(`<feed xmlns="http://www.w3.org/2005/Atom">`)
			for i := range 4 {
				fmt.Fprintf(&b, `<entry><id>%d</id><updated>u</updated><link type="application/cap+xml" href="/hang/%d"/></entry>`, i, i)
			}
			b.WriteString(`</feed>`)
			w.Write([]byte(b.String()))
		default: // answers only when the request is given up
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	p := &Poller{URLs: []string{srv.URL + "/hangs.atom", srv.URL + "/good.xml"}, Interval: 50 * time.Millisecond,
		Client: &http.Client{Timeout: time.Hour}, // only the poll's own bound cuts a request
		Handle: func(context.Context, []byte, string) error { return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for good.Load() < 3 || p.Status()[0].Failures == 0 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("in 30 s the good feed was polled %d times, the hanging one's status %+v; want the good one polled on its own and the other's polls cut", good.Load(), p.Status()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if st := p.Status()[0]; !strings.Contains(st.LastError, "not taken in") {
		t.Errorf("the hanging feed's status %+v; want its entries not taken in", st)
	}
}

// TestPollerHandlesAlertsBeyondTheFetchBound: a poll's fetches end within
// Interval, but acting on an alert it found (reading it out, storing it,
// sending it) is not cut short by that bound: an alert whose speech takes
// longer than the poll interval is still played. With the bound on the
// handling too, the alert was stored unplayed and then, as a duplicate,
// never played (seen in e2e TestCapFeedPolled).
func TestPollerHandlesAlertsBeyondTheFetchBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(sample(t)) }))
	defer srv.Close()
	var handled error
	p := &Poller{URLs: []string{srv.URL + "/alert.xml"}, Interval: 20 * time.Millisecond,
		Handle: func(ctx context.Context, raw []byte, feed string) error {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond): // ten poll intervals of work
			}
			handled = ctx.Err()
			return nil
		}}
	p.Poll(context.Background())
	if handled != nil {
		t.Errorf("the alert's handling was cut short: %v", handled)
	}
}

// FuzzPollFeed serves arbitrary bytes as a feed and polls it: the poll
// must never panic or hang; a document that is a CAP alert is handed as it
// is, once; and when a poll succeeds, the next one fetches no entry again
// (each entry version is fetched and handled once). Every address the
// feed names is served by the test server, whatever its host.
func FuzzPollFeed(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><updated>2025-09-06T07:00:00+07:00</updated>
		<link rel="alternate" href="/page/1"/><link type="application/cap+xml" href="a/1.xml"/></entry>
		<entry><id>2</id><updated>x</updated></entry><entry><id>3</id><link href="%zz"/></entry></feed>`))
	f.Add([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><link href="feed"/></entry>
		<entry><id>1</id><link href="//other.example/b.xml"/></entry></feed>`))
	f.Add([]byte(`<?xml version="1.0"?><!-- x --><alert/>`))
	alert := sample(f)
	var (
		feed    atomic.Pointer[[]byte]
		mu      sync.Mutex
		fetched []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched = append(fetched, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/feed" {
			w.Write(*feed.Load())
			return
		}
		w.Write(alert)
	}))
	f.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}}
	f.Cleanup(client.CloseIdleConnections)
	url := srv.URL + "/feed"
	f.Fuzz(func(t *testing.T, raw []byte) {
		feed.Store(&raw)
		var handled [][]byte
		p := &Poller{URLs: []string{url}, Interval: 10 * time.Second, Client: client,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Handle: func(_ context.Context, doc []byte, from string) error {
				if from != url {
					t.Errorf("handed from %q, want %q", from, url)
				}
				handled = append(handled, doc)
				_, err := Parse(bytes.NewReader(doc))
				return err
			}}
		p.init()
		ctx := context.Background()
		err := p.poll(ctx, ctx, url)
		var root struct{ XMLName xml.Name }
		if xml.NewDecoder(bytes.NewReader(raw)).Decode(&root) == nil && root.XMLName.Local == "alert" {
			if len(handled) != 1 || !bytes.Equal(handled[0], raw) {
				t.Fatalf("an alert document handed %d times", len(handled))
			}
			return
		}
		if err != nil {
			return
		}
		mu.Lock()
		fetched = fetched[:0]
		mu.Unlock()
		if err := p.poll(ctx, ctx, url); err != nil {
			t.Fatalf("the second poll of the same feed failed: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(fetched, []string{"/feed"}) {
			t.Fatalf("the second poll of the same feed fetched %q, want only the feed", fetched)
		}
	})
}

// TestPollerFollowsLinksOnlyOnTheFeedsHost: a feed's Atom entries that
// link to another host (here a loopback server standing for the
// controller's own API, the cloud's metadata address) or to a file, or a
// link on the feed's host that redirects to another, are not followed:
// the other server is never called nor any address but the feed's
// dialled, the feed shows as failing with what to do, and the refusals
// are counted. An entry on the feed's host is taken in, and a host the
// operator lists for the alerts is followed.
func TestPollerFollowsLinksOnlyOnTheFeedsHost(t *testing.T) {
	alert := sample(t)
	var innerHits atomic.Int32
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		innerHits.Add(1)
		w.Write(alert)
	}))
	defer inner.Close()
	feedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/feed.atom":
			fmt.Fprintf(w, `<feed xmlns="http://www.w3.org/2005/Atom">
				<entry><id>api</id><updated>u</updated><link type="application/cap+xml" href="%s/api/v1/users"/></entry>
				<entry><id>metadata</id><updated>u</updated><link href="http://169.254.169.254/latest/meta-data/"/></entry>
				<entry><id>file</id><updated>u</updated><link href="file:///etc/passwd"/></entry>
				<entry><id>redirect</id><updated>u</updated><link href="/moved.xml"/></entry>
				<entry><id>good</id><updated>u</updated><link href="/a.xml"/></entry></feed>`, inner.URL)
		case "/moved.xml":
			http.Redirect(w, r, inner.URL+"/api/v1/emergency", http.StatusFound)
		case "/a.xml":
			w.Write(alert)
		default:
			http.NotFound(w, r)
		}
	}))
	defer feedSrv.Close()
	// The client dials only the two test servers and says which addresses
	// it was asked for, so that nothing reaches out of the test.
	var (
		mu     sync.Mutex
		dialed []string
	)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		if addr != feedSrv.Listener.Addr().String() && addr != inner.Listener.Addr().String() {
			return nil, fmt.Errorf("test: no dialling %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}}
	defer client.CloseIdleConnections()
	feed := feedSrv.URL + "/feed.atom"
	newPoller := func(hosts ...string) (*Poller, *[]string) {
		var handled []string
		return &Poller{URLs: []string{feed}, Client: client, AlertHosts: hosts,
			Handle: func(_ context.Context, raw []byte, _ string) error {
				handled = append(handled, string(raw))
				return nil
			}}, &handled
	}

	p, handled := newPoller()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	p.Poll(context.Background())
	if n := innerHits.Load(); n != 0 {
		t.Errorf("the server on another host was called %d times", n)
	}
	mu.Lock()
	for _, a := range dialed {
		if a != feedSrv.Listener.Addr().String() {
			t.Errorf("dialled %s, want only the feed's host %s", a, feedSrv.Listener.Addr())
		}
	}
	mu.Unlock()
	if len(*handled) != 1 {
		t.Errorf("handled %d alerts, want the one on the feed's host", len(*handled))
	}
	st := p.Status()[0]
	if st.Failures != 1 || !strings.Contains(st.LastError, "4 new entries not taken in") || !strings.Contains(st.LastError, "--cap-alert-hosts") {
		t.Errorf("status %+v; want a failed poll of 4 entries saying which option lists another host", st)
	}
	refused := linksRefused(t, reg)
	if refused != 4 {
		t.Errorf("loaxa_cap_feed_links_refused_total = %v, want 4 (three links and a redirect)", refused)
	}
	// Judged again at the next poll: still not followed.
	p.Poll(context.Background())
	if n := innerHits.Load(); n != 0 || p.Status()[0].Failures != 2 {
		t.Errorf("second poll: the other host called %d times, status %+v", n, p.Status()[0])
	}

	// The operator lists the other host: its links and the redirect to
	// it are followed; the others still are not.
	p, handled = newPoller(inner.Listener.Addr().String())
	p.Poll(context.Background())
	if n := innerHits.Load(); n != 2 || len(*handled) != 3 {
		t.Errorf("with the host listed: it was called %d times and %d alerts handled, want 2 and 3", n, len(*handled))
	}
	if st := p.Status()[0]; st.Failures != 1 || !strings.Contains(st.LastError, "2 new entries not taken in") {
		t.Errorf("with the host listed: status %+v; want the metadata and file entries still refused", st)
	}
}

// TestPollerFollows: which addresses a feed's poll may fetch.
func TestPollerFollows(t *testing.T) {
	p := &Poller{AlertHosts: []string{"alerts.example.vn", "cdn.example.vn:8443"}}
	feed, _ := url.Parse("http://Feed.example.vn/atom.xml")
	for _, c := range []struct {
		link string
		ok   bool
	}{
		{"http://feed.example.vn/a.xml", true},
		{"http://feed.example.vn:80/a.xml", true},
		{"http://feed.example.vn./a.xml", true},
		{"https://feed.example.vn/a.xml", false}, // another port
		{"http://feed.example.vn:8080/a.xml", false},
		{"https://alerts.example.vn:9000/a.xml", true},
		{"https://cdn.example.vn:8443/a.xml", true},
		{"https://cdn.example.vn/a.xml", false},
		{"http://127.0.0.1/api/v1/users", false},
		{"http://[::1]/x", false},
		{"http://169.254.169.254/latest/meta-data/", false},
		{"http://feed.example.vn@127.0.0.1/x", false},
		{"file:///etc/passwd", false},
		{"gopher://feed.example.vn/x", false},
		{"http:///x", false},
	} {
		u, err := url.Parse(c.link)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.follows(feed, u); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrForeignLink)) {
			t.Errorf("%s: %v, want followed %v", c.link, err, c.ok)
		}
	}
}

// TestPollerKeepsEntriesOffInternalAddresses: a feed reached on a public
// address whose host name then resolves to an internal one (DNS
// rebinding: here the test's dialler sends every connection after the
// first to a second server, standing for the controller's own API) does
// not get the controller to send anything there: the connection is
// closed before a request is written, the feed shows as failing and the
// refusal is counted. A feed on an internal address may keep its alerts
// there (every other test's feed is on loopback).
func TestPollerKeepsEntriesOffInternalAddresses(t *testing.T) {
	alert := sample(t)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address to stand for an internal one: %v", err)
	}
	var innerHits atomic.Int32
	inner := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		innerHits.Add(1)
		w.Write(alert)
	}))
	inner.Listener.Close()
	inner.Listener = ln
	inner.Start()
	defer inner.Close()
	feedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/feed.atom" {
			w.Write([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><updated>u</updated><link href="/a.xml"/></entry></feed>`))
			return
		}
		w.Write(alert)
	}))
	defer feedSrv.Close()
	var dials atomic.Int32
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		to := inner.Listener.Addr().String()
		if dials.Add(1) == 1 {
			to = feedSrv.Listener.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}}
	feed := "http://cap.example.vn:" + feedSrv.URL[strings.LastIndex(feedSrv.URL, ":")+1:] + "/feed.atom"
	handled := 0
	var logs syncbuf.Buffer
	p := &Poller{URLs: []string{feed}, Client: &http.Client{Transport: tr}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		// 127.0.0.2 stands for an internal address, 127.0.0.1 for the
		// feed's public one.
		Internal: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.2") },
		Handle:   func(context.Context, []byte, string) error { handled++; return nil }}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	p.Poll(context.Background())
	if n := innerHits.Load(); n != 0 || handled != 0 {
		t.Errorf("the internal server answered %d requests, %d alerts handled; want none", n, handled)
	}
	if dials.Load() < 2 {
		t.Fatalf("%d connections made; the entry was not even tried", dials.Load())
	}
	if st := p.Status()[0]; st.Failures != 1 || !strings.Contains(st.LastError, "internal address") {
		t.Errorf("status %+v; want a failed poll saying the entry's host is at an internal address", st)
	}
	if !strings.Contains(logs.String(), "cap: feed entry link not followed") {
		t.Errorf("logged:\n%s\nwant the entry's link not followed", logs.String())
	}
	refused := linksRefused(t, reg)
	if refused != 1 {
		t.Errorf("loaxa_cap_feed_links_refused_total = %v, want 1", refused)
	}

	// The same feed reached on an internal address: its alerts may be
	// there too.
	dials.Store(0)
	p = &Poller{URLs: []string{feed}, Client: &http.Client{Transport: tr},
		Internal: func(netip.Addr) bool { return true },
		Handle:   func(context.Context, []byte, string) error { handled++; return nil }}
	p.Poll(context.Background())
	if n := innerHits.Load(); n != 1 || handled != 1 {
		t.Errorf("feed on an internal address: its host answered %d requests, %d alerts handled; want 1 and 1", n, handled)
	}
}

// linksRefused reads loaxa_cap_feed_links_refused_total of the one feed
// from reg (-1 if it is not there).
func linksRefused(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "loaxa_cap_feed_links_refused_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// TestPollerCarriesAFeedsCredentialsNowhereElse: a feed's address may
// carry a user and password (https://user:pass@feed/…), which Go's client
// sends as Basic authorisation. The poller sets no credential itself, so
// a redirect of the feed, or an entry's link, to another host or port
// (one listed with --cap-alert-hosts) must reach it without them: Go
// keeps the user only on a relative redirect or link, which stays on the
// feed's own scheme, host and port.
func TestPollerCarriesAFeedsCredentialsNowhereElse(t *testing.T) {
	alert := sample(t)
	var mu sync.Mutex
	auth := map[string][]string{} // by server and path
	note := func(srv string, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth[srv+r.URL.Path] = append(auth[srv+r.URL.Path], r.Header.Get("Authorization"))
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note("other", r)
		w.Write(alert)
	}))
	defer other.Close()
	feedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note("feed", r)
		switch r.URL.Path {
		case "/moved.atom":
			http.Redirect(w, r, other.URL+"/alert.xml", http.StatusTemporaryRedirect)
		case "/feed.atom":
			fmt.Fprintf(w, `<feed xmlns="http://www.w3.org/2005/Atom">
				<entry><id>there</id><updated>u</updated><link type="application/cap+xml" href="%s/linked.xml"/></entry>
				<entry><id>here</id><updated>u</updated><link type="application/cap+xml" href="/a.xml"/></entry></feed>`, other.URL)
		case "/a.xml":
			w.Write(alert)
		default:
			http.NotFound(w, r)
		}
	}))
	defer feedSrv.Close()
	withUser := strings.Replace(feedSrv.URL, "http://", "http://canh-bao:mat-khau@", 1)
	handled := 0
	p := &Poller{URLs: []string{withUser + "/moved.atom", withUser + "/feed.atom"}, AlertHosts: []string{other.Listener.Addr().String()},
		Internal: func(netip.Addr) bool { return false },
		Handle: func(context.Context, []byte, string) error {
			mu.Lock()
			defer mu.Unlock()
			handled++
			return nil
		}}
	p.Poll(context.Background())

	mu.Lock()
	defer mu.Unlock()
	if handled != 3 {
		t.Errorf("handled %d alerts, want 3 (the redirected feed's, and both entries')", handled)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("canh-bao:mat-khau"))
	for _, path := range []string{"feed/moved.atom", "feed/feed.atom", "feed/a.xml"} {
		if got := auth[path]; len(got) != 1 || got[0] != basic {
			t.Errorf("%s was asked with Authorization %q, want once with the feed's own %q", path, got, basic)
		}
	}
	for _, path := range []string{"other/alert.xml", "other/linked.xml"} {
		if got := auth[path]; len(got) != 1 || got[0] != "" {
			t.Errorf("the other server's %s was asked with Authorization %q, want once without any", path, got)
		}
	}
}

// TestPollerSaysWhenAProxyChecksTheEntries: behind HTTP_PROXY the
// poller's connections go to the proxy, so the internal-address check
// sees the proxy's address, not where an entry leads. The operator is
// told at the start which feeds go through it (the proxy's host, never
// its credentials), and feeds the proxy does not take are not named.
func TestPollerSaysWhenAProxyChecksTheEntries(t *testing.T) {
	proxy, err := url.Parse("http://ops:secret@proxy.example.vn:3128")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: func(r *http.Request) (*url.URL, error) {
		if r.URL.Hostname() == "cap.example.vn" {
			return proxy, nil
		}
		return nil, nil
	}}
	var logs syncbuf.Buffer
	p := &Poller{URLs: []string{"https://cap.example.vn/feed.atom", "http://cap.tinh.local/feed.atom"},
		Client: &http.Client{Transport: tr}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Handle: func(context.Context, []byte, string) error { return nil }}
	p.init()
	got := logs.String()
	if !strings.Contains(got, "cap: feed reached through a proxy") || !strings.Contains(got, "feed=https://cap.example.vn/feed.atom proxy=proxy.example.vn:3128") {
		t.Errorf("logged:\n%s\nwant the feed on cap.example.vn named as going through proxy.example.vn:3128", got)
	}
	if strings.Contains(got, "cap.tinh.local") || strings.Contains(got, "secret") {
		t.Errorf("logged:\n%s\nwant neither the feed the proxy does not take nor the proxy's password", got)
	}

	var quiet syncbuf.Buffer
	p = &Poller{URLs: []string{"https://cap.example.vn/feed.atom"}, Client: &http.Client{Transport: &http.Transport{}},
		Logger: slog.New(slog.NewTextHandler(&quiet, nil)), Handle: func(context.Context, []byte, string) error { return nil }}
	p.init()
	if strings.Contains(quiet.String(), "proxy") {
		t.Errorf("no proxy set, logged:\n%s", quiet.String())
	}
}

// TestPollerForgetsEntriesTheFeedNoLongerLists: the poller remembered
// every entry of every feed it had taken in, for the life of the process
// (a national feed publishes hundreds a day). It now remembers those the
// feed still lists: one still listed is not fetched again, and one that
// left the feed is forgotten.
func TestPollerForgetsEntriesTheFeedNoLongerLists(t *testing.T) {
	alert := sample(t)
	var mu sync.Mutex
	entries := []string{"1", "2"}
	fetched := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetched[r.URL.Path]++
		if r.URL.Path != "/feed.atom" {
			w.Write(alert)
			return
		}
		var b strings.Builder
		b.WriteString(`<feed xmlns="http://www.w3.org/2005/Atom">`)
		for _, id := range entries {
			fmt.Fprintf(&b, `<entry><id>%s</id><updated>u</updated><link href="/a/%s.xml"/></entry>`, id, id)
		}
		b.WriteString(`</feed>`)
		w.Write([]byte(b.String()))
	}))
	defer srv.Close()
	p := &Poller{URLs: []string{srv.URL + "/feed.atom"}, Handle: func(context.Context, []byte, string) error { return nil }}
	p.Poll(context.Background())
	mu.Lock()
	entries = []string{"2", "3"}
	mu.Unlock()
	p.Poll(context.Background())
	p.mu.Lock()
	remembered := slices.Sorted(maps.Keys(p.seen))
	p.mu.Unlock()
	want := []string{entryKey(srv.URL+"/feed.atom", "2", "u"), entryKey(srv.URL+"/feed.atom", "3", "u")}
	if !slices.Equal(remembered, want) {
		t.Errorf("remembered %q, want %q: the entries the feed lists now", remembered, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetched["/a/1.xml"] != 1 || fetched["/a/2.xml"] != 1 || fetched["/a/3.xml"] != 1 {
		t.Errorf("fetched %v: each entry's alert once", fetched)
	}
}
