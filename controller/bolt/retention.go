package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// keyPurgedBefore, in meta, is the latest cutoff a purge began with.
var keyPurgedBefore = []byte("purged_before")

// DefaultPurgeBatch is how many records one purge transaction deletes
// (or, of events, audit and alarms, reads) at most: small enough that an
// alert's write waits milliseconds behind it, not the minutes a year of
// deliveries takes (BenchmarkPurge).
const DefaultPurgeBatch = 500

// Purged counts what one Purge deleted, by kind, and how long its
// transactions took.
type Purged struct {
	Deliveries int
	Events     int
	Audit      int
	Alarms     int
	// Transactions is how many write transactions the purge took;
	// LongestTx the longest of them (what a write may have waited).
	Transactions int
	LongestTx    time.Duration
}

// Total is everything Purge deleted.
func (p Purged) Total() int { return p.Deliveries + p.Events + p.Audit + p.Alarms }

// Purge deletes what ended before before: the deliveries that started
// before it and are final (pending, received and started ones stay, open
// whatever their age), the node events that happened before it, the audit
// entries written before it and the alarms that ended before it (open
// alarms stay). Nothing else is touched: announcements, emergencies, live
// calls, nodes and their statuses stay. A report of a span from before on
// reads exactly what it read before the purge: its deliveries start in the
// span, its events happen in it, its alarms end in it or are open.
//
// It deletes in write transactions of at most batch records (0:
// DefaultPurgeBatch), so other writes are never held behind it for long,
// and every one of them leaves the store whole: a purge cut short (a
// crash, ctx cancelled) has deleted only what it should, and the next one
// carries on.
func (db *DB) Purge(ctx context.Context, before time.Time, batch int) (Purged, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	var p Purged
	// The mark goes first: from it on, an outbox may miss its oldest
	// events, which is no loss (CheckFile).
	err := db.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyPurgedBefore); v != nil && bytes.Compare(v, msKey(before)) >= 0 {
			return nil
		}
		return meta.Put(keyPurgedBefore, msKey(before))
	})
	if err != nil {
		return p, fmt.Errorf("purge before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	if err := db.purgeDeliveries(ctx, before, batch, &p); err != nil {
		return p, fmt.Errorf("purge deliveries before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	steps := []struct {
		what string
		n    *int
		step func(tx *bbolt.Tx) (more bool, deleted int, err error)
	}{
		{"events", &p.Events, func(tx *bbolt.Tx) (bool, int, error) { return purgeEvents(tx, before, batch) }},
		{"audit", &p.Audit, func(tx *bbolt.Tx) (bool, int, error) { return purgeAudit(tx, before, batch) }},
		{"alarms", &p.Alarms, func(tx *bbolt.Tx) (bool, int, error) { return purgeAlarms(tx, before, batch) }},
	}
	for _, s := range steps {
		for more := true; more; {
			if err := checkCtx(ctx); err != nil {
				return p, fmt.Errorf("purge %s before %s: %w", s.what, before.UTC().Format(time.RFC3339), err)
			}
			var deleted int
			err := p.write(db, func(tx *bbolt.Tx) error {
				var err error
				more, deleted, err = s.step(tx)
				return err
			})
			if err != nil {
				return p, fmt.Errorf("purge %s before %s: %w", s.what, before.UTC().Format(time.RFC3339), err)
			}
			*s.n += deleted
		}
	}
	return p, nil
}

// write runs fn in a write transaction and counts it.
func (p *Purged) write(db *DB, fn func(tx *bbolt.Tx) error) error {
	t := time.Now()
	err := db.update(fn)
	p.LongestTx = max(p.LongestTx, time.Since(t))
	p.Transactions++
	return err
}

// deliveryWalk is how many deliveries one read transaction of the purge
// walks at most, per record it may delete.
const deliveryWalk = 20

// purgeDeliveries deletes the final deliveries that started before
// before, with their index entries. Deliveries have no index by time:
// their keys (announcement, occurrence, node) are walked, and only those
// whose occurrence is older than before, or that name no instant (a live
// call), are decoded. The walk is done in read transactions, which hold
// up no writer, batch*deliveryWalk keys each; only the deletions, batch
// at a time, take the writer, each checked again there. A walk of the
// keys costs far less than an index would cost in space on every
// delivery ever stored; a daily purge walks them all (BenchmarkPurge).
func (db *DB) purgeDeliveries(ctx context.Context, before time.Time, batch int, p *Purged) error {
	var from []byte
	for {
		if err := checkCtx(ctx); err != nil {
			return err
		}
		var old, next [][]byte
		err := db.view(func(tx *bbolt.Tx) error {
			var err error
			old, next, err = oldDeliveries(tx, from, before, batch)
			return err
		})
		if err != nil {
			return err
		}
		if len(old) > 0 {
			var deleted int
			err := p.write(db, func(tx *bbolt.Tx) error {
				var err error
				deleted, err = deleteDeliveries(tx, old, before)
				return err
			})
			if err != nil {
				return err
			}
			p.Deliveries += deleted
		}
		if next == nil {
			return nil
		}
		from = next[0]
	}
}

// oldDeliveries walks deliveries from the key from (nil: the first) until
// it has found batch final ones that started before before, or walked
// batch*deliveryWalk. It returns their keys and, if the walk did not reach
// the end, the key to go on from (as next[0]).
func oldDeliveries(tx *bbolt.Tx, from []byte, before time.Time, batch int) (old, next [][]byte, err error) {
	c := tx.Bucket(bucketDeliveries).Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for n := 0; k != nil; k, v = c.Next() {
		if n == batch*deliveryWalk || len(old) == batch {
			return old, [][]byte{bytes.Clone(k)}, nil
		}
		n++
		if ok, err := oldDelivery(k, v, before); err != nil || !ok {
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		old = append(old, bytes.Clone(k))
	}
	return old, nil, nil
}

// oldDelivery reports whether the delivery v at key k is final and
// started before before; only a delivery whose occurrence is older, or
// names no instant, is decoded.
func oldDelivery(k, v []byte, before time.Time) (bool, error) {
	parts := bytes.SplitN(k, []byte{0}, 3)
	if len(parts) == 3 {
		if at := loaxa.OccurrenceTime(string(parts[1])); !at.IsZero() && !at.Before(before) {
			return false, nil
		}
	}
	var d loaxa.Delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return false, fmt.Errorf("decode delivery %q: %w", k, err)
	}
	return d.State.Terminal() && d.Start.Before(before), nil
}

// deleteDeliveries deletes the deliveries at keys that are still final
// and older than before (a read transaction found them), with their
// entries in the by-node and open indexes.
func deleteDeliveries(tx *bbolt.Tx, keys [][]byte, before time.Time) (int, error) {
	b, byNode, open := tx.Bucket(bucketDeliveries), tx.Bucket(bucketNodeDeliveries), tx.Bucket(bucketOpenDeliveries)
	deleted := 0
	for _, k := range keys {
		v := b.Get(k)
		if v == nil {
			continue
		}
		if ok, err := oldDelivery(k, v, before); err != nil || !ok {
			if err != nil {
				return 0, err
			}
			continue
		}
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 {
			return 0, fmt.Errorf("delivery key %q is not announcement, occurrence, node", k)
		}
		nkey := nodeDeliveryKey(string(parts[0]), string(parts[1]), string(parts[2]))
		for _, del := range []struct {
			b *bbolt.Bucket
			k []byte
		}{{b, k}, {byNode, nkey}, {open, nkey}} {
			if err := del.b.Delete(del.k); err != nil {
				return 0, fmt.Errorf("delete delivery %q: %w", k, err)
			}
		}
		deleted++
	}
	return deleted, nil
}

// purgeEvents deletes up to batch events that happened before before,
// oldest first, with their by-node index entries; the primary key starts
// with the time, and the index key is made of the same parts. It reports
// whether there may be more.
func purgeEvents(tx *bbolt.Tx, before time.Time, batch int) (bool, int, error) {
	b, byNode := tx.Bucket(bucketEvents), tx.Bucket(bucketNodeEvents)
	limit := msKey(before)
	var old [][]byte
	c := b.Cursor()
	k, _ := c.First()
	for ; k != nil && bytes.Compare(k[:8], limit) < 0 && len(old) < batch; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		// eventKey: time (8), node, 0, epoch, 0, seq (8).
		rest := k[8:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest) < i+1+9 {
			return false, 0, fmt.Errorf("event key %x is not time, node, epoch, sequence", k)
		}
		node, tail := rest[:i], rest[i+1:]
		nk := make([]byte, 0, len(k)+1)
		nk = append(append(append(append(nk, node...), 0), k[:8]...), tail...)
		if err := b.Delete(k); err != nil {
			return false, 0, fmt.Errorf("delete event %x: %w", k, err)
		}
		if err := byNode.Delete(nk); err != nil {
			return false, 0, fmt.Errorf("delete event index %x: %w", nk, err)
		}
	}
	return len(old) == batch, len(old), nil
}

// purgeAudit deletes up to batch audit entries written before before,
// oldest first. Entries are keyed by sequence, written in time order; the
// walk stops at the first one at or after before, so an entry stamped out
// of order is kept rather than one of the retained span lost.
func purgeAudit(tx *bbolt.Tx, before time.Time, batch int) (bool, int, error) {
	b := tx.Bucket(bucketAudit)
	var old [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(old) < batch; k, v = c.Next() {
		var e struct{ At time.Time }
		if err := json.Unmarshal(v, &e); err != nil {
			return false, 0, fmt.Errorf("decode audit entry %x: %w", k, err)
		}
		if !e.At.Before(before) {
			break
		}
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return false, 0, fmt.Errorf("delete audit entry %x: %w", k, err)
		}
	}
	return len(old) == batch, len(old), nil
}

// purgeAlarms deletes up to batch alarms that ended before before, found
// by their end in alarm_ends (open alarms sort last and are never
// reached), with their keys in alarm_ends, alarm_spans, alarm_nodes and alarm_areas.
func purgeAlarms(tx *bbolt.Tx, before time.Time, batch int) (bool, int, error) {
	b, ends, spans := tx.Bucket(bucketAlarms), tx.Bucket(bucketAlarmEnds), tx.Bucket(bucketAlarmSpans)
	limit := msKey(before)
	var old [][]byte
	c := ends.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) < 0 && len(old) < batch; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if len(k) != 16 {
			return false, 0, fmt.Errorf("alarm end key %x is not end, sequence", k)
		}
		seq := binary.BigEndian.Uint64(k[8:])
		// Its span goes with it, keyed by its start too.
		var a struct {
			Start, End time.Time
			Node, Area string
		}
		if v := b.Get(u64(seq)); v != nil {
			if err := json.Unmarshal(v, &a); err != nil {
				return false, 0, fmt.Errorf("decode alarm %s: %w", seqID("al", seq), err)
			}
			if err := spans.Delete(alarmSpanKey(a.Start, a.End, seq)); err != nil {
				return false, 0, fmt.Errorf("delete alarm span of %s: %w", seqID("al", seq), err)
			}
			// It ended (it was found among the ended).
			if err := alarmPlaces(tx, a.Node, a.Area, false, seq, false); err != nil {
				return false, 0, fmt.Errorf("purge: %w", err)
			}
		}
		if err := b.Delete(u64(seq)); err != nil {
			return false, 0, fmt.Errorf("delete alarm %s: %w", seqID("al", seq), err)
		}
		if err := ends.Delete(k); err != nil {
			return false, 0, fmt.Errorf("delete alarm end %x: %w", k, err)
		}
	}
	return len(old) == batch, len(old), nil
}
