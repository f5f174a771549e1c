package agent_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// slowStore is a store whose Append can be held up, as the fsync of a
// board's SD card holds up the agent for tens of milliseconds.
type slowStore struct {
	agent.Store
	mu      sync.Mutex
	gate    chan struct{} // when set, Append waits for it to close
	waiting int           // Appends waiting at the gate
}

func (s *slowStore) Append(events []protocol.Event, marks []agent.Progress) ([]protocol.Event, error) {
	s.mu.Lock()
	gate := s.gate
	if gate != nil {
		s.waiting++
	}
	s.mu.Unlock()
	if gate != nil {
		<-gate
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}
	return s.Store.Append(events, marks)
}

func (s *slowStore) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *slowStore) release() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *slowStore) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// TestStartsOnTimeWhileTheStoreIsSlow: the amplifier is switched on a
// warm-up before the play is due and the content opened; at the due
// instant the audio begins even though the agent's loop is stuck writing
// to its store at that moment, and the started event, written afterwards,
// says it began on time.
func TestStartsOnTimeWhileTheStoreIsSlow(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 12, 5, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	st := &slowStore{Store: store.NewMemory()}
	n := startAgent(t, cred, options{clock: fc, store: st})
	waitConnected(t, n)

	ref := ctl.AddContent(time.Second)
	start := fc.Now().Add(time.Minute)
	o1 := occurrence("o1", ref, start)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{o1}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	fc.Set(start.Add(-agent.DefaultAmplifierWarmup))
	nodetest.Eventually(t, 5*time.Second, "amplifier not on a warm-up ahead", func() bool { return slices.Equal(n.board.Flips(), []bool{true}) })
	if n.out.Plays() != 0 {
		t.Fatal("audio began during the warm-up")
	}

	// The loop gets stuck writing the received event of a new occurrence.
	st.hold()
	o2 := occurrence("o2", ref, start.Add(time.Hour))
	ctl.PublishDesired(desired("n1", 2, []protocol.Occurrence{o1, o2}, ref))
	nodetest.Eventually(t, 5*time.Second, "agent not stuck in its store", func() bool { return st.held() == 1 })

	fc.Set(start)
	nodetest.Eventually(t, 5*time.Second, "audio did not begin while the store was slow", func() bool { return n.out.Plays() == 1 })
	if st.held() != 1 {
		t.Fatal("the store was not slow throughout")
	}
	st.release()
	runUntil(t, fc, 10*time.Second, "o1 completed", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 4 })
	events := waitEvents(t, ctl, "n1", []string{"received o1", "received o2", "started o1", "completed o1"})
	if e := events[2]; e.LateMS != 0 || !e.At.Equal(start) {
		t.Errorf("started at %v, %d ms late; want exactly %v", e.At, e.LateMS, start)
	}
	if events[3].PlayedMS != 1000 {
		t.Errorf("played %d ms, want 1000", events[3].PlayedMS)
	}
	runUntil(t, fc, 5*time.Second, "amplifier off after the play", func() bool { return slices.Equal(n.board.Flips(), []bool{true, false}) })
}

// TestPreparedThenRemoved: an occurrence removed while it is prepared (the
// amplifier warming up) does not play, and the amplifier goes off again.
func TestPreparedThenRemoved(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 12, 17, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{clock: fc})
	waitConnected(t, n)

	ref := ctl.AddContent(time.Second)
	start := fc.Now().Add(time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, start)}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start.Add(-100 * time.Millisecond))
	nodetest.Eventually(t, 5*time.Second, "amplifier not on a warm-up ahead", func() bool { return slices.Equal(n.board.Flips(), []bool{true}) })

	ctl.PublishDesired(desired("n1", 2, nil))
	nodetest.Eventually(t, 5*time.Second, "amplifier not off after the removal", func() bool { return slices.Equal(n.board.Flips(), []bool{true, false}) })
	fc.Set(start.Add(time.Minute))
	nodetest.Eventually(t, 5*time.Second, "desired state 2 not running", func() bool { return n.a.Status().DesiredVersion == 2 })
	if n.out.Plays() != 0 {
		t.Errorf("removed occurrence played")
	}
	if got := nodetest.Summary(ctl.Events("n1")); !slices.Equal(got, []string{"received o1"}) {
		t.Errorf("events %q, want only received o1", got)
	}
}

// TestCorrectedWhilePreparedPlaysTheCorrection: the officer replaces a
// wrong recording of an occurrence (same id, new content) while the node
// has it prepared, a warm-up before its start. The node played the
// prepared old recording. It must play the correction, from its start.
func TestCorrectedWhilePreparedPlaysTheCorrection(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 12, 17, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{clock: fc})
	waitConnected(t, n)

	wrong, right := ctl.AddContent(time.Second), ctl.AddContent(2*time.Second)
	start := fc.Now().Add(time.Minute)
	// The correction's content is on the node already: a later
	// occurrence plays it.
	later := occurrence("o2", right, start.Add(time.Hour))
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", wrong, start), later}, wrong, right))
	waitEvents(t, ctl, "n1", []string{"received o1", "received o2"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start.Add(-100 * time.Millisecond))
	nodetest.Eventually(t, 5*time.Second, "amplifier not on a warm-up ahead", func() bool { return slices.Equal(n.board.Flips(), []bool{true}) })

	fixed := occurrence("o1", right, start)
	ctl.PublishDesired(desired("n1", 2, []protocol.Occurrence{fixed, later}, wrong, right))
	nodetest.Eventually(t, 5*time.Second, "desired state 2 not running", func() bool { return n.a.Status().DesiredVersion == 2 })
	// The loop answers once it has looked at the correction (a step
	// follows every message), so the clock moves on only then.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.a.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	// The clock stands at the start until the play has begun: on time,
	// it begins there, not late.
	fc.Set(start)
	nodetest.Eventually(t, 5*time.Second, "o1 not started at its start", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started o1")
	})
	runUntil(t, fc, 10*time.Second, "o1 completed", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 4 })
	events := waitEvents(t, ctl, "n1", []string{"received o1", "received o2", "started o1", "completed o1"})
	if n.out.Plays() != 1 {
		t.Errorf("%d plays, want 1", n.out.Plays())
	}
	for _, e := range events[2:] {
		if e.Content != right.ID {
			t.Errorf("%s event of content %s, want the correction %s (not the wrong recording %s)", e.Type, e.Content, right.ID, wrong.ID)
		}
	}
	if e := events[2]; e.LateMS != 0 {
		t.Errorf("started at %v, %d ms late; want at %v", e.At, e.LateMS, start)
	}
	if e := events[3]; e.PlayedMS != 2000 {
		t.Errorf("played %d ms, want the correction's 2000 (the wrong recording is 1000)", e.PlayedMS)
	}
}

// TestClockCorrectedWhilePrepared: a play is prepared for its start when
// the agent learns that its clock is a second slow; the play begins at
// once, on the corrected time, and says how late that is.
func TestClockCorrectedWhilePrepared(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 13, 5, 0, 0, 0, time.UTC))
	var ahead atomic.Int64 // how far the controller's clock is ahead of the board's
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.Clock = func() time.Time { return fc.Now().Add(time.Duration(ahead.Load())) }
	ctl.Signer = protocol.NewSigner("controller", ctl.Key, 0, fc.Now)
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{clock: fc, timeSync: 10 * time.Millisecond})
	waitConnected(t, n)

	ref := ctl.AddContent(time.Second)
	start := fc.Now().Add(time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, start)}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start.Add(-410 * time.Millisecond))
	nodetest.Eventually(t, 5*time.Second, "not prepared", func() bool { return slices.Equal(n.board.Flips(), []bool{true}) })
	// The agent measures every 10 ms of its board's clock: the measurement
	// the step above was due for is in once the next waits 10 ms ahead.
	nodetest.Eventually(t, 5*time.Second, "the clock measured again", func() bool {
		next, ok := fc.Next()
		return ok && next.Equal(fc.Now().Add(10*time.Millisecond))
	})

	ahead.Store(int64(time.Second))
	fc.Advance(10 * time.Millisecond) // the next measurement: 400 ms before the start, a second slow
	nodetest.Eventually(t, 5*time.Second, "did not begin on the corrected clock", func() bool { return n.out.Plays() == 1 })
	events := waitEvents(t, ctl, "n1", []string{"received o1", "started o1"})
	if e := events[1]; e.LateMS != 600 || !e.At.Equal(start.Add(600*time.Millisecond)) {
		t.Errorf("started at %v, %d ms late; want 600 ms late on the corrected clock", e.At, e.LateMS)
	}
}
