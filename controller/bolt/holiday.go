package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
		var pe *time.ParseError
		if errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") {
			// Written as asked: "write it as YYYY-MM-DD" told the officer
			// nothing about 30 February.
			return loaxa.Errorf(loaxa.EInvalid, "Holiday date %q is not a day of the calendar; check the month and the day, e.g. 2026-02-28.", h.Date)
		}
		return loaxa.Errorf(loaxa.EInvalid, "Holiday date %q: write it as YYYY-MM-DD, e.g. 2025-09-02.", h.Date)
	}
	rec := *h
	err := s.db.update(func(tx *bbolt.Tx) error {
		if h.Area != "" && tx.Bucket(bucketAreas).Get([]byte(h.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q does not exist.", h.Area)
		}
		b := tx.Bucket(bucketHolidays)
		if err := purgeDeletedHolidays(tx, s.db.now()); err != nil {
			return err
		}
		// The standing holiday of the date, by the index: reading every
		// holiday ever kept made each add cost a province's calendar.
		dates := tx.Bucket(bucketHolidayDates)
		if id := dates.Get(holidayDateKey(h.Area, h.Date)); id != nil {
			var o loaxa.Holiday
			if _, err := getJSON(b, id, &o); err != nil {
				return err
			}
			return loaxa.Errorf(loaxa.EConflict, "%s is already a holiday (%s, %s) for this area.", h.Date, o.Name, o.ID)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next holiday id: %w", err)
		}
		rec.ID = fmt.Sprintf("h%06d", seq)
		rec.CreatedAt = s.db.now()
		if err := dates.Put(holidayDateKey(rec.Area, rec.Date), []byte(rec.ID)); err != nil {
			return fmt.Errorf("index holiday %s: %w", rec.ID, err)
		}
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
		return b.ForEach(func(k, v []byte) error {
			var h loaxa.Holiday
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("decode holiday %q: %w", k, err)
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

// FindHolidayByID returns the holiday on the calendar, or ENotFound (one
// deleted too).
func (s *HolidayService) FindHolidayByID(ctx context.Context, id string) (*loaxa.Holiday, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var h loaxa.Holiday
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketHolidays), []byte(id), &h)
		if err != nil {
			return err
		}
		if !ok || !h.DeletedAt.IsZero() {
			return loaxa.Errorf(loaxa.ENotFound, "There is no holiday %q; list them with GET /api/v1/holidays.", id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find holiday %s: %w", id, err)
	}
	return &h, nil
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
		if err := purgeDeletedHolidays(tx, now); err != nil {
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
		if err := unindexHolidayDate(tx, &h); err != nil {
			return err
		}
		if !h.StoodAtAWholeSecond() {
			// Nothing could have been judged by it, so nothing keeps it: a
			// script adding and deleting a holiday in a loop during its
			// day kept every pair for good (each stood on its day).
			return b.Delete([]byte(id))
		}
		if !h.StoodOnItsDay() {
			if err := tx.Bucket(bucketHolidayPurge).Put(holidayPurgeKey(h.DeletedAt, id), nil); err != nil {
				return fmt.Errorf("index deleted holiday %s: %w", id, err)
			}
		}
		return putJSON(b, []byte(id), &h)
	})
	if err != nil {
		return fmt.Errorf("delete holiday %s: %w", id, err)
	}
	return nil
}

// purgeDeletedHolidays removes the holidays deleted more than
// loaxa.HolidayDeletedKept before now that never stood on their own day,
// which the holiday_purge index lists by when they were deleted. One that
// did stand (deleted during or after it) is kept: that day's programme
// shows what was planned then, the holiday's bulletins off the air
// (loaxa.HolidayStoodOnItsDay). Before, it went after 8 days, and the
// programme of that day showed the bulletins it had kept off. The purge
// read every holiday ever kept at each add and delete: with a province's
// 20,000 a pair took 0.17 s of the store's one writer.
func purgeDeletedHolidays(tx *bbolt.Tx, now time.Time) error {
	b, purge := tx.Bucket(bucketHolidays), tx.Bucket(bucketHolidayPurge)
	before := holidayPurgeKey(now.Add(-loaxa.HolidayDeletedKept), "")
	var old [][]byte
	c := purge.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, before) < 0; k, _ = c.Next() {
		old = append(old, slices.Clone(k))
	}
	for _, k := range old {
		id := k[8:]
		if err := b.Delete(id); err != nil {
			return fmt.Errorf("purge deleted holiday %s: %w", id, err)
		}
		if err := purge.Delete(k); err != nil {
			return fmt.Errorf("purge deleted holiday %s: %w", id, err)
		}
	}
	return nil
}

// holidayDateKey is the holiday_dates key of area's holiday on date
// (DateLayout): area "" (everywhere) sorts first.
func holidayDateKey(area, date string) []byte { return join(area, date) }

// holidayPurgeKey is the holiday_purge key of holiday id deleted at t:
// the milliseconds of t, then the id, in the order they can be purged.
func holidayPurgeKey(t time.Time, id string) []byte {
	return append(u64(uint64(max(t.UnixMilli(), 0))), id...)
}

// unindexHolidayDate takes h, leaving the calendar, out of holiday_dates
// if the index names it there: its date is free for a new one.
func unindexHolidayDate(tx *bbolt.Tx, h *loaxa.Holiday) error {
	dates := tx.Bucket(bucketHolidayDates)
	k := holidayDateKey(h.Area, h.Date)
	if string(dates.Get(k)) != h.ID {
		return nil
	}
	if err := dates.Delete(k); err != nil {
		return fmt.Errorf("unindex holiday %s: %w", h.ID, err)
	}
	return nil
}

// indexHolidays (schema 9 → 10) indexes the stored holidays: those on the
// calendar by area and date (holiday_dates), which an add checks for a
// twin, and those deleted that never stood on their day by when
// (holiday_purge), which the purge removes after loaxa.HolidayDeletedKept.
// Both read every holiday ever kept at each add and delete.
func indexHolidays(tx *bbolt.Tx, step *upgradeStep) error {
	dates, purge := tx.Bucket(bucketHolidayDates), tx.Bucket(bucketHolidayPurge)
	return tx.Bucket(bucketHolidays).ForEach(func(k, v []byte) error {
		step.read()
		var h loaxa.Holiday
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("decode holiday %q: %w", k, err)
		}
		switch {
		case h.DeletedAt.IsZero():
			return dates.Put(holidayDateKey(h.Area, h.Date), slices.Clone(k))
		case !h.StoodOnItsDay():
			return purge.Put(holidayPurgeKey(h.DeletedAt, string(k)), nil)
		}
		return nil
	})
}
