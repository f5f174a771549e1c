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
