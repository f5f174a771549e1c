package protocol

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestStayOnController(t *testing.T) {
	for _, tc := range []struct {
		base, to string
		away     bool
	}{
		{"http://ctl.example:8080", "http://ctl.example:8080/api/v1/content/x/audio", false},
		{"http://ctl.example:8080/loaxa/", "http://CTL.example:8080/other", false},
		{"https://ctl.example", "https://ctl.example:443/x", false},
		{"http://ctl.example:80", "http://ctl.example/x", false},
		{"http://[::1]:8080", "http://[::1]:8080/x", false},
		{"http://ctl.example:8080", "http://other.example:8080/x", true},
		{"http://ctl.example:8080", "http://ctl.example:8081/x", true},
		{"https://ctl.example", "http://ctl.example/x", true},
		{"http://ctl.example", "https://ctl.example/x", true},
		{"http://ctl.example:8080", "http://ctl.example.evil.example:8080/x", true},
		{"not a url", "http://ctl.example/x", true},
	} {
		to, err := url.Parse(tc.to)
		if err != nil {
			t.Fatal(err)
		}
		err = StayOnController(tc.base)(&http.Request{URL: to}, []*http.Request{{}})
		if got := errors.Is(err, ErrRedirectAway); got != tc.away {
			t.Errorf("controller %s, redirect to %s: %v; want away %v", tc.base, tc.to, err, tc.away)
		}
	}
	// As Go's default: no more than 10 redirects, on the controller too.
	to, _ := url.Parse("http://ctl.example/x")
	if err := StayOnController("http://ctl.example")(&http.Request{URL: to}, make([]*http.Request, 10)); err == nil {
		t.Error("an eleventh redirect was followed")
	}
}

// TestStayOnOrigin: for a server other than the controller, the refusal
// names that server and wraps its caller's error.
func TestStayOnOrigin(t *testing.T) {
	away := errors.New("away from the upstream system")
	check := StayOnOrigin("https://ttn.example.vn/api/loaxa", "upstream system", away)
	to, _ := url.Parse("https://ttn.example.vn:8443/api/loaxa")
	err := check(&http.Request{URL: to}, []*http.Request{{}})
	if !errors.Is(err, away) || errors.Is(err, ErrRedirectAway) || !strings.Contains(err.Error(), "(upstream system https://ttn.example.vn:443)") {
		t.Errorf("redirect to another port: %v; want the caller's error, naming the upstream system's origin", err)
	}
	to, _ = url.Parse("https://TTN.example.vn/other")
	if err := check(&http.Request{URL: to}, []*http.Request{{}}); err != nil {
		t.Errorf("redirect on the same origin: %v", err)
	}
}
