package cap

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
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
			got = append(got, feed[len(srv.URL):])
			return nil
		}}
	p.Poll(context.Background())
	p.Poll(context.Background())
	if want := []string{"/alert.xml", "/feed.atom", "/alert.xml"}; !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	if fetched["/a/1.xml"] != 1 || fetched["/page/1"] != 0 {
		t.Errorf("fetched %v: the entry's CAP link once, never its page", fetched)
	}
}
