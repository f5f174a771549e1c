package store

import (
	"maps"
	"slices"
	"sync"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// Memory is a Store that keeps everything in memory, for simulated fleets
// where thousands of agents share one process and a database file each
// would exhaust file descriptors. It survives an agent restart (hand the
// same Memory to the new agent) but not a process restart. It behaves like
// Bolt in every other way; both run the same test suite.
type Memory struct {
	mu       sync.Mutex
	epoch    string
	desired  []byte // JSON, so callers never share the stored value
	progress map[string]agent.Progress
	events   []protocol.Event // Acked+1 … Last, in order
	out      agent.Outbox
	replay   map[replayKey]protocol.ReplayEntry
	keys     []protocol.PublicKey
	alerts   []byte // JSON of agent.HeldAlerts
	floor    time.Time
	// salvaged holds events of earlier outboxes by epoch, in sequence
	// order (salvage.go).
	salvaged map[string][]protocol.Event
}

type replayKey struct {
	kid string
	seq uint64
}

var _ agent.Store = (*Memory)(nil)

// NewMemory returns an empty store with a fresh epoch.
func NewMemory() *Memory {
	return &Memory{
		epoch:    newEpoch(),
		progress: make(map[string]agent.Progress),
		replay:   make(map[replayKey]protocol.ReplayEntry),
	}
}

// Epoch returns the outbox epoch.
func (m *Memory) Epoch() string { return m.epoch }

// Desired returns the stored desired state or nil.
func (m *Memory) Desired() (*protocol.DesiredState, error) {
	m.mu.Lock()
	raw := m.desired
	m.mu.Unlock()
	return decodeDesired(raw)
}

// SetDesired replaces the desired state.
func (m *Memory) SetDesired(d *protocol.DesiredState) error {
	raw, err := encodeDesired(d)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.desired = raw
	m.mu.Unlock()
	return nil
}

// Progress returns a copy of every progress mark.
func (m *Memory) Progress() (map[string]agent.Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.progress), nil
}

// Append adds events and marks atomically.
func (m *Memory) Append(events []protocol.Event, marks []agent.Progress) ([]protocol.Event, error) {
	if err := checkMarks(marks); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]protocol.Event, len(events))
	for i, e := range events {
		m.out.Last++
		e.Seq = m.out.Last
		out[i] = e
	}
	m.events = append(m.events, out...)
	for _, p := range marks {
		m.progress[p.Occurrence] = p
	}
	return slices.Clone(out), nil
}

// PruneProgress forgets marks of occurrences outside keep that started
// before before.
func (m *Memory) PruneProgress(keep map[string]bool, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range m.progress {
		if !keep[id] && p.Start.Before(before) {
			delete(m.progress, id)
		}
	}
	return nil
}

// Outbox returns the outbox range.
func (m *Memory) Outbox() (agent.Outbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out, nil
}

// Events returns up to limit events after seq after.
func (m *Memory) Events(after uint64, limit int) ([]protocol.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from := 0
	if after > m.out.Acked {
		from = int(min(after-m.out.Acked, uint64(len(m.events))))
	}
	to := min(from+max(limit, 0), len(m.events))
	return slices.Clone(m.events[from:to]), nil
}

// Ack drops events up to seq.
func (m *Memory) Ack(epoch string, seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch != m.epoch {
		return m.ackSalvaged(epoch, seq)
	}
	seq = min(seq, m.out.Last)
	if seq <= m.out.Acked {
		return nil
	}
	n := int(seq - m.out.Acked)
	m.events = slices.Delete(m.events, 0, n)
	m.out.Acked = seq
	if len(m.events) == 0 {
		m.events = nil // let a long-lived fleet agent give the backing array back
	}
	return nil
}

// ReplayEntries returns unexpired replay entries.
func (m *Memory) ReplayEntries(now time.Time) ([]protocol.ReplayEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneReplay(now)
	out := make([]protocol.ReplayEntry, 0, len(m.replay))
	for _, e := range m.replay {
		out = append(out, e)
	}
	sortReplay(out)
	return out, nil
}

// AddReplay remembers e and forgets expired entries.
func (m *Memory) AddReplay(e protocol.ReplayEntry, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneReplay(now)
	if e.Expires > now.UnixMilli() {
		m.replay[replayKey{e.KeyID, e.Seq}] = e
	}
	return nil
}

func (m *Memory) pruneReplay(now time.Time) {
	ms := now.UnixMilli()
	for k, e := range m.replay {
		if e.Expires <= ms {
			delete(m.replay, k)
		}
	}
}

// Keys returns the learnt controller keys, or nil.
func (m *Memory) Keys() ([]protocol.PublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.keys), nil
}

// SetKeys replaces the learnt controller keys.
func (m *Memory) SetKeys(keys []protocol.PublicKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = slices.Clone(keys)
	return nil
}

// HeldAlerts returns the stored alerts.
func (m *Memory) HeldAlerts() (agent.HeldAlerts, error) {
	m.mu.Lock()
	raw := m.alerts
	m.mu.Unlock()
	return decodeAlerts(raw)
}

// SetHeldAlerts replaces the stored alerts.
func (m *Memory) SetHeldAlerts(h agent.HeldAlerts) error {
	raw, err := encodeAlerts(h)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.alerts = raw
	m.mu.Unlock()
	return nil
}

// ClockFloor returns the stored clock floor, or zero.
func (m *Memory) ClockFloor() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.floor, nil
}

// SetClockFloor replaces the clock floor.
func (m *Memory) SetClockFloor(t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.floor = t.UTC().Round(0)
	return nil
}
