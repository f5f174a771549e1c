package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// DesiredService stores the desired state last compiled for each node.
type DesiredService struct {
	db *DB
}

var _ loaxa.DesiredService = (*DesiredService)(nil)

// NewDesiredService returns a DesiredService on db.
func NewDesiredService(db *DB) *DesiredService {
	return &DesiredService{db: db}
}

// FindDesired returns the node's last desired state or ENotFound.
func (s *DesiredService) FindDesired(ctx context.Context, node string) (*loaxa.Desired, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var d loaxa.Desired
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketDesired), []byte(node), &d)
		if err == nil && !ok {
			return loaxa.Errorf(loaxa.ENotFound, "No desired state has been compiled for node %q yet.", node)
		}
		if err != nil {
			return err
		}
		// RecordPublished writes Published into the head alone.
		var h desiredHead
		if ok, err := getJSON(tx.Bucket(bucketDesiredHeads), []byte(node), &h); err != nil {
			return err
		} else if ok && h.Version == d.State.Version && h.Hash == d.Hash {
			d.Published = h.Published
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find desired state of %s: %w", node, err)
	}
	return &d, nil
}

// desiredHead is the record SaveDesired keeps beside each desired state,
// so that a pass over every node reads a few bytes of each, not its
// occurrences.
type desiredHead struct {
	Hash      string    `json:"hash"`
	Version   uint64    `json:"version"`
	Published time.Time `json:"published,omitzero"`
}

// FindDesiredHead returns the head of the node's last desired state, or
// ENotFound. A state saved before heads were kept is read whole.
func (s *DesiredService) FindDesiredHead(ctx context.Context, node string) (loaxa.DesiredHead, error) {
	if err := checkCtx(ctx); err != nil {
		return loaxa.DesiredHead{}, err
	}
	var h desiredHead
	err := s.db.view(func(tx *bbolt.Tx) error {
		if ok, err := getJSON(tx.Bucket(bucketDesiredHeads), []byte(node), &h); ok || err != nil {
			return err
		}
		var d loaxa.Desired
		ok, err := getJSON(tx.Bucket(bucketDesired), []byte(node), &d)
		switch {
		case err != nil:
			return err
		case !ok:
			return loaxa.Errorf(loaxa.ENotFound, "No desired state has been compiled for node %q yet.", node)
		}
		h = desiredHead{Hash: d.Hash, Version: d.State.Version, Published: d.Published}
		return nil
	})
	if err != nil {
		return loaxa.DesiredHead{}, fmt.Errorf("find desired state of %s: %w", node, err)
	}
	return loaxa.DesiredHead(h), nil
}

// SaveDesired stores d, replacing the node's previous one. The node must
// exist, and d.State must be set and addressed to the same node.
func (s *DesiredService) SaveDesired(ctx context.Context, d *loaxa.Desired) error {
	return s.SaveDesiredBatch(ctx, []*loaxa.Desired{d})[0]
}

// SaveDesiredBatch stores each of ds as SaveDesired does, in one
// transaction: one commit (two fsyncs) for a batch of the scheduler's
// changed nodes, where a commit each made a province-wide change of
// 10,000 nodes take 23–26 s (BENCHMARKS.md, "The scheduler's pass over a
// province"). A state that is invalid, whose node does not exist or that
// cannot be encoded gets its own error and the others are stored; an
// error of the transaction is every state's, and none is stored.
func (s *DesiredService) SaveDesiredBatch(ctx context.Context, ds []*loaxa.Desired) []error {
	errs := make([]error, len(ds))
	fail := func(err error) []error {
		for i, d := range ds {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("save desired state of %s: %w", d.Node, err)
			}
		}
		return errs
	}
	if err := checkCtx(ctx); err != nil {
		return fail(err)
	}
	// Encoded before the transaction, which holds the store's only
	// writer: a batch's occurrences take longer to encode than to put.
	type encoded struct {
		i          int
		head, body []byte
	}
	todo := make([]encoded, 0, len(ds))
	for i, d := range ds {
		if err := checkDesired(d); err != nil {
			errs[i] = err
			continue
		}
		head, err := json.Marshal(desiredHead{Hash: d.Hash, Version: d.State.Version, Published: d.Published})
		if err != nil {
			errs[i] = fmt.Errorf("save desired state of %s: encode head: %w", d.Node, err)
			continue
		}
		body, err := json.Marshal(d)
		if err != nil {
			errs[i] = fmt.Errorf("save desired state of %s: encode: %w", d.Node, err)
			continue
		}
		todo = append(todo, encoded{i, head, body})
	}
	if len(todo) == 0 {
		return errs
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		nodes, heads, bodies := tx.Bucket(bucketNodes), tx.Bucket(bucketDesiredHeads), tx.Bucket(bucketDesired)
		for _, e := range todo {
			key := []byte(ds[e.i].Node)
			if nodes.Get(key) == nil {
				errs[e.i] = fmt.Errorf("save desired state of %s: %w", ds[e.i].Node, nodeNotFound(ds[e.i].Node))
				continue
			}
			// The head is FindDesiredHead's: it changes with the state,
			// in the same transaction, or a pass would compare against
			// an older one.
			if err := heads.Put(key, e.head); err != nil {
				return fmt.Errorf("put head %q: %w", key, err)
			}
			if err := bodies.Put(key, e.body); err != nil {
				return fmt.Errorf("put %q: %w", key, err)
			}
		}
		return nil
	})
	if err != nil {
		// Nothing was stored: not even the states that had no error of
		// their own.
		return fail(fmt.Errorf("store %d desired states: %w", len(todo), err))
	}
	return errs
}

// RecordPublished records each of ps in one transaction, writing only the
// head of each state: SaveDesiredBatch encoded and wrote the whole state
// (its occurrences) again to change one time. A state saved before heads
// were kept gets its head from it. A record whose version the node's
// state no longer has is left out.
func (s *DesiredService) RecordPublished(ctx context.Context, ps []loaxa.DesiredPublished) []error {
	errs := make([]error, len(ps))
	if len(ps) == 0 {
		return errs
	}
	if err := checkCtx(ctx); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		heads, bodies := tx.Bucket(bucketDesiredHeads), tx.Bucket(bucketDesired)
		for i, p := range ps {
			key := []byte(p.Node)
			var h desiredHead
			ok, err := getJSON(heads, key, &h)
			if err == nil && !ok {
				var d loaxa.Desired
				if ok, err = getJSON(bodies, key, &d); ok && d.State != nil {
					h = desiredHead{Hash: d.Hash, Version: d.State.Version, Published: d.Published}
				}
			}
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("record publish of desired state %d of %s: %w", p.Version, p.Node, err)
				continue
			case !ok:
				errs[i] = fmt.Errorf("record publish of desired state %d of %s: %w", p.Version, p.Node,
					loaxa.Errorf(loaxa.ENotFound, "No desired state has been compiled for node %q yet.", p.Node))
				continue
			case h.Version != p.Version:
				continue // a newer state was stored since
			}
			h.Published = p.At
			raw, err := json.Marshal(h)
			if err != nil {
				return fmt.Errorf("encode head %q: %w", key, err)
			}
			if err := heads.Put(key, raw); err != nil {
				return fmt.Errorf("put head %q: %w", key, err)
			}
		}
		return nil
	})
	if err != nil {
		for i, p := range ps {
			errs[i] = fmt.Errorf("record publish of desired state %d of %s: %w", p.Version, p.Node, err)
		}
	}
	return errs
}

// checkDesired returns why d cannot be stored, or nil.
func checkDesired(d *loaxa.Desired) error {
	if d.State == nil {
		return loaxa.Errorf(loaxa.EInvalid, "Desired state for node %q has no state.", d.Node)
	}
	if d.State.Node != d.Node {
		return loaxa.Errorf(loaxa.EInvalid, "Desired state for node %q is addressed to node %q.", d.Node, d.State.Node)
	}
	return nil
}
