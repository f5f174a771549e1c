package agent_test

import (
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// spreadAlert is alert() with a report window.
func spreadAlert(id string, ref, opening, closing protocol.ContentRef, start, expires time.Time, window time.Duration) protocol.Command {
	cmd := alert(id, ref, opening, closing, start, expires)
	cmd.Alert.ReportWindowMS = window.Milliseconds()
	return cmd
}

// halfWindow makes the agent's report delay half the window, and waits
// for acknowledgements for good (spreadAckTimeout).
func halfWindow(c *agent.Config) {
	c.ReportDelay = func(w time.Duration) time.Duration { return w / 2 }
	c.AckTimeout = spreadAckTimeout
}

// spreadAckTimeout is the agent's wait for an acknowledgement in these
// tests, on its fake clock. An acknowledgement is a real MQTT round trip,
// and the tests step the clock past the usual 500 ms in a few real
// milliseconds: an acknowledgement a little late then had the events sent
// again, taking held reports along before their time, and counted as
// batches and events received twice. What is counted here is the spread.
const spreadAckTimeout = time.Hour

// spreadCase is one agent whose report delay is half the window, on a fake
// clock, with an alert's message and chimes on its test controller.
type spreadCase struct {
	fc                    *clock.Fake
	ctl                   *nodetest.Controller
	cred                  *protocol.Credentials
	n                     *node
	msg, opening, closing protocol.ContentRef
}

// newSpreadCase starts it; o's clock and tune are set here.
func newSpreadCase(t *testing.T, o options) *spreadCase {
	t.Helper()
	c := &spreadCase{fc: clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))}
	c.ctl = fakeClockController(t, c.fc)
	c.cred = c.ctl.Credentials("n1", "x1", "d1")
	o.clock, o.tune = c.fc, halfWindow
	c.n = startAgent(t, c.cred, o)
	waitConnected(t, c.n)
	// The reports are held on the corrected clock: measured while a test
	// steps the clock on, a slow answer (300 ms on a loaded machine) took
	// a second of fake time, and the half of it taken for the offset put
	// the node's clock ahead and its held reports out before their time.
	waitMeasured(t, c.n)
	c.msg = c.ctl.AddContent(time.Second)
	c.opening = c.ctl.AddContent(700 * time.Millisecond)
	c.closing = c.ctl.AddContent(600 * time.Millisecond)
	return c
}

// alert sends alert id to the node's district with a window of twice
// delay.
func (c *spreadCase) alert(id string, start time.Time, delay time.Duration) {
	c.ctl.SendAreaCommand("d1", spreadAlert(id, c.msg, c.opening, c.closing, start, start.Add(10*time.Minute), 2*delay), 10*time.Minute)
}

// received waits until the node has the alert and its content.
func (c *spreadCase) received(t *testing.T) {
	t.Helper()
	nodetest.Eventually(t, 5*time.Second, "alert not received and its content not fetched", func() bool {
		st := c.n.a.Status()
		return st.Outbox >= 2 && len(st.ContentMissing) == 0 // received, content-ready
	})
}

// beginAt brings n's clock to an alert's start and holds it there until
// the alert plays. The play reads the clock when it begins: moved on in
// runUntil's steps, the clock could pass the start before the play's
// goroutine ran (CI, with the race detector, once) and the alert began a
// step late, 100 ms into its chime; held, it begins at its start however
// long the goroutine waits.
func beginAt(t *testing.T, fc *clock.Fake, n *node, start time.Time) {
	t.Helper()
	runUntil(t, fc, time.Minute, "a second before the start", func() bool { return !fc.Now().Before(start.Add(-time.Second)) })
	fc.Set(start)
	nodetest.Eventually(t, 5*time.Second, "alert not playing at its start", func() bool { return n.a.Status().Playing != nil })
}

// quiet fails if cond holds at any time within d (real time): for what
// must not happen, such as a held report reaching the controller.
func quiet(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reportedAt checks that the controller comes to hold n events
// (content-ready left out) when the fake clock reaches due, and not
// before (reportedWhen).
func reportedAt(t *testing.T, fc *clock.Fake, ctl *nodetest.Controller, what string, n int, due time.Time) {
	t.Helper()
	reportedWhen(t, fc, what, func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= n }, due)
}

// reportedWhen checks that have comes to hold when the fake clock reaches
// due, and not before: it moves fc to just before due, sees that have
// does not hold, then moves it on in small steps, giving the agent time
// at each, until it does. The agent's timer may be armed a step late on a
// busy machine, so "when" is within two seconds of fake time.
func reportedWhen(t *testing.T, fc *clock.Fake, what string, have func() bool, due time.Time) {
	t.Helper()
	runUntil(t, fc, time.Minute, "the time before "+what, func() bool { return !fc.Now().Before(due.Add(-100 * time.Millisecond)) })
	quiet(t, 200*time.Millisecond, what+" reported before its time plus the delay", have)
	for !have() {
		if fc.Now().After(due.Add(2 * time.Second)) {
			t.Fatalf("%s not reported 2 s (fake time) after its time plus the delay", what)
		}
		fc.Advance(20 * time.Millisecond)
		for end := time.Now().Add(40 * time.Millisecond); !have() && time.Now().Before(end); {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// TestAlertReportsSpread: an alert with a report window plays at its
// start instant as always, but each of its reports reaches the controller
// only the node's delay after the report's own time, which the event
// keeps, or after the start for a report made before it: the receipt
// waits for the start and goes with the started event, in one batch (none
// of an area's reports meet the alert's fan-out), the completed one its
// delay after the end.
func TestAlertReportsSpread(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	t0 := fc.Now()
	start := t0.Add(6 * time.Second)
	const delay = 4 * time.Second // half of the window
	c.alert("e1@x", start, delay)
	c.received(t)
	quiet(t, 300*time.Millisecond, "the receipt was reported before the delay", func() bool { return len(ctl.Events("n1")) > 0 })

	// Its own time plus the delay passes before the start: still held.
	runUntil(t, fc, time.Minute, "the receipt's time plus the delay", func() bool { return !fc.Now().Before(t0.Add(delay + 100*time.Millisecond)) })
	quiet(t, 200*time.Millisecond, "the receipt was reported before the start", func() bool { return len(ctl.Events("n1")) > 0 })
	beginAt(t, fc, c.n, start)
	reportedAt(t, fc, ctl, "received and started", 2, start.Add(delay))
	if b := ctl.Log("n1").Batches; b != 1 {
		t.Errorf("received and started came in %d batches, want 1", b)
	}
	// 0.7 + 3 × 1 + 2 × 0.5 + 0.6 s of play.
	reportedAt(t, fc, ctl, "completed", 3, start.Add(5300*time.Millisecond+delay))
	events := waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "completed e1@x"})
	if e := events[0]; !e.At.Equal(t0) {
		t.Errorf("received at %v, want %v: events keep their true time", e.At, t0)
	}
	if e := events[1]; e.LateMS != 0 || !e.At.Equal(start) {
		t.Errorf("alert started at %v (%d ms late), want %v: playing does not wait", e.At, e.LateMS, start)
	}
	if e := events[2]; e.PlayedMS != 5300 {
		t.Errorf("alert played %d ms, want 5300", e.PlayedMS)
	}
	if b := ctl.Log("n1").Batches; b != 2 {
		t.Errorf("%d event batches, want 2: the receipt with the start, the end", b)
	}
}

// TestLateAlertReportsWithinItsWindow: a node that has an alert 6 s after
// its start, with an 8 s window, spreads its reports over the 2 s left of
// the window (its delay is half: 1 s), not over a whole window from its
// receipt; one that has an alert after its window reports at once.
func TestLateAlertReportsWithinItsWindow(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	t0 := fc.Now()
	c.alert("e1@x", t0.Add(-6*time.Second), 4*time.Second) // window 8 s
	c.received(t)
	reportedAt(t, fc, ctl, "received", 1, t0.Add(time.Second))

	runUntil(t, fc, time.Minute, "the first alert done", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 3 })
	t1 := fc.Now()
	c.alert("e2@x", t1.Add(-9*time.Second), 4*time.Second)
	nodetest.Eventually(t, 5*time.Second, "the second alert reported at once", func() bool {
		return len(nodetest.Summary(ctl.Events("n1"))) >= 4
	})
	events := waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "completed e1@x", "received e2@x", "started e2@x"})
	if e := events[3]; !e.At.Equal(t1) {
		t.Errorf("the second alert received at %v, want %v", e.At, t1)
	}
}

// TestCancelBeforeStartNotHeldToStart: an alert cancelled before its start
// ends the hold from the start: its reports, the receipt and the cancel's
// failed event, reach the controller the delay after their own time, as
// the controller's resend of the cancel (2 s plus the window after it)
// waits for, not the delay after a start that will not come.
func TestCancelBeforeStartNotHeldToStart(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	t0 := fc.Now()
	start := t0.Add(30 * time.Second)
	const delay = 4 * time.Second
	c.alert("e4@x", start, delay)
	c.received(t)
	ctl.SendAreaCommand("d1", protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: "e4@x"}, 10*time.Minute)
	nodetest.Eventually(t, 5*time.Second, "cancel not taken", func() bool { return c.n.a.Status().Outbox >= 3 })
	reportedAt(t, fc, ctl, "received and failed", 2, t0.Add(delay))
	waitEvents(t, ctl, "n1", []string{"received e4@x", "failed e4@x cancelled"})
}

// TestResendReleasesHeldReports: the controller sends an alert again to
// a node whose receipt it has not heard of. The node plays nothing twice,
// but its held reports go at once, not at their delay (the fake clock
// does not move), and so does the start, later, which the resend came
// before.
func TestResendReleasesHeldReports(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	start := fc.Now().Add(30 * time.Second)
	const delay = 5 * time.Second
	c.alert("e5@x", start, delay)
	c.received(t)
	have := func(n int) func() bool {
		return func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= n }
	}
	quiet(t, 200*time.Millisecond, "receipt reported before its delay", have(1))

	cmd := spreadAlert("e5@x", c.msg, c.opening, c.closing, start, start.Add(10*time.Minute), 2*delay)
	ctl.SendCommand("n1", cmd)
	nodetest.Eventually(t, 5*time.Second, "held receipt not sent after the resend", have(1))
	// The start goes when it happens: with the clock a second past it,
	// four before its delay would be over.
	beginAt(t, fc, c.n, start)
	runUntil(t, fc, time.Minute, "a second past the start", func() bool { return !fc.Now().Before(start.Add(time.Second)) })
	nodetest.Eventually(t, 5*time.Second, "start not reported at once after the resend", have(2))
	if events := waitEvents(t, ctl, "n1", []string{"received e5@x", "started e5@x"}); !events[1].At.Equal(start) {
		t.Errorf("alert started at %v, want %v (once)", events[1].At, start)
	}
}

// TestReportsNotSpreadWithoutWindow: with the same agent, an alert
// without a window (a commune) and a scheduled play report at once, on a
// clock that does not move.
func TestReportsNotSpreadWithoutWindow(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	news := ctl.AddContent(time.Second)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("news", news, fc.Now().Add(time.Hour))}, news))
	waitEvents(t, ctl, "n1", []string{"received news"})
	c.alert("e2@x", fc.Now().Add(time.Minute), 0)
	waitEvents(t, ctl, "n1", []string{"received news", "received e2@x"})
}

// TestSpreadReportsSurviveRestart: reports held when the agent stops are
// in the store; the new agent keeps the same delay (it does not send them
// at once, nor pick a new one) and sends them when it is up; nothing is
// lost or sent twice.
func TestSpreadReportsSurviveRestart(t *testing.T) {
	st, dir := store.NewMemory(), t.TempDir()
	c := newSpreadCase(t, options{store: st, dir: dir})
	fc, ctl, cred, n := c.fc, c.ctl, c.cred, c.n
	t0 := fc.Now()
	start := t0.Add(30 * time.Second)
	const delay = 5 * time.Second
	c.alert("e3@x", start, delay)
	nodetest.Eventually(t, 5*time.Second, "alert not received", func() bool { return n.a.Status().Outbox >= 1 })
	fc.Advance(time.Second)
	n.stop(t)
	if out, _ := st.Outbox(); out.Len() == 0 {
		t.Fatal("nothing in the outbox after the agent stopped")
	}
	h, err := st.HeldAlerts()
	if err != nil || h.ReportDelayMS["e3@x"] != delay.Milliseconds() {
		t.Fatalf("stored report delays %v, %v; want %v for the alert", h.ReportDelayMS, err, delay)
	}

	// The new agent would pick another delay; it must keep the stored one.
	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir, tune: func(c *agent.Config) {
		c.ReportDelay = func(w time.Duration) time.Duration { return 0 }
		c.AckTimeout = spreadAckTimeout
	}})
	waitConnected(t, n2)
	quiet(t, 300*time.Millisecond, "held receipt sent at once after the restart", func() bool { return len(ctl.Events("n1")) > 0 })
	beginAt(t, fc, n2, start)
	reportedAt(t, fc, ctl, "received and started", 2, start.Add(delay))
	runUntil(t, fc, time.Minute, "alert reported over", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 3 })
	events := waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "completed e3@x"})
	if !events[1].At.Equal(start) {
		t.Errorf("alert started at %v, want %v", events[1].At, start)
	}
	if l := ctl.Log("n1"); l.Resent != 0 {
		t.Errorf("%d events received twice", l.Resent)
	}
}

// TestStateSpread: a state change while the node holds an alert with a
// report window is published the node's delay after the debounce, not at
// the debounce (real time: the state publisher's debounce is).
func TestStateSpread(t *testing.T) {
	c := newSpreadCase(t, options{})
	fc, ctl := c.fc, c.ctl
	nodetest.Eventually(t, 5*time.Second, "no state on connect", func() bool { return len(ctl.Log("n1").States) > 0 })
	// Let the start-up's states go out, so that no debounce armed before
	// the alert is running.
	states, still := 0, time.Now()
	nodetest.Eventually(t, 5*time.Second, "states do not settle", func() bool {
		if got := len(ctl.Log("n1").States); got != states {
			states, still = got, time.Now()
		}
		return time.Since(still) > 200*time.Millisecond
	})

	const delay = 700 * time.Millisecond
	start := fc.Now().Add(time.Minute)
	sent := time.Now()
	c.alert("e4@x", start, delay)
	// The first state after the alert: the node has it (the content it
	// misses changed).
	var at time.Time
	nodetest.Eventually(t, 5*time.Second, "no state after the alert", func() bool {
		if len(ctl.Log("n1").States) > states {
			at = time.Now()
			return true
		}
		return false
	})
	if got := at.Sub(sent); got < delay {
		t.Errorf("state after the alert published %v after it, want at least the delay %v", got, delay)
	}
}

// TestAnotherAlertsReceiptNotHeld: a node of a commune held its reports
// of the district's typhoon warning (a large area: a report window) when
// the commune's dyke warning came. Its receipt of the second waited in
// the outbox behind the first's held receipt, up to the first's delay,
// while the controller resends an alert whose receipt it has not heard
// within 2 s (plus that alert's own window): it resent the dyke warning to
// every node of the commune. Each alert's reports go on their own
// schedule: the second's receipt reaches the controller at its own time
// (at once without a window, its own delay with one), taking the first's
// held reports along, as the events are sent in order.
func TestAnotherAlertsReceiptNotHeld(t *testing.T) {
	t.Run("without a window", func(t *testing.T) {
		c := newSpreadCase(t, options{})
		fc, ctl := c.fc, c.ctl
		t0 := fc.Now()
		c.alert("e1@x", t0.Add(30*time.Second), 5*time.Second)
		c.received(t)
		quiet(t, 200*time.Millisecond, "the first alert's receipt reported before its delay", func() bool { return len(ctl.Events("n1")) > 0 })

		// The commune's own alert: no window. The fake clock does not move.
		ctl.SendAreaCommand("x1", spreadAlert("e2@x", c.msg, c.opening, c.closing, t0.Add(40*time.Second), t0.Add(10*time.Minute), 0), 10*time.Minute)
		events := waitEvents(t, ctl, "n1", []string{"received e1@x", "received e2@x"})
		if !events[0].At.Equal(t0) || !events[1].At.Equal(t0) {
			t.Errorf("receipts at %v and %v, want both at %v: events keep their true time", events[0].At, events[1].At, t0)
		}
	})
	t.Run("with a shorter delay", func(t *testing.T) {
		c := newSpreadCase(t, options{})
		fc, ctl := c.fc, c.ctl
		t0 := fc.Now()
		c.alert("e1@x", t0.Add(30*time.Second), 10*time.Second)
		c.received(t)
		c.ctl.SendAreaCommand("x1", spreadAlert("e2@x", c.msg, c.opening, c.closing, t0.Add(2*time.Second), t0.Add(10*time.Minute), 2*time.Second), 10*time.Minute)
		nodetest.Eventually(t, 5*time.Second, "the second alert not received", func() bool { return c.n.a.Status().Outbox >= 3 })
		// The second's delay is half its window, after its start: 2 + 1
		// s, not the first's start plus 10 s.
		reportedAt(t, fc, ctl, "the second alert's receipt", 2, t0.Add(3*time.Second))
		if got := nodetest.Summary(ctl.Events("n1"))[:2]; !slices.Equal(got, []string{"received e1@x", "received e2@x"}) {
			t.Errorf("first reports %q, want the first alert's receipt taken along with the second's", got)
		}
		// The first alert's later reports keep its delay.
		reportedWhen(t, fc, "the first alert's start", func() bool {
			return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started e1@x")
		}, t0.Add(40*time.Second))
	})
}
