package agent

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"loaxa.vn/protocol"
)

// Reports of an alert are spread over its report window
// (protocol.Alert.ReportWindowMS): when an alert goes to thousands of
// nodes, each of them reporting it received, started and completed at the
// same instants would put tens of thousands of messages on the broker and
// the controller while the alert is still fanning out to the last nodes.
// The node picks a delay within the window once per alert and holds each
// report of the alert that long after the report's own time, or after the
// alert's start for a report made before it (the receipt):
//
//   - its events (received, content-ready, started, the final event): they
//     are written to the outbox at once, with their true At, and the sender
//     does not begin a batch with an event of the alert before At (or the
//     start, if later) plus the delay. The receipt of an alert that came
//     before its start so goes with the started event, in one batch, and
//     none of the area's reports reach the broker and the controller while
//     the alert still fans out to the area's last nodes: before, those
//     with the shortest delays did, 3-4 % of a 10,000-node area's
//     receipts during the ~0.7 s of its fan-out. The outbox is sent in
//     order (the controller accepts a node's events only in order), so an
//     event written after a held one waits with it; and a batch that goes
//     out takes the events written after its first along, held or not (one
//     message, not one per report). Each
//     alert's reports go on their own schedule, though: a report of
//     another alert that is due (at once for an alert without a window)
//     sends the batch, the held reports before it along, since the
//     controller resends an alert whose receipt it has not heard within a
//     few seconds. The outbox is durable, and the delay is stored with the
//     held alerts, so a restart or a lost link during the delay loses
//     nothing and keeps the delay.
//   - its retained state: a change while the node holds the alert is
//     published the delay after the usual debounce.
//
// Nothing about playing waits: only the reports. Alerts without a window,
// the desired state's plays and live calls report at once as before.

// reportHold is how long the reports of one alert wait. Every alert the
// node holds has one, with no delay if its window asks for none, so that
// the sender knows its reports as an alert's.
type reportHold struct {
	delay time.Duration
	// from is the alert's start when its reports are delayed: a report
	// made before it is held from it. Zero once the alert's final event is
	// written (a cancel before the start is reported its delay after it)
	// or a resend released the hold.
	from time.Time
	// until is when the hold ends: the alert's expiry plus the delay, so
	// that a final event written at the expiry is held too; or, once the
	// final event is written, its time plus the delay.
	until time.Time
	// forget is when the hold is forgotten: the alert's expiry plus the
	// delay. Its reports still in the outbox until then are known as the
	// alert's, which another alert's held reports do not hold back.
	forget time.Time
}

// newRand returns the agent's own random source, seeded from the
// system's: thousands of agents in one process (the fleet simulator) must
// not pick the same delays.
func newRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		// crypto/rand does not fail on supported systems; the time is a
		// poorer seed, never a shared one across agents started apart.
		binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	}
	return rand.New(rand.NewChaCha8(seed))
}

// reportDelay picks the delay of the reports of an alert with window w:
// uniform in [0, w), or Config.ReportDelay's choice kept within it.
func (a *Agent) reportDelay(w time.Duration) time.Duration {
	if w <= 0 {
		return 0
	}
	if a.cfg.ReportDelay != nil {
		return min(max(a.cfg.ReportDelay(w), 0), w)
	}
	return time.Duration(a.rand.Int64N(int64(w)))
}

// holdReports starts holding the reports of al, if its window asks for it
// (else it only notes them as an alert's, with no delay). It runs in the
// main loop when the alert is accepted, before any event of it is written.
//
// The window runs from the alert's start: a node that has the alert late
// (a weak link, a busy broker) spreads its reports over what is left of
// the window, and one that has it after the window reports at once. The
// controller resends to a node it has not heard from by twice the lead
// plus the window after the issue (the start is the issue plus the lead),
// so a node that had the alert in time is not resent to for want of its
// report.
func (a *Agent) holdReports(al *protocol.Alert) {
	w := al.ReportWindow()
	if left := al.Occurrence.Start.Add(w).Sub(a.clock.Now()); left < w {
		w = max(left, 0)
	}
	d := a.reportDelay(w)
	var from time.Time
	if d > 0 {
		from = al.Occurrence.Start
	}
	a.setHold(al.Occurrence.ID, d, from, al.Occurrence.Expires.Add(d), al.Occurrence.Expires)
	if d <= 0 {
		return
	}
	a.alertsChanged()
	a.log.Debug("agent: reports of the alert spread", "occurrence", al.Occurrence.ID, "window", w, "delay", d)
}

// releaseHold stops holding the reports of alert id: the controller sent
// the alert again, to this node alone, because it has not heard that the
// node has it, and until it does it sends the alert again (up to its
// limit) and the officers' board shows the node as not reached. Resends
// go to a bounded number of nodes at a time, so the released reports do
// not come all at once. It reports whether any were held.
func (a *Agent) releaseHold(id string) bool {
	a.mu.Lock()
	h, ok := a.holds[id]
	held := ok && h.delay > 0
	if held {
		h.delay, h.from = 0, time.Time{}
		a.holds[id] = h
	}
	a.mu.Unlock()
	if held {
		a.alertsChanged() // the delay is stored with the held alerts
		signal(a.outboxWake)
	}
	return held
}

// setHold holds the reports of alert id, which expires at expires, by d
// from from (the reports made before it) until until.
func (a *Agent) setHold(id string, d time.Duration, from, until, expires time.Time) {
	a.mu.Lock()
	if a.holds == nil {
		a.holds = map[string]reportHold{}
	}
	a.holds[id] = reportHold{delay: d, from: from, until: until, forget: expires.Add(d)}
	a.mu.Unlock()
}

// endHolds ends the holds of the alerts whose final event is among events
// (completed, failed, missed, preempted) at that event's time plus the
// delay: the final event itself is still held, and so is the state that
// follows it, but a change after that (a board fault) is no longer
// reported late until the alert expires. The new end is stored with the
// held alerts, so that a restart keeps it. Its reports are no longer held
// from the start: an alert cancelled before its start is reported over
// within the delay of the cancel, which the controller's resend of the
// cancel waits for.
func (a *Agent) endHolds(events []protocol.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range events {
		h, ok := a.holds[e.Occurrence]
		if !ok {
			continue
		}
		switch e.Type {
		case protocol.EventCompleted, protocol.EventFailed, protocol.EventMissed, protocol.EventPreempted:
			h.from = time.Time{}
			if end := e.At.Add(h.delay); end.Before(h.until) {
				h.until = end
				a.alertsDirty = true
			}
			a.holds[e.Occurrence] = h
		}
	}
}

// pruneHolds forgets the holds of alerts past their expiry and delay.
func (a *Agent) pruneHolds(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, h := range a.holds {
		if now.After(h.forget) {
			delete(a.holds, id)
			a.alertsDirty = true
		}
	}
}

// heldDelays returns the delays to store with the held alerts, in ms,
// and the ends of their holds.
func (a *Agent) heldDelays() (delays map[string]int64, until map[string]time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.holds) == 0 {
		return nil, nil
	}
	for id, h := range a.holds {
		if h.delay <= 0 {
			continue // nothing to keep: its reports go at their time
		}
		if delays == nil {
			delays, until = map[string]int64{}, map[string]time.Time{}
		}
		delays[id], until[id] = h.delay.Milliseconds(), h.until
	}
	return delays, until
}

// heldUntil returns when a batch of events, oldest first, may be sent:
// at once (zero) if the first is not a report of an alert, else when the
// first report of an alert among them is due, its At (or its alert's
// start, if later and the hold is from it) plus the delay of its alert's
// reports. So one alert's held reports do not hold back another's: the
// controller resends an alert whose receipt it has not heard by its own
// bound. Called by the sender.
func (a *Agent) heldUntil(events []protocol.Event) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var due time.Time
	for i, e := range events {
		h, ok := a.holds[e.Occurrence]
		if !ok {
			if i == 0 {
				return time.Time{}
			}
			continue
		}
		if t := later(e.At, h.from).Add(h.delay); due.IsZero() || t.Before(due) {
			due = t
		}
	}
	return due
}

// later returns the later of t and u.
func later(t, u time.Time) time.Time {
	if u.After(t) {
		return u
	}
	return t
}

// stateDelay returns how much longer than the debounce a state change now
// waits: the longest delay of the alerts whose reports are held.
func (a *Agent) stateDelay(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d time.Duration
	for _, h := range a.holds {
		if !now.After(h.until) {
			d = max(d, h.delay)
		}
	}
	return d
}

// heartbeatAfter is the wait before the next heartbeat: uniform in
// (0.8 × every, every]. Never longer than every, which the controller's
// silence detection counts on. The jitter is for the fleet: an emergency
// makes every node of an area publish its state within seconds, each state
// restarts its node's heartbeat, and fixed heartbeats would then keep the
// whole area publishing together once a minute, on the broker, the
// controller and the mobile network, until the nodes restart; with the
// jitter they drift apart within a few minutes.
func heartbeatAfter(every time.Duration, rng *rand.Rand) time.Duration {
	spread := every / 5
	if spread <= 0 {
		return every
	}
	return every - time.Duration(rng.Int64N(int64(spread)))
}
