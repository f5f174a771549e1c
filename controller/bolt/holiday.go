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

// HolidayService stores the holiday calendar.
type HolidayService struct {
	db *DB
}

var _ loaxa.HolidayService = (*HolidayService)(nil)

// NewHolidayService returns a HolidayService on db.
func NewHolidayService(db *DB) *HolidayService {
	return &HolidayService{db: db}
}

// CreateHoliday checks h, assigns h.ID and CreatedAt, and stores it. A
// second holiday on the same date for the same area is EConflict.
func (s *HolidayService) CreateHoliday(ctx context.Context, h *loaxa.Holiday) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if _, err := time.Parse(loaxa.DateLayout, h.Date); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "Holiday date %q: write it as YYYY-MM-DD, e.g. 2025-09-02.", h.Date)
	}
	rec := *h
	err := s.db.update(func(tx *bbolt.Tx) error {
		if h.Area != "" && tx.Bucket(bucketAreas).Get([]byte(h.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q does not exist.", h.Area)
		}
		b := tx.Bucket(bucketHolidays)
		if err := purgeDeletedHolidays(b, s.db.now()); err != nil {
			return err
		}
		err := b.ForEach(func(k, _ []byte) error {
			var o loaxa.Holiday
			if _, err := getJSON(b, k, &o); err != nil {
				return err
			}
			if o.DeletedAt.IsZero() && o.Area == h.Area && o.Date == h.Date {
				return loaxa.Errorf(loaxa.EConflict, "%s is already a holiday (%s, %s) for this area.", h.Date, o.Name, o.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next holiday id: %w", err)
		}
		rec.ID = fmt.Sprintf("h%06d", seq)
		rec.CreatedAt = s.db.now()
		return putJSON(b, []byte(rec.ID), &rec)
	})
	if err != nil {
		return fmt.Errorf("create holiday: %w", err)
	}
	*h = rec
	return nil
}

// FindHolidays returns holidays sorted by date, then area.
func (s *HolidayService) FindHolidays(ctx context.Context, f loaxa.HolidayFilter) ([]*loaxa.Holiday, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Holiday
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketHolidays)
		return b.ForEach(func(k, _ []byte) error {
			var h loaxa.Holiday
			if _, err := getJSON(b, k, &h); err != nil {
				return err
			}
			if !h.DeletedAt.IsZero() && (f.DeletedSince.IsZero() || h.DeletedAt.Before(f.DeletedSince)) {
				return nil
			}
			if f.Areas == nil || h.Area == "" || slices.Contains(f.Areas, h.Area) {
				out = append(out, &h)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find holidays: %w", err)
	}
	slices.SortFunc(out, func(a, b *loaxa.Holiday) int {
		return cmp.Or(strings.Compare(a.Date, b.Date), strings.Compare(a.Area, b.Area))
	})
	return out, nil
}

// DeleteHoliday takes the holiday off the calendar. It is kept, with
// DeletedAt, for loaxa.HolidayDeletedKept: a session under way when it
// went must not repack as if the day had never been a holiday; and for
// good if it stood on its day, for that day's programme. One that stood
// at no whole second is removed (loaxa.Holiday.StoodAtAWholeSecond).
func (s *HolidayService) DeleteHoliday(ctx context.Context, id string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketHolidays)
		now := s.db.now()
		if err := purgeDeletedHolidays(b, now); err != nil {
			return err
		}
		var h loaxa.Holiday
		ok, err := getJSON(b, []byte(id), &h)
		if err != nil {
			return err
		}
		if !ok || !h.DeletedAt.IsZero() {
			return loaxa.Errorf(loaxa.ENotFound, "Holiday %q does not exist.", id)
		}
		h.DeletedAt = now
		if !h.StoodAtAWholeSecond() {
			// Nothing could have been judged by it, so nothing keeps it: a
			// script adding and deleting a holiday in a loop during its
			// day kept every pair for good (each stood on its day).
			return b.Delete([]byte(id))
		}
		return putJSON(b, []byte(id), &h)
	})
	if err != nil {
		return fmt.Errorf("delete holiday %s: %w", id, err)
	}
	return nil
}

// purgeDeletedHolidays removes the holidays deleted more than
// loaxa.HolidayDeletedKept before now that never stood on their own day.
// One that did (deleted during or after it) is kept: that day's programme
// shows what was planned then, the holiday's bulletins off the air
// (loaxa.HolidayStoodOnItsDay). Before, it went after 8 days, and the
// programme of that day showed the bulletins it had kept off.
func purgeDeletedHolidays(b *bbolt.Bucket, now time.Time) error {
	var old [][]byte
	err := b.ForEach(func(k, _ []byte) error {
		var h loaxa.Holiday
		if _, err := getJSON(b, k, &h); err != nil {
			return err
		}
		if !h.DeletedAt.IsZero() && h.DeletedAt.Before(now.Add(-loaxa.HolidayDeletedKept)) && !h.StoodOnItsDay() {
			old = append(old, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("purge deleted holidays: %w", err)
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("purge deleted holiday %s: %w", k, err)
		}
	}
	return nil
}
