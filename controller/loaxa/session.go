package loaxa

import (
	"context"
	"strings"
	"time"

	"github.com/teambition/rrule-go"
)

// Session (buổi phát) is a recurring slot of an area's station, e.g. the
// morning session from 05:30 for at most 15 minutes. Announcements placed
// in it play back to back from its start, in programme order.
type Session struct {
	ID   string `json:"id"`
	Area string `json:"area"`
	Name string `json:"name"`
	// Start is the time of day "HH:MM" in the area's time zone.
	Start string `json:"start"`
	// MaxMinutes is the longest the session may run; items past it are a
	// conflict at scheduling time.
	MaxMinutes int `json:"max_minutes"`
	// Days is an RFC 5545 rule choosing the days it runs on (e.g.
	// FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR), counted from the day it was
	// created; "" is every day.
	Days      string    `json:"days,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// CheckDays checks a session's days rule: an RFC 5545 rule that chooses
// days (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY), without times of day (the
// session's start gives the time), one rule, no DTSTART. Errors are
// EInvalid with a message for the officer.
func CheckDays(days string) error {
	days = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(days), "RRULE:"))
	if days == "" {
		return nil
	}
	if strings.ContainsAny(days, "\r\n") {
		return Errorf(EInvalid, "days is one rule on one line, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR.")
	}
	opt, err := rrule.StrToROption(days)
	if err != nil {
		return Errorf(EInvalid, "days %q is not an RFC 5545 rule (%v); write it like FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR, or leave it out for every day.", days, err)
	}
	switch {
	case !opt.Dtstart.IsZero():
		return Errorf(EInvalid, "days %q has its own DTSTART; leave it out: the session counts from the day it was created.", days)
	case opt.Freq != rrule.DAILY && opt.Freq != rrule.WEEKLY && opt.Freq != rrule.MONTHLY && opt.Freq != rrule.YEARLY:
		return Errorf(EInvalid, "days %q repeats within a day; a session runs once on each of its days, so use FREQ=DAILY, WEEKLY, MONTHLY or YEARLY.", days)
	case len(opt.Byhour) > 0 || len(opt.Byminute) > 0 || len(opt.Bysecond) > 0:
		return Errorf(EInvalid, "days %q sets a time of day; leave out BYHOUR, BYMINUTE and BYSECOND: the session's start is its time.", days)
	}
	if err := checkOrdinals(days, opt); err != nil {
		return Errorf(EInvalid, "days: %s", ErrorMessage(err))
	}
	return nil
}

// MaxLength returns the session's maximum length.
func (s *Session) MaxLength() time.Duration { return time.Duration(s.MaxMinutes) * time.Minute }

// Instances returns the starts of the session's days in (from, to], in loc.
func (s *Session) Instances(loc *time.Location, from, to time.Time) ([]time.Time, error) {
	clock, err := ParseClock(s.Start)
	if err != nil {
		return nil, err
	}
	if err := CheckDays(s.Days); err != nil {
		return nil, err
	}
	rule := s.Days
	if rule == "" {
		rule = "FREQ=DAILY"
	}
	first := AtClock(s.CreatedAt, clock, loc)
	r, err := NewRecurrence(&Announcement{Start: first, RRule: rule}, loc)
	if err != nil {
		return nil, err
	}
	out := r.Between(from, to)
	for i, t := range out {
		// The rule keeps DTSTART's wall clock; normalise days whose DST
		// change moved it.
		out[i] = AtClock(t, clock, loc)
	}
	return out, nil
}

// SharedDay returns the first day in (from, to] on which s and o both
// run, as a date in loc (DateLayout), or "" if there is none.
func (s *Session) SharedDay(o *Session, loc *time.Location, from, to time.Time) (string, error) {
	mine, err := s.Instances(loc, from, to)
	if err != nil {
		return "", err
	}
	theirs, err := o.Instances(loc, from, to)
	if err != nil {
		return "", err
	}
	days := make(map[string]bool, len(theirs))
	for _, t := range theirs {
		days[t.In(loc).Format(DateLayout)] = true
	}
	for _, t := range mine {
		if day := t.In(loc).Format(DateLayout); days[day] {
			return day, nil
		}
	}
	return "", nil
}

// SessionInstanceID names one day's instance of session id.
func SessionInstanceID(session string, start time.Time, loc *time.Location) string {
	return session + "@" + start.In(loc).Format("20060102")
}

// SessionFilter selects sessions. Zero fields do not filter.
type SessionFilter struct {
	// Areas limits the result to sessions of these areas.
	Areas []string
}

// SessionService stores sessions.
type SessionService interface {
	// CreateSession assigns s.ID and stores s; its area must exist.
	CreateSession(ctx context.Context, s *Session) error
	// FindSessionByID returns the session or ENotFound.
	FindSessionByID(ctx context.Context, id string) (*Session, error)
	// FindSessions returns sessions sorted by area, then start, then id.
	FindSessions(ctx context.Context, f SessionFilter) ([]*Session, error)
	// DeleteSession removes it; announcements placed in it no longer play.
	DeleteSession(ctx context.Context, id string) error
}
