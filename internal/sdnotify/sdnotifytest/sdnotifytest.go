// Package sdnotifytest is a stand-in for systemd's notify socket in tests:
// what a program under test sends where NOTIFY_SOCKET points is read back
// one datagram at a time.
package sdnotifytest

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Systemd is a unix datagram socket listening at Socket, closed when the
// test ends.
type Systemd struct {
	// Socket is the path to give the program as NOTIFY_SOCKET.
	Socket string
	conn   *net.UnixConn
}

// Listen opens a Systemd in a temporary directory of t.
func Listen(t testing.TB) *Systemd {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Systemd{Socket: socket, conn: conn}
}

// Read returns the next datagram, failing t if none comes within wait.
func (s *Systemd) Read(t testing.TB, wait time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	s.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("systemd heard nothing more within %v: %v", wait, err)
	}
	return string(buf[:n])
}
