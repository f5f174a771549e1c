package bolt

import (
	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// StandingService stores standing content: content id → the areas whose
// nodes keep it.
type StandingService struct {
	db *DB
}

var _ loaxa.StandingService = (*StandingService)(nil)

// NewStandingService returns a StandingService on db.
func NewStandingService(db *DB) *StandingService { return &StandingService{db: db} }

// SetStanding replaces the areas of content; the content must exist.
func (s *StandingService) SetStanding(ctx context.Context, content string, areas []string, by string) (*loaxa.StandingContent, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if !protocol.ValidContentID(content) {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Content id %q is not a lower-case hex SHA-256 of the audio.", content)
	}
	areas = slices.Compact(slices.Sorted(slices.Values(areas)))
	var out *loaxa.StandingContent
	err := s.db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketContents).Get([]byte(content)) == nil {
			return loaxa.Errorf(loaxa.ENotFound, "There is no content %s; list content with GET /api/v1/content.", content)
		}
		b := tx.Bucket(bucketStanding)
		if len(areas) == 0 {
			return b.Delete([]byte(content))
		}
		out = &loaxa.StandingContent{Content: content, Areas: areas, By: by, At: s.db.now()}
		return putJSON(b, []byte(content), out)
	})
	if err != nil {
		return nil, fmt.Errorf("set standing content %s: %w", content, err)
	}
	return out, nil
}

// FindStanding returns every standing content, by content id.
func (s *StandingService) FindStanding(ctx context.Context) ([]*loaxa.StandingContent, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.StandingContent
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStanding)
		return b.ForEach(func(k, _ []byte) error {
			var sc loaxa.StandingContent
			if _, err := getJSON(b, k, &sc); err != nil {
				return err
			}
			out = append(out, &sc)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find standing content: %w", err)
	}
	return out, nil
}
