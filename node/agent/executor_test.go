package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

var t0 = time.Date(2025, 3, 1, 5, 30, 0, 0, time.UTC)

func occ(id string, start time.Duration) protocol.Occurrence {
	return protocol.Occurrence{ID: id, Announcement: "ann-" + id, Content: "c-" + id, Priority: protocol.PriorityNormal, Start: t0.Add(start), DurationMS: 60_000}
}

// mark is o's progress at ph, received an hour before its start.
func mark(o protocol.Occurrence, ph Phase) Progress {
	p := markOf(o, ph)
	p.ReceivedAt = o.Start.Add(-time.Hour)
	return p
}

// summary renders a decision compactly for comparison.
func summary(d Decision) string {
	var parts []string
	for _, o := range d.Received {
		parts = append(parts, "received "+o.ID)
	}
	for _, c := range d.Close {
		s := fmt.Sprintf("%s %s", c.Type, c.Progress.Occurrence)
		if c.Reason != "" {
			s += " " + c.Reason
		}
		parts = append(parts, s)
	}
	if d.Stop != "" {
		parts = append(parts, "stop "+d.Stop)
	}
	if d.Start != nil {
		parts = append(parts, "start "+d.Start.ID)
	}
	if !d.Wake.IsZero() {
		parts = append(parts, "wake "+d.Wake.Sub(t0).String())
	}
	return strings.Join(parts, "; ")
}

func TestDecide(t *testing.T) {
	a, b, c := occ("a", 0), occ("b", 0), occ("c", 5*time.Minute)
	all := func(string) bool { return true }
	none := func(string) bool { return false }
	for _, tc := range []struct {
		name     string
		now      time.Duration
		occs     []protocol.Occurrence
		progress []Progress
		playing  string
		grace    time.Duration
		has      func(string) bool
		want     string
	}{
		{name: "nothing to run", want: ""},
		{name: "new future occurrence is received and waited for",
			now: -time.Hour, occs: []protocol.Occurrence{c}, has: all,
			want: "received c; wake 5m0s"},
		{name: "received future occurrence only waits",
			now: -time.Hour, occs: []protocol.Occurrence{c}, progress: []Progress{mark(c, PhaseReceived)}, has: all,
			want: "wake 5m0s"},
		{name: "due with content starts",
			now: 0, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseReceived)}, has: all,
			want: "start a"},
		{name: "due without content waits for it within the grace",
			now: 0, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseReceived)}, has: none,
			want: "wake 10m0.001s"},
		{name: "waiting for content does not hold up the next one",
			now: 0, occs: []protocol.Occurrence{a, b}, progress: []Progress{mark(a, PhaseReceived), mark(b, PhaseReceived)},
			has: func(id string) bool { return id == "c-b" }, want: "start b; wake 10m0.001s"},
		{name: "content still missing after the grace fails",
			now: 10*time.Minute + time.Millisecond, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseReceived)}, has: none,
			want: "failed a content-missing"},
		{name: "learned of it too late to fetch its content: missed",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{{Occurrence: "a", Start: t0, Phase: PhaseReceived, ReceivedAt: t0.Add(time.Minute)}}, has: none,
			want: "missed a too-late"},
		{name: "new and long past without content: missed",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, has: none,
			want: "received a; missed a too-late"},
		{name: "nil content check means nothing cached",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseReceived)},
			want: "failed a content-missing"},
		{name: "late within the default grace still starts",
			now: 9 * time.Minute, occs: []protocol.Occurrence{a}, has: all,
			want: "received a; start a"},
		{name: "exactly at the grace still starts",
			now: 2 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseReceived)}, grace: 2 * time.Minute, has: all,
			want: "start a"},
		{name: "later than the grace is missed",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, has: all,
			want: "received a; missed a too-late"},
		{name: "configured grace",
			now: 3 * time.Minute, occs: []protocol.Occurrence{a}, grace: 2 * time.Minute, has: all,
			want: "received a; missed a too-late"},
		{name: "same start plays in id order",
			now: 0, occs: []protocol.Occurrence{b, a}, progress: []Progress{mark(a, PhaseReceived), mark(b, PhaseReceived)}, has: all,
			want: "start a; wake 10m0.001s"},
		{name: "earlier start first whatever the id",
			now: 6 * time.Minute, occs: []protocol.Occurrence{c, occ("z", time.Minute)}, has: all,
			want: "received z; received c; start z; wake 15m0.001s"},
		{name: "one at a time: due occurrence waits behind the one playing",
			now: 5 * time.Minute, occs: []protocol.Occurrence{a, c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, playing: "a", has: all,
			want: "wake 15m0.001s"},
		{name: "queued too long behind the one playing is missed",
			now: 16 * time.Minute, occs: []protocol.Occurrence{a, c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, playing: "a", has: all,
			want: "missed c too-late"},
		{name: "started but not playing was interrupted (restart)",
			now: time.Minute, occs: []protocol.Occurrence{a, c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, has: all,
			want: "failed a interrupted; wake 5m0s"},
		{name: "interrupted occurrence no longer desired is still reported",
			now: time.Minute, progress: []Progress{mark(a, PhaseStarted)}, has: all,
			want: "failed a interrupted"},
		{name: "playing occurrence removed is stopped",
			now: time.Minute, occs: []protocol.Occurrence{c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, playing: "a", has: all,
			want: "stop removed; wake 5m0s"},
		{name: "done occurrences are left alone",
			now: time.Minute, occs: []protocol.Occurrence{a, b}, progress: []Progress{mark(a, PhaseDone), mark(b, PhaseDone)}, has: all,
			want: ""},
		{name: "removed occurrence that had not started needs nothing",
			now: -time.Minute, occs: nil, progress: []Progress{mark(a, PhaseReceived)}, has: all,
			want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]Progress{}
			for _, m := range tc.progress {
				p[m.Occurrence] = m
			}
			d := Decide(Situation{Now: t0.Add(tc.now), Occurrences: tc.occs, Progress: p, Playing: tc.playing, LateGrace: tc.grace, HasContent: tc.has})
			if got := summary(d); got != tc.want {
				t.Errorf("Decide = %q\n          want %q", got, tc.want)
			}
			if d.Empty() != (d.Start == nil && d.Stop == "" && len(d.Close) == 0 && len(d.Received) == 0) {
				t.Errorf("Empty() = %v for %q", d.Empty(), summary(d))
			}
		})
	}
}

// TestDecideOnFakeClock drives the executor through a morning session on a
// fake clock, the way the agent's loop does: apply each decision, sleep
// until Wake or the end of the play, decide again.
func TestDecideOnFakeClock(t *testing.T) {
	fc := clock.NewFake(t0.Add(-5 * time.Minute)) // the desired state arrives 5 minutes before the session
	occs := []protocol.Occurrence{
		occ("news", 0),                          // plays 0–4m
		occ("weather", 2*time.Minute),           // due while news plays; starts late at 4m
		occ("late", -30*time.Minute),            // long past: missed
		occ("nocontent", 20*time.Minute),        // content never arrives
		occ("music", 30*time.Minute),            // plays on time
		occ("tail", 30*time.Minute+time.Second), // queued behind music (4m) but within grace
	}
	length := 4 * time.Minute
	has := func(id string) bool { return id != "c-nocontent" }
	progress := map[string]Progress{}
	var playing string
	var playEnd time.Time
	var log []string
	at := func(s string) { log = append(log, fmt.Sprintf("%v %s", fc.Now().Sub(t0), s)) }

	for step := 0; step < 50; step++ {
		if playing != "" && !fc.Now().Before(playEnd) {
			at("completed " + playing)
			p := progress[playing]
			p.Phase = PhaseDone
			progress[playing] = p
			playing = ""
		}
		d := Decide(Situation{Now: fc.Now(), Occurrences: occs, Progress: progress, Playing: playing, HasContent: has})
		for _, o := range d.Received {
			p := markOf(o, PhaseReceived)
			p.ReceivedAt = fc.Now()
			progress[o.ID] = p
		}
		for _, c := range d.Close {
			at(fmt.Sprintf("%s %s %s", c.Type, c.Progress.Occurrence, c.Reason))
			p := c.Progress
			p.Phase = PhaseDone
			progress[p.Occurrence] = p
		}
		if d.Start != nil {
			at("started " + d.Start.ID)
			progress[d.Start.ID] = markOf(*d.Start, PhaseStarted)
			playing, playEnd = d.Start.ID, fc.Now().Add(length)
		}
		next := d.Wake
		if playing != "" && (next.IsZero() || playEnd.Before(next)) {
			next = playEnd
		}
		if next.IsZero() {
			break
		}
		// A timer on the fake clock, as the agent's loop waits.
		tm := fc.NewTimer(next.Sub(fc.Now()))
		fc.Set(next)
		<-tm.C()
	}
	want := []string{
		"-5m0s missed late too-late",
		"0s started news",
		"4m0s completed news",
		"4m0s started weather",
		"8m0s completed weather",
		"30m0s started music",
		"30m0.001s failed nocontent content-missing", // waited for its content as long as it could
		"34m0s completed music",
		"34m0s started tail",
		"38m0s completed tail",
	}
	if !slices.Equal(log, want) {
		t.Errorf("session:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}
