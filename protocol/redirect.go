package protocol

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrRedirectAway: the controller's answer redirected a call to it (a
// node's download, enrolment or time request, the fleet's enrolment, a
// backup, a live call) to another scheme, host or port. Go's client
// would keep the Authorization header on some of those and send a body
// again on a 307 or 308, and a node would disclose what it fetches, and
// when, to a host nobody chose.
var ErrRedirectAway = errors.New("redirected away from the controller; calls to the controller, and their credentials, go to it alone")

// maxRedirects is how many redirects a download follows, as Go's default
// client does.
const maxRedirects = 10

// StayOnController returns an http.Client CheckRedirect that follows a
// redirect only to the controller at base (the same scheme, host and
// port; a default port written or not is the same), and at most 10 of
// them, refusing the others with ErrRedirectAway.
func StayOnController(base string) func(req *http.Request, via []*http.Request) error {
	return StayOnOrigin(base, "controller", ErrRedirectAway)
}

// StayOnOrigin is StayOnController for a client of another server (a
// province's system, say), named what in its errors, which wrap away:
// whatever sends a credential keeps it on the origin it was given, as Go
// keeps the Authorization header on a redirect to another port of the
// same host, to a subdomain and from https to http.
func StayOnOrigin(base, what string, away error) func(req *http.Request, via []*http.Request) error {
	b, err := url.Parse(base)
	return func(req *http.Request, via []*http.Request) error {
		if err != nil || b.Host == "" {
			return fmt.Errorf("redirect to %s: %s address %q is not an http(s) URL: %w", req.URL.Redacted(), what, base, away)
		}
		if origin(req.URL) != origin(b) {
			return fmt.Errorf("redirect to %s (%s %s): %w", origin(req.URL), what, origin(b), away)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// origin is u's scheme://host:port, lower case, with the scheme's default
// port written out.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}
