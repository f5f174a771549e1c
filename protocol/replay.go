package protocol

import (
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
}

type replayKey struct {
	kid string
	seq uint64
}

// NewReplayGuard returns a guard that already remembers entries, typically
// loaded from the receiver's durable store after a restart.
func NewReplayGuard(entries []ReplayEntry) *ReplayGuard {
	g := &ReplayGuard{seen: make(map[replayKey]int64, len(entries))}
	for _, e := range entries {
		g.seen[replayKey{e.KeyID, e.Seq}] = e.Expires
	}
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
	ms := now.UnixMilli()
	for key, exp := range g.seen {
		if exp <= ms {
			delete(g.seen, key)
		}
	}
	if _, dup := g.seen[k]; dup {
		return ReplayEntry{}, fmt.Errorf("%w: %s seq %d from key %s", ErrReplay, env.Type, env.Seq, env.KeyID)
	}
	g.seen[k] = env.Expires
	return ReplayEntry{KeyID: env.KeyID, Seq: env.Seq, Expires: env.Expires}, nil
}

// Len returns how many entries the guard remembers.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
