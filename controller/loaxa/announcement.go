package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// Announcement states.
const (
	AnnouncementActive    = "active"
	AnnouncementCancelled = "cancelled"
)

// Announcement (bản tin) is content to play on targets at a priority, once
// or recurring.
type Announcement struct {
	ID        string            `json:"id"`
	Title     string            `json:"title"`
	ContentID string            `json:"content_id"`
	Targets   Targets           `json:"targets"`
	Priority  protocol.Priority `json:"priority"`
	// Start is the first (or only) play.
	Start time.Time `json:"start"`
	// RRule is an RFC 5545 recurrence rule with Start as DTSTART.
	RRule string `json:"rrule,omitempty"`
	// Repeat is how many times each occurrence plays back to back (≥ 1).
	Repeat    int       `json:"repeat"`
	State     string    `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Targets are the areas (with all their descendants) and nodes an
// announcement plays on.
type Targets struct {
	Areas []string `json:"areas"`
	Nodes []string `json:"nodes"`
}

// AnnouncementFilter selects announcements. Zero fields do not filter.
type AnnouncementFilter struct {
	State string
}

// AnnouncementService stores announcements.
type AnnouncementService interface {
	// CreateAnnouncement assigns a.ID and stores a.
	CreateAnnouncement(ctx context.Context, a *Announcement) error
	// FindAnnouncementByID returns the announcement or ENotFound.
	FindAnnouncementByID(ctx context.Context, id string) (*Announcement, error)
	// FindAnnouncements returns announcements sorted by id (creation order).
	FindAnnouncements(ctx context.Context, f AnnouncementFilter) ([]*Announcement, error)
	// CancelAnnouncement marks it cancelled; future occurrences are dropped
	// from desired states.
	CancelAnnouncement(ctx context.Context, id string) error
}

// OccurrenceID names the occurrence of announcement id that starts at start:
// the same on the controller and on every node.
func OccurrenceID(announcement string, start time.Time) string {
	return announcement + "@" + start.UTC().Format("20060102T150405.000Z")
}
