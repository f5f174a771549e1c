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

// HeldAlerts is what a node remembers of emergency alerts: those it holds
// (live calls are not kept: their stream does not survive a restart) and
// the cancelled ids with their expiry.
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
	for _, al := range a.alerts {
		if al.Occurrence.Live == "" {
			h.Alerts = append(h.Alerts, al)
		}
	}
	if err := a.store.SetHeldAlerts(h); err != nil {
		a.log.Error("agent: emergency alerts not stored; an alert may not resume after a restart", "alerts", len(h.Alerts), "err", err)
		return
	}
	a.alertsDirty = false
}

// loadAlerts holds again the stored alerts that have not expired, and
// closes those that expired while the agent was stopped. It runs in load,
// after the progress marks.
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
	var events []protocol.Event
	var marks []Progress
	a.restoredAt, a.restoredOffset = now, a.clock.Get()
	for _, al := range h.Alerts {
		o := al.Occurrence
		p, seen := a.progress[o.ID]
		if now.Before(o.Expires) {
			a.alerts = append(a.alerts, al)
			d := time.Duration(max(h.ReportDelayMS[o.ID], 0)) * time.Millisecond
			until, ok := h.ReportUntil[o.ID]
			if !ok {
				until = o.Expires.Add(d)
			}
			a.setHold(o.ID, d, until, o.Expires)
			if a.restored == nil {
				a.restored = map[string]bool{}
			}
			a.restored[o.ID] = true
			if !seen || p.Phase != PhaseDone {
				a.log.Warn("agent: emergency alert held again after a restart", "occurrence", o.ID, "drill", o.Drill,
					"phase", p.Phase, "expires", o.Expires)
			}
			continue
		}
		a.alertsChanged()
		if seen && p.Phase == PhaseDone {
			continue // over before the stop, and expired since
		}
		m := a.mark(o, PhaseDone)
		typ := protocol.EventMissed
		if seen && (p.Phase == PhaseStarted || p.Phase == PhaseSuspended) {
			typ = protocol.EventFailed
		}
		e := occurrenceEvent(typ, m, now)
		e.Reason = protocol.ReasonExpired
		events, marks = append(events, e), append(marks, m)
		a.log.Warn("agent: emergency alert expired while the agent was stopped; dropped", "occurrence", o.ID, "drill", o.Drill,
			"phase", p.Phase, "expired", o.Expires, "event", typ)
	}
	if len(h.Cancelled) != len(a.cancelled) {
		a.alertsChanged()
	}
	if len(events) > 0 {
		a.note(events, marks...)
	}
	a.flush()
	return nil
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
		if i < 0 || startup.Before(a.alerts[i].Occurrence.Expires) {
			continue
		}
		o := a.endAlert(i, protocol.ReasonExpired, protocol.EventMissed)
		a.log.Warn("agent: emergency alert held after a restart had expired by the corrected clock; dropped",
			"occurrence", id, "drill", o.Drill, "expired", o.Expires)
	}
	clear(a.restored)
}
