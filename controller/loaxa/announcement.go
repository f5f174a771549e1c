package loaxa

import (
	"context"
	"strings"
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
	ID        string `json:"id"`
	Title     string `json:"title"`
	ContentID string `json:"content_id"`
	// StreamURL, instead of ContentID, relays a live HTTP MP3 stream (a
	// station) for DurationMS: programme relay (tiếp sóng), background
	// only.
	StreamURL  string            `json:"stream_url,omitempty"`
	DurationMS int64             `json:"duration_ms,omitempty"`
	Targets    Targets           `json:"targets"`
	Priority   protocol.Priority `json:"priority"`
	// Start is the first (or only) play.
	Start time.Time `json:"start"`
	// RRule is an RFC 5545 recurrence rule with Start as DTSTART.
	RRule string `json:"rrule,omitempty"`
	// Repeat is how many times each occurrence plays back to back (≥ 1).
	Repeat int `json:"repeat"`
	// GapMS is the silence between repeats (RepeatGap when 0).
	GapMS int64 `json:"gap_ms,omitempty"`
	// Until and Count bound a recurrence besides the rule's own UNTIL and
	// COUNT; zero does not bound it.
	Until time.Time `json:"until,omitzero"`
	Count int       `json:"count,omitempty"`
	// ExDates are exceptions: a date "2006-01-02" skips every occurrence on
	// that day in the area's time zone, an RFC 3339 time skips the
	// occurrence at that instant.
	ExDates []string `json:"exdates,omitempty"`
	// OnHolidays lets a recurring announcement play on holidays, which it
	// skips otherwise.
	OnHolidays bool `json:"on_holidays,omitempty"`
	// Session places the announcement in a session (buổi phát) of its area:
	// on each day it recurs on, it plays in that day's session, packed back
	// to back after the items before it.
	Session string `json:"session,omitempty"`
	// OnPreempt is what happens when a higher level cuts it off: resume
	// (the default) or drop.
	OnPreempt string `json:"on_preempt,omitempty"`
	// OpeningChime and ClosingChime are content played before the first
	// and after the last repeat.
	OpeningChime string `json:"opening_chime,omitempty"`
	ClosingChime string `json:"closing_chime,omitempty"`
	// Proposed marks a bulletin sent down from a district or province at
	// normal level: each station (an area with sessions) under its targets
	// gets a Proposal, and its nodes play it only once the proposal is
	// accepted. Nodes under no station play it as sent.
	Proposed bool `json:"proposed,omitempty"`
	// FromArea is the area of the user who created it, for the rule that a
	// bulletin from above is proposed (normal) or put at the head of the
	// next session (priority).
	FromArea  string    `json:"from_area,omitempty"`
	State     string    `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// CancelledAt is when it was cancelled (zero while active, and for
	// announcements cancelled before it was recorded). A session item
	// cancelled after its slot began keeps that slot in the day's session,
	// so the items after it do not move (docs/scheduling.md "Sessions").
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	// CancelReason says why it was cancelled when an officer did not
	// cancel it by hand: CancelSessionDeleted. Empty otherwise.
	CancelReason string `json:"cancel_reason,omitempty"`
}

// CancelSessionDeleted is the CancelReason of an item cancelled with the
// session it was placed in (a forced DELETE /sessions/{id}), and the
// Reason of a proposal from above declined with the session it was
// accepted into.
const CancelSessionDeleted = "session-deleted"

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
	// CancelAnnouncement marks it cancelled and sets CancelledAt; future
	// occurrences are dropped from desired states.
	CancelAnnouncement(ctx context.Context, id string) error
}

// OccurrenceID names the occurrence of announcement id that starts at start:
// the same on the controller and on every node.
func OccurrenceID(announcement string, start time.Time) string {
	return announcement + "@" + start.UTC().Format(occurrenceTimeLayout)
}

// occurrenceTimeLayout is the time part of an OccurrenceID.
const occurrenceTimeLayout = "20060102T150405.000Z"

// OccurrenceTime is the instant an OccurrenceID was built with (for an
// emergency, its issue instant); zero if occurrence is not one.
func OccurrenceTime(occurrence string) time.Time {
	_, at, ok := strings.Cut(occurrence, "@")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(occurrenceTimeLayout, at)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Preemption policies (Announcement.OnPreempt, protocol.Occurrence.OnPreempt).
const (
	PreemptResume = protocol.PreemptResume
	PreemptDrop   = protocol.PreemptDrop
)

// RepeatGap is the silence between repeats unless an announcement says.
const RepeatGap = 3 * time.Second

// Recurring reports whether the announcement has a recurrence rule.
func (a *Announcement) Recurring() bool { return a.RRule != "" }
