// Package brokerconn bounds how long the embedded broker may wait to write
// to one client.
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
package brokerconn

import (
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

// Listener is a mochi TCP (or TLS) listener whose connections time out
// writes that take longer than Timeout.
type Listener struct {
	*listeners.TCP
	Timeout time.Duration
	// Server, when set, is the server the listener serves: Close then
	// disconnects its clients itself (see Close).
	Server *mochi.Server
}

// NewTCP returns a listener for cfg with writes bounded by timeout
// (DefaultWriteTimeout if 0).
func NewTCP(cfg listeners.Config, timeout time.Duration) *Listener {
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	return &Listener{TCP: listeners.NewTCP(cfg), Timeout: timeout}
}

// Init starts listening.
func (l *Listener) Init(log *slog.Logger) error { return l.TCP.Init(log) }

// Serve accepts connections and hands each, wrapped, to establish.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, c net.Conn) error {
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
