package bolt

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// EmergencyService stores emergencies (loaxa.EmergencyStore).
type EmergencyService struct {
	db *DB
}

var _ loaxa.EmergencyStore = (*EmergencyService)(nil)

// NewEmergencyService returns an EmergencyService on db.
func NewEmergencyService(db *DB) *EmergencyService {
	return &EmergencyService{db: db}
}

// emergencyID formats the id of the seq-th emergency.
func emergencyID(seq uint64) string {
	return fmt.Sprintf("%s%06d", loaxa.EmergencyIDPrefix, seq)
}

func emergencyNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "There is no emergency %q; list them with GET /api/v1/emergency.", id)
}

// CreateEmergency assigns e.ID and stores e.
func (s *EmergencyService) CreateEmergency(ctx context.Context, e *loaxa.Emergency) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEmergencies)
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next emergency id: %w", err)
		}
		e.ID = emergencyID(seq)
		return putJSON(b, []byte(e.ID), e)
	})
	if err != nil {
		return fmt.Errorf("create emergency: %w", err)
	}
	return nil
}

// UpdateEmergency changes emergency id with fn in one transaction.
func (s *EmergencyService) UpdateEmergency(ctx context.Context, id string, fn func(e *loaxa.Emergency) error) (*loaxa.Emergency, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var e loaxa.Emergency
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEmergencies)
		ok, err := getJSON(b, []byte(id), &e)
		if err != nil {
			return err
		} else if !ok {
			return emergencyNotFound(id)
		}
		if err := fn(&e); err != nil {
			return err
		}
		return putJSON(b, []byte(id), &e)
	})
	if err != nil {
		return nil, fmt.Errorf("update emergency %s: %w", id, err)
	}
	return &e, nil
}

// FindEmergencyByID returns the emergency or ENotFound.
func (s *EmergencyService) FindEmergencyByID(ctx context.Context, id string) (*loaxa.Emergency, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var e loaxa.Emergency
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketEmergencies), []byte(id), &e)
		if err == nil && !ok {
			return emergencyNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find emergency %s: %w", id, err)
	}
	return &e, nil
}

// FindEmergencies returns emergencies newest first, at most limit (0: all).
func (s *EmergencyService) FindEmergencies(ctx context.Context, limit int) ([]*loaxa.Emergency, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Emergency
	err := s.db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEmergencies).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			var e loaxa.Emergency
			if _, err := getJSON(tx.Bucket(bucketEmergencies), bytes.Clone(k), &e); err != nil {
				return err
			}
			out = append(out, &e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find emergencies: %w", err)
	}
	// Ids sort by creation as strings up to e999999; length first keeps
	// the order beyond.
	slices.SortFunc(out, func(a, b *loaxa.Emergency) int {
		return cmp.Or(cmp.Compare(len(b.ID), len(a.ID)), cmp.Compare(b.ID, a.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
