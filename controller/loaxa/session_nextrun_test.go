package loaxa

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSessionLookupsMatchTheWalk: NextRun, and the overlap check's
// starts (cycleLiveStarts) and overlaps, look a session's days up where
// they can instead of walking its rule from its first day: NextRun tells
// days whose UNTIL passed days ago at once, and days with COUNT in a
// longer cycle used up from their last start, found once for the rule
// (countEnd), and days of a longer cycle still to run among their starts
// near the instant asked, walked once and kept (comingStarts); days with
// COUNT that repeat in a short cycle are looked up
// in it, ending at their COUNT-th day counted in the cycle (weekly). Each
// answer is compared with the full walk of the rule (liveStarts) over
// generated sessions: COUNT from 1 to 400 (40 for months and years) on
// daily, weekday, every-other-week, monthly and yearly days, UNTIL ahead
// and passed (in UTC, and without Z: in the area's zone, as the rule's
// walk reads it), made before and after their day's window, asked at any
// hour from days before they were made to six years after, and near
// their UNTIL, in Vietnam and New York; each asked again later and earlier,
// as the next lists do, from the starts kept for the rule (comingStarts).
func TestSessionLookupsMatchTheWalk(t *testing.T) {
	vn, _ := Location("")
	ny, _ := Location("America/New_York")
	rng := rand.New(rand.NewPCG(35, 6))
	counts := func(days string) string {
		if strings.Contains(days, "MONTH") || strings.Contains(days, "YEARLY") {
			return ";COUNT=" + strconv.Itoa(1+rng.IntN(40)) // a few years
		}
		return ";COUNT=" + strconv.Itoa(1+rng.IntN(400))
	}
	untils := []string{";UNTIL=20250101T000000Z", ";UNTIL=20261108T070000Z", ";UNTIL=20270315T000000Z", ";UNTIL=20261108T070000",
		";UNTIL=20261108", ";UNTIL=20260308T023000", ";UNTIL=20280229T120000"}
	bases := []string{"FREQ=DAILY", "FREQ=DAILY;INTERVAL=3", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU",
		"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR", "FREQ=WEEKLY", "FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYMONTHDAY=31",
		"FREQ=MONTHLY", "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=DAILY;BYMONTH=1,7"}
	clocks := []string{"00:00", "00:30", "02:30", "05:30", "17:00", "23:30"}
	gen := func(id string, loc *time.Location) *Session {
		days := bases[rng.IntN(len(bases))]
		switch rng.IntN(3) {
		case 0:
			days += counts(days)
		case 1:
			days += untils[rng.IntN(len(untils))]
		}
		made := time.Date(2023+rng.IntN(4), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), 0, 0, loc)
		return &Session{ID: id, Area: "12346", Start: clocks[rng.IntN(len(clocks))], MaxMinutes: []int{15, 45, 90, 180}[rng.IntN(4)],
			Days: days, CreatedAt: made}
	}
	mismatch, none, counted, countEnded, untilPassed, kept := 0, 0, 0, 0, 0, 0
	fail := func(format string, args ...any) {
		if mismatch++; mismatch <= 12 {
			t.Errorf(format, args...)
		}
	}
	for n := range 1500 {
		loc := []*time.Location{vn, ny}[n%2]
		s := gen("s000001", loc)
		from := s.CreatedAt.Add(time.Duration(rng.IntN(6*365*24)-72) * time.Hour).Add(time.Duration(rng.IntN(60)) * time.Minute)
		if r := readSession(s, loc); !r.until.IsZero() && rng.IntN(2) == 0 {
			// Near its UNTIL, on either side.
			from = r.until.Add(time.Duration(rng.IntN(6*24*60)-3*24*60) * time.Minute)
		}
		nextRun := func(from time.Time) (time.Time, bool) {
			next, ok, err := s.NextRun(loc, from)
			if err != nil {
				t.Fatal(err)
			}
			walk, err := s.liveStarts(loc, from, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var want time.Time
			for x := range walk {
				want = x
				break
			}
			if ok != !want.IsZero() || ok && !next.Equal(want) {
				fail("%s %q at %s made %s, from %s: NextRun %v %v, the walk %v", loc, s.Days, s.Start, s.CreatedAt, from, next, ok, want)
			}
			return next, ok
		}
		next, ok := nextRun(from)
		if w, _ := s.weekly(loc); w == nil && ok {
			kept++
		}
		// Asked again, as the next lists do, from the starts kept for the
		// rule (comingStarts): at the start found, a little before it, and
		// later or earlier, within their span or out of it.
		if ok {
			nextRun(next)
			nextRun(next.Add(-time.Minute))
		}
		nextRun(from.Add(time.Duration(rng.IntN(500*24)) * time.Hour))
		nextRun(from.Add(-time.Duration(rng.IntN(3*24)) * time.Hour))
		if !ok {
			none++
		}
		if w, _ := s.weekly(loc); w != nil && strings.Contains(s.Days, "COUNT") {
			counted++
		} else if strings.Contains(s.Days, "COUNT") && !ok {
			countEnded++
		}
		if r := readSession(s, loc); !r.until.IsZero() && from.After(r.until.Add(48*time.Hour)) {
			untilPassed++
		}
		// The overlap check's starts, and what it finds, against the walk.
		o := gen("s000002", loc)
		to := OverlapHorizon(s, o, loc, from)
		if to.After(from.AddDate(30, 0, 0)) {
			to = from.AddDate(30, 0, 0) // walked for the comparison: years enough
		}
		got, err := s.cycleLiveStarts(loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.liveStarts(loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := slices.Collect(got), slices.Collect(all); !slices.EqualFunc(g, w, time.Time.Equal) {
			fail("%s %q at %s made %s, from %s: %d starts, the walk %d (first %v / %v, last %v / %v)", loc, s.Days, s.Start, s.CreatedAt, from,
				len(g), len(w), first(g), first(w), lastOf(g), lastOf(w))
		}
		start, end, err := s.Overlap(o, loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if ws, we := walkOverlap(t, s, o, loc, from, to); !start.Equal(ws) || !end.Equal(we) {
			fail("%s: %q at %s (made %s) and %q at %s (made %s) from %s: overlap %v–%v, the walk %v–%v",
				loc, s.Days, s.Start, s.CreatedAt, o.Days, o.Start, o.CreatedAt, from, start, end, ws, we)
		}
	}
	t.Logf("%d sessions that run no more, %d with COUNT looked up in their cycle, %d with COUNT in a longer cycle used up, %d whose UNTIL passed days before, %d of a longer cycle that run, asked again from their kept starts",
		none, counted, countEnded, untilPassed, kept)
	if none < 200 || counted < 150 || countEnded < 40 || untilPassed < 100 || kept < 200 {
		t.Errorf("the test compares too little")
	}
	if mismatch > 12 {
		t.Errorf("%d mismatches in all", mismatch)
	}
}

func lastOf(ts []time.Time) string {
	if len(ts) == 0 {
		return "none"
	}
	return ts[len(ts)-1].String()
}
