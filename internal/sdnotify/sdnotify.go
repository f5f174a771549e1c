// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): a
// service started with Type=notify says READY=1 when it serves, and one
// with WatchdogSec= sends WATCHDOG=1 more often than that, or systemd
// kills and restarts it. Messages are datagrams to the unix socket named by
// $NOTIFY_SOCKET ("@name" is in the abstract namespace). Outside systemd
// the variable is unset and every call does nothing.
//
// It is a few lines of code, so it is written here rather than taken from
// github.com/coreos/go-systemd.
package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Standard states.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends states to systemd. The zero value (no socket) does
// nothing.
type Notifier struct {
	socket string
}

// New returns the notifier of this process, from getenv (os.Getenv):
// NOTIFY_SOCKET.
func New(getenv func(string) string) *Notifier {
	return &Notifier{socket: getenv("NOTIFY_SOCKET")}
}

// Enabled reports whether systemd listens.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Notify sends one or more newline-separated states, e.g. Ready or
// "STATUS=connected".
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if addr.Name[0] == '@' {
		addr.Name = "\x00" + addr.Name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// ExtendTimeout is the state that asks systemd to wait d longer for the
// current state to end (a start for READY=1): from the moment it hears it,
// it waits d more, but never less than the unit's own TimeoutStartSec=.
func ExtendTimeout(d time.Duration) string {
	return "EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10)
}

// Default pace of Starting.
const (
	// DefaultStartExtension is how much longer each request lets a start
	// run: as long as the unit's TimeoutStartSec=60s, so that one silent
	// part of the work (a large commit) may take that long.
	DefaultStartExtension = 60 * time.Second
	// DefaultStartEvery is how often the requests go while work goes on.
	DefaultStartEvery = 10 * time.Second
)

// Starting keeps systemd waiting for READY=1 while a long start goes on,
// and no longer: each Progress of the work sends EXTEND_TIMEOUT_USEC= with
// a STATUS= line (shown by systemctl status), at most once every Every. A
// start that hangs reports no progress, so systemd still kills it Extend
// after the last report.
type Starting struct {
	n *Notifier
	// Extend is how much more time each request asks for; Every how often
	// at most one is sent. Now reads the clock (tests fake it).
	Extend, Every time.Duration
	Now           func() time.Time
	log           *slog.Logger

	mu   sync.Mutex
	last time.Time // of the last request sent; zero before the first
}

// Starting returns a Starting that notifies through n at the default
// pace, and logs to log when systemd cannot be told.
func (n *Notifier) Starting(log *slog.Logger) *Starting {
	return &Starting{n: n, Extend: DefaultStartExtension, Every: DefaultStartEvery, Now: time.Now, log: log}
}

// Progress reports that the start made progress, described by status
// (e.g. "store upgrade: schema 3 → 4 …"). It is cheap enough to be
// called for every few records, and safe from any goroutine.
func (s *Starting) Progress(status string) {
	if !s.n.Enabled() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	if !s.last.IsZero() && now.Sub(s.last) < s.Every {
		return
	}
	s.last = now
	if err := s.n.Notify(ExtendTimeout(s.Extend) + "\nSTATUS=" + status); err != nil {
		s.log.Warn("systemd notify: cannot ask for more time to start", "err", err)
	}
}

// WatchdogInterval returns systemd's watchdog timeout for this process
// ($WATCHDOG_USEC, if $WATCHDOG_PID is unset or this process), or 0 when
// there is none.
func WatchdogInterval(getenv func(string) string) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// FeedWatchdog sends WATCHDOG=1 every timeout/3 for as long as alive
// answers within that time, until ctx ends. alive should prove the
// service works (its main loop answers), not merely that the process
// exists: when it stops answering, the feeding stops and systemd restarts
// the service.
func (n *Notifier) FeedWatchdog(ctx context.Context, timeout time.Duration, alive func(context.Context) error, log *slog.Logger) {
	if !n.Enabled() || timeout <= 0 {
		return
	}
	every := timeout / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		err := alive(actx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("watchdog: not alive; not feeding systemd's watchdog", "err", err)
		} else if err := n.Notify(Watchdog); err != nil {
			log.Warn("watchdog: notify", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
