package agent

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"loaxa.vn/protocol"
)

// Emergency alerts survive a restart of the agent (a power cut in a
// typhoon is the case that matters): the alerts the node holds and the
// ids of cancelled ones are written to the store whenever they change,
// after the step that took them (so no write delays a start), and read
// back when the agent starts.
//
// On start, an alert that has not expired is held again and the executor
// treats it like any occurrence that was on air when the agent stopped:
// it was reported suspended (interrupted) and plays again from the
// beginning — opening chime, every repeat, closing chime — because a
// resident who heard the speaker go dead mid-sentence understands a
// warning that starts over, not one that resumes mid-word. (The controller
// sends alerts with the resume policy for this; see docs/emergency.md.) An
// alert that expired while the agent was stopped is dropped with a final
// event, reason expired: failed if it had begun, missed if it had not. A
// cancelled alert stays cancelled: its id is remembered until it expires.
//
// Live calls are held alerts too, and kept the same way. One that had
// begun is held again for as long as the call may last (its expiry is its
// start window): suspended (interrupted), off the air until the call's
// frames come, it then plays again from them (live.go). Not kept, a board
// whose agent restarted mid-call reported the call failed and ignored its
// frames: silent for the rest of the officer's call.
//
// The start-up clock is the board's own, not yet measured, and a board
// without an RTC battery may start hours ahead: an alert that looks
// expired on it, but not on the latest time the controller proved (the
// clock floor, clockfloor.go), is kept aside — stored, not played — until
// the first measurement judges it on the corrected clock: held again if it
// has not expired, dropped as above if it has. Dropping it on the board's
// word left the pole silent for the rest of the warning (the controller
// does not send an alert again to a node that reported it). Without a
// measurement within unmeasuredWait, it is judged on the board's clock and
// dropped.
//
// A stored alert is not a command: it does not pass the replay guard
// again. A copy of the alert's command arriving after the restart (the
// controller's resend, or an attacker replaying the old packet) is
// refused by the guard, whose entries are stored too, or by its expiry,
// or — a new resend with a new sequence — changes nothing because the
// node already has the alert.

// AlertStore keeps the emergency alerts a node holds across restarts.
type AlertStore interface {
	// HeldAlerts returns what SetHeldAlerts stored last (zero if never).
	HeldAlerts() (HeldAlerts, error)
	// SetHeldAlerts replaces the held alerts.
	SetHeldAlerts(h HeldAlerts) error
}

// HeldAlerts is what a node remembers of emergency alerts: those it holds,
// the live calls among them (a restart mid-call holds the call again, off
// the air until its frames come: live.go), and the cancelled ids with
// their expiry.
type HeldAlerts struct {
	Alerts    []protocol.Alert     `json:"alerts,omitempty"`
	Cancelled map[string]time.Time `json:"cancelled,omitempty"`
	// ReportDelayMS is the delay of each held alert's reports (spread.go),
	// by occurrence id, so that a restart keeps the node's place in the
	// window.
	ReportDelayMS map[string]int64 `json:"report_delay_ms,omitempty"`
	// ReportUntil is when the hold of each held alert's reports ends, by
	// occurrence id: the alert's expiry plus the delay, or earlier once
	// its final event was written (endHolds). Absent in stores written
	// before it was kept, where the hold ends at the expiry plus the delay.
	ReportUntil map[string]time.Time `json:"report_until,omitempty"`
	// LiveFrames are the frames of each held live call counted before
	// it last went off the air here (the agent stopped, or the frames
	// stopped), by call id: the counts of the call's final event go on
	// from them after a restart. Absent in stores written before it was
	// kept, and for a call the agent did not see go off the air (a crash,
	// a power cut): its counts begin again at the restart.
	LiveFrames map[string]LiveFrames `json:"live_frames,omitempty"`
}

// LiveFrames are a live call's frame counts (protocol.Event.FramesPlayed,
// FramesLost, FramesLate).
type LiveFrames struct {
	Played int64 `json:"played,omitempty"`
	Lost   int64 `json:"lost,omitempty"`
	Late   int64 `json:"late,omitempty"`
}

// unmeasuredWait is how long an alert kept aside at start-up waits for
// the first measurement of the clock before it is judged on the board's
// own: long enough for a link a typhoon took down to come back (the agent
// measures at every connect), short enough that a node whose controller
// does not sign its time reports the alert's end within the hour. It
// counts from the agent's start: across a reboot the board has only the
// clock that cannot be trusted, and a wait timed on it could drop a valid
// alert at once.
const unmeasuredWait = time.Hour

// asideAlert is a stored alert kept aside at start-up (loadAlerts), with
// the delay and end of the hold of its reports as stored.
type asideAlert struct {
	alert protocol.Alert
	delay time.Duration
	until time.Time
}

// alertsChanged marks the held alerts to be written by the next flush.
func (a *Agent) alertsChanged() { a.alertsDirty = true }

// saveAlerts writes the held alerts if they changed. A failure is logged
// and tried again at the next flush; the alert plays all the same.
func (a *Agent) saveAlerts() {
	if !a.alertsDirty {
		return
	}
	h := HeldAlerts{Cancelled: maps.Clone(a.cancelled)}
	h.ReportDelayMS, h.ReportUntil = a.heldDelays()
	h.Alerts = slices.Clone(a.alerts)
	for _, x := range a.aside {
		id := x.alert.Occurrence.ID
		h.Alerts = append(h.Alerts, x.alert)
		if x.delay > 0 {
			if h.ReportDelayMS == nil {
				h.ReportDelayMS, h.ReportUntil = map[string]int64{}, map[string]time.Time{}
			}
			h.ReportDelayMS[id], h.ReportUntil[id] = x.delay.Milliseconds(), x.until
		}
	}
	for _, al := range h.Alerts {
		if id := al.Occurrence.Live; id != "" {
			if f := a.liveCounted(id); f != (LiveFrames{}) {
				if h.LiveFrames == nil {
					h.LiveFrames = map[string]LiveFrames{}
				}
				h.LiveFrames[id] = f
			}
		}
	}
	if err := a.store.SetHeldAlerts(h); err != nil {
		a.log.Error("agent: emergency alerts not stored; an alert may not resume after a restart", "alerts", len(h.Alerts), "err", err)
		return
	}
	a.alertsDirty = false
}

// loadAlerts holds again the stored alerts that have not expired, closes
// those that expired while the agent was stopped, and keeps aside those
// that look expired only on the board's unmeasured clock. It runs in load,
// after the progress marks and the clock floor.
func (a *Agent) loadAlerts(now time.Time) error {
	h, err := a.store.HeldAlerts()
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	for id, exp := range h.Cancelled {
		if !now.After(exp) {
			if a.cancelled == nil {
				a.cancelled = map[string]time.Time{}
			}
			a.cancelled[id] = exp
		}
	}
	a.restoredAt, a.restoredOffset = now, a.clock.Get()
	a.liveBefore = h.LiveFrames // pruned with the calls (pruneLives)
	proven := a.floor()
	for _, al := range h.Alerts {
		o := al.Occurrence
		d := time.Duration(max(h.ReportDelayMS[o.ID], 0)) * time.Millisecond
		until, ok := h.ReportUntil[o.ID]
		if !ok {
			until = o.Expires.Add(d)
		}
		x := asideAlert{alert: al, delay: d, until: until}
		p, seen := a.progress[o.ID]
		switch {
		case now.Before(a.restoreUntil(o)):
			a.holdAgain(x)
			if a.restored == nil {
				a.restored = map[string]bool{}
			}
			a.restored[o.ID] = true
			switch {
			case seen && p.Phase == PhaseDone:
			case o.Live != "":
				a.log.Warn("agent: live call held again after a restart; it plays again when its frames come", "call", o.Live, "drill", o.Drill,
					"phase", p.Phase, "priority", o.Priority)
			default:
				a.log.Warn("agent: emergency alert held again after a restart", "occurrence", o.ID, "drill", o.Drill,
					"phase", p.Phase, "expires", o.Expires)
			}
		case seen && p.Phase == PhaseDone:
			a.alertsChanged() // over before the stop, and expired since
		case proven.Before(a.restoreUntil(o)):
			a.aside = append(a.aside, x)
			a.log.Warn("agent: emergency alert held before a restart looks expired on the board's clock, which is not measured yet; kept, not played, until the controller's time is measured",
				"occurrence", o.ID, "drill", o.Drill, "phase", p.Phase, "expires", o.Expires, "board_clock", now, "wait", unmeasuredWait)
		default:
			a.dropExpired(o, now)
			a.log.Warn("agent: emergency alert expired while the agent was stopped; dropped", "occurrence", o.ID, "drill", o.Drill,
				"phase", p.Phase, "expired", o.Expires)
		}
	}
	if len(h.Cancelled) != len(a.cancelled) {
		a.alertsChanged()
	}
	a.flush()
	return nil
}

// holdAgain holds x's alert again, with its reports' stored hold. A live
// call gets a new jitter buffer, which joins the call at the frames that
// come (those said while the agent was stopped are neither played nor
// counted lost); one that was on the air (the agent crashed: nothing said
// it stopped) is suspended, off the air until its frames come, as one
// the agent's stop cut off is (CutOff).
func (a *Agent) holdAgain(x asideAlert) {
	o := x.alert.Occurrence
	a.alerts = append(a.alerts, x.alert)
	if o.Live == "" {
		// Held from the start unless the final event ended the hold
		// (endHolds) before the restart.
		var from time.Time
		if x.delay > 0 && !x.until.Before(o.Expires.Add(x.delay)) {
			from = o.Start
		}
		a.setHold(o.ID, x.delay, from, x.until, o.Expires)
		return
	}
	if a.lives == nil {
		a.lives = map[string]*jitter{}
	}
	j := newJitter(a.clock, LiveFrameTimeout)
	j.drill, j.joining = o.Drill, true
	a.lives[o.Live] = j
	if p, ok := a.progress[o.ID]; ok && p.Phase == PhaseStarted {
		m := p
		m.Phase, m.CutBy = PhaseSuspended, protocol.ReasonInterrupted
		e := occurrenceEvent(protocol.EventSuspended, m, a.clock.Now())
		e.Reason = protocol.ReasonInterrupted
		a.note([]protocol.Event{e}, m)
	}
}

// restoreUntil returns until when stored alert o is held again after a
// restart: its expiry, or for a live call that began (the agent stopped
// while it played, or waited for its frames) the latest the call can end:
// its expiry is its start window, long past while the officer speaks on;
// one that is over is held until then too, and pruned as any alert over.
func (a *Agent) restoreUntil(o protocol.Occurrence) time.Time {
	if p, ok := a.progress[o.ID]; o.Live != "" && ok && p.Phase != PhaseReceived {
		return liveEnds(&o)
	}
	return o.Expires
}

// dropExpired closes o, a stored alert found expired at now, with its
// final event, reason expired: failed if it had begun, missed if not. The
// caller no longer holds it.
func (a *Agent) dropExpired(o protocol.Occurrence, now time.Time) {
	a.alertsChanged()
	p, seen := a.progress[o.ID]
	if seen && p.Phase == PhaseDone {
		return
	}
	m := a.mark(o, PhaseDone)
	typ := protocol.EventMissed
	if seen && (p.Phase == PhaseStarted || p.Phase == PhaseSuspended) {
		typ = protocol.EventFailed
	}
	e := occurrenceEvent(typ, m, now)
	e.Reason = protocol.ReasonExpired
	a.note([]protocol.Event{e}, m)
}

// judgeAside judges the alerts kept aside at start-up: at the first
// measurement, on the corrected clock, and once unmeasuredWait has passed
// without one, on the board's own. It returns when to look again: the
// end of the wait while some are kept and the clock is not measured, else
// zero. Main loop only.
func (a *Agent) judgeAside(now time.Time) time.Time {
	if len(a.aside) == 0 {
		return time.Time{}
	}
	measured := a.clockEstimate.Load() != nil
	giveUp := a.restoredAt.Add(unmeasuredWait)
	if !measured && now.Before(giveUp) {
		return giveUp
	}
	for _, x := range a.aside {
		o := x.alert.Occurrence
		switch {
		case now.Before(a.restoreUntil(o)):
			a.holdAgain(x)
			a.alertsChanged()
			a.log.Warn("agent: emergency alert kept aside after a restart has not expired by the corrected clock; held again",
				"occurrence", o.ID, "drill", o.Drill, "expires", o.Expires)
		case measured:
			a.dropExpired(o, now)
			a.log.Warn("agent: emergency alert kept aside after a restart has expired by the corrected clock; dropped",
				"occurrence", o.ID, "drill", o.Drill, "expired", o.Expires)
		default:
			a.dropExpired(o, now)
			a.log.Warn("agent: emergency alert kept aside after a restart dropped: the controller's time was not measured in time, and on the board's clock it has expired",
				"occurrence", o.ID, "drill", o.Drill, "expired", o.Expires, "waited", unmeasuredWait)
		}
	}
	a.aside = nil
	a.wantContent()
	a.flush()
	return time.Time{}
}

// progressSeen returns the progress marks the executor decides from: all
// but those of the alerts kept aside, which it would otherwise close as
// occurrences it no longer has.
func (a *Agent) progressSeen() map[string]Progress {
	if len(a.aside) == 0 {
		return a.progress
	}
	seen := maps.Clone(a.progress)
	for _, x := range a.aside {
		delete(seen, x.alert.Occurrence.ID)
	}
	return seen
}

// asideAlerts returns the alerts kept aside.
func (a *Agent) asideAlerts() []protocol.Alert {
	out := make([]protocol.Alert, len(a.aside))
	for i, x := range a.aside {
		out[i] = x.alert
	}
	return out
}

// takeAside holds again the alert kept aside under id and returns its
// index in a.alerts, or -1 if none is kept aside under id.
func (a *Agent) takeAside(id string) int {
	i := slices.IndexFunc(a.aside, func(x asideAlert) bool { return x.alert.Occurrence.ID == id })
	if i < 0 {
		return -1
	}
	a.holdAgain(a.aside[i])
	a.aside = slices.Delete(a.aside, i, i+1)
	return len(a.alerts) - 1
}

// recheckRestored runs when the controller corrects the clock. The alerts
// held again at start-up were judged unexpired on the board's own clock,
// which after a power cut can be behind (no RTC, or fake-hwclock's time
// from before the cut): one that had in fact expired at start-up is
// stopped if it plays, or closed, with reason expired, as if found
// expired then. The judgement is of the start-up instant on the corrected
// clock, not of now: an alert that rightly began again before its expiry
// plays to its end, as any alert that began in time does, however late
// the correction comes (a modem that takes minutes to reconnect after the
// power cut). After the first correction the clock is the controller's,
// and every alert is judged on it from then on.
func (a *Agent) recheckRestored() {
	startup := a.restoredAt.Add(a.clock.Get() - a.restoredOffset)
	for id := range a.restored {
		i := slices.IndexFunc(a.alerts, func(x protocol.Alert) bool { return x.Occurrence.ID == id })
		if i < 0 || startup.Before(a.restoreUntil(a.alerts[i].Occurrence)) {
			continue
		}
		o := a.endAlert(i, protocol.ReasonExpired, protocol.EventMissed)
		a.log.Warn("agent: emergency alert held after a restart had expired by the corrected clock; dropped",
			"occurrence", id, "drill", o.Drill, "expired", o.Expires)
	}
	clear(a.restored)
}
