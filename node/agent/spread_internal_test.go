package agent

import (
	"testing"
	"time"
)

// TestReportDelayUniformAndPerAgent: the default delay is within the
// window and spread over it, and agents in one process (the fleet
// simulator's) draw from their own sources, not one shared sequence.
func TestReportDelayUniformAndPerAgent(t *testing.T) {
	const w = 10 * time.Second
	a, b := &Agent{rand: newRand()}, &Agent{rand: newRand()}
	var buckets [10]int
	same := 0
	for range 1000 {
		da, db := a.reportDelay(w), b.reportDelay(w)
		for _, d := range []time.Duration{da, db} {
			if d < 0 || d >= w {
				t.Fatalf("delay %v outside [0, %v)", d, w)
			}
		}
		buckets[da/time.Second]++
		if da == db {
			same++
		}
	}
	for i, n := range buckets {
		if n < 50 { // 100 expected in each second of the window
			t.Errorf("only %d of 1000 delays in second %d of the window: %v", n, i, buckets)
		}
	}
	if same > 1 {
		t.Errorf("two agents drew the same delay %d times in 1000", same)
	}
	if d := a.reportDelay(0); d != 0 {
		t.Errorf("delay %v without a window", d)
	}
	c := &Agent{cfg: Config{ReportDelay: func(time.Duration) time.Duration { return time.Hour }}}
	if d := c.reportDelay(w); d != w {
		t.Errorf("a chosen delay beyond the window gives %v, want the window %v", d, w)
	}
}
