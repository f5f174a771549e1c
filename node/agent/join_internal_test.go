package agent

import (
	"testing"
	"time"
)

// TestPlanJoin: where a message that came late begins, against the repeats
// of the clusters that had it in time (4.5 s apart: a 4 s message, 0.5 s
// between repeats).
func TestPlanJoin(t *testing.T) {
	const s = time.Second
	period := 4500 * time.Millisecond
	for _, tc := range []struct {
		name        string
		late, chime time.Duration
		plays       int
		period      time.Duration
		maxWait     time.Duration
		want        joinPlan
	}{
		{"in time", 0, 0, 3, period, 15 * s, joinPlan{}},
		{"within the skew bound", 20 * time.Millisecond, 0, 3, period, 15 * s, joinPlan{}},
		{"early", -300 * time.Millisecond, 0, 3, period, 15 * s, joinPlan{}},
		{"their second repeat", 400 * time.Millisecond, 0, 3, period, 15 * s, joinPlan{pad: 4100 * time.Millisecond, repeat: 1}},
		{"their second repeat, the chime again before it", 400 * time.Millisecond, 700 * time.Millisecond, 3, period, 15 * s, joinPlan{pad: 3400 * time.Millisecond, repeat: 1}},
		{"the chime does not fit before the second", 4300 * time.Millisecond, 700 * time.Millisecond, 3, period, 15 * s, joinPlan{pad: 4 * s, repeat: 2}},
		{"exactly as their second begins", period, 0, 3, period, 15 * s, joinPlan{repeat: 1}},
		{"their last repeat", 5 * s, 0, 3, period, 15 * s, joinPlan{pad: 4 * s, repeat: 2}},
		{"past their last repeat", 9100 * time.Millisecond, 0, 3, period, 15 * s, joinPlan{}},
		{"played once: nothing to join", 400 * time.Millisecond, 0, 1, period, 15 * s, joinPlan{}},
		{"a long message: too long a wait", 2 * s, 0, 3, 31 * s, 15 * s, joinPlan{}},
		{"a long message, late by most of it", 20 * s, 0, 3, 31 * s, 15 * s, joinPlan{pad: 11 * s, repeat: 1}},
	} {
		if got := planJoin(tc.late, tc.period, tc.chime, tc.plays, tc.maxWait); got != tc.want {
			t.Errorf("%s: planJoin(late %v, period %v, chime %v, %d plays) = %+v, want %+v", tc.name, tc.late, tc.period, tc.chime, tc.plays, got, tc.want)
		}
	}
}
