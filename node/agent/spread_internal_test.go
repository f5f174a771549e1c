package agent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
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

// Heartbeats are jittered within (0.8 × the interval, the interval], and
// two agents do not keep the same rhythm.
func TestHeartbeatAfter(t *testing.T) {
	const every = time.Minute
	a, b := newRand(), newRand()
	same := 0
	for range 1000 {
		da, db := heartbeatAfter(every, a), heartbeatAfter(every, b)
		for _, d := range []time.Duration{da, db} {
			if d <= every*4/5 || d > every {
				t.Fatalf("heartbeat after %v, want within (%v, %v]", d, every*4/5, every)
			}
		}
		if da == db {
			same++
		}
	}
	if same > 10 {
		t.Errorf("two agents chose the same wait %d times in 1000", same)
	}
	if got := heartbeatAfter(3*time.Nanosecond, a); got != 3*time.Nanosecond {
		t.Errorf("an interval too short to jitter: %v, want it unchanged", got)
	}
}

// An alert's final event ends its hold at the event's time plus the
// delay: the final report and the state after it still wait, a later
// state change does not, and the reports are no longer held from the
// start. Other events leave the hold as it is.
func TestFinalEventEndsHold(t *testing.T) {
	t0 := time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)
	const d = 4 * time.Second
	start := t0.Add(30 * time.Second)
	a := &Agent{}
	a.setHold("e1@x", d, start, t0.Add(10*time.Minute+d), t0.Add(10*time.Minute))
	a.setHold("e2@x", d, start, t0.Add(10*time.Minute+d), t0.Add(10*time.Minute))
	received := func(id string) []protocol.Event {
		return []protocol.Event{{Type: protocol.EventReceived, Occurrence: id, At: t0}}
	}
	if got := a.heldUntil(received("e2@x")); !got.Equal(start.Add(d)) {
		t.Errorf("a receipt before the start is sent at %v, want the start plus the delay", got)
	}
	a.endHolds([]protocol.Event{
		{Type: protocol.EventStarted, Occurrence: "e1@x", At: t0},
		{Type: protocol.EventCompleted, Occurrence: "e2@x", At: t0.Add(5 * time.Second)},
		{Type: protocol.EventCompleted, Occurrence: "news", At: t0}, // not held
	})
	if got := a.stateDelay(t0.Add(9 * time.Second)); got != d {
		t.Errorf("state delay just within e2's end: %v, want %v", got, d)
	}
	if h := a.holds["e1@x"]; !h.until.Equal(t0.Add(10*time.Minute + d)) {
		t.Errorf("a started event moved the hold's end to %v", h.until)
	}
	if h := a.holds["e2@x"]; !h.until.Equal(t0.Add(5*time.Second + d)) {
		t.Errorf("hold of the completed alert ends %v, want its completion plus the delay", h.until)
	}
	if got := a.heldUntil([]protocol.Event{{Type: protocol.EventCompleted, Occurrence: "e2@x", At: t0.Add(5 * time.Second)}}); !got.Equal(t0.Add(9 * time.Second)) {
		t.Errorf("the final event is sent at %v, want its time plus the delay", got)
	}
	if got := a.heldUntil(received("e2@x")); !got.Equal(t0.Add(d)) {
		t.Errorf("after the final event a receipt before the start is sent at %v, want its time plus the delay", got)
	}
	if got := a.heldUntil(received("e1@x")); !got.Equal(start.Add(d)) {
		t.Errorf("a started event ended the hold from the start: a receipt sent at %v", got)
	}
	delete(a.holds, "e1@x")
	if got := a.stateDelay(t0.Add(10 * time.Second)); got != 0 {
		t.Errorf("state delay after the completed alert's hold ended: %v, want none", got)
	}
}

// heldStore keeps held alerts in memory; the rest of Store is not used.
type heldStore struct {
	Store
	h HeldAlerts
}

func (s *heldStore) HeldAlerts() (HeldAlerts, error) { return s.h, nil }
func (s *heldStore) SetHeldAlerts(h HeldAlerts) error {
	s.h = h
	return nil
}

// A hold that the alert's final event ended early keeps that end across
// restarts, the next save included; one still running ends at the expiry
// plus the delay; and a store written before the ends were kept holds
// until the expiry plus the delay.
func TestEndedHoldSurvivesRestart(t *testing.T) {
	t0 := time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)
	const d = 4 * time.Second
	expires := t0.Add(10 * time.Minute)
	st := &heldStore{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &Agent{store: st, log: quiet}
	for _, id := range []string{"e1@x", "e2@x"} {
		a.alerts = append(a.alerts, protocol.Alert{Occurrence: protocol.Occurrence{ID: id, Start: t0, Expires: expires}})
		a.setHold(id, d, time.Time{}, expires.Add(d), expires)
	}
	a.endHolds([]protocol.Event{{Type: protocol.EventCompleted, Occurrence: "e1@x", At: t0.Add(5 * time.Second)}})
	if !a.alertsDirty {
		t.Fatal("an ended hold is not marked to be stored")
	}
	a.saveAlerts()
	ended, running := t0.Add(5*time.Second+d), expires.Add(d)

	restart := func(what string) *Agent {
		t.Helper()
		b := &Agent{store: st, log: quiet, clock: clock.NewOffset(clock.NewFake(t0.Add(6 * time.Second)))}
		if err := b.loadAlerts(t0.Add(6 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if h := b.holds["e1@x"]; h.delay != d || !h.until.Equal(ended) || !h.from.IsZero() {
			t.Errorf("%s: ended hold: delay %v from %v until %v, want %v from nothing until %v", what, h.delay, h.from, h.until, d, ended)
		}
		if h := b.holds["e2@x"]; h.delay != d || !h.until.Equal(running) || !h.from.Equal(t0) {
			t.Errorf("%s: running hold: delay %v from %v until %v, want %v from the start %v until %v", what, h.delay, h.from, h.until, d, t0, running)
		}
		return b
	}
	b := restart("after a restart")
	if got := b.stateDelay(t0.Add(10 * time.Second)); got != d {
		t.Errorf("state delay while e2 still holds: %v, want %v", got, d)
	}
	b.alertsChanged()
	b.saveAlerts()
	restart("after a second restart")

	// A store from before the ends were kept.
	st.h.ReportUntil = nil
	c := &Agent{store: st, log: quiet, clock: clock.NewOffset(clock.NewFake(t0.Add(6 * time.Second)))}
	if err := c.loadAlerts(t0.Add(6 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if h := c.holds["e1@x"]; !h.until.Equal(running) {
		t.Errorf("hold from an older store ends %v, want the expiry plus the delay %v", h.until, running)
	}
}
