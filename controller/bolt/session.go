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
	"loaxa.vn/protocol"
)

// SessionService stores sessions.
type SessionService struct {
	db *DB
}

var _ loaxa.SessionService = (*SessionService)(nil)

// NewSessionService returns a SessionService on db.
func NewSessionService(db *DB) *SessionService {
	return &SessionService{db: db}
}

// CreateSession checks s, assigns s.ID and CreatedAt, and stores it. A
// session that would run at the same time as another of its area on a day
// both run is a *loaxa.SessionOverlapError (EConflict).
func (s *SessionService) CreateSession(ctx context.Context, sess *loaxa.Session) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if _, err := loaxa.ParseClock(sess.Start); err != nil {
		return err
	}
	if sess.MaxMinutes <= 0 {
		return loaxa.Errorf(loaxa.EInvalid, "Session %q has no maximum length: give max_minutes, e.g. 15 or 45.", sess.Name)
	}
	rec := *sess
	err := s.db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketAreas).Get([]byte(sess.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q does not exist.", sess.Area)
		}
		b := tx.Bucket(bucketSessions)
		if rec.CreatedAt.IsZero() {
			rec.CreatedAt = s.db.now()
		}
		// Checked in the transaction that stores it: two requests at one
		// instant (a script run twice) both passed a check made before it
		// and stored twins.
		if err := checkSessionOverlap(tx, &rec, rec.CreatedAt); err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next session id: %w", err)
		}
		rec.ID = fmt.Sprintf("s%06d", seq)
		return putJSON(b, []byte(rec.ID), &rec)
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	*sess = rec
	return nil
}

// UpdateSession makes ch to session id and stores it. The overlap with
// the area's other sessions is checked in the transaction that stores it,
// from ch.At (now if zero) on, as CreateSession checks a new one. The
// earlier times no instance needs are dropped (loaxa.Session.Compact).
func (s *SessionService) UpdateSession(ctx context.Context, id string, ch loaxa.SessionChange) (before, after *loaxa.Session, err error) {
	if err := checkCtx(ctx); err != nil {
		return nil, nil, err
	}
	err = s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var was loaxa.Session
		if ok, err := getJSON(b, []byte(id), &was); err != nil {
			return err
		} else if !ok || was.Deleted() {
			return loaxa.Errorf(loaxa.ENotFound, "Session %q does not exist.", id)
		}
		if ch.At.IsZero() {
			ch.At = s.db.now()
		}
		rec := was.Apply(ch)
		if _, err := loaxa.ParseClock(rec.Start); err != nil {
			return err
		}
		if rec.MaxMinutes <= 0 {
			return loaxa.Errorf(loaxa.EInvalid, "Session %q has no maximum length: give max_minutes, e.g. 15 or 45.", rec.Name)
		}
		loc, err := areaLocation(tx, rec.Area)
		if err != nil {
			return err
		}
		if rec.Start == was.Start && rec.MaxMinutes == was.MaxMinutes && rec.Days == was.Days {
			// A rename: the times stay as they were, neither compared nor
			// compacted (nothing was added to Earlier). It makes no
			// overlap; one the store already held (an older version, an
			// old backup: listed with the sessions) is mended by a change
			// of times, not refused to a rename. A session whose stored
			// times this version refuses is renamed so too.
			before, after = &was, rec
			return putJSON(b, []byte(id), rec)
		}
		if err := checkSessionOverlap(tx, rec, ch.At); err != nil {
			return err
		}
		// Earlier times no day needs are dropped as they are stored, or a
		// script changing times in a loop grows the record without bound.
		if rec, err = rec.Compact(loc); err != nil {
			return err
		}
		before, after = &was, rec
		return putJSON(b, []byte(id), rec)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("update session %s: %w", id, err)
	}
	return before, after, nil
}

// checkSessionOverlap returns a *loaxa.SessionOverlapError if sess would
// run at the same time as another session of its area stored in tx, in
// the year from since.
func checkSessionOverlap(tx *bbolt.Tx, sess *loaxa.Session, since time.Time) error {
	loc, err := areaLocation(tx, sess.Area)
	if err != nil {
		return err
	}
	var others []*loaxa.Session
	b := tx.Bucket(bucketSessions)
	err = b.ForEach(func(k, _ []byte) error {
		var o loaxa.Session
		if _, err := getJSON(b, k, &o); err != nil {
			return err
		}
		if o.Area == sess.Area && !o.Deleted() {
			others = append(others, &o)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessions of area %s: %w", sess.Area, err)
	}
	slices.SortFunc(others, func(a, b *loaxa.Session) int {
		return cmp.Or(strings.Compare(a.Start, b.Start), cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	return loaxa.CheckSessionOverlap(sess, others, loc, since)
}

// FindSessionByID returns the session or ENotFound.
func (s *SessionService) FindSessionByID(ctx context.Context, id string) (*loaxa.Session, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var sess loaxa.Session
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketSessions), []byte(id), &sess)
		if err == nil && (!ok || sess.Deleted()) {
			return loaxa.Errorf(loaxa.ENotFound, "Session %q does not exist.", id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find session %s: %w", id, err)
	}
	return &sess, nil
}

// FindSessions returns sessions sorted by area, start and id; deleted
// ones only with f.DeletedSince.
func (s *SessionService) FindSessions(ctx context.Context, f loaxa.SessionFilter) ([]*loaxa.Session, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Session
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		return b.ForEach(func(k, _ []byte) error {
			var sess loaxa.Session
			if _, err := getJSON(b, k, &sess); err != nil {
				return err
			}
			if sess.Deleted() && (f.DeletedSince.IsZero() || sess.DeletedAt.Before(f.DeletedSince)) {
				return nil
			}
			if f.Areas == nil || slices.Contains(f.Areas, sess.Area) {
				out = append(out, &sess)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	slices.SortFunc(out, func(a, b *loaxa.Session) int {
		return cmp.Or(strings.Compare(a.Area, b.Area), strings.Compare(a.Start, b.Start), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteSession removes the session and returns its items still to play.
// One that ran before now is kept marked deleted (loaxa.Session.DeletedAt)
// for the programme of the days it ran, and is found nowhere else.
// With any, or with plays of bulletins from above that would be lost with
// it (d.FromAbove, which the caller asked the scheduler for), it is
// refused with a *loaxa.SessionItemsError unless d.Force; forced, in the
// same transaction, the announcements placed in it are cancelled
// (CancelledAt now, CancelReason loaxa.CancelSessionDeleted) and the
// proposals from above accepted into it declined, so that lists and
// reports show them as not to be played rather than active for good. An
// emergency announcement among them is cancelled only if d.Emergency: the
// items are read in this transaction, so one placed in the session just
// before the delete is checked too.
func (s *SessionService) DeleteSession(ctx context.Context, id string, d loaxa.SessionDeletion) ([]loaxa.SessionItem, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var items []loaxa.SessionItem
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var sess loaxa.Session
		if ok, err := getJSON(b, []byte(id), &sess); err != nil {
			return err
		} else if !ok || sess.Deleted() {
			return loaxa.Errorf(loaxa.ENotFound, "Session %q does not exist.", id)
		}
		loc, err := areaLocation(tx, sess.Area)
		if err != nil {
			return err
		}
		anns, err := decodeAll[loaxa.Announcement](tx.Bucket(bucketAnnouncements))
		if err != nil {
			return fmt.Errorf("announcements: %w", err)
		}
		ps, err := decodeAll[loaxa.Proposal](tx.Bucket(bucketProposals))
		if err != nil {
			return fmt.Errorf("proposals: %w", err)
		}
		now := s.db.now()
		if items, err = sess.ItemsToPlay(anns, ps, loc, now); err != nil {
			return err
		}
		if (len(items) > 0 || len(loaxa.LostBulletins(d.FromAbove)) > 0) && !d.Force {
			return loaxa.NewSessionItemsError(&sess, items, d.FromAbove, loc)
		}
		if !d.Emergency {
			if urgent := emergencyItems(items, anns); len(urgent) > 0 {
				return loaxa.NewSessionEmergencyError(&sess, urgent)
			}
		}
		for _, it := range items {
			if it.Proposal != "" {
				if err := declineWithSession(tx, it.Proposal, d.By, now); err != nil {
					return err
				}
				continue
			}
			if err := cancelWithSession(tx, it.Announcement, now); err != nil {
				return err
			}
		}
		// One that ran is kept, marked deleted, for the programme of the
		// days it ran: without it those days lost its bulletins, though
		// their deliveries say they played. One that never ran planned
		// nothing that played, and goes.
		ran, err := sess.RanBy(loc, now)
		if err != nil {
			return err
		}
		if !ran {
			return b.Delete([]byte(id))
		}
		sess.DeletedAt, sess.DeletedBy = now, d.By
		return putJSON(b, []byte(id), &sess)
	})
	if err != nil {
		return nil, fmt.Errorf("delete session %s: %w", id, err)
	}
	return items, nil
}

// emergencyItems returns the items whose announcement, among anns, is an
// emergency that deleting the session would cancel (a proposal accepted
// into it is declined for the station, its announcement left as it is).
func emergencyItems(items []loaxa.SessionItem, anns []*loaxa.Announcement) []loaxa.SessionItem {
	urgent := map[string]bool{}
	for _, a := range anns {
		urgent[a.ID] = a.Priority == protocol.PriorityEmergency
	}
	var out []loaxa.SessionItem
	for _, it := range items {
		if it.Proposal == "" && urgent[it.Announcement] {
			out = append(out, it)
		}
	}
	return out
}

// cancelWithSession cancels announcement id, placed in a session deleted
// at now, in tx, and withdraws its pending proposals.
func cancelWithSession(tx *bbolt.Tx, id string, now time.Time) error {
	b := tx.Bucket(bucketAnnouncements)
	var a loaxa.Announcement
	if ok, err := getJSON(b, []byte(id), &a); err != nil {
		return err
	} else if !ok {
		return announcementNotFound(id)
	}
	a.State, a.CancelledAt, a.CancelReason = loaxa.AnnouncementCancelled, now, loaxa.CancelSessionDeleted
	if err := putJSON(b, []byte(id), &a); err != nil {
		return fmt.Errorf("cancel announcement %s: %w", id, err)
	}
	return withdrawProposals(tx, id, now)
}

// declineWithSession declines proposal id in tx, in the name of by, who
// deleted at now the session it was accepted into: the station no longer
// plays it. The session and when it was accepted stay (Session,
// AcceptedAt), for the programme of the days it played in it.
func declineWithSession(tx *bbolt.Tx, id, by string, now time.Time) error {
	b := tx.Bucket(bucketProposals)
	var p loaxa.Proposal
	if ok, err := getJSON(b, []byte(id), &p); err != nil {
		return err
	} else if !ok {
		return loaxa.Errorf(loaxa.ENotFound, "Proposal %q does not exist.", id)
	}
	p.AcceptedAt = p.DecidedAt
	p.State, p.Reason, p.DecidedBy, p.DecidedAt = loaxa.ProposalDeclined, loaxa.CancelSessionDeleted, by, now
	if err := putJSON(b, []byte(id), &p); err != nil {
		return fmt.Errorf("decline proposal %s: %w", id, err)
	}
	return nil
}

// decodeAll decodes every value of b.
func decodeAll[T any](b *bbolt.Bucket) ([]*T, error) {
	var out []*T
	err := b.ForEach(func(k, _ []byte) error {
		var v T
		if _, err := getJSON(b, k, &v); err != nil {
			return err
		}
		out = append(out, &v)
		return nil
	})
	return out, err
}
