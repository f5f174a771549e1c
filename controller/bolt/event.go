package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Limits on FindEvents results.
const (
	DefaultEventLimit = 1000
	MaxEventLimit     = 10000
)

// maxEpochLen bounds the outbox epoch a node sends (nodes use 16 hex
// digits); it becomes part of keys.
const maxEpochLen = 64

// EventService stores node events and moves deliveries with them.
type EventService struct {
	db *DB
}

var _ loaxa.EventService = (*EventService)(nil)

// NewEventService returns an EventService on db.
func NewEventService(db *DB) *EventService {
	return &EventService{db: db}
}

// msKey encodes t in Unix milliseconds so that byte order is time order,
// also before 1970 (the sign bit is flipped).
func msKey(t time.Time) []byte {
	return u64(uint64(t.UnixMilli()) ^ (1 << 63))
}

// eventKey is the primary key: time first, so a time range is one range
// scan; node, epoch and seq make it unique.
func eventKey(at time.Time, node, epoch string, seq uint64) []byte {
	k := make([]byte, 0, 8+len(node)+1+len(epoch)+1+8)
	k = append(k, msKey(at)...)
	k = append(k, node...)
	k = append(k, 0)
	k = append(k, epoch...)
	k = append(k, 0)
	return append(k, u64(seq)...)
}

// nodeEventKey keys the by-node index: node first, then time.
func nodeEventKey(at time.Time, node, epoch string, seq uint64) []byte {
	k := make([]byte, 0, len(node)+1+8+len(epoch)+1+8)
	k = append(k, node...)
	k = append(k, 0)
	k = append(k, msKey(at)...)
	k = append(k, epoch...)
	k = append(k, 0)
	return append(k, u64(seq)...)
}

// eventSeqKey keys the last stored sequence of one outbox. Each epoch keeps
// its own, so a late copy of a batch from an outbox the node has since
// replaced neither resets the new outbox's sequence nor is stored twice.
func eventSeqKey(node, epoch string) []byte {
	return join(node, epoch)
}

// RecordEvents stores a batch from node and advances the deliveries its
// events name, all in one transaction. Only the next sequence of the
// batch's epoch is accepted: an already stored sequence is skipped as a
// resend, and a gap ends the batch (the node resends from there). A new
// epoch starts at sequence 1. It returns the highest sequence stored for the
// epoch, which is what to acknowledge (0 if none). An event that
// protocol.Event.Validate refuses (longer than a key, a time JSON cannot
// hold, …) takes its sequence all the same, so that the acknowledgement
// passes it: storeRefused keeps why in its place.
//
// An event with a zero At (a node that did not say when) is stored, and
// returned, at receivedAt. An event naming an
// occurrence advances the delivery (announcement, occurrence, node) with
// DeliveryState.Advance. A missing delivery is created from the event, so
// that no report of a play is lost: for an announcement only from an event
// that reports a play (started, suspended or final), since one that was
// dropped (DeliveryService.DropDeliveries) must not come back from a late
// received event; for an emergency or a live call from any event, since
// nodes may report before their deliveries are stored.
func (s *EventService) RecordEvents(ctx context.Context, node string, b protocol.EventBatch, receivedAt time.Time) (uint64, []protocol.Event, error) {
	if err := checkCtx(ctx); err != nil {
		return 0, nil, err
	}
	if b.Epoch == "" || len(b.Epoch) > maxEpochLen {
		return 0, nil, loaxa.Errorf(loaxa.EInvalid, "Event batch from node %q: epoch %q must be 1 to %d bytes.", node, b.Epoch, maxEpochLen)
	}
	receivedAt = receivedAt.UTC()
	var last uint64
	var fresh []protocol.Event
	var written []writtenDelivery
	err := s.db.groupUpdate(func(tx *bbolt.Tx) error {
		last, fresh, written = 0, fresh[:0], written[:0] // the function may run again (groupUpdate)
		area, err := s.db.nodeArea(tx, node)
		if err != nil {
			return err
		}
		n := eventSource{node: node, area: area}
		held := batchDelivery{cache: &s.db.deliveries, written: &written}
		seqs := tx.Bucket(bucketEventSeqs)
		seqKey := eventSeqKey(node, b.Epoch)
		if v := seqs.Get(seqKey); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("event sequence %q has %d bytes", seqKey, len(v))
			}
			last = binary.BigEndian.Uint64(v)
		}
		stored := last
		if !b.Salvaged && b.Acked > last {
			// The node holds events up to Acked acknowledged: this
			// controller acknowledged them and lost them since (a
			// restored backup). Waiting for them would have the node
			// resend for ever and nothing it reports stored again.
			s.db.Logger.Warn("a node holds acknowledged events this controller does not hold (a restored store?); its events taken from there",
				"node", node, "epoch", b.Epoch, "stored", last, "acked", b.Acked)
			last = b.Acked
		}
		if b.Salvaged && b.Events[0].Seq > last+1 {
			// Events an earlier store of the node read back after the
			// ones it had acknowledged: this controller stored those once
			// and lost them since (a restored backup). Waiting for them
			// would have the node resend for ever.
			s.db.Logger.Warn("salvaged events of a node follow events this controller does not hold; taken from where they start",
				"node", node, "epoch", b.Epoch, "stored", last, "first", b.Events[0].Seq)
			last = b.Events[0].Seq - 1
		}
		for i := range b.Events {
			ev := b.Events[i]
			if ev.Seq <= last {
				continue // a resend
			}
			if ev.Seq != last+1 {
				break // a gap: the node resends from last+1
			}
			if verr := ev.Validate(); verr != nil {
				// Its sequence is taken, so that the acknowledgement
				// passes it: waiting for it, the node would send the batch
				// again for ever and nothing it reports after it would be
				// stored.
				if err := s.storeRefused(tx, n, b.Epoch, b.Salvaged, ev.Seq, verr, receivedAt); err != nil {
					return fmt.Errorf("event %d: %w", ev.Seq, err)
				}
				last = ev.Seq
				continue
			}
			if ev.At.IsZero() {
				// Stamped here, not in storeEvent: what follows the store
				// (health alarms, an emergency's tracking) reads At too.
				ev.At = receivedAt
			}
			if err := s.storeEvent(tx, n, b.Epoch, b.Salvaged, ev, receivedAt, &held); err != nil {
				return fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			last = ev.Seq
			fresh = append(fresh, ev)
		}
		if err := held.flush(tx); err != nil {
			return err
		}
		if last == stored {
			return nil
		}
		return seqs.Put(seqKey, u64(last))
	})
	if err != nil {
		return 0, nil, fmt.Errorf("record events of node %s: %w", node, err)
	}
	s.db.deliveries.refresh(written)
	return last, fresh, nil
}

// eventSource is the node a batch comes from, as its events record it.
type eventSource struct {
	node, area string
}

// storeEvent stores one accepted event and advances its delivery, which
// held writes once the batch is done (batchDelivery.flush); an event
// without an occurrence needs no held.
func (s *EventService) storeEvent(tx *bbolt.Tx, n eventSource, epoch string, salvaged bool, ev protocol.Event, receivedAt time.Time, held *batchDelivery) error {
	e := loaxa.Event{Node: n.node, Area: n.area, Epoch: epoch, Salvaged: salvaged, Event: ev, ReceivedAt: receivedAt}
	key := eventKey(ev.At, n.node, epoch, ev.Seq)
	if err := putEvent(tx, key, &e); err != nil {
		return err
	}
	if err := tx.Bucket(bucketNodeEvents).Put(nodeEventKey(ev.At, n.node, epoch, ev.Seq), key); err != nil {
		return err
	}
	if ev.Occurrence == "" {
		return nil
	}
	return s.advanceDelivery(tx, n.node, epoch, salvaged, ev, receivedAt, held)
}

// batchDelivery is the delivery the events of one batch move, read and
// decoded once and encoded and written once: a node reports an alert's
// received and content-ready in one batch (its started too, when its
// report waits for its window), and each event read, decoded, encoded
// and wrote the whole delivery again (BenchmarkRecordEventsRound).
type batchDelivery struct {
	key   []byte // nil: none held yet
	d     loaxa.Delivery
	found bool // stored before the batch, or made by one of its events
	dirty bool // changed by the batch, not written yet

	// The reports' decoded deliveries: read from, and told after the
	// commit (written) what the batch wrote.
	cache   *deliveryCache
	written *[]writtenDelivery
}

// load holds the delivery at key, after writing the one held before.
func (h *batchDelivery) load(tx *bbolt.Tx, key []byte) error {
	if h.key != nil && bytes.Equal(h.key, key) {
		return nil
	}
	if err := h.flush(tx); err != nil {
		return err
	}
	*h = batchDelivery{key: key, cache: h.cache, written: h.written}
	v := tx.Bucket(bucketDeliveries).Get(key)
	if v == nil {
		return nil
	}
	h.found = true
	if d, ok := h.cache.lookup(key, v); ok {
		h.d = d
		return nil
	}
	if err := decodeDelivery(v, &h.d); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// store takes d as the held delivery's new value, to be written.
func (h *batchDelivery) store(d *loaxa.Delivery) {
	h.d, h.found, h.dirty = *d, true, true
}

// flush writes the held delivery if the batch changed it.
func (h *batchDelivery) flush(tx *bbolt.Tx) error {
	if !h.dirty {
		return nil
	}
	h.dirty = false
	w, err := writeDelivery(tx, &h.d)
	if err != nil {
		return err
	}
	if h.cache.holds(w.key) {
		// A report read it: it gets the new value without decoding.
		// Held only then, so an ingest no report follows keeps nothing.
		*h.written = append(*h.written, w)
	}
	return nil
}

// storeRefused stores, under seq, why the event the node sent there was
// refused, at receivedAt: none of what it said is kept, as any of it may
// be what the store cannot hold. The play log then shows the refusal, and
// every sequence up to the outbox's last is held.
func (s *EventService) storeRefused(tx *bbolt.Tx, n eventSource, epoch string, salvaged bool, seq uint64, why error, receivedAt time.Time) error {
	s.db.Logger.Warn("event of a node refused; its sequence is acknowledged and the refusal stored in its place",
		"node", n.node, "epoch", epoch, "seq", seq, "err", why)
	e := loaxa.Event{Node: n.node, Area: n.area, Epoch: epoch, Salvaged: salvaged,
		Event: protocol.Event{Seq: seq, At: receivedAt}, ReceivedAt: receivedAt, Refused: why.Error()}
	key := eventKey(receivedAt, n.node, epoch, seq)
	if err := putEvent(tx, key, &e); err != nil {
		return err
	}
	return tx.Bucket(bucketNodeEvents).Put(nodeEventKey(receivedAt, n.node, epoch, seq), key)
}

// advanceDelivery moves the delivery an event names. The announcement is
// taken from the occurrence id (loaxa.OccurrenceID), which is how
// deliveries are keyed; the event's own Announcement field is not trusted
// to match.
//
// A salvaged event (protocol.EventBatch.Salvaged) is older than anything
// the node's own outbox reports: it moves a delivery only if no other
// outbox has reported on it, and it does not change the delivery's epoch,
// by which the emergency service finds a node on a new store.
func (s *EventService) advanceDelivery(tx *bbolt.Tx, node, epoch string, salvaged bool, ev protocol.Event, receivedAt time.Time, held *batchDelivery) error {
	ann, _, ok := strings.Cut(ev.Occurrence, "@")
	if !ok && loaxa.IsLiveCallID(ev.Occurrence) {
		ann, ok = ev.Occurrence, true // a live call is its own occurrence (docs/live.md)
	}
	if !ok || ann == "" {
		s.db.Logger.Warn("event names a malformed occurrence; delivery not updated",
			"node", node, "seq", ev.Seq, "occurrence", ev.Occurrence)
		return nil
	}
	if err := held.load(tx, deliveryKey(ann, ev.Occurrence, node)); err != nil {
		return err
	}
	// A copy: what an event changes and does not store (its early
	// returns) must not reach the next event's delivery.
	d, found := held.d, held.found
	if !found {
		if !sentNotScheduled(ann) && !reportsPlay(ev.Type) {
			// The scheduler stores an announcement's deliveries before it
			// publishes them, so a missing one was dropped (cancelled,
			// moved): a late received or content-ready would bring it back
			// open, and failed to sound, for ever, as the node never
			// reports again on an occurrence it only held.
			return nil
		}
		start := loaxa.OccurrenceTime(ev.Occurrence) // zero if it does not parse
		// The drill mark as the node had it from the signed alert or
		// call: without it a drill whose plan never came (a controller
		// stopped while it sent) counted as a real one. The plan, if it
		// comes, has the last word (planDelivery).
		d = loaxa.Delivery{Announcement: ann, Occurrence: ev.Occurrence, Node: node, Start: start, State: loaxa.DeliveryPending,
			Drill: ev.Drill, Unplanned: true}
	}
	if salvaged {
		if d.Epoch != "" && d.Epoch != epoch {
			return nil // the node's reports since say where it stands
		}
		epoch = d.Epoch
	}
	// Any event about the occurrence says the node has it; the received
	// event itself may come in a later batch.
	noted := false
	switch ev.Type {
	case protocol.EventReceived, protocol.EventContentReady, protocol.EventStarted, protocol.EventSuspended,
		protocol.EventCompleted, protocol.EventFailed, protocol.EventPreempted, protocol.EventMissed:
		noted = d.ReceivedAt.IsZero()
	}
	if noted {
		d.ReceivedAt = ev.At
	}
	// From which outbox: the emergency service finds a node on a new
	// store by it, after a controller restart too.
	newEpoch := d.Epoch != epoch
	d.Epoch = epoch
	if markContentReady(&d, ev) {
		if ev.MessageMS != 0 {
			// Where a late message plays, known as it came.
			d.MessageMS = ev.MessageMS
		}
		d.UpdatedAt = receivedAt
		held.store(&d)
		return nil
	}
	next, changed := d.State.Advance(ev.Type)
	if !changed && !noted && !newEpoch && found {
		return nil
	}
	if changed {
		// A play that starts again after it was suspended keeps how late
		// it first began (what an alert's timing counts) and drops the
		// reason it was cut off. One held back before it ever began (a
		// muted node, no sound device) begins now: as late as it does.
		resumed := d.State == loaxa.DeliverySuspended && next == loaxa.DeliveryStarted && d.Began
		if next == loaxa.DeliveryStarted {
			d.Began = true
		}
		d.State = next
		d.Reason = ev.Reason
		if ev.LateMS != 0 && !resumed {
			d.LateMS, d.ChimeSkippedMS = ev.LateMS, ev.ChimeSkippedMS
		}
		if next == loaxa.DeliveryStarted && d.Unplanned && !ev.At.IsZero() {
			// The node began LateMS after the start it was given: that
			// start, not the occurrence's own time, is the one that counts
			// if the plan never comes (a controller stopped while sending).
			d.Start = ev.At.Add(-time.Duration(ev.LateMS) * time.Millisecond)
		}
		if ev.PlayedMS != 0 {
			d.PlayedMS = ev.PlayedMS
		}
		if ev.MessageMS != 0 {
			d.MessageMS = ev.MessageMS
		}
		if ev.FramesPlayed != 0 || ev.FramesLost != 0 || ev.FramesLate != 0 {
			d.FramesPlayed, d.FramesLost, d.FramesLate = ev.FramesPlayed, ev.FramesLost, ev.FramesLate
		}
		if ev.HeldBy != "" {
			// Kept once the call began: it says why it began late.
			d.HeldBy = ev.HeldBy
		}
	}
	d.UpdatedAt = receivedAt
	held.store(&d)
	return nil
}

// sentNotScheduled reports whether ann is an emergency or a live call:
// sent while their deliveries are stored, so any report may come before
// its delivery.
func sentNotScheduled(ann string) bool {
	return loaxa.IsEmergencyID(ann) || loaxa.IsLiveCallID(ann)
}

// reportsPlay reports whether an event of type t says the node played, or
// had to play, its occurrence: it started, was cut off, or ended one way
// or another.
func reportsPlay(t protocol.EventType) bool {
	switch t {
	case protocol.EventStarted, protocol.EventSuspended, protocol.EventCompleted,
		protocol.EventFailed, protocol.EventPreempted, protocol.EventMissed:
		return true
	}
	return false
}

// markContentReady records in d that the node has the content, on a
// content-ready event or on the start of the play (which proves it, unless
// the play began with its chime while the content was still to come); it
// reports whether the event was content-ready, which moves nothing else.
func markContentReady(d *loaxa.Delivery, ev protocol.Event) bool {
	proves := ev.Type == protocol.EventContentReady || ev.Type == protocol.EventStarted && !ev.ContentPending
	if proves && !d.ContentReady {
		d.ContentReady, d.ContentReadyAt = true, ev.At
	}
	return ev.Type == protocol.EventContentReady
}

// maxMergeNodes is the largest set of nodes whose per-node indexes
// FindEvents merges; a wider Within scans the time index instead. A
// commune's 20–30 nodes merge cheaply however many other events the
// province has; a province's thousands match most events anyway.
const maxMergeNodes = 256

// FindEvents returns events sorted by time (At), oldest first, or newest
// first with f.Newest (the limit then keeps the newest). From is
// inclusive and To exclusive; a zero bound is open. Limit 0 means
// DefaultEventLimit, and no more than MaxEventLimit are returned.
//
// With Node, or a Within that holds at most maxMergeNodes nodes, it merges
// those nodes' indexes, reading only their events; otherwise it scans the
// time index and skips other nodes' events by key. Within keeps events of
// nodes in the subtree that were recorded there.
func (s *EventService) FindEvents(ctx context.Context, f loaxa.EventFilter) ([]*loaxa.Event, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, loaxa.Errorf(loaxa.EInvalid, "The time range is empty: 'from' (%s) must be before 'to' (%s).", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	limit = min(limit, MaxEventLimit)

	var out []*loaxa.Event
	err := s.db.view(func(tx *bbolt.Tx) error {
		q := eventQuery{f: f, limit: limit, events: tx.Bucket(bucketEvents)}
		if !f.To.IsZero() {
			q.endMS = msKey(f.To)
		}
		if !f.From.IsZero() {
			q.fromMS = msKey(f.From)
		}
		var nodes []string // the nodes to merge; nil: scan the time index
		if f.Within != "" {
			var err error
			if q.areas, err = subtreeSet(tx, f.Within); err != nil {
				return err
			}
			q.nodes = nodesIn(tx, q.areas)
			if len(q.nodes) <= maxMergeNodes {
				nodes = slices.Sorted(maps.Keys(q.nodes))
			}
		}
		if f.Node != "" {
			if tx.Bucket(bucketNodes).Get([]byte(f.Node)) == nil {
				return nodeNotFound(f.Node)
			}
			nodes = []string{f.Node}
			if q.nodes != nil && !q.nodes[f.Node] {
				nodes = nil
			}
			if nodes == nil {
				return nil // the node is outside Within
			}
		}
		var err error
		if nodes != nil {
			err = q.merge(tx.Bucket(bucketNodeEvents), nodes)
		} else {
			err = q.scan()
		}
		out = q.out
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	return out, nil
}

// eventQuery is one FindEvents run inside a read transaction.
type eventQuery struct {
	f      loaxa.EventFilter
	limit  int
	endMS  []byte          // msKey(f.To), nil if open
	fromMS []byte          // msKey(f.From), nil if open
	areas  map[string]bool // the Within subtree, nil if none
	nodes  map[string]bool // the nodes in it, nil if none
	events *bbolt.Bucket
	out    []*loaxa.Event
}

// startKey returns the first key of the range under prefix p.
func (q *eventQuery) startKey(p []byte) []byte {
	if q.f.From.IsZero() {
		return p
	}
	return append(bytes.Clone(p), msKey(q.f.From)...)
}

// last positions c at the last key of the range under prefix p (the
// whole time index if p is nil): the newest event before the range's end.
func (q *eventQuery) last(c *bbolt.Cursor, p []byte) (k, v []byte) {
	var past []byte // the first key after the range
	switch {
	case q.endMS != nil:
		past = append(bytes.Clone(p), u64(binary.BigEndian.Uint64(q.endMS)+1)...)
	case p != nil:
		// p ends with the separator 0; the next byte value ends the prefix.
		past = append(bytes.Clone(p[:len(p)-1]), 1)
	}
	if past == nil {
		return c.Last()
	}
	if k, _ = c.Seek(past); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// passed reports whether millisecond ms lies past the range in the
// direction of the query: after its end, or before its start when newest
// first.
func (q *eventQuery) passed(ms []byte) bool {
	if q.f.Newest {
		return q.fromMS != nil && bytes.Compare(ms, q.fromMS) < 0
	}
	return q.endMS != nil && bytes.Compare(ms, q.endMS) > 0
}

// visit takes the event at key k, whose key says it is at millisecond ms,
// and reports whether to go on. Keys order by millisecond only, so the
// exact bounds are checked on At.
func (q *eventQuery) visit(ms, k, v []byte) (bool, error) {
	if q.passed(ms) {
		return false, nil
	}
	var e loaxa.Event
	if err := json.Unmarshal(v, &e); err != nil {
		return false, fmt.Errorf("decode event %q: %w", k, err)
	}
	if e.At.Before(q.f.From) || !q.f.To.IsZero() && !e.At.Before(q.f.To) || q.areas != nil && !q.areas[e.Area] ||
		len(q.f.Types) > 0 && !slices.Contains(q.f.Types, e.Type) {
		return true, nil
	}
	q.out = append(q.out, &e)
	return len(q.out) < q.limit, nil
}

// scan reads the time index, skipping by key the events of nodes outside
// q.nodes.
func (q *eventQuery) scan() error {
	c := q.events.Cursor()
	k, v := c.Seek(q.startKey(nil))
	next := c.Next
	if q.f.Newest {
		k, v = q.last(c, nil)
		next = c.Prev
	}
	for ; k != nil; k, v = next() {
		if q.nodes != nil {
			node, _, _ := bytes.Cut(k[8:], []byte{0})
			if !q.nodes[string(node)] {
				if q.passed(k[:8]) {
					return nil
				}
				continue
			}
		}
		if more, err := q.visit(k[:8], k, v); err != nil || !more {
			return err
		}
	}
	return nil
}

// merge reads the by-node index of each node and merges them into the
// time index's order: millisecond, then node, then epoch and sequence
// (all reversed when newest first).
func (q *eventQuery) merge(index *bbolt.Bucket, nodes []string) error {
	type head struct {
		c    *bbolt.Cursor
		p    []byte // node \x00
		k, v []byte
	}
	heads := make([]*head, 0, len(nodes))
	for _, node := range nodes {
		h := &head{c: index.Cursor(), p: prefix(node)}
		if q.f.Newest {
			h.k, h.v = q.last(h.c, h.p)
		} else {
			h.k, h.v = h.c.Seek(q.startKey(h.p))
		}
		if h.k != nil && bytes.HasPrefix(h.k, h.p) {
			heads = append(heads, h)
		}
	}
	for len(heads) > 0 {
		// nodes is sorted, so on equal milliseconds the earlier head is
		// the earlier node (the later one when newest first); a linear
		// pick is cheap for maxMergeNodes.
		best := 0
		for i, h := range heads[1:] {
			b := heads[best]
			c := bytes.Compare(h.k[len(h.p):len(h.p)+8], b.k[len(b.p):len(b.p)+8])
			if c < 0 && !q.f.Newest || c >= 0 && q.f.Newest {
				best = i + 1
			}
		}
		h := heads[best]
		key := h.v
		v := q.events.Get(key)
		if v == nil {
			return fmt.Errorf("event index %q points to missing %q", h.k, key)
		}
		if more, err := q.visit(h.k[len(h.p):len(h.p)+8], key, v); err != nil || !more {
			return err
		}
		if q.f.Newest {
			h.k, h.v = h.c.Prev()
		} else {
			h.k, h.v = h.c.Next()
		}
		if h.k == nil || !bytes.HasPrefix(h.k, h.p) {
			heads = slices.Delete(heads, best, best+1)
		}
	}
	return nil
}

// putEvent stores e at key.
func putEvent(tx *bbolt.Tx, key []byte, e *loaxa.Event) error {
	raw, err := encodeEvent(e)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := tx.Bucket(bucketEvents).Put(key, raw); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}
