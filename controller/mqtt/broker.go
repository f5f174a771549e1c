package mqtt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/brokerconn"
	"loaxa.vn/protocol"
)

// ControllerUsername is the broker account of the controller itself.
const ControllerUsername = "loaxa-controller"

// maxConnectSize is the largest CONNECT packet the broker reads.
const maxConnectSize = 8 << 10

// Bounds of the messages the broker holds for a client that it has not
// written to the client's connection yet; more are dropped.
const (
	controllerWritesPending = 1 << 17
	nodeWritesPending       = 512
)

// Broker is the embedded MQTT broker (mochi-mqtt). It authenticates every
// client: the controller with a secret generated at start, each node with its
// own id and secret; anonymous clients are refused. Nodes may publish only
// their own state and events and read only their own topics and their areas'.
type Broker struct {
	// Addr is the TCP listen address, e.g. ":1883" or "127.0.0.1:0".
	Addr   string
	Topics protocol.Topics
	// ControllerSecret is the password of ControllerUsername; Open generates
	// one when empty.
	ControllerSecret string
	NodeService      loaxa.NodeService
	AreaService      loaxa.AreaService
	Logger           *slog.Logger
	// TLSConfig, when set, makes the listener MQTTS (URL then gives
	// ssl://).
	TLSConfig *tls.Config
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT, TLS handshake included (0: brokerconn.DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// MaxConnecting is how many connections may wait for their CONNECT
	// (TLS handshake included) at once; the broker ends the next ones at
	// once (0: brokerconn.DefaultMaxConnecting).
	MaxConnecting int
	// UnroutedSweep is how often the broker looks for connected clients
	// it no longer routes publishes to (0: 5 s); see sweepUnrouted.
	UnroutedSweep time.Duration

	unrouted atomic.Int64  // clients sweepUnrouted disconnected
	sweeps   atomic.Int64  // sweeps made, for tests
	stop     chan struct{} // closed by Close: ends sweepUnrouted
	sweeper  sync.WaitGroup
	server   *mochi.Server
	listener *brokerconn.Listener
	auth     *authHook
	open     atomic.Bool // serving, not closed
	closed   atomic.Bool
	subIDs   atomic.Int32 // identifiers of the inline subscriptions, one per Client
	// moves counts Regrant calls: a connection whose grant was made from
	// a node read before a move and stored after Regrant looked for it
	// makes its grant again (authHook.OnConnectAuthenticate).
	moves atomic.Uint64
}

// NewBroker returns a broker with defaults.
func NewBroker() *Broker {
	return &Broker{Addr: ":1883", Topics: protocol.NewTopics(""), Logger: slog.Default()}
}

// Open starts listening (synchronously, so a busy port fails here) and
// serving.
func (b *Broker) Open() error {
	if b.ControllerSecret == "" {
		b.ControllerSecret = loaxa.NewSecret()
	}
	opts := &mochi.Options{
		// mochi logs every client disconnect as a warning with an empty
		// message; with hundreds of boards on flaky links that drowns the
		// log. Its errors still come through, and everything at debug.
		Logger:       slog.New(quietHandler{b.Logger.Handler()}).With("component", "broker"),
		Capabilities: mochi.NewDefaultServerCapabilities(),
		// The controller's Client reaches the broker in-process
		// (Client.Embedded), not over TCP.
		InlineClient: true,
	}
	// Retained desired states must outlive any outage; mochi would
	// otherwise drop retained messages older than a day.
	opts.Capabilities.MaximumMessageExpiryInterval = 0
	opts.Capabilities.MaximumPacketSize = protocol.MaxMessageSize + 4096
	// A client of the controller's account over TCP (a tool or test
	// watching every node's reports, as the controller's own client did
	// before it went in-process) gets every node's reports, and when an
	// alert starts or ends on 10,000 nodes at once they arrive faster
	// than it acknowledges them: with mochi's 8,192 unacknowledged
	// messages a client, the broker dropped thousands a round
	// (BENCHMARKS.md). Packet ids allow 65,535; the in-flight store grows
	// as used, so other clients pay nothing for the bound.
	opts.Capabilities.MaximumInflight = math.MaxUint16
	// Likewise its pending writes: mochi's default of 8,192 a client still
	// dropped a round's burst to such a subscription when it read slower
	// than 10,000 nodes reported, while each node receives a few messages
	// at a time. mochi allocates the bound whole (8 bytes a slot) when a
	// client connects, so nodes get a small one: 4 KB each instead of
	// 64 KB (third_party/mochi-server).
	opts.ClientWritesPending = func(cl *mochi.Client) int32 {
		if string(cl.Properties.Username) == ControllerUsername {
			return controllerWritesPending
		}
		return nodeWritesPending
	}
	// Before a client has authenticated, mochi allocated the whole body
	// its CONNECT's header declared, up to MaximumPacketSize: 1 MiB for
	// each of an attacker's connections that sent 5 bytes and stopped
	// (BENCHMARKS.md). A node's CONNECT (ids, secret, its offline Last
	// Will) is well under 1 KB (third_party/mochi-server).
	opts.MaximumConnectPacketSize = maxConnectSize
	b.server = mochi.New(opts)
	b.auth = &authHook{broker: b, clients: make(map[*mochi.Client]*grant)}
	if err := b.server.AddHook(b.auth, nil); err != nil {
		return fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := b.server.AddHook(&brokerconn.SessionGate{Server: b.server}, nil); err != nil {
		return fmt.Errorf("broker: add session gate: %w", err)
	}
	b.listener = brokerconn.NewTCP(listeners.Config{ID: "tcp", Address: b.Addr, TLSConfig: b.TLSConfig}, 0)
	if b.ConnectTimeout > 0 {
		b.listener.ConnectTimeout = b.ConnectTimeout
	}
	if b.MaxConnecting > 0 {
		b.listener.MaxConnecting = b.MaxConnecting
	}
	b.listener.Logger = b.Logger // mochi's own logger passes errors only
	b.listener.Server = b.server // its Close disconnects clients without mochi's double read lock
	if err := b.server.AddListener(b.listener); err != nil {
		return fmt.Errorf("broker: listen on %s: %w", b.Addr, err)
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.open.Store(true)
	b.stop = make(chan struct{})
	b.sweeper.Go(b.sweepUnrouted)
	return nil
}

// sweepUnrouted disconnects, every UnroutedSweep, each connected client
// whose publishes the broker no longer routes (mochi's DropUnrouted), so
// that it reconnects. mochi once left reconnecting nodes so: connected,
// shown online, deaf to alerts (third_party/mochi-server). That race is
// fixed, and the node itself notices within minutes that its own state no
// longer comes back (node/mqtt); this finds any such client in seconds and
// says so in the log and in loaxa_broker_unrouted_clients_total.
func (b *Broker) sweepUnrouted() {
	every := b.UnroutedSweep
	if every <= 0 {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		for _, cl := range b.auth.established() {
			if b.server.DropUnrouted(cl, packets.ErrServerBusy) {
				n := b.unrouted.Add(1)
				b.Logger.Error("broker: a connected client was missing from the broker's routing (it heard nothing); disconnected it so it reconnects",
					"client", cl.ID, "remote", cl.Net.Remote, "times", n)
			}
		}
		b.sweeps.Add(1)
	}
}

// serving reports whether the broker is open and not closed.
func (b *Broker) serving() bool { return b.open.Load() }

// nextSubID returns an identifier for a Client's inline subscriptions:
// mochi keys them by filter and identifier.
func (b *Broker) nextSubID() int { return int(b.subIDs.Add(1)) }

// AddHook adds a mochi hook to the open broker, after its own; tests use
// it to hold or drop messages the way a slow or lossy broker would.
func (b *Broker) AddHook(h mochi.Hook) error {
	if err := b.server.AddHook(h, nil); err != nil {
		return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
	}
	return nil
}

// ListenAddr returns the address the broker listens on.
func (b *Broker) ListenAddr() string { return b.listener.Address() }

// URL returns a tcp:// (or, with TLS, ssl://) URL for clients on this
// machine.
func (b *Broker) URL() string {
	scheme := "tcp://"
	if b.TLSConfig != nil {
		scheme = "ssl://"
	}
	host, port, err := net.SplitHostPort(b.ListenAddr())
	if err != nil {
		return scheme + b.ListenAddr()
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port)
}

// Disconnect drops the connection of a node, e.g. after its credentials
// were revoked. A connection still being set up is not in the broker's
// client list yet; it checks the node's credentials again once it is
// (authHook.OnSessionEstablished), so call Disconnect after the change is
// stored.
func (b *Broker) Disconnect(nodeID string) {
	if cl, ok := b.server.Clients.Get(nodeID); ok && !cl.Net.Inline {
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

// writtenPoll is how often AwaitWritten looks at the clients' queues.
const writtenPoll = 5 * time.Millisecond

// AwaitWritten waits until the broker has written out what was queued for
// its clients when it was called (those it admitted, while they stay
// connected), at most limit or until ctx ends; it reports whether it was.
// After an area publish this is when the broker's share of the fan-out is
// over: the controller stores the alert's plan then, not beside the
// writes (docs/emergency.md).
func (b *Broker) AwaitWritten(ctx context.Context, limit time.Duration) bool {
	var queued []*mochi.Client
	for _, cl := range b.auth.established() {
		if cl.Queued() > 0 && !cl.Closed() {
			queued = append(queued, cl)
		}
	}
	if len(queued) == 0 {
		return true
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(writtenPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
		queued = slices.DeleteFunc(queued, func(cl *mochi.Client) bool { return cl.Queued() == 0 || cl.Closed() })
		if len(queued) == 0 {
			return true
		}
	}
}

// Collectors returns the broker's metrics for a Prometheus registry: the
// messages it dropped on their way to a subscriber too slow to take them
// (its pending writes full) or with too many unacknowledged (in flight).
// The controller's own subscription is such a subscriber when thousands
// of nodes report at the same instant (BENCHMARKS.md).
func (b *Broker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_broker_messages_dropped_total", Help: "Messages the embedded broker dropped because a subscriber's pending writes were full.",
		}, func() float64 { return float64(atomic.LoadInt64(&b.server.Info.MessagesDropped)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_broker_inflight_dropped_total", Help: "QoS 1 and 2 messages the embedded broker dropped because a subscriber had too many unacknowledged.",
		}, func() float64 { return float64(atomic.LoadInt64(&b.server.Info.InflightDropped)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_broker_unrouted_clients_total", Help: "Connected clients the embedded broker found it no longer routed publishes to (they heard nothing), and disconnected so they reconnect.",
		}, func() float64 { return float64(b.unrouted.Load()) }),
	}
}

// Close stops the broker and disconnects everyone; once.
func (b *Broker) Close() error {
	if b.server == nil || b.closed.Swap(true) {
		return nil
	}
	b.open.Store(false)
	if b.stop != nil {
		close(b.stop)
		b.sweeper.Wait()
	}
	return b.server.Close()
}

// Regrant gives the connections of node id the topics of its area as
// the store has it now, after it moved to another area: a grant is made
// when the node connects, so without this the node kept hearing its old
// area's alerts and was refused its new one's until it next connected.
// Its subscriptions to the old area's topics stay in the broker, but
// nothing on them is delivered to it any more (deliveries are checked
// against the grant, OnACLCheck); the node drops them when its desired
// state names its new chain. A node not connected gets its grant when it
// connects.
func (b *Broker) Regrant(ctx context.Context, id string) error {
	b.moves.Add(1)
	h := b.auth
	var conns []*mochi.Client
	h.mu.Lock()
	for cl, g := range h.clients {
		if !g.controller && string(cl.Properties.Username) == id {
			conns = append(conns, cl)
		}
	}
	h.mu.Unlock()
	if len(conns) == 0 {
		return nil
	}
	n, err := b.NodeService.FindNodeByID(ctx, id)
	if err != nil {
		return fmt.Errorf("regrant %s: %w", id, err)
	}
	read, err := b.nodeReads(ctx, n)
	if err != nil {
		return fmt.Errorf("regrant %s: %w", id, err)
	}
	h.mu.Lock()
	for _, cl := range conns {
		if g := h.clients[cl]; g != nil {
			g.read = read
		}
	}
	h.mu.Unlock()
	b.Logger.Info("broker: a node moved to another area; it hears its new area's topics", "node", id, "area", n.Area)
	return nil
}

// nodeReads returns the topics node may read: its own, and the cmd and
// live topics of its area and every ancestor.
func (b *Broker) nodeReads(ctx context.Context, node *loaxa.Node) ([]string, error) {
	chain, err := b.AreaService.AreaChain(ctx, node.Area)
	if err != nil {
		return nil, fmt.Errorf("area of node: %w", err)
	}
	t := b.Topics
	// Its own state too: each state it publishes comes back, which
	// tells the node the broker still delivers to it (node/mqtt).
	read := []string{t.Node(node.ID, protocol.ChanDesired), t.Node(node.ID, protocol.ChanCmd), t.Node(node.ID, protocol.ChanState)}
	for _, a := range chain {
		read = append(read, t.Area(a, protocol.ChanCmd), t.Area(a, protocol.ChanLive))
	}
	return read, nil
}

// grant is what one authenticated connection may do. read may be
// replaced (Regrant) while the connection lasts: it is read and written
// under authHook.mu.
type grant struct {
	controller bool
	publish    []string
	read       []string
	// established: the broker admitted the connection (its session is
	// set up and acknowledged), so it must be routed.
	established bool
}

type authHook struct {
	mochi.HookBase
	broker *Broker

	mu      sync.Mutex
	clients map[*mochi.Client]*grant // keyed by connection: a reconnect with the same id must not lose its grant when the old one disconnects
}

func (h *authHook) ID() string { return "loaxa-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnSessionEstablished, mochi.OnACLCheck, mochi.OnDisconnect}, []byte{b})
}

// OnSessionEstablished checks a node's credentials again, now that the
// broker lists its connection, and disconnects it if they were revoked or
// replaced (rotation, a new enrolment) since it authenticated: while the
// connection was being set up, Broker.Disconnect, which finds connections
// in that list, could not cut it, and it would have gone on with its old
// grant. From here on Broker.Disconnect finds it.
func (h *authHook) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	h.mu.Lock()
	g := h.clients[cl]
	h.mu.Unlock()
	if g == nil {
		return
	}
	if !g.controller {
		if _, err := h.broker.NodeService.AuthenticateNode(context.Background(), string(cl.Properties.Username), string(pk.Connect.Password)); err != nil {
			h.broker.Logger.Warn("broker: a node's credentials were revoked or replaced while it connected; disconnected it",
				"client", cl.ID, "remote", cl.Net.Remote, "err", err)
			_ = h.broker.server.DisconnectClient(cl, packets.ErrNotAuthorized)
			return
		}
	}
	h.mu.Lock()
	g.established = true
	h.mu.Unlock()
}

// established returns the connections the broker admitted and has not
// seen end.
func (h *authHook) established() []*mochi.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*mochi.Client, 0, len(h.clients))
	for cl, g := range h.clients {
		if g.established {
			out = append(out, cl)
		}
	}
	return out
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(cl.Properties.Username)
	pass := string(pk.Connect.Password)
	log := h.broker.Logger.With("client", cl.ID, "user", user, "remote", cl.Net.Remote)
	moves := h.broker.moves.Load()
	g, err := h.authenticate(cl, pk, user, pass)
	if err != nil {
		log.Warn("broker: connection refused", "err", err)
		return false
	}
	h.mu.Lock()
	h.clients[cl] = g
	h.mu.Unlock()
	if !g.controller && h.broker.moves.Load() != moves {
		// A node moved while this one connected: its grant may name the
		// area it had, and Regrant may have looked before it was stored.
		if err := h.broker.Regrant(context.Background(), user); err != nil {
			log.Warn("broker: connection refused", "err", err)
			h.mu.Lock()
			delete(h.clients, cl)
			h.mu.Unlock()
			return false
		}
	}
	return true
}

var errRefused = errors.New("refused")

func (h *authHook) authenticate(cl *mochi.Client, pk packets.Packet, user, pass string) (*grant, error) {
	b := h.broker
	// Nobody may take over the session of the inline client, the
	// controller's own in the broker, whose id is a valid node id.
	if cl.ID == mochi.InlineClientId {
		return nil, fmt.Errorf("%w: client id %q is the broker's own", errRefused, cl.ID)
	}
	if user == ControllerUsername {
		if subtle.ConstantTimeCompare([]byte(pass), []byte(b.ControllerSecret)) != 1 {
			return nil, fmt.Errorf("%w: wrong controller secret", errRefused)
		}
		return &grant{controller: true}, nil
	}
	if user == "" {
		return nil, fmt.Errorf("%w: anonymous clients are not allowed", errRefused)
	}
	// A node connects as itself: otherwise one node could take over another's
	// session by reusing its client id.
	if cl.ID != user {
		return nil, fmt.Errorf("%w: client id %q differs from username", errRefused, cl.ID)
	}
	ctx := context.Background()
	node, err := b.NodeService.AuthenticateNode(ctx, user, pass)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRefused, err)
	}
	read, err := b.nodeReads(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRefused, err)
	}
	t := b.Topics
	g := &grant{
		publish: []string{t.Node(node.ID, protocol.ChanState), t.Node(node.ID, protocol.ChanEvent)},
		read:    read,
	}
	// The Last Will is published by the broker on the node's behalf without
	// an ACL check, so check its topic here.
	if pk.Connect.WillFlag && !slices.Contains(g.publish, pk.Connect.WillTopic) {
		return nil, fmt.Errorf("%w: last will on foreign topic %q", errRefused, pk.Connect.WillTopic)
	}
	return g, nil
}

func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	h.mu.Lock()
	g := h.clients[cl]
	var read []string
	if g != nil {
		read = g.read // Regrant replaces it, never changes it in place
	}
	h.mu.Unlock()
	switch {
	case g == nil:
		return false
	case g.controller:
		return true
	case write:
		return slices.Contains(g.publish, topic)
	default:
		// Subscriptions are checked against the filter, deliveries against
		// the topic; nodes get no wildcards, so both must match exactly.
		return slices.Contains(read, topic)
	}
}

func (h *authHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	h.mu.Lock()
	delete(h.clients, cl)
	h.mu.Unlock()
}

// quietHandler passes mochi's records through at Error, or at every level
// when the underlying handler logs Debug.
type quietHandler struct{ slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if q.Handler.Enabled(ctx, slog.LevelDebug) {
		return true
	}
	return l >= slog.LevelError && q.Handler.Enabled(ctx, l)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(as)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.Handler.WithGroup(name)}
}
