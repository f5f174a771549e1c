package agent

import (
	"fmt"
	"slices"
	"time"

	"loaxa.vn/protocol"
)

// Emergency alerts (protocol.Alert) come as commands, not in the desired
// state: the node keeps them beside it and the executor sees both, so an
// alert preempts what plays, and what it cut off resumes after it, by the
// same rules as any occurrence. An alert leaves the list once it is done
// and expired, or when it is cancelled. The list and the cancelled ids are
// stored, so that an alert survives a restart (alertstore.go).

// occurrences returns the desired state's occurrences and the alerts'.
func (a *Agent) occurrences() []protocol.Occurrence {
	var out []protocol.Occurrence
	if a.desired != nil {
		out = a.desired.Occurrences
	}
	if len(a.alerts) == 0 {
		return out
	}
	out = slices.Clip(out)
	for _, al := range a.alerts {
		out = append(out, al.Occurrence)
	}
	return out
}

// withAlerts returns the desired state with the alerts' occurrences and
// content added, for the content cache.
func (a *Agent) withAlerts() *protocol.DesiredState {
	d := &protocol.DesiredState{}
	if a.desired != nil {
		cp := *a.desired
		d = &cp
	}
	if len(a.alerts) == 0 && len(a.aside) == 0 {
		return d
	}
	// An alert kept aside (alertstore.go) may play as soon as the clock
	// is measured: its content is wanted as a held alert's is.
	aside := a.asideAlerts()
	d.Occurrences = slices.Clip(a.occurrences())
	for _, al := range aside {
		d.Occurrences = append(d.Occurrences, al.Occurrence)
	}
	d.Content = slices.Clip(d.Content)
	for _, al := range slices.Concat(a.alerts, aside) {
		for _, c := range al.Content {
			if !slices.ContainsFunc(d.Content, func(r protocol.ContentRef) bool { return r.ID == c.ID }) {
				d.Content = append(d.Content, c)
			}
		}
	}
	return d
}

// arrival is when an alert came, and whether its content could play
// then. The step that reports it received runs after the alert's content
// was asked for (acceptAlert), and on a loaded board its fetch can end
// before that step: reported received and content-ready at the step's
// instant, the node read as one that had the audio when the alert came
// (the report's fetched said false, TestAlertDoesNotWaitForABulletinDownload
// waited for it in vain).
type arrival struct {
	at     time.Time
	cached bool
}

// acceptAlert takes a verified alert command. A copy of an alert the node
// has (a resend, or the same alert through a parent area) plays nothing
// again, but sends the reports of it the node holds at once (the
// controller resends because it has not heard of them); one cancelled
// before it arrived changes nothing.
func (a *Agent) acceptAlert(env *protocol.Envelope, al *protocol.Alert) error {
	if al == nil {
		return fmt.Errorf("%w: alert command without an alert", protocol.ErrMalformed)
	}
	if err := al.Validate(); err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
	}
	id := al.Occurrence.ID
	if _, ok := a.cancelled[id]; ok {
		a.log.Info("agent: alert was cancelled before it arrived", "occurrence", id)
		return nil
	}
	if _, seen := a.progress[id]; seen || slices.ContainsFunc(a.alerts, func(x protocol.Alert) bool { return x.Occurrence.ID == id }) ||
		slices.ContainsFunc(a.aside, func(x asideAlert) bool { return x.alert.Occurrence.ID == id }) {
		if a.releaseHold(id) {
			a.log.Info("agent: alert sent again; its held reports go now", "occurrence", id, "seq", env.Seq)
		} else {
			a.log.Debug("agent: alert already held", "occurrence", id, "seq", env.Seq)
		}
		return nil
	}
	if slices.ContainsFunc(a.occurrences(), func(o protocol.Occurrence) bool { return o.ID == id }) {
		return fmt.Errorf("%w: alert %s has the id of a scheduled occurrence", protocol.ErrMalformed, id)
	}
	a.holdReports(al)
	a.alerts = append(a.alerts, *al)
	if a.arrived == nil {
		a.arrived = map[string]arrival{}
	}
	a.arrived[id] = arrival{at: a.clock.Now(), cached: al.Occurrence.Content == "" || a.cache.Playable(al.Occurrence.Content)}
	a.alertsChanged()
	a.wantContent()
	o := al.Occurrence
	a.log.Warn("agent: emergency alert", "occurrence", id, "to", env.To, "drill", o.Drill, "start", o.Start, "expires", o.Expires,
		"late_ms", a.clock.Now().Sub(o.Start).Milliseconds(), "content_cached", a.cache.Has(o.Content))
	return nil
}

// cancelAlert stops alert id at once wherever it is: on air, prepared,
// waiting or cut off. Its delivery ends failed with reason cancelled, and
// what it cut off resumes by its own policy. The id is remembered until
// expires, so that a copy arriving later does not start it.
func (a *Agent) cancelAlert(id string, expires time.Time) {
	if id == "" {
		a.log.Warn("agent: alert-cancel without an occurrence ignored")
		return
	}
	if a.cancelled == nil {
		a.cancelled = map[string]time.Time{}
	}
	a.cancelled[id] = expires
	a.alertsChanged()
	i := slices.IndexFunc(a.alerts, func(x protocol.Alert) bool { return x.Occurrence.ID == id })
	if i < 0 {
		i = a.takeAside(id)
	}
	if i < 0 {
		a.log.Info("agent: cancel for an alert not held", "occurrence", id)
		return
	}
	o := a.endAlert(i, protocol.ReasonCancelled, protocol.EventFailed)
	a.log.Warn("agent: emergency alert cancelled", "occurrence", id, "drill", o.Drill)
}

// endAlert ends the held alert a.alerts[i] for reason: stopped if it
// plays (failed, or preempted as the reason says), else closed with a
// final event — failed if it had begun, notBegun if not — unless it was
// over already; then it is no longer held. It returns the alert's
// occurrence.
func (a *Agent) endAlert(i int, reason string, notBegun protocol.EventType) protocol.Occurrence {
	o := a.alerts[i].Occurrence
	id := o.ID
	if a.cue != nil && a.cue.occ.ID == id {
		if a.cue.openErr == nil && !a.cue.hold() {
			a.onAir(a.cue) // it began on its own just now
		} else {
			a.dropCue()
		}
	}
	if a.play != nil && a.play.occ.ID == id {
		a.stopPlay(reason)
	} else if p, ok := a.progress[id]; !ok || p.Phase != PhaseDone {
		typ := notBegun
		if ok && (p.Phase == PhaseStarted || p.Phase == PhaseSuspended) {
			typ = protocol.EventFailed
		}
		now := a.clock.Now()
		mark := a.mark(o, PhaseDone)
		e := occurrenceEvent(typ, mark, now)
		e.Reason = reason
		a.note([]protocol.Event{e}, mark)
	}
	a.alerts = slices.Delete(a.alerts, i, i+1)
	a.alertsChanged()
	a.wantContent()
	a.flush()
	return o
}

// pruneAlerts drops alerts that are over and expired, and forgets
// cancelled ids past their expiry.
func (a *Agent) pruneAlerts(now time.Time) {
	a.pruneHolds(now)
	for id, exp := range a.cancelled {
		if now.After(exp) {
			delete(a.cancelled, id)
			a.alertsChanged()
		}
	}
	n := len(a.alerts)
	a.alerts = slices.DeleteFunc(a.alerts, func(al protocol.Alert) bool {
		p, ok := a.progress[al.Occurrence.ID]
		drop := ok && p.Phase == PhaseDone && now.After(al.Occurrence.Expires)
		if drop {
			a.alertsChanged()
		}
		return drop
	})
	if len(a.alerts) != n {
		a.wantContent()
	}
}
