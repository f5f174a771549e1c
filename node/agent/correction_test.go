package agent_test

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestCorrectionOnAirPlaysTheCorrectedAudio: an officer replaces a wrong
// recording (a correction under the same occurrence id) while the node
// plays it. The wrong audio stops and the corrected one plays from its
// beginning, the cut reported suspended with reason corrected. Before, the
// node played the old audio to its end and reported it completed, and the
// village never heard the correction.
func TestCorrectionOnAirPlaysTheCorrectedAudio(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 12, 6, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc})
	waitConnected(t, n)
	wrong, right := ctl.AddContent(4*time.Second), ctl.AddContent(3*time.Second)
	start := fc.Now().Add(time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("news", wrong, start)}, wrong))
	want := []string{"received news"}
	waitEvents(t, ctl, "n1", want)
	nodetest.Eventually(t, 5*time.Second, "content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	fc.Set(start)
	want = append(want, "started news")
	waitEvents(t, ctl, "n1", want)
	fc.Advance(time.Second)
	ctl.PublishDesired(desired("n1", 2, []protocol.Occurrence{occurrence("news", right, start)}, right))
	nodetest.Eventually(t, 5*time.Second, "desired state 2 running", func() bool { return n.a.Status().DesiredVersion == 2 })
	// The loop answers once it has looked at the correction (a step
	// follows every message), so the clock moves on only then.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.a.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "suspended news corrected", "started news", "completed news")
	runUntil(t, fc, time.Minute, "the corrected news played", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	// The cut's time, not its played time: how much of its second the
	// output had taken on the fake clock when the cut came depends on
	// when its goroutine ran.
	if got := events[2].At.Sub(start); got != time.Second {
		t.Errorf("the wrong recording cut off %v after its start, want 1s (when the correction came)", got)
	}
	if got := events[4]; got.Content != right.ID || got.PlayedMS != 3000 {
		t.Errorf("completed content %s after %d ms, want the corrected %s, all of its 3000 ms", got.Content, got.PlayedMS, right.ID)
	}
}
