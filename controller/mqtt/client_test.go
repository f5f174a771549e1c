package mqtt_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

// The controller's client ingests a node's state and events through the
// embedded broker, and acknowledges the events with a signed command the
// node can verify.
func TestClientIngestsAndAcknowledges(t *testing.T) {
	r := newRig(t)
	c := r.client(t)
	open(t, c)

	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	cmdTopic := topics.Node("tt-01", protocol.ChanCmd)
	if !node.subscribe(t, cmdTopic) {
		t.Fatal("node may not subscribe to its cmd topic")
	}
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

	node.mu.Lock()
	ack := node.got[cmdTopic][0]
	node.mu.Unlock()
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil, 0)
	env, err := v.Open(ack, "node/tt-01")
	if err != nil {
		t.Fatalf("ack does not verify: %v", err)
	}
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
// once the broker acknowledges the ones in flight.
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
	c := r.client(t)
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

// stallHook stalls the broker's writes of node states to the controller,
// as a controller reading its connection slowly (a fleet enrolling on a
// busy machine) does: the broker's writer waits on the first and queues
// the rest behind it.
type stallHook struct {
	mochi.HookBase
	client  string
	stalled atomic.Int32
	release chan struct{}
}

func (h *stallHook) ID() string { return "test-stall" }

func (h *stallHook) Provides(b byte) bool { return b == mochi.OnPacketEncode }

func (h *stallHook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.ID == h.client && pk.FixedHeader.Type == packets.Publish && pk.TopicName == topics.Node("tt-01", protocol.ChanState) {
		h.stalled.Add(1)
		<-h.release
	}
	return pk
}

// With PublishClientID the broker acknowledges a desired state at once
// even while node traffic to the controller is stalled: the
// acknowledgement does not wait behind node messages. Without it (one
// connection) this publish times out.
func TestPublishesDoNotWaitBehindNodeTraffic(t *testing.T) {
	r := newRig(t)
	c := r.client(t)
	c.PublishTimeout = time.Second
	c.PublishClientID = c.ClientID + "-pub"
	stall := &stallHook{client: c.ClientID, release: make(chan struct{})}
	if err := r.broker.AddHook(stall); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(stall.release)
		}
	}
	defer release() // before the broker closes
	ctx := open(t, c)
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	state := func() {
		t.Helper()
		seq++
		raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", seq, time.Now(), protocol.State{Status: protocol.StatusOnline, At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, false, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("node publish: %v", tok.Error())
		}
	}
	// States until the broker's writer to the controller stalls on one
	// (the controller subscribes in the background), then two more that
	// queue behind it: each is queued before the broker reads the node's
	// next publish.
	poll(t, "the broker's writer stalled", func() bool {
		state()
		return stall.stalled.Load() > 0
	})
	state()
	state()

	if err := c.PublishDesired(ctx, &protocol.DesiredState{Node: "tt-01", Version: 1}); err != nil {
		t.Fatalf("desired state while node traffic to the controller is stalled: %v", err)
	}
}

// client returns a controller client of the rig's broker and store, with
// the store's signing key, not opened yet.
func (r *rig) client(t *testing.T) *mqtt.Client {
	t.Helper()
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient()
	c.BrokerURL = r.broker.URL()
	c.Username, c.Password = mqtt.ControllerUsername, r.broker.ControllerSecret
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
