package mqtt

import (
	"fmt"
	"log/slog"
	"testing"

	"loaxa.vn/protocol"
)

// TestStatesCoalesce: while a node's state waits in the queue, newer ones
// replace it; the worker gets the newest, and events are never coalesced.
func TestStatesCoalesce(t *testing.T) {
	c := NewClient()
	c.queues = []chan message{make(chan message, 10)}
	state := protocol.Topic{Scope: protocol.ScopeNode, ID: "n1", Channel: protocol.ChanState}
	event := protocol.Topic{Scope: protocol.ScopeNode, ID: "n1", Channel: protocol.ChanEvent}
	c.enqueue(state, []byte("s1"))
	c.enqueue(event, []byte("e1"))
	c.enqueue(state, []byte("s2"))
	c.enqueue(state, []byte("s3"))
	c.enqueue(event, []byte("e2"))
	q := c.queues[0]
	if len(q) != 3 {
		t.Fatalf("%d queued, want one state and two events", len(q))
	}
	first := <-q
	if first.topic.Channel != protocol.ChanState {
		t.Fatalf("first queued %v", first.topic)
	}
	if p, ok := c.takeState("n1"); !ok || string(p) != "s3" {
		t.Errorf("worker takes %q, want the newest s3", p)
	}
	for _, want := range []string{"e1", "e2"} {
		if m := <-q; string(m.payload) != want {
			t.Errorf("event %q, want %q", m.payload, want)
		}
	}
	// Once taken, the next state queues again.
	c.enqueue(state, []byte("s4"))
	if len(q) != 1 {
		t.Errorf("a state after the worker took the last is not queued")
	}
	if p, _ := c.takeState("n1"); string(p) != "s4" {
		t.Errorf("took %q", p)
	}
}

// TestRoundBurstFits: an emergency round at 10,000 nodes, every node's
// state and its first event batches arriving before the workers took any,
// fits in the default workers' queues (16,384 slots dropped 13,000–24,000
// messages a round, BENCHMARKS.md).
func TestRoundBurstFits(t *testing.T) {
	c := NewClient()
	c.Logger = slog.New(slog.DiscardHandler)
	c.queues = makeQueues(c.Workers)
	for i := range 10000 {
		node := fmt.Sprintf("n%05d", i)
		c.enqueue(protocol.Topic{Scope: protocol.ScopeNode, ID: node, Channel: protocol.ChanState}, []byte("s"))
		for range 2 {
			c.enqueue(protocol.Topic{Scope: protocol.ScopeNode, ID: node, Channel: protocol.ChanEvent}, []byte("e"))
		}
	}
	if d := c.Dropped(); d != 0 {
		t.Fatalf("%d of 30,000 messages dropped", d)
	}
}
