package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// Events of earlier outboxes. A store set aside as damaged, or a card's
// store the agent cannot write, may still hold events the controller has
// not acknowledged: reports of what the cluster played. They are read
// back (Salvage) and kept in the new store under their old epoch and
// numbers, and the agent sends them as such (protocol.EventBatch.Salvaged):
// the controller stores events by (node, epoch, seq), so those it already
// had are dropped as resends, and none is counted twice.

// bucketSalvaged holds one nested bucket per earlier epoch: big-endian
// seq → protocol.Event JSON.
var bucketSalvaged = []byte("salvaged")

// MaxSalvaged bounds the events read back from one earlier outbox, and
// the marks: a damaged page tree can hold what looks like any number of
// them, and the agent's own outbox rarely holds more than a few thousand
// (a week offline).
const MaxSalvaged = 100_000

// maxEpochLen is the longest outbox epoch the controller takes (its
// maxEpochLen); the node's own are 16 hex digits.
const maxEpochLen = 64

// Found is one thing Salvage read back: an event of an outbox (Epoch and
// Event), the controller keys the node had learnt (Keys), its clock floor
// (Floor), an unexpired entry of the replay guard (Replay), or the mark
// of an occurrence the node had finished (Mark).
type Found struct {
	Epoch  string                `json:"epoch,omitempty"`
	Event  *protocol.Event       `json:"event,omitempty"`
	Keys   []protocol.PublicKey  `json:"keys,omitempty"`
	Floor  *time.Time            `json:"clock_floor,omitempty"`
	Replay *protocol.ReplayEntry `json:"replay,omitempty"`
	Mark   *agent.Progress       `json:"mark,omitempty"`
}

// Salvage reads back from the store file at path, read only, what a new
// store can use of it, and calls emit with each thing found:
//
//   - the events its outbox had not had acknowledged, and those it still
//     kept of earlier outboxes, in sequence order within their epoch.
//     Within an epoch it stops at the first event it cannot read or that
//     does not follow the one before (the controller takes an epoch's
//     events only in order, so nothing after a gap could be stored);
//   - the controller keys it had learnt (protocol.DesiredState.Keys), so
//     that a node whose credentials' key has since been retired by a
//     rotation still trusts the controller. Each key carries its id, a
//     hash of the key, and one whose id does not match is left out: a
//     garbled key cannot become a trusted one;
//   - its clock floor (agent.Store.ClockFloor), so that the board a power
//     cut left with its clock behind, the one whose store it damaged,
//     still refuses messages that expired before the last time the
//     controller proved. A floor that does not read as a time is left;
//   - the entries of its replay guard that have not expired by now, so
//     that a message captured before is still refused;
//   - the marks of the occurrences it had finished (PhaseDone), so that a
//     bulletin it played is not played again within its late grace, nor
//     an alert it finished sounded again. Marks of an occurrence it had
//     not finished are left: an alert the node marked started but lost
//     with the store must be taken again when the controller resends it.
//
// Each kind stops after MaxSalvaged. Values that do not decode, or whose
// key does not match, are skipped.
//
// The file is meant to be damaged: a panic or a memory fault in bbolt is
// an error, returned with what was emitted before it. A page tree that
// loops is not stopped here; the node program runs Salvage in a process
// of its own with a time and memory limit, as it does Check, and keeps
// what came before the limit.
func Salvage(path string, now time.Time, emit func(Found) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w %s: %v", errCorrupt, path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read node store %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if err := salvageEvents(tx, func(epoch string, e protocol.Event) error {
			return emit(Found{Epoch: epoch, Event: &e})
		}); err != nil {
			return err
		}
		if err := salvageKeys(tx, emit); err != nil {
			return err
		}
		if err := salvageFloor(tx, emit); err != nil {
			return err
		}
		if err := salvageReplay(tx, now, emit); err != nil {
			return err
		}
		return salvageMarks(tx, emit)
	})
	if err != nil {
		return fmt.Errorf("salvage node store %s: %w", path, err)
	}
	return nil
}

// salvageEvents emits the events of tx's outbox after the last
// acknowledged one, and those kept of earlier outboxes.
func salvageEvents(tx *bolt.Tx, emit func(epoch string, e protocol.Event) error) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if epoch := meta.Get(keyEpoch); len(epoch) > 0 && len(epoch) <= maxEpochLen {
			if b := tx.Bucket(bucketEvents); b != nil {
				if err := salvageRun(b, string(epoch), getUint(meta, keyAcked)+1, emit); err != nil {
					return err
				}
			}
		}
	}
	sb := tx.Bucket(bucketSalvaged)
	if sb == nil {
		return nil
	}
	return sb.ForEachBucket(func(k []byte) error {
		b := sb.Bucket(k)
		first, _ := b.Cursor().First()
		if len(first) != 8 || len(k) > maxEpochLen {
			return nil
		}
		return salvageRun(b, string(k), max(binary.BigEndian.Uint64(first), 1), emit)
	})
}

// salvageRun emits the events of epoch in b from sequence from on, as
// long as they follow each other.
func salvageRun(b *bolt.Bucket, epoch string, from uint64, emit func(string, protocol.Event) error) error {
	c := b.Cursor()
	want := from
	for k, v := c.Seek(seqKey(from)); k != nil && want-from < MaxSalvaged; k, v = c.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) != want {
			return nil
		}
		var e protocol.Event
		if json.Unmarshal(v, &e) != nil || e.Seq != want {
			return nil
		}
		if err := emit(epoch, e); err != nil {
			return err
		}
		want++
	}
	return nil
}

// salvageKeys emits the learnt controller keys whose ids match them.
func salvageKeys(tx *bolt.Tx, emit func(Found) error) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil
	}
	var keys []protocol.PublicKey
	if json.Unmarshal(meta.Get(keyKeys), &keys) != nil {
		return nil
	}
	keys = slices.DeleteFunc(keys, func(k protocol.PublicKey) bool { _, err := k.Parse(); return err != nil })
	if len(keys) == 0 {
		return nil
	}
	return emit(Found{Keys: keys})
}

// salvageFloor emits the clock floor, if there is one that reads as a
// time and matches its checksum (floor.go).
func salvageFloor(tx *bolt.Tx, emit func(Found) error) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil
	}
	floor, err := readFloor(meta)
	if err != nil || floor.IsZero() {
		return nil
	}
	return emit(Found{Floor: &floor})
}

// salvageReplay emits the replay guard's entries unexpired at now.
func salvageReplay(tx *bolt.Tx, now time.Time, emit func(Found) error) error {
	b := tx.Bucket(bucketReplay)
	if b == nil {
		return nil
	}
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil && n < MaxSalvaged; k, v = c.Next() {
		var e protocol.ReplayEntry
		if json.Unmarshal(v, &e) != nil || !bytes.Equal(k, replayKeyBytes(e)) || e.Expires <= now.UnixMilli() {
			continue
		}
		n++
		if err := emit(Found{Replay: &e}); err != nil {
			return err
		}
	}
	return nil
}

// salvageMarks emits the marks of the occurrences finished.
func salvageMarks(tx *bolt.Tx, emit func(Found) error) error {
	b := tx.Bucket(bucketProgress)
	if b == nil {
		return nil
	}
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil && n < MaxSalvaged; k, v = c.Next() {
		var p agent.Progress
		if json.Unmarshal(v, &p) != nil || p.Occurrence != string(k) || p.Phase != agent.PhaseDone {
			continue
		}
		n++
		if err := emit(Found{Mark: &p}); err != nil {
			return err
		}
	}
	return nil
}

// Keeper is a store that takes what was read back of a damaged one: Bolt
// and Memory.
type Keeper interface {
	agent.Store
	// AddSalvaged keeps events of the earlier outbox epoch, to be sent as
	// such (Salvaged).
	AddSalvaged(epoch string, events []protocol.Event) error
	// Keep puts all of k into the store, in one step: the events to be
	// sent under their old epochs, the learnt keys, the marks, the replay
	// entries unexpired at now.
	Keep(k *Kept, now time.Time) error
}

var _, _ Keeper = (*Bolt)(nil), (*Memory)(nil)

// Kept gathers what Salvage read back, to put into a new store.
type Kept struct {
	Events map[string][]protocol.Event // by epoch, in sequence order
	Keys   []protocol.PublicKey
	Floor  time.Time // the clock floor, zero if none was read back
	Replay []protocol.ReplayEntry
	Marks  []agent.Progress
}

// Add keeps f. An event that does not follow its epoch's last one is
// refused, and so is anything past MaxSalvaged of its kind: what Salvage
// writes keeps to both, so whatever does not is not trusted.
func (k *Kept) Add(f Found) error {
	switch {
	case f.Event != nil && (f.Epoch == "" || len(f.Epoch) > maxEpochLen || f.Event.Seq == 0):
		// The controller refuses such a batch, and the node would send
		// it again for ever.
		return fmt.Errorf("event %d of epoch %.64q: no epoch, an epoch over %d bytes, or sequence 0", f.Event.Seq, f.Epoch, maxEpochLen)
	case f.Event != nil:
		es := k.Events[f.Epoch]
		if len(es) >= MaxSalvaged || len(es) > 0 && f.Event.Seq != es[len(es)-1].Seq+1 {
			return fmt.Errorf("event %d of epoch %s out of order or past the limit", f.Event.Seq, f.Epoch)
		}
		if k.Events == nil {
			k.Events = map[string][]protocol.Event{}
		}
		k.Events[f.Epoch] = append(es, *f.Event)
	case f.Mark != nil && f.Mark.Occurrence != "" && f.Mark.Phase == agent.PhaseDone && len(k.Marks) < MaxSalvaged:
		k.Marks = append(k.Marks, *f.Mark)
	case f.Replay != nil && f.Replay.KeyID != "" && len(k.Replay) < MaxSalvaged:
		k.Replay = append(k.Replay, *f.Replay)
	case len(f.Keys) > 0 && k.Keys == nil:
		for _, key := range f.Keys {
			if _, err := key.Parse(); err != nil {
				return err
			}
		}
		k.Keys = f.Keys
	case f.Floor != nil && !f.Floor.IsZero() && k.Floor.IsZero():
		k.Floor = *f.Floor
	default:
		return errors.New("neither an event, the learnt keys, the clock floor, a replay entry nor a finished occurrence's mark, or past the limit")
	}
	return nil
}

// Len is how many things k holds.
func (k *Kept) Len() (events, marks, replay int) {
	for _, es := range k.Events {
		events += len(es)
	}
	return events, len(k.Marks), len(k.Replay)
}

// Keep puts all of k into the store in one transaction: one write to the
// card however many replay entries and marks, where a transaction each
// would cost the board's start a sync each. Of k's clock floor and the
// store's own, the newer is kept: each is a time the controller proved.
func (s *Bolt) Keep(k *Kept, now time.Time) error {
	if err := checkMarks(k.Marks); err != nil {
		return err
	}
	var keys []byte
	if len(k.Keys) > 0 {
		var err error
		if keys, err = json.Marshal(k.Keys); err != nil {
			return fmt.Errorf("keep the learnt keys: %w", err)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for epoch, es := range k.Events {
			if err := s.putSalvaged(tx, epoch, es); err != nil {
				return err
			}
		}
		if keys != nil {
			if err := tx.Bucket(bucketMeta).Put(keyKeys, keys); err != nil {
				return err
			}
		}
		if err := raiseFloor(tx.Bucket(bucketMeta), k.Floor); err != nil {
			return err
		}
		if err := putMarks(tx.Bucket(bucketProgress), k.Marks); err != nil {
			return err
		}
		rb := tx.Bucket(bucketReplay)
		for _, e := range k.Replay {
			if e.Expires <= now.UnixMilli() {
				continue
			}
			raw, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("replay entry %s/%d: %w", e.KeyID, e.Seq, err)
			}
			if err := rb.Put(replayKeyBytes(e), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("keep what was read back of a damaged store: %w", err)
	}
	return nil
}

// raiseFloor stores floor in meta if it is newer than the stored one (or
// that one is damaged).
func raiseFloor(meta *bolt.Bucket, floor time.Time) error {
	if floor.IsZero() {
		return nil
	}
	if had, err := readFloor(meta); err == nil && !floor.After(had) {
		return nil
	}
	return putFloor(meta, floor)
}

// Keep puts all of k into the store, as Bolt's does.
func (m *Memory) Keep(k *Kept, now time.Time) error {
	if err := checkMarks(k.Marks); err != nil {
		return err
	}
	for epoch, es := range k.Events {
		if err := m.AddSalvaged(epoch, es); err != nil {
			return err
		}
	}
	if len(k.Keys) > 0 {
		if err := m.SetKeys(k.Keys); err != nil {
			return err
		}
	}
	if _, err := m.Append(nil, k.Marks); err != nil {
		return err
	}
	for _, e := range k.Replay {
		if err := m.AddReplay(e, now); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if k.Floor.After(m.floor) {
		m.floor = k.Floor.UTC().Round(0)
	}
	return nil
}

// AddSalvaged keeps events of the earlier outbox epoch, to be sent as
// such (Salvaged). Events it already keeps are kept once. The store's
// own epoch is refused.
func (s *Bolt) AddSalvaged(epoch string, events []protocol.Event) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return s.putSalvaged(tx, epoch, events) }); err != nil {
		return fmt.Errorf("keep %d salvaged events of epoch %s: %w", len(events), epoch, err)
	}
	return nil
}

// putSalvaged is AddSalvaged within tx.
func (s *Bolt) putSalvaged(tx *bolt.Tx, epoch string, events []protocol.Event) error {
	if epoch == "" || epoch == s.epoch {
		return fmt.Errorf("salvaged events of epoch %q: not an earlier epoch", epoch)
	}
	sb, err := tx.CreateBucketIfNotExists(bucketSalvaged)
	if err != nil {
		return err
	}
	b, err := sb.CreateBucketIfNotExists([]byte(epoch))
	if err != nil {
		return err
	}
	for _, e := range events {
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("event %d: %w", e.Seq, err)
		}
		if err := b.Put(seqKey(e.Seq), raw); err != nil {
			return err
		}
	}
	return nil
}

// Salvaged returns up to limit events of the first earlier epoch it keeps.
func (s *Bolt) Salvaged(limit int) (epoch string, events []protocol.Event, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSalvaged)
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				continue // not a bucket
			}
			ec := sb.Bucket(k).Cursor()
			for sk, sv := ec.First(); sk != nil && len(events) < limit; sk, sv = ec.Next() {
				var e protocol.Event
				if err := json.Unmarshal(sv, &e); err != nil {
					return fmt.Errorf("event %x: %w", sk, err)
				}
				events = append(events, e)
			}
			if len(events) > 0 {
				epoch = string(k)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("read salvaged events: %w", err)
	}
	return epoch, events, nil
}

// ackSalvaged drops the events of the earlier epoch up to seq, and the
// epoch once none is left. It returns ErrEpoch if the store keeps no
// events of that epoch.
func (s *Bolt) ackSalvaged(epoch string, seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSalvaged)
		if sb == nil || sb.Bucket([]byte(epoch)) == nil {
			return ackEpochError(epoch, s.epoch)
		}
		b := sb.Bucket([]byte(epoch))
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if k, _ := b.Cursor().First(); k == nil {
			return sb.DeleteBucket([]byte(epoch))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack salvaged events of epoch %s up to %d: %w", epoch, seq, err)
	}
	return nil
}

// AddSalvaged keeps events of the earlier outbox epoch, as Bolt's does.
func (m *Memory) AddSalvaged(epoch string, events []protocol.Event) error {
	if epoch == "" || epoch == m.epoch {
		return fmt.Errorf("salvaged events of epoch %q: not an earlier epoch", epoch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.salvaged == nil {
		m.salvaged = map[string][]protocol.Event{}
	}
	all := append(slices.Clone(m.salvaged[epoch]), events...)
	slices.SortStableFunc(all, func(a, b protocol.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	m.salvaged[epoch] = slices.CompactFunc(all, func(a, b protocol.Event) bool { return a.Seq == b.Seq })
	return nil
}

// Salvaged returns up to limit events of the first earlier epoch it keeps.
func (m *Memory) Salvaged(limit int) (epoch string, events []protocol.Event, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range slices.Sorted(maps.Keys(m.salvaged)) {
		if es := m.salvaged[ep]; len(es) > 0 {
			return ep, slices.Clone(es[:min(limit, len(es))]), nil
		}
	}
	return "", nil, nil
}

// ackSalvaged drops the events of the earlier epoch up to seq; m.mu is
// held.
func (m *Memory) ackSalvaged(epoch string, seq uint64) error {
	es, ok := m.salvaged[epoch]
	if !ok {
		return ackEpochError(epoch, m.epoch)
	}
	i, _ := slices.BinarySearchFunc(es, seq+1, func(e protocol.Event, s uint64) int { return cmp.Compare(e.Seq, s) })
	if es = es[i:]; len(es) == 0 {
		delete(m.salvaged, epoch)
	} else {
		m.salvaged[epoch] = es
	}
	return nil
}
