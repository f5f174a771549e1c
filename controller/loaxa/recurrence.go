package loaxa

import (
	"container/heap"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones for boards and containers without /usr/share/zoneinfo

	"github.com/teambition/rrule-go"
)

// DateLayout is how days are written in the API: holidays, exception
// dates, programme ranges.
const DateLayout = "2006-01-02"

// MaxPerDay bounds how often a recurring announcement may play: at most
// this many times a day on average over its first week. A loudspeaker
// that talks every few minutes is a nuisance, and every occurrence costs
// a delivery record per node.
const MaxPerDay = 48

// Location returns the IANA zone name (DefaultTimeZone for ""). "Local" is
// refused: it would be whatever the controller machine is set to.
func Location(name string) (*time.Location, error) {
	if name == "" {
		name = DefaultTimeZone
	}
	if name == "Local" {
		return nil, Errorf(EInvalid, "time zone %q is not an IANA name; use one like %s.", name, DefaultTimeZone)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(EInvalid, "time zone %q is not an IANA name; use one like %s.", name, DefaultTimeZone)
	}
	return loc, nil
}

// Recurrence is when an announcement plays, in one time zone: its start
// alone, or the instants of its RFC 5545 rules with the start as DTSTART,
// bounded by Until and Count, less its exception dates.
type Recurrence struct {
	loc   *time.Location
	start time.Time
	rules []*rrule.RRule
	// noDays: every rule given chooses only days its months do not have
	// (matchesNoDay), so none plays; rrule-go walked each to the year
	// 9999 to find that out, twice a session's days were read.
	noDays bool
	until  time.Time
	count  int
	exDay  map[string]bool
	exAt   map[int64]bool // Unix seconds
}

// NewRecurrence builds the recurrence of a in zone loc. The rule may hold
// several rules, one per line ("RRULE:" prefixes are allowed), whose
// instants are merged: "every day at 05:30 and at 17:00" is two rules.
// Errors are EInvalid with a message for the officer.
func NewRecurrence(a *Announcement, loc *time.Location) (*Recurrence, error) {
	r := &Recurrence{loc: loc, start: a.Start.In(loc), until: a.Until, count: a.Count, exDay: map[string]bool{}, exAt: map[int64]bool{}}
	for _, x := range a.ExDates {
		if d, err := time.ParseInLocation(DateLayout, x, loc); err == nil {
			r.exDay[d.Format(DateLayout)] = true
			continue
		}
		t, err := time.Parse(time.RFC3339, x)
		if err != nil {
			return nil, Errorf(EInvalid, "exdates: %q is neither a date like 2025-09-02 nor an RFC 3339 time like 2025-09-02T05:30:00+07:00.", x)
		}
		r.exAt[t.Unix()] = true
	}
	if a.RRule == "" {
		return r, nil
	}
	// rrule works in whole seconds; so do recurring starts.
	dtstart := r.start.Truncate(time.Second)
	for line := range strings.SplitSeq(strings.ReplaceAll(a.RRule, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		opt, err := rrule.StrToROptionInLocation(strings.TrimPrefix(line, "RRULE:"), loc)
		if err != nil {
			return nil, Errorf(EInvalid, "rrule %q is not an RFC 5545 rule (%v); write it like FREQ=DAILY;BYHOUR=5;BYMINUTE=30, with start as the first play.", line, err)
		}
		if !opt.Dtstart.IsZero() {
			return nil, Errorf(EInvalid, "rrule %q has its own DTSTART; leave it out: start is the DTSTART.", line)
		}
		if opt.Freq == rrule.SECONDLY {
			return nil, Errorf(EInvalid, "rrule %q repeats every second; use MINUTELY or slower.", line)
		}
		if len(opt.Byeaster) > 0 {
			// rrule-go takes BYEASTER from python-dateutil; it is not RFC
			// 5545, which scripts and other systems read the rule by, and
			// refused in a session's days (CheckDays) it is refused here.
			return nil, Errorf(EInvalid, "rrule %q uses BYEASTER, which is not RFC 5545; choose the days with BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY or BYWEEKNO, e.g. FREQ=WEEKLY;BYDAY=SU or FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2.", line)
		}
		if err := checkOrdinals(line, opt); err != nil {
			return nil, err
		}
		opt.Dtstart = dtstart
		rule, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, Errorf(EInvalid, "rrule %q: %v.", line, err)
		}
		if matchesNoDay(strings.TrimPrefix(line, "RRULE:")) {
			// Adds no instant, nor one to COUNT's merged count.
			r.noDays = true
			continue
		}
		r.rules = append(r.rules, rule)
	}
	if len(r.rules) == 0 && r.noDays {
		return r, nil
	}
	if len(r.rules) == 0 {
		return nil, Errorf(EInvalid, "rrule is blank; give a rule like FREQ=DAILY;BYHOUR=5;BYMINUTE=30, or leave rrule out for one play.")
	}
	if n := len(r.Between(dtstart.Add(-time.Second), dtstart.AddDate(0, 0, 7))); n > 7*MaxPerDay {
		return nil, Errorf(EInvalid, "rrule plays %d times in its first week; at most %d a day are allowed, so use a slower rule.", n, MaxPerDay)
	}
	return r, nil
}

// checkOrdinals refuses BYDAY ordinals beyond a month's five weeks in a
// rule that counts weeks within months (FREQ=MONTHLY, or BYMONTH): RFC
// 5545 would never match them, and rrule-go accepts up to ±53 and then
// indexes past its tables — a panic in some months only (found by
// FuzzSession with FREQ=MONTHLY;BYDAY=8MO).
func checkOrdinals(line string, opt *rrule.ROption) error {
	if opt.Freq != rrule.MONTHLY && len(opt.Bymonth) == 0 {
		return nil
	}
	for _, w := range opt.Byweekday {
		if n := w.N(); n > 5 || n < -5 {
			return Errorf(EInvalid, "rrule %q: BYDAY %s counts %d weeks into a month; a month has at most 5 of each weekday, so use 1 to 5 (or -1 to -5 from the end).", line, w, n)
		}
	}
	return nil
}

// Location returns the zone the recurrence is expanded in.
func (r *Recurrence) Location() *time.Location { return r.loc }

// Between returns the instants in (from, to], in order, in the
// recurrence's zone.
func (r *Recurrence) Between(from, to time.Time) []time.Time {
	var out []time.Time
	r.each(from, to, func(t time.Time) bool {
		out = append(out, t)
		return true
	})
	return out
}

// Next returns the first instant after from, or false if there is none:
// the rule, its bounds and its exceptions leave nothing to play.
func (r *Recurrence) Next(from time.Time) (time.Time, bool) {
	var next time.Time
	r.each(from, time.Time{}, func(t time.Time) bool {
		next = t
		return false
	})
	return next, !next.IsZero()
}

// each calls yield with the instants in (from, to] in order (to zero:
// no end) until it returns false.
func (r *Recurrence) each(from, to time.Time, yield func(time.Time) bool) {
	after := func(t time.Time) bool { return !to.IsZero() && t.After(to) }
	if len(r.rules) == 0 && r.noDays {
		return
	}
	if len(r.rules) == 0 {
		if r.start.After(from) && !after(r.start) && !r.excluded(r.start) {
			yield(r.start)
		}
		return
	}
	// Merge the rules' streams from DTSTART: Count counts the merged
	// instants, exceptions included, as RFC 5545 counts COUNT.
	h := &streams{}
	for _, rule := range r.rules {
		next := rule.Iterator()
		if t, ok := next(); ok {
			heap.Push(h, stream{t, next})
		}
	}
	var last time.Time
	n := 0
	for h.Len() > 0 {
		s := heap.Pop(h).(stream)
		t := s.at
		if next, ok := s.next(); ok {
			heap.Push(h, stream{next, s.next})
		}
		if !last.IsZero() && t.Equal(last) {
			continue // two rules on one instant play once
		}
		last = t
		n++
		if r.count > 0 && n > r.count || !r.until.IsZero() && t.After(r.until) || after(t) {
			return
		}
		if t.After(from) && !r.excluded(t) && !yield(t) {
			return
		}
	}
}

func (r *Recurrence) excluded(t time.Time) bool {
	return r.exAt[t.Unix()] || r.exDay[t.In(r.loc).Format(DateLayout)]
}

// stream is one rule's instants, the earliest not yet taken first.
type stream struct {
	at   time.Time
	next rrule.Next
}

type streams []stream

func (s streams) Len() int           { return len(s) }
func (s streams) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s streams) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *streams) Push(x any)        { *s = append(*s, x.(stream)) }
func (s *streams) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

// ParseClock reads a time of day "HH:MM" and returns it as an offset from
// midnight.
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, Errorf(EInvalid, "time of day %q: write it as HH:MM on the 24-hour clock, e.g. 05:30 or 17:00.", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// AtClock returns the instant of time of day clock on the local date of day
// in loc. On a day when DST skips that time, time.Date normalises it.
func AtClock(day time.Time, clock time.Duration, loc *time.Location) time.Time {
	y, m, d := day.In(loc).Date()
	// Wall-clock fields, not midnight plus a duration: on a DST day those
	// differ by an hour.
	return time.Date(y, m, d, int(clock/time.Hour), int(clock%time.Hour/time.Minute), 0, 0, loc)
}

// String formats the recurrence for logs.
func (r *Recurrence) String() string {
	return fmt.Sprintf("start %s in %s, %d rules", r.start.Format(time.RFC3339), r.loc, len(r.rules))
}
