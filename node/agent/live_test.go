package agent_test

import (
	"testing"

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
