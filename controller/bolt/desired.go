package bolt

import (
	"context"
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
		return err
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
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if d.State == nil {
		return loaxa.Errorf(loaxa.EInvalid, "Desired state for node %q has no state.", d.Node)
	}
	if d.State.Node != d.Node {
		return loaxa.Errorf(loaxa.EInvalid, "Desired state for node %q is addressed to node %q.", d.Node, d.State.Node)
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketNodes).Get([]byte(d.Node)) == nil {
			return nodeNotFound(d.Node)
		}
		if err := putJSON(tx.Bucket(bucketDesiredHeads), []byte(d.Node), desiredHead{Hash: d.Hash, Version: d.State.Version, Published: d.Published}); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketDesired), []byte(d.Node), d)
	})
	if err != nil {
		return fmt.Errorf("save desired state of %s: %w", d.Node, err)
	}
	return nil
}
