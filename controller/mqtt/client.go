// Package mqtt connects the controller to MQTT: the embedded broker
// (mochi-mqtt) and the controller's own client, which signs and publishes
// desired states and commands, and ingests node state and events.
//
// The client reaches an external broker (Mosquitto, EMQX, …) over TCP with
// paho, and the embedded broker in-process through mochi's inline client
// (Client.Embedded): node messages are handed to the ingest as the broker
// routes them, and publishes are routed to the nodes within the call, with
// no connection, packets or acknowledgements in between. Everything above
// that seam (link.go), the ingest queues and workers, signing, metrics and
// the desired-state bookkeeping, is one code path, tested on both.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// queueTotal is how many node messages the ingest queues hold in all:
// enough for an emergency round's burst at 10,000 nodes, when every node
// reports the alert received (an event batch) and its state within about
// a second, faster than any store takes them (states are coalesced, so a
// node's take one slot at most). 16,384 dropped 13,000–24,000 messages a
// round there (BENCHMARKS.md); the nodes send dropped events again after
// 30 s, or at once when a later batch of theirs comes past the gap
// (ingestEvents). A slot is 72 bytes: 4.7 MB in all.
const queueTotal = 65536

// Default lifetimes of signed controller messages.
const (
	// DesiredTTL is how long a published desired state stays valid; the
	// scheduler republishes well before that.
	DesiredTTL = 30 * 24 * time.Hour
	// AckTTL bounds event acknowledgements.
	AckTTL = 10 * time.Minute
)

// Client is the controller's MQTT client.
type Client struct {
	// Embedded, if set, is the broker in this process, which the client
	// reaches in-process (mochi's inline client) instead of over TCP:
	// BrokerURL, Username, Password, TLSConfig and ClientID are then
	// unused.
	Embedded *Broker
	// BrokerURL is tcp://host:port (user:password@ allowed).
	BrokerURL string
	// Username and Password override those in BrokerURL when set.
	Username string
	Password string
	// TLSConfig is used for ssl:// brokers.
	TLSConfig *tls.Config
	// ClientID names the connection.
	ClientID string
	// PublishUsername, if set, opens a second connection to the external
	// broker with this username (and client id: Mosquitto pins one to the
	// other) and Password, for everything the controller publishes, so
	// the broker's acknowledgements do not wait behind the node messages
	// it writes to the first (pubconn.go). ExportMosquitto writes the
	// account (the controller's username + PublishUsernameSuffix). While
	// that connection is down or refused, publishes go on the first.
	PublishUsername string
	Topics          protocol.Topics
	Signer          *protocol.Signer
	// Workers is the number of ingest workers; messages of one node always
	// go to the same worker, so its events stay in order. Each writes its
	// node's status in its own store transaction, and the store commits
	// concurrent writes together, so more workers mean fewer commits per
	// message (BENCHMARKS.md: 4 workers handled 757 states/s, 32 about
	// 7,000, on the same disk). A worker takes up to workerBatch queued
	// messages at once and ingests different nodes' concurrently (work).
	Workers int
	// PublishTimeout bounds waiting for the broker to accept a publish
	// over the network. The acknowledgement shares the connection with
	// every node message the broker sends the controller: mochi writes it
	// in order behind them, and paho reads them one at a time, so under a
	// burst of node traffic (a fleet enrolling) it can take longer than
	// this even though the broker took the message (docs/scheduling.md);
	// PublishUsername publishes on a connection of its own instead.
	// The embedded broker takes a publish within the call.
	PublishTimeout time.Duration
	// DesiredInflight bounds the desired states published and not yet
	// acknowledged by the broker, counting those whose caller stopped
	// waiting: paho keeps a timed-out publish (and its payload) until the
	// broker acknowledges it or the connection drops, so without a bound
	// a slow broker would collect one per node and retry. A publish
	// waits for a free slot within its PublishTimeout. Commands and alerts
	// are not counted: an emergency never waits behind schedules. The
	// embedded broker has none in flight: its publishes are done when the
	// call returns.
	DesiredInflight int
	// AckDelay is how long a node's event acknowledgement is held to
	// cover the batches that follow it (acks.go); 0 acknowledges each
	// batch at once.
	AckDelay time.Duration

	NodeService  loaxa.NodeService
	EventService loaxa.EventService
	// OnEvents, if set, is told of every event batch stored from a node
	// (resent events included), with the node's outbox epoch, after it is
	// stored; it must not block.
	OnEvents func(node, epoch string, events []protocol.Event)
	// OnSalvaged, if set, is told of every salvaged event batch stored
	// from a node (protocol.EventBatch.Salvaged: events of an earlier
	// store, which OnEvents is not told of), after it is stored; it must
	// not block.
	OnSalvaged func(node string, events []protocol.Event)
	// OnEpoch, if set, is told of the outbox epoch of every state a node
	// publishes online that carries one (protocol.State.Epoch), after it
	// is stored; it must not block.
	OnEpoch func(node, epoch string)
	// OnOnline, if set, is told of every node whose state brings it
	// online (it was offline, or never seen), after it is stored; it must
	// not block.
	OnOnline func(node string)
	// OnProbes, if set, is told of the probe receipts of every state a
	// node publishes online (protocol.CmdProbe), after it is stored; it
	// must not block.
	OnProbes func(node string, receipts []protocol.ProbeReceipt)
	// Observer, if set, hears every stored state and event batch.
	Observer Observer
	Now      func() time.Time
	Logger   *slog.Logger

	link             link
	publishBrokerURL string // tests: the publish connection's broker, if not BrokerURL
	queues           []chan message
	m                *metrics
	metricsOnce      sync.Once
	statesMu         sync.Mutex
	states           map[string][]byte // newest queued state by node
	eventsMu         sync.Mutex
	eventsQueued     map[string]int       // event batches queued or being ingested, by node
	floodWarned      map[string]time.Time // when a node's excess was last logged
	flooded          atomic.Uint64
	wg               sync.WaitGroup
	cancel           context.CancelFunc
	dropped          atomic.Uint64
	// desiredGate (one token) serialises desired publishes while they
	// take a slot; desiredToks are those the broker has not acknowledged.
	desiredGate chan struct{}
	desiredToks []delivery
	acks        ackQueue
	ackClock    func() time.Time // nil: time.Now (ackNow)
}

type message struct {
	topic   protocol.Topic
	payload []byte
}

// NewClient returns a client with defaults.
func NewClient() *Client {
	return &Client{
		ClientID:        "loaxa-controller",
		Topics:          protocol.NewTopics(""),
		Workers:         32,
		PublishTimeout:  10 * time.Second,
		DesiredInflight: 64,
		AckDelay:        DefaultAckDelay,
		Now:             time.Now,
		Logger:          slog.Default(),
	}
}

// Open starts the ingest workers and subscribes to node state and events:
// in the embedded broker at once, or on every connect to an external one
// (connecting in the background if the broker is not up yet).
func (c *Client) Open() error {
	if c.Embedded != nil {
		c.link = &inlineLink{broker: c.Embedded}
	} else {
		l, err := newPahoLink(c.BrokerURL, c.Username, c.Password, c.TLSConfig, c.ClientID, c.PublishTimeout, c.Logger)
		if err != nil {
			return err
		}
		l.pubUser, l.pubURL = c.PublishUsername, c.publishBrokerURL
		c.link = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.desiredGate = make(chan struct{}, 1)
	c.queues = makeQueues(c.Workers)
	for _, q := range c.queues {
		c.wg.Add(1)
		go c.work(ctx, q)
	}
	if c.AckDelay > 0 {
		c.wg.Add(1)
		go c.sendAcks(ctx)
	}

	filters := []string{c.Topics.AllNodes(protocol.ChanState), c.Topics.AllNodes(protocol.ChanEvent)}
	if err := c.link.open(filters, c.route); err != nil {
		cancel()
		c.wg.Wait()
		c.link = nil
		return err
	}
	return nil
}

// Broker names the broker the client talks to: its URL, or the embedded
// broker.
func (c *Client) Broker() string {
	if c.link != nil {
		return c.link.String()
	}
	if c.Embedded != nil {
		return embeddedName
	}
	return c.BrokerURL
}

// Connected reports whether the client is connected now.
func (c *Client) Connected() bool {
	return c.link != nil && c.link.connected()
}

// WaitConnected blocks until connected or ctx is done.
func (c *Client) WaitConnected(ctx context.Context) error {
	for !c.Connected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("mqtt: wait for broker %s: %w", c.Broker(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Close stops the workers, sends the acknowledgements still held,
// unsubscribes and disconnects.
func (c *Client) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.link != nil {
		c.flushAcks()
		c.link.close()
	}
	return nil
}

// Dropped returns how many node messages were dropped because the ingest
// queues were full. Dropped events are resent by the node; dropped states
// are superseded by the next one.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Flooded returns how many event batches were dropped because their node
// had nodeQueueLimit waiting already.
func (c *Client) Flooded() uint64 { return c.flooded.Load() }

// nodeQueueLimit is the most event batches of one node that wait for (or
// are in) the ingest. A node sends at most a few batches ahead of its
// acknowledgements (node/agent/outbox.go: 500 events, in batches of up to
// 100; an emergency round is three or four batches), so only a node
// publishing far faster than any agent does (a bug, or an attacker with
// its credentials) reaches it; without it such a node filled its worker's
// queue, and the reports of every other node hashed onto that worker were
// dropped. A batch dropped here is one the node sends again after its
// AckTimeout, or when its next batch comes past the gap, like one dropped
// for a full queue.
const nodeQueueLimit = 32

// floodLogEvery is how often a node's dropped excess is logged.
const floodLogEvery = time.Minute

// makeQueues returns the ingest queues of n workers: queueTotal messages
// in all, however many workers share them.
func makeQueues(n int) []chan message {
	qs := make([]chan message, max(n, 1))
	for i := range qs {
		qs[i] = make(chan message, max(queueTotal/len(qs), 256))
	}
	return qs
}

// route hands a message to the worker of its node without blocking: it
// runs on paho's goroutine, or on the embedded broker's goroutine of the
// node's connection.
func (c *Client) route(topic string, payload []byte) {
	t, err := c.Topics.Parse(topic)
	if err != nil || t.Scope != protocol.ScopeNode {
		c.Logger.Warn("mqtt: message on unexpected topic", "topic", topic, "err", err)
		return
	}
	c.metrics().in.WithLabelValues(string(t.Channel)).Inc()
	c.enqueue(t, payload)
}

// enqueue hands a node message to its node's worker. A node's states are
// coalesced: only its newest matters, so while one is queued a newer one
// replaces it in place (states[node]) instead of taking a queue slot. A
// burst of every node at once (a broker restart) then queues at most one
// state per node, and events are never crowded out by stale states. A
// node's event batches take at most nodeQueueLimit slots, so that a node
// flooding its topic does not crowd out the others on its worker.
func (c *Client) enqueue(t protocol.Topic, payload []byte) {
	msg := message{topic: t, payload: payload}
	if t.Channel == protocol.ChanState {
		c.statesMu.Lock()
		if c.states == nil {
			c.states = map[string][]byte{}
		}
		_, queued := c.states[t.ID]
		c.states[t.ID] = payload
		c.statesMu.Unlock()
		if queued {
			c.metrics().coalesced.Inc()
			return
		}
		msg.payload = nil // the worker takes the newest from states
	} else if !c.takeEventSlot(t.ID) {
		return
	}
	h := fnv.New32a()
	h.Write([]byte(t.ID))
	q := c.queues[h.Sum32()%uint32(len(c.queues))]
	select {
	case q <- msg:
	default:
		if t.Channel == protocol.ChanState {
			c.statesMu.Lock()
			delete(c.states, t.ID)
			c.statesMu.Unlock()
		} else {
			c.releaseEventSlot(t.ID)
		}
		c.dropped.Add(1)
		c.Logger.Warn("mqtt: ingest queue full, message dropped", "node", t.ID, "channel", t.Channel)
	}
}

// takeEventSlot counts an event batch of node into the ingest, or drops
// it, logging at most every floodLogEvery by node, if the node has
// nodeQueueLimit in already.
func (c *Client) takeEventSlot(node string) bool {
	c.eventsMu.Lock()
	if c.eventsQueued == nil {
		c.eventsQueued, c.floodWarned = map[string]int{}, map[string]time.Time{}
	}
	if c.eventsQueued[node] < nodeQueueLimit {
		c.eventsQueued[node]++
		c.eventsMu.Unlock()
		return true
	}
	now := time.Now() // of the log only
	last, warned := c.floodWarned[node]
	warn := !warned || now.Sub(last) >= floodLogEvery
	if warn {
		c.floodWarned[node] = now
	}
	c.eventsMu.Unlock()
	total := c.flooded.Add(1)
	if warn {
		c.Logger.Warn("mqtt: a node publishes event batches faster than they are ingested; its excess is dropped",
			"node", node, "waiting", nodeQueueLimit, "dropped_total", total)
	}
	return false
}

// releaseEventSlot counts an event batch of node out of the ingest.
func (c *Client) releaseEventSlot(node string) {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if c.eventsQueued[node] <= 1 {
		delete(c.eventsQueued, node)
		return
	}
	c.eventsQueued[node]--
}

// takeState returns the newest state of node queued by enqueue.
func (c *Client) takeState(node string) ([]byte, bool) {
	c.statesMu.Lock()
	defer c.statesMu.Unlock()
	p, ok := c.states[node]
	delete(c.states, node)
	return p, ok
}

// workerBatch is the most queued messages a worker takes at once.
const workerBatch = 64

// work ingests the messages of its queue. It takes what is queued (up to
// workerBatch) at once and ingests the messages of different nodes
// concurrently, each node's in order: their store writes then share one
// commit. One message at a time, the 32 workers put at most 32 writes in
// a commit, and the ingest was bound by the commits' fsyncs, not by CPU
// (BENCHMARKS.md: at 10,000 nodes an emergency round's reports queued for
// 30 s while the controller used 0.6 of a core).
func (c *Client) work(ctx context.Context, q <-chan message) {
	defer c.wg.Done()
	batch := make([]message, 0, workerBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q:
			batch = append(batch[:0], m)
		}
	more:
		for len(batch) < workerBatch {
			select {
			case m := <-q:
				batch = append(batch, m)
			default:
				break more
			}
		}
		c.ingestBatch(ctx, batch)
	}
}

// ingestBatch ingests the messages of each node in batch in order, and
// those of different nodes concurrently.
func (c *Client) ingestBatch(ctx context.Context, batch []message) {
	if len(batch) == 1 {
		c.ingest(ctx, batch[0])
		return
	}
	var nodes []string
	byNode := make(map[string][]message, len(batch))
	for _, m := range batch {
		if _, ok := byNode[m.topic.ID]; !ok {
			nodes = append(nodes, m.topic.ID)
		}
		byNode[m.topic.ID] = append(byNode[m.topic.ID], m)
	}
	var wg sync.WaitGroup
	for _, node := range nodes {
		wg.Go(func() {
			for _, m := range byNode[node] {
				c.ingest(ctx, m)
			}
		})
	}
	wg.Wait()
}

// ingest handles one node message.
func (c *Client) ingest(ctx context.Context, m message) {
	var err error
	switch m.topic.Channel {
	case protocol.ChanState:
		if p, ok := c.takeState(m.topic.ID); ok {
			err = c.ingestState(ctx, m.topic.ID, p)
		}
	case protocol.ChanEvent:
		err = c.ingestEvents(ctx, m.topic.ID, m.payload)
		c.releaseEventSlot(m.topic.ID)
	}
	result := "ok"
	if err != nil && !errors.Is(err, context.Canceled) {
		result = "refused"
		c.Logger.Warn("mqtt: node message refused", "node", m.topic.ID, "channel", m.topic.Channel, "err", err)
	}
	c.metrics().ingested.WithLabelValues(string(m.topic.Channel), result).Inc()
}

// publish sends payload and waits for the broker to take it, and counts
// it as kind.
func (c *Client) publish(ctx context.Context, kind, topic string, retained bool, payload []byte) error {
	err := c.publishRaw(ctx, topic, retained, payload)
	if err != nil {
		c.metrics().failed.WithLabelValues(kind).Inc()
	} else {
		c.metrics().out.WithLabelValues(kind).Inc()
	}
	return err
}

func (c *Client) publishRaw(ctx context.Context, topic string, retained bool, payload []byte) error {
	// With the broker out of reach, the caller learns it now rather than
	// after PublishTimeout: an officer whose alert cannot go out has
	// other ways to warn (the telephone to the communes) and should not
	// wait 10 s to be told. paho keeps the message and sends it if the
	// connection comes back; the emergency's resends do not count on it.
	wait, down := c.PublishTimeout, !c.reachable()
	if down {
		wait = min(wait, downWait)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	err := c.await(ctx, topic, c.send(topic, 1, retained, payload), timer, wait)
	if down && errors.Is(err, errNotTaken) && !c.reachable() {
		return fmt.Errorf("publish %s: not connected to the broker at %s", topic, c.Broker())
	}
	return err
}

// reachable reports whether a publish can reach the broker now: the main
// connection or the publish connection is up.
func (c *Client) reachable() bool {
	if c.Connected() {
		return true
	}
	l, ok := c.link.(*pahoLink)
	return ok && l.pub != nil && l.pub.isUp()
}

// errNotTaken is a publish the broker did not acknowledge in time.
var errNotTaken = errors.New("broker did not accept it")

// downWait is how long a publish waits for the broker while the client is
// not connected: long enough for a reconnect under way to take it.
const downWait = time.Second

// send hands a message to the broker.
func (c *Client) send(topic string, qos byte, retained bool, payload []byte) delivery {
	if c.link == nil {
		return done{errors.New("mqtt client not open")}
	}
	return c.link.publish(topic, qos, retained, payload)
}

// await waits for the broker to take tok, until timer (set to limit) or
// ctx.
//
// A delivery that is done decides, even when the timer has fired too: the
// embedded broker's publish routes the message to every subscriber within
// the call, so one that took longer than PublishTimeout (10,000 nodes on
// a loaded machine) is done before await starts, with the timer fired
// as well. A select between the two picks either at random, and half such
// alerts were answered 503 "did not accept it" although every node had
// been sent them: an officer told that would send the alert again.
func (c *Client) await(ctx context.Context, topic string, tok delivery, timer *time.Timer, limit time.Duration) error {
	select {
	case <-tok.Done():
	case <-timer.C:
	case <-ctx.Done():
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return fmt.Errorf("publish %s: %w within %v", topic, errNotTaken, limit)
}

// publishDesired publishes a desired state once fewer than
// DesiredInflight are unacknowledged, all within PublishTimeout.
func (c *Client) publishDesired(ctx context.Context, topic string, payload []byte) error {
	timer := time.NewTimer(c.PublishTimeout)
	defer timer.Stop()
	select {
	case c.desiredGate <- struct{}{}:
	case <-timer.C:
		return fmt.Errorf("publish %s: %w within %v", topic, ErrDesiredInflight, c.PublishTimeout)
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	}
	var tok delivery
	err := c.takeDesiredSlot(ctx, timer)
	if err == nil {
		tok = c.send(topic, 1, true, payload)
		c.desiredToks = append(c.desiredToks, tok)
	}
	<-c.desiredGate
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return c.await(ctx, topic, tok, timer, c.PublishTimeout)
}

// ErrDesiredInflight is returned when DesiredInflight desired states stay
// unacknowledged for a whole PublishTimeout.
var ErrDesiredInflight = errors.New("too many desired states not yet acknowledged by the broker")

// takeDesiredSlot waits until fewer than DesiredInflight desired states
// are unacknowledged. Called holding desiredGate.
func (c *Client) takeDesiredSlot(ctx context.Context, timer *time.Timer) error {
	for {
		c.desiredToks = slices.DeleteFunc(c.desiredToks, func(t delivery) bool {
			select {
			case <-t.Done():
				return true
			default:
				return false
			}
		})
		if len(c.desiredToks) < max(c.DesiredInflight, 1) {
			return nil
		}
		c.metrics().inflightWaits.Inc()
		select {
		case <-c.desiredToks[0].Done():
		case <-timer.C:
			return fmt.Errorf("%w: %d within %v", ErrDesiredInflight, len(c.desiredToks), c.PublishTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// PublishDesired signs d and publishes it retained on the node's desired
// topic.
func (c *Client) PublishDesired(ctx context.Context, d *protocol.DesiredState) error {
	to := protocol.Topic{Scope: protocol.ScopeNode, ID: d.Node}.Audience()
	raw, err := c.Signer.Seal(protocol.TypeDesired, to, d, DesiredTTL)
	if err != nil {
		return fmt.Errorf("publish desired state %d for %s: %w", d.Version, d.Node, err)
	}
	err = c.publishDesired(ctx, c.Topics.Node(d.Node, protocol.ChanDesired), raw)
	if err != nil {
		c.metrics().failed.WithLabelValues("desired").Inc()
		return err
	}
	c.metrics().out.WithLabelValues("desired").Inc()
	return nil
}

// SendNodeCommand signs cmd and publishes it on the node's cmd topic.
func (c *Client) SendNodeCommand(ctx context.Context, node string, cmd protocol.Command, ttl time.Duration) error {
	to := protocol.Topic{Scope: protocol.ScopeNode, ID: node}.Audience()
	raw, err := c.Signer.Seal(protocol.TypeCommand, to, cmd, ttl)
	if err != nil {
		return fmt.Errorf("send %s to %s: %w", cmd.Name, node, err)
	}
	return c.publish(ctx, "command", c.Topics.Node(node, protocol.ChanCmd), false, raw)
}

// SendNodeLive signs l for the node alone and publishes it on the node's
// cmd topic: a call's start or end sent again to a node that missed it.
func (c *Client) SendNodeLive(ctx context.Context, node string, l protocol.Live) error {
	to := protocol.Topic{Scope: protocol.ScopeNode, ID: node}.Audience()
	raw, err := c.Signer.Seal(protocol.TypeLive, to, l, protocol.LiveTTL)
	if err != nil {
		return fmt.Errorf("send live %s of %s to %s: %w", l.Kind, l.Call, node, err)
	}
	return c.publish(ctx, "live", c.Topics.Node(node, protocol.ChanCmd), false, raw)
}

// SendAreaCommand signs cmd and publishes it on the area's cmd topic; the
// broker delivers it to every node of the area and of the areas below.
func (c *Client) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	to := protocol.Topic{Scope: protocol.ScopeArea, ID: area}.Audience()
	raw, err := c.Signer.Seal(protocol.TypeCommand, to, cmd, ttl)
	if err != nil {
		return fmt.Errorf("send %s to area %s: %w", cmd.Name, area, err)
	}
	return c.publish(ctx, "alert", c.Topics.Area(area, protocol.ChanCmd), false, raw)
}

// AwaitFanout waits, at most limit, until the broker has written the
// publishes handed to it so far to their subscribers: the embedded broker
// tells (Broker.AwaitWritten); an external one does not, and AwaitFanout
// returns at once.
func (c *Client) AwaitFanout(ctx context.Context, limit time.Duration) {
	if l, ok := c.link.(*inlineLink); ok {
		l.broker.AwaitWritten(ctx, limit)
	}
}

// SendLive signs l and publishes it on the area's live topic: audio
// frames at QoS 0 (a late frame is useless, and a lost one plays as
// silence) in the compact envelope (about 390 bytes for 60 ms: within
// 64 kbit/s), starts and ends at QoS 1 in JSON.
func (c *Client) SendLive(ctx context.Context, area string, l protocol.Live) error {
	to := protocol.Topic{Scope: protocol.ScopeArea, ID: area}.Audience()
	var raw []byte
	var err error
	if l.Kind == protocol.LiveAudio {
		raw, err = c.Signer.SealCompact(protocol.TypeLive, to, l, protocol.LiveTTL)
	} else {
		raw, err = c.Signer.Seal(protocol.TypeLive, to, l, protocol.LiveTTL)
	}
	if err != nil {
		return fmt.Errorf("send live %s to area %s: %w", l.Kind, area, err)
	}
	topic := c.Topics.Area(area, protocol.ChanLive)
	if l.Kind != protocol.LiveAudio {
		return c.publish(ctx, "live", topic, false, raw)
	}
	// QoS 0 completes as soon as the frame is written: no wait.
	tok := c.send(topic, 0, false, raw)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			c.metrics().failed.WithLabelValues("live").Inc()
			return fmt.Errorf("publish %s: %w", topic, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	}
	c.metrics().out.WithLabelValues("live").Inc()
	return nil
}

var (
	_ loaxa.LiveMessenger  = (*Client)(nil)
	_ loaxa.Messenger      = (*Client)(nil)
	_ loaxa.AlertMessenger = (*Client)(nil)
)
