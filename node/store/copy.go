package store

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// MemoryFrom copies what the agent needs of the store file at path into a
// new Memory store, reading the file only: its desired state, learnt
// keys, clock floor, held alerts, progress marks and unexpired replay
// guard. A node whose SD card takes no writes any more runs on it (the
// node program does), so that it keeps its schedule without a link, plays
// again an alert it held, does not play again what it played, and refuses
// a message it already took.
//
// The Memory has an epoch of its own: continuing the file's numbers from
// memory would reuse them for other events after the next restart. The
// events the file had not had acknowledged are kept as salvaged events
// under the file's epoch and numbers (salvage.go), as are those it still
// kept of earlier outboxes, so that the agent sends them and the
// controller drops those it already stored. After a restart they are
// copied and sent again, and dropped again.
//
// A file bbolt cannot read, or that faults or panics in it, is an error
// and nothing is copied.
func MemoryFrom(path string, now time.Time) (m *Memory, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%w %s: %v", errCorrupt, path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read node store %s: %w", path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketProgress, bucketReplay} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("no %s bucket", name)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read node store %s: %w", path, err)
	}
	m = NewMemory()
	if err := m.copyState(&Bolt{db: db, path: path}, now); err != nil {
		return nil, err
	}
	salvaged := map[string][]protocol.Event{}
	if err := db.View(func(tx *bolt.Tx) error {
		return salvageEvents(tx, func(epoch string, e protocol.Event) error {
			salvaged[epoch] = append(salvaged[epoch], e)
			return nil
		})
	}); err != nil {
		return nil, fmt.Errorf("read the unsent events of node store %s: %w", path, err)
	}
	for epoch, es := range salvaged {
		if err := m.AddSalvaged(epoch, es); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MemoryOf copies into a new Memory what the agent needs of the store src,
// as MemoryFrom does of a file, through the Store interface: for a
// simulated box whose card goes read-only while its store stays open in
// the fleet's process. Its unacknowledged events, and the first earlier
// outbox it keeps, come along as salvaged events.
func MemoryOf(src agent.Store, now time.Time) (*Memory, error) {
	m := NewMemory()
	if err := m.copyState(src, now); err != nil {
		return nil, err
	}
	out, err := src.Outbox()
	if err != nil {
		return nil, err
	}
	events, err := src.Events(out.Acked, MaxSalvaged)
	if err != nil {
		return nil, err
	}
	if len(events) > 0 {
		if err := m.AddSalvaged(src.Epoch(), events); err != nil {
			return nil, err
		}
	}
	epoch, earlier, err := src.Salvaged(MaxSalvaged)
	if err != nil {
		return nil, err
	}
	if len(earlier) > 0 {
		if err := m.AddSalvaged(epoch, earlier); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// copyState copies src's desired state, learnt keys, clock floor, held
// alerts, marks and replay guard unexpired at now into m.
func (m *Memory) copyState(src agent.Store, now time.Time) error {
	desired, err := src.Desired()
	if err != nil {
		return err
	}
	if desired != nil {
		if err := m.SetDesired(desired); err != nil {
			return err
		}
	}
	keys, err := src.Keys()
	if err != nil {
		return err
	}
	m.keys = keys
	// A damaged floor is left, as the agent leaves it (floor.go): the
	// board starts on its own clock rather than with nothing of the card.
	if m.floor, err = src.ClockFloor(); err != nil && !errors.Is(err, ErrClockFloorDamaged) {
		return err
	}
	alerts, err := src.HeldAlerts()
	if err != nil {
		return err
	}
	if err := m.SetHeldAlerts(alerts); err != nil {
		return err
	}
	if m.progress, err = src.Progress(); err != nil {
		return err
	}
	replay, err := src.ReplayEntries(now)
	if err != nil {
		return err
	}
	for _, e := range replay {
		m.replay[replayKey{e.KeyID, e.Seq}] = e
	}
	return nil
}
