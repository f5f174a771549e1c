package sdnotify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSystemd listens where NOTIFY_SOCKET points and hands over what it
// receives.
func fakeSystemd(t *testing.T, name string) (string, <-chan string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return name, got
}

func next(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("systemd received nothing")
		return ""
	}
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct{ name, socket, listen string }{
		{"path", filepath.Join(t.TempDir(), "notify"), ""},
		{"abstract", "@loaxa-test-" + strconv.Itoa(os.Getpid()), "\x00loaxa-test-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen
			if listen == "" {
				listen = tc.socket
			}
			_, got := fakeSystemd(t, listen)
			n := New(func(k string) string { return map[string]string{"NOTIFY_SOCKET": tc.socket}[k] })
			if err := n.Notify(Ready + "\nSTATUS=connected"); err != nil {
				t.Fatal(err)
			}
			if s := next(t, got); s != "READY=1\nSTATUS=connected" {
				t.Fatalf("systemd got %q", s)
			}
		})
	}
	// Outside systemd: nothing, and no error.
	if err := New(func(string) string { return "" }).Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if err := New(func(string) string { return filepath.Join(t.TempDir(), "none") }).Notify(Ready); err == nil {
		t.Fatal("no error for a socket nobody listens on")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
		err  bool
	}{
		{nil, 0, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}, 30 * time.Second, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0, false}, // meant for another process
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, true},
	} {
		got, err := WatchdogInterval(func(k string) string { return tc.env[k] })
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%v: %v, %v; want %v, error %v", tc.env, got, err, tc.want, tc.err)
		}
	}
}

// The watchdog is fed after each answer of the service, and not after a
// failed one.
func TestFeedWatchdog(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// read returns a datagram that arrived within wait, or "".
	read := func(wait time.Duration) string {
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	asks := make(chan chan error)
	alive := func(ctx context.Context) error {
		reply := make(chan error, 1)
		select {
		case asks <- reply:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-reply:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(func(string) string { return socket }).FeedWatchdog(ctx, 3*time.Second, alive, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	(<-asks) <- nil
	if s := read(10 * time.Second); s != Watchdog {
		t.Fatalf("after a healthy answer systemd got %q", s)
	}
	(<-asks) <- errors.New("stuck")
	next := <-asks // the loop asked again: the failed round is over
	// Datagrams on a unix socket arrive on write, so one sent is there (a
	// deadline already past would not even look).
	if s := read(100 * time.Millisecond); s != "" {
		t.Fatalf("fed %q after a failed answer", s)
	}
	next <- nil
	if s := read(10 * time.Second); s != Watchdog {
		t.Fatalf("after recovering systemd got %q", s)
	}
	cancel()
	<-done
}

// TestStartingExtendsWhileWorkProgresses: a long start (a schema upgrade
// of the controller's store) asks systemd for more time at its first
// progress and then at most every Every, each time with what it is doing;
// progress more often sends nothing more. (It sends only when called, so a
// hung start, which reports no progress, is still killed.)
func TestStartingExtendsWhileWorkProgresses(t *testing.T) {
	socket, got := fakeSystemd(t, filepath.Join(t.TempDir(), "notify"))
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	s := New(func(string) string { return socket }).Starting(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Now = func() time.Time { return now }

	s.Progress("store upgrade: schema 3 → 4, 0 of 4000000 records")
	if m := next(t, got); m != "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=store upgrade: schema 3 → 4, 0 of 4000000 records" {
		t.Fatalf("first progress: systemd heard %q", m)
	}
	for i := range 9 {
		now = now.Add(time.Second)
		s.Progress("store upgrade: schema 3 → 4, " + strconv.Itoa(i) + "000 of 4000000 records")
	}
	now = now.Add(time.Second)
	s.Progress("store upgrade: schema 3 → 4, 2000000 of 4000000 records, about 20 s left")
	// Datagrams arrive in order: had any of the nine sent, it would come first.
	if m := next(t, got); m != "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=store upgrade: schema 3 → 4, 2000000 of 4000000 records, about 20 s left" {
		t.Fatalf("after 10 s of progress: systemd heard %q, want one request with the latest status", m)
	}
}
