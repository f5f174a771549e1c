package agent_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/board"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// memPin is a GPIO line in memory: an output records its level; an input
// reads what read says, or the level.
type memPin struct {
	mu    sync.Mutex
	level bool
	read  func() bool
}

func (p *memPin) Out(high bool) error { p.mu.Lock(); p.level = high; p.mu.Unlock(); return nil }
func (p *memPin) In() error           { return nil }
func (p *memPin) Read() bool {
	if p.read != nil {
		return p.read()
	}
	return p.High()
}
func (p *memPin) High() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.level }

// TestRelayWithBrokenFeedbackIsSwitchedOff: a GPIO board (docs/fleet-health.md
// "Real boards: GPIO") whose relay works but whose feedback wire broke, so
// that it always reads "off". The play fails with reason amplifier, as
// documented; the relay line it drove on is driven off again once nothing
// plays and when the agent stops. It was left on (the agent counted the
// amplifier as off): powered day and night, draining the backup battery
// forty times faster in a power cut.
func TestRelayWithBrokenFeedbackIsSwitchedOff(t *testing.T) {
	relay := &memPin{}
	feedback := &memPin{read: func() bool { return false }}
	pins := map[string]*memPin{"GPIO17": relay, "GPIO27": feedback}
	f, err := board.ParseFile([]byte(`{"amplifier": {"line": "GPIO17"}, "amplifier_feedback": {"line": "GPIO27"}, "settle_ms": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := board.OpenGPIO(f, func(name string) (board.Pin, error) { return pins[name], nil })
	if err != nil {
		t.Fatal(err)
	}
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{hw: g})
	waitConnected(t, n)
	ref := ctl.AddContent(100 * time.Millisecond)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("amp", ref, time.Now().Add(time.Second))}, ref))
	waitEvents(t, ctl, "n1", []string{"received amp", "failed amp amplifier"})
	nodetest.Eventually(t, 5*time.Second, "relay line driven off after the failed play", func() bool { return !relay.High() })

	// Once more, and the agent stops before it would switch it off.
	ctl.PublishDesired(desired("n1", 2, []protocol.Occurrence{occurrence("amp2", ref, time.Now().Add(time.Second))}, ref))
	waitEvents(t, ctl, "n1", []string{"received amp", "failed amp amplifier", "received amp2", "failed amp2 amplifier"})
	n.stop(t)
	if relay.High() {
		t.Error("relay line left driven on after the agent stopped")
	}
}

// slowRelease is an amplifier relay on GPIO lines whose feedback contact
// follows the line, except that the first switch-off is read while the
// relay still releases (a dirty contact): that switch-off reports an
// error although the line is off.
type slowRelease struct {
	mu       sync.Mutex
	line, fb bool
	offs     int
	slow     bool
}

type slowLine struct{ r *slowRelease }
type slowFeedback struct{ r *slowRelease }

func (l slowLine) Out(high bool) error {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	l.r.line = high
	if !high {
		l.r.offs++
		if l.r.offs == 2 { // the first after OpenGPIO's own
			l.r.slow = true
			return nil
		}
	}
	l.r.fb = high
	return nil
}
func (slowLine) In() error    { return nil }
func (l slowLine) Read() bool { return l.r.driven() }

func (slowFeedback) Out(bool) error { return nil }
func (slowFeedback) In() error      { return nil }
func (f slowFeedback) Read() bool {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	v := f.r.fb
	if f.r.slow {
		f.r.slow, f.r.fb = false, f.r.line // released by the next read
	}
	return v
}

func (r *slowRelease) driven() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.line }

// TestAmplifierOnForThePlayAfterAFailedSwitchOff: a switch-off whose
// feedback was read too early reports an error, although the line is off.
// The next bulletin switches the amplifier on; the agent took it for on
// still, and the bulletin played, reported started, into an amplifier
// that was off.
func TestAmplifierOnForThePlayAfterAFailedSwitchOff(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 10, 22, 30, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	ctl.AutoAck.Store(false) // nothing but the agent's own decisions wakes it
	r := &slowRelease{}
	g, err := board.OpenGPIO(&board.File{Amplifier: board.Line{Name: "amp"}, Feedback: &board.Line{Name: "fb"}, SettleMS: 1}, func(name string) (board.Pin, error) {
		if name == "amp" {
			return slowLine{r}, nil
		}
		return slowFeedback{r}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc, hw: g})
	waitConnected(t, n)
	ref := ctl.AddContent(time.Second)
	first := fc.Now().Add(time.Minute)
	second := first.Add(10 * time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("morning-1", ref, first), occurrence("morning-2", ref, second)}, ref))
	waitEvents(t, ctl, "n1", []string{"received morning-1", "received morning-2"})
	nodetest.Eventually(t, 5*time.Second, "content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(first)
	runUntil(t, fc, 10*time.Second, "first bulletin over and the line off", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed morning-1") && !r.driven()
	})
	fc.Set(second)
	waitEvents(t, ctl, "n1", []string{"received morning-1", "received morning-2", "started morning-1", "completed morning-1", "started morning-2"})
	if !r.driven() {
		t.Errorf("the second bulletin plays with the amplifier line off; board %+v", g.Snapshot())
	}
}
