package agent

import (
	"cmp"
	"maps"
	"slices"
	"strings"
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
	// HasContent reports whether content can play: cached, or arriving
	// fast enough to play as it does (nil: nothing can).
	HasContent func(id string) bool
	// Cached reports whether content is in the cache in full (nil: none
	// is). Only a cached chime plays, and an emergency whose opening chime
	// is cached starts with it while its message is still to come.
	Cached func(id string) bool
	// ChimeKnown reports whether an opening chime not cached has a known
	// length (nil: none has), so that an emergency can start without it,
	// its place kept in silence until it comes (ChimeFirst).
	ChimeKnown func(id string) bool
	// PlayingEnds is when the play on air will end (zero: not known), so
	// that what follows it back to back can be prepared before it ends.
	PlayingEnds time.Time
	// Lead is how long before it is due an occurrence is prepared
	// (Decision.Prepare); 0 prepares nothing ahead.
	Lead time.Duration
	// AlertLead, if longer than Lead, is how long before it is due an
	// emergency is prepared: an alert starts a short lead (the same for
	// its whole area) after it was issued, so a node prepares it as soon as
	// it arrives rather than all the area's nodes at the same instant
	// shortly before the start.
	AlertLead time.Duration
	// NoSound says the node has no sound device (MissingOutput): nothing
	// starts. What is due is suspended with reason audio-device and waits
	// for its deadline, so that an agent restarted with its device plays it
	// then, late rather than never.
	NoSound bool
	// Muted says the node is muted (protocol.NodeConfig.Muted): nothing
	// below emergency starts. What is due is suspended with reason muted
	// and waits for its deadline, as one the mute cut off does, so that a
	// mute taken back in time (a cluster muted by mistake) still plays it,
	// from the beginning.
	Muted bool
	// EmergencyUntil is until when an emergency held the speaker: Now
	// while one is on air, else when the last one ended (zero: none has).
	// A real alert the node had in time, held behind it past its own
	// deadline (a district's long typhoon warning on air when a commune's
	// dyke warning comes), may still start until heldAlertGrace after it.
	EmergencyUntil time.Time
	// LiveFrames reports whether a live call's jitter buffer holds frames
	// to play (nil: none does). A live call whose frames stopped (it was
	// suspended with ReasonStream: the node's link dropped) starts again
	// only once they come again.
	LiveFrames func(call string) bool
}

// heldAlertGrace is how long after the emergency that held it back a real
// alert past its deadline may still start (Situation.EmergencyUntil): the
// decision after the end starts it at once.
const heldAlertGrace = 30 * time.Second

// deadline is o's deadline (Occurrence.Deadline), put back for a real
// alert the node received before it that an emergency on air held back.
func (s Situation) deadline(o *protocol.Occurrence, grace time.Duration) time.Time {
	if s.rejoins(o) {
		// A live call whose frames stopped may begin again as long as the
		// call may last: the frames that come prove it goes on.
		return liveEnds(o)
	}
	d := o.Deadline(grace)
	if o.Priority != protocol.PriorityEmergency || o.Drill || !s.EmergencyUntil.After(d) {
		return d
	}
	if p, ok := s.Progress[o.ID]; !ok || p.ReceivedAt.IsZero() || p.ReceivedAt.After(d) {
		return d
	}
	return s.EmergencyUntil.Add(heldAlertGrace)
}

// rejoins reports whether o is a live call suspended because its frames
// stopped coming (ReasonStream) or the agent stopped (ReasonInterrupted):
// it waits for them to begin again.
func (s Situation) rejoins(o *protocol.Occurrence) bool {
	p, ok := s.Progress[o.ID]
	return o.Live != "" && ok && waitsForFrames(p)
}

// waitsForFrames reports whether p, the mark of a live call, is off the
// air waiting for the call's frames: they stopped coming (the node's
// link dropped), or the agent stopped (a restart) while it held the call.
func waitsForFrames(p Progress) bool {
	return p.Phase == PhaseSuspended && (p.CutBy == protocol.ReasonStream || p.CutBy == protocol.ReasonInterrupted)
}

// liveEnds returns when live call o can be over at the latest: the
// longest a call may last, from its start.
func liveEnds(o *protocol.Occurrence) time.Time {
	return o.Start.Add(time.Duration(o.DurationMS) * time.Millisecond)
}

// rank orders occurrences for preemption: by level and, at one level, a
// real one above an exercise, so that a real warning cuts off a drill
// rather than wait for all its repeats.
func rank(o *protocol.Occurrence) int {
	r := 2 * o.Priority.Rank()
	if !o.Drill {
		r++
	}
	return r
}

// Decision is what the agent should do now. The agent writes the events of
// Received, Close and Suspend (in that order) to its outbox in one step,
// then stops what plays if told (which reports it through CutOff), then
// starts Start, and asks again at Wake or when anything changes (a new
// desired state, the end of a play, a clock correction).
type Decision struct {
	// Received lists occurrences not reported before, in start order.
	Received []protocol.Occurrence
	// Close lists final outcomes of occurrences that will not play (missed,
	// failed, preempted) or that stopped without the agent seeing the end.
	Close []Outcome
	// Suspend lists occurrences that stopped without the agent seeing the
	// end (it was restarted) and will start again from the beginning, and
	// those due on a node without a sound device (Situation.NoSound), which
	// wait for it.
	Suspend []Outcome
	// Stop, when not empty, is the reason for stopping what is playing:
	// ReasonRemoved (no longer desired), ReasonMuted (the node is muted and
	// it is not an emergency) or ReasonPreempted (Start is of a higher
	// level).
	Stop string
	// Start is the occurrence to play now, if any. When Stop is set too,
	// it starts once the other has stopped.
	Start *protocol.Occurrence
	// Prepare is the occurrence that will start next, at PrepareAt within
	// Lead from now, if nothing changes but the time: an upcoming one at
	// its start, or the one that follows the play on air at its end. The
	// agent switches the amplifier on and opens its content ahead, so that
	// the start itself only has to begin the audio. Nil when nothing
	// starts within Lead.
	Prepare   *protocol.Occurrence
	PrepareAt time.Time
	// Wake is when the next decision is due without any change; zero when
	// nothing is pending.
	Wake time.Time
}

// Outcome is a final (or, in Decision.Suspend, a suspending) event for one
// occurrence.
type Outcome struct {
	Progress Progress // identity of the occurrence; Phase is the old phase
	Type     protocol.EventType
	Reason   string
	LateMS   int64
}

// Empty reports whether the decision asks for no action (Wake aside).
func (d Decision) Empty() bool {
	return len(d.Received) == 0 && len(d.Close) == 0 && len(d.Suspend) == 0 && d.Stop == "" && d.Start == nil && d.Prepare == nil
}

// Decide is the executor: given the situation, what to report, stop and
// start now, and when to look again. The rules, in the words of the
// national levels (background < normal < priority < emergency):
//
//   - One occurrence plays at a time. Of those due, the highest level plays
//     first; equal levels play in start-then-id order (they queue).
//   - A due occurrence of a higher level than the one on air preempts it at
//     once. The one cut off is suspended and plays again from the beginning
//     when it is its turn, if its policy is resume and it is not past its
//     deadline (Occurrence.Deadline: the end of its session, or the start
//     plus the late grace); otherwise it ends as preempted.
//   - An occurrence may start, late, until its deadline; waiting for its
//     content or behind others does not change that. Past the deadline it
//     is missed, or failed with content-missing if the node knew of it in
//     time to fetch the content.
//   - An emergency whose opening chime is cached does not wait for its
//     content: it starts at its instant with the chime, and the message
//     follows as soon as it can play (ChimeFirst).
//   - A play whose content stopped coming (or came wrong) is suspended like
//     one preempted, and plays again from the beginning once its content
//     is cached, if that is before its deadline.
//   - A live call whose frames stopped coming (its play failed on the
//     frame timeout) is suspended, not over: it begins again once frames
//     of it come (Situation.LiveFrames), until the call's longest length
//     (Occurrence.DurationMS) from its start. Something that outranks it
//     on air or starting ends it as preempted (a live call does not
//     resume after a preemption): it never begins after that.
//   - An occurrence that was on air when the agent stopped resumes the same
//     way after a restart; one that cannot is failed as interrupted.
//   - On a muted node nothing below emergency starts: a due occurrence is
//     suspended with reason muted, and one the mute cut off waits the same
//     way. Unmuted before its deadline, it plays from the beginning;
//     past it, it ends failed with reason muted.
//   - A suspended or playing occurrence that the desired state no longer
//     holds ends as failed with reason removed.
//
// Looking ahead, Decide asks itself what it would decide at the next
// instant something is due to start (or the play on air to end), and if
// that is within Lead, names it in Prepare.
func Decide(s Situation) Decision {
	d := decide(s)
	if s.Lead > 0 {
		prepare(s, &d)
	}
	return d
}

// prepare fills in d.Prepare: the decision at the next instant anything
// starts or ends, if that is within s.Lead; otherwise it asks to wake at
// that instant less the lead.
func prepare(s Situation, d *Decision) {
	if s.HasContent == nil {
		return // nothing can start
	}
	// The play on air after this decision, and whether its end is known.
	playing, ends := s.Playing, s.PlayingEnds
	if d.Stop != "" {
		playing, ends = "", time.Time{}
	}
	if d.Start != nil {
		playing, ends = d.Start.ID, time.Time{}
	}
	var next time.Time
	alert := false // an emergency starts at next
	for _, o := range s.Occurrences {
		if !o.Start.After(s.Now) || !s.startable(&o) || !next.IsZero() && o.Start.After(next) {
			continue
		}
		if p, ok := s.Progress[o.ID]; ok && p.Phase != PhaseReceived {
			continue // done or started before a clock jump backwards
		}
		if !o.Start.Equal(next) {
			alert = false
		}
		next = o.Start
		alert = alert || o.Priority == protocol.PriorityEmergency
	}
	if playing != "" && ends.After(s.Now) && (next.IsZero() || ends.Before(next)) {
		next, alert = ends, false
	}
	if next.IsZero() {
		return
	}
	lead := s.Lead
	if alert {
		lead = max(lead, s.AlertLead)
	}
	if at := next.Add(-lead); at.After(s.Now) {
		if d.Wake.IsZero() || at.Before(d.Wake) {
			d.Wake = at
		}
		return
	}
	future := s
	future.Now, future.Lead, future.AlertLead, future.Playing, future.PlayingEnds = next, 0, 0, playing, time.Time{}
	if playing != "" && !ends.IsZero() && !next.Before(ends) {
		// By then the play on air has ended, to be followed by another.
		future.Playing = ""
		future.Progress = maps.Clone(s.Progress)
		if p, ok := future.Progress[playing]; ok {
			p.Phase = PhaseDone
			future.Progress[playing] = p
		}
	}
	f := decide(future)
	if o := f.Start; o != nil && o.ID != playing {
		for i := range s.Occurrences {
			if s.Occurrences[i].ID == o.ID {
				d.Prepare, d.PrepareAt = &s.Occurrences[i], next
				return
			}
		}
	}
}

func decide(s Situation) (d Decision) {
	grace := s.LateGrace
	if grace <= 0 {
		grace = DefaultLateGrace
	}
	has := s.HasContent
	if has == nil {
		has = func(string) bool { return false }
	}
	wake := func(t time.Time) {
		if d.Wake.IsZero() || t.Before(d.Wake) {
			d.Wake = t
		}
	}

	occs := slices.Clone(s.Occurrences)
	slices.SortFunc(occs, byStart)
	desired := make(map[string]*protocol.Occurrence, len(occs))
	for i := range occs {
		o := &occs[i]
		desired[o.ID] = o
		if _, seen := s.Progress[o.ID]; !seen {
			d.Received = append(d.Received, *o)
		}
	}

	// phase is each occurrence's phase as this decision leaves it.
	phase := make(map[string]Phase, len(s.Progress))
	cutBy := map[string]string{}
	var marks []Progress
	for id, p := range s.Progress {
		phase[id] = p.Phase
		cutBy[id] = p.CutBy
		if (p.Phase == PhaseStarted && id != s.Playing) || p.Phase == PhaseSuspended {
			marks = append(marks, p)
		}
	}
	slices.SortFunc(marks, func(a, b Progress) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Occurrence, b.Occurrence))
	})
	for _, p := range marks {
		o := desired[p.Occurrence]
		switch {
		case p.Phase == PhaseSuspended && o == nil:
			d.Close = append(d.Close, Outcome{Progress: p, Type: protocol.EventFailed, Reason: protocol.ReasonRemoved})
			phase[p.Occurrence] = PhaseDone
		case p.Phase == PhaseSuspended:
			// Waits below for its turn.
		case o != nil && o.Resumes() && !s.Now.After(o.Deadline(grace)):
			// Started but not on air: the agent stopped (or crashed) while
			// it played. It plays again from the beginning.
			d.Suspend = append(d.Suspend, Outcome{Progress: p, Type: protocol.EventSuspended, Reason: protocol.ReasonInterrupted})
			phase[p.Occurrence], cutBy[p.Occurrence] = PhaseSuspended, protocol.ReasonInterrupted
		default:
			d.Close = append(d.Close, Outcome{Progress: p, Type: protocol.EventFailed, Reason: protocol.ReasonInterrupted})
			phase[p.Occurrence] = PhaseDone
		}
	}

	onAir := -1 // rank of what plays on, -1 for nothing
	if s.Playing != "" {
		if o := desired[s.Playing]; o == nil {
			d.Stop = protocol.ReasonRemoved
		} else if mutes(s.Muted, o) {
			d.Stop = protocol.ReasonMuted
		} else {
			onAir = rank(o)
		}
	}

	var ready []*protocol.Occurrence
	for _, o := range occs {
		o := desired[o.ID]
		ph := phase[o.ID]
		if ph == PhaseStarted || ph == PhaseDone || o.ID == s.Playing {
			continue
		}
		suspended := ph == PhaseSuspended
		if !suspended && o.Start.After(s.Now) {
			wake(o.Start)
			continue
		}
		deadline := s.deadline(o, grace)
		if s.Now.After(deadline) {
			late := s.Now.Sub(o.Start).Milliseconds()
			mark := markOf(*o, cmp.Or(ph, PhaseReceived))
			if p, ok := s.Progress[o.ID]; ok {
				mark.ReceivedAt = p.ReceivedAt
			}
			switch {
			case suspended && cutBy[o.ID] == protocol.ReasonPreempted:
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventPreempted, Reason: protocol.ReasonPreempted, LateMS: late})
			case suspended:
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventFailed, Reason: cmp.Or(cutBy[o.ID], protocol.ReasonInterrupted), LateMS: late})
			case !has(o.Content) && knewInTime(s.Progress[o.ID], o):
				// Missing content is the reason only if the node knew of the
				// occurrence in time to fetch it; otherwise it learned too late.
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventFailed, Reason: protocol.ReasonContentMissing, LateMS: late})
			default:
				d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventMissed, Reason: protocol.ReasonTooLate, LateMS: late})
			}
			continue
		}
		if held := s.holdsBack(o); held != "" {
			if !suspended {
				mark := markOf(*o, cmp.Or(ph, PhaseReceived))
				mark.ReceivedAt = s.Progress[o.ID].ReceivedAt // zero if received now: the agent sets it
				d.Suspend = append(d.Suspend, Outcome{Progress: mark, Type: protocol.EventSuspended, Reason: held})
				phase[o.ID], cutBy[o.ID] = PhaseSuspended, held
			}
			wake(deadline.Add(time.Millisecond))
			continue
		}
		if s.startable(o) {
			ready = append(ready, o)
		} else {
			// Waiting for its content: a late start is better than none,
			// until the deadline. The agent decides again when content
			// arrives.
			wake(deadline.Add(time.Millisecond))
		}
	}
	defer func() {
		// Those that wait for their turn are looked at again at their
		// deadline, and whenever a play ends.
		for _, o := range ready {
			if o != d.Start {
				wake(s.deadline(o, grace).Add(time.Millisecond))
			}
		}
	}()
	defer func() {
		// A live call waiting for its frames to come again is over once
		// something that outranks it is on air: the nodes that played it
		// were cut off, and do not resume it either.
		top := onAir
		if d.Stop != "" {
			top = -1
		}
		if d.Start != nil {
			top = rank(d.Start)
		}
		for _, o := range occs {
			o := desired[o.ID]
			if phase[o.ID] != PhaseSuspended || !s.rejoins(o) || rank(o) >= top {
				continue
			}
			mark := markOf(*o, PhaseSuspended)
			mark.ReceivedAt = s.Progress[o.ID].ReceivedAt
			d.Close = append(d.Close, Outcome{Progress: mark, Type: protocol.EventPreempted, Reason: protocol.ReasonPreempted})
			phase[o.ID] = PhaseDone
			if i := slices.Index(ready, o); i >= 0 {
				ready = slices.Delete(ready, i, i+1)
			}
		}
	}()
	if len(ready) == 0 {
		return d
	}
	// The highest level first; the sort by start and id keeps equal levels
	// in queue order.
	best := ready[0]
	for _, o := range ready[1:] {
		if rank(o) > rank(best) {
			best = o
		}
	}
	switch {
	case d.Stop != "" || onAir < 0:
		d.Start = best
	case rank(best) > onAir:
		d.Stop, d.Start = protocol.ReasonPreempted, best
	}
	return d
}

// CutOff is the event for occurrence o stopped at now for reason before its
// end: suspended (it plays again from the beginning) if its policy is
// resume, the reason is a preemption, the agent stopping, its content
// that stopped coming (or came wrong), the node's mute (it plays once
// unmuted) or a correction (it plays corrected), and its deadline has not
// passed;
// else final: preempted, or failed with the reason. An exercise cut off by
// another message is over: it does not play again after a real warning.
// A live call cut off by the agent stopping is suspended while the call
// may last: after the restart it plays again from the frames that come.
func CutOff(o protocol.Occurrence, reason string, now time.Time, grace time.Duration) (protocol.EventType, Phase) {
	if grace <= 0 {
		grace = DefaultLateGrace
	}
	if o.Live != "" && reason == protocol.ReasonInterrupted && now.Before(liveEnds(&o)) {
		return protocol.EventSuspended, PhaseSuspended
	}
	resumable := reason == protocol.ReasonPreempted && !o.Drill || reason == protocol.ReasonInterrupted ||
		reason == protocol.ReasonContentMissing || reason == protocol.ReasonMuted || reason == protocol.ReasonCorrected
	if resumable && o.Resumes() && !now.After(o.Deadline(grace)) {
		return protocol.EventSuspended, PhaseSuspended
	}
	if reason == protocol.ReasonPreempted {
		return protocol.EventPreempted, PhaseDone
	}
	return protocol.EventFailed, PhaseDone
}

// ChimeFirst reports whether o starts with its opening chime (or its
// intro, a kept recording) before its content can play: an emergency's
// first sound must not wait for the link. A cluster that has the alert but
// not its message (typed a moment ago, made into speech) sounds the chime
// at the instant the whole area does, and the message follows when enough
// of it has arrived: at the chime's end on the clusters whose download
// kept up, so these stay in step. A cluster that does not have the chime
// either (enrolled minutes ago) starts at that instant all the same if it
// knows the chime's length (known; nil: never): it keeps the chime's
// place in silence, plays the rest of the chime if it comes meanwhile,
// and its message joins the area's timeline, rather than beginning the
// whole template once its message has come, out of step with every
// neighbour.
func ChimeFirst(o *protocol.Occurrence, cached, known func(id string) bool) bool {
	if o.Priority != protocol.PriorityEmergency || o.Content == "" || cached == nil {
		return false
	}
	return o.OpeningChime != "" && (cached(o.OpeningChime) || known != nil && known(o.OpeningChime)) ||
		o.Intro != "" && cached(o.Intro)
}

// startable reports whether o can start now as far as its audio goes. One
// cut off because its content stopped coming, or came wrong, plays again
// only once its content is in the cache, verified: not with its chime
// alone, nor as it downloads, so a link that keeps failing does not sound
// the chime, or the same wrong bytes, again and again.
func (s *Situation) startable(o *protocol.Occurrence) bool {
	if s.HasContent == nil || s.NoSound || mutes(s.Muted, o) {
		return false
	}
	if p, ok := s.Progress[o.ID]; ok && p.Phase == PhaseSuspended && p.CutBy == protocol.ReasonContentMissing {
		return s.Cached != nil && s.Cached(o.Content)
	}
	if s.rejoins(o) {
		return s.LiveFrames != nil && s.LiveFrames(o.Live)
	}
	return s.HasContent(o.Content) || ChimeFirst(o, s.Cached, s.ChimeKnown)
}

// holdsBack is why the node cannot begin o now though it is due, "" if
// nothing holds it: no sound device (audio-device), or the node's mute
// (muted). Held back, o is suspended with that reason and waits for its
// deadline.
func (s *Situation) holdsBack(o *protocol.Occurrence) string {
	switch {
	case s.NoSound:
		return protocol.ReasonAudioDevice
	case mutes(s.Muted, o):
		return protocol.ReasonMuted
	}
	return ""
}

// mutes reports whether a node muted or not (muted) holds o back. An
// emergency is never muted: whatever a technician left set, an alarm must
// be heard.
func mutes(muted bool, o *protocol.Occurrence) bool {
	return muted && o.Priority != protocol.PriorityEmergency
}

// knewInTime reports whether the node had o before its start.
func knewInTime(p Progress, o *protocol.Occurrence) bool {
	return !p.ReceivedAt.IsZero() && !p.ReceivedAt.After(o.Start)
}

func byStart(a, b protocol.Occurrence) int {
	return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.ID, b.ID))
}

// markOf returns the progress mark of o at phase.
func markOf(o protocol.Occurrence, phase Phase) Progress {
	return Progress{Occurrence: o.ID, Announcement: o.Announcement, Content: o.Content, Start: o.Start, Phase: phase, Drill: o.Drill}
}
