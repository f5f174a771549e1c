package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// TestOldAlertRefusedOnABoardClockBehindItsFloor: a board without an RTC
// battery comes back from a power cut with its clock at its build date, a
// month behind, and the controller has not answered its time request yet.
// Someone on the network replays an emergency alert recorded a month ago:
// on the board's clock it had just been issued, and the board sounded it.
// The node had proved the controller's time before the cut; the alert
// expired a month before that, so it must be refused and never play. A
// board whose clock is ahead of that proven time keeps its own clock
// until it is measured, as before.
func TestOldAlertRefusedOnABoardClockBehindItsFloor(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // before the HTTP server closes, even if the test fails
	var unanswered atomic.Bool
	ctl.Clock = func() time.Time {
		if unanswered.Load() {
			<-gate
		}
		return fc.Now()
	}
	cred := ctl.Credentials("n1", "x1", "d1")
	st := store.NewMemory()

	// In service: the board measures the controller's time.
	n := startAgent(t, cred, options{clock: fc, store: st})
	waitConnected(t, n)
	// The floor stored, not only the measurement seen: the state shows
	// the measurement before the floor is taken from it, and an agent
	// stopped in between (a loaded machine, once in a full run) stored
	// none, and started again on its board's clock.
	nodetest.Eventually(t, 10*time.Second, "clock floor not stored after the measurement", func() bool {
		f, err := st.ClockFloor()
		return err == nil && !f.IsZero()
	})
	proven := fc.Now()
	n.stop(t)

	// The power was off an hour; the board starts at its build date, and
	// its time request is not answered.
	fc.Advance(time.Hour)
	unanswered.Store(true)
	board := clock.NewOffset(fc)
	board.Set(-30 * 24 * time.Hour)
	n = startAgent(t, cred, options{clock: board, store: st})
	waitConnected(t, n)
	if now := n.a.Clock().Now(); now.Before(proven) {
		t.Errorf("before its first measurement the node's clock reads %v, before the time it proved (%v)", now, proven)
	}

	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	recorded := board.Now() // a month ago
	old := protocol.NewSigner("controller", ctl.Key, 0, func() time.Time { return recorded })
	raw, err := old.Seal(protocol.TypeCommand, "area/d1",
		alert("old@x", msg, opening, closing, recorded.Add(time.Second), recorded.Add(time.Hour)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(ctl.Topics.Area("d1", protocol.ChanCmd), false, raw)
	received := func() bool { return slices.Contains(nodetest.Summary(ctl.Events("n1")), "received old@x") }
	nodetest.Eventually(t, 10*time.Second, "the replayed alert not handled", func() bool {
		return n.a.Status().Rejected > 0 || received()
	})
	if received() || n.a.Status().Rejected != 1 {
		t.Fatalf("an alert that expired a month before the node's proven time: events %q, rejected %d; want it refused",
			nodetest.Summary(ctl.Events("n1")), n.a.Status().Rejected)
	}
	n.stop(t)

	// A board whose clock is two hours ahead keeps it until measured.
	board.Set(2 * time.Hour)
	n = startAgent(t, cred, options{clock: board, store: st})
	waitConnected(t, n)
	if got := n.a.Clock().Get(); got != 0 {
		t.Errorf("a board ahead of its proven time had its clock moved by %v before any measurement; want it kept", got)
	}
}

// TestClockFloorStoredOnceMeasured: a power cut leaves no clean stop to
// store the floor at, so the node stores it as soon as it has measured
// the controller's time: the controller's, not the board's (an hour
// behind here).
func TestClockFloorStoredOnceMeasured(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	st := store.NewMemory()
	board := clock.NewOffset(fc)
	board.Set(-time.Hour)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: board, store: st})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "no clock floor stored after the first measurement", func() bool {
		f, err := st.ClockFloor()
		return err == nil && !f.IsZero()
	})
	if f, _ := st.ClockFloor(); !f.Equal(fc.Now()) {
		t.Errorf("clock floor %v stored, want the controller's time %v", f, fc.Now())
	}
}

// TestDamagedClockFloorLeavesTheClock: one bit flipped on the SD card
// turns the stored clock floor's year 2025 into 3025, still a valid time.
// The board restarted mid-alert with its clock right, and the controller
// does not answer its time request yet: the agent moved its clock a
// thousand years ahead to that floor, dropped the alert as expired (it
// would have marked every bulletin of the day missed too) and refused
// every message. A floor that does not match what was stored must be
// ignored, as one that cannot be read: the board keeps its own clock and
// plays the alert again.
func TestDamagedClockFloorLeavesTheClock(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl, _ := timeUnansweredController(t, fc) // never answered here
	a := storedAlert{id: "f@x", message: time.Second, began: -3 * time.Second, expires: time.Hour}
	cmd, start := a.command(ctl, fc), fc.Now().Add(a.began)

	path := filepath.Join(t.TempDir(), "node.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	cutOff(t, st, cmd, start)
	floor := fc.Now().Add(-time.Minute)
	if err := st.SetClockFloor(floor); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := floor.MarshalText()
	flipped := bytes.Clone(text)
	flipped[0] ^= 1 // '2' becomes '3'
	if !bytes.Contains(raw, text) {
		t.Fatalf("the store file does not hold the floor as %q", text)
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(raw, text, flipped), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the agent stops

	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc, store: st})
	waitConnected(t, n)
	if got := n.a.Clock().Get(); got != 0 {
		t.Errorf("the board's clock was moved by %v to a damaged floor (%s); want it left", got, flipped)
	}
	nodetest.Eventually(t, 5*time.Second, "alert content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	want := []string{"received f@x", "started f@x", "suspended f@x interrupted", "started f@x", "completed f@x"}
	runUntil(t, fc, time.Minute, "the alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	waitEvents(t, ctl, "n1", want)
}
