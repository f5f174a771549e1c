package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// Bucket and key names of the bbolt file.
var (
	bucketMeta     = []byte("meta")
	bucketProgress = []byte("progress")
	bucketEvents   = []byte("events") // big-endian seq → protocol.Event JSON
	bucketReplay   = []byte("replay") // kid 0x00 big-endian seq → protocol.ReplayEntry JSON
	// bucketSalvaged (salvage.go): epoch → big-endian seq → protocol.Event JSON

	keyEpoch   = []byte("epoch")
	keyDesired = []byte("desired")
	keyAcked   = []byte("acked")
	keyLast    = []byte("last")
	keyKeys    = []byte("keys")        // in meta: learnt controller keys, JSON
	keyAlerts  = []byte("alerts")      // in meta: agent.HeldAlerts, JSON
	keyFloor   = []byte("clock_floor") // in meta: the clock floor, RFC 3339
	// keyFloorSum, in meta: the CRC-32 (IEEE, big-endian) of the floor's
	// bytes (floor.go).
	keyFloorSum = []byte("clock_floor_crc")
)

// Bolt is a Store in one bbolt file. Every change is one transaction, synced
// to disk before the call returns, so a power cut loses nothing that a call
// reported as stored.
type Bolt struct {
	db    *bolt.DB
	path  string
	epoch string
}

var _ agent.Store = (*Bolt)(nil)

// OpenBolt opens or creates the store file at path. A new file gets a fresh
// outbox epoch. It fails at once if another process holds the file.
//
// A file it makes (none was there, or an empty one) and cannot make whole
// — a card that fills up part way through bbolt's first write — is
// removed: left, it would look like a damaged store at the next start
// (StartAnew), while it never held anything.
func OpenBolt(path string) (*Bolt, error) {
	fi, err := os.Stat(path)
	making := errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0)
	s, err := openBolt(path)
	if err != nil && making && !Held(err) {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove the store it could not make: %w", rerr))
		}
	}
	return s, err
}

// openBolt opens or creates the store file at path, as OpenBolt does, and
// leaves the file as it is when that fails.
func openBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open node store %s: %w", path, err)
	}
	s := &Bolt{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketProgress, bucketEvents, bucketReplay, bucketSalvaged} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if e := meta.Get(keyEpoch); e != nil {
			s.epoch = string(e)
			return nil
		}
		s.epoch = newEpoch()
		return meta.Put(keyEpoch, []byte(s.epoch))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open node store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Bolt) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close node store: %w", err)
	}
	return nil
}

// Path returns the file name.
func (s *Bolt) Path() string { return s.path }

// Epoch returns the outbox epoch.
func (s *Bolt) Epoch() string { return s.epoch }

// Desired returns the stored desired state or nil.
func (s *Bolt) Desired() (*protocol.DesiredState, error) {
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyDesired); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load desired state: %w", err)
	}
	return decodeDesired(raw)
}

// SetDesired replaces the desired state.
func (s *Bolt) SetDesired(d *protocol.DesiredState) error {
	raw, err := encodeDesired(d)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyDesired, raw)
	}); err != nil {
		return fmt.Errorf("store desired state %d: %w", d.Version, err)
	}
	return nil
}

// Progress returns every progress mark.
func (s *Bolt) Progress() (map[string]agent.Progress, error) {
	out := make(map[string]agent.Progress)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProgress).ForEach(func(k, v []byte) error {
			var p agent.Progress
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("progress %s: %w", k, err)
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load progress: %w", err)
	}
	return out, nil
}

// Append adds events and marks in one transaction.
func (s *Bolt) Append(events []protocol.Event, marks []agent.Progress) ([]protocol.Event, error) {
	if err := checkMarks(marks); err != nil {
		return nil, err
	}
	out := make([]protocol.Event, len(events))
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		last := getUint(meta, keyLast)
		eb := tx.Bucket(bucketEvents)
		for i, e := range events {
			last++
			e.Seq = last
			raw, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("event %d: %w", last, err)
			}
			if err := eb.Put(seqKey(last), raw); err != nil {
				return err
			}
			out[i] = e
		}
		if err := putUint(meta, keyLast, last); err != nil {
			return err
		}
		return putMarks(tx.Bucket(bucketProgress), marks)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d events: %w", len(events), err)
	}
	return out, nil
}

// putMarks writes marks into the progress bucket pb.
func putMarks(pb *bolt.Bucket, marks []agent.Progress) error {
	for _, p := range marks {
		raw, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("progress %s: %w", p.Occurrence, err)
		}
		if err := pb.Put([]byte(p.Occurrence), raw); err != nil {
			return err
		}
	}
	return nil
}

// PruneProgress forgets marks of occurrences outside keep that started
// before before.
func (s *Bolt) PruneProgress(keep map[string]bool, before time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProgress)
		var drop [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var p agent.Progress
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("progress %s: %w", k, err)
			}
			if !keep[string(k)] && p.Start.Before(before) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune progress: %w", err)
	}
	return nil
}

// Outbox returns the outbox range.
func (s *Bolt) Outbox() (agent.Outbox, error) {
	var o agent.Outbox
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		o = agent.Outbox{Acked: getUint(meta, keyAcked), Last: getUint(meta, keyLast)}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("read outbox: %w", err)
	}
	return o, nil
}

// Events returns up to limit events after seq after.
func (s *Bolt) Events(after uint64, limit int) ([]protocol.Event, error) {
	var out []protocol.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var e protocol.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox events after %d: %w", after, err)
	}
	return out, nil
}

// Ack drops events up to seq.
func (s *Bolt) Ack(epoch string, seq uint64) error {
	if epoch != s.epoch {
		return s.ackSalvaged(epoch, seq)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		acked, last := getUint(meta, keyAcked), getUint(meta, keyLast)
		seq = min(seq, last)
		if seq <= acked {
			return nil
		}
		c := tx.Bucket(bucketEvents).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return putUint(meta, keyAcked, seq)
	})
	if err != nil {
		return fmt.Errorf("ack events up to %d: %w", seq, err)
	}
	return nil
}

// ReplayEntries returns unexpired replay entries.
func (s *Bolt) ReplayEntries(now time.Time) ([]protocol.ReplayEntry, error) {
	var out []protocol.ReplayEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReplay).ForEach(func(k, v []byte) error {
			var e protocol.ReplayEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("replay entry %x: %w", k, err)
			}
			if e.Expires > now.UnixMilli() {
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load replay entries: %w", err)
	}
	sortReplay(out)
	return out, nil
}

// AddReplay remembers e and forgets expired entries.
func (s *Bolt) AddReplay(e protocol.ReplayEntry, now time.Time) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store replay entry: %w", err)
	}
	ms := now.UnixMilli()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReplay)
		var expired [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var old protocol.ReplayEntry
			if err := json.Unmarshal(v, &old); err != nil || old.Expires <= ms {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if e.Expires <= ms {
			return nil
		}
		return b.Put(replayKeyBytes(e), raw)
	})
	if err != nil {
		return fmt.Errorf("store replay entry %s/%d: %w", e.KeyID, e.Seq, err)
	}
	return nil
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func replayKeyBytes(e protocol.ReplayEntry) []byte {
	k := make([]byte, 0, len(e.KeyID)+9)
	k = append(k, e.KeyID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, e.Seq)
}

func getUint(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, key []byte, v uint64) error {
	if err := b.Put(key, seqKey(v)); err != nil {
		return errors.Join(fmt.Errorf("put %s", key), err)
	}
	return nil
}

// Keys returns the learnt controller keys, or nil.
func (s *Bolt) Keys() ([]protocol.PublicKey, error) {
	var keys []protocol.PublicKey
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyKeys)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &keys)
	})
	if err != nil {
		return nil, fmt.Errorf("load controller keys: %w", err)
	}
	return keys, nil
}

// SetKeys replaces the learnt controller keys.
func (s *Bolt) SetKeys(keys []protocol.PublicKey) error {
	raw, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("store controller keys: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyKeys, raw)
	}); err != nil {
		return fmt.Errorf("store controller keys: %w", err)
	}
	return nil
}

// HeldAlerts returns the stored alerts.
func (s *Bolt) HeldAlerts() (agent.HeldAlerts, error) {
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAlerts); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return agent.HeldAlerts{}, fmt.Errorf("load held alerts: %w", err)
	}
	return decodeAlerts(raw)
}

// SetHeldAlerts replaces the stored alerts.
func (s *Bolt) SetHeldAlerts(h agent.HeldAlerts) error {
	raw, err := encodeAlerts(h)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyAlerts, raw)
	}); err != nil {
		return fmt.Errorf("store held alerts: %w", err)
	}
	return nil
}

// ClockFloor returns the stored clock floor, or zero. A damaged one is
// an error that wraps ErrClockFloorDamaged.
func (s *Bolt) ClockFloor() (time.Time, error) {
	var floor time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		floor, err = readFloor(tx.Bucket(bucketMeta))
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("load clock floor: %w", err)
	}
	return floor, nil
}

// SetClockFloor replaces the clock floor.
func (s *Bolt) SetClockFloor(t time.Time) error {
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return putFloor(tx.Bucket(bucketMeta), t)
	}); err != nil {
		return fmt.Errorf("store clock floor %v: %w", t, err)
	}
	return nil
}
