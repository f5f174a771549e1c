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

// drop returns o with the drop policy.
func drop(o protocol.Occurrence) protocol.Occurrence {
	o.OnPreempt = protocol.PreemptDrop
	return o
}

// at returns o at priority p.
func at(o protocol.Occurrence, p protocol.Priority) protocol.Occurrence {
	o.Priority = p
	return o
}

// cut returns p cut off for reason.
func cut(p Progress, reason string) Progress {
	p.CutBy = reason
	return p
}

// playBy returns o with PlayBy at t0+d.
func playBy(o protocol.Occurrence, d time.Duration) protocol.Occurrence {
	o.PlayBy = t0.Add(d)
	return o
}

// chimed returns o with an opening chime, "chime".
func chimed(o protocol.Occurrence) protocol.Occurrence {
	o.OpeningChime = "chime"
	return o
}

// withIntro returns o with an intro, "intro".
func withIntro(o protocol.Occurrence) protocol.Occurrence {
	o.Intro = "intro"
	return o
}

// onlyChime is a cache that holds the chime alone.
func onlyChime(id string) bool { return id == "chime" }

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
	for _, c := range d.Suspend {
		parts = append(parts, fmt.Sprintf("%s %s %s", c.Type, c.Progress.Occurrence, c.Reason))
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
	if d.Prepare != nil {
		parts = append(parts, fmt.Sprintf("prepare %s at %v", d.Prepare.ID, d.PrepareAt.Sub(t0)))
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
		cached   func(string) bool
		known    func(string) bool // ChimeKnown
		noSound  bool
		muted    bool
		want     string
	}{
		{name: "nothing to run", want: ""},
		{name: "an emergency whose opening chime is cached starts with it, its message still to come",
			occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: onlyChime, want: "start a"},
		{name: "an emergency whose chime is not cached, nor its length known, waits for its message",
			occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: none, want: "wake 10m0.001s"},
		{name: "an emergency whose chime is not cached but its length known starts, keeping its place",
			occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: none, known: all, want: "start a"},
		{name: "a bulletin below emergency does not start on a known chime",
			occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityHigh))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: none, known: all, want: "wake 10m0.001s"},
		{name: "an emergency whose intro is cached, its chime not, starts with the intro",
			occs: []protocol.Occurrence{withIntro(chimed(at(a, protocol.PriorityEmergency)))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: func(id string) bool { return id == "intro" }, want: "start a"},
		{name: "an emergency without an opening chime waits for its message",
			occs: []protocol.Occurrence{at(a, protocol.PriorityEmergency)}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: all, want: "wake 10m0.001s"},
		{name: "a bulletin below emergency with a chime waits for its content",
			occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityHigh))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: onlyChime, want: "wake 10m0.001s"},
		{name: "an emergency starting with its chime preempts the play on air",
			now: time.Minute, occs: []protocol.Occurrence{b, chimed(at(occ("d", time.Minute), protocol.PriorityEmergency))},
			progress: []Progress{mark(b, PhaseStarted), mark(occ("d", time.Minute), PhaseReceived)}, playing: "b",
			has: func(id string) bool { return id == "c-b" }, cached: onlyChime, want: "stop preempted; start d"},
		{name: "cut off when its content stopped coming: not again with its chime alone",
			now: time.Minute, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonContentMissing)},
			has: none, cached: onlyChime, want: "wake 10m0.001s"},
		{name: "cut off when its content stopped coming: not again as it downloads",
			now: time.Minute, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonContentMissing)},
			has: all, cached: onlyChime, want: "wake 10m0.001s"},
		{name: "cut off when its content stopped coming: again once it is cached",
			now: time.Minute, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonContentMissing)},
			has: all, cached: all, want: "start a"},
		{name: "cut off when its content stopped coming, past its deadline: failed",
			now: 11 * time.Minute, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonContentMissing)},
			has: none, cached: onlyChime, want: "failed a content-missing"},
		{name: "past its deadline without its message it failed, chime or not",
			now: 11 * time.Minute, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{mark(a, PhaseReceived)},
			has: none, cached: onlyChime, want: "failed a content-missing"},
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
		{name: "started but not playing was interrupted (restart) and plays again",
			now: time.Minute, occs: []protocol.Occurrence{a, c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, has: all,
			want: "suspended a interrupted; start a; wake 5m0s"},
		{name: "interrupted (restart) with policy drop fails",
			now: time.Minute, occs: []protocol.Occurrence{drop(a), c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, has: all,
			want: "failed a interrupted; wake 5m0s"},
		{name: "interrupted (restart) past its deadline fails",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseStarted)}, has: all,
			want: "failed a interrupted"},
		{name: "interrupted occurrence no longer desired is still reported",
			now: time.Minute, progress: []Progress{mark(a, PhaseStarted)}, has: all,
			want: "failed a interrupted"},
		{name: "playing occurrence removed is stopped",
			now: time.Minute, occs: []protocol.Occurrence{c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, playing: "a", has: all,
			want: "stop removed; wake 5m0s"},
		{name: "done occurrences are left alone",
			now: time.Minute, occs: []protocol.Occurrence{a, b}, progress: []Progress{mark(a, PhaseDone), mark(b, PhaseDone)}, has: all,
			want: ""},
		{name: "a higher level not due yet does not hold up a due one",
			now: time.Minute, occs: []protocol.Occurrence{a, at(c, protocol.PriorityHigh)}, progress: []Progress{mark(a, PhaseReceived), mark(at(c, protocol.PriorityHigh), PhaseReceived)},
			has: all, want: "start a; wake 5m0s"},
		{name: "the higher level goes first even if it started later",
			now: 6 * time.Minute, occs: []protocol.Occurrence{a, at(c, protocol.PriorityHigh)}, progress: []Progress{mark(a, PhaseReceived), mark(at(c, protocol.PriorityHigh), PhaseReceived)},
			has: all, want: "start c; wake 10m0.001s"},
		{name: "emergency in a desired state preempts at once",
			now: 5 * time.Minute, occs: []protocol.Occurrence{a, at(c, protocol.PriorityEmergency)}, progress: []Progress{mark(a, PhaseStarted), mark(at(c, protocol.PriorityEmergency), PhaseReceived)}, playing: "a",
			has: all, want: "stop preempted; start c"},
		{name: "a higher level without its content does not preempt",
			now: 5 * time.Minute, occs: []protocol.Occurrence{a, at(c, protocol.PriorityEmergency)}, progress: []Progress{mark(a, PhaseStarted), mark(at(c, protocol.PriorityEmergency), PhaseReceived)}, playing: "a",
			has: func(id string) bool { return id == "c-a" }, want: "wake 15m0.001s"},
		{name: "suspended plays again once nothing plays",
			now: 5 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted)},
			has: all, want: "start a"},
		{name: "suspended goes before a later one of its level",
			now: 6 * time.Minute, occs: []protocol.Occurrence{a, c}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted), mark(c, PhaseReceived)},
			has: all, want: "start a; wake 15m0.001s"},
		{name: "suspended waits behind the higher level on air",
			now: 6 * time.Minute, occs: []protocol.Occurrence{a, at(c, protocol.PriorityHigh)}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted), mark(at(c, protocol.PriorityHigh), PhaseStarted)}, playing: "c",
			has: all, want: "wake 10m0.001s"},
		{name: "suspended past its deadline is preempted",
			now: 10*time.Minute + time.Millisecond, occs: []protocol.Occurrence{a, at(c, protocol.PriorityHigh)}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted), mark(at(c, protocol.PriorityHigh), PhaseStarted)}, playing: "c",
			has: all, want: "preempted a preempted"},
		{name: "suspended by a restart past its deadline fails as interrupted",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonInterrupted)},
			has: all, want: "failed a interrupted"},
		{name: "suspended and no longer desired fails as removed",
			now: 5 * time.Minute, occs: []protocol.Occurrence{c}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted), mark(c, PhaseReceived)},
			has: all, want: "failed a removed; start c"},
		{name: "play-by (its session's end) lets it start later than the grace",
			now: 25 * time.Minute, occs: []protocol.Occurrence{playBy(a, 30*time.Minute)}, progress: []Progress{mark(a, PhaseReceived)},
			has: all, want: "start a"},
		{name: "play-by earlier than the grace does not shorten it",
			now: 9 * time.Minute, occs: []protocol.Occurrence{playBy(a, time.Minute)}, progress: []Progress{mark(a, PhaseReceived)},
			has: all, want: "start a"},
		{name: "past play-by it is missed",
			now: 31 * time.Minute, occs: []protocol.Occurrence{playBy(a, 30*time.Minute)}, progress: []Progress{mark(a, PhaseReceived)},
			has: all, want: "missed a too-late"},
		{name: "desired state replaced while playing: stop and start the next due",
			now: 6 * time.Minute, occs: []protocol.Occurrence{c}, progress: []Progress{mark(a, PhaseStarted), mark(c, PhaseReceived)}, playing: "a",
			has: all, want: "stop removed; start c"},
		{name: "clock moved back before a suspended one's start: it still plays",
			now: -time.Hour, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted)},
			has: all, want: "start a"},
		{name: "clock moved back before a received one's start: it waits again",
			now: -time.Hour, occs: []protocol.Occurrence{a, b}, progress: []Progress{mark(a, PhaseReceived), mark(b, PhaseDone)},
			has: all, want: "wake 0s"},
		{name: "clock jumped forward past several: each is missed once",
			now: 3 * time.Hour, occs: []protocol.Occurrence{a, c, occ("d", 2*time.Hour+55*time.Minute)}, progress: []Progress{mark(a, PhaseReceived), mark(c, PhaseReceived), mark(occ("d", 2*time.Hour+55*time.Minute), PhaseReceived)},
			has: all, want: "missed a too-late; missed c too-late; start d"},
		{name: "without a sound device, a new due occurrence is received and waits for it, suspended",
			noSound: true, occs: []protocol.Occurrence{a, c}, has: all, cached: all,
			want: "received a; received c; suspended a audio-device; wake 5m0s"},
		{name: "without a sound device, an emergency with its chime cached waits all the same",
			noSound: true, occs: []protocol.Occurrence{chimed(at(a, protocol.PriorityEmergency))}, progress: []Progress{mark(a, PhaseReceived)},
			has: all, cached: all, known: all, want: "suspended a audio-device; wake 10m0.001s"},
		{name: "without a sound device, one suspended for it waits, and is not suspended again",
			now: time.Minute, noSound: true, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonAudioDevice)},
			has: all, cached: all, want: "wake 10m0.001s"},
		{name: "without a sound device, one suspended by a preemption waits too",
			now: time.Minute, noSound: true, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonPreempted)},
			has: all, cached: all, want: "wake 10m0.001s"},
		{name: "without a sound device past its deadline: failed audio-device",
			now: 11 * time.Minute, noSound: true, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonAudioDevice)},
			has: all, cached: all, want: "failed a audio-device"},
		{name: "with the device again (the agent restarted), one suspended for it starts",
			now: time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonAudioDevice)},
			has: all, cached: all, want: "start a"},
		// An officer muted a cluster by mistake during the morning session
		// and unmuted it a minute later: the bulletin the mute cut off was
		// over (failed muted) and the cluster heard nothing more of it,
		// though it was still within its window. A play the mute holds
		// back waits, suspended, for its deadline; unmuted before it, it
		// plays from the beginning.
		{name: "muted, the play on air below emergency is stopped",
			now: time.Minute, muted: true, occs: []protocol.Occurrence{a}, progress: []Progress{mark(a, PhaseStarted)}, playing: "a",
			has: all, want: "stop muted"},
		{name: "muted, an emergency on air plays on",
			now: time.Minute, muted: true, occs: []protocol.Occurrence{at(a, protocol.PriorityEmergency)}, progress: []Progress{mark(at(a, protocol.PriorityEmergency), PhaseStarted)}, playing: "a",
			has: all, want: ""},
		{name: "muted, a due one is suspended and waits for its deadline",
			muted: true, occs: []protocol.Occurrence{a, c}, progress: []Progress{mark(a, PhaseReceived), mark(c, PhaseReceived)},
			has: all, want: "suspended a muted; wake 5m0s"},
		{name: "muted, one the mute cut off waits, and is not suspended again",
			now: time.Minute, muted: true, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonMuted)},
			has: all, want: "wake 10m0.001s"},
		{name: "muted, an emergency starts all the same",
			muted: true, occs: []protocol.Occurrence{at(a, protocol.PriorityEmergency), b}, progress: []Progress{mark(at(a, protocol.PriorityEmergency), PhaseReceived), mark(b, PhaseReceived)},
			has: all, want: "suspended b muted; start a; wake 10m0.001s"},
		{name: "unmuted before its deadline, one the mute cut off plays again",
			now: 2 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonMuted)},
			has: all, want: "start a"},
		{name: "unmuted within its session, one the mute held back plays",
			now: 25 * time.Minute, occs: []protocol.Occurrence{playBy(a, 30*time.Minute)}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonMuted)},
			has: all, want: "start a"},
		{name: "muted past its deadline: failed muted",
			now: 11 * time.Minute, muted: true, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonMuted)},
			has: all, want: "failed a muted"},
		{name: "unmuted past its deadline: failed muted all the same",
			now: 11 * time.Minute, occs: []protocol.Occurrence{a}, progress: []Progress{cut(mark(a, PhaseSuspended), protocol.ReasonMuted)},
			has: all, want: "failed a muted"},
		{name: "removed occurrence that had not started needs nothing",
			now: -time.Minute, occs: nil, progress: []Progress{mark(a, PhaseReceived)}, has: all,
			want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]Progress{}
			for _, m := range tc.progress {
				p[m.Occurrence] = m
			}
			d := Decide(Situation{Now: t0.Add(tc.now), Occurrences: tc.occs, Progress: p, Playing: tc.playing, LateGrace: tc.grace, HasContent: tc.has, Cached: tc.cached, ChimeKnown: tc.known, NoSound: tc.noSound, Muted: tc.muted})
			if got := summary(d); got != tc.want {
				t.Errorf("Decide = %q\n          want %q", got, tc.want)
			}
			if d.Empty() != (d.Start == nil && d.Stop == "" && d.Prepare == nil && len(d.Close) == 0 && len(d.Received) == 0 && len(d.Suspend) == 0) {
				t.Errorf("Empty() = %v for %q", d.Empty(), summary(d))
			}
		})
	}
}

// TestDecideLiveCallOutOfFrames: a live call whose frames stopped on the
// node (suspended with reason stream) begins again once frames of it are
// held, until the call's longest length; something that outranks it, on
// the air or starting, ends it preempted, so it never begins after that.
// Before, the frame timeout failed the call and the node ignored the
// frames that came again: the pole was silent for the rest of the call.
func TestDecideLiveCallOutOfFrames(t *testing.T) {
	l := drop(at(occ("l", 0), protocol.PriorityHigh))
	l.Live, l.Content, l.Expires, l.DurationMS = "l", "", t0.Add(liveStartWindow), protocol.MaxLiveDuration.Milliseconds()
	stalled := cut(mark(l, PhaseSuspended), protocol.ReasonStream)
	e := at(occ("e", time.Minute), protocol.PriorityEmergency)
	b, n := at(occ("b", 0), protocol.PriorityHigh), occ("n", 0)
	for _, tc := range []struct {
		name     string
		now      time.Duration
		occs     []protocol.Occurrence
		progress []Progress
		playing  string
		frames   bool
		want     string
	}{
		{name: "without frames it waits for them until the call's longest length",
			now: time.Minute, want: "wake 2h0m0.001s"},
		{name: "with frames it begins again",
			now: time.Minute, frames: true, want: "start l"},
		{name: "past the call's longest length without frames it fails",
			now: protocol.MaxLiveDuration + time.Second, want: "failed l stream"},
		{name: "an emergency that starts ends it preempted",
			now: time.Minute, occs: []protocol.Occurrence{e}, progress: []Progress{mark(e, PhaseReceived)}, frames: true,
			want: "preempted l preempted; start e"},
		{name: "an emergency on the air ends it preempted",
			now: 2 * time.Minute, occs: []protocol.Occurrence{e}, progress: []Progress{mark(e, PhaseStarted)}, playing: "e", frames: true,
			want: "preempted l preempted"},
		{name: "behind a play of its level it waits its turn",
			now: time.Minute, occs: []protocol.Occurrence{b}, progress: []Progress{mark(b, PhaseStarted)}, playing: "b", frames: true,
			want: "wake 2h0m0.001s"},
		{name: "with frames it preempts a lower level",
			now: time.Minute, occs: []protocol.Occurrence{n}, progress: []Progress{mark(n, PhaseStarted)}, playing: "n", frames: true,
			want: "stop preempted; start l"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]Progress{"l": stalled}
			for _, m := range tc.progress {
				p[m.Occurrence] = m
			}
			d := Decide(Situation{Now: t0.Add(tc.now), Occurrences: append([]protocol.Occurrence{l}, tc.occs...), Progress: p, Playing: tc.playing,
				HasContent: func(string) bool { return true }, LiveFrames: func(string) bool { return tc.frames }})
			if got := summary(d); got != tc.want {
				t.Errorf("Decide = %q\n          want %q", got, tc.want)
			}
		})
	}
}

// TestDecidePrepare: looking ahead by the amplifier's warm-up, the
// executor names what will start next and when, so the agent can have it
// ready; it names nothing that would not start then.
func TestDecidePrepare(t *testing.T) {
	const lead = 500 * time.Millisecond
	a, b, c := occ("a", 0), occ("b", 0), occ("c", 5*time.Minute)
	high, low := at(c, protocol.PriorityHigh), at(c, protocol.PriorityBackground)
	all := func(string) bool { return true }
	none := func(string) bool { return false }
	received := func(os ...protocol.Occurrence) []Progress {
		var out []Progress
		for _, o := range os {
			out = append(out, mark(o, PhaseReceived))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		now      time.Duration
		occs     []protocol.Occurrence
		progress []Progress
		playing  string
		ends     time.Duration // of the play on air; 0: not known
		has      func(string) bool
		cached   func(string) bool
		alert    time.Duration // AlertLead
		noSound  bool
		muted    bool
		want     string
	}{
		{name: "an emergency that starts with its chime is prepared as it arrives",
			now: 5*time.Minute - 2*time.Second, occs: []protocol.Occurrence{chimed(at(c, protocol.PriorityEmergency))}, has: none, cached: onlyChime, alert: 3 * time.Second,
			want: "received c; prepare c at 5m0s; wake 5m0s"},
		{name: "an emergency within the alert lead is prepared as it arrives",
			now: 5*time.Minute - 2*time.Second, occs: []protocol.Occurrence{at(c, protocol.PriorityEmergency)}, has: all, alert: 3 * time.Second,
			want: "received c; prepare c at 5m0s; wake 5m0s"},
		{name: "an emergency beyond the alert lead: wake at its start less that",
			now: time.Minute, occs: []protocol.Occurrence{at(c, protocol.PriorityEmergency)}, progress: received(c), has: all, alert: 3 * time.Second,
			want: "wake 4m57s"},
		{name: "the alert lead is for emergencies only",
			now: 5*time.Minute - 2*time.Second, occs: []protocol.Occurrence{c}, progress: received(c), has: all, alert: 3 * time.Second,
			want: "wake 4m59.5s"},
		{name: "an emergency with a lower level at the same instant: prepared within the alert lead",
			now: 5*time.Minute - 2*time.Second, occs: []protocol.Occurrence{c, at(occ("d", 5*time.Minute), protocol.PriorityEmergency)}, progress: received(c, occ("d", 5*time.Minute)), has: all, alert: 3 * time.Second,
			want: "prepare d at 5m0s; wake 5m0s"},
		{name: "not within the lead: wake at the start less the lead",
			now: time.Minute, occs: []protocol.Occurrence{c}, progress: received(c), has: all,
			want: "wake 4m59.5s"},
		{name: "within the lead: prepared for its start",
			now: 5*time.Minute - 300*time.Millisecond, occs: []protocol.Occurrence{c}, progress: received(c), has: all,
			want: "prepare c at 5m0s; wake 5m0s"},
		{name: "exactly the lead before",
			now: 5*time.Minute - lead, occs: []protocol.Occurrence{c}, progress: received(c), has: all,
			want: "prepare c at 5m0s; wake 5m0s"},
		{name: "new and within the lead: received and prepared",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{c}, has: all,
			want: "received c; prepare c at 5m0s; wake 5m0s"},
		{name: "without its content nothing is prepared",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{c}, progress: received(c), has: none,
			want: "wake 5m0s"},
		{name: "a higher level is prepared to preempt the play on air",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{a, high}, progress: append(received(high), mark(a, PhaseStarted)), playing: "a", has: all,
			want: "prepare c at 5m0s; wake 5m0s"},
		{name: "an equal level waits behind a play of unknown end: not prepared",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{a, c}, progress: append(received(c), mark(a, PhaseStarted)), playing: "a", has: all,
			want: "wake 5m0s"},
		{name: "an equal level follows a play that ends by its start",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{a, c}, progress: append(received(c), mark(a, PhaseStarted)), playing: "a", ends: 5 * time.Minute, has: all,
			want: "prepare c at 5m0s; wake 5m0s"},
		{name: "a lower level never preempts: not prepared",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{a, low}, progress: append(received(low), mark(a, PhaseStarted)), playing: "a", has: all,
			want: "wake 5m0s"},
		{name: "one queued behind the play is prepared for its end",
			now: time.Minute - 200*time.Millisecond, occs: []protocol.Occurrence{a, b}, progress: append(received(b), mark(a, PhaseStarted)), playing: "a", ends: time.Minute, has: all,
			want: "prepare b at 1m0s; wake 10m0.001s"},
		{name: "the end of the play not within the lead: wake at it less the lead",
			now: 30 * time.Second, occs: []protocol.Occurrence{a, b}, progress: append(received(b), mark(a, PhaseStarted)), playing: "a", ends: time.Minute, has: all,
			want: "wake 59.5s"},
		{name: "the one starting now is not prepared again; nor is an equal one after it",
			now: 0, occs: []protocol.Occurrence{a, occ("d", 300*time.Millisecond)}, progress: received(a, occ("d", 300*time.Millisecond)), has: all,
			want: "start a; wake 300ms"},
		{name: "a higher one just after the one starting now is prepared",
			now: 0, occs: []protocol.Occurrence{a, at(occ("d", 300*time.Millisecond), protocol.PriorityEmergency)}, progress: received(a, at(occ("d", 300*time.Millisecond), protocol.PriorityEmergency)), has: all,
			want: "start a; prepare d at 300ms; wake 300ms"},
		{name: "of two starting together the higher is prepared",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{c, at(occ("d", 5*time.Minute), protocol.PriorityHigh)}, progress: received(c, at(occ("d", 5*time.Minute), protocol.PriorityHigh)), has: all,
			want: "prepare d at 5m0s; wake 5m0s"},
		{name: "without a sound device nothing is prepared: the amplifier stays off",
			now: 5*time.Minute - 2*time.Second, occs: []protocol.Occurrence{chimed(at(c, protocol.PriorityEmergency))}, has: all, cached: all, alert: 3 * time.Second, noSound: true,
			want: "received c; wake 5m0s"},
		{name: "done before a clock jump backwards: not prepared again",
			now: 5*time.Minute - 100*time.Millisecond, occs: []protocol.Occurrence{c}, progress: []Progress{mark(c, PhaseDone)}, has: all,
			want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]Progress{}
			for _, m := range tc.progress {
				p[m.Occurrence] = m
			}
			s := Situation{Now: t0.Add(tc.now), Occurrences: tc.occs, Progress: p, Playing: tc.playing, HasContent: tc.has, Cached: tc.cached, Lead: lead, AlertLead: tc.alert, NoSound: tc.noSound}
			if tc.ends != 0 {
				s.PlayingEnds = t0.Add(tc.ends)
			}
			d := Decide(s)
			if got := summary(d); got != tc.want {
				t.Errorf("Decide = %q\n          want %q", got, tc.want)
			}
			// Looking ahead changes nothing else the decision says.
			s.Lead, s.AlertLead = 0, 0
			plain := Decide(s)
			if d.Start != plain.Start && (d.Start == nil || plain.Start == nil || d.Start.ID != plain.Start.ID) || d.Stop != plain.Stop ||
				len(d.Received) != len(plain.Received) || len(d.Close) != len(plain.Close) || len(d.Suspend) != len(plain.Suspend) {
				t.Errorf("with a lead %q, without %q", summary(d), summary(plain))
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

// TestDecidePreemptionMatrix plays one occurrence of every level and makes
// one of every level due: only a strictly higher level preempts; an equal
// or lower one queues behind it.
func TestDecidePreemptionMatrix(t *testing.T) {
	levels := []protocol.Priority{protocol.PriorityBackground, protocol.PriorityNormal, protocol.PriorityHigh, protocol.PriorityEmergency}
	all := func(string) bool { return true }
	for _, onAir := range levels {
		for _, due := range levels {
			t.Run(fmt.Sprintf("%s on air, %s due", onAir, due), func(t *testing.T) {
				p, q := at(occ("p", 0), onAir), at(occ("q", time.Minute), due)
				d := Decide(Situation{
					Now: t0.Add(time.Minute), Occurrences: []protocol.Occurrence{p, q},
					Progress: map[string]Progress{"p": mark(p, PhaseStarted), "q": mark(q, PhaseReceived)},
					Playing:  "p", HasContent: all,
				})
				want := "wake 11m0.001s" // queued until its deadline
				if due.Rank() > onAir.Rank() {
					want = "stop preempted; start q"
				}
				if got := summary(d); got != want {
					t.Errorf("Decide = %q, want %q", got, want)
				}
			})
		}
	}
}

// TestCutOff is what becomes of an occurrence stopped before its end.
func TestCutOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string
		reason string
		now    time.Duration
		want   string
	}{
		{"preempted, resume by default", "", protocol.ReasonPreempted, time.Minute, "suspended suspended"},
		{"preempted, resume", protocol.PreemptResume, protocol.ReasonPreempted, time.Minute, "suspended suspended"},
		{"preempted, drop", protocol.PreemptDrop, protocol.ReasonPreempted, time.Minute, "preempted done"},
		{"preempted past the deadline", "", protocol.ReasonPreempted, 11 * time.Minute, "preempted done"},
		{"agent stopped, resume", "", protocol.ReasonInterrupted, time.Minute, "suspended suspended"},
		{"agent stopped, drop", protocol.PreemptDrop, protocol.ReasonInterrupted, time.Minute, "failed done"},
		{"agent stopped past the deadline", "", protocol.ReasonInterrupted, 11 * time.Minute, "failed done"},
		{"removed never resumes", "", protocol.ReasonRemoved, time.Minute, "failed done"},
		{"content stopped coming, resume", "", protocol.ReasonContentMissing, time.Minute, "suspended suspended"},
		{"content stopped coming, drop", protocol.PreemptDrop, protocol.ReasonContentMissing, time.Minute, "failed done"},
		{"content stopped coming past the deadline", "", protocol.ReasonContentMissing, 11 * time.Minute, "failed done"},
		{"muted, resume", "", protocol.ReasonMuted, time.Minute, "suspended suspended"},
		{"muted, drop", protocol.PreemptDrop, protocol.ReasonMuted, time.Minute, "failed done"},
		{"muted past the deadline", "", protocol.ReasonMuted, 11 * time.Minute, "failed done"},
		{"corrected, resume", "", protocol.ReasonCorrected, time.Minute, "suspended suspended"},
		{"corrected, drop", protocol.PreemptDrop, protocol.ReasonCorrected, time.Minute, "failed done"},
		{"corrected past the deadline", "", protocol.ReasonCorrected, 11 * time.Minute, "failed done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := occ("a", 0)
			o.OnPreempt = tc.policy
			typ, ph := CutOff(o, tc.reason, t0.Add(tc.now), 0)
			if got := fmt.Sprintf("%s %s", typ, ph); got != tc.want {
				t.Errorf("CutOff = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDecideSessionOnFakeClock runs an evening session through the executor
// on a fake clock, the way the agent's loop does, with a player that can be
// cut off: back-to-back items, a priority bulletin that preempts the one on
// air, which resumes afterwards; an emergency that preempts the priority;
// and a drop-policy item that is cut and not resumed.
func TestDecideSessionOnFakeClock(t *testing.T) {
	fc := clock.NewFake(t0.Add(-time.Minute))
	sessionEnd := t0.Add(30 * time.Minute)
	inSession := func(o protocol.Occurrence) protocol.Occurrence { o.PlayBy = sessionEnd; return o }
	occs := []protocol.Occurrence{
		inSession(occ("news", 0)),                                                      // 0–4m, cut at 2m, again 7m–11m
		inSession(occ("weather", 4*time.Minute)),                                       // queued behind news: 11m–15m
		at(occ("flood", 2*time.Minute), protocol.PriorityHigh),                         // 2m: preempts news; cut by the alarm at 3m, again 4m–7m... see below
		at(occ("alarm", 3*time.Minute), protocol.PriorityEmergency),                    // 3m–4m (1 minute long)
		drop(inSession(at(occ("music", 14*time.Minute), protocol.PriorityBackground))), // 15m: plays, cut at 16m by…
		inSession(occ("late-notice", 16*time.Minute)),                                  // …a normal item; music is dropped
	}
	length := map[string]time.Duration{"alarm": time.Minute, "flood": 3 * time.Minute}
	lengthOf := func(id string) time.Duration {
		if l, ok := length[id]; ok {
			return l
		}
		return 4 * time.Minute
	}
	all := func(string) bool { return true }
	progress := map[string]Progress{}
	var playing string
	var playEnd time.Time
	var log []string
	logf := func(format string, args ...any) {
		log = append(log, fmt.Sprintf("%v ", fc.Now().Sub(t0))+fmt.Sprintf(format, args...))
	}
	byID := map[string]protocol.Occurrence{}
	for _, o := range occs {
		byID[o.ID] = o
	}
	for step := 0; step < 100; step++ {
		if playing != "" && !fc.Now().Before(playEnd) {
			logf("completed %s", playing)
			p := progress[playing]
			p.Phase = PhaseDone
			progress[playing] = p
			playing = ""
		}
		d := Decide(Situation{Now: fc.Now(), Occurrences: occs, Progress: progress, Playing: playing, HasContent: all})
		for _, o := range d.Received {
			p := markOf(o, PhaseReceived)
			p.ReceivedAt = fc.Now()
			progress[o.ID] = p
		}
		for _, c := range d.Close {
			logf("%s %s %s", c.Type, c.Progress.Occurrence, c.Reason)
			p := c.Progress
			p.Phase = PhaseDone
			progress[p.Occurrence] = p
		}
		if d.Stop != "" {
			typ, ph := CutOff(byID[playing], d.Stop, fc.Now(), 0)
			logf("%s %s %s", typ, playing, d.Stop)
			p := progress[playing]
			p.Phase, p.CutBy = ph, d.Stop
			progress[playing] = p
			playing = ""
		}
		if d.Start != nil {
			logf("started %s", d.Start.ID)
			progress[d.Start.ID] = markOf(*d.Start, PhaseStarted)
			playing, playEnd = d.Start.ID, fc.Now().Add(lengthOf(d.Start.ID))
		}
		next := d.Wake
		if playing != "" && (next.IsZero() || playEnd.Before(next)) {
			next = playEnd
		}
		if next.IsZero() {
			break
		}
		fc.Set(next)
	}
	want := []string{
		"0s started news",
		"2m0s suspended news preempted",
		"2m0s started flood",
		"3m0s suspended flood preempted",
		"3m0s started alarm",
		"4m0s completed alarm",
		"4m0s started flood", // the priority bulletin again, from the beginning
		"7m0s completed flood",
		"7m0s started news", // the normal one resumes before the later weather
		"11m0s completed news",
		"11m0s started weather",
		"15m0s completed weather",
		"15m0s started music",
		"16m0s preempted music preempted", // drop policy: not resumed
		"16m0s started late-notice",
		"20m0s completed late-notice",
	}
	if !slices.Equal(log, want) {
		t.Errorf("session:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}
