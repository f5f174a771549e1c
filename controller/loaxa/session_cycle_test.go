package loaxa

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestOverlapCycleLookup: the overlap check looks a session's days that
// repeat in a short cycle up in it from the day compared on
// (cycleLiveStarts), not walking them from the day the session was made;
// its starts, and the overlaps found with them, are the full walk's
// (liveStarts, compared pairwise as Overlap does for two rules of long
// cycles), over generated sessions: every day, BYDAY sets, every other
// week, UNTIL ahead and passed, COUNT, made before and after their day's
// window, past midnight, in Vietnam and New York (DST).
func TestOverlapCycleLookup(t *testing.T) {
	vn, _ := Location("")
	ny, _ := Location("America/New_York")
	rng := rand.New(rand.NewPCG(34, 10))
	days := []string{"", "FREQ=DAILY", "FREQ=DAILY;INTERVAL=3", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU",
		"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR", "FREQ=WEEKLY;BYDAY=WE;UNTIL=20270315T000000Z",
		"FREQ=DAILY;UNTIL=20261108T070000Z", "FREQ=DAILY;UNTIL=20250101T000000Z", "FREQ=DAILY;COUNT=500", "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=40",
		"FREQ=WEEKLY;INTERVAL=3;BYDAY=SU;UNTIL=20280101T000000Z"}
	clocks := []string{"00:00", "00:30", "01:30", "02:30", "05:30", "17:00", "22:45", "23:30"}
	gen := func(id string, loc *time.Location) *Session {
		made := time.Date(2023+rng.IntN(4), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), 0, 0, loc)
		return &Session{ID: id, Area: "12346", Start: clocks[rng.IntN(len(clocks))], MaxMinutes: []int{15, 45, 90, 180}[rng.IntN(4)],
			Days: days[rng.IntN(len(days))], CreatedAt: made}
	}
	mismatch, cycled, overlaps := 0, 0, 0
	for n := range 1000 {
		loc := []*time.Location{vn, ny}[n%2]
		s, o := gen("s000001", loc), gen("s000002", loc)
		since := time.Date(2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), 0, 0, loc)
		if n%3 == 0 {
			// A session being made: compared from its creation, an
			// instance over by then left out.
			since = s.CreatedAt
		}
		from := since.Add(-24 * time.Hour)
		to := OverlapHorizon(s, o, loc, from)
		if w, _ := s.weekly(loc); w != nil && to.Before(s.CreatedAt.AddDate(200, 0, 0)) {
			cycled++
		}
		got, err := s.cycleLiveStarts(loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.liveStarts(loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := slices.Collect(got), slices.Collect(want); !slices.EqualFunc(g, w, time.Time.Equal) {
			if mismatch++; mismatch <= 10 {
				t.Errorf("%s %q at %s made %s, from %s: %d starts, the walk %d (first %v / %v)", loc, s.Days, s.Start, s.CreatedAt, from, len(g), len(w), first(g), first(w))
			}
		}
		start, end, err := s.Overlap(o, loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		wantStart, wantEnd := walkOverlap(t, s, o, loc, from, to)
		if !start.Equal(wantStart) || !end.Equal(wantEnd) {
			if mismatch++; mismatch <= 10 {
				t.Errorf("%s: %q at %s for %d min (made %s) and %q at %s for %d min (made %s) from %s: overlap %v–%v, the walk %v–%v",
					loc, s.Days, s.Start, s.MaxMinutes, s.CreatedAt, o.Days, o.Start, o.MaxMinutes, o.CreatedAt, from, start, end, wantStart, wantEnd)
			}
		}
		if !wantStart.IsZero() {
			overlaps++
		}
	}
	if cycled < 300 || overlaps < 60 {
		t.Errorf("only %d sessions looked up in their cycle, %d overlapping pairs: the test compares too little", cycled, overlaps)
	}
	if mismatch > 10 {
		t.Errorf("%d mismatches in all", mismatch)
	}
}

func first(ts []time.Time) string {
	if len(ts) == 0 {
		return "none"
	}
	return fmt.Sprint(ts[0])
}

// walkOverlap is Overlap by the full walk of both sessions' days.
func walkOverlap(t *testing.T, s, o *Session, loc *time.Location, from, to time.Time) (time.Time, time.Time) {
	mine, err := s.liveStarts(loc, from, to)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := o.liveStarts(loc, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return firstOverlap(mine, theirs, s.MaxLength(), o.MaxLength())
}
