package agent

import (
	"context"
	"fmt"
	"runtime"

	"time"

	"loaxa.vn/protocol"
)

// Arch is the board architecture an update archive must be built for.
var Arch = runtime.GOARCH

// requestUpdate hands a release the controller signed in env to the
// process (Config.Updates), which fetches, installs and tries it while the
// controller keeps asking for it. It runs in the main loop.
func (a *Agent) requestUpdate(u *protocol.Update, env *protocol.Envelope) {
	fail := func(reason string) {
		a.log.Warn("agent: update refused", "reason", reason)
		v := ""
		if u != nil {
			v = u.Version
		}
		a.note([]protocol.Event{{Type: protocol.EventUpdateFailed, At: a.clock.Now().UTC(), Version: v, Reason: reason}})
		a.flush()
	}
	switch {
	case u == nil:
		fail("update command without a release")
		return
	case u.Validate() != nil:
		fail(u.Validate().Error())
		return
	case u.Version == a.cfg.Version:
		a.log.Debug("agent: update to the running version ignored", "version", u.Version)
		return
	case a.cfg.Updates == nil:
		why := a.cfg.NoUpdates
		if why == "" {
			why = "this agent does not update itself (not started by its service)"
		}
		fail(why)
		return
	case u.For(Arch) == nil:
		fail(fmt.Sprintf("release %s has no archive for %s", u.Version, Arch))
		return
	}
	a.cfg.Updates.Ask(*u, env.IssuedAt(), env.ExpiresAt(), a.clock.Now())
	a.log.Info("agent: update requested", "version", u.Version)
}

// Lend is the content cache's (content.Cache.Lend): a download of the
// node's that no play needs, a release of the agent, makes way for the
// content plays need, an alert's message above all.
func (a *Agent) Lend(ctx context.Context, what string) (context.Context, func()) {
	return a.cache.Lend(ctx, what)
}

// AwaitWay is the content cache's (content.Cache.AwaitWay): it waits
// until no content a play needs is to be fetched.
func (a *Agent) AwaitWay(ctx context.Context) error { return a.cache.AwaitWay(ctx) }

// do runs f in the main loop, where the schedule and the play live.
func (a *Agent) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case a.inLoop <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Idle reports whether nothing plays or is prepared, no occurrence is
// due within the next window and no alert is kept aside for the clock's
// measurement (alertstore.go): the time to restart into an update without
// cutting a broadcast or putting off a warning.
func (a *Agent) Idle(ctx context.Context, window time.Duration) (bool, error) {
	var idle bool
	err := a.do(ctx, func() { idle = a.idle(window) })
	return idle, err
}

func (a *Agent) idle(window time.Duration) bool {
	if a.play != nil || a.cue != nil || a.test != nil {
		return false
	}
	if len(a.aside) > 0 {
		// When it is due is not known until the clock is measured, and a
		// restart would begin the wait for the measurement again.
		return false
	}
	// The alerts held too, not only the desired state: an emergency due
	// within the window would be cut by the restart into the update (and
	// the trial child that played it stopped).
	now, grace := a.clock.Now(), a.lateGrace()
	for _, o := range a.occurrences() {
		if p, ok := a.progress[o.ID]; ok && p.Phase == PhaseDone {
			continue
		}
		if o.Start.Before(now.Add(window)) && !now.After(o.Deadline(grace)) {
			return false
		}
	}
	return true
}

// Report records an event the process observed (an update that could not
// be fetched), in order with the agent's own.
func (a *Agent) Report(ctx context.Context, ev protocol.Event) error {
	return a.do(ctx, func() {
		if ev.At.IsZero() {
			ev.At = a.clock.Now().UTC()
		}
		a.note([]protocol.Event{ev})
		a.flush()
	})
}
