package loaxa_test

import (
	"errors"
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

// TestSessionOverlapBeyondAYear: two sessions of an area whose days first
// meet more than a year ahead were compared over the coming year only, and
// stored (and listed) as if they never met: 29 February against 29
// February, against the last Monday of February (they meet when the 29th
// is a Monday, in 2044), 2 September against the first Sunday of a month
// (2029). Their days are compared over the whole cycle in which the two
// rules repeat together; rules that never meet (29 against 28 February, a
// leap day on a Monday against one on a Tuesday) are still accepted.
func TestSessionOverlapBeyondAYear(t *testing.T) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, vn) // a Monday
	for _, tc := range []struct {
		name     string
		a, b     string // days, of a at 05:30 and b at 05:45, both for 30 minutes
		from, to string // local 2006-01-02 15:04; "" for none
	}{
		{"29 February, both", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "2028-02-29 05:45", "2028-02-29 06:00"},
		{"29 February and the last Monday of February", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO", "2044-02-29 05:45", "2044-02-29 06:00"},
		{"29 February on a Monday, monthly", "FREQ=MONTHLY;BYMONTHDAY=29;BYDAY=MO", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "2044-02-29 05:45", "2044-02-29 06:00"},
		{"2 September and first Sundays", "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2", "FREQ=MONTHLY;BYDAY=1SU", "2029-09-02 05:45", "2029-09-02 06:00"},
		{"every 28 days and 29 February", "FREQ=DAILY;INTERVAL=28", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "2072-02-29 05:45", "2072-02-29 06:00"},
		{"29 and 28 February", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28", "", ""},
		{"leap days on a Monday and on a Tuesday", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TU", "", ""},
		{"weekdays and weekends", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &loaxa.Session{ID: "s000001", Area: "12346", Name: "A", Start: "05:30", MaxMinutes: 30, Days: tc.a, CreatedAt: created}
			b := &loaxa.Session{ID: "s000002", Area: "12346", Name: "B", Start: "05:45", MaxMinutes: 30, Days: tc.b, CreatedAt: created}
			for _, pair := range [][2]*loaxa.Session{{a, b}, {b, a}} {
				err := loaxa.CheckSessionOverlap(pair[0], []*loaxa.Session{pair[1]}, vn, created)
				var overlap *loaxa.SessionOverlapError
				switch {
				case tc.from == "" && err != nil:
					t.Errorf("%s against %s: %v, want none", pair[0].Name, pair[1].Name, err)
				case tc.from == "":
				case !errors.As(err, &overlap) || loaxa.ErrorCode(err) != loaxa.EConflict:
					t.Errorf("%s against %s: %v, want an overlap from %s", pair[0].Name, pair[1].Name, err, tc.from)
				case overlap.From.Format("2006-01-02 15:04") != tc.from || overlap.To.Format("2006-01-02 15:04") != tc.to:
					t.Errorf("%s against %s: overlap %v–%v, want %s–%s", pair[0].Name, pair[1].Name, overlap.From, overlap.To, tc.from, tc.to)
				}
			}
		})
	}
	// Apart on the clock in Vietnam, which has no DST, 01:30 for 45
	// minutes and 03:00 meet in New York on the day the clocks go forward.
	ny, _ := loaxa.Location("America/New_York")
	a := &loaxa.Session{ID: "s000001", Area: "12346", Start: "01:30", MaxMinutes: 45, CreatedAt: created}
	b := &loaxa.Session{ID: "s000002", Area: "12346", Start: "03:00", MaxMinutes: 30, CreatedAt: created}
	if err := loaxa.CheckSessionOverlap(a, []*loaxa.Session{b}, vn, created); err != nil {
		t.Errorf("01:30 for 45 minutes and 03:00 in Vietnam: %v, want none", err)
	}
	var overlap *loaxa.SessionOverlapError
	if err := loaxa.CheckSessionOverlap(a, []*loaxa.Session{b}, ny, created); !errors.As(err, &overlap) ||
		overlap.From.Format("2006-01-02 15:04") != "2026-03-08 03:00" || overlap.To.Format("2006-01-02 15:04") != "2026-03-08 03:15" {
		t.Errorf("01:30 for 45 minutes and 03:00 in New York: %v, want an overlap on 8 March from 03:00 to 03:15", err)
	}
}

// BenchmarkSessionListOverlaps is the overlap part of GET /sessions for
// 200 sessions, 4 in each of 50 communes, as the list computes it: each
// session against its area's others. Each commune has weekday and weekend
// mornings whose clocks meet (their days are compared), a daily evening
// and a National Day session (2 September) after it.
func BenchmarkSessionListOverlaps(b *testing.B) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, vn)
	byArea := map[string][]*loaxa.Session{}
	var all []*loaxa.Session
	for i := range 50 {
		area := fmt.Sprint(12000 + i)
		for j, s := range []loaxa.Session{
			{Start: "05:30", MaxMinutes: 30, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"},
			{Start: "05:45", MaxMinutes: 45, Days: "FREQ=WEEKLY;BYDAY=SA,SU"},
			{Start: "17:00", MaxMinutes: 45},
			{Start: "19:30", MaxMinutes: 60, Days: "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2"},
		} {
			s.ID, s.Area, s.Name, s.CreatedAt = fmt.Sprintf("s%03d%d", i, j), area, "Buổi", created
			byArea[area] = append(byArea[area], &s)
			all = append(all, &s)
		}
	}
	now := created.AddDate(1, 0, 0)
	b.ResetTimer()
	for b.Loop() {
		for _, s := range all {
			if err := loaxa.CheckSessionOverlap(s, byArea[s.Area], vn, now.Add(24*time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSessionOverlapNeverMeets is the costliest comparison of two
// sessions at the same time: rules that never meet must be compared over
// their whole cycle (400 years for a calendar rule).
func BenchmarkSessionOverlapNeverMeets(b *testing.B) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, vn)
	for _, tc := range []struct{ name, a, b string }{
		{"29 and 28 February", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28"},
		{"first and last Mondays", "FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=-1MO"},
		{"January and February, daily", "FREQ=DAILY;BYMONTH=1", "FREQ=DAILY;BYMONTH=2"},
		{"weekdays and weekends", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			x := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: tc.a, CreatedAt: created}
			y := &loaxa.Session{ID: "s000002", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: tc.b, CreatedAt: created}
			for b.Loop() {
				if err := loaxa.CheckSessionOverlap(x, []*loaxa.Session{y}, vn, created); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSessionCompactLosesNoDay: a session keeps its earlier times so that
// an instance runs by the times it began with and a past day's programme
// shows them (Runs), one entry per change of its times, and a script
// changing them in a loop grew the record without bound. Compact drops the
// entries no instance runs by. Against the same changes kept whole, over
// every day they span, the runs are the same, instance for instance and
// times for times; each entry kept is needed (without it a day runs
// otherwise), and a night of changes between two instances leaves none
// of its own: here, changes every 7 minutes through
// 3 days and every 5 hours through 20, at random among three starts, two
// lengths and three days rules, and a thousand changes a second apart one
// night.
func TestSessionCompactLosesNoDay(t *testing.T) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, vn)
	starts, lengths, days := []string{"05:30", "06:00", "17:00"}, []int{15, 45}, []string{"", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU"}
	for _, tc := range []struct {
		name  string
		first time.Time
		every time.Duration
		n     int
		max   int // entries kept at most
	}{
		{"every 7 minutes for 3 days", created.Add(12 * time.Hour), 7 * time.Minute, 3 * 24 * 60 / 7, 4},
		{"every 5 hours for 20 days", created.Add(3 * time.Hour), 5 * time.Hour, 20 * 24 / 5, 21},
		{"a thousand changes one night", time.Date(2026, 3, 3, 1, 0, 0, 0, vn), time.Second, 1000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whole := &loaxa.Session{ID: "s000001", Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15, CreatedAt: created}
			compact := whole
			seed := uint32(7)
			next := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>16) % n }
			for i := range tc.n {
				st, l, d := starts[next(len(starts))], lengths[next(len(lengths))], days[next(len(days))]
				ch := loaxa.SessionChange{Start: &st, MaxMinutes: &l, Days: &d, At: tc.first.Add(time.Duration(i) * tc.every)}
				whole = whole.Apply(ch)
				var err error
				if compact, err = compact.Apply(ch).Compact(vn); err != nil {
					t.Fatal(err)
				}
			}
			from, to := created.AddDate(0, 0, -1), tc.first.Add(time.Duration(tc.n)*tc.every).AddDate(0, 0, 3)
			want, err := whole.Runs(vn, from, to)
			if err != nil {
				t.Fatal(err)
			}
			got, err := compact.Runs(vn, from, to)
			if err != nil {
				t.Fatal(err)
			}
			show := func(rs []loaxa.SessionRun) string {
				var out []string
				for _, r := range rs {
					out = append(out, fmt.Sprintf("%s %s/%d %q", r.Start.In(vn).Format("02 15:04"), r.Session.Start, r.Session.MaxMinutes, r.Session.Days))
				}
				return strings.Join(out, "\n")
			}
			if show(got) != show(want) {
				t.Errorf("runs after Compact:\n%s\nwant, as with every change kept:\n%s", show(got), show(want))
			}
			if len(whole.Earlier) < tc.n/2 || len(compact.Earlier) > tc.max || compact.Start != whole.Start || compact.Days != whole.Days {
				t.Errorf("%d changes of times: %d entries kept (at most %d wanted), times %s %q (want %s %q)", len(whole.Earlier), len(compact.Earlier), tc.max,
					compact.Start, compact.Days, whole.Start, whole.Days)
			}
			// And nothing kept is idle: without any one entry, a day runs
			// otherwise.
			for i := range compact.Earlier {
				without := *compact
				without.Earlier = slices.Delete(slices.Clone(compact.Earlier), i, i+1)
				if rs, err := without.Runs(vn, from, to); err != nil || show(rs) == show(want) {
					t.Errorf("entry %d of %d (%+v) is kept, but the runs are the same without it (%v)", i, len(compact.Earlier), compact.Earlier[i], err)
				}
			}
			t.Logf("%d changes of times, %d entries kept; runs:\n%s", len(whole.Earlier), len(compact.Earlier), show(got))
		})
	}
}

// BenchmarkSessionCompact is the cost Compact adds to a change of a
// session's times (PATCH /sessions/{id}) that changed every day at noon
// for a year, its morning times alternating, so each of its 365 earlier
// times is needed by the morning it ran by: the newest is compared and
// kept.
func BenchmarkSessionCompact(b *testing.B) {
	vn, _ := loaxa.Location("")
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, vn)
	s := &loaxa.Session{ID: "s000001", Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15, CreatedAt: created}
	starts := []string{"06:00", "05:30"}
	for i := range 365 {
		s = s.Apply(loaxa.SessionChange{Start: &starts[i%2], At: created.AddDate(0, 0, i+1)})
	}
	if c, err := s.Compact(vn); err != nil || len(c.Earlier) != 365 {
		b.Fatalf("compact: %d entries kept, %v; want 365", len(c.Earlier), err)
	}
	for b.Loop() {
		if _, err := s.Compact(vn); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSessionOverlapMatchesEveryInstance: Overlap walks only one
// session's instances against a session of days and weeks (held as its
// cycle of days), and streams both otherwise; over two years, for every
// pair of a set of rules and of starts (across midnight too), in Vietnam
// and in New York (DST), and for sessions made on other days, it finds
// the same first shared span as comparing every instance of both.
func TestSessionOverlapMatchesEveryInstance(t *testing.T) {
	rules := []string{"", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
		"FREQ=DAILY;INTERVAL=3", "FREQ=DAILY;BYDAY=SU", "FREQ=MONTHLY;BYDAY=1SU", "FREQ=MONTHLY;BYMONTHDAY=1,15",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2", "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260601T000000Z",
		"FREQ=DAILY;COUNT=10"}
	clocks := []struct {
		start string
		max   int
	}{{"05:30", 30}, {"05:45", 30}, {"23:45", 30}, {"00:10", 15}}
	for _, zone := range []string{"", "America/New_York"} {
		loc, _ := loaxa.Location(zone)
		made := []time.Time{time.Date(2026, 3, 2, 4, 0, 0, 0, loc), time.Date(2026, 3, 5, 20, 0, 0, 0, loc)}
		from := made[0].Add(-24 * time.Hour)
		to := from.AddDate(2, 0, 0)
		for i, ra := range rules {
			for _, rb := range rules[i:] {
				for _, ca := range clocks {
					for _, cb := range clocks {
						a := &loaxa.Session{Start: ca.start, MaxMinutes: ca.max, Days: ra, CreatedAt: made[0]}
						b := &loaxa.Session{Start: cb.start, MaxMinutes: cb.max, Days: rb, CreatedAt: made[1]}
						wantFrom, wantTo := everyInstanceOverlap(t, a, b, loc, from, to)
						for _, pair := range [][2]*loaxa.Session{{a, b}, {b, a}} {
							gotFrom, gotTo, err := pair[0].Overlap(pair[1], loc, from, to)
							if err != nil {
								t.Fatal(err)
							}
							if !gotFrom.Equal(wantFrom) || !gotTo.Equal(wantTo) {
								t.Errorf("%s: %s/%d %q against %s/%d %q: %v–%v, want %v–%v", loc, pair[0].Start, pair[0].MaxMinutes, pair[0].Days,
									pair[1].Start, pair[1].MaxMinutes, pair[1].Days, gotFrom, gotTo, wantFrom, wantTo)
							}
						}
					}
				}
			}
		}
	}
}

// everyInstanceOverlap is the first span in (from, to] in which an
// instance of a and one of b both run, comparing every pair of the
// instances they run (Runs: none over before it was made).
func everyInstanceOverlap(t *testing.T, a, b *loaxa.Session, loc *time.Location, from, to time.Time) (time.Time, time.Time) {
	t.Helper()
	starts := func(s *loaxa.Session) []time.Time {
		runs, err := s.Runs(loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var out []time.Time
		for _, r := range runs {
			out = append(out, r.Start)
		}
		return out
	}
	xs, ys := starts(a), starts(b)
	var first, last time.Time
	for _, x := range xs {
		for _, y := range ys {
			s, e := x, x.Add(a.MaxLength())
			if y.After(s) {
				s = y
			}
			if ye := y.Add(b.MaxLength()); ye.Before(e) {
				e = ye
			}
			if s.Before(e) && (first.IsZero() || s.Before(first)) {
				first, last = s, e
			}
		}
	}
	return first, last
}

// TestSessionDaysByEasterAreRefused: BYEASTER, which rrule-go takes from
// python-dateutil, was accepted in a session's days though it is not RFC
// 5545, and its days follow the moon, so the overlap check walked them to
// the rule's end. It is refused like the other rule parts a session does
// not take, saying which are; a stored one (an older version, a restored
// backup) runs no instance this version can name (TimesRefused), as
// FREQ=HOURLY does.
func TestSessionDaysByEasterAreRefused(t *testing.T) {
	vn, _ := loaxa.Location("")
	created := time.Date(2026, 3, 2, 4, 0, 0, 0, vn)
	for _, days := range []string{"FREQ=YEARLY;BYEASTER=0", "FREQ=YEARLY;BYEASTER=-2", "RRULE:FREQ=DAILY;BYEASTER=1"} {
		err := loaxa.CheckDays(days)
		if loaxa.ErrorCode(err) != loaxa.EInvalid || !strings.Contains(loaxa.ErrorMessage(err), "BYEASTER, which is not RFC 5545; choose the days with BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY or BYWEEKNO") {
			t.Errorf("CheckDays(%q) = %v, want EInvalid naming BYEASTER and what is accepted", days, err)
		}
		s := &loaxa.Session{ID: "s000001", Area: "12346", Name: "Lễ", Start: "05:30", MaxMinutes: 30, Days: days, CreatedAt: created}
		if err := s.TimesRefused(vn); loaxa.ErrorCode(err) != loaxa.EInvalid {
			t.Errorf("stored days %q: TimesRefused = %v, want EInvalid", days, err)
		}
	}
}

// TestSessionCreatedAfterItsStartRunsFromTheNextDay: a session of 17:00
// for 45 minutes created at 17:50 had an instance at 17:00 that day,
// over before it existed: the programme showed its items played then, and
// deleted that evening it was kept as a session that had run. Its first
// instance is the next day's (made at 17:45 sharp too: the window has
// ended). One created before its start, or within its window (17:40),
// runs that day: an officer who sets up the evening session while it
// would be on air hears what is sent to it now.
func TestSessionCreatedAfterItsStartRunsFromTheNextDay(t *testing.T) {
	vn, _ := loaxa.Location("")
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, vn)
	for _, tc := range []struct {
		name    string
		created time.Time
		first   time.Time
		ranBy   bool // an instance began before 20:00 that day
	}{
		{"created at 17:50", day.Add(17*time.Hour + 50*time.Minute), day.AddDate(0, 0, 1).Add(17 * time.Hour), false},
		{"created at 17:45", day.Add(17*time.Hour + 45*time.Minute), day.AddDate(0, 0, 1).Add(17 * time.Hour), false},
		{"created at 17:40, within its window", day.Add(17*time.Hour + 40*time.Minute), day.Add(17 * time.Hour), true},
		{"created at 17:00", day.Add(17 * time.Hour), day.Add(17 * time.Hour), true},
		{"created at 16:59", day.Add(16*time.Hour + 59*time.Minute), day.Add(17 * time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &loaxa.Session{ID: "s000001", Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45, CreatedAt: tc.created}
			runs, err := s.Runs(vn, day.Add(-time.Nanosecond), day.AddDate(0, 0, 2))
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) == 0 || !runs[0].Start.Equal(tc.first) {
				t.Errorf("runs %v, want the first at %v", runs, tc.first)
			}
			if ran, err := s.RanBy(vn, day.Add(20*time.Hour)); err != nil || ran != tc.ranBy {
				t.Errorf("RanBy 20:00 that day = %v, %v; want %v", ran, err, tc.ranBy)
			}
		})
	}
}

// TestSessionMadeAfterItsStartOverlapsFromTheNextDay: a session made after
// its creation day's window runs from the next day it is due (Runs), but
// the overlap check compared that day's start too, so it refused a session
// for an overlap that could never happen: the evening session made at
// 18:00 for 17:10, beside a campaign session of 17:00 whose last day was
// that day, was refused as running with it "from 17:10 to 17:30" that
// day. Made at 17:20, within its window, it runs the rest of it, and the
// overlap is real.
func TestSessionMadeAfterItsStartOverlapsFromTheNextDay(t *testing.T) {
	vn, _ := loaxa.Location("")
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, vn)
	for _, campaign := range []loaxa.Session{
		// Its last day today by UNTIL (days repeating daily: walked as a cycle)
		// or by COUNT (walked instance by instance).
		{ID: "s000001", Area: "12346", Name: "Vận động bầu cử", Start: "17:00", MaxMinutes: 30,
			Days: "FREQ=DAILY;UNTIL=20260302T165959Z", CreatedAt: day.AddDate(0, 0, -7)},
		{ID: "s000001", Area: "12346", Name: "Vận động bầu cử", Start: "17:00", MaxMinutes: 30,
			Days: "FREQ=DAILY;COUNT=3", CreatedAt: day.AddDate(0, 0, -2).Add(8 * time.Hour)},
	} {
		for _, tc := range []struct {
			made     time.Duration
			from, to string // local 2006-01-02 15:04; "" for none
		}{
			{18 * time.Hour, "", ""},
			{17*time.Hour + 40*time.Minute, "", ""},
			{17*time.Hour + 20*time.Minute, "2026-03-02 17:10", "2026-03-02 17:30"},
			{9 * time.Hour, "2026-03-02 17:10", "2026-03-02 17:30"},
		} {
			t.Run(campaign.Days+" made at "+day.Add(tc.made).Format("15:04"), func(t *testing.T) {
				evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:10", MaxMinutes: 30, CreatedAt: day.Add(tc.made)}
				err := loaxa.CheckSessionOverlap(evening, []*loaxa.Session{&campaign}, vn, evening.CreatedAt)
				var overlap *loaxa.SessionOverlapError
				errors.As(err, &overlap)
				switch {
				case tc.from == "" && err != nil:
					t.Errorf("refused: %v; it first runs tomorrow, after the campaign's last day", err)
				case tc.from != "" && overlap == nil:
					t.Errorf("CheckSessionOverlap = %v, want an overlap %s–%s", err, tc.from, tc.to)
				case tc.from != "" && (overlap.From.Format("2006-01-02 15:04") != tc.from || overlap.To.Format("2006-01-02 15:04") != tc.to):
					t.Errorf("overlap %v–%v, want %s–%s", overlap.From, overlap.To, tc.from, tc.to)
				}
				// The same pair the other way round: the list compares each
				// session with the others.
				start, _, err := campaign.Overlap(evening, vn, evening.CreatedAt.Add(-24*time.Hour), day.AddDate(0, 0, 10))
				if err != nil || start.IsZero() != (tc.from == "") {
					t.Errorf("campaign.Overlap = %v, %v; want an overlap: %v", start, err, tc.from != "")
				}
			})
		}
	}
}

// BenchmarkSessionNextRun is what telling whether a session runs again
// (NextRun, asked of every session listed) costs: a session that runs,
// one whose UNTIL has passed, and days that match no day, which the
// rule's iteration walked to year 9999 to find.
func BenchmarkSessionNextRun(b *testing.B) {
	vn, _ := loaxa.Location("")
	created := time.Date(2025, 3, 2, 4, 0, 0, 0, vn)
	now := created.AddDate(1, 0, 0)
	for _, tc := range []struct{ name, days string }{
		{"weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"},
		{"until passed", "FREQ=DAILY;UNTIL=20251231T165959Z"},
		{"30 February", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"},
		{"31 April and June, monthly", "FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31"},
		{"weekdays, count used up", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=200"},
		{"weekdays, count to come", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=2000"},
		{"first Mondays, count used up", "FREQ=MONTHLY;BYDAY=1MO;COUNT=6"},
		{"first Mondays, count to come", "FREQ=MONTHLY;BYDAY=1MO;COUNT=60"},
		{"first Mondays", "FREQ=MONTHLY;BYDAY=1MO"},
		{"National Day", "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: tc.days, CreatedAt: created}
			for b.Loop() {
				if _, _, err := s.NextRun(vn, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSessionNextRun: a session runs again unless its UNTIL or COUNT has
// passed or its days match no day; the days of the month no month of the
// rule has are told without walking the years (BenchmarkSessionNextRun),
// and a day only a leap year or a long month has still runs.
func TestSessionNextRun(t *testing.T) {
	vn, _ := loaxa.Location("")
	ny, _ := loaxa.Location("America/New_York")
	created := time.Date(2025, 3, 2, 4, 0, 0, 0, vn)
	now := created.AddDate(1, 0, 0)
	for _, tc := range []struct {
		days string
		runs bool
	}{
		{"", true},
		{"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", true},
		{"FREQ=DAILY;UNTIL=20251231T165959Z", false},
		{"FREQ=DAILY;COUNT=3", false},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", false},
		{"FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31", false},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-30", false},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", true},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-29", true},
		{"FREQ=MONTHLY;BYMONTHDAY=31", true},
		{"FREQ=YEARLY;BYMONTH=2,3;BYMONTHDAY=30", true},
		{"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", true},
		{"FREQ=DAILY;UNTIL=20260315T000000Z", true},
		{"FREQ=DAILY;UNTIL=20260303T000000Z", true},
		{"FREQ=DAILY;UNTIL=20260301T000000Z", false},
	} {
		s := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: tc.days, CreatedAt: created}
		next, ok, err := s.NextRun(vn, now)
		if err != nil || ok != tc.runs || ok && !next.After(now) {
			t.Errorf("days %q: NextRun = %v, %v, %v; want runs %v", tc.days, next, ok, err, tc.runs)
		}
		if !tc.runs {
			continue
		}
		// As the rule's own walk finds it, for each hour of a day, and
		// across a DST change.
		for h := range 24 * 3 {
			loc, from := vn, now.Add(time.Duration(h)*time.Hour)
			if h >= 24 {
				loc, from = ny, time.Date(2026, 3, 7, 0, 0, 0, 0, ny).Add(time.Duration(h-24)*time.Hour)
			}
			next, ok, err := s.NextRun(loc, from)
			walked, err2 := s.Instances(loc, from, from.AddDate(5, 0, 0))
			if err != nil || err2 != nil || ok != (len(walked) > 0) || ok && !next.Equal(walked[0]) {
				t.Errorf("days %q from %v: NextRun = %v, %v, %v; the rule's walk %v, %v", tc.days, from, next, ok, err, walked[:min(len(walked), 1)], err2)
			}
		}
	}
}

// TestSessionNoDayNotWalked: a session whose days match no day (30
// February, 31 April and June) is read, compared and checked without
// walking its rule to the year 9999: the session list reads each
// session's times (TimesRefused), and every other session of its commune
// reads them again and compares with it, 20 ms a walk (its walk left
// out: TestRecurrenceNoDays; BenchmarkSessionNoDay). Days of the month
// that some month named has still run.
func TestSessionNoDayNotWalked(t *testing.T) {
	vn, _ := loaxa.Location("")
	ny, _ := loaxa.Location("America/New_York")
	created := time.Date(2023, 3, 2, 4, 0, 0, 0, vn)
	from := created.AddDate(3, 0, 0)
	for _, days := range []string{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=-30;COUNT=3"} {
		for _, loc := range []*time.Location{vn, ny} {
			s := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: days, CreatedAt: created}
			daily := &loaxa.Session{ID: "s000002", Area: "12346", Start: "05:45", MaxMinutes: 30, CreatedAt: created}
			if err := s.TimesRefused(loc); err != nil {
				t.Fatalf("%s: refused: %v", days, err)
			}
			if got, err := s.Instances(loc, created.Add(-time.Hour), from); err != nil || len(got) != 0 {
				t.Errorf("%s in %s: instances %v, %v", days, loc, got, err)
			}
			if err := loaxa.CheckSessionOverlap(daily, []*loaxa.Session{s, daily}, loc, from); err != nil {
				t.Errorf("%s in %s: daily session overlaps it: %v", days, loc, err)
			}
			if err := loaxa.CheckSessionOverlap(s, []*loaxa.Session{s, daily}, loc, from); err != nil {
				t.Errorf("%s in %s: overlaps the daily session: %v", days, loc, err)
			}
		}
	}
	// 30 February or March, and 31 April or May, still run on the day
	// the month has.
	for days, want := range map[string]string{
		"FREQ=YEARLY;BYMONTH=2,3;BYMONTHDAY=30":    "2023-03-30 05:30",
		"FREQ=MONTHLY;BYMONTH=4,5;BYMONTHDAY=31":   "2023-05-31 05:30",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29":      "2024-02-29 05:30",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-29,-30": "2024-02-01 05:30",
	} {
		s := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: days, CreatedAt: created}
		got, err := s.Instances(vn, created, created.AddDate(2, 0, 0))
		if err != nil || len(got) == 0 || got[0].Format("2006-01-02 15:04") != want {
			t.Errorf("%s: first instance %v, %v; want %s", days, got, err, want)
		}
	}
}

// BenchmarkSessionNoDay: a session of 30 February read (TimesRefused)
// and compared with a daily one of its commune at nearby times, as the
// session list does for each pair.
func BenchmarkSessionNoDay(b *testing.B) {
	vn, _ := loaxa.Location("")
	created := time.Date(2023, 3, 2, 4, 0, 0, 0, vn)
	s := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 30, Days: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", CreatedAt: created}
	daily := &loaxa.Session{ID: "s000002", Area: "12346", Start: "05:45", MaxMinutes: 30, CreatedAt: created}
	b.ReportAllocs()
	for b.Loop() {
		if err := loaxa.CheckSessionOverlap(daily, []*loaxa.Session{s, daily}, vn, created.AddDate(3, 0, 0)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionOverlapKept: the overlap check of two sessions of a
// commune near each other on the clock, made three years before, as the
// session list makes it for each: one pair that overlaps, one that never
// does (weekdays and the weekend).
func BenchmarkSessionOverlapKept(b *testing.B) {
	vn, _ := loaxa.Location("")
	made := time.Date(2023, 3, 2, 4, 0, 0, 0, vn)
	now := made.AddDate(3, 0, 0)
	weekdays := &loaxa.Session{ID: "s000001", Area: "12346", Start: "05:30", MaxMinutes: 45, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", CreatedAt: made}
	for _, tc := range []struct{ name, days string }{{"overlapping", ""}, {"weekend", "FREQ=WEEKLY;BYDAY=SA,SU"}} {
		b.Run(tc.name, func(b *testing.B) {
			o := &loaxa.Session{ID: "s000002", Area: "12346", Start: "06:00", MaxMinutes: 30, Days: tc.days, CreatedAt: made}
			b.ReportAllocs()
			for b.Loop() {
				_ = loaxa.CheckSessionOverlap(weekdays, []*loaxa.Session{o}, vn, now)
			}
		})
	}
}

// TestAreaSessionsReadEachSessionOnce: the session list asks each
// session of a commune whether its times are refused and whether it runs
// again, and compares it with every other (AreaSessions); each other
// session's times were read again for each pair (TimesRefused: its rule
// parsed and its first week walked), n² reads, most of a commune's list
// (BenchmarkListSessionsNoDayCommune). The checks of three times the
// sessions now allocate about three times as much, not nine.
func TestAreaSessionsReadEachSessionOnce(t *testing.T) {
	vn, _ := loaxa.Location("")
	made := time.Date(2023, 3, 2, 4, 0, 0, 0, vn)
	now := made.AddDate(3, 0, 0)
	commune := func(n int) []*loaxa.Session {
		var ss []*loaxa.Session
		for j := range n {
			ss = append(ss, &loaxa.Session{ID: fmt.Sprintf("s%06d", j+1), Area: "12346", Start: fmt.Sprintf("%02d:%02d", j/3, j%3*20),
				MaxMinutes: 15, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", CreatedAt: made})
		}
		return ss
	}
	list := func(ss []*loaxa.Session) float64 {
		return testing.AllocsPerRun(3, func() {
			a := loaxa.NewAreaSessions(ss, vn)
			for _, x := range ss {
				if err := a.TimesRefused(x); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := a.NextRun(x, now); err != nil || !ok {
					t.Fatalf("%s: NextRun %v, %v", x.Start, ok, err)
				}
				if err := a.CheckOverlap(x, now.Add(24*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	small, large := list(commune(20)), list(commune(60))
	t.Logf("allocations of the checks of 20 sessions: %.0f; of 60: %.0f", small, large)
	if large > 4*small {
		t.Errorf("a commune of 20 sessions: %.0f allocations; of 60: %.0f, %.1f times as many: each session's times read again for each other", small, large, large/small)
	}
}
