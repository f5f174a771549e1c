package mqtt_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

// paths are the two ways the controller's client reaches the embedded
// broker: over TCP with paho, as it reaches an external one, and
// in-process (Client.Embedded), as the controller does.
var paths = []struct {
	name   string
	inline bool
}{{"tcp", false}, {"inline", true}}

// The controller's client ingests a node's state and events through the
// embedded broker, and acknowledges the events with a signed command the
// node can verify. In-process, no client of the controller's account
// connects to the broker at all.
func TestClientIngestsAndAcknowledges(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { testClientIngestsAndAcknowledges(t, p.inline) })
	}
}

func testClientIngestsAndAcknowledges(t *testing.T, inline bool) {
	r := newRig(t)
	sessions := &sessionLog{}
	if err := r.broker.AddHook(sessions); err != nil {
		t.Fatal(err)
	}
	c := r.client(t, inline)
	open(t, c)

	node, cmdTopic := r.nodeOnItsCmdTopic(t)
	publish := func(ch protocol.Channel, typ protocol.Type, seq uint64, body any) {
		t.Helper()
		raw, err := protocol.Encode(typ, "tt-01", "controller", seq, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", ch), 1, ch == protocol.ChanState, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(protocol.ChanState, protocol.TypeState, 0, protocol.State{Status: protocol.StatusOnline, At: time.Now(), Agent: "test", DesiredVersion: 7, Outbox: 2})
	poll(t, "node online", func() bool {
		n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
		return err == nil && n.Status.State == loaxa.NodeOnline && n.Status.RunningVersion == 7 && n.Status.Outbox == 2
	})

	// A state claiming to come from another node is refused.
	raw, _ := protocol.Encode(protocol.TypeState, "tm-01", "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOffline})
	node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, false, raw).WaitTimeout(5 * time.Second)

	batch := protocol.EventBatch{Epoch: "ep1", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAudioDevice},
		{Seq: 2, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAmplifier},
	}}
	publish(protocol.ChanEvent, protocol.TypeEvents, 1, batch)
	poll(t, "signed ack for seq 2", func() bool { return node.received(cmdTopic) > 0 })

	env := r.openFirst(t, node, cmdTopic, "the ack")
	var cmd protocol.Command
	if err := env.Decode(&cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Name != protocol.CmdAck || cmd.Epoch != "ep1" || cmd.Seq != 2 {
		t.Errorf("ack %+v, want ack ep1 seq 2", cmd)
	}
	evs, err := r.events.FindEvents(context.Background(), loaxa.EventFilter{Node: "tt-01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	if n, _ := r.nodes.FindNodeByID(context.Background(), "tt-01"); n.Status.State != loaxa.NodeOnline {
		t.Errorf("a state forged in another node's name changed tt-01 to %s", n.Status.State)
	}
	if got, want := sessions.users(), map[bool][]string{true: {"tt-01"}, false: {mqtt.ControllerUsername, "tt-01"}}[inline]; !slices.Equal(got, want) {
		t.Errorf("sessions established by %v, want %v", got, want)
	}
}

// nodeOnItsCmdTopic connects node tt-01 with its secret and subscribes it
// to its cmd topic, which it returns.
func (r *rig) nodeOnItsCmdTopic(t *testing.T) (node *conn, cmdTopic string) {
	t.Helper()
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	cmdTopic = topics.Node("tt-01", protocol.ChanCmd)
	if !node.subscribe(t, cmdTopic) {
		t.Fatal("node may not subscribe to its cmd topic")
	}
	return node, cmdTopic
}

// openFirst opens the first message cn got on topic as node tt-01 does:
// it must be signed with the controller's key, for node/tt-01. what names
// the message in the failure.
func (r *rig) openFirst(t *testing.T, cn *conn, topic, what string) *protocol.Envelope {
	t.Helper()
	cn.mu.Lock()
	raw := cn.got[topic][0]
	cn.mu.Unlock()
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil, 0)
	env, err := v.Open(raw, "node/tt-01")
	if err != nil {
		t.Fatalf("%s does not verify for the node: %v", what, err)
	}
	return env
}

// sessionLog records the username of every client that establishes a
// session with the broker.
type sessionLog struct {
	mochi.HookBase
	mu   sync.Mutex
	seen []string
}

func (h *sessionLog) ID() string { return "test-sessions" }

func (h *sessionLog) Provides(b byte) bool { return b == mochi.OnSessionEstablished }

func (h *sessionLog) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, string(cl.Properties.Username))
}

func (h *sessionLog) users() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(slices.Values(h.seen))
}

// A node's state retained before the controller's client subscribes is
// ingested when it does: the broker hands over the retained messages of
// the subscription, on both paths.
func TestClientTakesRetainedStates(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			r := newRig(t)
			node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
			if err != nil {
				t.Fatal(err)
			}
			raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOnline, At: time.Now(), DesiredVersion: 3})
			if err != nil {
				t.Fatal(err)
			}
			if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, true, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			open(t, r.client(t, p.inline))
			poll(t, "the retained state ingested", func() bool {
				n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
				return err == nil && n.Status.State == loaxa.NodeOnline && n.Status.RunningVersion == 3
			})
		})
	}
}

// A desired state published in-process is retained by the embedded
// broker: a node that connects after it was published receives it, signed
// by the controller, and a later version replaces it.
func TestInlineDesiredReachesALateNode(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	ctx := open(t, c)
	for v := uint64(1); v <= 2; v++ {
		if err := c.PublishDesired(ctx, &protocol.DesiredState{Node: "tt-01", Version: v}); err != nil {
			t.Fatalf("publish version %d: %v", v, err)
		}
	}
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	desired := topics.Node("tt-01", protocol.ChanDesired)
	if !node.subscribe(t, desired) {
		t.Fatal("node may not subscribe to its desired topic")
	}
	poll(t, "the retained desired state", func() bool { return node.received(desired) > 0 })
	node.mu.Lock()
	got := node.got[desired]
	node.mu.Unlock()
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil, 0)
	env, err := v.Open(got[0], "node/tt-01")
	if err != nil {
		t.Fatalf("desired state does not verify: %v", err)
	}
	var d protocol.DesiredState
	if err := env.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || d.Version != 2 {
		t.Errorf("node received %d desired states, the first version %d; want one, version 2", len(got), d.Version)
	}
}

// The topic the in-process client is handed owns its memory. The embedded
// broker decodes a packet's topic name as a view into the buffer it read
// the packet into, just before the payload; a node id cut from that topic
// and kept (an alert's tracking keys every node it heard from until it
// expires) kept the whole packet alive, ~0.9 KB for each node and alert.
func TestInlineTopicOwnsItsMemory(t *testing.T) {
	r := newRig(t)
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		topic   string
		payload []byte
	}
	got := make(chan delivery, 1)
	stop, err := mqtt.InlineDeliveries(r.broker, topics.Node("+", protocol.ChanState), func(topic string, payload []byte) {
		select {
		case got <- delivery{topic, payload}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOnline, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, false, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the state not delivered in-process")
	}
	if d.topic != topics.Node("tt-01", protocol.ChanState) || string(d.payload) != string(raw) {
		t.Fatalf("delivered %q with %d bytes, want the state's topic and its %d bytes", d.topic, len(d.payload), len(raw))
	}
	// In the packet's buffer the topic ends 2 bytes (the packet id)
	// before the payload begins.
	end := uintptr(unsafe.Pointer(unsafe.StringData(d.topic))) + uintptr(len(d.topic))
	payload := uintptr(unsafe.Pointer(unsafe.SliceData(d.payload)))
	if end <= payload && payload-end < 16 {
		t.Errorf("the delivered topic ends %d bytes before the payload: it is a view into the packet's buffer, and keeping it keeps the packet", payload-end)
	}
}

// Closing an in-process client removes its subscriptions (node messages
// no longer reach it), stops its workers and leaves no goroutine; it is
// not connected after, and neither is one whose broker closed.
func TestInlineClientClose(t *testing.T) {
	r := newRig(t)
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	c := r.client(t, true)
	open(t, c)
	state := func() {
		t.Helper()
		raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOnline, At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, false, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	state()
	poll(t, "the state received", func() bool { return received(t, c) == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Connected() {
		t.Error("connected after Close")
	}
	goleak.VerifyNone(t, before)
	// The node's publish is routed (and acknowledged to the node) after
	// its subscribers were looked up: once it returns, a subscription
	// left behind would have been called.
	state()
	if n := received(t, c); n != 1 {
		t.Errorf("%.0f node messages received, %.0f after Close", n, n-1)
	}

	c2 := r.client(t, true)
	open(t, c2)
	if err := r.broker.Close(); err != nil {
		t.Fatal(err)
	}
	if c2.Connected() {
		t.Error("connected to a closed broker")
	}
	if err := c2.SendNodeCommand(context.Background(), "tt-01", protocol.Command{Name: protocol.CmdAck}, time.Minute); !errors.Is(err, mqtt.ErrBrokerClosed) {
		t.Errorf("command to a closed broker: %v, want ErrBrokerClosed", err)
	}
}

// received returns the client's count of node messages received.
func received(t *testing.T, c *mqtt.Client) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 8)
	c.Collectors()[0].Collect(ch) // loaxa_mqtt_messages_in_total
	close(ch)
	var n float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		n += d.GetCounter().GetValue()
	}
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdHook holds the controller's publishes on some topics in the broker
// until released, as a broker too busy to read them would; released, they
// go on. Only the broker's reading of the controller's connection stops
// (mochi handles one client's packets in order), like the 10,000-node
// enrolment where a desired state waited more than 10 s for its
// acknowledgement.
type holdHook struct {
	mochi.HookBase
	topics  map[string]bool
	held    atomic.Int32
	release chan struct{}
}

func (h *holdHook) ID() string { return "test-hold" }

func (h *holdHook) Provides(b byte) bool { return b == mochi.OnPublish }

func (h *holdHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if string(cl.Properties.Username) == mqtt.ControllerUsername && h.topics[pk.TopicName] {
		h.held.Add(1)
		<-h.release
	}
	return pk, nil
}

// While the broker acknowledges none, at most DesiredInflight desired
// states are handed to paho; the next publish fails with
// ErrDesiredInflight instead of queueing one more, and publishes go on
// once the broker acknowledges the ones in flight. Over TCP only: the
// embedded broker takes an in-process publish within the call, so none is
// ever in flight (a hook that held it would hold the caller).
func TestDesiredInflightIsBounded(t *testing.T) {
	r := newRig(t)
	hold := &holdHook{topics: map[string]bool{topics.Node("tt-01", protocol.ChanDesired): true}, release: make(chan struct{})}
	if err := r.broker.AddHook(hold); err != nil {
		t.Fatal(err)
	}
	released := false
	releaseOnce := func() {
		if !released {
			released = true
			close(hold.release)
		}
	}
	defer releaseOnce() // before the broker closes, or its Close waits on the held publish
	c := r.client(t, false)
	c.PublishTimeout = 300 * time.Millisecond
	c.DesiredInflight = 2
	ctx := open(t, c)

	// tt-01's is held; tm-01's waits behind it on the connection.
	for i, node := range []string{"tt-01", "tm-01"} {
		err := c.PublishDesired(ctx, &protocol.DesiredState{Node: node, Version: uint64(i + 1)})
		if err == nil || errors.Is(err, mqtt.ErrDesiredInflight) {
			t.Fatalf("publish %d while the broker holds: %v, want a timeout", i+1, err)
		}
	}
	err := c.PublishDesired(ctx, &protocol.DesiredState{Node: "tm-01", Version: 3})
	if !errors.Is(err, mqtt.ErrDesiredInflight) {
		t.Fatalf("third publish with two unacknowledged: %v, want ErrDesiredInflight", err)
	}
	if n := hold.held.Load(); n != 1 {
		t.Fatalf("broker held %d publishes, want 1", n)
	}

	releaseOnce()
	if err := c.PublishDesired(ctx, &protocol.DesiredState{Node: "tm-01", Version: 4}); err != nil {
		t.Fatalf("publish after the broker caught up: %v", err)
	}
}

// client returns a controller client of the rig's broker and store, with
// the store's signing key, not opened yet: in-process or over TCP.
func (r *rig) client(t *testing.T, inline bool) *mqtt.Client {
	t.Helper()
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient()
	if inline {
		c.Embedded = r.broker
	} else {
		c.BrokerURL = r.broker.URL()
		c.Username, c.Password = mqtt.ControllerUsername, r.broker.ControllerSecret
	}
	c.Signer = protocol.NewSigner("controller", key, 0, nil)
	c.NodeService, c.EventService = r.nodes, r.events
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// open opens c, closed at the end of the test, and waits until it is
// connected; the context it returns ends 10 s after.
func open(t *testing.T, c *mqtt.Client) context.Context {
	t.Helper()
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}
