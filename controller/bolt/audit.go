package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// Limits on FindAudit results.
const (
	DefaultAuditLimit = 1000
	MaxAuditLimit     = 10000
)

// AuditService keeps the audit log: an append-only bucket keyed by a
// sequence number, so entries read back in the order they were written.
// Nothing in this package updates an entry; only the retention
// (DB.Purge, opt-in) deletes the oldest ones.
type AuditService struct {
	db *DB
}

var _ loaxa.AuditService = (*AuditService)(nil)

// NewAuditService returns an AuditService on db.
func NewAuditService(db *DB) *AuditService {
	return &AuditService{db: db}
}

// RecordAudit appends e, assigning e.Seq, and e.At if it is zero.
func (s *AuditService) RecordAudit(ctx context.Context, e *loaxa.AuditEntry) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if e.Actor == "" || e.Action == "" {
		return loaxa.Errorf(loaxa.EInvalid, "An audit entry needs an actor and an action (got %q, %q).", e.Actor, e.Action)
	}
	rec := *e
	if rec.At.IsZero() {
		rec.At = s.db.now()
	}
	rec.At = rec.At.UTC()
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next audit sequence: %w", err)
		}
		rec.Seq = seq
		return putJSON(b, u64(seq), &rec)
	})
	if err != nil {
		return fmt.Errorf("record audit %s by %s: %w", e.Action, e.Actor, err)
	}
	*e = rec
	return nil
}

// FindAudit returns entries oldest first, or newest first with f.Newest
// (the limit then keeps the newest). f.Within keeps the entries whose
// area lies in that subtree (entries without an area are left out, since
// they concern the whole installation); f.Within must name an existing area.
// f.Actor matches exactly; From is inclusive and To exclusive. Limit is
// capped at MaxAuditLimit, and 0 means DefaultAuditLimit.
func (s *AuditService) FindAudit(ctx context.Context, f loaxa.AuditFilter) ([]*loaxa.AuditEntry, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	var out []*loaxa.AuditEntry
	err := s.db.view(func(tx *bbolt.Tx) error {
		var within map[string]bool
		if f.Within != "" {
			var err error
			if within, err = subtreeSet(tx, f.Within); err != nil {
				return err
			}
		}
		c := tx.Bucket(bucketAudit).Cursor()
		first, next := c.First, c.Next
		if f.Newest {
			first, next = c.Last, c.Prev
		}
		for k, v := first(); k != nil && len(out) < limit; k, v = next() {
			// Entries are in time order but for clock steps; a time
			// filter still has to look at each one.
			var e loaxa.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			switch {
			case f.Actor != "" && e.Actor != f.Actor:
			case within != nil && !within[e.Area] && !slices.ContainsFunc(e.Areas, func(a string) bool { return within[a] }):
			case !f.From.IsZero() && e.At.Before(f.From):
			case !f.To.IsZero() && !e.At.Before(f.To):
			default:
				out = append(out, &e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find audit: %w", err)
	}
	return out, nil
}
