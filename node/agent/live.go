package agent

import (
	"fmt"
	"slices"
	"time"

	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
)

// Live calls (docs/live.md) come on the area's live topic: a start, audio
// frames, an end. The start makes an occurrence of the call's priority
// held like an emergency alert (alert.go), so it preempts lower levels and
// what it cut off resumes after it, by the executor's usual rules. Its
// stream is the call's jitter buffer. A call whose frames stop coming for
// LiveFrameTimeout (the node's link dropped) goes off the air, suspended,
// and begins again with the frames that come next (Decide): a pole whose
// 4G dropped for a few seconds hears the rest of the call. A node that
// missed the start (offline when it went out) gets it again on its own
// cmd topic when it comes online (resent): it joins the call at the
// frames that come after it. The calls held are stored with the alerts:
// after a restart of the agent mid-call, the node holds the call again,
// suspended, and plays again from the frames that come (alertstore.go).

// liveStartWindow is how long after its start message a live call may
// still begin (waiting for a higher level to end); a call that could not
// begin by then is over.
const liveStartWindow = 5 * time.Second

func (a *Agent) acceptLive(env *protocol.Envelope, resent bool) error {
	if env.Type != protocol.TypeLive {
		return fmt.Errorf("%w: %s message on a live topic", protocol.ErrMalformed, env.Type)
	}
	now, forget := a.clock.Now(), a.forgetAt()
	entry, err := a.guard.Check(env, forget)
	if err != nil {
		return err
	}
	var l protocol.Live
	if err := env.Decode(&l); err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
	}
	if l.Kind != protocol.LiveAudio {
		// Starts and ends are remembered across a restart, frames (25 a
		// second, valid for seconds) only in memory.
		if err := a.store.AddReplay(entry, forget); err != nil {
			a.log.Error("agent: replay entry not stored", "err", err)
		}
	}
	j := a.lives[l.Call]
	if j != nil && l.Drill != j.drill {
		// A drill and a real call cannot be mixed up: every message says
		// which, and must say what the start said.
		return fmt.Errorf("%w: live %s message of call %s says drill=%t, its start said drill=%t", protocol.ErrMalformed, l.Kind, l.Call, l.Drill, j.drill)
	}
	switch l.Kind {
	case protocol.LiveStart:
		if j != nil {
			return nil // the same call through a parent area
		}
		if a.lives == nil {
			a.lives = map[string]*jitter{}
		}
		if p, seen := a.progress[l.Call]; resent && seen && p.Phase == PhaseDone {
			// Over here (ended, cut off, or closed by a restart) before
			// the controller heard so: it never begins again.
			a.log.Info("agent: live call's start sent again, but the call is over here", "call", l.Call, "drill", l.Drill)
			return nil
		}
		if at, ok := a.endsHeard[l.Call]; resent && ok && now.Sub(at) < protocol.LiveTTL {
			// Sent again as the call ended: its end came first.
			a.log.Info("agent: live call's start sent again after its end; not taken", "call", l.Call, "drill", l.Drill)
			return nil
		}
		if _, seen := a.progress[l.Call]; seen || slices.ContainsFunc(a.occurrences(), func(o protocol.Occurrence) bool { return o.ID == l.Call }) {
			return fmt.Errorf("%w: live call %s has the id of a known occurrence", protocol.ErrMalformed, l.Call)
		}
		j = newJitter(a.clock, LiveFrameTimeout)
		j.drill = l.Drill
		// Joining a call under way: its frames are numbered from its
		// start, long before this one.
		j.joining = resent
		a.lives[l.Call] = j
		a.alerts = append(a.alerts, protocol.Alert{Occurrence: protocol.Occurrence{
			ID: l.Call, Announcement: l.Call, Title: l.Title, Priority: l.Priority, Live: l.Call,
			Start: now, DurationMS: protocol.MaxLiveDuration.Milliseconds(), Expires: now.Add(liveStartWindow),
			OnPreempt: protocol.PreemptDrop, Volume: l.Volume, Drill: l.Drill,
		}})
		a.alertsChanged() // kept across a restart (alertstore.go)
		a.log.Warn("agent: live call", "call", l.Call, "priority", l.Priority, "drill", l.Drill, "volume", l.Volume, "joined", resent)
	case protocol.LiveAudio:
		if j == nil {
			a.log.Debug("agent: live frame of a call not held", "call", l.Call, "seq", l.Seq)
			return nil
		}
		return j.Push(l.Seq, l.Audio)
	case protocol.LiveEnd:
		switch {
		case j == nil:
			a.heardEnd(l.Call, now)
			return nil
		case l.Reason == protocol.LiveCut:
			j.Cut()
			a.log.Warn("agent: live call cut off at the controller", "call", l.Call, "drill", j.drill)
		default:
			j.End()
			a.log.Info("agent: live call ended by the speaker", "call", l.Call, "drill", j.drill)
		}
		a.closeLiveOffAir(l.Call, j)
	}
	return nil
}

// heardEnd notes the end of call id, which the node does not hold, at
// now, and forgets those heard longer ago than a message is valid.
func (a *Agent) heardEnd(id string, now time.Time) {
	if a.endsHeard == nil {
		a.endsHeard = map[string]time.Time{}
	}
	for c, at := range a.endsHeard {
		if now.Sub(at) >= protocol.LiveTTL {
			delete(a.endsHeard, c)
		}
	}
	a.endsHeard[id] = now
}

// closeLiveOffAir closes live call id, just ended, if it is not on the
// air and has nothing to play: it was cut, or the speaker ended it with
// no frame held. One whose play has not begun (it waits behind a higher
// level) ends missed, with reason cut or too-late: held, it began once the
// higher level was over, and played what came after its end (late or
// queued frames), a call over for seconds. One off the air because its
// frames stopped ends failed with reason stream: it would wait for frames
// that will not come, and so does one that holds only frames older than
// the frame timeout. One whose frames came before the speaker's end
// still plays them, as a short call does.
func (a *Agent) closeLiveOffAir(id string, j *jitter) {
	if a.play != nil && a.play.occ.ID == id {
		return
	}
	p, ok := a.progress[id]
	stalled := ok && waitsForFrames(p)
	if ok && p.Phase != PhaseReceived && !stalled {
		return // on the air, or over
	}
	c := j.Counts()
	// A stalled call does not begin again for frames older than the
	// frame timeout (liveFrames): they will not play.
	if !c.cut && c.buffered > 0 && (!stalled || j.Fresh()) {
		return
	}
	i := slices.IndexFunc(a.alerts, func(al protocol.Alert) bool { return al.Occurrence.ID == id })
	if i < 0 {
		return
	}
	if stalled {
		a.endAlert(i, protocol.ReasonStream, protocol.EventFailed)
		a.log.Warn("agent: live call ended while its frames had stopped here", "call", id, "drill", j.drill, "cut", c.cut)
		return
	}
	reason := protocol.ReasonTooLate
	if c.cut {
		reason = protocol.ReasonCut
	}
	a.endAlert(i, reason, protocol.EventMissed)
	a.log.Warn("agent: live call over before it began here; it will not play", "call", id, "drill", j.drill, "reason", reason)
}

// liveFrames reports whether live call id's buffer holds frames to play
// (Situation.LiveFrames): frames that came within the frame timeout. Older
// ones (the link dropped while it held fewer than its depth) would time
// out again at once: the call was begun again and suspended again,
// hundreds of times a second, until frames came.
func (a *Agent) liveFrames(id string) bool {
	j := a.lives[id]
	return j != nil && j.Fresh()
}

// openLive makes the stream of a live occurrence: its jitter buffer.
func (a *Agent) openLive(p *play) error {
	j := a.lives[p.occ.Live]
	if j == nil {
		return fmt.Errorf("live call %s is not held", p.occ.Live)
	}
	if j.Rejoin() {
		a.log.Info("agent: live call's frames come again; it plays again from them", "call", p.occ.Live, "drill", j.drill)
	}
	p.length = protocol.MaxLiveDuration
	p.interrupt = j
	// At the call's volume if it gives one (a quiet drill), else the
	// node's own, or full for an emergency call: as for any play.
	p.gain = audio.NewGain(j, a.gain(p.occ))
	p.stream = &audio.Counter{R: p.gain}
	return nil
}

// countLive adds the frame counts of a live play to its final event e; a
// cut call that played to its (cut) end is reported with ReasonCut.
func (a *Agent) countLive(p *play, e *protocol.Event) {
	j := a.lives[p.occ.Live]
	if p.occ.Live == "" || j == nil {
		return
	}
	c := j.Counts()
	f := a.liveCounted(p.occ.Live)
	e.FramesPlayed, e.FramesLost, e.FramesLate = f.Played, f.Lost, f.Late
	if c.cut && e.Type == protocol.EventCompleted {
		e.Reason = protocol.ReasonCut
	}
	if e.Type == protocol.EventSuspended {
		// Off the air: its counts are stored with it, for a restart
		// before it plays again (the agent's stop is such a suspension).
		a.alertsChanged()
	}
}

// liveCounted returns live call id's frame counts: those from before a
// restart (HeldAlerts.LiveFrames) and its jitter buffer's.
func (a *Agent) liveCounted(id string) LiveFrames {
	f := a.liveBefore[id]
	if j := a.lives[id]; j != nil {
		c := j.Counts()
		f.Played += int64(c.played)
		f.Lost += int64(c.lost)
		f.Late += int64(c.late)
	}
	return f
}

// pruneLives forgets the jitter buffers of calls no longer held.
func (a *Agent) pruneLives() {
	for id, j := range a.lives {
		if !slices.ContainsFunc(a.alerts, func(al protocol.Alert) bool { return al.Occurrence.ID == id }) {
			lost, late := j.Stats()
			a.log.Info("agent: live call over", "call", id, "drill", j.drill, "frames_lost", lost, "frames_late", late)
			j.Close()
			delete(a.lives, id)
			delete(a.liveBefore, id)
		}
	}
}
