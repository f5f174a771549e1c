package agent_test

import (
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// sendLive signs l for area, as the controller does, and publishes it on
// the area's live topic.
func sendLive(t *testing.T, ctl *nodetest.Controller, area string, l protocol.Live) {
	t.Helper()
	raw, err := ctl.Signer.Seal(protocol.TypeLive, "area/"+area, l, protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(ctl.Topics.Area(area, protocol.ChanLive), false, raw)
}

// speak sends a whole call: its start, n frames of a quiet tone and its
// end, every message marked drill or not.
func speak(t *testing.T, ctl *nodetest.Controller, area, call string, n int, drill bool, volume int) {
	t.Helper()
	sendLive(t, ctl, area, protocol.Live{Call: call, Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp dân", Drill: drill, Volume: volume})
	var enc nodeaudio.FrameEncoder
	pcm := make([]int16, nodeaudio.FrameSamples)
	for i := range pcm {
		pcm[i] = int16(i%64*64 - 2048)
	}
	for seq := range n {
		f, err := enc.Encode(pcm)
		if err != nil {
			t.Fatal(err)
		}
		sendLive(t, ctl, area, protocol.Live{Call: call, Kind: protocol.LiveAudio, Seq: uint64(seq), Audio: f, Drill: drill})
	}
	sendLive(t, ctl, area, protocol.Live{Call: call, Kind: protocol.LiveEnd, Drill: drill})
}

// TestLiveDrillMarked: every event of a drill call's play says drill, and
// none of a real call's does; a message of a drill call that does not say
// drill (or the reverse) is refused, so the two cannot be mixed up.
func TestLiveDrillMarked(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{})
	waitConnected(t, n)

	speak(t, ctl, "d1", "live-drill1", 8, true, 3)
	events := waitEvents(t, ctl, "n1", []string{"received live-drill1", "started live-drill1", "completed live-drill1"})
	for _, e := range events {
		if !e.Drill {
			t.Errorf("drill call: event %s %s not marked drill", e.Type, e.Occurrence)
		}
	}
	if done := events[2]; done.FramesPlayed+done.FramesLost != 8 || done.FramesPlayed == 0 {
		t.Errorf("drill call completed with %d frames played, %d lost; want the 8 sent", done.FramesPlayed, done.FramesLost)
	}

	// A real call: a frame that says drill is refused and the call plays
	// on with the others.
	before := n.a.Status().Rejected
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-real1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh})
	var enc nodeaudio.FrameEncoder
	f, err := enc.Encode(make([]int16, nodeaudio.FrameSamples))
	if err != nil {
		t.Fatal(err)
	}
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-real1", Kind: protocol.LiveAudio, Seq: 0, Audio: f})
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-real1", Kind: protocol.LiveAudio, Seq: 1, Audio: f, Drill: true})
	for seq := 1; seq < 4; seq++ {
		sendLive(t, ctl, "x1", protocol.Live{Call: "live-real1", Kind: protocol.LiveAudio, Seq: uint64(seq), Audio: f})
	}
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-real1", Kind: protocol.LiveEnd})
	events = waitEvents(t, ctl, "n1", []string{"received live-drill1", "started live-drill1", "completed live-drill1",
		"received live-real1", "started live-real1", "completed live-real1"})
	for _, e := range events[3:] {
		if e.Drill {
			t.Errorf("real call: event %s %s marked drill", e.Type, e.Occurrence)
		}
	}
	if done := events[5]; done.FramesPlayed != 4 {
		t.Errorf("real call completed with %d frames played (%d lost), want the 4 unmarked ones", done.FramesPlayed, done.FramesLost)
	}
	if got := n.a.Status().Rejected - before; got != 1 {
		t.Errorf("%d messages of the real call refused, want 1 (the frame marked drill)", got)
	}
}

// TestLiveCallEndedBeforeItBeganNeverPlays: a live call waiting behind an
// emergency alert (its start came, no frame yet) is cut by an officer, or
// ended by its speaker; then its frames come, late. When the alert ended,
// the node played those frames: a call that was over, seconds old, on
// the commune's speakers. A call over before its play began must never
// begin: it is closed at once, missed, with the reason of its end.
func TestLiveCallEndedBeforeItBeganNeverPlays(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		end          protocol.Live
	}{
		{"cut", protocol.ReasonCut, protocol.Live{Kind: protocol.LiveEnd, Reason: protocol.LiveCut}},
		{"speaker stopped", protocol.ReasonTooLate, protocol.Live{Kind: protocol.LiveEnd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
			ctl := fakeClockController(t, fc)
			n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
			waitConnected(t, n)

			msg := ctl.AddContent(time.Second)
			opening := ctl.AddContent(700 * time.Millisecond)
			closing := ctl.AddContent(600 * time.Millisecond)
			start := fc.Now().Add(time.Minute)
			ctl.SendAreaCommand("x1", alert("e1@x", msg, opening, closing, start, start.Add(time.Minute)), 2*time.Minute)
			waitEvents(t, ctl, "n1", []string{"received e1@x"})
			nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
			fc.Set(start)
			waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x"})
			runUntil(t, fc, 10*time.Second, "alert played 2 s", func() bool { return !fc.Now().Before(start.Add(2 * time.Second)) })

			// The call comes while the alert (5.3 s) plays: it may begin
			// within 5 s, when the alert is over.
			sendLive(t, ctl, "x1", protocol.Live{Call: "live-c1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp dân"})
			nodetest.Eventually(t, 10*time.Second, "call not received", func() bool {
				return slices.Contains(nodetest.Summary(ctl.Events("n1")), "received live-c1")
			})
			end := tc.end
			end.Call = "live-c1"
			sendLive(t, ctl, "x1", end)
			var enc nodeaudio.NarrowFrameEncoder
			pcm := make([]int16, nodeaudio.NarrowFrameWide)
			for i := range pcm {
				pcm[i] = int16(i%64*64 - 2048)
			}
			for seq := range 10 {
				f, err := enc.Encode(pcm)
				if err != nil {
					t.Fatal(err)
				}
				sendLive(t, ctl, "x1", protocol.Live{Call: "live-c1", Kind: protocol.LiveAudio, Seq: uint64(seq), Audio: f})
			}
			// A refused message after the frames says they were taken in.
			before := n.a.Status().Rejected
			sendLive(t, ctl, "x1", protocol.Live{Call: "live-c1", Kind: "marker"})
			nodetest.Eventually(t, 10*time.Second, "marker not refused", func() bool { return n.a.Status().Rejected > before })

			runUntil(t, fc, 30*time.Second, "alert done and the call's window past", func() bool {
				return fc.Now().After(start.Add(12*time.Second)) && n.a.Status().Playing == nil
			})
			var call []string
			played := int64(0)
			for _, e := range ctl.Events("n1") {
				if e.Occurrence == "live-c1" {
					call = append(call, nodetest.Summary([]protocol.Event{e})...)
					played += e.FramesPlayed
				}
			}
			if want := []string{"received live-c1", "missed live-c1 " + tc.reason}; !slices.Equal(call, want) || played != 0 {
				t.Errorf("events of the call ended before it began: %q, %d frames played; want %q, none played", call, played, want)
			}
		})
	}
}

// TestLiveCallHeldBehindAnAlertSaysWhich: an officer speaks to a commune
// where a typhoon alert still plays on a cluster. The cluster holds the
// call back until the alert is over, but its received event said nothing
// of it: the officer saw the cluster "reached" and silent, not why. The
// received event names the alert holding the call (HeldBy); the started
// event that follows the alert says how late the call began there. A call
// received with nothing on air names nothing.
func TestLiveCallHeldBehindAnAlertSaysWhich(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	start := fc.Now().Add(time.Minute)
	cmd := alert("e1@x", msg, protocol.ContentRef{}, protocol.ContentRef{}, start, start.Add(time.Minute))
	cmd.Alert.Occurrence.Drill = false
	cmd.Alert.Occurrence.Repeat, cmd.Alert.Occurrence.GapMS = 3, 0
	cmd.Alert.Occurrence.OpeningChime, cmd.Alert.Occurrence.ClosingChime = "", ""
	cmd.Alert.Content = []protocol.ContentRef{msg}
	ctl.SendAreaCommand("x1", cmd, 2*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e1@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x"})
	runUntil(t, fc, 10*time.Second, "alert played 1 s", func() bool { return !fc.Now().Before(start.Add(time.Second)) })

	// The call comes with 2 s of the alert (3 s) to go: it waits for it.
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-h1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp dân"})
	nodetest.Eventually(t, 10*time.Second, "call not received", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "received live-h1")
	})
	runUntil(t, fc, 10*time.Second, "the call begun after the alert", func() bool {
		return slices.Contains(callEvents(ctl, "live-h1"), "started live-h1")
	})
	var received, started protocol.Event
	for _, e := range ctl.Events("n1") {
		switch {
		case e.Occurrence != "live-h1":
		case e.Type == protocol.EventReceived:
			received = e
		case e.Type == protocol.EventStarted:
			started = e
		}
	}
	if received.HeldBy != "e1" {
		t.Errorf("the call received behind the alert: held_by %q, want e1, the alert's emergency", received.HeldBy)
	}
	if started.LateMS < 1500 || started.HeldBy != "" {
		t.Errorf("the call began %d ms late (held_by %q); want about 2 s, once the alert was over, and held_by on the received event only", started.LateMS, started.HeldBy)
	}
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-h1", Kind: protocol.LiveEnd, Reason: protocol.LiveCut})
	runUntil(t, fc, 10*time.Second, "the call over", func() bool { return n.a.Status().Playing == nil })

	// Nothing on air: a call received names nothing.
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-h2", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh})
	nodetest.Eventually(t, 10*time.Second, "second call not received", func() bool {
		return slices.Contains(callEvents(ctl, "live-h2"), "received live-h2")
	})
	for _, e := range ctl.Events("n1") {
		if e.Occurrence == "live-h2" && e.HeldBy != "" {
			t.Errorf("a call received with nothing on air: %s event held_by %q, want none", e.Type, e.HeldBy)
		}
	}
}

// TestLiveCallPreemptedBeforeItsFramesNeverResumes: a live call on air
// waiting for its first frames is cut off by an emergency alert; its
// frames come during the alert. Once the (short) alert is over, within
// the call's start window, the call must not begin again with them: a
// cut-off call is not resumed (on_preempt drop, docs/live.md).
func TestLiveCallPreemptedBeforeItsFramesNeverResumes(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	cmd := alert("e1@x", msg, protocol.ContentRef{}, protocol.ContentRef{}, fc.Now().Add(time.Minute), fc.Now().Add(2*time.Minute))
	cmd.Alert.Occurrence.Repeat, cmd.Alert.Occurrence.GapMS = 1, 0
	cmd.Alert.Occurrence.OpeningChime, cmd.Alert.Occurrence.ClosingChime = "", ""
	cmd.Alert.Content = []protocol.ContentRef{msg}
	ctl.SendAreaCommand("x1", cmd, 3*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e1@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	fc.Set(cmd.Alert.Occurrence.Start.Add(-500 * time.Millisecond))
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-p1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh})
	waitEvents(t, ctl, "n1", []string{"received e1@x", "received live-p1", "started live-p1"})
	fc.Set(cmd.Alert.Occurrence.Start)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "received live-p1", "started live-p1", "preempted live-p1 preempted", "started e1@x"})
	var enc nodeaudio.NarrowFrameEncoder
	for seq := range 10 {
		f, err := enc.Encode(make([]int16, nodeaudio.NarrowFrameWide))
		if err != nil {
			t.Fatal(err)
		}
		sendLive(t, ctl, "x1", protocol.Live{Call: "live-p1", Kind: protocol.LiveAudio, Seq: uint64(seq), Audio: f})
	}
	before := n.a.Status().Rejected
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-p1", Kind: "marker"})
	nodetest.Eventually(t, 10*time.Second, "marker not refused", func() bool { return n.a.Status().Rejected > before })
	runUntil(t, fc, 30*time.Second, "alert done and the call's window past", func() bool {
		return fc.Now().After(cmd.Alert.Occurrence.Start.Add(6*time.Second)) && n.a.Status().Playing == nil
	})
	waitEvents(t, ctl, "n1", []string{"received e1@x", "received live-p1", "started live-p1", "preempted live-p1 preempted", "started e1@x", "completed e1@x"})
}

// TestLiveFrameTimeoutOnTheAgentsClock: the jitter buffer of a call took
// the real clock, not the agent's, so its 2 s frame timeout ran in real
// time: on a fake clock a call that had no frame failed after 2 real
// seconds while the agent's time stood still, and moving the agent's
// clock on did not end it. The timeout must run on the agent's clock (it
// suspends the call until its frames come: TestLiveCallRejoinsAfterItsFramesStop).
func TestLiveFrameTimeoutOnTheAgentsClock(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	sent := time.Now()
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-t1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp dân"})
	waitEvents(t, ctl, "n1", []string{"received live-t1", "started live-t1"})
	// The agent's clock stands still: however long this takes in real
	// time, no frame timeout can pass.
	for time.Since(sent) < agent.LiveFrameTimeout+500*time.Millisecond {
		if slices.Contains(nodetest.Summary(ctl.Events("n1")), "suspended live-t1 "+protocol.ReasonStream) {
			t.Fatalf("the call stopped on its frame timeout after %v of real time while the agent's clock stood still", time.Since(sent).Round(100*time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	fc.Advance(agent.LiveFrameTimeout)
	waitEvents(t, ctl, "n1", []string{"received live-t1", "started live-t1", "suspended live-t1 " + protocol.ReasonStream})
}

// sendNarrowFrames sends frames from to to-1 of call, narrowband as the
// controller sends them, then a message the agent refuses and waits for
// its refusal: the frames before it were taken in.
func sendNarrowFrames(t *testing.T, ctl *nodetest.Controller, n *node, area, call string, from, to int) {
	t.Helper()
	var enc nodeaudio.NarrowFrameEncoder
	pcm := make([]int16, nodeaudio.NarrowFrameWide)
	for i := range pcm {
		pcm[i] = int16(i%64*64 - 2048)
	}
	for seq := from; seq < to; seq++ {
		f, err := enc.Encode(pcm)
		if err != nil {
			t.Fatal(err)
		}
		sendLive(t, ctl, area, protocol.Live{Call: call, Kind: protocol.LiveAudio, Seq: uint64(seq), Audio: f})
	}
	before := n.a.Status().Rejected
	sendLive(t, ctl, area, protocol.Live{Call: call, Kind: "marker"})
	nodetest.Eventually(t, 10*time.Second, "marker not refused", func() bool { return n.a.Status().Rejected > before })
}

// sendLiveTaken sends l to area and waits until the agent has taken it
// in (a refused marker after it, as in sendNarrowFrames). A test that
// steps the fake clock right after an end passed LiveFrameTimeout in a
// few real milliseconds, before the end, a real round trip over the
// broker, had come: the call ended on its frame timeout instead.
func sendLiveTaken(t *testing.T, ctl *nodetest.Controller, n *node, area string, l protocol.Live) {
	t.Helper()
	sendLive(t, ctl, area, l)
	sendNarrowFrames(t, ctl, n, area, l.Call, 0, 0)
}

// liveCallOnAir starts node n1 (areas x1 and d1) on a fake clock, begins
// live call call there (high priority, titled title; received and
// started) and sends it narrow frames 0 to frames (sendNarrowFrames).
func liveCallOnAir(t *testing.T, call, title string, frames int) (*clock.Fake, *nodetest.Controller, *node) {
	t.Helper()
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)
	sendLive(t, ctl, "x1", protocol.Live{Call: call, Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: title})
	waitEvents(t, ctl, "n1", []string{"received " + call, "started " + call})
	sendNarrowFrames(t, ctl, n, "x1", call, 0, frames)
	return fc, ctl, n
}

// callEvents is the summary of the events n1 reported of call, in order.
func callEvents(ctl *nodetest.Controller, call string) []string {
	var out []string
	for _, e := range ctl.Events("n1") {
		if e.Occurrence == call {
			out = append(out, nodetest.Summary([]protocol.Event{e})...)
		}
	}
	return out
}

// TestLiveCallRejoinsAfterItsFramesStop: an officer speaks live during a
// typhoon and one pole's 4G drops for a few seconds. The node's jitter
// buffer timed out after 2 s without frames, failed the play and released
// the amplifier; when the call's frames came again the node ignored them,
// and that pole stayed silent for the rest of the officer's call. A call
// whose frames stopped must be suspended (its amplifier released), and
// begin again, amplifier on, with the frames that come, playing them to
// the call's end.
func TestLiveCallRejoinsAfterItsFramesStop(t *testing.T) {
	fc, ctl, n := liveCallOnAir(t, "live-r1", "Phòng chống bão", 10)

	// The link drops: no frame for longer than the frame timeout.
	runUntil(t, fc, 10*time.Second, "the call off the air with its amplifier released", func() bool {
		return n.a.Status().Playing == nil && !n.board.Snapshot().Amplifier
	})

	// The link is back and the officer still speaks.
	sendNarrowFrames(t, ctl, n, "x1", "live-r1", 60, 70)
	runUntil(t, fc, 5*time.Second, "the call on the air again", func() bool {
		p := n.a.Status().Playing
		return p != nil && p.Occurrence == "live-r1"
	})
	if !n.board.Snapshot().Amplifier {
		t.Error("the call plays again with its amplifier off")
	}
	sendLiveTaken(t, ctl, n, "x1", protocol.Live{Call: "live-r1", Kind: protocol.LiveEnd})
	runUntil(t, fc, 5*time.Second, "the call played to its end", func() bool { return n.a.Status().Playing == nil })
	events := waitEvents(t, ctl, "n1", []string{"received live-r1", "started live-r1", "suspended live-r1 " + protocol.ReasonStream,
		"started live-r1", "completed live-r1"})
	if done := events[4]; done.FramesPlayed != 20 {
		t.Errorf("the call completed with %d frames played (%d lost), want the 20 sent before and after the outage", done.FramesPlayed, done.FramesLost)
	}
}

// TestLiveCallOutOfFramesEndsForGood: a call whose frames stopped on a
// node waits there for them to come again, but not once the call is over
// for it: the speaker's end or a cut that comes meanwhile ends it (failed,
// stream: the node lost the call's end), and something that outranks it
// (an emergency call here) ends it preempted, as it ends a call on the air.
// Frames that come after must never begin it again.
func TestLiveCallOutOfFramesEndsForGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, ctl *nodetest.Controller)
		want string
	}{
		{"speaker stopped", func(t *testing.T, ctl *nodetest.Controller) {
			sendLive(t, ctl, "x1", protocol.Live{Call: "live-s1", Kind: protocol.LiveEnd})
		}, "failed live-s1 " + protocol.ReasonStream},
		{"cut", func(t *testing.T, ctl *nodetest.Controller) {
			sendLive(t, ctl, "x1", protocol.Live{Call: "live-s1", Kind: protocol.LiveEnd, Reason: protocol.LiveCut})
		}, "failed live-s1 " + protocol.ReasonStream},
		// The node was away when the end went out on the area's topic; the
		// controller sends it again on the node's own when it comes back.
		// The node refused it (a live message on a cmd topic) and kept the
		// call suspended for 2 h.
		{"end sent again to the node", func(t *testing.T, ctl *nodetest.Controller) {
			sendNodeLive(t, ctl, "n1", protocol.Live{Call: "live-s1", Kind: protocol.LiveEnd})
		}, "failed live-s1 " + protocol.ReasonStream},
		{"preempted", func(t *testing.T, ctl *nodetest.Controller) {
			sendLive(t, ctl, "x1", protocol.Live{Call: "live-e1", Kind: protocol.LiveStart, Priority: protocol.PriorityEmergency, Title: "Vỡ đê"})
		}, "preempted live-s1 " + protocol.ReasonPreempted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, ctl, n := liveCallOnAir(t, "live-s1", "Họp dân", 10)
			runUntil(t, fc, 10*time.Second, "the call's frames stopped", func() bool {
				return slices.Contains(nodetest.Summary(ctl.Events("n1")), "suspended live-s1 "+protocol.ReasonStream)
			})
			tc.end(t, ctl)
			nodetest.Eventually(t, 10*time.Second, "the call not ended", func() bool {
				return slices.Contains(nodetest.Summary(ctl.Events("n1")), tc.want)
			})
			sendNarrowFrames(t, ctl, n, "x1", "live-s1", 60, 70)
			played := fc.Now().Add(5 * time.Second)
			runUntil(t, fc, 10*time.Second, "time for the frames to play", func() bool { return fc.Now().After(played) })
			call := callEvents(ctl, "live-s1")
			if want := []string{"received live-s1", "started live-s1", "suspended live-s1 " + protocol.ReasonStream, tc.want}; !slices.Equal(call, want) {
				t.Errorf("events of the call: %q; want %q and no more", call, want)
			}
		})
	}
}

// sendNodeLive signs l for node, as the controller does when it sends a
// call's start or end again to a node that comes online, and publishes it
// on the node's own cmd topic.
func sendNodeLive(t *testing.T, ctl *nodetest.Controller, node string, l protocol.Live) {
	t.Helper()
	raw, err := ctl.Signer.Seal(protocol.TypeLive, "node/"+node, l, protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(ctl.Topics.Node(node, protocol.ChanCmd), false, raw)
}

// TestLiveCallJoinedFromItsResentStart: a pole's 4G came back in the
// middle of an officer's call. The call's start had gone out on the area's
// topic while it was away (a clean session keeps nothing), so the node
// ignored every frame after and stayed silent for the rest of the call.
// The controller now sends the start again on the node's own topic: the
// node must take it, begin the call at its current frames (not play
// silence for every frame said before it joined, nor count them lost), and
// play it to its end. A start sent again that is stale (its call long
// over) must be refused as any expired message is.
func TestLiveCallJoinedFromItsResentStart(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	start := protocol.Live{Call: "live-j1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Phòng chống bão"}
	// Frames of a call the node does not hold are ignored.
	sendNarrowFrames(t, ctl, n, "x1", "live-j1", 480, 490)
	if len(ctl.Events("n1")) != 0 {
		t.Fatalf("events %q before the node had the call's start", nodetest.Summary(ctl.Events("n1")))
	}
	sendNodeLive(t, ctl, "n1", start)
	waitEvents(t, ctl, "n1", []string{"received live-j1", "started live-j1"})
	sendNarrowFrames(t, ctl, n, "x1", "live-j1", 500, 510)
	sendLiveTaken(t, ctl, n, "x1", protocol.Live{Call: "live-j1", Kind: protocol.LiveEnd})
	runUntil(t, fc, 10*time.Second, "the call played to its end", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed live-j1")
	})
	events := waitEvents(t, ctl, "n1", []string{"received live-j1", "started live-j1", "completed live-j1"})
	if done := events[2]; done.FramesPlayed != 10 || done.FramesLost != 0 {
		t.Errorf("the call completed with %d frames played, %d lost; want the 10 sent after the node joined, none lost", done.FramesPlayed, done.FramesLost)
	}

	// A start sent again 11 s ago, delivered now: refused, nothing plays.
	stale, err := ctl.Signer.Seal(protocol.TypeLive, "node/n1", protocol.Live{Call: "live-j2", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh}, protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	fc.Advance(protocol.LiveTTL + time.Second)
	before := n.a.Status().Rejected
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, stale)
	nodetest.Eventually(t, 10*time.Second, "the stale start not refused", func() bool { return n.a.Status().Rejected > before })
	for _, e := range ctl.Events("n1") {
		if e.Occurrence == "live-j2" {
			t.Errorf("event %s of a call whose stale start was refused", e.Type)
		}
	}
}

// TestLiveCallStalledBeforeItsDepthWaitsForNewFrames: a pole's link
// dropped while its buffer held fewer frames than its depth (just after
// the call began, or just after it came back to a call): on the frame
// timeout the call was suspended, and at once begun again for the frames
// it still held, which timed out again at once, hundreds of times a
// second: a started and a suspended event each time, the amplifier
// switched on and off, until frames came or the call ended. Frames older
// than the frame timeout must not begin the call again: it waits,
// suspended, for new ones.
func TestLiveCallStalledBeforeItsDepthWaitsForNewFrames(t *testing.T) {
	fc, ctl, n := liveCallOnAir(t, "live-d1", "Họp dân", 2) // fewer frames than the depth
	// The fake clock moves in steps until the call is suspended: the
	// marker that sendNarrowFrames waits for is refused as it arrives, which
	// may be before the agent's loop has taken the frames sent ahead of it
	// and armed their timeout; one step of LiveFrameTimeout taken then
	// would pass before the timer it is meant to fire was set.
	runUntil(t, fc, agent.LiveFrameTimeout+10*time.Second, "the call suspended", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "suspended live-d1 "+protocol.ReasonStream)
	})
	sendNarrowFrames(t, ctl, n, "x1", "live-d1", 0, 0) // the agent's loop took its turns
	sendLive(t, ctl, "x1", protocol.Live{Call: "live-d1", Kind: protocol.LiveEnd})
	nodetest.Eventually(t, 10*time.Second, "the call not ended", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "failed live-d1 "+protocol.ReasonStream)
	})
	call := callEvents(ctl, "live-d1")
	if want := []string{"received live-d1", "started live-d1", "suspended live-d1 " + protocol.ReasonStream, "failed live-d1 " + protocol.ReasonStream}; !slices.Equal(call, want) {
		t.Errorf("events of the call: %d, %q; want %q", len(call), call[:min(len(call), 8)], want)
	}
}
