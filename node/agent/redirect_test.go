package agent_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// elsewhere is a server on another port that counts what it is asked: a
// node must never ask it.
func elsewhere(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var asked atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "not the controller", http.StatusTeapot)
	}))
	t.Cleanup(s.Close)
	return s, &asked
}

// TestEnrolFollowsNoRedirectAwayFromTheController: a controller (or a
// proxy in front of it) answering the enrolment with a 307 sent the board,
// and its one-time code in the body, to another host. Now the enrolment is
// refused with protocol.ErrRedirectAway and the other host is never asked;
// a redirect on the controller itself is still followed.
func TestEnrolFollowsNoRedirectAwayFromTheController(t *testing.T) {
	other, asked := elsewhere(t)
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away/api/v1/enrol":
			http.Redirect(w, r, other.URL+"/api/v1/enrol", http.StatusTemporaryRedirect)
		case "/here/api/v1/enrol":
			http.Redirect(w, r, "/moved/api/v1/enrol", http.StatusTemporaryRedirect)
		case "/moved/api/v1/enrol":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error": {"code": "not_found", "message": "the code is unknown"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ctl.Close)

	_, err := agent.Enrol(context.Background(), ctl.Client(), ctl.URL+"/away", "11111-22222-33333-44444")
	if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "http://")) {
		t.Fatalf("enrol redirected to %s: %v, want ErrRedirectAway naming it", other.URL, err)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("the other host was asked %d times", n)
	}
	_, err = agent.Enrol(context.Background(), ctl.Client(), ctl.URL+"/here", "11111-22222-33333-44444")
	if err == nil || !strings.Contains(err.Error(), "the code is unknown") {
		t.Fatalf("enrol redirected on the controller: %v, want the moved answer", err)
	}
}

// TestClockMeasuredOnlyAtTheController: the time request (GET
// /api/v1/time) followed a redirect to any host, which then learnt when
// the board asks; the signed time proof kept it from setting the clock.
// Now it is refused with protocol.ErrRedirectAway and the other host is
// never asked.
func TestClockMeasuredOnlyAtTheController(t *testing.T) {
	other, asked := elsewhere(t)
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	target, err := url.Parse(ctl.HTTP.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/time" {
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(link.Close)
	cred := ctl.Credentials("n1", "x1")
	cred.Controller = link.URL
	n := startAgent(t, cred, options{})

	_, _, err = n.a.MeasureOffset(context.Background())
	if !errors.Is(err, protocol.ErrRedirectAway) {
		t.Fatalf("time request redirected to %s: %v, want ErrRedirectAway", other.URL, err)
	}
	if got := asked.Load(); got != 0 {
		t.Fatalf("the other host was asked %d times", got)
	}
}
