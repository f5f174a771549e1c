package loaxa

import (
	"context"
	"time"
)

// Holiday is a day on which recurring announcements do not play (unless
// they say OnHolidays): for one area and everything below it, or for every
// area when Area is "".
type Holiday struct {
	ID        string    `json:"id"`
	Area      string    `json:"area,omitempty"`
	Date      string    `json:"date"` // DateLayout, in the area's time zone
	Name      string    `json:"name"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// DeletedAt is when it was deleted; zero while it stands. A deleted
	// holiday is kept for HolidayDeletedKept, for the sessions that were
	// under way when it went (docs/scheduling.md "Changes while a session
	// is under way"), for good if it stood on its day (StoodOnItsDay), and
	// listed only with HolidayFilter.DeletedSince.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

// HolidayDeletedKept is how long a deleted holiday is kept: longer than
// any session instance and the days a desired state keeps behind now.
// One that stood on its day is kept for good (StoodOnItsDay).
const HolidayDeletedKept = 8 * 24 * time.Hour

// StoodOnItsDay reports whether h was on the calendar at some time of its
// own day, in any zone (UTC+14 to UTC−12): added before the day ended and
// not deleted before it began. Such a holiday kept that day's recurring
// bulletins off the air, and the programme of the day shows it, however
// long ago; one added and deleted before (or after) its day changed
// nothing that played. A date that cannot be read has not.
func (h *Holiday) StoodOnItsDay() bool {
	day, err := time.Parse(DateLayout, h.Date)
	if err != nil {
		return false
	}
	first, last := day.Add(-14*time.Hour), day.Add(36*time.Hour)
	return h.CreatedAt.Before(last) && (h.DeletedAt.IsZero() || h.DeletedAt.After(first))
}

// StoodAtAWholeSecond reports whether h, deleted, was on the calendar at
// a whole second. The scheduler judges holidays only there: a recurring
// bulletin's plays (its rule counts in whole seconds; a one-off skips no
// holiday) and a session's instances (whole minutes) start at whole
// seconds. So one added and deleted between two (a script adding and
// deleting it in a loop, requests milliseconds apart) changed no
// programme, of that day or any, and is not kept: each such pair was kept
// for good, as it stood on its day.
func (h *Holiday) StoodAtAWholeSecond() bool {
	first := h.CreatedAt.Truncate(time.Second)
	if first.Before(h.CreatedAt) {
		first = first.Add(time.Second)
	}
	return h.DeletedAt.IsZero() || first.Before(h.DeletedAt)
}

// HolidayFilter selects holidays. Zero fields do not filter.
type HolidayFilter struct {
	// Areas limits the result to holidays of these areas and global ones.
	Areas []string
	// DeletedSince, if not zero, also returns the holidays deleted at or
	// after it (DeletedAt set); otherwise only those standing.
	DeletedSince time.Time
}

// HolidayService stores the holiday calendar.
type HolidayService interface {
	// CreateHoliday assigns h.ID and stores h; a holiday for the same area
	// and date is EConflict.
	CreateHoliday(ctx context.Context, h *Holiday) error
	// FindHolidays returns holidays sorted by date, then area.
	FindHolidays(ctx context.Context, f HolidayFilter) ([]*Holiday, error)
	// FindHolidayByID returns the holiday on the calendar; one that does
	// not exist, or was deleted, is ENotFound.
	FindHolidayByID(ctx context.Context, id string) (*Holiday, error)
	// DeleteHoliday removes it from the calendar (setting DeletedAt); a
	// deleted one is ENotFound.
	DeleteHoliday(ctx context.Context, id string) error
}
