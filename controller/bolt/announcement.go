package bolt

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// AnnouncementService stores announcements.
type AnnouncementService struct {
	db *DB
}

var _ loaxa.AnnouncementService = (*AnnouncementService)(nil)

// NewAnnouncementService returns an AnnouncementService on db.
func NewAnnouncementService(db *DB) *AnnouncementService {
	return &AnnouncementService{db: db}
}

// announcementID formats the id of the seq-th announcement. Ids sort by
// creation as strings up to a999999; FindAnnouncements sorts by length
// first, so the order holds beyond that too.
func announcementID(seq uint64) string {
	return fmt.Sprintf("a%06d", seq)
}

// CreateAnnouncement checks a, assigns a.ID, sets State active and
// CreatedAt, and stores it. Its content, chimes, target areas and target
// nodes must exist; Repeat 0 means 1.
func (s *AnnouncementService) CreateAnnouncement(ctx context.Context, a *loaxa.Announcement) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := validateAnnouncement(a); err != nil {
		return err
	}
	rec := *a
	rec.Targets = loaxa.Targets{Areas: slices.Clone(a.Targets.Areas), Nodes: slices.Clone(a.Targets.Nodes)}
	if rec.Repeat == 0 {
		rec.Repeat = 1
	}
	rec.State = loaxa.AnnouncementActive
	err := s.db.update(func(tx *bbolt.Tx) error {
		if a.StreamURL == "" && tx.Bucket(bucketContents).Get([]byte(a.ContentID)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Content %q does not exist: upload it first, then use the id it gets.", a.ContentID)
		}
		// Checked here too, not only by the API: a bulletin stored with a
		// chime the library lacks cannot be scheduled anywhere (the
		// bulletin-unschedulable alarm), and the API's look-up ran in a
		// transaction of its own.
		for _, ch := range []struct{ field, id string }{{"opening_chime", a.OpeningChime}, {"closing_chime", a.ClosingChime}} {
			if ch.id != "" && tx.Bucket(bucketContents).Get([]byte(ch.id)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "%s %s does not exist; upload the chime with POST /api/v1/content first.", ch.field, ch.id)
			}
		}
		for _, id := range a.Targets.Areas {
			if tx.Bucket(bucketAreas).Get([]byte(id)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Target area %q does not exist.", id)
			}
		}
		for _, id := range a.Targets.Nodes {
			if tx.Bucket(bucketNodes).Get([]byte(id)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Target node %q does not exist.", id)
			}
		}
		b := tx.Bucket(bucketAnnouncements)
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next announcement id: %w", err)
		}
		rec.ID = announcementID(seq)
		rec.CreatedAt = s.db.now()
		return putJSON(b, []byte(rec.ID), &rec)
	})
	if err != nil {
		return fmt.Errorf("create announcement: %w", err)
	}
	*a = rec
	return nil
}

func validateAnnouncement(a *loaxa.Announcement) error {
	switch {
	case a.StreamURL != "" && (a.ContentID != "" || a.Priority != protocol.PriorityBackground || a.DurationMS <= 0):
		return loaxa.Errorf(loaxa.EInvalid, "A stream relay is background, has a duration and no content_id.")
	case a.ContentID == "" && a.StreamURL == "":
		return loaxa.Errorf(loaxa.EInvalid, "The announcement has no content_id: upload audio first and use its id.")
	case len(a.Targets.Areas) == 0 && len(a.Targets.Nodes) == 0:
		return loaxa.Errorf(loaxa.EInvalid, "The announcement has no targets: list at least one area or node.")
	case !a.Priority.Valid():
		return loaxa.Errorf(loaxa.EInvalid, "Priority %q is unknown: use background, normal, priority or emergency.", a.Priority)
	case a.Start.IsZero():
		return loaxa.Errorf(loaxa.EInvalid, "The announcement has no start: give an RFC 3339 time such as 2025-03-01T05:30:00+07:00.")
	case a.Repeat < 0:
		return loaxa.Errorf(loaxa.EInvalid, "Repeat %d is negative: give how many times each occurrence plays (1 or more).", a.Repeat)
	}
	for _, id := range a.Targets.Areas {
		if err := checkID("Target area", id); err != nil {
			return err
		}
	}
	for _, id := range a.Targets.Nodes {
		if err := checkID("Target node", id); err != nil {
			return err
		}
	}
	return nil
}

// FindAnnouncementByID returns the announcement or ENotFound.
func (s *AnnouncementService) FindAnnouncementByID(ctx context.Context, id string) (*loaxa.Announcement, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var a loaxa.Announcement
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketAnnouncements), []byte(id), &a)
		if err == nil && !ok {
			return announcementNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find announcement %s: %w", id, err)
	}
	return &a, nil
}

// FindAnnouncements returns announcements in creation order.
func (s *AnnouncementService) FindAnnouncements(ctx context.Context, f loaxa.AnnouncementFilter) ([]*loaxa.Announcement, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Announcement
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAnnouncements)
		return b.ForEach(func(k, _ []byte) error {
			var a loaxa.Announcement
			if _, err := getJSON(b, k, &a); err != nil {
				return err
			}
			if f.State == "" || a.State == f.State {
				out = append(out, &a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find announcements: %w", err)
	}
	// Byte order is creation order until the ids grow a digit.
	slices.SortFunc(out, func(a, b *loaxa.Announcement) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// CancelAnnouncement marks the announcement cancelled, at CancelledAt.
// Cancelling it again changes nothing and is not an error, so an operator
// may safely retry.
func (s *AnnouncementService) CancelAnnouncement(ctx context.Context, id string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAnnouncements)
		var a loaxa.Announcement
		ok, err := getJSON(b, []byte(id), &a)
		if err != nil {
			return err
		} else if !ok {
			return announcementNotFound(id)
		}
		if a.State == loaxa.AnnouncementCancelled {
			return nil
		}
		a.State, a.CancelledAt = loaxa.AnnouncementCancelled, s.db.now()
		if err := putJSON(b, []byte(id), &a); err != nil {
			return err
		}
		return withdrawProposals(tx, id, s.db.now())
	})
	if err != nil {
		return fmt.Errorf("cancel announcement %s: %w", id, err)
	}
	return nil
}

func announcementNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "Announcement %q does not exist.", id)
}
