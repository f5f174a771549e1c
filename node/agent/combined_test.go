package agent_test

import (
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// alertCmd is an alert command as controller/emergency builds it
// (alertCommand): resume policy, one-second gap, full volume, and the
// expiry the controller gives when the officer sets none: the start plus
// the planned length plus loaxa.DefaultEmergencyWindow (5 minutes).
func alertCmd(id string, msg, opening, closing protocol.ContentRef, start time.Time, repeat int, drill bool) protocol.Command {
	planned := time.Duration(opening.DurationMS+closing.DurationMS+int64(repeat)*msg.DurationMS+int64(repeat-1)*1000) * time.Millisecond
	return protocol.Command{Name: protocol.CmdAlert, Alert: &protocol.Alert{
		Occurrence: protocol.Occurrence{
			ID: id, Announcement: id[:3], Content: msg.ID, Priority: protocol.PriorityEmergency,
			Start: start.UTC(), Expires: start.Add(planned + 5*time.Minute).UTC(), DurationMS: msg.DurationMS,
			Repeat: repeat, GapMS: 1000, OpeningChime: opening.ID, ClosingChime: closing.ID,
			OnPreempt: protocol.PreemptResume, Volume: protocol.MaxVolume, Drill: drill,
		},
		Content: []protocol.ContentRef{opening, closing, msg},
	}}
}

func hasEvent(events []protocol.Event, summary string) bool {
	return slices.Contains(nodetest.Summary(events), summary)
}

// TestRealAlertCutsOffADrill: a district runs a drill (an exercise,
// marked drill) and while it plays a real typhoon warning is sent to one
// of its communes. The real warning sounds at its start instant ("over
// whatever is playing"); it waited until the exercise had played its
// three repeats to the end. The drill is over, not played again after.
func TestRealAlertCutsOffADrill(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1", "p1"), options{clock: fc})
	waitConnected(t, n)

	drillMsg := ctl.AddContent(20 * time.Second)
	realMsg := ctl.AddContent(2 * time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)

	drillStart := fc.Now().Add(500 * time.Millisecond)
	ctl.SendAreaCommand("d1", alertCmd("e01@drill", drillMsg, opening, closing, drillStart, 3, true), 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e01@drill"})
	nodetest.Eventually(t, 5*time.Second, "drill content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(drillStart)
	waitEvents(t, ctl, "n1", []string{"received e01@drill", "started e01@drill"})
	runUntil(t, fc, 5*time.Second, "5 s of the drill", func() bool { return !fc.Now().Before(drillStart.Add(5 * time.Second)) })

	// The real warning, to the commune, issued now with a 500 ms lead.
	realStart := fc.Now().Add(500 * time.Millisecond)
	ctl.SendAreaCommand("x1", alertCmd("e02@real", realMsg, opening, closing, realStart, 3, false), 10*time.Minute)
	nodetest.Eventually(t, 5*time.Second, "real alert not received", func() bool { return hasEvent(ctl.Events("n1"), "received e02@real") })
	nodetest.Eventually(t, 5*time.Second, "real alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(realStart)
	limit := realStart.Add(3 * time.Second)
	// The node's own state says what it plays; its started event comes
	// over the broker in real time, which the steps of the fake clock
	// outran on a busy machine (the node already played the warning).
	onAir := func() bool { p := n.a.Status().Playing; return p != nil && p.Occurrence == "e02@real" }
	for !onAir() {
		if fc.Now().After(limit) {
			st := n.a.Status()
			playing := ""
			if st.Playing != nil {
				playing = st.Playing.Occurrence
			}
			t.Fatalf("the real warning has not started %v after its start instant; the node plays %q (drill=%v); events %q",
				fc.Now().Sub(realStart), playing, st.Playing != nil && st.Playing.Drill, nodetest.Summary(ctl.Events("n1")))
		}
		fc.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	nodetest.Eventually(t, 5*time.Second, "the real warning's start reported", func() bool { return hasEvent(ctl.Events("n1"), "started e02@real") })
	runUntil(t, fc, time.Minute, "the real warning played", func() bool { return hasEvent(ctl.Events("n1"), "completed e02@real") })
	if ev := ctl.Events("n1"); !hasEvent(ev, "preempted e01@drill preempted") {
		t.Errorf("the drill cut off by the real warning: events %q, want it preempted", nodetest.Summary(ev))
	}
}

// TestSecondAlertHeldBehindALongOnePlays: the district's typhoon warning
// (a two-minute message, three times) is on air when the commune sends its
// own real warning (a dyke breach), with the expiry the controller gives by
// default. The node holds it with its audio and waits for the district's
// to end (equal levels queue); by then the commune's warning has expired.
// It plays then; it was reported missed and never sounded.
func TestSecondAlertHeldBehindALongOnePlays(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1", "p1"), options{clock: fc})
	waitConnected(t, n)

	typhoon := ctl.AddContent(2 * time.Minute)
	dyke := ctl.AddContent(5 * time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)

	aStart := fc.Now().Add(500 * time.Millisecond)
	ctl.SendAreaCommand("d1", alertCmd("e10@typhoon", typhoon, opening, closing, aStart, 3, false), 20*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e10@typhoon"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(aStart)
	waitEvents(t, ctl, "n1", []string{"received e10@typhoon", "started e10@typhoon"})
	runUntil(t, fc, 20*time.Second, "10 s of the typhoon warning", func() bool { return !fc.Now().Before(aStart.Add(10 * time.Second)) })

	bStart := fc.Now().Add(500 * time.Millisecond)
	ctl.SendAreaCommand("x1", alertCmd("e11@dyke", dyke, opening, closing, bStart, 1, false), 20*time.Minute)
	nodetest.Eventually(t, 5*time.Second, "dyke alert not received", func() bool { return hasEvent(ctl.Events("n1"), "received e11@dyke") })
	nodetest.Eventually(t, 5*time.Second, "dyke content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	runUntil(t, fc, 8*time.Minute, "the dyke warning played or given up", func() bool {
		ev := ctl.Events("n1")
		return hasEvent(ev, "started e11@dyke") || slices.ContainsFunc(ev, func(e protocol.Event) bool {
			return e.Occurrence == "e11@dyke" && (e.Type == protocol.EventMissed || e.Type == protocol.EventFailed)
		})
	})
	ev := ctl.Events("n1")
	if !hasEvent(ev, "started e11@dyke") {
		t.Fatalf("the commune's real dyke warning never sounded on a node that held it and its audio; events %q", nodetest.Summary(ev))
	}
}
