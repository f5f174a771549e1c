package protocol

import (
	"container/heap"
	"fmt"
	"sync"
	"time"
)

// ReplayEntry is one accepted (signer key, sequence) pair, remembered until
// the message it came from expires. After that the expiry check alone
// refuses a copy, so the entry can be forgotten.
type ReplayEntry struct {
	KeyID   string `json:"kid"`
	Seq     uint64 `json:"seq"`
	Expires int64  `json:"exp"` // Unix ms
}

// ReplayGuard refuses a second copy of any signed message while that message
// is still valid. Unlike a "sequence must grow" rule it tolerates the
// reordering MQTT allows between topics (an area command may overtake a node
// command), and its memory is bounded by the number of messages valid at once.
// It is safe for concurrent use.
type ReplayGuard struct {
	mu   sync.Mutex
	seen map[replayKey]int64
	// byExpiry holds the entries of seen, earliest expiry first, so that
	// forgetting touches only what has expired instead of scanning every
	// entry on every Check.
	byExpiry expiryHeap
}

type replayKey struct {
	kid string
	seq uint64
}

// NewReplayGuard returns a guard that already remembers entries, typically
// loaded from the receiver's durable store after a restart. If a pair
// appears more than once, the latest expiry counts.
func NewReplayGuard(entries []ReplayEntry) *ReplayGuard {
	g := &ReplayGuard{
		seen:     make(map[replayKey]int64, len(entries)),
		byExpiry: make(expiryHeap, 0, len(entries)),
	}
	for _, e := range entries {
		k := replayKey{e.KeyID, e.Seq}
		if exp, ok := g.seen[k]; ok && exp >= e.Expires {
			continue
		}
		g.seen[k] = e.Expires
		g.byExpiry = append(g.byExpiry, expiring{k, e.Expires})
	}
	heap.Init(&g.byExpiry)
	return g
}

// Check records env as seen and returns nil, or returns ErrReplay if an
// envelope with the same key and sequence was accepted before. It also
// forgets entries that have expired by now. Call it only for envelopes that
// Verifier.Open accepted; the returned entry is what to persist.
func (g *ReplayGuard) Check(env *Envelope, now time.Time) (ReplayEntry, error) {
	k := replayKey{env.KeyID, env.Seq}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forget(now.UnixMilli())
	if _, dup := g.seen[k]; dup {
		return ReplayEntry{}, fmt.Errorf("%w: %s seq %d from key %s", ErrReplay, env.Type, env.Seq, env.KeyID)
	}
	g.seen[k] = env.Expires
	heap.Push(&g.byExpiry, expiring{k, env.Expires})
	return ReplayEntry{KeyID: env.KeyID, Seq: env.Seq, Expires: env.Expires}, nil
}

// forget drops the entries that expired at or before ms, the same instant
// from which Verifier.Open refuses their messages as expired.
func (g *ReplayGuard) forget(ms int64) {
	for len(g.byExpiry) > 0 && g.byExpiry[0].exp <= ms {
		e := heap.Pop(&g.byExpiry).(expiring)
		// A pair loaded twice leaves a stale heap item behind its later one.
		if exp, ok := g.seen[e.key]; ok && exp == e.exp {
			delete(g.seen, e.key)
		}
	}
}

// Len returns how many entries the guard remembers.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

type expiring struct {
	key replayKey
	exp int64
}

// expiryHeap is a min-heap of entries by expiry (container/heap).
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
