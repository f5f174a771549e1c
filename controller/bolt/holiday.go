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
		err := b.ForEach(func(k, _ []byte) error {
			var o loaxa.Holiday
			if _, err := getJSON(b, k, &o); err != nil {
				return err
			}
			if o.Area == h.Area && o.Date == h.Date {
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

// DeleteHoliday removes the holiday.
func (s *HolidayService) DeleteHoliday(ctx context.Context, id string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketHolidays)
		if b.Get([]byte(id)) == nil {
			return loaxa.Errorf(loaxa.ENotFound, "Holiday %q does not exist.", id)
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete holiday %s: %w", id, err)
	}
	return nil
}
