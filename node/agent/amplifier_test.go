package agent_test

import (
	"sync"
	"testing"
	"time"

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
