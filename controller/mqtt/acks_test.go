package mqtt_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// ackNode is a node of the rig that publishes event batches and reads the
// acknowledgements the controller sends it.
type ackNode struct {
	r    *rig
	conn *conn
	id   string
	seq  uint64 // of the current epoch
	sent int    // events in all
}

func newAckNode(t *testing.T, r *rig, id string) *ackNode {
	t.Helper()
	cn, err := r.connect(t, id, id, "secret-"+id, "")
	if err != nil {
		t.Fatal(err)
	}
	if !cn.subscribe(t, topics.Node(id, protocol.ChanCmd)) {
		t.Fatal("node may not subscribe to its cmd topic")
	}
	return &ackNode{r: r, conn: cn, id: id}
}

// send publishes one batch of n events of epoch and waits until the
// controller stored them.
func (n *ackNode) send(t *testing.T, epoch string, count int) {
	t.Helper()
	b := protocol.EventBatch{Epoch: epoch}
	for range count {
		n.seq++
		b.Events = append(b.Events, protocol.Event{Seq: n.seq, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAmplifier})
	}
	n.publish(t, b, count)
}

// publish publishes b and waits until the controller stored stored more
// events of the node.
func (n *ackNode) publish(t *testing.T, b protocol.EventBatch, stored int) {
	t.Helper()
	n.sent += stored
	raw, err := protocol.Encode(protocol.TypeEvents, n.id, "controller", b.Events[0].Seq, time.Now(), b)
	if err != nil {
		t.Fatal(err)
	}
	if tok := n.conn.c.Publish(topics.Node(n.id, protocol.ChanEvent), 1, false, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	want := n.sent
	poll(t, "events stored", func() bool {
		evs, err := n.r.events.FindEvents(context.Background(), loaxa.EventFilter{Node: n.id})
		return err == nil && len(evs) == want
	})
}

// acks returns the acknowledgements the node received, verified.
func (n *ackNode) acks(t *testing.T) []protocol.Command {
	t.Helper()
	key, err := n.r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil, 0)
	n.conn.mu.Lock()
	got := append([][]byte(nil), n.conn.got[topics.Node(n.id, protocol.ChanCmd)]...)
	n.conn.mu.Unlock()
	var cmds []protocol.Command
	for _, raw := range got {
		env, err := v.Open(raw, "node/"+n.id)
		if err != nil {
			t.Fatalf("ack does not verify: %v", err)
		}
		var cmd protocol.Command
		if err := env.Decode(&cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.Name != protocol.CmdAck {
			t.Fatalf("command %s, want only acks", cmd.Name)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// The batches a node sends within AckDelay of the first are acknowledged
// together, with one signed command when the delay has passed; a batch of
// a new epoch replaces the acknowledgement of the old one.
func TestAcksCoalesced(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	clk := clock.NewFake(time.Now())
	mqtt.SetAckClock(c, clk.Now)
	c.AckDelay = time.Minute
	open(t, c)
	node := newAckNode(t, r, "tt-01")

	held := func(epoch string, seq uint64) func() bool {
		return func() bool { e, s, ok := mqtt.HeldAck(c, "tt-01"); return ok && e == epoch && s == seq }
	}
	node.send(t, "ep1", 2)
	// Its delay runs from when it is held, which follows the store.
	poll(t, "the acknowledgement held", held("ep1", 2))
	clk.Advance(30 * time.Second)
	node.send(t, "ep1", 1)
	poll(t, "the second batch under the same acknowledgement", held("ep1", 3))
	if got := node.acks(t); len(got) != 0 {
		t.Fatalf("acknowledged before the delay: %+v", got)
	}
	clk.Advance(30 * time.Second)
	poll(t, "the held acknowledgement", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 0 })
	got := node.acks(t)
	if len(got) != 1 || got[0].Epoch != "ep1" || got[0].Seq != 3 {
		t.Fatalf("acks %+v, want one: ep1 seq 3", got)
	}

	// A restarted node with a wiped store: its new epoch's batch replaces
	// what was held for the old one, which it would ignore.
	node.send(t, "ep1", 1)
	node.seq = 0
	node.send(t, "ep2", 1)
	poll(t, "the new epoch's acknowledgement held", held("ep2", 1))
	clk.Advance(time.Minute)
	poll(t, "the acknowledgement of the new epoch", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 1 })
	got = node.acks(t)
	if len(got) != 2 || got[1].Epoch != "ep2" || got[1].Seq != 1 {
		t.Fatalf("acks %+v, want the second: ep2 seq 1", got)
	}
}

// Acknowledgements still held when the controller stops are sent before
// it disconnects, so a restart does not make every node send its newest
// events again.
func TestHeldAcksSentOnClose(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			r := newRig(t)
			c := r.client(t, p.inline)
			c.AckDelay = time.Hour
			open(t, c)
			node := newAckNode(t, r, "tt-01")
			node.send(t, "ep1", 2)
			if got := node.acks(t); len(got) != 0 {
				t.Fatalf("acknowledged before the delay: %+v", got)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			poll(t, "the acknowledgement held at Close", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 0 })
			if got := node.acks(t); len(got) != 1 || got[0].Seq != 2 {
				t.Fatalf("acks %+v, want one: ep1 seq 2", got)
			}
		})
	}
}

// Events a node read back from its damaged store are acknowledged at once,
// with their epoch, beside the node's own held acknowledgement, and are
// passed on as such (OnSalvaged), not as news of the node (OnEvents).
func TestSalvagedEventsAcknowledgedAtOnce(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	c.AckDelay = time.Hour
	var told []string
	var salvaged int
	var mu sync.Mutex
	c.OnEvents = func(node, epoch string, events []protocol.Event) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, epoch)
	}
	c.OnSalvaged = func(node string, events []protocol.Event) {
		mu.Lock()
		defer mu.Unlock()
		salvaged += len(events)
	}
	obs := &observer{}
	c.Observer = obs
	open(t, c)
	node := newAckNode(t, r, "tt-01")
	node.send(t, "ep2", 2)
	b := protocol.EventBatch{Epoch: "ep1", Salvaged: true}
	for seq := uint64(5); seq <= 7; seq++ {
		b.Events = append(b.Events, protocol.Event{Seq: seq, Type: protocol.EventCompleted, At: time.Now().Add(-time.Hour)})
	}
	node.publish(t, b, 3)
	poll(t, "the salvaged events' acknowledgement", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 0 })
	if got := node.acks(t); len(got) != 1 || got[0].Epoch != "ep1" || got[0].Seq != 7 {
		t.Fatalf("acks %+v, want one: ep1 seq 7", got)
	}
	if e, s, ok := mqtt.HeldAck(c, "tt-01"); !ok || e != "ep2" || s != 2 {
		t.Errorf("held acknowledgement %s %d (%v), want the node's own: ep2 seq 2", e, s, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(told, []string{"ep2"}) || salvaged != 3 {
		t.Errorf("OnEvents told of epochs %q, OnSalvaged of %d events; want only the node's own ep2, and the 3 salvaged", told, salvaged)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Equal(obs.epochs, []string{"ep2"}) || obs.salvaged != 3 {
		t.Errorf("the observer heard events of epochs %q and %d salvaged events; want only ep2, and the 3 salvaged", obs.epochs, obs.salvaged)
	}
}

// observer notes what the ingest tells an Observer of events.
type observer struct {
	mu       sync.Mutex
	epochs   []string
	salvaged int
}

func (o *observer) ObserveState(context.Context, string, *protocol.State, time.Time) {}

func (o *observer) ObserveEvents(_ context.Context, _, epoch string, _ []protocol.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.epochs = append(o.epochs, epoch)
}

func (o *observer) ObserveSalvaged(_ context.Context, _ string, events []protocol.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.salvaged += len(events)
}

// Without a delay every batch is acknowledged at once.
func TestAcksWithoutDelay(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	c.AckDelay = 0
	open(t, c)
	node := newAckNode(t, r, "tt-01")
	node.send(t, "ep1", 1)
	poll(t, "the first acknowledgement", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 0 })
	node.send(t, "ep1", 1)
	poll(t, "the second acknowledgement", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 1 })
	if got := node.acks(t); got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("acks %+v, want seq 1 then 2", got)
	}
}

// TestBatchAfterAGapIsAnsweredAtOnce: a node whose batch the controller
// dropped (a full ingest queue) had its next batches skipped, past the
// gap, with no word: it sent the gap again only after its AckTimeout
// (30 s), and an alert's receipt lost that way was missing from the
// report all that time. A batch past a gap is answered at once, not held
// for AckDelay, with what the controller holds and the gap's batch.
func TestBatchAfterAGapIsAnsweredAtOnce(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	c.AckDelay = time.Hour // acknowledgements of stored events wait
	open(t, c)
	node := newAckNode(t, r, "tt-01")
	node.send(t, "ep1", 2)
	// Events 3 and 4 were dropped on their way; 5 and 6 come.
	b := protocol.EventBatch{Epoch: "ep1"}
	for seq := uint64(5); seq <= 6; seq++ {
		b.Events = append(b.Events, protocol.Event{Seq: seq, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAmplifier})
	}
	node.publish(t, b, 0)
	poll(t, "an answer to the batch past the gap", func() bool { return node.conn.received(topics.Node("tt-01", protocol.ChanCmd)) > 0 })
	got := node.acks(t)
	if len(got) != 1 || got[0].Epoch != "ep1" || got[0].Seq != 2 || got[0].Gap != 5 {
		t.Fatalf("acks %+v, want one at once: ep1 seq 2, gap 5", got)
	}

	// A node that never had an event stored is answered too (seq 0).
	other := newAckNode(t, r, "tm-01")
	b.Epoch = "ep9"
	other.publish(t, b, 0)
	poll(t, "an answer to the first batch, past a gap", func() bool { return other.conn.received(topics.Node("tm-01", protocol.ChanCmd)) > 0 })
	if got := other.acks(t); len(got) != 1 || got[0].Seq != 0 || got[0].Gap != 5 {
		t.Fatalf("acks %+v, want one: ep9 seq 0, gap 5", got)
	}
}
