package agent_test

import (
	"strings"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/update"
	"loaxa.vn/protocol"
)

// release is an update to version with one archive for this board.
func release(version string) *protocol.Update {
	sha := strings.Repeat(version[:1], 64)
	return &protocol.Update{Version: version, Archives: []protocol.UpdateArchive{{Arch: agent.Arch,
		SHA256: sha, Size: 15 << 20, Path: "/api/v1/releases/archives/" + sha}}}
}

// TestNewerUpdateReplacesAWaitingOne: a node busy with one update request
// kept the next one waiting and dropped every request after it, so when
// the controller replaced release 2.0.0 by 3.0.0 the node took 2.0.0 next
// and installed an outdated agent; and it took a request whatever time
// had passed, one from a rollout halted long before included. The latest
// request must win, and one the controller stopped renewing must lapse.
func TestNewerUpdateReplacesAWaitingOne(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	board := clock.NewFake(time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC))
	reqs := update.NewRequests(board)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{tune: func(c *agent.Config) { c.Updates = reqs }})
	waitConnected(t, n)

	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdUpdate, Update: release("2.0.0")})
	nodetest.Eventually(t, 10*time.Second, "release 2.0.0 asked for", func() bool { return reqs.Wanted(*release("2.0.0")) })
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdUpdate, Update: release("3.0.0")})
	nodetest.Eventually(t, 10*time.Second, "release 3.0.0 asked for", func() bool { return reqs.Wanted(*release("3.0.0")) })
	if reqs.Wanted(*release("2.0.0")) {
		t.Error("release 2.0.0 is still wanted after the controller asked for 3.0.0")
	}
	got, ok := reqs.Take()
	if !ok || got.Version != "3.0.0" {
		t.Fatalf("the node takes %q (%v), want 3.0.0", got.Version, ok)
	}

	// nodetest's commands live 10 minutes: not renewed within another
	// 10 after that, the request was withdrawn.
	board.Advance(19 * time.Minute)
	if !reqs.Wanted(got) {
		t.Error("release 3.0.0 lapsed before its command and a lifetime more passed")
	}
	board.Advance(2 * time.Minute)
	if reqs.Wanted(got) {
		t.Error("release 3.0.0 is still wanted 21 minutes after a 10-minute command, never renewed")
	}
}

// TestUpdateFromAnotherHostIsRefused: an update command whose archive path
// starts with "//" names another host once resolved as a URL; the
// signature and the SHA-256 would hold, but a node fetches its agent only
// from its controller. It is refused and reported, never asked for.
func TestUpdateFromAnotherHostIsRefused(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	reqs := update.NewRequests(clock.NewFake(time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)))
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{tune: func(c *agent.Config) { c.Updates = reqs }})
	waitConnected(t, n)

	u := release("2.0.0")
	u.Archives[0].Path = "//other-host.example/" + u.Archives[0].SHA256
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdUpdate, Update: u})
	var reason string
	nodetest.Eventually(t, 10*time.Second, "the update from another host reported refused", func() bool {
		for _, e := range ctl.Events("n1") {
			if e.Type == protocol.EventUpdateFailed && e.Version == "2.0.0" {
				reason = e.Reason
				return true
			}
		}
		return false
	})
	if !strings.Contains(reason, "path") || !strings.Contains(reason, "//other-host.example/") {
		t.Errorf("refused with %q; want the path named", reason)
	}
	if reqs.Wanted(*u) {
		t.Error("the release on another host was asked for")
	}
}
