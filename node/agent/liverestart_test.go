package agent_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// crashStore is a store whose board loses power at crash: nothing written
// after it is kept, as the store of an agent killed (a crash, a watchdog's
// kill, a power blip) has only what it had written by then.
type crashStore struct {
	agent.Store
	crashed atomic.Bool
}

var _ agent.Store = (*crashStore)(nil)

func (s *crashStore) crash() { s.crashed.Store(true) }

func (s *crashStore) SetHeldAlerts(h agent.HeldAlerts) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.SetHeldAlerts(h)
}

func (s *crashStore) SetDesired(d *protocol.DesiredState) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.SetDesired(d)
}

func (s *crashStore) Append(events []protocol.Event, marks []agent.Progress) ([]protocol.Event, error) {
	if s.crashed.Load() {
		return events, nil
	}
	return s.Store.Append(events, marks)
}

func (s *crashStore) PruneProgress(keep map[string]bool, before time.Time) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.PruneProgress(keep, before)
}

func (s *crashStore) Ack(epoch string, seq uint64) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.Ack(epoch, seq)
}

func (s *crashStore) AddReplay(e protocol.ReplayEntry, now time.Time) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.AddReplay(e, now)
}

func (s *crashStore) SetKeys(keys []protocol.PublicKey) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.SetKeys(keys)
}

func (s *crashStore) SetClockFloor(t time.Time) error {
	if s.crashed.Load() {
		return nil
	}
	return s.Store.SetClockFloor(t)
}

// restartMidCall runs node n1 (areas x1 and d1) on a fake clock and a
// store that outlives it, begins live call call there with ten frames,
// then restarts the agent on the same store: stopped as its service
// manager stops it, or killed (crashed: nothing written after that
// instant is kept). The board is back 5 s later, past the call's start
// window and its frame timeout, while the officer still speaks.
func restartMidCall(t *testing.T, call string, crashed bool) (*clock.Fake, *nodetest.Controller, *node) {
	t.Helper()
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	mem, dir := store.NewMemory(), t.TempDir()
	st := &crashStore{Store: mem}
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n)
	sendLive(t, ctl, "x1", protocol.Live{Call: call, Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Phòng chống bão"})
	waitEvents(t, ctl, "n1", []string{"received " + call, "started " + call})
	sendNarrowFrames(t, ctl, n, "x1", call, 0, 10)
	if crashed {
		st.crash()
	}
	n.stop(t)
	fc.Advance(5 * time.Second)
	n2 := startAgent(t, cred, options{clock: fc, store: mem, dir: dir})
	waitConnected(t, n2)
	return fc, ctl, n2
}

// TestLiveCallRejoinedAfterTheAgentRestarts: a board's agent restarted in
// the middle of an officer's typhoon call (a watchdog restart, a crash, a
// power blip): the node reported the call failed (interrupted) and, back,
// ignored its frames and the start the controller sent it again (the call
// "over here"), so that pole stayed silent for the rest of the call. A
// call the agent held when it stopped must be held again after the
// restart, off the air (suspended), and play again, amplifier on, from the
// frames that come, to the call's end.
func TestLiveCallRejoinedAfterTheAgentRestarts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		crashed bool
	}{
		{"stopped", false},
		{"crashed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, ctl, n := restartMidCall(t, "live-b1", tc.crashed)
			// The controller sends the start again to a node back online:
			// the node holds the call already.
			sendNodeLive(t, ctl, "n1", protocol.Live{Call: "live-b1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Phòng chống bão"})
			sendNarrowFrames(t, ctl, n, "x1", "live-b1", 400, 410)
			runUntil(t, fc, 5*time.Second, "the call on the air again after the restart", func() bool {
				p := n.a.Status().Playing
				return p != nil && p.Occurrence == "live-b1"
			})
			if !n.board.Snapshot().Amplifier {
				t.Error("the call plays again after the restart with its amplifier off")
			}
			sendLiveTaken(t, ctl, n, "x1", protocol.Live{Call: "live-b1", Kind: protocol.LiveEnd})
			runUntil(t, fc, 5*time.Second, "the call played to its end", func() bool { return n.a.Status().Playing == nil })
			events := waitEvents(t, ctl, "n1", []string{"received live-b1", "started live-b1", "suspended live-b1 " + protocol.ReasonInterrupted,
				"started live-b1", "completed live-b1"})
			// The 10 sent after the restart, and those the stopping agent
			// counted (TestLiveFramesCountedAcrossARestart); a crashed one
			// stored none.
			want := int64(10)
			if !tc.crashed {
				want += events[2].FramesPlayed
			}
			if done := events[4]; done.FramesPlayed != want || done.FramesLost != 0 {
				t.Errorf("the call completed with %d frames played, %d lost; want %d, none lost", done.FramesPlayed, done.FramesLost, want)
			}
		})
	}
}

// TestLiveFramesCountedAcrossARestart: the final event of a call counted
// only the frames since the agent's last start, so a board restarted
// mid-call reported a fraction of what it had played. The stopping agent
// stores the call's counts with the call, and the new one goes on from
// them.
func TestLiveFramesCountedAcrossARestart(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	mem, dir := store.NewMemory(), t.TempDir()
	n := startAgent(t, cred, options{clock: fc, store: mem, dir: dir})
	waitConnected(t, n)
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-c1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Phòng chống bão"})
	waitEvents(t, ctl, "n1", []string{"received live-c1", "started live-c1"})
	sendNarrowFrames(t, ctl, n, "x1", "live-c1", 0, 50)
	played := fc.Now().Add(500 * time.Millisecond) // some of the second of frames, not all
	runUntil(t, fc, 5*time.Second, "frames played", func() bool { return fc.Now().After(played) })
	n.stop(t)
	fc.Advance(5 * time.Second)
	n = startAgent(t, cred, options{clock: fc, store: mem, dir: dir})
	waitConnected(t, n)
	sendNarrowFrames(t, ctl, n, "x1", "live-c1", 400, 410)
	runUntil(t, fc, 5*time.Second, "the call on the air again after the restart", func() bool {
		p := n.a.Status().Playing
		return p != nil && p.Occurrence == "live-c1"
	})
	sendLiveTaken(t, ctl, n, "x1", protocol.Live{Call: "live-c1", Kind: protocol.LiveEnd})
	runUntil(t, fc, 5*time.Second, "the call played to its end", func() bool { return n.a.Status().Playing == nil })
	events := waitEvents(t, ctl, "n1", []string{"received live-c1", "started live-c1", "suspended live-c1 " + protocol.ReasonInterrupted,
		"started live-c1", "completed live-c1"})
	before, done := events[2], events[4]
	if before.FramesPlayed == 0 || before.FramesPlayed >= 50 {
		t.Fatalf("%d frames played before the stop; the test wants some of the 50 sent", before.FramesPlayed)
	}
	if done.FramesPlayed != before.FramesPlayed+10 || done.FramesLost != before.FramesLost || done.FramesLate != before.FramesLate {
		t.Errorf("the call completed with %d frames played, %d lost, %d late; want the %d played before the restart and the 10 after, %d lost, %d late",
			done.FramesPlayed, done.FramesLost, done.FramesLate, before.FramesPlayed, before.FramesLost, before.FramesLate)
	}
}

// TestLiveCallOverWhileTheAgentRestartedNeverPlays: the call ended while
// the board restarted; the node, holding it again, waits for frames that
// do not come. The end the controller sends it again ends it (failed,
// stream: the node lost the call before its end), and frames that come
// after (late copies) never begin it again.
func TestLiveCallOverWhileTheAgentRestartedNeverPlays(t *testing.T) {
	fc, ctl, n := restartMidCall(t, "live-b2", true)
	sendNodeLive(t, ctl, "n1", protocol.Live{Call: "live-b2", Kind: protocol.LiveEnd})
	nodetest.Eventually(t, 10*time.Second, "the call not ended", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "failed live-b2 "+protocol.ReasonStream)
	})
	sendNarrowFrames(t, ctl, n, "x1", "live-b2", 400, 410)
	played := fc.Now().Add(5 * time.Second)
	runUntil(t, fc, 10*time.Second, "time for the frames to play", func() bool { return fc.Now().After(played) })
	call := callEvents(ctl, "live-b2")
	if want := []string{"received live-b2", "started live-b2", "suspended live-b2 " + protocol.ReasonInterrupted, "failed live-b2 " + protocol.ReasonStream}; !slices.Equal(call, want) {
		t.Errorf("events of the call: %q; want %q and no more", call, want)
	}
}
