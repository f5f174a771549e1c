// Package liveaudio speaks live through the real audio path — the Go
// client, the controller's WebSocket, the embedded broker, the agent, oto,
// ALSA — over a bulletin, and checks the sound that came out. It is its
// own test binary because oto allows one sound device per process.
package liveaudio

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, alsatest.OtoLoops...)
}

// TestLiveCallThroughALSA: a live call to area 31 cuts off the bulletin
// playing there; the speaker plays the call (as the controller encoded
// it), the node of sibling area 32 plays nothing, the bulletin plays again
// after the call, and a second call whose client disconnects ends on the
// node; a drill at volume 5 plays marked as one, 20 dB below the level it
// was sent at. The mouth-to-speaker latency is bounded by the issue's
// target for a LAN, 600 ms (MaxMouthToSpeaker), and logged.
// MaxMouthToSpeaker is the bound on a live call's latency on a
// LAN: first sample sent by the client → heard at the sound device. One
// machine is a LAN at its best, and the harness's capture FIFO (~64 ms)
// counts against it too.
const MaxMouthToSpeaker = 600 * time.Millisecond

func TestLiveCallThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("32", "Tỉnh Quảng Ninh", "")
	n := rig.StartNode(t, c.CreateNode("hp-01", "31"), rig.NodeOptions{Output: out})
	sibBoard, err := board.New(clock.Real{}, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	sib := rig.StartNode(t, c.CreateNode("qn-01", "32"), rig.NodeOptions{Board: sibBoard})
	rig.Eventually(t, 15*time.Second, "nodes online", func() bool {
		return c.Node("hp-01").Status.State == loaxa.NodeOnline && c.Node("qn-01").Status.State == loaxa.NodeOnline
	})

	bulletinPCM := alsatest.Chirp(6*time.Second, 12000)
	bulletin := c.Upload("ban-tin.wav", rig.PCMWAV(bulletinPCM, 16000, 1))
	start := time.Now().Add(2 * time.Second)
	ann := c.Announce(bulletin.ID, []string{"31"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	from := capture.Len()
	// The bulletin as the node plays it: the stored content decoded.
	wantBulletin := throughADPCMFile(t, bulletinPCM)
	capture.Await(t, wantBulletin[:nodeaudio.SampleRate/2], from, 15*time.Second)

	// The officer's voice: a falling chirp, distinct from the bulletin.
	voice := reversed(alsatest.Chirp(3*time.Second, 12000))
	wantVoice := throughFrames(t, voice)
	var (
		mu       sync.Mutex
		sentAt   time.Time
		sentLen  int // capture length when the first sample was sent
		statuses []liveclient.Status
	)
	opt := liveclient.Options{URL: c.URL, Token: c.Token, Areas: []string{"31"}, Title: "Thông báo trực tiếp",
		OnSend: func(int) {
			mu.Lock()
			defer mu.Unlock()
			if sentAt.IsZero() {
				sentAt, sentLen = time.Now(), capture.Len()
			}
		},
		OnStatus: func(s liveclient.Status) { mu.Lock(); statuses = append(statuses, s); mu.Unlock() },
	}
	// A bound against a hang, shared by the four calls and the waits
	// between them (51 s at load 33): not a timing check.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	call, err := liveclient.Dial(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(pcmBytes(voice))) }()

	// The speaker plays the call.
	m := capture.Await(t, wantVoice[:nodeaudio.NarrowFrameWide], from, 15*time.Second)
	if m.Score < 0.99 {
		t.Errorf("live audio correlates %.4f with what the controller encoded, want ≥ 0.99", m.Score)
	}
	var callID string
	rig.Eventually(t, 5*time.Second, "live call on air on hp-01", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && p.Occurrence != occ {
			callID = p.Occurrence
			return true
		}
		return false
	})
	if p := sib.Agent.Status().Playing; p != nil {
		t.Errorf("node of sibling area 32 plays %+v during a call to 31", p)
	}
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	st, err := call.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "ended" || st.Reason != "speaker stopped" || st.Call != callID {
		t.Errorf("end status %+v, want ended by the speaker for call %s", st, callID)
	}
	// The call came out frame by frame, in order: a frame that came too
	// late plays as silence in its place. How many came late depends on
	// this machine's load (5 of 49 in a full run at load 16), so what must
	// hold is that every frame the node says it played was heard at the
	// sound device, and that it says why for every other one.
	rig.Eventually(t, 15*time.Second, "the call's length captured", func() bool {
		return capture.Len() >= m.Offset+len(wantVoice)+nodeaudio.SampleRate
	})
	h := framesHeard(t, capture, wantVoice, m.Offset)
	frames := len(wantVoice) / nodeaudio.NarrowFrameWide
	if h.cut > 0 {
		t.Logf("%d frames came out in pieces, cut by silence the device played", h.cut)
	}
	heardAsPlayed(t, c, "hp-01", callID, st.Frames, frames, h.found)
	end := h.end
	stretch := time.Duration(end-m.Offset-frames*nodeaudio.NarrowFrameWide) * time.Second / nodeaudio.SampleRate
	t.Logf("call heard: %d of %d frames, %v of silence inserted for late frames and by the device", h.found, frames, stretch)
	mu.Lock()
	latency := time.Duration(m.Offset-sentLen) * time.Second / nodeaudio.SampleRate
	mu.Unlock()
	t.Logf("mouth-to-speaker latency: %v (first sample sent → heard at the sound device; jitter buffer %v)", latency, 200*time.Millisecond)
	if latency > MaxMouthToSpeaker {
		t.Errorf("mouth-to-speaker latency %v, want at most %v", latency, MaxMouthToSpeaker)
	}

	// The bulletin, cut off, plays again from its beginning after the call.
	capture.Await(t, wantBulletin[:nodeaudio.SampleRate], end-16, 15*time.Second)
	// The capture proves it sounds again; the node's report says so too
	// (started again after the cut, then completed). Waiting on the
	// report, not on the node's "playing now", which a slow machine can
	// miss between two looks.
	rig.Eventually(t, 20*time.Second, "bulletin started again and completed", func() bool {
		var types []protocol.EventType
		for _, e := range c.Events(url.Values{"node": {"hp-01"}}) {
			if e.Occurrence == occ {
				types = append(types, e.Type)
			}
		}
		starts := 0
		for _, ty := range types {
			if ty == protocol.EventStarted {
				starts++
			}
		}
		return starts >= 2 && slices.Contains(types, protocol.EventCompleted)
	})
	if sib.Agent.Status().Playing != nil {
		t.Error("node of sibling area 32 plays something")
	}

	// A second call whose client just disconnects ends on the node.
	call2, err := liveclient.Dial(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	go func() { streamed <- call2.Stream(ctx, bytes.NewReader(pcmBytes(voice))) }()
	var call2ID string
	rig.Eventually(t, 10*time.Second, "second call on air", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && p.Occurrence != occ && p.Occurrence != callID {
			call2ID = p.Occurrence
			return true
		}
		return false
	})
	call2.Drop()
	<-streamed // the send fails or ends: the connection is gone
	rig.Eventually(t, 10*time.Second, "second call off the air after the disconnect", func() bool {
		p := n.Agent.Status().Playing
		return p == nil || p.Occurrence != call2ID
	})
	// A call to area 32, where nothing else plays, whose client
	// disconnects: the amplifier goes on for it and off after it.
	opt.Areas = []string{"32"}
	call3, err := liveclient.Dial(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	go func() { streamed <- call3.Stream(ctx, bytes.NewReader(pcmBytes(voice))) }()
	rig.Eventually(t, 10*time.Second, "call to 32 on air on qn-01 with its amplifier on", func() bool {
		p := sib.Agent.Status().Playing
		return p != nil && strings.HasPrefix(p.Occurrence, "live-") && sibBoard.Amplifier()
	})
	call3.Drop()
	<-streamed
	rig.Eventually(t, 15*time.Second, "qn-01 off the air, amplifier released", func() bool {
		return sib.Agent.Status().Playing == nil && !sibBoard.Amplifier()
	})

	// A drill to area 31 at volume 5: the node plays it as a drill, every
	// frame as encoded but 20 dB below the level it was delivered at.
	opt.Areas, opt.Drill, opt.Volume, opt.OnSend = []string{"31"}, true, 5, nil
	from = capture.Len()
	drill, err := liveclient.Dial(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	go func() { streamed <- drill.Stream(ctx, bytes.NewReader(pcmBytes(voice))) }()
	md := capture.Await(t, wantVoice[:nodeaudio.NarrowFrameWide], from, 15*time.Second)
	if p := n.Agent.Status().Playing; p == nil || !strings.HasPrefix(p.Occurrence, "live-") || !p.Drill {
		t.Errorf("hp-01 plays %+v while the drill sounds, want a live call marked drill", p)
	}
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	st, err = drill.End(ctx)
	if err != nil || !st.Drill || st.Reason != loaxa.LiveEndSpeakerStopped {
		t.Fatalf("drill's end %+v, %v", st, err)
	}
	rig.Eventually(t, 15*time.Second, "the drill's length captured", func() bool {
		return capture.Len() >= md.Offset+len(wantVoice)+nodeaudio.SampleRate
	})
	// Each frame where it was heard (a late one plays as silence: skipped;
	// one the device cut in two is heard, as in the call above).
	hd := framesHeard(t, capture, wantVoice, md.Offset)
	if hd.cut > 0 {
		t.Logf("%d frames of the drill came out in pieces, cut by silence the device played", hd.cut)
	}
	heardAsPlayed(t, c, "hp-01", st.Call, st.Frames, frames, hd.found)
	found, heardE, wantE := hd.found, hd.heardE, hd.wantE
	if found == 0 {
		t.Error("no frame of the drill heard")
	} else if db := 10 * math.Log10(heardE/wantE); math.Abs(db-(-20)) > 0.5 {
		t.Errorf("drill heard at %.2f dB of its delivered level, want −20 dB (volume 5)", db)
	} else {
		t.Logf("drill at volume 5: %d of %d frames heard at %.2f dB", found, frames, db)
	}
	t.Logf("calls %s and %s; statuses %+v", callID, call2ID, statuses)
}

// frameHearing is what framesHeard found of a call's frames.
type frameHearing struct {
	found int // frames heard, whole or in pieces
	cut   int // of them, those in pieces
	end   int // capture index just past the last frame found
	// heardE is the energy of the frames found as heard (the silence
	// the device inserted adds none), wantE of the same frames as
	// delivered.
	heardE, wantE float64
}

// framesHeard looks for each frame of want in the capture, in order, each
// after the last one found, from at (where the first frame was heard). A
// frame the node played as silence (it came too late, or was lost) is not
// there. Two things a busy machine does to a frame the node played are
// not faults, and the frame is heard:
//   - its output, starved of the CPU, had nothing ready and the device
//     played exact silence: the frame comes out cut in two by it (a run at
//     load 12–17 cut the call's last frame so, and the test, looking for
//     each frame whole, counted it unheard). It is looked for across that
//     silence.
//   - a frame that came late to the node: it plays a frame of silence
//     while it waits (stretching the call), and the frame after it lacks
//     the upsampling filter's memory of the one before: its first
//     nodeaudio.NarrowDelay samples (3.9 ms) are not those of the
//     unbroken stream, and the frame scored 0.98 whole. Only the rest,
//     which the frame alone makes, is looked for.
func framesHeard(t *testing.T, capture *alsatest.Capture, want []int16, at int) frameHearing {
	t.Helper()
	h := frameHearing{end: at}
	for k := 0; k+nodeaudio.NarrowFrameWide <= len(want); k += nodeaudio.NarrowFrameWide {
		all, err := capture.SamplesFrom(h.end)
		if err != nil {
			t.Fatal(err)
		}
		all = all[:min(len(all), 4*nodeaudio.SampleRate)]
		own := want[k+nodeaudio.NarrowDelay : k+nodeaudio.NarrowFrameWide]
		f, ok := alsatest.FindAcrossSilence(all, own)
		if !ok || f.Score < 0.99 {
			continue
		}
		h.found++
		if f.Inserted > 0 {
			h.cut++
		}
		h.heardE += energy(all[f.Offset:f.End()])
		h.wantE += energy(own)
		h.end += f.End()
	}
	return h
}

// heardAsPlayed checks a live call's frames heard at the sound device
// against the node's own account, on the final event of its play: of the
// sent frames (the controller's count, the last one padded with silence),
// the first checked were looked for and heard of them were found; each
// frame the node played as sent must be among those heard (but for the
// ones not looked for), and each frame sent played or lost. A frame the
// node played that the device did not sound, or one it does not account
// for, is a fault of the audio path; how many came late is this machine's.
func heardAsPlayed(t *testing.T, c *rig.Controller, node, call string, sent uint64, checked, heard int) {
	t.Helper()
	var final *loaxa.Event
	rig.Eventually(t, 15*time.Second, "the final event of "+call+" on "+node, func() bool {
		for _, e := range c.Events(url.Values{"node": {node}}) {
			if e.Occurrence == call && (e.Type == protocol.EventCompleted || e.Type == protocol.EventFailed) {
				final = e
				return true
			}
		}
		return false
	})
	played, lost, late := int(final.FramesPlayed), int(final.FramesLost), int(final.FramesLate)
	t.Logf("%s on %s: %d of the %d frames looked for heard (%d sent); the node played %d, lost %d, late %d",
		call, node, heard, checked, sent, played, lost, late)
	if notLooked := int(sent) - checked; heard < played-notLooked {
		t.Errorf("%s: the node played %d of %d frames sent, the sound device sounded %d of the %d looked for",
			call, played, sent, heard, checked)
	}
	if uint64(played+lost) < sent {
		t.Errorf("%s: the node accounts for %d played and %d lost of the %d frames sent", call, played, lost, sent)
	}
}

func energy(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return sum
}

func reversed(s []int16) []int16 {
	out := make([]int16, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func pcmBytes(s []int16) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// throughFrames returns s as the node plays it after the controller cut it
// into narrowband live frames (the last padded with silence), encoded them,
// and the node decoded and upsampled them: delayed by the filters'
// nodeaudio.NarrowDelay samples.
func throughFrames(t *testing.T, s []int16) []int16 {
	var enc nodeaudio.NarrowFrameEncoder
	var up nodeaudio.Upsampler
	var out []int16
	for i := 0; i < len(s); i += nodeaudio.NarrowFrameWide {
		f := make([]int16, nodeaudio.NarrowFrameWide)
		copy(f, s[i:])
		b, err := enc.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		narrow := make([]int16, nodeaudio.NarrowFrameSamples)
		if err := nodeaudio.DecodeNarrowFrame(b, narrow); err != nil {
			t.Fatal(err)
		}
		d := make([]int16, nodeaudio.NarrowFrameWide)
		if err := up.Upsample(narrow, d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d...)
	}
	return out[:len(s)]
}

// throughADPCMFile returns s as a node plays the content made of it.
func throughADPCMFile(t *testing.T, s []int16) []int16 {
	file, err := nodeaudio.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := nodeaudio.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(s))
	if err := binary.Read(r, binary.LittleEndian, out); err != nil {
		t.Fatal(err)
	}
	return out
}
