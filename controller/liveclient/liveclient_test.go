package liveclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"loaxa.vn/protocol"
)

// TestDialFollowsNoRedirectAwayFromTheController: "controller live"
// opens GET /api/v1/live with the officer's bearer token, and the
// WebSocket dialer follows redirects with Go's client, which keeps the
// Authorization header on a redirect to another port of the same host
// (and to a subdomain, and from https to http): another server on the
// controller's host got the token, and the areas and title of the call.
// Redirects now stay on the controller's scheme, host and port; the
// other server is not asked.
func TestDialFollowsNoRedirectAwayFromTheController(t *testing.T) {
	asked := make(chan string, 10)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Header.Get("Authorization")
		http.Error(w, "not the controller", http.StatusTeapot)
	}))
	defer other.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/moved":
			http.Error(w, "moved here", http.StatusTeapot)
		case r.URL.Query().Get("title") == "moved":
			http.Redirect(w, r, "/moved", http.StatusFound)
		default:
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
		}
	}))
	defer front.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, base := range []string{front.URL, strings.Replace(front.URL, "http:", "ws:", 1)} {
		call, err := Dial(ctx, Options{URL: base, Token: "officer-token", Areas: []string{"31"}})
		if err == nil {
			call.c.CloseNow()
			t.Fatalf("%s: a call opened through a redirect to another server", base)
		}
		if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), other.URL) {
			t.Errorf("%s: %v; want ErrRedirectAway naming %s", base, err, other.URL)
		}
		select {
		case auth := <-asked:
			t.Errorf("%s: the other server was asked, with Authorization %q", base, auth)
		default:
		}

		// A redirect on the controller itself is followed, whether its
		// address was given as http or ws.
		_, err = Dial(ctx, Options{URL: base, Token: "officer-token", Areas: []string{"31"}, Title: "moved"})
		if err == nil || errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), "moved here") {
			t.Errorf("%s: through a redirect on the controller: %v; want the answer of /moved", base, err)
		}
	}
}
