package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// Buckets of the upstream link, created on first write:
//
//	upstream_outbox   seq(8) → export document (JSON)
//	upstream_meta     "period_end" → RFC 3339 time
//	upstream_systems  system id → UpstreamSystem
//	upstream_inbound  system \x00 bulletin id → announcement id
var (
	bucketUpstreamOutbox  = []byte("upstream_outbox")
	bucketUpstreamMeta    = []byte("upstream_meta")
	bucketUpstreamSystems = []byte("upstream_systems")
	bucketUpstreamInbound = []byte("upstream_inbound")
	keyPeriodEnd          = []byte("period_end")
)

// UpstreamService stores the export outbox and the upstream systems.
type UpstreamService struct {
	db *DB
}

var (
	_ loaxa.UpstreamOutbox        = (*UpstreamService)(nil)
	_ loaxa.UpstreamSystemService = (*UpstreamService)(nil)
)

// NewUpstreamService returns an UpstreamService on db.
func NewUpstreamService(db *DB) *UpstreamService { return &UpstreamService{db: db} }

// AppendExport queues doc and records the period's end, in one step.
func (s *UpstreamService) AppendExport(ctx context.Context, doc []byte, periodEnd time.Time) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUpstreamOutbox)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketUpstreamMeta)
		if err != nil {
			return err
		}
		if doc != nil {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(u64(seq), doc); err != nil {
				return err
			}
		}
		return meta.Put(keyPeriodEnd, []byte(periodEnd.UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("queue export: %w", err)
	}
	return nil
}

// NextExport returns the oldest queued document.
func (s *UpstreamService) NextExport(ctx context.Context) (seq uint64, doc []byte, ok bool, err error) {
	err = s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUpstreamOutbox)
		if b == nil {
			return nil
		}
		k, v := b.Cursor().First()
		if k == nil {
			return nil
		}
		seq, doc, ok = binary.BigEndian.Uint64(k), append([]byte(nil), v...), true
		return nil
	})
	if err != nil {
		return 0, nil, false, fmt.Errorf("next export: %w", err)
	}
	return seq, doc, ok, nil
}

// RemoveExport drops a delivered document.
func (s *UpstreamService) RemoveExport(ctx context.Context, seq uint64) error {
	err := s.db.update(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketUpstreamOutbox); b != nil {
			return b.Delete(u64(seq))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove export %d: %w", seq, err)
	}
	return nil
}

// ExportQueue returns the queue length and the last period's end.
func (s *UpstreamService) ExportQueue(ctx context.Context) (pending int, periodEnd time.Time, err error) {
	err = s.db.view(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketUpstreamOutbox); b != nil {
			pending = b.Stats().KeyN
		}
		if meta := tx.Bucket(bucketUpstreamMeta); meta != nil {
			if v := meta.Get(keyPeriodEnd); v != nil {
				t, err := time.Parse(time.RFC3339Nano, string(v))
				if err != nil {
					return err
				}
				periodEnd = t
			}
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("export queue: %w", err)
	}
	return pending, periodEnd, nil
}

// CreateUpstreamSystem stores a new system; its id must be new.
func (s *UpstreamService) CreateUpstreamSystem(ctx context.Context, sys *loaxa.UpstreamSystem) error {
	if err := checkID("System", sys.ID); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketAreas).Get([]byte(sys.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q does not exist.", sys.Area)
		}
		b, err := tx.CreateBucketIfNotExists(bucketUpstreamSystems)
		if err != nil {
			return err
		}
		if b.Get([]byte(sys.ID)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "System %q exists already.", sys.ID)
		}
		sys.CreatedAt = s.db.now()
		return putJSON(b, []byte(sys.ID), upstreamSystemRecord{UpstreamSystem: *sys, KeyHash: sys.KeyHash})
	})
	if err != nil {
		return fmt.Errorf("create system %s: %w", sys.ID, err)
	}
	return nil
}

// upstreamSystemRecord keeps the key hash, which the JSON of
// UpstreamSystem leaves out.
type upstreamSystemRecord struct {
	loaxa.UpstreamSystem
	KeyHash []byte `json:"key_hash"`
}

// FindUpstreamSystemByID returns a system or ENotFound.
func (s *UpstreamService) FindUpstreamSystemByID(ctx context.Context, id string) (*loaxa.UpstreamSystem, error) {
	var rec upstreamSystemRecord
	found := false
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUpstreamSystems)
		if b == nil {
			return nil
		}
		var err error
		found, err = getJSON(b, []byte(id), &rec)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find system %s: %w", id, err)
	}
	if !found {
		return nil, loaxa.Errorf(loaxa.ENotFound, "System %q does not exist.", id)
	}
	sys := rec.UpstreamSystem
	sys.KeyHash = rec.KeyHash
	return &sys, nil
}

// FindUpstreamSystems returns every system.
func (s *UpstreamService) FindUpstreamSystems(ctx context.Context) ([]*loaxa.UpstreamSystem, error) {
	var out []*loaxa.UpstreamSystem
	err := s.db.view(func(tx *bbolt.Tx) error {
		return forEachJSON(tx, bucketUpstreamSystems, func(r *upstreamSystemRecord) {
			sys := r.UpstreamSystem
			out = append(out, &sys)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find systems: %w", err)
	}
	return out, nil
}

// InboundAnnouncement returns the announcement made for a bulletin.
func (s *UpstreamService) InboundAnnouncement(ctx context.Context, system, bulletin string) (string, error) {
	var ann string
	err := s.db.view(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketUpstreamInbound); b != nil {
			ann = string(b.Get([]byte(system + "\x00" + bulletin)))
		}
		return nil
	})
	return ann, err
}

// SetInboundAnnouncement records the announcement made for a bulletin.
func (s *UpstreamService) SetInboundAnnouncement(ctx context.Context, system, bulletin, announcement string) error {
	return s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUpstreamInbound)
		if err != nil {
			return err
		}
		return b.Put([]byte(system+"\x00"+bulletin), []byte(announcement))
	})
}
