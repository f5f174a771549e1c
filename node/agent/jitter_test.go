package agent

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/relay"
	"loaxa.vn/protocol/nodeaudio"
)

// liveFrame returns a frame whose samples all decode near v (a constant
// signal, so the frame's identity shows in the PCM).
func liveFrame(t *testing.T, v int16) []byte {
	t.Helper()
	s := make([]int16, nodeaudio.FrameSamples)
	for i := range s {
		s[i] = v
	}
	var e nodeaudio.FrameEncoder
	f, err := e.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readFrame reads one frame of PCM and returns its first sample.
func readFrame(t *testing.T, j *jitter) (int16, error) {
	t.Helper()
	buf := make([]byte, 2*nodeaudio.FrameSamples)
	if _, err := io.ReadFull(j, buf); err != nil {
		return 0, err
	}
	return int16(binary.LittleEndian.Uint16(buf[2*(nodeaudio.FrameSamples-1):])), nil
}

func TestJitterOrdersLateFramesAndFillsLostOnes(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, time.Second)
	// Frames 0..5 with 2 missing and 4 before 3.
	for _, seq := range []uint64{0, 1, 4, 3, 5, 6} {
		if err := j.Push(seq, liveFrame(t, int16(1000*(seq+1)))); err != nil {
			t.Fatal(err)
		}
	}
	want := []int16{1000, 2000, 0, 4000, 5000, 6000, 7000}
	for i, w := range want {
		got, err := readFrame(t, j)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if d := int(got) - int(w); d < -64 || d > 64 {
			t.Fatalf("frame %d ends with %d, want about %d", i, got, w)
		}
	}
	// Frame 2 comes after its place played: dropped, counted late.
	if err := j.Push(2, liveFrame(t, 3000)); err != nil {
		t.Fatal(err)
	}
	if lost, late := j.Stats(); lost != 1 || late != 1 {
		t.Fatalf("lost, late = %d, %d; want 1, 1", lost, late)
	}
	// Empty: silence, not a stall, and nothing skipped.
	if got, err := readFrame(t, j); err != nil || got != 0 {
		t.Fatalf("empty buffer read %d, %v; want silence", got, err)
	}
	if err := j.Push(7, liveFrame(t, 8000)); err != nil {
		t.Fatal(err)
	}
	if got, err := readFrame(t, j); err != nil || got < 7900 || got > 8100 {
		t.Fatalf("frame 7 read %d, %v", got, err)
	}
	j.End()
	if _, err := readFrame(t, j); !errors.Is(err, io.EOF) {
		t.Fatalf("after end: %v, want EOF", err)
	}
}

func TestJitterTimesOut(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, 2*time.Second)
	for seq := range uint64(framesFor(JitterDepth, frameDuration)) {
		if err := j.Push(seq, liveFrame(t, 100)); err != nil {
			t.Fatal(err)
		}
	}
	for range framesFor(JitterDepth, frameDuration) {
		if _, err := readFrame(t, j); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readFrame(t, j); err != nil {
		t.Fatalf("before the timeout an empty buffer plays silence, got %v", err)
	}
	clk.Advance(2 * time.Second)
	if _, err := readFrame(t, j); !errors.Is(err, relay.ErrFailed) {
		t.Fatalf("after the timeout: %v, want relay.ErrFailed", err)
	}
}

// TestJitterRejoinsFromItsNewestFrames: a buffer that timed out (the
// node's link dropped) plays the call again when its frames come back:
// from the newest it holds, at its depth, as the call's neighbours play
// it now, not from what was said seconds ago; what it skipped is lost.
func TestJitterRejoinsFromItsNewestFrames(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, 2*time.Second)
	depth := framesFor(JitterDepth, frameDuration)
	for seq := range uint64(depth) {
		if err := j.Push(seq, liveFrame(t, 100)); err != nil {
			t.Fatal(err)
		}
	}
	for range depth {
		if _, err := readFrame(t, j); err != nil {
			t.Fatal(err)
		}
	}
	if j.Rejoin() {
		t.Fatal("Rejoin of a buffer that plays on says it had failed")
	}
	clk.Advance(2 * time.Second)
	if _, err := readFrame(t, j); !errors.Is(err, relay.ErrFailed) {
		t.Fatalf("after the timeout: %v, want relay.ErrFailed", err)
	}
	for seq := uint64(40); seq < 50; seq++ {
		if err := j.Push(seq, liveFrame(t, int16(500*(seq-39)))); err != nil {
			t.Fatal(err)
		}
	}
	if !j.Rejoin() {
		t.Fatal("Rejoin of a buffer that timed out says it had not")
	}
	for seq := 50 - depth; seq < 50; seq++ {
		got, err := readFrame(t, j)
		if w := 500 * (seq - 39); err != nil || int(got) < w-64 || int(got) > w+64 {
			t.Fatalf("frame %d read %d, %v; want about %d", seq, got, err, w)
		}
	}
	if lost, _ := j.Stats(); lost != 50-depth-depth {
		t.Errorf("lost = %d, want the %d frames skipped", lost, 50-depth-depth)
	}
}

func TestJitterBoundsItsDepth(t *testing.T) {
	j := newJitter(clock.Real{}, time.Second)
	for seq := range uint64(framesFor(MaxJitterDepth, frameDuration) + 10) {
		if err := j.Push(seq, liveFrame(t, int16(seq))); err != nil {
			t.Fatal(err)
		}
	}
	if lost, _ := j.Stats(); lost != 10 {
		t.Fatalf("lost = %d, want the 10 oldest dropped", lost)
	}
	got, err := readFrame(t, j)
	if err != nil || got < 0 || got > 20 { // frame 10 holds 10
		t.Fatalf("first frame after overflow: %d, %v; want about 10", got, err)
	}
}

func TestJitterWaitsForItsDepthThenCloses(t *testing.T) {
	j := newJitter(clock.Real{}, time.Minute)
	done := make(chan error, 1)
	go func() { _, err := readFrame(t, j); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("read returned %v with an empty buffer before the call began", err)
	case <-time.After(20 * time.Millisecond):
	}
	j.Close()
	if err := <-done; err == nil {
		t.Fatal("closed before the start: read succeeded")
	}
}

func TestJitterRefusesBadFrames(t *testing.T) {
	j := newJitter(clock.Real{}, time.Second)
	if err := j.Push(0, []byte{1, 2, 3}); !errors.Is(err, nodeaudio.ErrFormat) {
		t.Fatalf("short frame: %v", err)
	}
}

// A cut drops what is buffered: the stream ends at once, and the counts
// say what played, what was lost and late, and that the call was cut.
func TestJitterCutDropsTheBuffer(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, time.Second)
	for _, seq := range []uint64{0, 2, 3, 4, 5, 6, 7} {
		if err := j.Push(seq, liveFrame(t, 500)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // frames 0, 1 (lost: overtaken), 2
		if _, err := readFrame(t, j); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Push(1, liveFrame(t, 500)); err != nil { // too late
		t.Fatal(err)
	}
	j.Cut()
	if _, err := readFrame(t, j); !errors.Is(err, io.EOF) {
		t.Fatalf("after a cut with 5 frames buffered: %v, want EOF at once", err)
	}
	if got, want := j.Counts(), (jitterCounts{played: 2, lost: 1, late: 1, cut: true}); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}

// TestJitterCutTakesNoLaterFrames: frames of a cut call that come after
// the cut (late, queued at the broker) were buffered again and played
// after it, silence for the frames between: the commune heard the call go
// on after an officer cut it. After a cut the stream ends, whatever comes.
func TestJitterCutTakesNoLaterFrames(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, time.Second)
	for seq := range uint64(5) {
		if err := j.Push(seq, liveFrame(t, 500)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := readFrame(t, j); err != nil {
			t.Fatal(err)
		}
	}
	j.Cut()
	for seq := uint64(5); seq < 9; seq++ {
		if err := j.Push(seq, liveFrame(t, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := readFrame(t, j); !errors.Is(err, io.EOF) {
		t.Fatalf("frames after the cut: read a frame (%d, %v), want EOF", v, err)
	}
	if got, want := j.Counts(), (jitterCounts{played: 2, late: 4, cut: true}); got != want {
		t.Errorf("counts %+v, want %+v (the frames after the cut late)", got, want)
	}
}

// TestJitterNarrowFrames: the controller's narrowband frames come out at
// the output's rate, 642 samples each, in order; a lost frame is silence
// once the filter's tail has passed; a wideband frame in a narrowband call
// is refused.
func TestJitterNarrowFrames(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	j := newJitter(clk, time.Second)
	var e nodeaudio.NarrowFrameEncoder
	for seq := range uint64(4) {
		s := make([]int16, nodeaudio.NarrowFrameWide)
		for i := range s {
			s[i] = int16(1000 * (seq + 1))
		}
		f, err := e.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if seq == 2 {
			continue // lost on the way
		}
		if err := j.Push(seq, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Push(9, liveFrame(t, 1)); !errors.Is(err, nodeaudio.ErrFormat) {
		t.Errorf("wideband frame in a narrowband call: %v, want ErrFormat", err)
	}
	j.End()
	for i, want := range []int16{1000, 2000, 0, 4000} {
		buf := make([]byte, 2*nodeaudio.NarrowFrameWide)
		if _, err := io.ReadFull(j, buf); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		last := int16(binary.LittleEndian.Uint16(buf[len(buf)-2:]))
		if d := int(last) - int(want); d < -100 || d > 100 {
			t.Errorf("frame %d ends with %d, want about %d", i, last, want)
		}
		if want == 0 {
			for k := nodeaudio.NarrowDelay; k < nodeaudio.NarrowFrameWide; k++ {
				if v := int16(binary.LittleEndian.Uint16(buf[2*k:])); v != 0 {
					t.Fatalf("lost frame: sample %d is %d after the filter's tail", k, v)
				}
			}
		}
	}
	if _, err := io.ReadFull(j, make([]byte, 2)); err != io.EOF {
		t.Errorf("after the end: %v, want EOF", err)
	}
	if c := j.Counts(); c.played != 3 || c.lost != 1 {
		t.Errorf("counts %+v, want 3 played, 1 lost", c)
	}
}

// TestJitterOutageAddsNoLatency: a network outage in which the
// controller's QoS 0 frames are lost (not delayed). The output keeps
// pulling one frame per 60 ms slot: while the buffer is empty it plays
// silence; when the frames come back, the lost frames whose time that
// silence took are skipped, and the buffer holds what it held before.
// Before, each lost frame was played as silence a second time
// ("overtaken") while new frames piled up until MaxJitterDepth dropped
// the oldest, a frame that came in time: the call ran with 600 ms in the
// buffer instead of 240 ms for the rest of it, on this node only (its
// neighbours played 360 ms earlier: an echo between clusters).
func TestJitterOutageAddsNoLatency(t *testing.T) {
	j, push, read, held := narrowFrames(t)
	depth := framesFor(JitterDepth, narrowDuration)
	var seq uint64
	for ; seq < uint64(depth); seq++ {
		push(seq)
	}
	slot := func(n int) { // n slots of one frame in, one frame out
		for range n {
			push(seq)
			seq++
			read()
		}
	}
	slot(20)
	before := held()

	const outage = 17 // about a second of frames lost on the network
	for range outage {
		seq++ // sent, never arrives
		read()
	}
	slot(60) // 3.6 s of normal traffic after it
	after := held()
	lost, _ := j.Stats()
	t.Logf("buffered before the outage %d frames, after %d; lost %d (outage %d)", before, after, lost, outage)
	if after > before+1 {
		t.Errorf("3.6 s after a %d-frame outage the buffer holds %d frames (%v), it held %d (%v) before: the outage's length stays added to the call's latency",
			outage, after, time.Duration(after)*narrowDuration, before, time.Duration(before)*narrowDuration)
	}
	if lost != outage {
		t.Errorf("%d frames counted lost for %d lost on the network: frames that came in time were dropped", lost, outage)
	}
}

// TestJitterReturnsToItsDepthAfterABurst: frames that come late and then
// all at once, a jump in the numbering while frames are buffered, or a
// call that waited behind a higher level with its buffer full left the
// buffer holding 560–600 ms instead of its 240 ms for the rest of the
// call: the node played 360 ms behind its neighbours, an echo between
// poles (measured with wideband frames: 560 ms held instead of 200 ms). Once it has held more than its depth after every frame played
// for JitterSettle, the buffer drops the oldest frames down to its depth,
// once, and no frame that came in time is dropped when it does not.
func TestJitterReturnsToItsDepthAfterABurst(t *testing.T) {
	depth := framesFor(JitterDepth, narrowDuration)
	settle := framesFor(time.Second, narrowDuration) // JitterSettle
	for _, tc := range []struct {
		name string
		// before runs after the call has played 20 frames in step, with
		// push and read; it returns the next seq to send.
		before   func(seq uint64, push func(uint64), read func()) uint64
		wantLost int
	}{
		{"steady", func(seq uint64, _ func(uint64), _ func()) uint64 { return seq }, 0},
		{"late frames all at once", func(seq uint64, push func(uint64), read func()) uint64 {
			// 600 ms of frames held up on the way: the buffer plays its
			// 4 frames, then 6 of silence, then they come all at once.
			late := depth + 6
			for range late {
				read()
			}
			for range late {
				push(seq)
				seq++
			}
			return seq
		}, 6},
		{"numbering jumps", func(seq uint64, push func(uint64), read func()) uint64 {
			return seq + 25 // 25 frames never sent, in no time
		}, 25 + 6}, // the gap, then the 6 frames over the depth that piled up to the bound
		{"output held up", func(seq uint64, push func(uint64), _ func()) uint64 {
			for range 8 { // 480 ms without a read (a call that waited behind an alert)
				push(seq)
				seq++
			}
			return seq
		}, 2 + 6}, // 2 over the bound, then 6 over the depth
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, push, read, held := narrowFrames(t)
			var seq uint64
			for ; seq < uint64(depth); seq++ {
				push(seq)
			}
			slot := func(n int) { // n slots of one frame in, one frame out
				for range n {
					push(seq)
					seq++
					read()
				}
			}
			slot(20)
			if h := held(); h != depth {
				t.Fatalf("in step the buffer holds %d frames, want its depth %d", h, depth)
			}
			seq = tc.before(seq, push, read)
			slot(3 * settle) // 3 s of normal traffic
			lost, _ := j.Stats()
			t.Logf("3 s after it: %d frames held (%v), %d lost", held(), time.Duration(held())*narrowDuration, lost)
			if h := held(); h != depth {
				t.Errorf("3 s after it the buffer holds %d frames (%v), want its depth %d (%v): the node plays %v behind its neighbours",
					h, time.Duration(h)*narrowDuration, depth, time.Duration(depth)*narrowDuration, time.Duration(h-depth)*narrowDuration)
			}
			if lost != tc.wantLost {
				t.Errorf("%d frames lost, want %d", lost, tc.wantLost)
			}
		})
	}
}

// narrowFrames gives a jitter buffer j on a fake clock, fed steady
// narrowband frames: push queues frame seq, read takes one frame's
// worth as the output does, held is how many frames are buffered ahead
// of the output.
func narrowFrames(t *testing.T) (j *jitter, push func(seq uint64), read func(), held func() int) {
	j = newJitter(clock.NewFake(time.Unix(1e9, 0)), LiveFrameTimeout)
	var enc nodeaudio.NarrowFrameEncoder
	pcm := make([]int16, nodeaudio.NarrowFrameWide)
	for i := range pcm {
		pcm[i] = 1000
	}
	push = func(seq uint64) {
		t.Helper()
		f, err := enc.Encode(pcm)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Push(seq, f); err != nil {
			t.Fatal(err)
		}
	}
	read = func() {
		t.Helper()
		if _, err := io.ReadFull(j, make([]byte, 2*nodeaudio.NarrowFrameWide)); err != nil {
			t.Fatal(err)
		}
	}
	held = func() int {
		j.mu.Lock()
		defer j.mu.Unlock()
		return len(j.frames)
	}
	return j, push, read, held
}
