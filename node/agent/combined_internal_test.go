package agent

import (
	"testing"
	"time"

	"loaxa.vn/protocol"
)

// TestDecideRealEmergencyOverDrill: a real emergency due while an exercise
// at the same level is on air (a drill alert, a drill live call at
// emergency level) goes on air at once; at one level the two waited in
// line, and a real warning played only after all the drill's repeats. A
// drill due while a real one plays still waits.
func TestDecideRealEmergencyOverDrill(t *testing.T) {
	all := func(string) bool { return true }
	drill := at(occ("drill", 0), protocol.PriorityEmergency)
	drill.Drill, drill.Expires = true, t0.Add(30*time.Minute)
	drillCall := protocol.Occurrence{ID: "live-d", Announcement: "live-d", Priority: protocol.PriorityEmergency, Live: "live-d",
		Start: t0, Expires: t0.Add(5 * time.Second), OnPreempt: protocol.PreemptDrop, Drill: true}
	real := at(occ("real", time.Minute), protocol.PriorityEmergency)
	real.Expires = t0.Add(10 * time.Minute)
	for _, tc := range []struct {
		name    string
		playing protocol.Occurrence
	}{
		{"drill alert on air", drill},
		{"drill live call on air", drillCall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Situation{
				Now: t0.Add(time.Minute), Occurrences: []protocol.Occurrence{tc.playing, real},
				Progress: map[string]Progress{tc.playing.ID: mark(tc.playing, PhaseStarted), real.ID: mark(real, PhaseReceived)},
				Playing:  tc.playing.ID, HasContent: all, Cached: all,
			})
			if d.Stop != protocol.ReasonPreempted || d.Start == nil || d.Start.ID != "real" {
				t.Errorf("decision %q, want the drill stopped (preempted) and the real alert started", summary(d))
			}
		})
	}
	t.Run("drill due while a real alert plays", func(t *testing.T) {
		late := drill
		late.Start = t0.Add(2 * time.Minute)
		d := Decide(Situation{
			Now: t0.Add(2 * time.Minute), Occurrences: []protocol.Occurrence{real, late},
			Progress: map[string]Progress{real.ID: mark(real, PhaseStarted), late.ID: mark(late, PhaseReceived)},
			Playing:  real.ID, HasContent: all, Cached: all,
		})
		if d.Stop != "" || d.Start != nil {
			t.Errorf("decision %q, want the real alert left on air", summary(d))
		}
	})
	if typ, ph := CutOff(drill, protocol.ReasonPreempted, t0.Add(time.Minute), 0); typ != protocol.EventPreempted || ph != PhaseDone {
		t.Errorf("a drill cut off by a real alert: %s %s, want preempted, not to play again after it", typ, ph)
	}
}

// TestDecideAlertHeldBehindAnEmergency: a real alert the node had in
// time, held behind another emergency on air past its own expiry, is not
// missed: it starts when that one ends (within heldAlertGrace). One the
// node received after its expiry, or a drill, is missed as before.
func TestDecideAlertHeldBehindAnEmergency(t *testing.T) {
	all := func(string) bool { return true }
	long := at(occ("typhoon", 0), protocol.PriorityEmergency)
	long.Expires = t0.Add(20 * time.Minute)
	dyke := at(occ("dyke", time.Minute), protocol.PriorityEmergency)
	dyke.Expires = t0.Add(6 * time.Minute)
	now := t0.Add(7 * time.Minute) // the dyke warning's expiry is past
	on := Situation{
		Now: now, Occurrences: []protocol.Occurrence{long, dyke},
		Progress: map[string]Progress{long.ID: mark(long, PhaseStarted), dyke.ID: mark(dyke, PhaseReceived)},
		Playing:  long.ID, EmergencyUntil: now, HasContent: all, Cached: all,
	}
	if d := Decide(on); len(d.Close) != 0 || d.Start != nil {
		t.Errorf("while the typhoon warning plays: %q, want the dyke warning kept waiting", summary(d))
	}
	ended := on
	ended.Playing, ended.EmergencyUntil = "", now.Add(-time.Second)
	ended.Progress = map[string]Progress{long.ID: mark(long, PhaseDone), dyke.ID: mark(dyke, PhaseReceived)}
	if d := Decide(ended); d.Start == nil || d.Start.ID != "dyke" {
		t.Errorf("once the typhoon warning ended: %q, want the dyke warning started", summary(d))
	}
	tooLate := ended
	lateMark := mark(dyke, PhaseReceived)
	lateMark.ReceivedAt = dyke.Expires.Add(time.Second)
	tooLate.Progress = map[string]Progress{long.ID: mark(long, PhaseDone), dyke.ID: lateMark}
	if d := Decide(tooLate); d.Start != nil {
		t.Errorf("received after its expiry: %q, want it missed", summary(d))
	}
	drillDyke := dyke
	drillDyke.Drill = true
	exercise := ended
	exercise.Occurrences = []protocol.Occurrence{long, drillDyke}
	if d := Decide(exercise); d.Start != nil {
		t.Errorf("a drill held past its expiry: %q, want it missed", summary(d))
	}
}
