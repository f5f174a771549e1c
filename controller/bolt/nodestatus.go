package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// A node's status (loaxa.NodeStatus) is what the node last reported: 2–3
// state messages per emergency round, a heartbeat a minute, the last play
// of every completed event. Rewriting the node's whole record (1–2 KB of
// JSON, one dirty page) for each of them was the store's biggest cost at
// thousands of nodes. So the status lives in memory (nodeTable), where
// UpdateNodeStatus changes it without a transaction, and is written to the
// node records in batches: every changed node's status in one transaction
// every StatusInterval, before a backup reads the store (Snapshot), and on
// Close. Every reader of a node puts the status from memory over the one
// decoded from its record (DB.overlay), so nobody sees an older status than
// the newest.
//
// A crash loses at most the last interval of status changes. That is soft
// state: a node re-publishes its retained state message when it
// reconnects, and its play events, whose last play is part of the status,
// are stored at once by RecordEvents.
//
// The table also keeps each node's credential state, so that the check of
// every node message (NodeCredentials) copies nothing, and its area (a
// move changes it with the record, UpdateNodePlace), so that the report
// of an emergency to thousands of nodes (NodePresence) decodes no node
// record.

// DefaultStatusInterval is how often changed node statuses are written by
// default. Five seconds turn the 2–3 status changes of every node in an
// emergency round into one write per node, yet lose little on a crash.
const DefaultStatusInterval = 5 * time.Second

// nodeTable is every node's status and credential state, loaded at Open.
type nodeTable struct {
	mu      sync.RWMutex // guards m and closed
	m       map[string]*nodeEntry
	closed  bool
	credMu  sync.Mutex // serialises writes of credentials with their copy here
	flushMu sync.Mutex // one flush at a time: an older status never lands after a newer one

	failures atomic.Uint64 // flushes that failed
}

// nodeEntry is one node in memory.
type nodeEntry struct {
	mu          sync.Mutex
	status      loaxa.NodeStatus
	credentials string
	area        string    // changed by UpdateNodePlace, under mu
	createdAt   time.Time // set at creation, never changed
	enrolledAt  time.Time // zero while the node waits for its code
	movedAt     time.Time // its last move to another area, under mu
	gen         uint64    // counts status changes
	flushed     uint64    // the gen last written to the store
}

// load fills the table from the node records.
func (t *nodeTable) load(tx *bbolt.Tx) error {
	m := make(map[string]*nodeEntry)
	err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var rec struct {
			Area        string           `json:"area"`
			Credentials string           `json:"credentials"`
			CreatedAt   time.Time        `json:"created_at"`
			EnrolledAt  time.Time        `json:"enrolled_at"`
			MovedAt     time.Time        `json:"moved_at"`
			Status      loaxa.NodeStatus `json:"status"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode node %q: %w", k, err)
		}
		if rec.Credentials == "" {
			rec.Credentials = loaxa.CredentialsActive // as decodeNode
		}
		if rec.EnrolledAt.IsZero() && rec.Credentials != loaxa.CredentialsPending {
			rec.EnrolledAt = rec.CreatedAt // as decodeNode
		}
		m[string(k)] = &nodeEntry{status: rec.Status, credentials: rec.Credentials, area: rec.Area, createdAt: rec.CreatedAt, enrolledAt: rec.EnrolledAt, movedAt: rec.MovedAt}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load node statuses: %w", err)
	}
	t.mu.Lock()
	t.m, t.closed = m, false
	t.mu.Unlock()
	return nil
}

// entry returns node id's entry, or nil if the node does not exist.
func (t *nodeTable) entry(id string) *nodeEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[id]
}

// put adds or replaces the entry of n, after n was stored.
func (t *nodeTable) put(n *loaxa.Node) {
	e := &nodeEntry{status: cloneStatus(&n.Status), credentials: n.Credentials, area: n.Area, createdAt: n.CreatedAt, enrolledAt: n.EnrolledAt, movedAt: n.MovedAt}
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]*nodeEntry)
	}
	t.m[n.ID] = e
	t.mu.Unlock()
}

// setCredentials records the credential state of node n after it was
// stored, and its enrolment (its first secret may be this one).
func (t *nodeTable) setCredentials(n *loaxa.Node) {
	if e := t.entry(n.ID); e != nil {
		e.mu.Lock()
		e.credentials, e.enrolledAt = n.Credentials, n.EnrolledAt
		e.mu.Unlock()
	}
}

// setArea records the area of node n after it was stored (a move).
func (t *nodeTable) setArea(n *loaxa.Node) {
	if e := t.entry(n.ID); e != nil {
		e.mu.Lock()
		e.area, e.movedAt = n.Area, n.MovedAt
		e.mu.Unlock()
	}
}

// forget drops node id, after its record was deleted, so that no later
// status change or flush brings it back.
func (t *nodeTable) forget(id string, e *nodeEntry) {
	t.mu.Lock()
	if t.m[id] == e {
		delete(t.m, id)
	}
	t.mu.Unlock()
}

// nodeArea returns the area of node id, which must exist in tx. Every
// event batch records it with its events; decoding the node's record for
// it (1–2 KB, rewritten with each status flush, so seldom remembered by
// decodeNode) was a quarter of the store's work for an event batch
// (BenchmarkRecordEventsRound). The table's copy is the record's (a move
// sets both, UpdateNodePlace); only a node whose creation is committed
// and not yet in the table is read from its record.
func (db *DB) nodeArea(tx *bbolt.Tx, id string) (string, error) {
	if tx.Bucket(bucketNodes).Get([]byte(id)) == nil {
		return "", nodeNotFound(id)
	}
	if e := db.nodes.entry(id); e != nil {
		e.mu.Lock()
		area := e.area
		e.mu.Unlock()
		return area, nil
	}
	n, err := getNode(tx, id)
	if err != nil {
		return "", err
	}
	return n.Area, nil
}

// overlay puts the newest status of n (a copy) over the one decoded from
// its record.
func (db *DB) overlay(n *loaxa.Node) {
	if e := db.nodes.entry(n.ID); e != nil {
		e.mu.Lock()
		n.Status = cloneStatus(&e.status)
		e.mu.Unlock()
	}
}

// updateStatus applies fn to node id's status in memory. It holds the
// table's read lock throughout, so that Close, which takes the write lock
// before its last flush, cannot slip in between the look-up and the change
// and lose it.
func (db *DB) updateStatus(id string, fn func(*loaxa.NodeStatus)) error {
	t := &db.nodes
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed || t.m == nil {
		return errClosed
	}
	e := t.m[id]
	if e == nil {
		return nodeNotFound(id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(&e.status)
	e.gen++
	return nil
}

// credentials returns node id's credential state from memory.
func (db *DB) credentials(id string) (string, error) {
	t := &db.nodes
	t.mu.RLock()
	e, closed := t.m[id], t.closed || t.m == nil
	t.mu.RUnlock()
	if closed {
		return "", errClosed
	}
	if e == nil {
		return "", nodeNotFound(id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.credentials, nil
}

// updateCredentials runs fn, a write of node credentials, in a write
// transaction and then apply, which copies them into the table, so that
// two such writes reach the table in the order they were committed. apply
// runs only if the transaction committed.
func (db *DB) updateCredentials(fn func(*bbolt.Tx) error, apply func()) error {
	db.nodes.credMu.Lock()
	defer db.nodes.credMu.Unlock()
	if err := db.update(fn); err != nil {
		return err
	}
	if db.credentialsCommitted != nil {
		db.credentialsCommitted()
	}
	apply()
	return nil
}

// UnflushedStatuses returns how many nodes have a status change in memory
// that is not in the store yet, for metrics.
func (db *DB) UnflushedStatuses() int {
	t := &db.nodes
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, e := range t.m {
		e.mu.Lock()
		if e.gen != e.flushed {
			n++
		}
		e.mu.Unlock()
	}
	return n
}

// StatusFlushFailures returns how many writes of node statuses failed since
// Open, for metrics. A failed write is retried at the next interval.
func (db *DB) StatusFlushFailures() uint64 { return db.nodes.failures.Load() }

// pendingStatus is one node's status as a flush writes it.
type pendingStatus struct {
	id     string
	e      *nodeEntry
	gen    uint64
	status loaxa.NodeStatus
	// The record written and the node it encodes, for the node cache.
	raw  []byte
	node *loaxa.Node
}

// DefaultStatusChunk is the most node statuses one transaction of a flush
// writes by default. The store has one writer at a time, and every other
// write waits for the commit of the one under way: a flush of the
// statuses of a district's clusters reconnecting together (after a power
// cut, on typhoon day) wrote them all in one transaction, and the record
// of an emergency sent meanwhile waited for it (96 and 129 ms in two
// 10,000-node rounds, 9–23 ms otherwise). A write that comes during a
// flush now waits for one chunk's transaction: 8–13 ms instead of 58–68
// for a flush of 10,000 (BenchmarkWriteDuringFlush; BENCHMARKS.md, "Status
// flushes in chunks"). Each chunk costs a commit of its own: the flush of
// 10,000 takes 162–213 ms instead of 73–89.
const DefaultStatusChunk = 500

// flushStatus writes every changed status to the store, DB.StatusChunk
// nodes a transaction. On failure the changes not written stay in memory
// for the next flush; the error is counted (StatusFlushFailures) and
// returned.
//
// Each node's record is decoded, its status replaced and encoded again.
// The decoding was half of a flush's work (BenchmarkFlushStatus): the
// record's bytes had changed at the flush before, so the node cache never
// had them. The flush now leaves in the cache the bytes it wrote with the
// node it encoded (rememberWritten), so the next flush, and every other
// reader until the node is written again, copies it instead.
func (db *DB) flushStatus() error {
	t := &db.nodes
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	var ps []pendingStatus
	t.mu.RLock()
	for id, e := range t.m {
		e.mu.Lock()
		if e.gen != e.flushed {
			ps = append(ps, pendingStatus{id: id, e: e, gen: e.gen, status: cloneStatus(&e.status)})
		}
		e.mu.Unlock()
	}
	t.mu.RUnlock()
	chunk := db.StatusChunk
	if chunk <= 0 {
		chunk = DefaultStatusChunk
	}
	var errs []error
	for i := 0; i < len(ps); i += chunk {
		part := ps[i:min(i+chunk, len(ps))]
		failed, err := db.writeStatuses(part)
		if err != nil {
			t.failures.Add(1)
			// The nodes that failed alone in the chunks before go with it.
			return fmt.Errorf("write status of %d nodes (%d written before): %w", len(ps)-i, i, errors.Join(append([]error{err}, errs...)...))
		}
		errs = append(errs, failed...)
	}
	if len(errs) > 0 {
		t.failures.Add(1)
		return fmt.Errorf("write status of %d of %d nodes: %w", len(errs), len(ps), errors.Join(errs...))
	}
	return nil
}

// writeStatuses writes ps in one transaction and notes them written. It
// returns the errors of the nodes it could not write, which stay changed,
// and the transaction's error, if it failed (then none is written).
func (db *DB) writeStatuses(ps []pendingStatus) (failed []error, err error) {
	t := &db.nodes
	written := make([]bool, len(ps))
	var gone []int
	err = db.update(func(tx *bbolt.Tx) error {
		if db.statusFault != nil {
			if err := db.statusFault(tx); err != nil {
				return err
			}
		}
		clear(written)
		gone, failed = gone[:0], failed[:0]
		nodes := tx.Bucket(bucketNodes)
		for i := range ps {
			p := &ps[i]
			key := []byte(p.id)
			v := nodes.Get(key)
			if v == nil {
				gone = append(gone, i) // deleted meanwhile: do not bring it back
				continue
			}
			n, err := nodeToFlush(key, v, p.status)
			if err != nil {
				failed = append(failed, err) // stays changed; the others are written
				continue
			}
			raw, err := encodeNodeRecord(nodeRecord{n, n.SecretHash, n.BrokerHash})
			if err != nil {
				failed = append(failed, fmt.Errorf("node %s: encode: %w", p.id, err))
				continue
			}
			if err := nodes.Put(key, raw); err != nil {
				failed = append(failed, fmt.Errorf("node %s: put: %w", p.id, err))
				continue
			}
			p.raw, p.node = raw, n
			written[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if !written[i] {
			continue
		}
		p := &ps[i]
		p.e.mu.Lock()
		if p.e.flushed < p.gen {
			p.e.flushed = p.gen
		}
		p.e.mu.Unlock()
		rememberWritten([]byte(p.id), p.raw, p.node)
	}
	for _, i := range gone {
		t.forget(ps[i].id, ps[i].e)
	}
	return failed, nil
}

// nodeToFlush returns the node stored as v with status st in place of the
// record's, for the flush to encode and then leave in the node cache
// (rememberWritten). It copies nothing but the node's top level: the
// flush changes nothing in it, and the node cache's nodes are never
// changed (callers of decodeNode get deep copies), so the new node may
// share its secret hash and settings with the cached one it comes from.
// Deep-copying that node (decodeNode's cloneNode), status and all, only
// to replace the status was 15 % of a flush (BenchmarkFlushStatus). A
// record not in the cache is decoded and not remembered: the flush
// remembers the node it writes.
func nodeToFlush(key, v []byte, st loaxa.NodeStatus) (*loaxa.Node, error) {
	var n *loaxa.Node
	if c := cachedShared(key, v); c != nil {
		cp := *c
		n = &cp
	} else {
		var err error
		if n, err = unmarshalNode(key, v); err != nil {
			return nil, err
		}
	}
	n.Status = st
	return n, nil
}

// MaxStatusHold is the longest DB.StatusHold keeps a due status flush
// waiting; statusHoldPoll how often the flush asks it again.
const (
	MaxStatusHold  = 10 * time.Second
	statusHoldPoll = 50 * time.Millisecond
)

// runFlusher flushes every interval until stop is closed. A flush that is
// due while DB.StatusHold says so waits, at most MaxStatusHold: at 10,000
// nodes one took up to 0.1 s of the controller's CPU when it fell into an
// alert's fan-out, the second before the nodes are to start it, when the
// broker's writes need the cores (BENCHMARKS.md, "The plan stored after
// the fan-out"). The statuses are written a moment later; Snapshot
// and Close do not wait.
func (db *DB) runFlusher(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if !db.awaitStatusHold(stop) {
				return
			}
			if err := db.flushStatus(); err != nil {
				db.Logger.Error("node status not written; retrying at the next interval",
					"err", err, "unflushed", db.UnflushedStatuses(), "interval", interval)
			}
		}
	}
}

// awaitStatusHold waits while DB.StatusHold says so, at most
// MaxStatusHold; false if stop was closed meanwhile.
func (db *DB) awaitStatusHold(stop <-chan struct{}) bool {
	if db.StatusHold == nil || !db.StatusHold() {
		return true
	}
	limit := time.NewTimer(MaxStatusHold)
	defer limit.Stop()
	poll := time.NewTicker(statusHoldPoll)
	defer poll.Stop()
	for {
		select {
		case <-stop:
			return false
		case <-limit.C:
			return true
		case <-poll.C:
			if !db.StatusHold() {
				return true
			}
		}
	}
}
