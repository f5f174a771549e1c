package agent

import (
	"time"
)

// The clock floor. A board without an RTC battery starts after a power
// cut with its clock far behind (its build date, 1970, or fake-hwclock's
// time of its last shutdown), and until the controller answers its first
// time request it judges signed messages on that clock: a message
// recorded long ago, valid around the board's wrong time, would be taken
// as new (a replayed alert sounding again). So the node keeps the latest
// time it has proof the controller's clock reached — its measured clock
// (a time the controller signed for the node's own nonce, timesync.go),
// or the issue time of a signed message it accepted — carried forward by
// how long its own clock has run since, and stores it (Store.ClockFloor)
// after every measurement or attempt, when an accepted message raises it
// by floorStep, and when the agent stops.
//
// At start-up a board clock behind the stored floor is moved up to it
// until the first measurement, so a message that expired before it is
// refused as expired, and held alerts are judged on it. A clock ahead of
// the floor is kept (nothing proves it wrong), and a board that never
// proved a time (a new store) starts on its own clock, as before.

// floorStep is how far accepted messages must raise the floor before it is
// stored again, so that a stream of commands (the acknowledgements of
// events) does not add a write to each.
const floorStep = time.Minute

// provenTime is a time the controller's clock is known to have reached,
// and the base clock's reading then.
type provenTime struct{ at, base time.Time }

// now is p carried forward to the base clock's reading base: the
// controller's clock has run at least as long since.
func (p provenTime) now(base time.Time) time.Time {
	if p.at.IsZero() {
		return time.Time{}
	}
	return p.at.Add(max(base.Sub(p.base), 0))
}

// floor returns the proven time now, zero if the node has none.
func (a *Agent) floor() time.Time {
	a.provenMu.Lock()
	defer a.provenMu.Unlock()
	return a.proven.now(a.clock.Base.Now())
}

// proved raises the floor to t, a time the controller signed.
func (a *Agent) proved(t time.Time) {
	a.provenMu.Lock()
	defer a.provenMu.Unlock()
	base := a.clock.Base.Now()
	if t.After(a.proven.now(base)) {
		a.proven = provenTime{at: t, base: base}
	}
}

// measuredFloor sets the floor to the measured clock less its
// uncertainty, even below a floor held before: the controller's own time
// is what counts (its clock may have been stepped back since).
func (a *Agent) measuredFloor(e *offsetEstimate) {
	a.provenMu.Lock()
	defer a.provenMu.Unlock()
	base := a.clock.Base.Now()
	a.proven = provenTime{at: base.Add(a.clock.Get() - e.uncertainty(base)), base: base}
}

// loadFloor reads the stored floor at start-up and moves a board clock
// behind it up to it. A floor that cannot be read leaves the board on its
// own clock, as a new board: a node that does not start plays nothing.
func (a *Agent) loadFloor() {
	floor, err := a.store.ClockFloor()
	if err != nil {
		a.log.Error("agent: clock floor not read; judging messages on the board's clock until the controller's time is measured", "err", err)
		return
	}
	if floor.IsZero() {
		return
	}
	base := a.clock.Base.Now()
	a.proven = provenTime{at: floor, base: base}
	a.floorStored = floor
	if !base.Before(floor) {
		return
	}
	a.floored = floor
	a.clock.Set(floor.Sub(base))
	a.log.Warn("agent: the board's clock is behind the last time the controller proved; running from that time until the controller's time is measured",
		"board_clock", base, "floor", floor, "behind", floor.Sub(base).Round(time.Second))
}

// saveFloor stores the floor if it moved by step or more since it was
// stored (by anything, for step 0). Main loop only.
func (a *Agent) saveFloor(step time.Duration) {
	f := a.floor()
	if f.IsZero() || f.Equal(a.floorStored) || f.Sub(a.floorStored).Abs() < step {
		return
	}
	if err := a.store.SetClockFloor(f); err != nil {
		a.log.Error("agent: clock floor not stored; a restart with the clock behind judges messages on an older one", "err", err)
		return
	}
	a.floorStored = f
}
