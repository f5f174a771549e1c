package mqtt

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// nodeStore is the store as the ingest sees it: FindNodeByID and
// UpdateNodeStatus of NodeService, RecordEvents of EventService. Each
// status update waits (up to a bound) until together calls are in flight,
// as writes waiting for one shared commit do.
type nodeStore struct {
	loaxa.NodeService
	loaxa.EventService
	together int

	mu       sync.Mutex
	inFlight int
	released bool
	alone    int      // updates that waited in vain
	updated  []string // nodes whose status was written
	batches  []string // "node seq", in the order recorded
	last     map[string]uint64
	cond     *sync.Cond
}

func (s *nodeStore) FindNodeByID(_ context.Context, id string) (*loaxa.Node, error) {
	return &loaxa.Node{ID: id, Credentials: loaxa.CredentialsActive}, nil
}

func (s *nodeStore) NodeCredentials(context.Context, string) (string, error) {
	return loaxa.CredentialsActive, nil
}

func (s *nodeStore) UpdateNodeStatus(_ context.Context, id string, fn func(*loaxa.NodeStatus)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	if s.inFlight >= s.together {
		s.released = true
		s.cond.Broadcast()
	}
	deadline := time.AfterFunc(2*time.Second, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer deadline.Stop()
	start := time.Now()
	for !s.released && time.Since(start) < 2*time.Second {
		s.cond.Wait()
	}
	if !s.released {
		s.alone++
	}
	s.inFlight--
	var st loaxa.NodeStatus
	fn(&st)
	s.updated = append(s.updated, id)
	return nil
}

func (s *nodeStore) RecordEvents(_ context.Context, node string, b protocol.EventBatch, _ time.Time) (uint64, []protocol.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]uint64{}
	}
	for _, e := range b.Events {
		s.batches = append(s.batches, node+" "+string(e.Type))
		s.last[node] = e.Seq
	}
	// Stored in order: the acknowledgement is held (AckDelay) and, with no
	// sender running, never sent; a batch past a gap would be answered
	// at once.
	return s.last[node], nil, nil
}

// TestWorkerIngestsNodesTogether: what one worker finds queued is
// ingested node by node concurrently, so that the store can commit the
// writes of many nodes at once, and each node's messages still in order.
func TestWorkerIngestsNodesTogether(t *testing.T) {
	const nodes = 8
	store := &nodeStore{together: nodes}
	store.cond = sync.NewCond(&store.mu)
	c := NewClient()
	c.NodeService, c.EventService = store, store
	c.Logger = slog.New(slog.DiscardHandler)
	c.queues = makeQueues(1)
	encode := func(typ protocol.Type, node string, seq uint64, body any) []byte {
		raw, err := protocol.Encode(typ, node, "controller", seq, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	events := func(node string, seq uint64, typ protocol.EventType) []byte {
		return encode(protocol.TypeEvents, node, seq, protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{{Seq: seq, Type: typ, At: time.Now()}}})
	}
	var ids []string
	for i := range nodes {
		id := string(rune('a'+i)) + "-node"
		ids = append(ids, id)
		c.enqueue(protocol.Topic{Scope: protocol.ScopeNode, ID: id, Channel: protocol.ChanEvent}, events(id, 1, protocol.EventReceived))
		c.enqueue(protocol.Topic{Scope: protocol.ScopeNode, ID: id, Channel: protocol.ChanState},
			encode(protocol.TypeState, id, 0, protocol.State{Status: protocol.StatusOnline, At: time.Now()}))
		c.enqueue(protocol.Topic{Scope: protocol.ScopeNode, ID: id, Channel: protocol.ChanEvent}, events(id, 2, protocol.EventStarted))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.work(ctx, c.queues[0])
	defer func() {
		cancel()
		c.wg.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		store.mu.Lock()
		done := len(store.updated) == nodes && len(store.batches) == 2*nodes
		store.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not ingest everything within 30 s")
		}
		time.Sleep(10 * time.Millisecond) // polling the fake store
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.alone > 0 {
		t.Errorf("%d of %d status updates were not in flight together with the other nodes'", store.alone, nodes)
	}
	slices.Sort(store.updated)
	if !slices.Equal(store.updated, ids) {
		t.Errorf("statuses written for %v, want %v", store.updated, ids)
	}
	for _, id := range ids {
		i, j := slices.Index(store.batches, id+" received"), slices.Index(store.batches, id+" started")
		if i < 0 || j < i {
			t.Errorf("%s: batches recorded in the order %v, want received before started", id, store.batches)
		}
	}
}
