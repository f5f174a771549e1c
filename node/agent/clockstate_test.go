package agent_test

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestFirstMeasurementThatChangesNothingPublishesNoState: the agent's
// first measurement of the controller's time is signalled however little
// it moves the clock (what waited for it is judged then), and the content
// the desired state needs is told to the cache again on the corrected
// clock. That published a state saying what the one before it had said:
// one per node at every start, 10,000 at a fleet's. A state the
// measurement leaves unchanged is not published; the clock's fields ride
// on the next state, as a correction under a second does.
func TestFirstMeasurementThatChangesNothingPublishesNoState(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 12, 5, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // before the HTTP server closes, even if the test fails
	// The board's clock is the controller's: the measurement moves it by
	// nothing.
	ctl.Clock = func() time.Time { <-gate; return fc.Now() }
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc})
	waitConnected(t, n)

	ref := ctl.AddContent(time.Second)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, fc.Now().Add(time.Hour))}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1"})
	nodetest.Eventually(t, 10*time.Second, "a state of desired state 1 with its content", func() bool {
		st := ctl.Log("n1").States
		return len(st) > 0 && st[len(st)-1].DesiredVersion == 1 && len(st[len(st)-1].ContentMissing) == 0
	})
	before := len(ctl.Log("n1").States)

	open() // the measurement, held so far, is answered
	waitMeasured(t, n)
	quiet(t, 500*time.Millisecond, "a state that says what the one before it said was published", func() bool {
		st := ctl.Log("n1").States
		for i := before; i < len(st); i++ {
			if sameState(st[i-1], st[i]) {
				return true
			}
		}
		return false
	})
	// The measurement is in the next state.
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdStateNow})
	nodetest.Eventually(t, 5*time.Second, "the asked-for state with the measurement", func() bool {
		st := ctl.Log("n1").States
		return len(st) > before && st[len(st)-1].ClockUncertaintyUS > 0
	})
}

// sameState reports whether x and y say the same, but for the time they
// were built and the clock's and disk's readings, which change anyway.
func sameState(x, y protocol.State) bool {
	for _, s := range []*protocol.State{&x, &y} {
		s.At, s.UptimeS, s.ClockOffsetMS, s.ClockUncertaintyUS, s.DiskFreeBytes = time.Time{}, 0, 0, 0, nil
	}
	return reflect.DeepEqual(x, y)
}
