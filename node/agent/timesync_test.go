package agent

import (
	"strings"
	"testing"
	"time"
)

func TestReadTimeAnswer(t *testing.T) {
	for _, tc := range []struct {
		body, want string
	}{
		{`{"time":"2025-03-09T22:25:00Z","proof":{"v":1}}`, `{"v":1}`},
		{`{"time":"2025-03-09T22:25:00Z"}`, ""}, // an older controller: no proof
		{`{}`, ""},
		{`<html>`, ""},
	} {
		got, err := readTimeAnswer(strings.NewReader(tc.body))
		if string(got) != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("readTimeAnswer(%s) = %s, %v; want %s", tc.body, got, err, tc.want)
		}
	}
}

func FuzzReadTimeAnswer(f *testing.F) {
	f.Add(`{"time":"2025-03-09T22:25:00Z","proof":{}}`)
	f.Add(`{"proof":null}`)
	f.Add(`{"proof":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		got, err := readTimeAnswer(strings.NewReader(body))
		if err == nil && len(got) == 0 {
			t.Fatalf("readTimeAnswer(%q) accepted an answer without a proof", body)
		}
	})
}

// TestOffsetEstimateReplacedBy: a measurement replaces the offset in use
// when it is at least as certain as that one has become with age, or when
// the two cannot both be right; a busy link's measurement does not undo a
// precise one.
func TestOffsetEstimateReplacedBy(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	precise := offsetEstimate{offset: 3 * time.Millisecond, rtt: 2 * time.Millisecond, at: t0}
	for _, tt := range []struct {
		name string
		n    offsetEstimate
		want bool
	}{
		{"as precise, a minute on", offsetEstimate{offset: 4 * time.Millisecond, rtt: 2 * time.Millisecond, at: t0.Add(time.Minute)}, true},
		{"busy link, a minute on", offsetEstimate{offset: 15 * time.Millisecond, rtt: 40 * time.Millisecond, at: t0.Add(time.Minute)}, false},
		// After an hour the old one may have drifted 360 ms (100 ppm).
		{"busy link, an hour on", offsetEstimate{offset: 15 * time.Millisecond, rtt: 40 * time.Millisecond, at: t0.Add(time.Hour)}, true},
		{"a clock stepped a second", offsetEstimate{offset: time.Second, rtt: 40 * time.Millisecond, at: t0.Add(time.Minute)}, true},
		{"the board's clock stepped back", offsetEstimate{offset: 15 * time.Millisecond, rtt: 40 * time.Millisecond, at: t0.Add(-time.Hour)}, true},
	} {
		if got := precise.replacedBy(tt.n); got != tt.want {
			t.Errorf("%s: replaced %v, want %v (uncertainty then %v)", tt.name, got, tt.want, precise.uncertainty(tt.n.at))
		}
	}
}

// TestNextSync: an uncertain estimate is measured again after the retry
// (±50 %), 30 s and 2 min after a connect, then after the interval; a
// good one after the interval.
func TestNextSync(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	interval := 5 * time.Minute
	good := &offsetEstimate{rtt: 2 * time.Millisecond, at: t0}
	if next, retry, early := nextSync(good, t0.Add(time.Second), syncRetry, interval); next != interval || retry != syncRetry || early {
		t.Errorf("a good estimate: next %v, retry %v, early %v; want the interval", next, retry, early)
	}
	busy := &offsetEstimate{rtt: 40 * time.Millisecond, at: t0}
	retry := syncRetry
	for _, want := range []time.Duration{30 * time.Second, 2 * time.Minute, interval, interval} {
		var next time.Duration
		var early bool
		next, retry, early = nextSync(busy, t0, retry, interval)
		if lo, hi := min(want/2, interval), min(want*3/2, interval); next < lo || next > hi || early != (next < interval) {
			t.Errorf("next %v (early %v), want within [%v, %v]", next, early, lo, hi)
		}
	}
	if next, _, early := nextSync(nil, t0, syncRetry, interval); next > syncRetry*3/2 || !early {
		t.Errorf("no estimate yet: next %v, early %v; want the retry", next, early)
	}
}
