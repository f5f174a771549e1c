package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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

// skewedBoard is a board whose clock is off by d.
type skewedBoard struct {
	clock.Real
	d time.Duration
}

func (s skewedBoard) Now() time.Time { return time.Now().Add(s.d) }

// TestReplayRefusedAfterARestartOnAFastBoard: a board whose clock runs two
// hours fast accepts a command, restarts, and once its clock is corrected
// again is sent the same captured command: refused. The replay guard was
// loaded (and pruned) at start-up on the uncorrected clock, which judged
// the command's entry expired although it was valid for another ten
// minutes by the controller's clock, and the copy was taken again.
func TestReplayRefusedAfterARestartOnAFastBoard(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1", "p1")
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	board := skewedBoard{d: 2 * time.Hour}
	var reboots atomic.Int32
	tune := func(c *agent.Config) { c.Reboot = func() { reboots.Add(1) } }

	corrected := func(n *node) {
		t.Helper()
		nodetest.Eventually(t, 10*time.Second, "clock not corrected", func() bool {
			return n.a.Clock().Get() < -119*time.Minute
		})
	}
	version := uint64(0)
	settle := func(n *node) {
		t.Helper()
		version++
		ctl.PublishDesired(desired("n1", version, nil))
		nodetest.Eventually(t, 10*time.Second, fmt.Sprintf("desired version %d not applied", version), func() bool {
			return n.a.Status().DesiredVersion == version
		})
	}

	n := startAgent(t, cred, options{store: st, dir: dir, clock: board, tune: tune})
	waitConnected(t, n)
	corrected(n)
	settle(n)
	// A reboot command, valid 10 minutes (nodetest's command TTL).
	cmd := ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdReboot})
	settle(n)
	if reboots.Load() != 1 || n.a.Status().Rejected != 0 {
		t.Fatalf("first copy: reboots %d, rejected %d", reboots.Load(), n.a.Status().Rejected)
	}

	n.stop(t)
	n = startAgent(t, cred, options{store: st, dir: dir, clock: board, tune: tune})
	waitConnected(t, n)
	corrected(n)
	settle(n)
	// The captured command, replayed well within its validity.
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, cmd)
	settle(n)
	if got := n.a.Status().Rejected; got != 1 || reboots.Load() != 1 {
		t.Fatalf("replayed command after a restart: rejected %d (want 1), reboots %d (want 1): the replay was accepted", got, reboots.Load())
	}
}

// TestForgedTimeAnswerMovesNoClock: whoever answers GET /api/v1/time on
// the way (a network attacker, over plain HTTP) cannot set the node's
// clock: an answer without a proof, or with a proof the controller signed
// for another request, is refused, and the clock stays as it was. Before,
// an answer an hour and forty minutes back set the node's clock so, and a
// command that had expired an hour before was carried out.
func TestForgedTimeAnswerMovesNoClock(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	back := time.Now().Add(-100 * time.Minute)
	captured := protocol.NewSigner("controller", ctl.Key, 0, func() time.Time { return back })
	replayed, err := captured.Seal(protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: "an-earlier-request-nonce", Time: back}, protocol.TimeProofTTL)
	if err != nil {
		t.Fatal(err)
	}
	for name, answer := range map[string]string{
		"no proof":                   fmt.Sprintf(`{"time":%q}`, back.Format(time.RFC3339Nano)),
		"a proof of another request": fmt.Sprintf(`{"time":%q,"proof":%s}`, back.Format(time.RFC3339Nano), replayed),
	} {
		t.Run(name, func(t *testing.T) {
			var asked atomic.Int32
			forged := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				w.Write([]byte(answer))
			}))
			defer forged.Close()
			cred := ctl.Credentials("n1", "x1", "p1")
			cred.Controller = forged.URL
			var reboots atomic.Int32
			n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Reboot = func() { reboots.Add(1) } }})
			waitConnected(t, n)
			nodetest.Eventually(t, 10*time.Second, "the forged time asked for", func() bool { return asked.Load() > 0 })

			// Signed 150 minutes ago, valid an hour: it expired 90 minutes ago.
			old := protocol.NewSigner("controller", ctl.Key, 0, func() time.Time { return time.Now().Add(-150 * time.Minute) })
			raw, err := old.Seal(protocol.TypeCommand, "node/n1", protocol.Command{Name: protocol.CmdReboot}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, raw)
			nodetest.Eventually(t, 10*time.Second, "the old command handled", func() bool {
				return reboots.Load() > 0 || n.a.Status().Rejected > 0
			})
			if got := n.a.Clock().Get(); got != 0 || reboots.Load() != 0 {
				t.Errorf("after a forged time answer the clock's correction is %v and the node rebooted %d times on a command expired 90 minutes ago; want no correction and the command refused", got, reboots.Load())
			}
		})
	}
}

// TestAcksHeldOnAFastBoardUntilMeasured: a board two hours ahead refused
// the controller's acknowledgements of its events ("expired 1h50m0s ago")
// until its first clock measurement, and sent its whole outbox again every
// ack timeout meanwhile. An acknowledgement that looks expired on a clock
// not measured yet is held, not refused, and judged once the clock is
// measured: taken if valid by the controller's time, refused as expired if
// not (a copy recorded hours ago), as on any measured clock.
func TestAcksHeldOnAFastBoardUntilMeasured(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.AutoAck.Store(false)
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // before the HTTP server closes, even if the test fails
	ctl.Clock = func() time.Time { <-gate; return time.Now() }
	ref := ctl.AddContent(100 * time.Millisecond)
	// Due after the board's clock too: not missed before the measurement.
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, time.Now().Add(3*time.Hour))}, ref))

	// No resend within the test: only the acknowledgement can empty the outbox.
	tune := func(c *agent.Config) { c.AckTimeout = time.Hour }
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: skewedBoard{d: 2 * time.Hour}, tune: tune})
	waitConnected(t, n)
	waitEvents(t, ctl, "n1", []string{"received o1"})
	nodetest.Eventually(t, 10*time.Second, "content-ready sent", func() bool { return len(ctl.Events("n1")) == 2 })
	epoch := ctl.Log("n1").Epoch
	ack := protocol.Command{Name: protocol.CmdAck, Epoch: epoch, Seq: 2}
	// A copy of an acknowledgement recorded three hours ago: expired by the
	// controller's clock too.
	old := protocol.NewSigner("controller", ctl.Key, 0, func() time.Time { return time.Now().Add(-3 * time.Hour) })
	raw, err := old.Seal(protocol.TypeCommand, "node/n1", ack, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, raw)
	ctl.Ack("n1", epoch, 2) // valid ten minutes by the controller's clock
	ctl.PublishDesired(desired("n1", 2, nil))
	nodetest.Eventually(t, 10*time.Second, "desired version 2 applied", func() bool { return n.a.Status().DesiredVersion == 2 })
	if st := n.a.Status(); st.Rejected != 0 || st.Outbox != 2 {
		t.Fatalf("before the clock is measured: rejected %d, outbox %d; want the acknowledgements held: none refused, none applied", st.Rejected, st.Outbox)
	}

	open() // the controller answers the time request: two hours back
	nodetest.Eventually(t, 10*time.Second, "outbox acknowledged once the clock is measured", func() bool { return n.a.Status().Outbox == 0 })
	nodetest.Eventually(t, 10*time.Second, "the old copy refused", func() bool { return n.a.Status().Rejected == 1 })
	if got := n.a.Clock().Get(); got > -119*time.Minute {
		t.Errorf("clock offset %v, want about -2h", got)
	}
}
