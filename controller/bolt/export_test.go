package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// SeedNodes creates nodes in area in one transaction, for benchmarks that
// need thousands: one commit (and fsync) per node would dominate them.
func SeedNodes(db *DB, area string, ids []string) error {
	now := db.now()
	var seeded []*loaxa.Node
	err := db.update(func(tx *bbolt.Tx) error {
		seeded = seeded[:0]
		if tx.Bucket(bucketAreas).Get([]byte(area)) == nil {
			return fmt.Errorf("area %s missing", area)
		}
		for _, id := range ids {
			n := &loaxa.Node{ID: id, Area: area, CreatedAt: now, EnrolledAt: now, SecretHash: loaxa.HashSecret(id),
				Credentials: loaxa.CredentialsActive,
				Status:      loaxa.NodeStatus{State: loaxa.NodeNever, Since: now}}
			if err := putJSON(tx.Bucket(bucketNodes), []byte(id), nodeRecord{n, n.SecretHash, n.BrokerHash}); err != nil {
				return err
			}
			if err := tx.Bucket(bucketNodeAreas).Put(join(area, id), nil); err != nil {
				return err
			}
			seeded = append(seeded, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range seeded {
		db.nodes.put(n)
	}
	return nil
}

// Sessions returns how many sessions are stored, ended or not.
func Sessions(db *DB) (int, error) {
	var n int
	err := db.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketTokens).Stats().KeyN
		return nil
	})
	return n, err
}

// FlushStatus writes the node statuses changed in memory, as the flusher
// does every StatusInterval.
func FlushStatus(db *DB) error { return db.flushStatus() }

// StoredStatus returns node id's status as its record in the file has it,
// without the newer one in memory.
func StoredStatus(db *DB, id string) (loaxa.NodeStatus, error) {
	var st loaxa.NodeStatus
	err := db.view(func(tx *bbolt.Tx) error {
		n, err := getNode(tx, id)
		if err == nil {
			st = n.Status
		}
		return err
	})
	return st, err
}

// FailStatusFlushes makes every status flush fail inside its transaction
// with err, or no longer with nil.
func FailStatusFlushes(db *DB, err error) {
	if err == nil {
		db.statusFault = nil
		return
	}
	db.statusFault = func(*bbolt.Tx) error { return err }
}

// DeleteDuringFlush deletes node id's record inside the next status
// flush's transaction, before the flush writes: a delete that lands
// between the flush's copy of the statuses and its commit.
func DeleteDuringFlush(db *DB, id string) {
	db.statusFault = func(tx *bbolt.Tx) error {
		db.statusFault = nil
		return tx.Bucket(bucketNodes).Delete([]byte(id))
	}
}

// OnFlushTransaction runs fn first in each status flush's transaction
// (each chunk's); fn's error fails that transaction. nil stops it.
func OnFlushTransaction(db *DB, fn func() error) {
	if fn == nil {
		db.statusFault = nil
		return
	}
	db.statusFault = func(*bbolt.Tx) error { return fn() }
}

// FlusherDone returns the channel the status flusher closes when it stops,
// nil if none runs.
func FlusherDone(db *DB) <-chan struct{} { return db.flushDone }

// DeleteNodeArea deletes the entry of node in area's index.
func DeleteNodeArea(db *DB, area, node string) error {
	return db.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodeAreas).Delete(join(area, node))
	})
}

// DuringFlush runs fn inside the next status flush's transaction, after the
// flush copied the statuses it writes.
func DuringFlush(db *DB, fn func()) {
	db.statusFault = func(*bbolt.Tx) error {
		db.statusFault = nil
		fn()
		return nil
	}
}

// OnCredentialsCommitted runs fn after every credentials write committed
// and before the node table has the change, or no longer with nil.
func OnCredentialsCommitted(db *DB, fn func()) { db.credentialsCommitted = fn }

// AsStoredBeforeEnrolledAt makes node id's record look as stores kept it
// before a node's enrolment was kept apart from its creation: without
// enrolled_at.
func AsStoredBeforeEnrolledAt(db *DB, id string) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(b.Get([]byte(id)), &rec); err != nil {
			return err
		}
		delete(rec, "enrolled_at")
		return putJSON(b, []byte(id), rec)
	})
}

// AsSchema1 makes db's file look as schema 1 left it: the version, and no
// delivery marked drill.
func AsSchema1(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		var old []*loaxa.Delivery
		err := b.ForEach(func(k, v []byte) error {
			var d loaxa.Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			d.Drill = false
			old = append(old, &d)
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range old {
			if err := putJSON(b, deliveryKey(d.Announcement, d.Occurrence, d.Node), d); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(1))
	})
}

// AsSchema2 makes db look like a store of schema 2: the CAP alerts
// without their by-reference index.
func AsSchema2(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCapAlerts)
		var refs [][]byte
		c := b.Cursor()
		for k, _ := c.Seek([]byte(capRefPrefix)); k != nil && bytes.HasPrefix(k, []byte(capRefPrefix)); k, _ = c.Next() {
			refs = append(refs, slices.Clone(k))
		}
		for _, k := range refs {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(2))
	})
}

// AsSchema3 makes db look like a store of schema 3: deliveries without
// the index of the open ones.
func AsSchema3(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketOpenDeliveries); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketOpenDeliveries); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(3))
	})
}

// AsSchema4 makes db look like a store of schema 4: live calls without
// the index of those on air.
func AsSchema4(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketLiveCallsOnAir); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketLiveCallsOnAir); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(4))
	})
}

// SeedLiveCalls stores calls in one transaction, for benchmarks that need
// a year of them: one commit (and fsync) per call would dominate them.
func SeedLiveCalls(db *DB, calls []*loaxa.LiveCall) error {
	return db.update(func(tx *bbolt.Tx) error {
		for _, c := range calls {
			key := liveCallKey(c)
			if err := putJSON(tx.Bucket(bucketLiveCalls), key, c); err != nil {
				return err
			}
			if err := tx.Bucket(bucketLiveCallIDs).Put([]byte(c.ID), key); err != nil {
				return err
			}
			if err := indexLiveCallOnAir(tx, key, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// AsSchema5 makes db look like a store of schema 5: rollouts without the
// index of those running.
func AsSchema5(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketRolloutsRunning); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketRolloutsRunning); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(5))
	})
}

// AsSchema6 makes db look like a store of schema 6: alarms without the
// index of their ends (nor of their spans, nodes and areas).
func AsSchema6(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketAlarmEnds, bucketAlarmSpans, bucketAlarmNodes, bucketAlarmAreas} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(6))
	})
}

// AsSchema7 makes db look like a store of schema 7: ended alarms without
// the index of their spans, alarms without that of their nodes and areas.
func AsSchema7(db *DB) error {
	return asSchema(db, 7, bucketAlarmSpans, bucketAlarmNodes, bucketAlarmAreas)
}

// AsSchema8 makes db look like a store of schema 8: alarms without the
// index of their nodes and areas.
func AsSchema8(db *DB) error {
	return asSchema(db, 8, bucketAlarmNodes, bucketAlarmAreas)
}

// AsSchema9 makes db look like a store of schema 9: holidays without the
// index of their dates and of the deleted ones to purge.
func AsSchema9(db *DB) error {
	return asSchema(db, 9, bucketHolidayDates, bucketHolidayPurge)
}

// AsSchema10 makes db look like a store of schema 10: CAP alerts a later
// Cancel or Update withdrew are stored as they are (Withdrawn is kept: the
// migration must leave one a newer controller marked as it is).
func AsSchema10(db *DB) error {
	return asSchema(db, 10)
}

// UnmarkCapWithdrawals takes Withdrawn off every stored CAP alert, as a
// controller before it stored them.
func UnmarkCapWithdrawals(db *DB) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCapAlerts)
		var all []*loaxa.CapAlert
		err := b.ForEach(func(k, v []byte) error {
			if len(k) == 0 || k[0] != 'c' {
				return nil
			}
			var a loaxa.CapAlert
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			if a.Withdrawn != nil {
				a.Withdrawn = nil
				all = append(all, &a)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, a := range all {
			if err := putJSON(b, []byte(a.ID), a); err != nil {
				return err
			}
		}
		return nil
	})
}

// asSchema empties the buckets a later schema added and sets the version.
func asSchema(db *DB, version uint64, added ...[]byte) error {
	return db.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range added {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(version))
	})
}

// DamageRollout replaces the stored record of rollout id with bytes that
// do not decode, as a reader that reaches it finds out; repair puts the
// record back.
func DamageRollout(db *DB, id string) (repair func() error, err error) {
	var whole []byte
	err = db.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil || b.Get([]byte(id)) == nil {
			return fmt.Errorf("no rollout %s", id)
		}
		whole = slices.Clone(b.Get([]byte(id)))
		return b.Put([]byte(id), []byte("{damaged"))
	})
	return func() error {
		return db.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRollouts).Put([]byte(id), whole) })
	}, err
}

// DamageLiveCall replaces the stored record of call id with bytes that do
// not decode, as a reader that reaches it finds out; repair puts the
// record back.
func DamageLiveCall(db *DB, id string) (repair func() error, err error) {
	var key, whole []byte
	err = db.db.Update(func(tx *bbolt.Tx) error {
		key = slices.Clone(tx.Bucket(bucketLiveCallIDs).Get([]byte(id)))
		if key == nil {
			return fmt.Errorf("no live call %s", id)
		}
		whole = slices.Clone(tx.Bucket(bucketLiveCalls).Get(key))
		return tx.Bucket(bucketLiveCalls).Put(key, []byte("{damaged"))
	})
	return func() error {
		return db.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketLiveCalls).Put(key, whole) })
	}, err
}

// DropDesiredHead deletes node's desired-state head, as in a store written
// before heads were kept.
func DropDesiredHead(db *DB, node string) error {
	return db.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketDesiredHeads).Delete([]byte(node)) })
}

// BucketBytes returns the bytes of file pages each top-level bucket
// holds (leaf and branch pages allocated, inline buckets' bytes in use).
func BucketBytes(db *DB) (map[string]int64, error) {
	out := map[string]int64{}
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			s := b.Stats()
			out[string(name)] = int64(s.BranchAlloc + s.LeafAlloc + s.InlineBucketInuse)
			return nil
		})
	})
	return out, err
}

// SeedEvents stores, in one transaction, each node's events (by node id,
// in sequence from 1) of outbox epoch as RecordEvents stores them, without
// moving deliveries: benchmarks seed a year of events in minutes rather
// than a transaction per node and day.
func SeedEvents(db *DB, epoch string, events map[string][]protocol.Event, receivedAt time.Time) error {
	s := NewEventService(db)
	return db.update(func(tx *bbolt.Tx) error {
		for node, evs := range events {
			n, err := getNode(tx, node)
			if err != nil {
				return err
			}
			seqs := tx.Bucket(bucketEventSeqs)
			last := uint64(0)
			if v := seqs.Get(eventSeqKey(node, epoch)); v != nil {
				last = binary.BigEndian.Uint64(v)
			}
			for _, ev := range evs {
				last++
				ev.Seq = last
				ev.Occurrence = "" // do not move deliveries
				if err := s.storeEvent(tx, eventSource{node: n.ID, area: n.Area}, epoch, false, ev, receivedAt, nil); err != nil {
					return err
				}
			}
			if err := seqs.Put(eventSeqKey(node, epoch), u64(last)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeliveryRecords returns the stored bytes of every delivery and of its
// index entries, by bucket and key, so that a test can compare two stores.
func DeliveryRecords(db *DB) (map[string]string, error) {
	out := map[string]string{}
	err := db.view(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketDeliveries, bucketNodeDeliveries, bucketOpenDeliveries} {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				out[string(name)+" "+string(k)] = string(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// SeedHolidays stores hs in one transaction, assigning their ids as
// CreateHoliday does, for benchmarks of a province's calendar: one commit
// per holiday (and a scan of all before) would dominate them.
func SeedHolidays(db *DB, hs []*loaxa.Holiday) error {
	return db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketHolidays)
		for _, h := range hs {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			h.ID = fmt.Sprintf("h%06d", seq)
			if err := putJSON(b, []byte(h.ID), h); err != nil {
				return err
			}
		}
		// Indexed as Open indexes a store of schema 9.
		for _, name := range [][]byte{bucketHolidayDates, bucketHolidayPurge} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return indexHolidays(tx, &upgradeStep{db: db})
	})
}

// PageWrites returns how many page writes the store's commits have made
// since it was opened (bbolt's TxStats.Write).
func PageWrites(db *DB) int64 {
	st := db.db.Stats()
	return st.TxStats.GetWrite()
}
