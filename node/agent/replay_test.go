package agent_test

import (
	"fmt"
	"path/filepath"
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
