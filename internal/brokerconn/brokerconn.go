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
//
// The deadline alone bounds how long each such connection lasts, not how
// many there are: someone opening connections faster than they end (a few
// hundred a second) held a file and a goroutine for each, thousands of
// them, until the process ran out of files and could accept no board, no
// request, and open no file of its own. The listener admits at most
// MaxConnecting connections waiting for their CONNECT at a time and ends
// the next ones at once, unread; connected clients do not count, and a
// board refused so retries after its backoff.
package brokerconn

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
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

// DefaultMaxConnecting is how many connections may wait for their CONNECT
// (TLS handshake included) at once. A province's boards reconnecting after
// a controller restart come within a few seconds, each waiting a second
// or two on 3G; those beyond it retry after their backoff. Each waiting
// connection holds a file and 8–25 KB (BENCHMARKS.md).
const DefaultMaxConnecting = 2048

// refusedLogEvery is how often the listener logs the connections it ended
// for lack of room.
const refusedLogEvery = time.Minute

// Listener is a mochi TCP (or TLS) listener whose connections time out
// writes that take longer than Timeout.
type Listener struct {
	*listeners.TCP
	Timeout time.Duration
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT; 0 waits without end, as mochi does.
	ConnectTimeout time.Duration
	// MaxConnecting is how many connections may wait for their CONNECT at
	// once; the listener ends the next ones at once. 0: no limit, as mochi.
	MaxConnecting int
	// Server, when set, is the server the listener serves: Close then
	// disconnects its clients itself (see Close).
	Server *mochi.Server
	// Logger receives the line about connections ended for lack of room;
	// nil: the logger Init is given.
	Logger *slog.Logger

	connecting atomic.Int64 // connections waiting for their CONNECT
	refused    atomic.Int64 // connections ended for lack of room, in all

	mu            sync.Mutex
	refusedLogged time.Time // when the last line about them was logged
	refusedSince  int64     // refused when it was
}

// NewTCP returns a listener for cfg with writes bounded by timeout
// (DefaultWriteTimeout if 0), the CONNECT by DefaultConnectTimeout and
// the connections waiting for it by DefaultMaxConnecting.
func NewTCP(cfg listeners.Config, timeout time.Duration) *Listener {
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	return &Listener{TCP: listeners.NewTCP(cfg), Timeout: timeout, ConnectTimeout: DefaultConnectTimeout, MaxConnecting: DefaultMaxConnecting}
}

// Init starts listening.
func (l *Listener) Init(log *slog.Logger) error {
	if l.Logger == nil {
		l.Logger = log
	}
	return l.TCP.Init(log)
}

// Serve accepts connections and hands each, wrapped and with the
// deadline of its CONNECT, to establish; beyond MaxConnecting waiting for
// their CONNECT, it ends them.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, c net.Conn) error {
		if n := l.connecting.Add(1); l.MaxConnecting > 0 && n > int64(l.MaxConnecting) {
			l.connecting.Add(-1)
			// Counted before it is closed: whoever sees it end may read
			// the count at once.
			l.refuse(c.RemoteAddr())
			c.Close()
			return nil
		}
		conn := &Conn{Conn: c, timeout: l.Timeout, connected: func() { l.connecting.Add(-1) }}
		defer conn.pastConnect() // however it ends
		if l.ConnectTimeout > 0 {
			if err := c.SetReadDeadline(time.Now().Add(l.ConnectTimeout)); err != nil {
				c.Close()
				return fmt.Errorf("set the deadline of the CONNECT of %s: %w", c.RemoteAddr(), err)
			}
		}
		return establish(id, conn)
	})
}

// Connecting returns how many connections wait for their CONNECT now.
func (l *Listener) Connecting() int { return int(l.connecting.Load()) }

// Refused returns how many connections the listener ended for lack of
// room since it started.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// refuse counts a connection ended for lack of room, and logs at most once
// every refusedLogEvery, with how many since the last line: someone
// opening thousands of connections must not flood the log as well.
func (l *Listener) refuse(remote net.Addr) {
	total := l.refused.Add(1)
	l.mu.Lock()
	now := time.Now()
	if !l.refusedLogged.IsZero() && now.Sub(l.refusedLogged) < refusedLogEvery {
		l.mu.Unlock()
		return
	}
	since := total - l.refusedSince
	l.refusedLogged, l.refusedSince = now, total
	l.mu.Unlock()
	l.Logger.Warn("broker: ended new connections at once: too many connections are waiting for their CONNECT (someone opening connections that do not authenticate, or a reconnection storm; boards retry after their backoff)",
		"max_connecting", l.MaxConnecting, "refused", since, "refused_total", total, "last_remote", remote.String())
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
	// connected, when set, is called once: when mochi, having read the
	// CONNECT, sets the connection's keep-alive deadline, or when the
	// connection ends before.
	connected func()
	once      sync.Once
}

// SetDeadline sets the read and write deadlines. mochi calls it first once
// it has read the CONNECT (its keep-alive deadline replaces the CONNECT's):
// from then on the connection no longer waits for its CONNECT.
func (c *Conn) SetDeadline(t time.Time) error {
	c.pastConnect()
	return c.Conn.SetDeadline(t)
}

// pastConnect notes that c no longer waits for its CONNECT.
func (c *Conn) pastConnect() {
	if c.connected != nil {
		c.once.Do(c.connected)
	}
}

// Write sets the write deadline and writes b.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
