// Package brokerconn bounds how long the embedded broker may wait to write
// to one client, and how long a new connection may take to send its
// CONNECT.
//
// mochi-mqtt writes some packets from the caller's goroutine, not the
// client's own writer: DisconnectClient (a revoked node, the server
// closing) writes a DISCONNECT packet before it closes the connection. A
// client that stopped reading — a board whose 4G link froze with a full
// send buffer, a hung process — makes that write block without end, and
// with it the API request that revoked the node or the controller's
// shutdown. Wrapping every accepted connection so that each write has a
// deadline turns such a client into a write error: mochi drops it, and the
// node reconnects when its link recovers.
//
// Until a connection has sent its CONNECT, mochi waits for it without a
// deadline, holding a goroutine and buffers for someone it does not know,
// and its Close waits for every such connection to end. A read deadline
// on each accepted connection ends those that do not send their CONNECT
// in time (an attacker's idle connections, a board whose link froze while
// it connected); mochi sets the keep-alive deadline once it has read the
// CONNECT.
package brokerconn

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultWriteTimeout is how long one write to a client may take. A healthy
// link, even 2G, moves the largest message (a signed desired state, well
// under 1 MiB) in far less.
const DefaultWriteTimeout = 30 * time.Second

// DefaultConnectTimeout is how long a new connection may take, from its
// accept, to send its CONNECT, TLS handshake included. A board on a slow
// 3G link needs a few round trips of a second or two.
const DefaultConnectTimeout = 20 * time.Second

// Listener is a mochi TCP (or TLS) listener whose connections time out
// writes that take longer than Timeout.
type Listener struct {
	*listeners.TCP
	Timeout time.Duration
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT; 0 waits without end, as mochi does.
	ConnectTimeout time.Duration
	// Server, when set, is the server the listener serves: Close then
	// disconnects its clients itself (see Close).
	Server *mochi.Server
}

// NewTCP returns a listener for cfg with writes bounded by timeout
// (DefaultWriteTimeout if 0) and the CONNECT by DefaultConnectTimeout.
func NewTCP(cfg listeners.Config, timeout time.Duration) *Listener {
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	return &Listener{TCP: listeners.NewTCP(cfg), Timeout: timeout, ConnectTimeout: DefaultConnectTimeout}
}

// Init starts listening.
func (l *Listener) Init(log *slog.Logger) error { return l.TCP.Init(log) }

// Serve accepts connections and hands each, wrapped and with the
// deadline of its CONNECT, to establish.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, c net.Conn) error {
		if l.ConnectTimeout > 0 {
			if err := c.SetReadDeadline(time.Now().Add(l.ConnectTimeout)); err != nil {
				c.Close()
				return fmt.Errorf("set the deadline of the CONNECT of %s: %w", c.RemoteAddr(), err)
			}
		}
		return establish(id, &Conn{Conn: c, timeout: l.Timeout})
	})
}

// Close stops listening and disconnects the listener's clients. mochi
// (v2.7.9) lists them with Clients.GetByListener, which takes the clients'
// read lock twice (it calls Len under it): a client ending its connection
// at that moment queues for the write lock in between, the second read
// lock waits behind it, and the server's Close never returns (seen as a
// test broker hanging for ten minutes). With Server set, the clients are
// listed with one read lock (GetAll) instead.
func (l *Listener) Close(closeClients listeners.CloseFn) {
	if l.Server == nil {
		l.TCP.Close(closeClients)
		return
	}
	srv := l.Server
	l.TCP.Close(func(id string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
}

// Conn is a connection whose every Write must finish within its timeout.
type Conn struct {
	net.Conn
	timeout time.Duration
}

// Write sets the write deadline and writes b.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
