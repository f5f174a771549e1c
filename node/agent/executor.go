package agent

import (
	"slices"
	"time"

	"loaxa.vn/protocol"
)

// DefaultLateGrace is how late after its start an occurrence may still
// begin when neither the desired state nor Config says otherwise.
const DefaultLateGrace = 10 * time.Minute

// Situation is everything the executor decides from. It is a value: the
// executor reads no clock and touches nothing, so every decision can be
// table-tested.
type Situation struct {
	// Now is the controller-corrected time.
	Now time.Time
	// Occurrences are those of the desired state the node runs.
	Occurrences []protocol.Occurrence
	// Progress is the durable mark of every occurrence reported on.
	Progress map[string]Progress
	// Playing is the id of the occurrence on air, or "".
	Playing string
	// LateGrace is how late an occurrence may still start.
	LateGrace time.Duration
	// HasContent reports whether content is cached (nil: nothing is).
	HasContent func(id string) bool
}

// Decision is what the agent should do now. The agent writes the events of
// Received, Close and Start (in that order) to its outbox in one step, then
// stops or starts audio as told, and asks again at Wake or when anything
// changes (a new desired state, the end of a play, a clock correction).
type Decision struct {
	// Received lists occurrences not reported before, in start order.
	Received []protocol.Occurrence
	// Close lists final outcomes of occurrences that will not play (missed,
	// failed) or that stopped without the agent seeing the end
	// (interrupted).
	Close []Outcome
	// Stop, when not empty, is the failure reason for stopping what is
	// playing (ReasonRemoved).
	Stop string
	// Start is the occurrence to play now, if any.
	Start *protocol.Occurrence
	// Wake is when the next decision is due without any change; zero when
	// nothing is pending.
	Wake time.Time
}

// Outcome is a final event for one occurrence.
type Outcome struct {
	Progress Progress // identity of the occurrence; Phase is the old phase
	Type     protocol.EventType
	Reason   string
	LateMS   int64
}

// Empty reports whether the decision asks for no action (Wake aside).
func (d Decision) Empty() bool {
	return len(d.Received) == 0 && len(d.Close) == 0 && d.Stop == "" && d.Start == nil
}

// Decide is the executor: given the situation, what to report, stop and
// start now, and when to look again. One occurrence plays at a time;
// occurrences due together play in start-then-id order. A due occurrence
// whose content is not cached yet waits for it as long as it may still
// start late, then fails with content-missing; one that can no longer start
// within the grace is missed.
//
// TODO(priorities issue): preemption by priority, resume and repeat belong
// here, as further rules over the same Situation.
func Decide(s Situation) Decision {
	var d Decision
	grace := s.LateGrace
	if grace <= 0 {
		grace = DefaultLateGrace
	}
	has := s.HasContent
	if has == nil {
		has = func(string) bool { return false }
	}

	occs := slices.Clone(s.Occurrences)
	slices.SortFunc(occs, func(a, b protocol.Occurrence) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})

	inDesired := make(map[string]bool, len(occs))
	for _, o := range occs {
		inDesired[o.ID] = true
		if _, seen := s.Progress[o.ID]; !seen {
			d.Received = append(d.Received, o)
		}
	}

	// A started occurrence that is not on air was cut off by a stop or a
	// crash of the agent before its end was written.
	var cut []Progress
	for id, p := range s.Progress {
		if p.Phase == PhaseStarted && id != s.Playing {
			cut = append(cut, p)
		}
	}
	slices.SortFunc(cut, func(a, b Progress) int { return a.Start.Compare(b.Start) })
	for _, p := range cut {
		d.Close = append(d.Close, Outcome{Progress: p, Type: protocol.EventFailed, Reason: protocol.ReasonInterrupted})
	}

	if s.Playing != "" && !inDesired[s.Playing] {
		d.Stop = protocol.ReasonRemoved
	}

	busy := s.Playing != ""
	wake := func(t time.Time) {
		if d.Wake.IsZero() || t.Before(d.Wake) {
			d.Wake = t
		}
	}
	for i := range occs {
		o := &occs[i]
		if p, ok := s.Progress[o.ID]; ok && (p.Phase == PhaseStarted || p.Phase == PhaseDone) {
			continue
		}
		if o.ID == s.Playing {
			continue
		}
		if o.Start.After(s.Now) {
			wake(o.Start)
			continue
		}
		late := s.Now.Sub(o.Start)
		mark := markOf(*o, PhaseReceived)
		if late > grace {
			// Missing content is the reason only if the node knew of the
			// occurrence in time to fetch it; otherwise it learned too late.
			p, known := s.Progress[o.ID]
			knewInTime := known && !p.ReceivedAt.IsZero() && !p.ReceivedAt.After(o.Start)
			if !has(o.Content) && knewInTime {
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventFailed, Reason: protocol.ReasonContentMissing, LateMS: late.Milliseconds()})
			} else {
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventMissed, Reason: protocol.ReasonTooLate, LateMS: late.Milliseconds()})
			}
			continue
		}
		if busy || !has(o.Content) {
			// Queued behind what plays, or waiting for its content: a late
			// start is better than none, until the grace runs out. The agent
			// decides again when the play ends or content arrives.
			wake(o.Start.Add(grace + time.Millisecond))
			continue
		}
		d.Start = o
		busy = true
	}
	return d
}

// markOf returns the progress mark of o at phase.
func markOf(o protocol.Occurrence, phase Phase) Progress {
	return Progress{Occurrence: o.ID, Announcement: o.Announcement, Content: o.Content, Start: o.Start, Phase: phase}
}
