package bolt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"
	"golang.org/x/text/unicode/norm"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// ContentService stores content metadata. The audio bytes live in the media
// library, named by the same id.
type ContentService struct {
	db *DB
}

var _ loaxa.ContentService = (*ContentService)(nil)

// NewContentService returns a ContentService on db.
func NewContentService(db *DB) *ContentService {
	return &ContentService{db: db}
}

// CreateContent stores c with CreatedAt set and returns what is stored. If
// content with the same id exists, it returns that one: identical audio is
// stored once, whoever uploads it again (only a missing Chunks is filled
// in from c).
func (s *ContentService) CreateContent(ctx context.Context, c *loaxa.Content) (*loaxa.Content, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if !protocol.ValidContentID(c.ID) {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Content id %q is not a lower-case hex SHA-256 of the audio.", c.ID)
	}
	if c.Size < 0 || c.DurationMS < 0 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Content %s: size %d and duration %d ms must not be negative.", c.ID, c.Size, c.DurationMS)
	}
	var out loaxa.Content
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketContents)
		if ok, err := getJSON(b, []byte(c.ID), &out); err != nil {
			return err
		} else if ok {
			if out.Chunks != "" || c.Chunks == "" {
				return nil
			}
			out.Chunks = c.Chunks
			return putJSON(b, []byte(c.ID), &out)
		}
		out = *c
		out.CreatedAt = s.db.now()
		return putJSON(b, []byte(c.ID), &out)
	})
	if err != nil {
		return nil, fmt.Errorf("create content %s: %w", c.ID, err)
	}
	return &out, nil
}

// FindContentByID returns the content or ENotFound.
func (s *ContentService) FindContentByID(ctx context.Context, id string) (*loaxa.Content, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var c loaxa.Content
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketContents), []byte(id), &c)
		if err == nil && !ok {
			return loaxa.Errorf(loaxa.ENotFound, "Content %q does not exist.", id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find content %s: %w", id, err)
	}
	return &c, nil
}

// SetContentChunks records the chunk root of content id.
func (s *ContentService) SetContentChunks(ctx context.Context, id, chunks string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if !protocol.ValidContentID(chunks) {
		return loaxa.Errorf(loaxa.EInvalid, "Chunk root %q of content %s is not a lower-case hex SHA-256.", chunks, id)
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketContents)
		var c loaxa.Content
		ok, err := getJSON(b, []byte(id), &c)
		if err == nil && !ok {
			return loaxa.Errorf(loaxa.ENotFound, "Content %q does not exist.", id)
		}
		if err != nil {
			return err
		}
		c.Chunks = chunks
		return putJSON(b, []byte(id), &c)
	})
	if err != nil {
		return fmt.Errorf("set chunks of content %s: %w", id, err)
	}
	return nil
}

// FindContents returns content newest first (ties by id); f.Query keeps only
// titles that contain it, ignoring case and Unicode form.
func (s *ContentService) FindContents(ctx context.Context, f loaxa.ContentFilter) ([]*loaxa.Content, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	q := searchForm(strings.TrimSpace(f.Query))
	var out []*loaxa.Content
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketContents)
		return b.ForEach(func(k, _ []byte) error {
			var c loaxa.Content
			if _, err := getJSON(b, k, &c); err != nil {
				return err
			}
			if q == "" || strings.Contains(searchForm(c.Title), q) {
				out = append(out, &c)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find content: %w", err)
	}
	slices.SortStableFunc(out, func(a, b *loaxa.Content) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// searchForm is text as titles are searched: precomposed (NFC) and lower
// case. Vietnamese typed decomposed (NFD: on a Mac, pasted from Word)
// looks the same as precomposed but differs byte for byte; titles stored
// before they were normalised on the way in are found too.
func searchForm(s string) string {
	return strings.ToLower(norm.NFC.String(s))
}
