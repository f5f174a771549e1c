package store

import (
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/protocol"
)

// MemoryFrom copies what the agent needs of the store file at path into a
// new Memory store, reading the file only: its desired state, learnt
// keys, held alerts, progress marks and unexpired replay guard. A node
// whose SD card takes no writes any more runs on it (the node program
// does), so that it keeps its schedule without a link, plays again an
// alert it held, does not play again what it played, and refuses a
// message it already took.
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
	b := &Bolt{db: db, path: path}
	m = NewMemory()
	desired, err := b.Desired()
	if err != nil {
		return nil, err
	}
	if desired != nil {
		if err := m.SetDesired(desired); err != nil {
			return nil, err
		}
	}
	keys, err := b.Keys()
	if err != nil {
		return nil, err
	}
	m.keys = keys
	alerts, err := b.HeldAlerts()
	if err != nil {
		return nil, err
	}
	if err := m.SetHeldAlerts(alerts); err != nil {
		return nil, err
	}
	if m.progress, err = b.Progress(); err != nil {
		return nil, err
	}
	replay, err := b.ReplayEntries(now)
	if err != nil {
		return nil, err
	}
	for _, e := range replay {
		m.replay[replayKey{e.KeyID, e.Seq}] = e
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
