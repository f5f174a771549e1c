package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

var _ loaxa.Snapshot = (*snapshot)(nil)

// snapshot is a read transaction seen as a loaxa.Snapshot.
type snapshot struct {
	tx  *bbolt.Tx
	ids []string
}

func (s *snapshot) Size() int64                        { return s.tx.Size() }
func (s *snapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }
func (s *snapshot) ContentIDs() []string               { return s.ids }

// Snapshot calls fn with a consistent view of the whole store in one read
// transaction: writers carry on meanwhile (bbolt's MVCC), and the file fn
// writes is the store as of the start. Node statuses kept in memory are
// written first, so the backup has the newest; if that fails, the backup
// goes on with the statuses of the last flush (soft state, which nodes
// report again) rather than not at all. Keep fn short, as a long read
// transaction holds back the reuse of freed pages.
func (db *DB) Snapshot(ctx context.Context, fn func(loaxa.Snapshot) error) error {
	if err := db.flushStatus(); err != nil {
		db.Logger.Warn("snapshot without the newest node statuses", "err", err)
	}
	return db.view(func(tx *bbolt.Tx) error {
		s := &snapshot{tx: tx}
		err := tx.Bucket(bucketContents).ForEach(func(k, _ []byte) error {
			s.ids = append(s.ids, string(k))
			return ctx.Err()
		})
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		return fn(s)
	})
}

// VerifyFile checks a store file restored from a backup before it is put in
// place: bbolt's page structure, a schema this code reads, and every
// bucket. It returns the content the store refers to.
func VerifyFile(path string) (contentIDs []string, err error) {
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	err = b.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("store is damaged: %w", errors.Join(errs...))
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("not a loaxa store: no %s bucket", bucketMeta)
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("not a loaxa store: no schema version")
		}
		if got := binary.BigEndian.Uint64(v); got > schemaVersion {
			return fmt.Errorf("store schema version %d is newer than this controller's %d", got, schemaVersion)
		}
		contents := tx.Bucket(bucketContents)
		if contents == nil {
			return fmt.Errorf("not a loaxa store: no %s bucket", bucketContents)
		}
		return contents.ForEach(func(k, _ []byte) error {
			contentIDs = append(contentIDs, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("verify store %s: %w", path, err)
	}
	return contentIDs, nil
}
