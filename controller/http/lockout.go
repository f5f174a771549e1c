package http

import (
	"net"
	"net/http"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
)

// LoginLimits bound guessing at sign-in and enrolment. Failures are counted
// per username and per client address within Window; reaching a limit locks
// that username or address for LockFor, doubling with each lock in a row up
// to MaxLock. While locked, the password is not even checked, so a locked
// attack costs no bcrypt time.
type LoginLimits struct {
	// UserFailures is how many failed sign-ins lock one username. It is low
	// because a person mistypes a few times, a guesser thousands.
	UserFailures int
	// AddrFailures is how many failures (sign-ins with any username, or
	// wrong enrolment codes) lock one client address. It is higher, because
	// a commune office may share one address.
	AddrFailures int
	Window       time.Duration
	LockFor      time.Duration
	MaxLock      time.Duration
}

// DefaultLoginLimits: 5 wrong passwords for one user or 20 from one address
// within 15 minutes lock for 5 minutes, then 10, 20, … up to an hour.
var DefaultLoginLimits = LoginLimits{UserFailures: 5, AddrFailures: 20, Window: 15 * time.Minute, LockFor: 5 * time.Minute, MaxLock: time.Hour}

// maxTracked bounds the limiter's memory; past it, expired entries are swept.
const maxTracked = 100_000

// limiter counts failures by key ("user:<name>", "addr:<ip>").
type limiter struct {
	mu      sync.Mutex
	entries map[string]*attempts
}

type attempts struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time
	locks       int // locks in a row, for the doubling
}

// locked returns how long key stays locked at now, or 0.
func (l *limiter) locked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.entries[key]; a != nil && now.Before(a.lockedUntil) {
		return a.lockedUntil.Sub(now)
	}
	return 0
}

// fail counts a failure for key and locks it when limit is reached.
func (l *limiter) fail(key string, limit int, lim LoginLimits, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = make(map[string]*attempts)
	}
	a := l.entries[key]
	if a == nil {
		if len(l.entries) >= maxTracked {
			l.sweep(now, lim)
		}
		a = &attempts{windowStart: now}
		l.entries[key] = a
	}
	if now.Sub(a.windowStart) >= lim.Window {
		a.failures, a.windowStart = 0, now
		if now.Sub(a.lockedUntil) >= lim.Window {
			a.locks = 0 // quiet for a whole window: forgive earlier locks
		}
	}
	a.failures++
	if a.failures >= limit {
		d := lim.LockFor << min(a.locks, 16)
		if d > lim.MaxLock || d <= 0 {
			d = lim.MaxLock
		}
		a.lockedUntil, a.failures, a.windowStart = now.Add(d), 0, now
		a.locks++
	}
}

// forget drops key's record, after a successful sign-in.
func (l *limiter) forget(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// sweep drops entries with nothing left to remember. Called with mu held.
func (l *limiter) sweep(now time.Time, lim LoginLimits) {
	for k, a := range l.entries {
		if now.Sub(a.windowStart) >= lim.Window && now.Sub(a.lockedUntil) >= lim.Window {
			delete(l.entries, k)
		}
	}
}

// clientAddr is the address failures are counted against: the peer IP, with
// IPv6 addresses grouped by their /64, which one subscriber usually holds
// whole. Behind a reverse proxy every client shares the proxy's address;
// see docs/security.md.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

func (s *Server) loginLimits() LoginLimits {
	if s.LoginLimits.UserFailures <= 0 {
		return DefaultLoginLimits
	}
	return s.LoginLimits
}

// checkLocked refuses a sign-in for username (may be "") from r's address
// while either is locked.
func (s *Server) checkLocked(r *http.Request, username string) error {
	now := s.now()
	if username != "" {
		if d := s.limits.locked("user:"+username, now); d > 0 {
			return &retryAfter{after: d, err: loaxa.Errorf(loaxa.ETooMany,
				"Too many failed sign-ins for %q; wait %s and try again, or ask an administrator to check the account.", username, waitText(d))}
		}
	}
	if d := s.limits.locked("addr:"+clientAddr(r), now); d > 0 {
		return &retryAfter{after: d, err: loaxa.Errorf(loaxa.ETooMany,
			"Too many failed attempts from your address; wait %s and try again.", waitText(d))}
	}
	return nil
}

// failed counts a failed sign-in (username "" for a wrong enrolment code).
func (s *Server) failed(r *http.Request, username string) {
	lim, now := s.loginLimits(), s.now()
	if username != "" {
		s.limits.fail("user:"+username, lim.UserFailures, lim, now)
	}
	s.limits.fail("addr:"+clientAddr(r), lim.AddrFailures, lim, now)
}

// waitText says a wait in whole minutes, or seconds under one.
func waitText(d time.Duration) string {
	if d < time.Minute {
		return loaxa.Count(max(1, int((d+time.Second-1)/time.Second)), "second", "seconds")
	}
	return loaxa.Count(int((d+time.Minute-1)/time.Minute), "minute", "minutes")
}
