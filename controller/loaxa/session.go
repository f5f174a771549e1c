package loaxa

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
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
	// UpdatedBy and UpdatedAt say who last changed it, and when.
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Earlier holds the times it had before changes to them, oldest
	// first, each while needed (Compact): an instance that began before a
	// change runs on with the times it began with, and the programme of a
	// past day shows the times the session ran by that day (see Runs).
	Earlier []SessionTimes `json:"earlier,omitempty"`
	// DeletedAt and DeletedBy say when a deleted session was deleted, and
	// by whom. A session that had run by then is kept so marked, only for
	// the programme of the days it ran (SessionFilter.DeletedSince): its
	// bulletins' plays were planned in it. It runs no instance from then
	// on (Runs), and is found nowhere else.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	DeletedBy string    `json:"deleted_by,omitempty"`
}

// Deleted reports whether s was deleted (kept for past days' programme).
func (s *Session) Deleted() bool { return !s.DeletedAt.IsZero() }

// RanBy reports whether an instance of s, in loc, began before t: a
// session deleted at t is then kept for the programme of those days.
func (s *Session) RanBy(loc *time.Location, t time.Time) (bool, error) {
	if _, _, refused := s.RefusedTimes(loc, s.CreatedAt, t); refused != nil {
		// Earlier times this version refuses name no instance (Runs), but
		// an older version may have run it by them: kept, so that a view
		// of those days says it cannot show them rather than leaving the
		// session out.
		return true, nil
	}
	runs, err := s.Runs(loc, s.CreatedAt.Add(-24*time.Hour), t.Add(-time.Nanosecond))
	if err != nil {
		return false, err
	}
	return len(runs) > 0, nil
}

// RefusedTimes returns the first of s's earlier times this version
// refuses (stored by an older one) that s ran by at some time in [from,
// to), with when they began (its creation, or the change before), and why
// they are refused; refused is nil if none. Runs names no instance of
// them.
func (s *Session) RefusedTimes(loc *time.Location, from, to time.Time) (times SessionTimes, since time.Time, refused error) {
	since = s.CreatedAt
	for _, e := range s.Earlier {
		x := Session{Start: e.Start, MaxMinutes: e.MaxMinutes, Days: e.Days, CreatedAt: s.CreatedAt}
		if since.Before(to) && e.Until.After(from) {
			if _, err := x.Instances(loc, since, since); ErrorCode(err) == EInvalid {
				return e, since, err
			}
		}
		since = e.Until
	}
	return SessionTimes{}, time.Time{}, nil
}

// TimesRefused returns why this version refuses s's own times (its
// start or days, stored by an older version, a restored backup or a
// hand-mended store; the API takes none), or nil. Such a session runs no
// instance this version can name: its programme is refused
// (setting_refused) until an officer gives it valid times.
func (s *Session) TimesRefused(loc *time.Location) error {
	if _, err := s.Instances(loc, s.CreatedAt, s.CreatedAt); ErrorCode(err) == EInvalid {
		return err
	}
	return nil
}

// SessionTimes are a session's times until a change: its instances that
// began before Until keep them.
type SessionTimes struct {
	Start      string    `json:"start"`
	MaxMinutes int       `json:"max_minutes"`
	Days       string    `json:"days,omitempty"`
	Until      time.Time `json:"until"`
}

// SessionChange is a change to a session: the fields to set, nil ones
// left as they are. A session's area does not change.
type SessionChange struct {
	Name       *string
	Start      *string
	MaxMinutes *int
	Days       *string
	// By is the user making it, At when.
	By string
	At time.Time
}

// Apply returns s with ch made: a change of its times adds the times it
// had to Earlier, until ch.At. None are forgotten here: the programme can
// be viewed back to any day, and one kept only 8 days drew every day
// before at the times after it. Compact drops those no day ran by.
func (s *Session) Apply(ch SessionChange) *Session {
	out := *s
	if ch.Name != nil {
		out.Name = *ch.Name
	}
	if ch.Start != nil {
		out.Start = *ch.Start
	}
	if ch.MaxMinutes != nil {
		out.MaxMinutes = *ch.MaxMinutes
	}
	if ch.Days != nil {
		out.Days = *ch.Days
	}
	out.UpdatedBy, out.UpdatedAt = ch.By, ch.At
	if out.Start != s.Start || out.MaxMinutes != s.MaxMinutes || out.Days != s.Days {
		out.Earlier = append(slices.Clip(s.Earlier), SessionTimes{Start: s.Start, MaxMinutes: s.MaxMinutes, Days: s.Days, Until: ch.At})
	}
	return &out
}

// Compact returns s without the earlier times it no longer needs, in loc
// (its area's zone): Runs gives the same instances, with the same times,
// over any span, with or without them. An entry is needed while a day ran
// by it, or while without it the times after it would have run a day they
// did not (its days rule left that day out); times superseded before an
// instance began by them or by the next (a script changing a session in
// a loop, an officer correcting a change before the next session), and
// times followed again by the same, are dropped. So changes made between
// two instances leave no entry of their own. Only the newest entries can
// have become so by a change (an older one was kept for a day before the
// newest change, which it does not alter), so they alone are compared,
// newest first.
func (s *Session) Compact(loc *time.Location) (*Session, error) {
	out := *s
	out.Earlier = slices.Clone(s.Earlier)
	for i := len(out.Earlier) - 1; i >= 0; i-- {
		without := out
		without.Earlier = slices.Delete(slices.Clone(out.Earlier), i, i+1)
		// Dropping entry i changes at most the instances from the day
		// before its period began (the times after it then run from there)
		// to the day after it ended (the days its instances took).
		lo := out.CreatedAt
		if i > 0 {
			lo = out.Earlier[i-1].Until
		}
		lo, hi := lo.Add(-48*time.Hour), out.Earlier[i].Until.Add(48*time.Hour)
		same, err := sameRuns(&out, &without, loc, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", s.ID, err)
		}
		if !same {
			break
		}
		out = without
	}
	if len(out.Earlier) == 0 {
		out.Earlier = nil
	}
	return &out, nil
}

// sameRuns reports whether a and b run the same instances in (from, to],
// with the same times.
func sameRuns(a, b *Session, loc *time.Location, from, to time.Time) (bool, error) {
	ra, err := a.Runs(loc, from, to)
	if err != nil {
		return false, err
	}
	rb, err := b.Runs(loc, from, to)
	if err != nil {
		return false, err
	}
	return slices.EqualFunc(ra, rb, func(x, y SessionRun) bool {
		return x.Start.Equal(y.Start) && x.Session.Start == y.Session.Start &&
			x.Session.MaxMinutes == y.Session.MaxMinutes && x.Session.Days == y.Session.Days
	}), nil
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
	case len(opt.Byeaster) > 0:
		// rrule-go takes BYEASTER from python-dateutil; it is not RFC 5545,
		// and days counted from Easter by the moon repeat in no cycle the
		// overlap check can walk (it ran to the rule's end, centuries).
		return Errorf(EInvalid, "days %q uses BYEASTER, which is not RFC 5545; choose the days with BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY or BYWEEKNO, e.g. FREQ=WEEKLY;BYDAY=SU or FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2.", days)
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
	starts, err := s.starts(loc, from, to)
	if err != nil {
		return nil, err
	}
	return slices.Collect(starts), nil
}

// starts returns the starts of the session's days in (from, to], in loc,
// one at a time: comparing two sessions over centuries (Overlap) stops at
// their first shared span without listing every day.
func (s *Session) starts(loc *time.Location, from, to time.Time) (iter.Seq[time.Time], error) {
	walk, err := s.ruleStarts(loc, from, to)
	if err != nil {
		return nil, err
	}
	return func(yield func(time.Time) bool) {
		for _, t := range walk {
			if !yield(t) {
				return
			}
		}
	}, nil
}

// ruleStarts is starts, with each start the rule's own instant: (from,
// to] holds that instant, which keeps the wall clock of the session's
// first start; made on a day whose DST change skips its start (02:30 in
// New York on 8 March 2026), that clock is another hour.
func (s *Session) ruleStarts(loc *time.Location, from, to time.Time) (iter.Seq2[time.Time, time.Time], error) {
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
	return func(yield func(time.Time, time.Time) bool) {
		r.each(from, to, func(t time.Time) bool {
			// The rule keeps DTSTART's wall clock; normalise days whose
			// DST change moved it.
			return yield(t, AtClock(t, clock, loc))
		})
	}, nil
}

// NextRun returns the start of the first instance of s's own times after
// from, in loc, skipping any over before s was made; false if there is
// none: its days rule's UNTIL or COUNT has passed, or it matches no day.
func (s *Session) NextRun(loc *time.Location, from time.Time) (time.Time, bool, error) {
	return readSession(s, loc).nextRun(from)
}

// nextRun is NextRun of r's session, its times read once.
func (r *sessionRead) nextRun(from time.Time) (time.Time, bool, error) {
	s, loc := r.s, r.loc
	if matchesNoDay(s.Days) {
		// Told at once: the rule's iteration walked every year to 9999
		// to find no instance (0.1 s a session, asked of each listed).
		return time.Time{}, false, nil
	}
	if _, err := ParseClock(s.Start); err != nil {
		return time.Time{}, false, err
	}
	if err := CheckDays(s.Days); err != nil {
		return time.Time{}, false, err
	}
	if !r.until.IsZero() && from.After(r.until.Add(48*time.Hour)) {
		// Its UNTIL passed days ago: told at once, where its days were
		// read or walked from its first day to find none. Every instance
		// of the rule is by its UNTIL, and starts within hours of it
		// (AtClock, on a day of a DST change).
		return time.Time{}, false, nil
	}
	// Days that repeat in a short cycle are looked up in it, from's day
	// on: the rule's iteration walks from the session's first day, a
	// longer walk each year it is kept.
	w, err := r.weekly()
	if err != nil {
		return time.Time{}, false, err
	}
	if w != nil {
		// From its first day at the earliest: asked from days before it
		// was made (a clock set back), the days looked at ended before it.
		day := dateOf(from, loc)
		if day.Before(w.first) {
			day = w.first
		}
		for shift := -1; shift <= len(w.runs)+1; shift++ {
			d := day.AddDate(0, 0, shift)
			i := daysBetween(w.first, d)
			if i < 0 || !w.runs[i%len(w.runs)] {
				continue
			}
			t := AtClock(time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, loc), w.clock, loc)
			switch {
			case !w.until.IsZero() && t.After(w.until):
				return time.Time{}, false, nil
			case t.After(from) && !s.overBeforeMade(t):
				return t, true, nil
			}
		}
		return time.Time{}, false, nil
	}
	if r.count > 0 {
		// Days with COUNT in a longer cycle (first Mondays, 2 September):
		// once their last start has passed they run no more, told from
		// it, found once for the rule, not walked again at each list.
		last, err := countEnd(s, loc)
		if err != nil {
			return time.Time{}, false, err
		}
		if !last.After(from) {
			return time.Time{}, false, nil
		}
	}
	// Days of a longer cycle still to run (first Mondays, 2 September)
	// are looked up among their starts near from, walked once for the
	// rule and kept (coming): walked from the first day at each list,
	// they cost tens of microseconds a session, more each year.
	c, err := comingStarts(s, loc, from)
	if err != nil {
		return time.Time{}, false, err
	}
	for i, t := range c.starts {
		// After from as the walk tells it, by the rule's instant.
		if c.instants[i].After(from) && !s.overBeforeMade(t) {
			return t, true, nil
		}
	}
	if c.ended {
		return time.Time{}, false, nil
	}
	starts, err := s.liveStarts(loc, from, time.Time{})
	if err != nil {
		return time.Time{}, false, err
	}
	for t := range starts {
		return t, true, nil
	}
	return time.Time{}, false, nil
}

// daysMemo keeps, for the sessions' lookups, what a session's days give
// by what decides it (daysKey): sessions are few, and each changes its
// times seldom. It is emptied when it holds max entries.
type daysMemo[V any] struct {
	mu  sync.Mutex
	m   map[daysKey]V
	max int
}

// daysKey is what decides a session's days: the rule, the session's start
// and first instant, and the zone.
type daysKey struct {
	days, start, loc string
	made             int64
}

func memoKey(s *Session, loc *time.Location) daysKey {
	return daysKey{days: s.Days, start: s.Start, loc: loc.String(), made: s.CreatedAt.UnixNano()}
}

func (c *daysMemo[V]) get(k daysKey) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *daysMemo[V]) put(k daysKey, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[daysKey]V)
	}
	c.m[k] = v
}

// coming holds, for days of a longer cycle, their starts near the instant
// they were asked from (comingStarts).
var coming = daysMemo[*comingDays]{max: 4096}

// comingSpan is how far after the instant asked from comingStarts walks.
const comingSpan = 400 * 24 * time.Hour

// comingDays are the starts of a session's days in (from, to], in order, and
// the first after to; ended says there is none after to.
type comingDays struct {
	from, to time.Time
	starts   []time.Time
	instants []time.Time // the rule's own (ruleStarts), each start's
	ended    bool
}

// comingStarts returns s's starts in loc around from: kept from an
// earlier call whose span holds from, or walked now from a day before
// from to comingSpan after it, and the first start after that.
func comingStarts(s *Session, loc *time.Location, from time.Time) (*comingDays, error) {
	k := memoKey(s, loc)
	if c, ok := coming.get(k); ok && !from.Before(c.from) && from.Before(c.to) {
		return c, nil
	}
	c := &comingDays{from: from.Add(-24 * time.Hour), to: from.Add(comingSpan), ended: true}
	walk, err := s.ruleStarts(loc, c.from, time.Time{})
	if err != nil {
		return nil, err
	}
	for instant, t := range walk {
		c.starts, c.instants = append(c.starts, t), append(c.instants, instant)
		if instant.After(c.to) {
			c.ended = false
			break
		}
	}
	coming.put(k, c)
	return c, nil
}

// countEnds holds the last start of days with COUNT (countEnd).
var countEnds = daysMemo[time.Time]{max: 10000}

// countEnd returns the last start of s's days, which have COUNT, in loc
// (zero if none), walked once and kept in countEnds.
func countEnd(s *Session, loc *time.Location) (time.Time, error) {
	k := memoKey(s, loc)
	if last, ok := countEnds.get(k); ok {
		return last, nil
	}
	starts, err := s.starts(loc, s.CreatedAt.Add(-48*time.Hour), time.Time{})
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for t := range starts {
		last = t
	}
	countEnds.put(k, last)
	return last, nil
}

// monthDays is the most days each month has, February in a leap year.
var monthDays = [12]int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// matchesNoDay reports whether days, a valid days rule, chooses only days
// of the month that none of its months has (30 February, 31 April): its
// other parts only narrow the days down.
func matchesNoDay(days string) bool {
	days = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(days), "RRULE:"))
	if days == "" {
		return false
	}
	opt, err := rrule.StrToROption(days)
	if err != nil || len(opt.Bymonthday) == 0 {
		return false
	}
	months := opt.Bymonth
	if len(months) == 0 {
		months = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	}
	for _, m := range months {
		if m < 1 || m > 12 {
			continue
		}
		for _, d := range opt.Bymonthday {
			if d != 0 && max(d, -d) <= monthDays[m-1] {
				return false
			}
		}
	}
	return true
}

// SessionRun is one instance of a session: when it starts, and the
// session with the times it runs by.
type SessionRun struct {
	Start   time.Time
	Session *Session
}

// Runs returns the instances of s starting in (from, to] in loc, each
// with the times it runs by. An instance that began before a change of
// the session's times keeps the times it began with (Earlier), so that a
// change never moves or cuts off what is on air; the new times apply to
// instances beginning after the change, except on a day whose instance
// had begun by then (under way or over): that day has it once. A session
// has no instance that was over before its creation (none on the creation
// day if made after that day's window; one made within it runs the rest
// of it), and a deleted one none starting at or after DeletedAt.
func (s *Session) Runs(loc *time.Location, from, to time.Time) ([]SessionRun, error) {
	// From the start of from's day: an instance of earlier times that day
	// takes the day even if it began before from.
	y, m, d := from.In(loc).Date()
	lo := time.Date(y, m, d, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
	var out []SessionRun
	taken := map[string]bool{}
	// From its creation: a session of 17:00 for 45 minutes created at
	// 18:00 did not run that day (its rule counts from the creation day's
	// start, and named that instance: the programme showed its items
	// played then, and one deleted that evening was kept as having run).
	// Created at 17:10, inside that window, it runs for the rest of it: an
	// officer who sets up the evening session while it would be on air
	// and sends the day's news to it hears it now.
	var since time.Time
	for i := 0; i <= len(s.Earlier); i++ {
		times, until := s, time.Time{}
		if i < len(s.Earlier) {
			e := s.Earlier[i]
			times = &Session{ID: s.ID, Area: s.Area, Name: s.Name, Start: e.Start, MaxMinutes: e.MaxMinutes, Days: e.Days,
				CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt}
			until = e.Until
			if !until.After(lo) {
				// Over before from's day: none of its instances, nor the
				// days they took, is in the span.
				since = until
				continue
			}
		}
		starts, err := times.Instances(loc, lo, to)
		if i < len(s.Earlier) && ErrorCode(err) == EInvalid {
			// Earlier times this version refuses (an older one stored
			// them; an officer gave valid ones since): which instances
			// ran by them is unknown, so they name none and take no day.
			// Failing here kept the session's programme, checks and the
			// change that mended it failing for good (RefusedTimes lets
			// a view of those days say so).
			since = until
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, t := range starts {
			day := t.In(loc).Format(DateLayout)
			if t.Before(since) || !until.IsZero() && !t.Before(until) || taken[day] {
				continue
			}
			if !t.Add(times.MaxLength()).After(s.CreatedAt) {
				continue // over before the session was made
			}
			if s.Deleted() && !t.Before(s.DeletedAt) {
				continue
			}
			taken[day] = true
			if t.After(from) {
				out = append(out, SessionRun{Start: t, Session: times})
			}
		}
		since = until
	}
	return out, nil
}

// Overlap returns the first span in (from, to] in which s and o both run
// (an instance of each, each lasting its MaxLength; none over before its
// session was made), or zero times if they never do.
func (s *Session) Overlap(o *Session, loc *time.Location, from, to time.Time) (start, end time.Time, err error) {
	return overlap(readSession(s, loc), readSession(o, loc), from, to, zoneShift(loc, from))
}

// overlap is Overlap of the sessions of sr and or, their times read once;
// shift is zoneShift(loc, from).
func overlap(sr, or *sessionRead, from, to time.Time, shift time.Duration) (start, end time.Time, err error) {
	s, o, loc := sr.s, or.s, sr.loc
	if !to.After(from) || apartOnTheClock(s, o, shift) {
		// Nothing to compare: (from, to] is empty when one of them ends
		// before from (OverlapHorizon stops at its UNTIL), and the walk of
		// a rule of a long cycle went from its first day to find so.
		return time.Time{}, time.Time{}, nil
	}
	// Against a session whose days repeat every few days or weeks, the
	// other's instances alone are walked: a daily session against a
	// yearly one at nearby times is compared over the yearly one's 400
	// years in 292 steps, not 100,000.
	if w, err := or.weekly(); err != nil {
		return time.Time{}, time.Time{}, err
	} else if w != nil {
		return overlapWeekly(sr, or, w, from, to)
	}
	if w, err := sr.weekly(); err != nil {
		return time.Time{}, time.Time{}, err
	} else if w != nil {
		start, end, err := overlapWeekly(or, sr, w, from, to)
		return start, end, err
	}
	mine, err := s.liveStarts(loc, from, to)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	theirs, err := o.liveStarts(loc, from, to)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	start, end = firstOverlap(mine, theirs, s.MaxLength(), o.MaxLength())
	return start, end, nil
}

// firstOverlap returns the first span in which an instance of mine (each
// lasting mineLen) and one of theirs (theirsLen) both run, walking the two
// ordered sequences together; zero times if none does.
func firstOverlap(mine, theirs iter.Seq[time.Time], mineLen, theirsLen time.Duration) (start, end time.Time) {
	nextA, stopA := iter.Pull(mine)
	defer stopA()
	nextB, stopB := iter.Pull(theirs)
	defer stopB()
	a, okA := nextA()
	b, okB := nextB()
	for okA && okB {
		aEnd, bEnd := a.Add(mineLen), b.Add(theirsLen)
		switch {
		case !aEnd.After(b):
			a, okA = nextA()
		case !bEnd.After(a):
			b, okB = nextB()
		default:
			return maxTime(a, b), minTime(aEnd, bEnd)
		}
	}
	return time.Time{}, time.Time{}
}

// liveStarts returns the starts of s's days in (from, to], in loc, but an
// instance over before s was made (its rule counts from its creation day's
// start: made at 17:50 for 17:00 and 45 minutes), which never runs (Runs).
// Compared, it refused a session, or named an overlap, that could never
// happen.
func (s *Session) liveStarts(loc *time.Location, from, to time.Time) (iter.Seq[time.Time], error) {
	starts, err := s.starts(loc, from, to)
	if err != nil {
		return nil, err
	}
	return func(yield func(time.Time) bool) {
		for t := range starts {
			if s.overBeforeMade(t) {
				continue
			}
			if !yield(t) {
				return
			}
		}
	}, nil
}

// overBeforeMade reports whether s's instance starting at t was over
// before s was made, as Runs leaves out.
func (s *Session) overBeforeMade(t time.Time) bool { return !t.Add(s.MaxLength()).After(s.CreatedAt) }

// sessionRead is what the checks of a session (TimesRefused, NextRun,
// OverlapHorizon, Overlap) read of its own times in zone loc, each read
// once: its days' cycle and last day, whether this version refuses its
// times, and its days as weeklyDays.
type sessionRead struct {
	s     *Session
	loc   *time.Location
	cycle int64     // daysCycle
	last  time.Time // lastDay
	// Its days' UNTIL, read in loc as the rule's walk reads it, and
	// COUNT; zero if none.
	until time.Time
	count int

	refused     error
	refusedRead bool
	w           *weeklyDays
	wErr        error
	wRead       bool
}

// readSession reads s's days once, in loc: their UNTIL is the rule's
// walk's (a day without Z is of the area's zone; OverlapHorizon's end,
// lastDay, read it in UTC, hours apart, a day later either way).
func readSession(s *Session, loc *time.Location) *sessionRead {
	r := &sessionRead{s: s, loc: loc, cycle: 1}
	if days := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s.Days), "RRULE:")); days != "" {
		if opt, err := rrule.StrToROptionInLocation(days, loc); err == nil {
			r.cycle, r.until, r.count = cycleOf(opt), opt.Until, opt.Count
		}
	}
	r.last = lastDay(s, r.until)
	return r
}

// timesRefused is s.TimesRefused(loc), read once.
func (r *sessionRead) timesRefused() error {
	if !r.refusedRead {
		r.refused, r.refusedRead = r.s.TimesRefused(r.loc), true
	}
	return r.refused
}

// weekly is s.weekly(loc), read once.
func (r *sessionRead) weekly() (*weeklyDays, error) {
	if !r.wRead {
		r.w, r.wErr = r.s.weekly(r.loc)
		r.wRead = true
	}
	return r.w, r.wErr
}

// weeklyDays is the days of a session whose days rule repeats every
// cycle days from its first day (daysCycle): runs[i] says whether it runs
// i days (mod cycle) after its first day, until its UNTIL or its COUNT-th
// start.
type weeklyDays struct {
	first time.Time // its first day's date, at 00:00 UTC
	runs  []bool
	until time.Time // its rule's UNTIL, or its COUNT-th start, or zero
	clock time.Duration
}

// maxWeeklyCycle bounds the cycles kept as weeklyDays.
const maxWeeklyCycle = 7 * 53

// weekly returns s's days as weeklyDays, or nil if its rule repeats in a
// longer cycle than maxWeeklyCycle, or has a COUNT the cycle cannot tell
// the end of.
func (s *Session) weekly(loc *time.Location) (*weeklyDays, error) {
	cycle := daysCycle(s.Days)
	if cycle > maxWeeklyCycle {
		return nil, nil
	}
	// In loc, as the rule's walk reads it (NewRecurrence): an UNTIL
	// without Z (20261108) is a day of the area's zone, not of UTC.
	var opt rrule.ROption
	if days := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s.Days), "RRULE:")); days != "" {
		if o, err := rrule.StrToROptionInLocation(days, loc); err == nil {
			opt = *o
		}
	}
	clock, err := ParseClock(s.Start)
	if err != nil {
		return nil, err
	}
	first := AtClock(s.CreatedAt, clock, loc)
	starts, err := s.Instances(loc, first.Add(-time.Nanosecond), first.AddDate(0, 0, int(cycle)).Add(-time.Nanosecond))
	if err != nil {
		return nil, err
	}
	w := &weeklyDays{first: dateOf(first, loc), runs: make([]bool, cycle), until: opt.Until, clock: clock}
	var days []int
	for _, t := range starts {
		// Within the cycle by the window; a DST gap that moved a start
		// past midnight is not counted twice.
		if i := daysBetween(w.first, dateOf(t, loc)); i >= 0 && i < len(w.runs) && !w.runs[i] {
			w.runs[i] = true
			days = append(days, i)
		}
	}
	if opt.Count > 0 {
		// Its COUNT-th day ends it: the cycle's days, counted in order,
		// as many whole cycles as COUNT fills and the rest into the next.
		// The first cycle held as many instances as days (none moved
		// onto another's day), else the count is not told so; nor is an
		// end past rrule-go's (about 292 years): walked as before.
		if len(days) != len(starts) {
			return nil, nil
		}
		if len(days) > 0 {
			n := opt.Count - 1
			d := w.first.AddDate(0, 0, n/len(days)*len(w.runs)+days[n%len(days)])
			last := AtClock(time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, loc), clock, loc)
			if !last.Before(s.CreatedAt.AddDate(200, 0, 0)) {
				return nil, nil
			}
			if w.until.IsZero() || last.Before(w.until) {
				w.until = last
			}
		}
	}
	return w, nil
}

// dateOf returns t's date in loc, at 00:00 UTC, for counting days.
func dateOf(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func daysBetween(a, b time.Time) int { return int(b.Sub(a).Hours()) / 24 }

// overlapWeekly is Overlap of the sessions of sr and or, or's days being
// w: sr's instances in order, each against or's on the day before, the
// day and the day after.
func overlapWeekly(sr, or *sessionRead, w *weeklyDays, from, to time.Time) (start, end time.Time, err error) {
	s, o, loc := sr.s, or.s, sr.loc
	mine, err := sr.cycleLiveStarts(from, to)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	for a := range mine {
		aEnd, day := a.Add(s.MaxLength()), dateOf(a, loc)
		for _, shift := range []int{-1, 0, 1} {
			d := day.AddDate(0, 0, shift)
			i := daysBetween(w.first, d)
			if i < 0 || !w.runs[i%len(w.runs)] {
				continue
			}
			b := AtClock(time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, loc), w.clock, loc)
			if !b.After(from) || b.After(to) || !w.until.IsZero() && b.After(w.until) || o.overBeforeMade(b) {
				continue
			}
			if bEnd := b.Add(o.MaxLength()); aEnd.After(b) && bEnd.After(a) {
				return maxTime(a, b), minTime(aEnd, bEnd), nil
			}
		}
	}
	return time.Time{}, time.Time{}, nil
}

// cycleLiveStarts is liveStarts, but days that repeat in a short cycle
// (weekly) are looked up in it from from's day on: the rule's iteration
// walks from the session's first day, a longer walk each year it is
// kept, and two sessions of a commune near each other on the clock were
// compared from the days they were made at each list. A to past rrule-go's
// last day (about 292 years after the first) is walked as before.
func (s *Session) cycleLiveStarts(loc *time.Location, from, to time.Time) (iter.Seq[time.Time], error) {
	return readSession(s, loc).cycleLiveStarts(from, to)
}

// cycleLiveStarts is cycleLiveStarts of r's session, its times read once.
func (r *sessionRead) cycleLiveStarts(from, to time.Time) (iter.Seq[time.Time], error) {
	s, loc := r.s, r.loc
	w, err := r.weekly()
	if err != nil || w == nil || to.IsZero() || !to.Before(s.CreatedAt.AddDate(200, 0, 0)) {
		return s.liveStarts(loc, from, to)
	}
	return func(yield func(time.Time) bool) {
		last := dateOf(to, loc).AddDate(0, 0, 1)
		for d := dateOf(from, loc).AddDate(0, 0, -1); !d.After(last); d = d.AddDate(0, 0, 1) {
			i := daysBetween(w.first, d)
			if i < 0 || !w.runs[i%len(w.runs)] {
				continue
			}
			t := AtClock(time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, loc), w.clock, loc)
			if t.After(to) || !w.until.IsZero() && t.After(w.until) {
				return
			}
			if !t.After(from) || s.overBeforeMade(t) {
				continue
			}
			if !yield(t) {
				return
			}
		}
	}, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// OverlapHorizon returns how far from from s and o, sessions of an area
// in zone loc, must be compared (Overlap) to find every span in which both
// run: to where their days repeat together, as RFC 5545 rules do within
// whole cycles of the calendar (daysCycle), and in a zone with DST at
// least a year (a DST change moves a session's instants for a day, on
// dates of its own). Past the end of either rule (its UNTIL, or
// rrule-go's last day, about 292 years after DTSTART, for a rule without
// one) neither runs, and a comparison past it would find nothing.
func OverlapHorizon(s, o *Session, loc *time.Location, from time.Time) time.Time {
	return overlapHorizon(readSession(s, loc), readSession(o, loc), from, zoneShift(loc, from))
}

// overlapHorizon is OverlapHorizon of the sessions of sr and or, their
// times read once; shift is zoneShift(loc, from).
func overlapHorizon(sr, or *sessionRead, from time.Time, shift time.Duration) time.Time {
	cycle := lcmDays(sr.cycle, or.cycle)
	first := from
	for _, x := range []*Session{sr.s, or.s} {
		if x.CreatedAt.After(first) {
			first = x.CreatedAt
		}
	}
	// Two days more: a session past midnight meets the next day's.
	to := from
	if shift > 0 {
		to = from.Add(SessionOverlapLookahead)
	}
	if cycle < maxCycleDays {
		to = maxTime(to, first.AddDate(0, 0, int(cycle)+2))
	} else {
		to = time.Date(rrule.MAXYEAR+1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	for _, end := range []time.Time{sr.last, or.last} {
		if end.Before(to) {
			to = end
		}
	}
	return to
}

// gregorianDays is the Gregorian calendar's cycle: 400 years, 146,097
// days, a whole number of weeks, after which dates and weekdays repeat.
const gregorianDays = 146097

// maxCycleDays stands for a cycle longer than any rule can run.
const maxCycleDays = 1 << 40

// daysCycle returns a number of days after which the days a rule chooses
// repeat, from its first day on: a rule of days or weeks alone (FREQ=DAILY
// or WEEKLY, BYDAY without ordinals) repeats within its interval and the
// week; one that names months, days of the month or year, week numbers or
// ordinal weekdays, or counts months or years, repeats within Gregorian
// cycles as many as its interval needs. A rule that cannot be read, or
// that CheckDays refuses (BYEASTER), is refused by Instances whatever its
// cycle.
func daysCycle(days string) int64 {
	days = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(days), "RRULE:"))
	if days == "" {
		return 1
	}
	opt, err := rrule.StrToROption(days)
	if err != nil {
		return 1
	}
	return cycleOf(opt)
}

// cycleOf is daysCycle of a rule read.
func cycleOf(opt *rrule.ROption) int64 {
	k := int64(max(opt.Interval, 1))
	calendar := len(opt.Bymonth) > 0 || len(opt.Bymonthday) > 0 || len(opt.Byyearday) > 0 || len(opt.Byweekno) > 0 ||
		slices.ContainsFunc(opt.Byweekday, func(w rrule.Weekday) bool { return w.N() != 0 })
	switch opt.Freq {
	case rrule.DAILY:
		switch {
		case calendar:
			return lcmDays(k, gregorianDays)
		case len(opt.Byweekday) > 0:
			return lcmDays(k, 7)
		}
		return k
	case rrule.WEEKLY:
		if calendar {
			return lcmDays(7*k, gregorianDays)
		}
		return 7 * k
	case rrule.MONTHLY:
		return lcmDays(k, 400*12) / 4800 * gregorianDays // k months, 4,800 a cycle
	default:
		return lcmDays(k, 400) / 400 * gregorianDays
	}
}

// lcmDays returns the least common multiple of a and b, or maxCycleDays
// if it is that long or longer.
func lcmDays(a, b int64) int64 {
	if a >= maxCycleDays || b >= maxCycleDays {
		return maxCycleDays
	}
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	if l := a / x * b; l < maxCycleDays {
		return l
	}
	return maxCycleDays
}

// lastDay returns a day after the last instance of x's days, whose
// UNTIL is until (zero if none): its UNTIL, or the end rrule-go gives a
// rule without one (DTSTART plus the longest time.Duration), a day later.
func lastDay(x *Session, until time.Time) time.Time {
	end := x.CreatedAt.Add(time.Duration(math.MaxInt64))
	if !until.IsZero() {
		end = until
	}
	return end.Add(48 * time.Hour)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// apartOnTheClock reports whether s and o can never run at once, whatever
// their days: their spans on the clock, each widened by slack (how far a
// DST change of their zone moves an instant: zoneShift), do not meet, nor
// across midnight. Comparing their days is what costs (a yearly session's
// centuries); most of an area's sessions, morning and evening, or an
// evening and a later one on holidays, are this far apart.
func apartOnTheClock(s, o *Session, slack time.Duration) bool {
	a, errA := ParseClock(s.Start)
	b, errB := ParseClock(o.Start)
	const day = 24 * time.Hour
	if errA != nil || errB != nil || s.MaxLength()+o.MaxLength()+2*slack >= day {
		return false // Instances says what is wrong; or too long to tell
	}
	aEnd, bEnd := a+s.MaxLength()+slack, b+o.MaxLength()+slack
	a, b = a-slack, b-slack
	for _, shift := range []time.Duration{-day, 0, day} {
		if a < bEnd+shift && b+shift < aEnd {
			return false
		}
	}
	return true
}

// zoneShift returns how far loc's offset from UTC moves in the year from
// from (a DST change: an hour in most zones), or 0 in a zone without DST,
// such as Vietnam's. A zone's future changes repeat yearly in the tz
// data, so a year tells.
func zoneShift(loc *time.Location, from time.Time) time.Duration {
	_, first := from.In(loc).Zone()
	var shift time.Duration
	for m := 1; m <= 12; m++ {
		_, off := from.AddDate(0, m, 0).In(loc).Zone()
		shift = max(shift, time.Duration(abs(off-first))*time.Second)
	}
	return shift
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// SessionOverlapLookahead is the least span over which sessions of a zone
// with DST are compared (OverlapHorizon): a year holds every DST change.
const SessionOverlapLookahead = 366 * 24 * time.Hour

// SessionOverlapError is the EConflict of a session that would run at the
// same time as another of its area on a day both run: the nodes would get
// two sessions' items for the same minutes.
type SessionOverlapError struct {
	// Session is the one already there.
	Session *Session
	// From and To are the first span both would run, in the area's zone.
	From, To time.Time
	err      *Error
}

func (e *SessionOverlapError) Error() string { return e.err.Error() }

// Unwrap returns the EConflict *Error with the message for the officer.
func (e *SessionOverlapError) Unwrap() error { return e.err }

// CheckSessionOverlap returns a *SessionOverlapError if sess would run at
// the same time as one of others (sessions of its area, whose zone is
// loc) on a day both run from since (its creation, or the change being
// made to it) on, however far ahead (OverlapHorizon), or nil. Sessions at the
// same times on different days are fine; sess itself among others is
// skipped, and so is another whose times this version refuses
// (TimesRefused): which instances it runs is unknown, as for earlier
// times refused (Runs), and comparing with it answered the new or changed
// session with a 400 of that other session's rule, which its officer
// never typed. Once its times are mended, the change is compared with the
// rest, and refused if they would overlap.
func CheckSessionOverlap(sess *Session, others []*Session, loc *time.Location, since time.Time) error {
	return NewAreaSessions(others, loc).CheckOverlap(sess, since)
}

// AreaSessions are sessions of an area whose zone is loc, each one's
// times read once (its rule parsed, its days' cycle, whether this version
// refuses them) for the checks made of them: a list asks each session
// whether its times are refused and whether it runs again, and compares
// it with every other of its area, and reading the other's times again
// for each pair cost most of a commune's list (n² reads: 61 sessions,
// 3,660). The sessions must not change while it is used, and it is for
// one goroutine.
type AreaSessions struct {
	loc  *time.Location
	all  []*Session
	read map[*Session]*sessionRead
	// The zone's DST shift (zoneShift) from shiftFrom, kept for the
	// pairs compared from one instant.
	shiftFrom time.Time
	shift     time.Duration
}

// NewAreaSessions returns ss, sessions of an area whose zone is loc, for
// their checks.
func NewAreaSessions(ss []*Session, loc *time.Location) *AreaSessions {
	return &AreaSessions{loc: loc, all: ss, read: map[*Session]*sessionRead{}}
}

// of returns s's times, read the first time they are asked for.
func (a *AreaSessions) of(s *Session) *sessionRead {
	r := a.read[s]
	if r == nil {
		r = readSession(s, a.loc)
		a.read[s] = r
	}
	return r
}

func (a *AreaSessions) zoneShift(from time.Time) time.Duration {
	if !from.Equal(a.shiftFrom) || a.shiftFrom.IsZero() {
		a.shiftFrom, a.shift = from, zoneShift(a.loc, from)
	}
	return a.shift
}

// TimesRefused is s.TimesRefused in the area's zone.
func (a *AreaSessions) TimesRefused(s *Session) error { return a.of(s).timesRefused() }

// NextRun is s.NextRun in the area's zone.
func (a *AreaSessions) NextRun(s *Session, from time.Time) (time.Time, bool, error) {
	return a.of(s).nextRun(from)
}

// CheckOverlap is CheckSessionOverlap of sess against the area's sessions.
func (a *AreaSessions) CheckOverlap(sess *Session, since time.Time) error {
	loc, from := a.loc, since.Add(-24*time.Hour)
	sr, shift := a.of(sess), a.zoneShift(from)
	for _, o := range a.all {
		if o.Area != sess.Area || sess.ID != "" && o.ID == sess.ID {
			continue
		}
		or := a.of(o)
		if or.timesRefused() != nil {
			continue
		}
		start, end, err := overlap(sr, or, from, overlapHorizon(sr, or, from, shift), shift)
		if err != nil {
			return fmt.Errorf("compare with session %s: %w", o.ID, err)
		}
		if start.IsZero() {
			continue
		}
		day, hhmm := start.In(loc).Format(DateLayout), func(t time.Time) string { return t.In(loc).Format("15:04") }
		e := &SessionOverlapError{Session: o, From: start.In(loc), To: end.In(loc)}
		if o.Start == sess.Start {
			e.err = Errorf(EConflict, "Area %s already has session %s (%s) starting at %s, and both would run on %s: one area's sessions cannot start together. Place the items in %s, give this one other days or another start, or delete %s first.",
				sess.Area, o.ID, o.Name, o.Start, day, o.ID, o.ID)
		} else {
			e.err = Errorf(EConflict, "Area %s already has session %s (%s) from %s for %s, and this one (%s for %s) would run at the same time from %s to %s on %s: one area's sessions cannot overlap, or their items compete for the same minutes. Place the items in %s, or give this one other days, another start or fewer minutes.",
				sess.Area, o.ID, o.Name, o.Start, Count(o.MaxMinutes, "minute", "minutes"), sess.Start, Count(sess.MaxMinutes, "minute", "minutes"), hhmm(start), hhmm(end), day, o.ID)
		}
		return e
	}
	return nil
}

// SessionInstanceID names one day's instance of session id.
func SessionInstanceID(session string, start time.Time, loc *time.Location) string {
	return session + "@" + start.In(loc).Format("20060102")
}

// SessionItem is an announcement placed in a session, or accepted into it
// from above, that still has plays to come.
type SessionItem struct {
	Announcement string `json:"announcement"`
	Title        string `json:"title"`
	// Proposal is set when the item came down from above and was accepted
	// into the session.
	Proposal string `json:"proposal,omitempty"`
}

// SessionBulletin is a play of a bulletin from above that the scheduler
// places at the head of an instance of a session (a priority one, which is
// not proposed: docs/scheduling.md), and where it would play were the
// session deleted (ProgrammeService.CheckSessionDeletion).
type SessionBulletin struct {
	Announcement string `json:"announcement"`
	Title        string `json:"title"`
	// FromArea is the area above that sent it, FromAreaName its name
	// (empty if it could not be read).
	FromArea     string `json:"from_area"`
	FromAreaName string `json:"from_area_name,omitempty"`
	// Due is the start the bulletin gives this play.
	Due time.Time `json:"due"`
	// Start is when it plays in the session's instance.
	Start time.Time `json:"start"`
	// Lost says that without the session it would play nowhere on the
	// session's clusters: its own time has passed, and no other session
	// takes it.
	Lost bool `json:"lost"`
	// MovesTo is when it would play instead, if not Lost: in an instance
	// of MovesToSession, or at its own time (MovesToSession empty).
	MovesTo        time.Time `json:"moves_to,omitzero"`
	MovesToSession string    `json:"moves_to_session,omitempty"`
}

// LostBulletins returns the plays of bs that would be lost with their
// session.
func LostBulletins(bs []SessionBulletin) []SessionBulletin {
	var out []SessionBulletin
	for _, b := range bs {
		if b.Lost {
			out = append(out, b)
		}
	}
	return out
}

// ItemsToPlay returns the items of s among anns and ps: the active
// announcements placed in s, or accepted into it by an accepted proposal,
// that have a play on or after the first day (in loc) whose instance of s
// is not over at now, in id order. Each is listed once. Today's instance
// is judged by the times it runs by (Runs): after a change made while it
// was under way, those it began with.
func (s *Session) ItemsToPlay(anns []*Announcement, ps []*Proposal, loc *time.Location, now time.Time) ([]SessionItem, error) {
	y, m, d := now.In(loc).Date()
	from, tomorrow := time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	today, err := s.Runs(loc, from.Add(-time.Nanosecond), tomorrow.Add(-time.Nanosecond))
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", s.ID, err)
	}
	if len(today) > 0 && !today[0].Start.Add(today[0].Session.MaxLength()).After(now) {
		from = tomorrow // today's is over
	}
	plays := func(a *Announcement) (bool, error) {
		rec, err := NewRecurrence(a, loc)
		if err != nil {
			return false, fmt.Errorf("announcement %s: %w", a.ID, err)
		}
		_, ok := rec.Next(from.Add(-time.Nanosecond))
		return ok, nil
	}
	byID := map[string]*Announcement{}
	var out []SessionItem
	for _, a := range anns {
		if a.State != AnnouncementActive {
			continue
		}
		byID[a.ID] = a
		if a.Session != s.ID {
			continue
		}
		if ok, err := plays(a); err != nil {
			return nil, err
		} else if ok {
			out = append(out, SessionItem{Announcement: a.ID, Title: a.Title})
		}
	}
	for _, p := range ps {
		a := byID[p.Announcement]
		if p.State != ProposalAccepted || p.Session != s.ID || a == nil || a.Session == s.ID {
			continue // not in it, cancelled, or listed already
		}
		if ok, err := plays(a); err != nil {
			return nil, err
		} else if ok {
			out = append(out, SessionItem{Announcement: a.ID, Title: a.Title, Proposal: p.ID})
		}
	}
	slices.SortFunc(out, func(x, y SessionItem) int {
		return cmp.Or(cmp.Compare(len(x.Announcement), len(y.Announcement)), strings.Compare(x.Announcement, y.Announcement))
	})
	return out, nil
}

// shownItems is how many items a refused delete names in its message.
const shownItems = 3

// SessionItemsError is the EConflict of a session deleted, without Force,
// while items still to play are placed in it: once it is gone they would
// play nowhere. It is also the EForbidden of a forced delete that would
// cancel items the user may not cancel: Items are those, and Right the
// action they need.
type SessionItemsError struct {
	Session *Session
	Items   []SessionItem
	// FromAbove are the plays of bulletins from above placed in the
	// session (SessionDeletion.FromAbove), for an EConflict: those Lost
	// refuse the delete as Items do.
	FromAbove []SessionBulletin
	// Right is the action Items need (ActionEmergency), for an EForbidden.
	Right Action
	err   *Error
}

func (e *SessionItemsError) Error() string { return e.err.Error() }

// Unwrap returns the EConflict *Error with the message for the officer.
func (e *SessionItemsError) Unwrap() error { return e.err }

// nameItems names the first few of items, saying how many more there are.
func nameItems(items []SessionItem) string {
	var named []string
	for _, it := range items[:min(len(items), shownItems)] {
		named = append(named, fmt.Sprintf("%s (%s)", it.Announcement, it.Title))
	}
	list := strings.Join(named, ", ")
	if len(items) > shownItems {
		list += fmt.Sprintf(" and %d more", len(items)-shownItems)
	}
	return list
}

// NewSessionItemsError returns the *SessionItemsError refusing to delete
// s while items are placed in it, or while plays of bulletins from above
// placed in it (fromAbove) would be lost with it, naming the first few of
// each; times are said in loc, the zone of its area.
func NewSessionItemsError(s *Session, items []SessionItem, fromAbove []SessionBulletin, loc *time.Location) *SessionItemsError {
	var parts []string
	if len(items) > 0 {
		parts = append(parts, fmt.Sprintf(
			"Session %s (%s) still has %s to play: %s. Once it is deleted they play nowhere, even in a session made again with the same name. Cancel them or place them elsewhere first, or delete with ?force=true to cancel them with the session.",
			s.ID, s.Name, Count(len(items), "item", "items"), nameItems(items)))
	}
	if lost := LostBulletins(fromAbove); len(lost) > 0 {
		var named []string
		for _, b := range lost[:min(len(lost), shownItems)] {
			due := b.Due.In(loc)
			from := "area " + b.FromArea
			if b.FromAreaName != "" {
				from = fmt.Sprintf("%s (%s)", b.FromAreaName, b.FromArea)
			}
			named = append(named, fmt.Sprintf("%s (%s) from %s, due %s on %s", b.Announcement, b.Title, from,
				due.Format("15:04"), due.Format(DateLayout)))
		}
		list := strings.Join(named, "; ")
		if len(lost) > shownItems {
			list += fmt.Sprintf("; and %d more", len(lost)-shownItems)
		}
		msg := fmt.Sprintf("Session %s (%s) holds %s of bulletins from above that would no longer play here once it is deleted: %s.",
			s.ID, s.Name, Count(len(lost), "play", "plays"), list)
		if moved := len(fromAbove) - len(lost); moved > 0 {
			verb := "move"
			if moved == 1 {
				verb = "moves"
			}
			msg += fmt.Sprintf(" %s from above %s to another session or to their own time.", Count(moved, "other play", "other plays"), verb)
		}
		msg += " They belong to the area that sent them and cannot be cancelled for this area alone; ask that area to send them again at another time, or delete with ?force=true to delete the session anyway: they are not cancelled, but they will not play in this area."
		parts = append(parts, msg)
	}
	return &SessionItemsError{Session: s, Items: items, FromAbove: fromAbove, err: Errorf(EConflict, "%s", strings.Join(parts, " "))}
}

// NewSessionEmergencyError returns the *SessionItemsError (EForbidden)
// refusing a forced delete of s that would cancel its emergency items,
// which the user may not cancel: they need ActionEmergency.
func NewSessionEmergencyError(s *Session, items []SessionItem) *SessionItemsError {
	list := nameItems(items)
	return &SessionItemsError{Session: s, Items: items, Right: ActionEmergency, err: Errorf(EForbidden,
		"Session %s (%s) holds %s: %s. Deleting it with ?force=true cancels them, and cancelling an emergency item needs the %s right, which your role does not grant. Ask an officer who has it to cancel them or to delete the session.",
		s.ID, s.Name, Count(len(items), "emergency item", "emergency items"), list, ActionEmergency)}
}

// SessionDeletion says how to delete a session.
type SessionDeletion struct {
	// Force deletes it even with items still to play, and cancels them:
	// announcements placed in it are cancelled (CancelSessionDeleted),
	// proposals accepted into it are declined.
	Force bool
	// By is the user deleting it, who declines those proposals.
	By string
	// Emergency says By may cancel emergency items: By holds
	// ActionEmergency over the session's area, within which every item's
	// targets lie. Without it, a forced delete that would cancel an
	// emergency announcement is refused (NewSessionEmergencyError), as
	// cancelling that announcement alone would be.
	Emergency bool
	// FromAbove are the plays of bulletins from above the scheduler places
	// in the session (ProgrammeService.CheckSessionDeletion). With any
	// Lost, the delete is refused as for items still to play, unless
	// Force, which leaves them as they are: they belong to the area that
	// sent them, and only will not play on the session's clusters.
	FromAbove []SessionBulletin
}

// SessionFilter selects sessions. Zero fields do not filter.
type SessionFilter struct {
	// Areas limits the result to sessions of these areas.
	Areas []string
	// DeletedSince, if not zero, also returns the sessions deleted at or
	// after it (DeletedAt set), for the programme of the days they ran;
	// otherwise only those standing.
	DeletedSince time.Time
}

// SessionService stores sessions.
type SessionService interface {
	// CreateSession assigns s.ID and stores s; its area must exist. One
	// that would run at the same time as another of its area on a day both
	// run is a *SessionOverlapError, checked as it is stored.
	CreateSession(ctx context.Context, s *Session) error
	// UpdateSession makes ch to session id, checking it as CreateSession
	// does against the area's other sessions, as it is stored, and
	// returns the session before and after. A change of its times keeps
	// the times it had for the instances begun by then (Session.Apply,
	// Session.Runs).
	UpdateSession(ctx context.Context, id string, ch SessionChange) (before, after *Session, err error)
	// FindSessionByID returns the session or ENotFound, also for a
	// deleted one (as UpdateSession and DeleteSession do).
	FindSessionByID(ctx context.Context, id string) (*Session, error)
	// FindSessions returns sessions sorted by area, then start, then id;
	// deleted ones only with f.DeletedSince.
	FindSessions(ctx context.Context, f SessionFilter) ([]*Session, error)
	// DeleteSession removes it (kept marked deleted if it had run:
	// Session.DeletedAt) and returns the items it had still to play
	// (Session.ItemsToPlay). With any, it is refused with a
	// *SessionItemsError unless d.Force, which cancels them in the same
	// transaction; and, with emergency announcements among them, unless
	// d.Emergency (an EForbidden *SessionItemsError naming those).
	DeleteSession(ctx context.Context, id string, d SessionDeletion) ([]SessionItem, error)
}
