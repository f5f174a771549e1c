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
}

// HolidayFilter selects holidays. Zero fields do not filter.
type HolidayFilter struct {
	// Areas limits the result to holidays of these areas and global ones.
	Areas []string
}

// HolidayService stores the holiday calendar.
type HolidayService interface {
	// CreateHoliday assigns h.ID and stores h; a holiday for the same area
	// and date is EConflict.
	CreateHoliday(ctx context.Context, h *Holiday) error
	// FindHolidays returns holidays sorted by date, then area.
	FindHolidays(ctx context.Context, f HolidayFilter) ([]*Holiday, error)
	// DeleteHoliday removes it.
	DeleteHoliday(ctx context.Context, id string) error
}
