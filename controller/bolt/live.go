package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// LiveCallService stores live call records (loaxa.LiveCallStore). Calls
// are keyed by start time then id, so that the newest are a reverse scan;
// live_call_ids finds a call's key by its (random) id, and
// live_calls_on_air holds the keys of the calls not ended, so that finding
// them reads no other record (a year of calls, at each start and each
// listing of the calls on air).
type LiveCallService struct {
	db *DB
}

var _ loaxa.LiveCallStore = (*LiveCallService)(nil)

// NewLiveCallService returns a LiveCallService on db.
func NewLiveCallService(db *DB) *LiveCallService {
	return &LiveCallService{db: db}
}

func liveCallKey(c *loaxa.LiveCall) []byte {
	return append(msKey(c.Started), c.ID...)
}

func liveCallNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "There is no live call %q; list them with GET /api/v1/live/calls.", id)
}

// CreateLiveCall stores c; EConflict if a call with its id exists.
func (s *LiveCallService) CreateLiveCall(ctx context.Context, c *loaxa.LiveCall) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if !loaxa.IsLiveCallID(c.ID) || c.Started.IsZero() {
		return loaxa.Errorf(loaxa.EInvalid, "Live call %q: the id must start with %q and the start be set.", c.ID, loaxa.LiveCallIDPrefix)
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		ids := tx.Bucket(bucketLiveCallIDs)
		if ids.Get([]byte(c.ID)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "Live call %q exists already.", c.ID)
		}
		key := liveCallKey(c)
		if err := putJSON(tx.Bucket(bucketLiveCalls), key, c); err != nil {
			return err
		}
		if err := ids.Put([]byte(c.ID), key); err != nil {
			return err
		}
		return indexLiveCallOnAir(tx, key, c)
	})
	if err != nil {
		return fmt.Errorf("create live call %s: %w", c.ID, err)
	}
	return nil
}

// indexLiveCallOnAir keeps call c, stored under key, in live_calls_on_air
// while it is on air.
func indexLiveCallOnAir(tx *bbolt.Tx, key []byte, c *loaxa.LiveCall) error {
	onAir := tx.Bucket(bucketLiveCallsOnAir)
	if !c.Active() {
		return onAir.Delete([]byte(c.ID))
	}
	return onAir.Put([]byte(c.ID), key)
}

// indexLiveCallsOnAir (schema 4 → 5) indexes the calls not ended, which
// FindLiveCalls reads instead of every record.
func indexLiveCallsOnAir(tx *bbolt.Tx, step *upgradeStep) error {
	return tx.Bucket(bucketLiveCalls).ForEach(func(k, v []byte) error {
		step.read()
		var c loaxa.LiveCall
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode live call %q: %w", k, err)
		}
		return indexLiveCallOnAir(tx, k, &c)
	})
}

// getLiveCall reads call id into c and returns its key.
func getLiveCall(tx *bbolt.Tx, id string, c *loaxa.LiveCall) ([]byte, error) {
	key := tx.Bucket(bucketLiveCallIDs).Get([]byte(id))
	if key == nil {
		return nil, liveCallNotFound(id)
	}
	ok, err := getJSON(tx.Bucket(bucketLiveCalls), key, c)
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("live call index %q points to missing %q", id, key)
	}
	return key, nil
}

// UpdateLiveCall changes call id with fn in one transaction; the id and
// start, which make the key, cannot change.
func (s *LiveCallService) UpdateLiveCall(ctx context.Context, id string, fn func(c *loaxa.LiveCall) error) (*loaxa.LiveCall, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var c loaxa.LiveCall
	err := s.db.update(func(tx *bbolt.Tx) error {
		c = loaxa.LiveCall{}
		key, err := getLiveCall(tx, id, &c)
		if err != nil {
			return err
		}
		started := c.Started
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.Started = id, started
		if err := putJSON(tx.Bucket(bucketLiveCalls), key, &c); err != nil {
			return err
		}
		return indexLiveCallOnAir(tx, key, &c)
	})
	if err != nil {
		return nil, fmt.Errorf("update live call %s: %w", id, err)
	}
	return &c, nil
}

// FindLiveCallByID returns the call or ENotFound.
func (s *LiveCallService) FindLiveCallByID(ctx context.Context, id string) (*loaxa.LiveCall, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var c loaxa.LiveCall
	err := s.db.view(func(tx *bbolt.Tx) error {
		_, err := getLiveCall(tx, id, &c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find live call %s: %w", id, err)
	}
	return &c, nil
}

// FindLiveCalls returns calls newest first (by start). The calls on air
// are read through their index, and a scan stops at the first call
// started before f.Since, undecoded.
func (s *LiveCallService) FindLiveCalls(ctx context.Context, f loaxa.LiveCallFilter) ([]*loaxa.LiveCall, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var since []byte
	if !f.Since.IsZero() {
		since = msKey(f.Since)
	}
	var out []*loaxa.LiveCall
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLiveCalls)
		var keys [][]byte
		if f.Active {
			if err := tx.Bucket(bucketLiveCallsOnAir).ForEach(func(_, k []byte) error {
				keys = append(keys, k)
				return nil
			}); err != nil {
				return err
			}
			slices.SortFunc(keys, func(x, y []byte) int { return bytes.Compare(y, x) })
		} else {
			c := b.Cursor()
			for k, _ := c.Last(); k != nil && (f.Limit <= 0 || len(keys) < f.Limit); k, _ = c.Prev() {
				if since != nil && bytes.Compare(k[:len(since)], since) < 0 {
					break
				}
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			if f.Limit > 0 && len(out) == f.Limit || since != nil && bytes.Compare(k[:len(since)], since) < 0 {
				break
			}
			var call loaxa.LiveCall
			ok, err := getJSON(b, k, &call)
			if err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("live calls on air: %q points to a missing call", k)
			}
			out = append(out, &call)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find live calls: %w", err)
	}
	return out, nil
}
