package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// DeliveryService stores deliveries. Events move them (EventService).
type DeliveryService struct {
	db *DB
}

var _ loaxa.DeliveryService = (*DeliveryService)(nil)

// NewDeliveryService returns a DeliveryService on db.
func NewDeliveryService(db *DB) *DeliveryService {
	return &DeliveryService{db: db}
}

// deliveryKey keys a delivery by announcement first, so that the deliveries
// of one announcement are one prefix scan.
func deliveryKey(announcement, occurrence, node string) []byte {
	return join(announcement, occurrence, node)
}

// nodeDeliveryKey keys the by-node index.
func nodeDeliveryKey(announcement, occurrence, node string) []byte {
	return join(node, announcement, occurrence)
}

// EnsureDeliveries stores the given deliveries unless a delivery for the
// same (occurrence, node) exists. It changes an existing one only if it is
// Unplanned (made from the node's report before the plan was stored): that
// one takes the plan (Start, Priority, PlannedMS, Drill) and keeps what the
// node reported. An empty State is stored as pending and a zero UpdatedAt
// as now. Every node must exist; on any error nothing is stored.
func (s *DeliveryService) EnsureDeliveries(ctx context.Context, ds []*loaxa.Delivery) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	for _, d := range ds {
		if d.Announcement == "" || d.Occurrence == "" || d.Node == "" {
			return loaxa.Errorf(loaxa.EInvalid, "Delivery %q/%q/%q needs an announcement, an occurrence and a node.", d.Announcement, d.Occurrence, d.Node)
		}
		if !occurrenceOf(d.Announcement, d.Occurrence) {
			return loaxa.Errorf(loaxa.EInvalid, "Occurrence %q is not one of announcement %q: build its id with loaxa.OccurrenceID.", d.Occurrence, d.Announcement)
		}
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		nodes := tx.Bucket(bucketNodes)
		now := s.db.now()
		for _, d := range ds {
			key := deliveryKey(d.Announcement, d.Occurrence, d.Node)
			if v := b.Get(key); v != nil {
				if bytes.Contains(v, unplannedMark) {
					if err := planDelivery(tx, key, v, d); err != nil {
						return err
					}
				}
				continue
			}
			if nodes.Get([]byte(d.Node)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Delivery of %s to node %q: the node does not exist.", d.Occurrence, d.Node)
			}
			rec := *d
			if rec.State == "" {
				rec.State = loaxa.DeliveryPending
			}
			if rec.UpdatedAt.IsZero() {
				rec.UpdatedAt = now
			}
			if err := putDelivery(tx, &rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure %d deliveries: %w", len(ds), err)
	}
	return nil
}

// unplannedMark is in the JSON of every Unplanned delivery, so that
// EnsureDeliveries decodes only those among the deliveries that exist.
var unplannedMark = []byte(`"unplanned":true`)

// planDelivery puts plan into the stored delivery v (at key) if it is
// Unplanned.
func planDelivery(tx *bbolt.Tx, key, v []byte, plan *loaxa.Delivery) error {
	var d loaxa.Delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return fmt.Errorf("decode delivery %q: %w", key, err)
	}
	if !d.Unplanned {
		return nil
	}
	d.Start, d.Priority, d.PlannedMS, d.Drill, d.Unplanned = plan.Start, plan.Priority, plan.PlannedMS, plan.Drill, false
	return putDelivery(tx, &d)
}

// occurrenceOf reports whether occurrence is one of announcement: built
// by loaxa.OccurrenceID, or a live call, which is its own occurrence.
func occurrenceOf(announcement, occurrence string) bool {
	if loaxa.IsLiveCallID(announcement) {
		return occurrence == announcement
	}
	return strings.HasPrefix(occurrence, announcement+"@")
}

// putDelivery stores d and its index entries.
func putDelivery(tx *bbolt.Tx, d *loaxa.Delivery) error {
	_, err := writeDelivery(tx, d)
	return err
}

// writeDelivery stores d and its index entries and returns what it
// stored.
func writeDelivery(tx *bbolt.Tx, d *loaxa.Delivery) (writtenDelivery, error) {
	key := deliveryKey(d.Announcement, d.Occurrence, d.Node)
	raw, err := encodeDelivery(d)
	if err != nil {
		return writtenDelivery{}, fmt.Errorf("encode %q: %w", key, err)
	}
	if err := tx.Bucket(bucketDeliveries).Put(key, raw); err != nil {
		return writtenDelivery{}, fmt.Errorf("put %q: %w", key, err)
	}
	nkey := nodeDeliveryKey(d.Announcement, d.Occurrence, d.Node)
	if err := putChanged(tx.Bucket(bucketNodeDeliveries), nkey, key); err != nil {
		return writtenDelivery{}, err
	}
	if err := indexOpenDelivery(tx.Bucket(bucketOpenDeliveries), nkey, d); err != nil {
		return writtenDelivery{}, err
	}
	return writtenDelivery{key: key, raw: raw, d: *d}, nil
}

// openDelivery reports whether d is one DropDeliveries may drop: pending
// or received.
func openDelivery(d *loaxa.Delivery) bool {
	return d.State == loaxa.DeliveryPending || d.State == loaxa.DeliveryReceived
}

// indexOpenDelivery puts d, stored under the by-node key nkey, into the
// index of open deliveries with its planned end (to the millisecond, as
// occurrence starts are), or takes it out once it is no longer open. DropDeliveries reads this index alone: a node's
// history (thousands of deliveries after a year) is neither read nor
// decoded at every schedule change (BenchmarkDropDeliveriesWithHistory).
func indexOpenDelivery(idx *bbolt.Bucket, nkey []byte, d *loaxa.Delivery) error {
	if !openDelivery(d) {
		return idx.Delete(nkey)
	}
	end := d.Start.Add(time.Duration(d.PlannedMS) * time.Millisecond)
	return putChanged(idx, nkey, u64(uint64(end.UnixMilli())))
}

// indexOpenDeliveries (schema 3 → 4) builds the index of open deliveries
// of a store written before it existed. Only the deliveries whose JSON
// says pending or received are decoded: a year's history, final, is not.
func indexOpenDeliveries(tx *bbolt.Tx, step *upgradeStep) error {
	idx := tx.Bucket(bucketOpenDeliveries)
	pending, received := []byte(`"state":"pending"`), []byte(`"state":"received"`)
	return tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
		step.read()
		if !bytes.Contains(v, pending) && !bytes.Contains(v, received) {
			return nil
		}
		var d loaxa.Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery %q: %w", k, err)
		}
		return indexOpenDelivery(idx, nodeDeliveryKey(d.Announcement, d.Occurrence, d.Node), &d)
	})
}

// FindDeliveries returns deliveries sorted by start, then node, then
// occurrence. A filter on the announcement is a prefix scan of the primary
// keys; a filter on the node uses the by-node index.
func (s *DeliveryService) FindDeliveries(ctx context.Context, f loaxa.DeliveryFilter) ([]*loaxa.Delivery, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Delivery
	decode := func(k, v []byte) error {
		var d loaxa.Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery %q: %w", k, err)
		}
		out = append(out, &d)
		return nil
	}
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		switch {
		case f.Node != "":
			p := prefix(f.Node)
			if f.Announcement != "" {
				p = prefix(f.Node, f.Announcement)
			}
			c := tx.Bucket(bucketNodeDeliveries).Cursor()
			for k, key := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, key = c.Next() {
				v := b.Get(key)
				if v == nil {
					return fmt.Errorf("delivery index %q points to missing %q", k, key)
				}
				if err := decode(key, v); err != nil {
					return err
				}
			}
		case f.Announcement != "":
			// An emergency's report, again and again: from the cache
			// what has not changed since it was last decoded.
			p := prefix(f.Announcement)
			c := b.Cursor()
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				d, err := s.db.deliveries.decode(k, v)
				if err != nil {
					return fmt.Errorf("decode delivery %q: %w", k, err)
				}
				out = append(out, d)
			}
		default:
			return b.ForEach(decode)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	if !f.From.IsZero() || !f.To.IsZero() {
		out = slices.DeleteFunc(out, func(d *loaxa.Delivery) bool {
			return !f.From.IsZero() && d.Start.Before(f.From) || !f.To.IsZero() && !d.Start.Before(f.To)
		})
	}
	slices.SortFunc(out, func(a, b *loaxa.Delivery) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Node, b.Node), strings.Compare(a.Occurrence, b.Occurrence))
	})
	return out, nil
}

// DropDeliveries deletes, for each node in keep, its pending and received
// deliveries whose occurrence keep[node] does not hold and that could
// still play at now (they start after now, or within their planned length
// plus grace before it). Started and final ones stay, and older ones: they
// are history. A due one, waiting its turn when it was cancelled, was
// kept, and the node, which no longer holds it, reported nothing: open for
// ever. Those of emergencies and live calls stay: the scheduler never
// holds their occurrences.
//
// It reads only the index of the nodes' open deliveries, which holds each
// one's planned end: nothing is decoded, and a node's history is not
// read. Decoding every delivery of the node cost a commune of 100 nodes
// with a year's history 3–4 s of store time per schedule change. All the
// nodes are one transaction: one commit (an fsync) for a pass of the
// scheduler, not one per node (BenchmarkDropDeliveriesWithHistory).
func (s *DeliveryService) DropDeliveries(ctx context.Context, keep map[string]map[string]bool, now time.Time, grace time.Duration) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if len(keep) == 0 {
		return nil
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		for _, node := range slices.Sorted(maps.Keys(keep)) {
			if err := dropDeliveries(tx, node, keep[node], now, grace); err != nil {
				return fmt.Errorf("node %s: %w", node, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop deliveries of %d nodes: %w", len(keep), err)
	}
	return nil
}

// dropDeliveries is DropDeliveries for one node, in tx.
func dropDeliveries(tx *bbolt.Tx, node string, keep map[string]bool, now time.Time, grace time.Duration) error {
	b := tx.Bucket(bucketDeliveries)
	idx := tx.Bucket(bucketNodeDeliveries)
	open := tx.Bucket(bucketOpenDeliveries)
	p := prefix(node)
	var drop [][]byte
	c := open.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		ann, occ, ok := bytes.Cut(k[len(p):], []byte{0})
		if !ok || len(v) != 8 {
			return fmt.Errorf("open delivery index entry %q: want an announcement and an occurrence after the node, and an 8-byte end, got %d bytes", k, len(v))
		}
		// Emergencies and live calls are sent, not scheduled: the
		// scheduler never holds their occurrences. A live call's were
		// dropped by any change to its nodes' schedules in its first
		// minutes, and the node's reports then made one without its plan
		// (a drill call's delivery said drill false), or an offline
		// node's left the call.
		end := time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		if keep[string(occ)] || !end.Add(grace).After(now) || sentNotScheduled(string(ann)) {
			continue
		}
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		ann, occ, _ := bytes.Cut(k[len(p):], []byte{0})
		if err := b.Delete(deliveryKey(string(ann), string(occ), node)); err != nil {
			return err
		}
		if err := idx.Delete(k); err != nil {
			return err
		}
		if err := open.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// NoteResends counts one more resend of occurrence to each of nodes, in
// one transaction.
func (s *DeliveryService) NoteResends(ctx context.Context, occurrence string, nodes []string, at time.Time) error {
	err := s.noteResends(ctx, occurrence, nodes, func(d *loaxa.Delivery) {
		d.Resends++
		d.ResentAt = at.UTC()
	})
	if err != nil {
		return fmt.Errorf("note resends of %s to %d nodes: %w", occurrence, len(nodes), err)
	}
	return nil
}

// NoteCancelResends counts one more resend of occurrence's cancel to each
// of nodes, in one transaction.
func (s *DeliveryService) NoteCancelResends(ctx context.Context, occurrence string, nodes []string, at time.Time) error {
	err := s.noteResends(ctx, occurrence, nodes, func(d *loaxa.Delivery) {
		d.CancelResends++
		d.CancelResentAt = at.UTC()
	})
	if err != nil {
		return fmt.Errorf("note cancel resends of %s to %d nodes: %w", occurrence, len(nodes), err)
	}
	return nil
}

// NoteLost implements loaxa.DeliveryService.
func (s *DeliveryService) NoteLost(ctx context.Context, occurrence, node string, at time.Time) error {
	err := s.noteResends(ctx, occurrence, []string{node}, func(d *loaxa.Delivery) {
		if d.State == loaxa.DeliveryStarted {
			d.State, d.Reason = loaxa.DeliverySuspended, protocol.ReasonInterrupted
		}
		d.UpdatedAt = at.UTC()
	})
	if err != nil {
		return fmt.Errorf("note that node %s no longer holds %s: %w", node, occurrence, err)
	}
	return nil
}

// noteResends applies note to the delivery of occurrence of each of nodes
// that has one, in one transaction.
func (s *DeliveryService) noteResends(ctx context.Context, occurrence string, nodes []string, note func(*loaxa.Delivery)) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	ann, _, ok := strings.Cut(occurrence, "@")
	if !ok || ann == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Occurrence %q is not an occurrence id: build it with loaxa.OccurrenceID.", occurrence)
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		for _, node := range nodes {
			var d loaxa.Delivery
			found, err := getJSON(b, deliveryKey(ann, occurrence, node), &d)
			if err != nil {
				return err
			} else if !found {
				continue
			}
			note(&d)
			if err := putDelivery(tx, &d); err != nil {
				return err
			}
		}
		return nil
	})
}
