// Package mqtt is the node agent's link to the broker, over paho.
//
// The link connects as the node (client id and username are the node id),
// registers a retained "offline" Last Will on the node's state topic,
// publishes a retained "online" state and (re)subscribes to the node's
// desired and cmd topics and to the cmd topic of every area in its chain on
// every connect, and reconnects by itself. Incoming
// messages are queued without blocking paho; the agent takes them (Next)
// in the order the broker sent them. The queue keeps separate room
// for control messages (desired states, commands, live starts and ends)
// and for live audio frames: while the agent's loop is held up (opening a
// play, a slow SD card write), a burst of frames drops the oldest frames,
// never a command that comes after them (a frame is worth nothing late; a
// command may be an alert).
//
// Reconnecting is the link's own loop, not paho's: paho's reconnect sleeps
// cannot be interrupted (a closed link would leave a goroutine behind for up
// to the backoff) and do not jitter (a province of boards would come back in
// step after a broker restart). The loop waits a random time up to an
// exponentially growing cap before each retry, and dials with a context
// that Close cancels.
//
// A node moved to another area (SetAreas), or whose subscription to an
// area's topics the broker refused (an ACL not yet updated for the move),
// would hear nothing of that area, alerts included, until it next
// connects. So until the broker grants the topics of every area in the
// chain, the link subscribes again, waiting longer after each failure (up
// to MaxReconnectInterval), and AreasUnheard names the areas it does not
// hear (the node's state reports them).
//
// The link also checks that the broker still delivers to it, which a live
// connection does not prove: a broker can keep a client connected and
// answering pings while its subscriptions no longer reach it (the embedded
// broker's reconnect race, fixed in third_party/mochi-server, was one
// such bug). The node subscribes to its own state topic; each state it
// publishes while connected is a probe whose echo must come back within
// EchoTimeout after the broker accepted it. When one does not, the link
// drops the connection (so the broker publishes the Last Will) and
// connects again, and counts it (Deaf).
//
// The same subscription shows the link when the retained state on the
// broker is no longer its own while it is connected: a broker may publish
// the Last Will of the node's earlier connection (or of its process before
// a restart) after the new connection published its state, and the
// controller would show the cluster offline until its next heartbeat. A
// state on its topic that the link did not publish, while it is
// connected, makes it publish the node's state again (Restated).
package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"loaxa.vn/protocol"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("mqtt link closed")

// Config configures a Link. Broker, Node, Username and Secret are required.
type Config struct {
	// Broker is the MQTT URL, e.g. tcp://10.0.0.2:1883 or ssl://…:8883.
	Broker   string
	Node     string
	Username string
	Secret   string
	Topics   protocol.Topics
	// Areas is the node's area chain, its own area first.
	Areas []string
	// Will is published, retained on the node's state topic, by the broker
	// when the link dies without a clean disconnect.
	Will []byte
	// Online returns the retained state published on every connect.
	Online func() []byte
	// Queue is how many incoming control messages (all but live audio
	// frames) wait for the agent; one more is dropped (default 256).
	Queue int
	// FrameQueue is how many live audio frames wait for the agent; one
	// more drops the oldest (default 16: about a second of a call, more
	// than the node's jitter buffer keeps).
	FrameQueue int
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the reconnect backoff (default 2m).
	MaxReconnectInterval time.Duration
	// ConnectRetryInterval is the first backoff cap: the wait before the
	// n-th retry is random in [0, min(ConnectRetryInterval·2ⁿ⁻¹,
	// MaxReconnectInterval)) (default 2s).
	ConnectRetryInterval time.Duration
	// TLS configures ssl://, tls:// and mqtts:// brokers.
	TLS *tls.Config
	// KeepAlive is the MQTT keep-alive (default 30s); a dead link is
	// noticed after about 1.5 times this.
	KeepAlive time.Duration
	// PublishTimeout bounds waiting for the broker to accept a publish or
	// subscription (default 10s).
	PublishTimeout time.Duration
	// EchoTimeout is how long after its hand-off a state publish the
	// broker accepted may go without its echo before the link takes
	// itself for deaf and reconnects (default 60s; negative: never). It
	// must cover the broker's delivery under the heaviest load: at 10,000
	// simulated nodes on two cores, alerts reached nodes up to 17 s
	// after their publish (BENCHMARKS.md).
	EchoTimeout time.Duration
	Logger      *slog.Logger
}

// Message is one message received from the broker.
type Message struct {
	Topic   string
	Payload []byte
}

// Link is a node's connection to the broker.
type Link struct {
	cfg      Config
	log      *slog.Logger
	client   paho.Client
	in       inbox // incoming messages the agent has not taken
	connects chan struct{}
	dropped  atomic.Uint64 // control messages dropped
	frames   atomic.Uint64 // live frames dropped
	deaf     atomic.Uint64
	echoes   atomic.Uint64 // echoes heard, for tests
	heard    atomic.Uint64 // messages received on any topic, echoes included
	checked  atomic.Int64  // when watchEcho last looked (Unix ns), for tests
	echo     echoWatch
	sent     sentStates  // the states the link published, to tell its own from others'
	restate  atomic.Bool // a state is being published again after another's
	restated atomic.Uint64
	closed   atomic.Bool
	ready    atomic.Bool   // connected, subscribed and online state handed to paho
	reached  atomic.Bool   // the last connect reached the broker, which did not refuse it (Reaches)
	dialed   atomic.Bool   // the connect under way reached the broker (TCP, TLS)
	lost     chan struct{} // the connection dropped
	done     chan struct{} // closed by Close
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	rand     *rand.Rand

	// subMu makes subscriptions one at a time, so that the last to
	// finish is the last asked for (the areas as they are now).
	subMu sync.Mutex
	// retryNow wakes followAreas: the areas changed, or the link connected
	// again.
	retryNow chan struct{}
	// unheardMoved signals that AreasUnheard changed.
	unheardMoved chan struct{}

	// stateMu orders the retained state publishes: the one on connect
	// and PublishState each build their state and hand it to paho under
	// it, so the state published last is also the state built last.
	stateMu sync.Mutex

	mu         sync.Mutex
	areas      []string
	areasGen   uint64      // counts the changes of areas
	subscribed []string    // topics the broker granted on this connection
	following  bool        // follow runs
	unheard    []string    // AreasUnheard as last signalled
	conn       *linkConn   // the connection dial opened last
	deafAt     []time.Time // the last reconnects for deafness, oldest first
	refusedMsg bool        // the refused echo subscription was logged
}

// Open starts connecting in the background and returns at once; the link
// keeps trying until Close. Watch Connects to know when it is up.
func Open(cfg Config) (*Link, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt link: broker URL %q: want tcp://host:port", cfg.Broker)
	}
	if cfg.Node == "" || cfg.Username == "" {
		return nil, fmt.Errorf("mqtt link: node and username are required")
	}
	if cfg.Topics.Prefix == "" {
		cfg.Topics = protocol.NewTopics("")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.FrameQueue <= 0 {
		cfg.FrameQueue = 16
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxReconnectInterval <= 0 {
		cfg.MaxReconnectInterval = 2 * time.Minute
	}
	if cfg.ConnectRetryInterval <= 0 {
		cfg.ConnectRetryInterval = 2 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.EchoTimeout == 0 {
		cfg.EchoTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Link{
		cfg:          cfg,
		log:          cfg.Logger,
		in:           inbox{controlRoom: cfg.Queue, frameRoom: cfg.FrameQueue, waiting: make(chan struct{}, 1)},
		connects:     make(chan struct{}, 1),
		lost:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		areas:        slices.Clone(cfg.Areas),
		retryNow:     make(chan struct{}, 1),
		unheardMoved: make(chan struct{}, 1),
		rand:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	opts := paho.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(cfg.Node).
		SetUsername(cfg.Username).
		SetPassword(cfg.Secret).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetTLSConfig(cfg.TLS).
		SetCustomOpenConnectionFn(l.dial).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive/2, 10*time.Second)).
		SetWriteTimeout(cfg.PublishTimeout).
		SetOrderMatters(true).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.ready.Store(false)
			l.log.Warn("mqtt: link to broker lost", "err", err)
			select {
			case l.lost <- struct{}{}:
			default:
			}
		})
	if cfg.Will != nil {
		opts.SetBinaryWill(cfg.Topics.Node(cfg.Node, protocol.ChanState), cfg.Will, 1, true)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return nil, fmt.Errorf("mqtt link: broker URL %q: scheme %q not supported; use tcp:// or ssl://", cfg.Broker, u.Scheme)
	}
	l.client = paho.NewClient(opts)
	// The agent runs its schedule offline meanwhile, so do not wait.
	l.wg.Add(1)
	go l.run()
	if cfg.EchoTimeout > 0 {
		l.wg.Add(1)
		go l.watchEcho()
	}
	return l, nil
}

// run connects, waits for the connection to drop, and connects again, with
// a jittered backoff between attempts, until Close.
func (l *Link) run() {
	defer l.wg.Done()
	failures := 0
	for {
		l.dialed.Store(false)
		tok := l.client.Connect()
		select {
		case <-tok.Done():
		case <-l.done:
			return
		}
		l.reached.Store(l.dialed.Load() && !refused(tok.Error()))
		if err := tok.Error(); err != nil {
			failures++
			l.log.Warn("mqtt: connect failed", "broker", l.cfg.Broker, "attempt", failures, "err", err)
			if !l.pause(failures) {
				return
			}
			continue
		}
		failures = 0
		select {
		case <-l.lost:
		case <-l.done:
			return
		}
		// Even the first retry after a drop waits a random while: when a
		// broker restarts, its whole fleet loses the link at once.
		if !l.pause(1) {
			return
		}
	}
}

// pause waits before the n-th retry (full jitter), or returns false if the
// link was closed meanwhile.
func (l *Link) pause(n int) bool {
	limit := l.cfg.ConnectRetryInterval << min(n-1, 20)
	if limit <= 0 || limit > l.cfg.MaxReconnectInterval {
		limit = l.cfg.MaxReconnectInterval
	}
	l.mu.Lock()
	wait := time.Duration(l.rand.Int64N(int64(limit)))
	l.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-l.done:
		return false
	}
}

// dial opens the TCP (or TLS) connection for paho with a context Close
// cancels, so closing never waits for a dial to time out.
func (l *Link) dial(u *url.URL, opts paho.ClientOptions) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, opts.ConnectTimeout)
	defer cancel()
	host := u.Host
	if u.Port() == "" {
		port := "1883"
		if u.Scheme != "tcp" && u.Scheme != "mqtt" {
			port = "8883"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
		cfg := opts.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", host)
	default:
		conn, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, err
	}
	l.dialed.Store(true)
	c := &linkConn{Conn: conn}
	l.mu.Lock()
	l.conn = c
	l.mu.Unlock()
	return c, nil
}

// errDeaf ends a connection the broker no longer delivers to.
var errDeaf = errors.New("the broker no longer delivers to this node")

// linkConn is the connection paho uses, which the link can fail: closing it
// would not do, since paho takes a read on a closed connection for a
// disconnect it asked for and never reports the loss.
type linkConn struct {
	net.Conn
	failed atomic.Bool
}

func (c *linkConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.failed.Load() {
		return n, errDeaf
	}
	return n, err
}

// fail makes the pending or next read return errDeaf.
func (c *linkConn) fail() {
	c.failed.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now()) // wakes a pending read
}

// refused reports whether err is the broker's refusal of the node in its
// CONNACK: its credentials, its client id, or the broker unavailable.
func refused(err error) bool {
	if err == nil {
		return false
	}
	for _, r := range []error{packets.ErrorRefusedBadProtocolVersion, packets.ErrorRefusedIDRejected, packets.ErrorRefusedServerUnavailable,
		packets.ErrorRefusedBadUsernameOrPassword, packets.ErrorRefusedNotAuthorised} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// Reaches reports whether the link's last attempt to connect reached the
// broker — a TCP connection, and the TLS handshake for ssl:// — and was not
// refused by it (CONNACK). A link that is not Connected while this holds
// fails past both the network and the broker's judgement of the node: at
// MQTT, in this program (an agent release on probation, node/update).
func (l *Link) Reaches() bool { return l.reached.Load() }

// Waiting signals that incoming messages wait to be taken with Next. It
// is never closed.
func (l *Link) Waiting() <-chan struct{} { return l.in.waiting }

// Next takes the oldest incoming message, if any; when more wait, Waiting
// signals again.
func (l *Link) Next() (Message, bool) { return l.in.next() }

// Connects signals (coalesced) each time the link has connected, subscribed
// and published the online state.
func (l *Link) Connects() <-chan struct{} { return l.connects }

// Connected reports whether the link is up and subscribed now: between the
// connection opening and its subscriptions being granted the node would
// miss what is published to it, so it does not count as connected yet.
func (l *Link) Connected() bool { return l.ready.Load() && l.client.IsConnectionOpen() }

// Open reports whether the connection to the broker is open, subscribed or
// not.
func (l *Link) Open() bool { return l.client.IsConnectionOpen() }

// Dropped returns how many incoming control messages (all but live audio
// frames) were dropped because the agent did not keep up.
func (l *Link) Dropped() uint64 { return l.dropped.Load() }

// FramesDropped returns how many live audio frames were dropped, the
// oldest first, because the agent did not keep up.
func (l *Link) FramesDropped() uint64 { return l.frames.Load() }

// Deaf returns how many times the link found the broker no longer
// delivering to it (a state's echo did not come back) and reconnected.
func (l *Link) Deaf() uint64 { return l.deaf.Load() }

// Checks reports whether the link checks that the broker still delivers
// to it: it has heard an echo, which arms the check.
func (l *Link) Checks() bool {
	l.echo.mu.Lock()
	defer l.echo.mu.Unlock()
	return l.echo.armed
}

// DeafSince returns how many of the link's reconnects for deafness were
// after t (of the last maxDeafKept).
func (l *Link) DeafSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.deafAt {
		if at.After(t) {
			n++
		}
	}
	return n
}

// maxDeafKept bounds the reconnects for deafness DeafSince counts: a
// broker that deafens a node that often is reported as such already.
const maxDeafKept = 100

// Topics returns the topics the link subscribes to: the agent's, and the
// node's own state topic for the echo.
func (l *Link) Topics() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topicsLocked()
}

func (l *Link) topicsLocked() []string {
	t := l.cfg.Topics
	out := []string{t.Node(l.cfg.Node, protocol.ChanDesired), t.Node(l.cfg.Node, protocol.ChanCmd)}
	for _, a := range l.areas {
		out = append(out, t.Area(a, protocol.ChanCmd), t.Area(a, protocol.ChanLive))
	}
	if l.cfg.EchoTimeout > 0 {
		out = append(out, l.stateTopic())
	}
	return out
}

func (l *Link) stateTopic() string { return l.cfg.Topics.Node(l.cfg.Node, protocol.ChanState) }

// SetAreas changes the area chain; when it differs, the link subscribes to
// the new areas' topics, until the broker grants them, and drops the old
// ones.
func (l *Link) SetAreas(areas []string) {
	l.mu.Lock()
	if slices.Equal(l.areas, areas) {
		l.mu.Unlock()
		return
	}
	l.areas = slices.Clone(areas)
	l.areasGen++
	l.mu.Unlock()
	if !l.client.IsConnectionOpen() {
		return // the next connect subscribes
	}
	l.follow()
}

// AreasUnheard returns the areas of the chain whose cmd or live topic the
// broker has not granted the link on its connection (it keeps trying);
// nil while it is not connected.
func (l *Link) AreasUnheard() []string {
	if !l.client.IsConnectionOpen() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unheardLocked()
}

// UnheardChanged signals (coalesced) that AreasUnheard may have changed.
func (l *Link) UnheardChanged() <-chan struct{} { return l.unheardMoved }

func (l *Link) unheardLocked() []string {
	t := l.cfg.Topics
	var out []string
	for _, a := range l.areas {
		if !slices.Contains(l.subscribed, t.Area(a, protocol.ChanCmd)) || !slices.Contains(l.subscribed, t.Area(a, protocol.ChanLive)) {
			out = append(out, a)
		}
	}
	return out
}

// noteUnheard signals UnheardChanged if the areas not heard changed.
func (l *Link) noteUnheard() {
	l.mu.Lock()
	now := l.unheardLocked()
	moved := !slices.Equal(now, l.unheard)
	l.unheard = now
	l.mu.Unlock()
	if moved {
		select {
		case l.unheardMoved <- struct{}{}:
		default:
		}
	}
}

// follow makes sure that the link subscribes again until it hears every
// area of its chain: it starts followAreas, or wakes it.
func (l *Link) follow() {
	l.mu.Lock()
	running := l.following
	l.following = true
	l.mu.Unlock()
	if running {
		select {
		case l.retryNow <- struct{}{}:
		default:
		}
		return
	}
	if !l.background(l.followAreas) {
		l.mu.Lock()
		l.following = false
		l.mu.Unlock()
	}
}

// followAreas subscribes until the broker grants the topics of every area
// of the chain as it is then, while the connection lasts, waiting longer
// after each failure. Without it a refused or failed subscription was only
// logged, and the node heard nothing of its new area until it next
// connected.
func (l *Link) followAreas() {
	wait := l.cfg.ConnectRetryInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-l.done:
			return
		case <-timer.C:
		case <-l.retryNow:
			wait = l.cfg.ConnectRetryInterval
		}
		gen, err := l.subscribe()
		l.mu.Lock()
		unheard := l.unheardLocked()
		switch {
		case !l.client.IsConnectionOpen():
			// The next connect subscribes again, and follows if need be.
			l.following = false
			l.mu.Unlock()
			return
		case err == nil && len(unheard) == 0 && gen == l.areasGen:
			l.following = false
			l.mu.Unlock()
			if failures > 0 {
				l.log.Info("mqtt: the node hears every area of its chain again", "areas", l.Areas(), "attempts", failures+1)
			}
			return
		}
		l.mu.Unlock()
		if err == nil && len(unheard) == 0 {
			timer.Reset(0) // the areas changed meanwhile
			continue
		}
		failures++
		l.log.Error("mqtt: the node does not hear some areas of its chain (it would miss their alerts); subscribing again",
			"areas", unheard, "attempt", failures, "retry_in", wait, "err", err)
		timer.Reset(wait)
		wait = min(2*wait, l.cfg.MaxReconnectInterval)
	}
}

// Areas returns the area chain the link follows.
func (l *Link) Areas() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.areas)
}

// background runs fn in a goroutine Close waits for, unless the link is
// closed; it reports whether fn runs.
func (l *Link) background(fn func()) bool {
	l.mu.Lock() // with Close's: no Add may race its Wait
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn()
	}()
	return true
}

func (l *Link) onConnect(c paho.Client) {
	// The broker took the connect. paho starts this handler before it
	// completes the connect's token, so run may not have stored this yet
	// when the connect is signalled below.
	l.reached.Store(true)
	l.ready.Store(false)
	l.echo.reset(false)
	l.mu.Lock()
	l.subscribed = nil // a clean session starts with none
	l.mu.Unlock()
	if _, err := l.subscribe(); err != nil {
		// Without its subscriptions the node is deaf; keep trying in the
		// background so this handler returns and paho carries on.
		l.log.Error("mqtt: subscribe failed, retrying", "err", err)
		l.background(func() { l.retrySubscribe(c) })
		return
	}
	l.connected(c)
	l.followIfUnheard()
}

// followIfUnheard follows the areas if the broker refused some of them.
func (l *Link) followIfUnheard() {
	l.mu.Lock()
	unheard := len(l.unheardLocked()) > 0
	l.mu.Unlock()
	if unheard {
		l.follow()
	}
}

// connected finishes a connect once subscribed: online state, then signal.
func (l *Link) connected(c paho.Client) {
	if l.cfg.Online != nil {
		// Not waited for: the on-connect handler must return for paho to go on.
		l.stateMu.Lock()
		state := l.cfg.Online()
		l.sent.add(state)
		id, watched := l.echo.begin(time.Now(), l.heard.Load())
		tok := c.Publish(l.stateTopic(), 1, true, state)
		if watched {
			l.echo.attach(id, tok)
		}
		l.stateMu.Unlock()
	}
	l.ready.Store(true)
	l.log.Info("mqtt: connected", "broker", l.cfg.Broker)
	select {
	case l.connects <- struct{}{}:
	default:
	}
}

func (l *Link) retrySubscribe(c paho.Client) {
	wait := time.Second
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-timer.C:
		}
		if !c.IsConnectionOpen() {
			return // the next connect subscribes again
		}
		_, err := l.subscribe()
		if err == nil {
			l.connected(c)
			l.followIfUnheard()
			return
		}
		l.log.Warn("mqtt: subscribe failed again", "err", err)
		wait = min(2*wait, l.cfg.MaxReconnectInterval)
		timer.Reset(wait)
	}
}

// subscribe subscribes to the link's topics for the areas as they are now,
// whose generation (areasGen) it returns. Topics the broker refuses are
// logged, not an error; AreasUnheard names their areas.
func (l *Link) subscribe() (uint64, error) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.mu.Lock()
	want := l.topicsLocked()
	gen := l.areasGen
	old := l.subscribed
	l.mu.Unlock()
	defer l.noteUnheard()
	filters := make(map[string]byte, len(want))
	for _, t := range want {
		filters[t] = 1
	}
	tok := l.client.SubscribeMultiple(filters, l.deliver)
	if !tok.WaitTimeout(l.cfg.PublishTimeout) {
		return gen, fmt.Errorf("subscribe %v: no answer within %v", want, l.cfg.PublishTimeout)
	}
	if err := tok.Error(); err != nil {
		return gen, fmt.Errorf("subscribe %v: %w", want, err)
	}
	echo := l.cfg.EchoTimeout > 0
	granted := slices.Clone(want)
	for topic, code := range tok.(*paho.SubscribeToken).Result() {
		if code >= 0x80 {
			granted = slices.DeleteFunc(granted, func(t string) bool { return t == topic })
		}
		switch {
		case code < 0x80:
		case topic == l.stateTopic():
			// A broker whose ACLs predate the echo: the link cannot
			// check that it hears, but works as before.
			echo = false
			l.mu.Lock()
			first := !l.refusedMsg
			l.refusedMsg = true
			l.mu.Unlock()
			if first {
				l.log.Warn("mqtt: broker refused the node its own state topic; the link cannot check that the broker still delivers to it", "topic", topic)
			}
		default:
			// The broker refused (ACL): say so, but keep the rest.
			l.log.Warn("mqtt: broker refused a subscription", "topic", topic, "code", code)
		}
	}
	l.echo.enable(echo)
	var gone []string
	for _, t := range old {
		if !slices.Contains(want, t) {
			gone = append(gone, t)
		}
	}
	if len(gone) > 0 {
		l.client.Unsubscribe(gone...) // best effort: messages there fail the audience check anyway
	}
	l.mu.Lock()
	l.subscribed = granted
	l.mu.Unlock()
	return gen, nil
}

// deliver runs in paho's goroutine: it must never block.
func (l *Link) deliver(_ paho.Client, m paho.Message) {
	l.heard.Add(1)
	if m.Topic() == l.stateTopic() {
		// The node's own state: an echo, unless it is the retained copy
		// a subscription brings, which the broker sends to the new
		// subscriber directly and so proves nothing about later
		// deliveries. The agent has no use for either.
		if m.Retained() {
			return
		}
		if l.sent.has(m.Payload()) {
			l.echo.echoed()
			l.echoes.Add(1)
			return
		}
		l.foreignState(m.Payload())
		return
	}
	frame := m.Qos() == 0 && l.liveTopic(m.Topic())
	switch l.in.push(Message{Topic: m.Topic(), Payload: m.Payload()}, frame) {
	case pushed:
	case frameDropped:
		if n := l.frames.Add(1); n == 1 || n%100 == 0 {
			l.log.Warn("mqtt: live frames coming faster than the agent takes them; oldest dropped", "topic", m.Topic(), "dropped", n)
		}
	case controlDropped:
		n := l.dropped.Add(1)
		l.log.Warn("mqtt: incoming queue full, message dropped", "topic", m.Topic(), "dropped", n)
	}
}

// liveTopic reports whether topic is an area's live topic. Of its
// messages, those delivered at QoS 0 are audio frames (starts and ends go
// at QoS 1): the controller sends them at most once, since a late frame is
// worth nothing.
func (l *Link) liveTopic(topic string) bool {
	t, err := l.cfg.Topics.Parse(topic)
	return err == nil && t.Scope == protocol.ScopeArea && t.Channel == protocol.ChanLive
}

// inbox is the link's incoming queue: messages in the order the broker
// sent them, with room for controlRoom control messages and, apart from
// them, frameRoom live frames. A control message that finds no room is
// dropped (the controller resends alerts; a desired state found behind is
// asked for again); a frame that finds none drops the oldest frame. So a
// burst of frames never costs a command, and the frames the agent gets
// after a stall are the newest.
type inbox struct {
	controlRoom, frameRoom int
	waiting                chan struct{} // holds a signal while messages wait

	mu       sync.Mutex
	queue    []inboxMessage
	controls int // control messages queued
	frames   int // frames queued
}

type inboxMessage struct {
	Message
	frame bool
}

// pushResult is what push did with a message.
type pushResult int

const (
	pushed         pushResult = iota
	frameDropped              // queued, the oldest frame dropped for it
	controlDropped            // dropped: no room
)

func (q *inbox) push(m Message, frame bool) pushResult {
	q.mu.Lock()
	res := pushed
	switch {
	case frame && q.frames >= q.frameRoom:
		i := slices.IndexFunc(q.queue, func(m inboxMessage) bool { return m.frame })
		if i < 0 {
			q.mu.Unlock()
			return frameDropped // no room at all; cannot happen with frameRoom > 0
		}
		q.queue = slices.Delete(q.queue, i, i+1)
		q.frames--
		res = frameDropped
	case !frame && q.controls >= q.controlRoom:
		q.mu.Unlock()
		return controlDropped
	}
	q.queue = append(q.queue, inboxMessage{Message: m, frame: frame})
	if frame {
		q.frames++
	} else {
		q.controls++
	}
	q.mu.Unlock()
	q.signal()
	return res
}

func (q *inbox) signal() {
	select {
	case q.waiting <- struct{}{}:
	default:
	}
}

// next takes the oldest message off the queue, if any, and signals again
// if more wait.
func (q *inbox) next() (Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		return Message{}, false
	}
	m := q.queue[0]
	q.queue[0] = inboxMessage{}
	q.queue = q.queue[1:]
	if m.frame {
		q.frames--
	} else {
		q.controls--
	}
	if len(q.queue) > 0 {
		q.signal()
	}
	return m.Message, true
}

// foreignState handles a state on the node's topic that the link did not
// publish. An empty one clears the retained state (the node was removed)
// and is left alone; any other replaced the node's state on the broker, and
// while the link is connected that state is wrong: most likely the Last Will
// of an earlier connection, published after this one said it is online. The
// link publishes the node's state again, once at a time, in the background
// (deliver must not block).
func (l *Link) foreignState(payload []byte) {
	if len(payload) == 0 || l.cfg.Online == nil || !l.ready.Load() || l.closed.Load() {
		return
	}
	if l.restate.Swap(true) {
		return // one is on its way; it carries the state as it is now
	}
	started := l.background(func() {
		defer l.restate.Store(false)
		l.log.Warn("mqtt: the broker holds a state for this node that it did not publish while it is connected (the Last Will of an earlier connection?); publishing its state again")
		if err := l.PublishState(l.ctx, l.cfg.Online); err != nil {
			l.log.Warn("mqtt: publish the state again", "err", err)
			return
		}
		l.restated.Add(1)
	})
	if !started {
		l.restate.Store(false)
	}
}

// Restated returns how many times the link published the node's state
// again because the broker held another while it was connected.
func (l *Link) Restated() uint64 { return l.restated.Load() }

// sentStates keeps the last states the link published, so that their
// echoes are told from states published by others (the broker's Last Will).
type sentStates struct {
	mu   sync.Mutex
	last [maxSentStates][]byte
	next int
}

// maxSentStates bounds the states remembered: far more than can be on
// their way at once (the agent publishes a state at most every few
// seconds, and each comes back within a round trip).
const maxSentStates = 16

func (s *sentStates) add(payload []byte) {
	s.mu.Lock()
	s.last[s.next] = payload
	s.next = (s.next + 1) % maxSentStates
	s.mu.Unlock()
}

func (s *sentStates) has(payload []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.last {
		if p != nil && bytes.Equal(p, payload) {
			return true
		}
	}
	return false
}

// Publish sends payload with QoS 1 and waits until the broker accepted it,
// ctx ends, or PublishTimeout passes.
func (l *Link) Publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if topic == l.stateTopic() {
		l.sent.add(payload)
	}
	return l.wait(ctx, topic, l.client.Publish(topic, 1, retained, payload))
}

// wait waits until the broker has taken the publish of tok.
func (l *Link) wait(ctx context.Context, topic string, tok paho.Token) error {
	timer := time.NewTimer(l.cfg.PublishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("publish %s: broker did not accept it within %v", topic, l.cfg.PublishTimeout)
	}
}

// PublishState publishes the node's retained state built by build, in
// order with the state published on connect: a state built before
// another never reaches the broker after it. Without that, an on-connect
// state read just before the board changed could overtake the state
// reporting the change, and the controller would keep the stale one until
// the next heartbeat.
func (l *Link) PublishState(ctx context.Context, build func() []byte) error {
	if l.closed.Load() {
		return ErrClosed
	}
	topic := l.stateTopic()
	l.stateMu.Lock()
	state := build()
	l.sent.add(state)
	var id uint64
	watched := false
	if l.ready.Load() {
		id, watched = l.echo.begin(time.Now(), l.heard.Load())
	}
	tok := l.client.Publish(topic, 1, true, state)
	if watched {
		l.echo.attach(id, tok)
	}
	l.stateMu.Unlock()
	return l.wait(ctx, topic, tok)
}

// watchEcho reconnects when a probe's echo is overdue.
//
// Mosquitto grants a subscription its ACL denies and then delivers
// nothing on it, so a node under an ACL from before the echo would take
// itself for deaf on every connection. The check is therefore armed only
// once the link has heard an echo; and each reconnect for deafness with no
// echo since doubles the wait (up to 64 times EchoTimeout), so that a
// broker that stops echoing for another reason costs a reconnect an hour,
// not a minute.
func (l *Link) watchEcho() {
	defer l.wg.Done()
	silent := false // the unarmed check was logged
	tick := time.NewTicker(max(l.cfg.EchoTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-l.done:
			return
		case now := <-tick.C:
			if !l.ready.Load() {
				continue
			}
			late, armed, ok := l.echo.overdue(now, l.cfg.EchoTimeout)
			heardAtProbe := l.echo.heardAtProbe()
			l.checked.Store(now.UnixNano())
			switch {
			case !ok:
			case !armed:
				if !silent {
					silent = true
					l.log.Warn("mqtt: the broker does not send this node its own state (its ACL may predate the echo: regenerate it); the link cannot check that the broker still delivers to it")
				}
			default:
				l.mu.Lock()
				if len(l.deafAt) == maxDeafKept {
					l.deafAt = slices.Delete(l.deafAt, 0, 1)
				}
				l.deafAt = append(l.deafAt, now)
				n := l.deaf.Add(1)
				l.mu.Unlock()
				// Whether anything else came since tells a connection
				// that went silent from one that lost only the echo.
				l.log.Error("mqtt: the broker no longer delivers to this node; reconnecting",
					"echo_overdue", late.Round(time.Millisecond), "times", n,
					"messages_since_probe", l.heard.Load()-heardAtProbe)
				l.echo.missed()
				l.drop()
			}
		}
	}
}

// drop fails the connection under paho as a network failure would: paho
// reports the loss and closes it, the broker publishes the Last Will, and
// run connects again.
func (l *Link) drop() {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		c.fail()
	}
}

// echoWatch tracks the probe of the echo check: the oldest state publish
// of this connection not yet echoed.
//
// A probe is begun before its publish is handed to paho and given its
// token after: on a loaded machine the echo can come back before the
// goroutine that published gets to run again, and a probe noted only
// then would wait for an echo already heard, and take the node for deaf
// (one node in 10,000 did, in two of seven runs of the emergency
// benchmark, each a minute after the publish).
type echoWatch struct {
	mu      sync.Mutex
	on      bool       // the echo subscription was granted on this connection
	waiting bool       // a probe not yet echoed
	id      uint64     // the probe's, so a late attach finds its own
	tok     paho.Token // its publish, once handed to paho (nil before)
	sent    time.Time
	heard   uint64 // the link's messages received when tok was sent
	armed   bool   // an echo was heard, on any connection
	misses  int    // reconnects for deafness since the last echo
}

// maxEchoBackoff bounds the doubling of the wait after reconnects for
// deafness: 2⁶ = 64 times EchoTimeout.
const maxEchoBackoff = 6

// reset starts a connection's check: on when the broker granted the echo
// subscription.
func (w *echoWatch) reset(on bool) {
	w.mu.Lock()
	w.on, w.waiting, w.tok = on, false, nil
	w.mu.Unlock()
}

// enable turns the check on or off once the subscriptions are granted
// (again, when the areas change).
func (w *echoWatch) enable(on bool) {
	w.mu.Lock()
	w.on = on
	if !on {
		w.waiting, w.tok = false, nil
	}
	w.mu.Unlock()
}

// begin notes a state publish about to be handed to paho at now, when the
// link had received heard messages: a probe, unless the check is off or
// an older probe still waits (a later one does not restart the wait). It
// returns the probe's id for attach, and whether it is one.
func (w *echoWatch) begin(now time.Time, heard uint64) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on || w.waiting {
		return 0, false
	}
	w.id++
	w.waiting, w.tok, w.sent, w.heard = true, nil, now, heard
	return w.id, true
}

// attach gives probe id its publish's token, unless an echo ended its
// wait meanwhile.
func (w *echoWatch) attach(id uint64, tok paho.Token) {
	w.mu.Lock()
	if w.waiting && w.id == id {
		w.tok = tok
	}
	w.mu.Unlock()
}

// heardAtProbe returns the link's count of received messages when the
// probe watched now was sent.
func (w *echoWatch) heardAtProbe() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.heard
}

// echoed notes an echo. It ends the wait of the oldest probe and of those
// after it, whose echoes may still be on their way: a broker that stopped
// delivering between them is found by the next probe, a heartbeat later.
func (w *echoWatch) echoed() {
	w.mu.Lock()
	w.waiting, w.tok, w.armed, w.misses = false, nil, true, 0
	w.mu.Unlock()
}

// missed notes a reconnect for deafness: the connection's check ends and
// the next waits twice as long.
func (w *echoWatch) missed() {
	w.mu.Lock()
	w.on, w.waiting, w.tok = false, false, nil
	w.misses++
	w.mu.Unlock()
}

// overdue reports whether a probe the broker accepted has waited more than
// timeout (doubled for each miss) for its echo, how long it has, and
// whether the check is armed. A probe the broker refused, or that failed
// with the connection, proves nothing and is forgotten; one not yet
// accepted is the keep-alive's and PublishTimeout's business.
func (w *echoWatch) overdue(now time.Time, timeout time.Duration) (late time.Duration, armed, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on || !w.waiting || w.tok == nil {
		return 0, w.armed, false
	}
	select {
	case <-w.tok.Done():
	default:
		return 0, w.armed, false
	}
	if w.tok.Error() != nil {
		w.waiting, w.tok = false, nil
		return 0, w.armed, false
	}
	late = now.Sub(w.sent)
	return late, w.armed, late > timeout<<min(w.misses, maxEchoBackoff)
}

// Close disconnects cleanly. A clean disconnect does not fire the Last
// Will, so publish the offline state before calling it.
func (l *Link) Close() {
	l.mu.Lock()
	already := l.closed.Swap(true)
	l.mu.Unlock()
	if already {
		return
	}
	close(l.done)
	l.cancel()
	l.wg.Wait()
	l.client.Disconnect(250)
}
