package mqtt

import (
	"context"
	"log/slog"
	"testing"

	"loaxa.vn/protocol"
)

// TestFloodingNodeLeavesRoomForOthers: nodes are hashed onto ingest
// workers, and a node publishing event batches as fast as it can (a bug,
// or an attacker with its credentials) filled its worker's queue, so the
// reports of every other node on that worker were dropped. A node may have
// only nodeQueueLimit event batches waiting: its excess is dropped and
// counted, the other nodes' messages are queued, and once the worker has
// taken its batches the node may queue again.
func TestFloodingNodeLeavesRoomForOthers(t *testing.T) {
	c := NewClient()
	c.Logger = slog.New(slog.DiscardHandler)
	c.queues = []chan message{make(chan message, 4*nodeQueueLimit)}
	flooder := protocol.Topic{Scope: protocol.ScopeNode, ID: "flooder", Channel: protocol.ChanEvent}
	quiet := protocol.Topic{Scope: protocol.ScopeNode, ID: "quiet", Channel: protocol.ChanEvent}
	quietState := protocol.Topic{Scope: protocol.ScopeNode, ID: "quiet", Channel: protocol.ChanState}

	const flood = 1000
	for range flood {
		c.enqueue(flooder, []byte("flood"))
	}
	c.enqueue(quiet, []byte("started"))
	c.enqueue(quietState, []byte("online"))

	q := c.queues[0]
	var fromQuiet, fromFlooder int
	var taken []message
	for len(q) > 0 {
		m := <-q
		taken = append(taken, m)
		switch m.topic.ID {
		case "quiet":
			fromQuiet++
		case "flooder":
			fromFlooder++
		}
	}
	if fromQuiet != 2 {
		t.Errorf("%d of the quiet node's 2 messages queued behind the flood", fromQuiet)
	}
	if fromFlooder != nodeQueueLimit {
		t.Errorf("the flooding node has %d batches queued, want its limit %d", fromFlooder, nodeQueueLimit)
	}
	if got, want := c.Flooded(), uint64(flood-nodeQueueLimit); got != want {
		t.Errorf("%d of the flood's batches counted dropped, want %d", got, want)
	}
	if d := c.Dropped(); d != 0 {
		t.Errorf("%d messages dropped for a full queue", d)
	}

	// Once the worker has ingested the flooder's batches, it may queue again.
	store := &nodeStore{}
	c.NodeService, c.EventService = store, store
	c.ingestBatch(context.Background(), taken)
	c.enqueue(flooder, []byte("later"))
	if len(q) != 1 {
		t.Errorf("after its batches were ingested, the node's next batch was not queued")
	}
}
