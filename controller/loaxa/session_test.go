package loaxa_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// TestSessionInstances: a session runs at its start on each of its days, in
// its area's zone, also across a DST change.
func TestSessionInstances(t *testing.T) {
	vn, _ := loaxa.Location("")
	ny, _ := loaxa.Location("America/New_York")
	for _, tc := range []struct {
		name  string
		loc   *time.Location
		start string
		days  string
		from  time.Time // created then; instances over the next 7 days
		want  []string  // local 2006-01-02 15:04
	}{
		{"every day", vn, "05:30", "", time.Date(2026, 3, 2, 0, 0, 0, 0, vn),
			[]string{"2026-03-02 05:30", "2026-03-03 05:30", "2026-03-04 05:30", "2026-03-05 05:30", "2026-03-06 05:30", "2026-03-07 05:30", "2026-03-08 05:30"}},
		{"weekdays", vn, "17:00", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", time.Date(2026, 3, 2, 0, 0, 0, 0, vn),
			[]string{"2026-03-02 17:00", "2026-03-03 17:00", "2026-03-04 17:00", "2026-03-05 17:00", "2026-03-06 17:00"}},
		{"RRULE: prefix", vn, "17:00", "RRULE:FREQ=WEEKLY;BYDAY=SA", time.Date(2026, 3, 2, 0, 0, 0, 0, vn), []string{"2026-03-07 17:00"}},
		{"across the spring DST change", ny, "06:00", "", time.Date(2025, 3, 7, 0, 0, 0, 0, ny),
			[]string{"2025-03-07 06:00", "2025-03-08 06:00", "2025-03-09 06:00", "2025-03-10 06:00", "2025-03-11 06:00", "2025-03-12 06:00", "2025-03-13 06:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &loaxa.Session{Start: tc.start, Days: tc.days, MaxMinutes: 15, CreatedAt: tc.from}
			got, err := s.Instances(tc.loc, tc.from, tc.from.AddDate(0, 0, 7))
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, x := range got {
				out = append(out, x.In(tc.loc).Format("2006-01-02 15:04"))
			}
			if strings.Join(out, ",") != strings.Join(tc.want, ",") {
				t.Errorf("instances %v, want %v", out, tc.want)
			}
		})
	}
}

// FuzzSession feeds a session's start and days from outside (the API):
// they are refused with EInvalid, or every instance falls on the start's
// time of day, in order, within the window, at most once a day.
func FuzzSession(f *testing.F) {
	for _, s := range [][2]string{{"05:30", ""}, {"17:00", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, {"5:30", "FREQ=MONTHLY;BYDAY=1MO"},
		{"24:00", ""}, {"05:30", "FREQ=HOURLY"}, {"05:30", "FREQ=DAILY;BYHOUR=5"}, {"05:30", "DTSTART:20250101T000000Z\nFREQ=DAILY"},
		{"05:30", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, {"06:00", "FREQ=DAILY;INTERVAL=2;COUNT=3"}} {
		f.Add(s[0], s[1])
	}
	loc, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, loc)
	f.Fuzz(func(t *testing.T, start, days string) {
		s := &loaxa.Session{Start: start, Days: days, MaxMinutes: 15, CreatedAt: created}
		from, to := created.Add(-time.Hour), created.AddDate(0, 0, 14)
		got, err := s.Instances(loc, from, to)
		if err != nil {
			if loaxa.ErrorCode(err) != loaxa.EInvalid {
				t.Fatalf("start %q days %q: %v is not EInvalid", start, days, err)
			}
			return
		}
		clock, err := loaxa.ParseClock(start)
		if err != nil {
			t.Fatalf("start %q refused by ParseClock but accepted by Instances", start)
		}
		for i, x := range got {
			local := x.In(loc)
			if d := time.Duration(local.Hour())*time.Hour + time.Duration(local.Minute())*time.Minute; d != clock || local.Second() != 0 {
				t.Fatalf("start %q days %q: instance %v is not at %v", start, days, local, clock)
			}
			if !x.After(from) || x.After(to) || i > 0 && x.Sub(got[i-1]) < 23*time.Hour {
				t.Fatalf("start %q days %q: instances out of order, window or more than daily: %v", start, days, got)
			}
		}
	})
}

// TestSessionOverlap: two sessions overlap when an instance of each runs
// at the same time, each for its max_minutes, also across midnight; back
// to back or on different days they do not.
func TestSessionOverlap(t *testing.T) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, vn) // a Monday
	for _, tc := range []struct {
		name     string
		a, b     loaxa.Session
		from, to string // local 2006-01-02 15:04; "" for none
	}{
		{"same start", loaxa.Session{Start: "05:30", MaxMinutes: 15}, loaxa.Session{Start: "05:30", MaxMinutes: 30}, "2026-03-02 05:30", "2026-03-02 05:45"},
		{"starts within", loaxa.Session{Start: "17:15", MaxMinutes: 30}, loaxa.Session{Start: "17:00", MaxMinutes: 30}, "2026-03-02 17:15", "2026-03-02 17:30"},
		{"runs into", loaxa.Session{Start: "16:45", MaxMinutes: 20}, loaxa.Session{Start: "17:00", MaxMinutes: 30}, "2026-03-02 17:00", "2026-03-02 17:05"},
		{"back to back", loaxa.Session{Start: "17:30", MaxMinutes: 30}, loaxa.Session{Start: "17:00", MaxMinutes: 30}, "", ""},
		{"morning and evening", loaxa.Session{Start: "05:30", MaxMinutes: 15}, loaxa.Session{Start: "17:00", MaxMinutes: 30}, "", ""},
		{"other days", loaxa.Session{Start: "17:15", MaxMinutes: 30, Days: "FREQ=WEEKLY;BYDAY=SA,SU"},
			loaxa.Session{Start: "17:00", MaxMinutes: 30, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, "", ""},
		{"a shared day", loaxa.Session{Start: "17:15", MaxMinutes: 30, Days: "FREQ=WEEKLY;BYDAY=FR"},
			loaxa.Session{Start: "17:00", MaxMinutes: 30, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, "2026-03-06 17:15", "2026-03-06 17:30"},
		{"past midnight", loaxa.Session{Start: "00:15", MaxMinutes: 15}, loaxa.Session{Start: "23:30", MaxMinutes: 60}, "2026-03-03 00:15", "2026-03-03 00:30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.CreatedAt, tc.b.CreatedAt = created, created
			from := created.Add(-24 * time.Hour)
			start, end, err := tc.a.Overlap(&tc.b, vn, from, from.Add(loaxa.SessionOverlapLookahead))
			if err != nil {
				t.Fatal(err)
			}
			local := func(t time.Time) string {
				if t.IsZero() {
					return ""
				}
				return t.In(vn).Format("2006-01-02 15:04")
			}
			if local(start) != tc.from || local(end) != tc.to {
				t.Errorf("overlap %q–%q, want %q–%q", local(start), local(end), tc.from, tc.to)
			}
		})
	}
}

// TestSessionRunsAfterAChange: a change of a session's times must never
// move or cut off what has begun, nor run a day's session twice. An
// instance begun before the change (under way or over) keeps the times it
// began with and takes its day; the new times apply to the instances
// beginning after the change. Two changes during one instance leave it as
// it began.
func TestSessionRunsAfterAChange(t *testing.T) {
	vn, _ := loaxa.Location("")
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, vn) }
	str := func(v string) *string { return &v }
	for _, tc := range []struct {
		name    string
		changes map[time.Time]string // when: the new start
		want    string               // local "day HH:MM/minutes" from the 2nd to the 4th
	}{
		{"no change", nil, "02 05:30/15, 03 05:30/15, 04 05:30/15"},
		{"before the day's instance", map[time.Time]string{at(2, 5, 0): "06:00"}, "02 06:00/30, 03 06:00/30, 04 06:00/30"},
		{"while it runs", map[time.Time]string{at(2, 5, 35): "06:00"}, "02 05:30/15, 03 06:00/30, 04 06:00/30"},
		{"after it, to later that day", map[time.Time]string{at(2, 5, 50): "06:00"}, "02 05:30/15, 03 06:00/30, 04 06:00/30"},
		{"to a time already past that day", map[time.Time]string{at(2, 5, 0): "04:30"}, "03 04:30/30, 04 04:30/30"},
		{"twice while it runs", map[time.Time]string{at(2, 5, 35): "06:00", at(2, 5, 40): "06:15"}, "02 05:30/15, 03 06:15/30, 04 06:15/30"},
		{"on two days", map[time.Time]string{at(2, 5, 35): "06:00", at(3, 5, 0): "05:45"}, "02 05:30/15, 03 05:45/30, 04 05:45/30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &loaxa.Session{ID: "s000001", Start: "05:30", MaxMinutes: 15, CreatedAt: at(1, 12, 0)}
			var whens []time.Time
			for when := range tc.changes {
				whens = append(whens, when)
			}
			slices.SortFunc(whens, time.Time.Compare)
			for _, when := range whens {
				length := 30
				s = s.Apply(loaxa.SessionChange{Start: str(tc.changes[when]), MaxMinutes: &length, At: when})
			}
			runs, err := s.Runs(vn, at(2, 0, 0), at(5, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, fmt.Sprintf("%s/%d", r.Start.In(vn).Format("02 15:04"), r.Session.MaxMinutes))
			}
			if strings.Join(got, ", ") != tc.want {
				t.Errorf("runs %s, want %s", strings.Join(got, ", "), tc.want)
			}
		})
	}
}
