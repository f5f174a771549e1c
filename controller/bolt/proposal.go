package bolt

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// ProposalService stores proposals.
type ProposalService struct {
	db *DB
}

var _ loaxa.ProposalService = (*ProposalService)(nil)

// NewProposalService returns a ProposalService on db.
func NewProposalService(db *DB) *ProposalService {
	return &ProposalService{db: db}
}

// CreateProposals stores ps as pending, assigning ids and CreatedAt, all or
// none.
func (s *ProposalService) CreateProposals(ctx context.Context, ps []*loaxa.Proposal) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	recs := make([]loaxa.Proposal, len(ps))
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketProposals)
		for i, p := range ps {
			if tx.Bucket(bucketAnnouncements).Get([]byte(p.Announcement)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Announcement %q does not exist.", p.Announcement)
			}
			if tx.Bucket(bucketAreas).Get([]byte(p.Area)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Area %q does not exist.", p.Area)
			}
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("next proposal id: %w", err)
			}
			rec := *p
			rec.ID = fmt.Sprintf("p%06d", seq)
			rec.State = loaxa.ProposalPending
			rec.CreatedAt = s.db.now()
			if err := putJSON(b, []byte(rec.ID), &rec); err != nil {
				return err
			}
			recs[i] = rec
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create proposals: %w", err)
	}
	for i := range ps {
		*ps[i] = recs[i]
	}
	return nil
}

// FindProposalByID returns the proposal or ENotFound.
func (s *ProposalService) FindProposalByID(ctx context.Context, id string) (*loaxa.Proposal, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var p loaxa.Proposal
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketProposals), []byte(id), &p)
		if err == nil && !ok {
			return loaxa.Errorf(loaxa.ENotFound, "Proposal %q does not exist.", id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find proposal %s: %w", id, err)
	}
	return &p, nil
}

// FindProposals returns proposals sorted by id.
func (s *ProposalService) FindProposals(ctx context.Context, f loaxa.ProposalFilter) ([]*loaxa.Proposal, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Proposal
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketProposals)
		return b.ForEach(func(k, _ []byte) error {
			var p loaxa.Proposal
			if _, err := getJSON(b, k, &p); err != nil {
				return err
			}
			if (f.Announcement == "" || p.Announcement == f.Announcement) &&
				(f.Areas == nil || slices.Contains(f.Areas, p.Area)) &&
				(f.State == "" || p.State == f.State) {
				out = append(out, &p)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find proposals: %w", err)
	}
	slices.SortFunc(out, func(a, b *loaxa.Proposal) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DecideProposal stores the decision on a pending proposal: State accepted
// (with Session, which must be a session of the proposal's area, or "") or
// declined, DecidedBy, DecidedAt and Note.
func (s *ProposalService) DecideProposal(ctx context.Context, p *loaxa.Proposal) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if p.State != loaxa.ProposalAccepted && p.State != loaxa.ProposalDeclined {
		return loaxa.Errorf(loaxa.EInvalid, "A proposal is decided as %s or %s, not %q.", loaxa.ProposalAccepted, loaxa.ProposalDeclined, p.State)
	}
	var rec loaxa.Proposal
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketProposals)
		ok, err := getJSON(b, []byte(p.ID), &rec)
		if err != nil {
			return err
		} else if !ok {
			return loaxa.Errorf(loaxa.ENotFound, "Proposal %q does not exist.", p.ID)
		}
		var a loaxa.Announcement
		if _, err := getJSON(tx.Bucket(bucketAnnouncements), []byte(rec.Announcement), &a); err != nil {
			return err
		}
		switch {
		case rec.State == loaxa.ProposalWithdrawn || a.State == loaxa.AnnouncementCancelled:
			withdrawn := rec
			withdrawn.State = loaxa.ProposalWithdrawn
			return loaxa.NewProposalDecidedError(&withdrawn)
		case rec.State != loaxa.ProposalPending:
			return loaxa.NewProposalDecidedError(&rec)
		}
		if p.Session != "" {
			var sess loaxa.Session
			ok, err := getJSON(tx.Bucket(bucketSessions), []byte(p.Session), &sess)
			if err != nil {
				return err
			}
			if !ok || sess.Deleted() {
				// Deleted, as a page read before offers it still.
				return &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonSessionGone, Message: fmt.Sprintf(
					"Session %q does not exist (it may have been deleted since the page was read); pick one of area %s from GET /api/v1/sessions?area=%s.", p.Session, rec.Area, rec.Area)}
			}
			if sess.Area != rec.Area {
				return loaxa.Errorf(loaxa.EInvalid, "Session %q is not a session of area %s; pick one from GET /api/v1/sessions?area=%s.", p.Session, rec.Area, rec.Area)
			}
		}
		rec.State, rec.Session, rec.Note, rec.DecidedBy = p.State, p.Session, p.Note, p.DecidedBy
		if p.State == loaxa.ProposalDeclined {
			rec.Session = ""
		}
		rec.DecidedAt = s.db.now()
		return putJSON(b, []byte(rec.ID), &rec)
	})
	if err != nil {
		return fmt.Errorf("decide proposal %s: %w", p.ID, err)
	}
	*p = rec
	return nil
}

// withdrawProposals withdraws the pending proposals of announcement ann,
// which was cancelled, in tx.
func withdrawProposals(tx *bbolt.Tx, ann string, now time.Time) error {
	b := tx.Bucket(bucketProposals)
	var withdrawn []loaxa.Proposal
	err := b.ForEach(func(k, _ []byte) error {
		var p loaxa.Proposal
		if _, err := getJSON(b, k, &p); err != nil {
			return err
		}
		if p.Announcement == ann && p.State == loaxa.ProposalPending {
			p.State, p.DecidedAt = loaxa.ProposalWithdrawn, now
			withdrawn = append(withdrawn, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("withdraw proposals of %s: %w", ann, err)
	}
	for _, p := range withdrawn {
		if err := putJSON(b, []byte(p.ID), &p); err != nil {
			return fmt.Errorf("withdraw proposal %s: %w", p.ID, err)
		}
	}
	return nil
}
