package agent

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/relay"
	"loaxa.vn/protocol/nodeaudio"
)

// Live jitter buffer (docs/live.md). Frames of a live call arrive over
// MQTT QoS 0: late, out of order, or not at all. The buffer holds them by
// sequence number and serves decoded PCM to the audio output, which pulls
// at the device's pace:
//
//   - it waits until JitterDepth of audio is buffered (or the call ends)
//     before serving the first sample;
//   - a missing frame that later frames have overtaken is lost: it plays
//     as one frame of silence and the frame is dropped if it comes later;
//   - an empty buffer (the sender is behind) waits underrunWait for the
//     next frame (the output reads ahead of real time, so this is not
//     heard), then plays a frame of silence, without skipping anything:
//     a stall never holds the output longer than underrunWait;
//   - frames lost while the buffer was empty (an outage of the link, not
//     a stall) had their time played as those silences: when later frames
//     come, as many missing ones are skipped without playing silence
//     again, so the outage adds nothing to the call's latency (it added
//     its length, for the rest of the call, on this node only: an echo of
//     its neighbours);
//   - more than MaxJitterDepth buffered drops the oldest, so latency stays
//     bounded when the output runs slower than the sender;
//   - a buffer that held more than JitterDepth after every frame played
//     for JitterSettle (late frames came all at once, the numbering
//     jumped, the call waited behind a higher level) drops its oldest
//     frames down to JitterDepth, as the bound above does: the node plays
//     in step with its neighbours again instead of behind them for the
//     rest of the call;
//   - the stream ends (io.EOF) when the end message came and the buffer is
//     drained, and fails (relay.ErrFailed) when no frame came for
//     LiveFrameTimeout; the call is not over for that: the frames that
//     come next play again from the newest (Rejoin), once the buffer
//     holds its depth;
//   - a buffer that joins a call under way (its start was sent again to a
//     node that came online mid-call) plays from the first frame that
//     comes (waiting for frame 0, it played a frame of silence for every
//     frame said before it joined, minutes of it, and counted them lost).

// JitterDepth is the audio the buffer holds before it starts: 200 ms,
// 4 of the controller's 60 ms narrowband frames (5 wideband ones).
const JitterDepth = 200 * time.Millisecond

// MaxJitterDepth is the most audio the buffer holds: 600 ms.
const MaxJitterDepth = 600 * time.Millisecond

// JitterSettle is how long the buffer may hold more than JitterDepth,
// after every frame played, before it drops the excess: 1 s of frames,
// counted in frames played so that only the output's pace matters. Over
// a second, network jitter makes the buffer dip to its depth or below;
// one that never does holds a burst's backlog.
const JitterSettle = time.Second

// framesFor returns how many frames of length frame it takes to hold d.
func framesFor(d, frame time.Duration) int { return int((d + frame - 1) / frame) }

// LiveFrameTimeout ends a live call that receives nothing for this long.
const LiveFrameTimeout = 2 * time.Second

// frameDuration and narrowDuration are the lengths of a wideband and a
// narrowband frame.
const (
	frameDuration  = time.Second * nodeaudio.FrameSamples / nodeaudio.SampleRate
	narrowDuration = time.Second * nodeaudio.NarrowFrameWide / nodeaudio.SampleRate
)

// underrunWait is how long a read of an empty buffer waits for the next
// frame before it plays a frame of silence: two frames, 80 ms.
const underrunWait = 2 * frameDuration

type jitter struct {
	// clock is the agent's: the frame timeout runs on it. The underrun
	// wait is the output's, in real time.
	clock   clock.Clock
	timeout time.Duration
	drill   bool // the call is an exercise: set once, before use
	// joining: the buffer joins a call under way (its start was sent
	// again to this node): it plays from the first frame that comes, and
	// the frames said before it joined are neither played nor lost.
	joining bool

	mu      sync.Mutex
	frames  map[uint64][]int16
	next    uint64 // the sequence number the output plays next
	started bool
	ended   bool
	last    time.Time // when the last frame (or the start) arrived
	played  int       // frames played as sent
	lost    int       // frames played as silence because they never came in time
	// underruns are the frames of silence an empty buffer played since
	// the last frame played: the time of as many frames that may be lost.
	underruns int
	late      int  // frames that came after their place was played
	cut       bool // ended by a cut: the buffered frames were dropped
	timedOut  bool // the stream failed: no frame came for the timeout
	arrived   chan struct{}
	closed    chan struct{}
	once      sync.Once

	pending []byte // decoded bytes not yet read

	// narrow: the call's frames are narrowband (nodeaudio.NarrowFrameBytes,
	// what the controller sends); they are stored at 8 kHz and brought
	// back to the output's rate in play order by up, which keeps its
	// history across frames. Wideband frames (FrameBytes) play as they are.
	narrow bool
	typed  bool // narrow is set
	up     nodeaudio.Upsampler
	// depth, maxDepth and settle are JitterDepth, MaxJitterDepth and
	// JitterSettle in frames of the call's kind.
	depth, maxDepth, settle int
	// low is the fewest frames held after a read in the current window;
	// window counts its reads, up to settle.
	low, window int
}

func newJitter(clk clock.Clock, timeout time.Duration) *jitter {
	return &jitter{
		clock: clk, timeout: timeout, frames: map[uint64][]int16{}, last: clk.Now(),
		depth: framesFor(JitterDepth, frameDuration), maxDepth: framesFor(MaxJitterDepth, frameDuration),
		settle:  framesFor(JitterSettle, frameDuration),
		arrived: make(chan struct{}, 1), closed: make(chan struct{}),
	}
}

// ReadAhead bounds the output's read-ahead to two frames, so that the
// jitter buffer, not the player's buffer, sets the call's latency.
func (j *jitter) ReadAhead() time.Duration { return 2 * frameDuration }

// Push decodes and stores frame seq. A frame whose place has been played,
// a copy, or one that comes after a cut is dropped (counted late): a cut
// call plays nothing more.
func (j *jitter) Push(seq uint64, frame []byte) error {
	narrow := len(frame) == nodeaudio.NarrowFrameBytes
	var s []int16
	var err error
	if narrow {
		s = make([]int16, nodeaudio.NarrowFrameSamples)
		err = nodeaudio.DecodeNarrowFrame(frame, s)
	} else {
		s = make([]int16, nodeaudio.FrameSamples)
		err = nodeaudio.DecodeFrame(frame, s)
	}
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.typed {
		j.narrow, j.typed = narrow, true // the first frame says what the call sends
		if narrow {
			j.depth, j.maxDepth = framesFor(JitterDepth, narrowDuration), framesFor(MaxJitterDepth, narrowDuration)
			j.settle = framesFor(JitterSettle, narrowDuration)
		}
	} else if narrow != j.narrow {
		return fmt.Errorf("%w: live frame of %d bytes: the call's frames so far were of another kind", nodeaudio.ErrFormat, len(frame))
	}
	j.last = j.clock.Now()
	if j.joining {
		j.joining = false
		j.next = seq
	}
	if seq < j.next || j.cut {
		j.late++
		return nil
	}
	j.frames[seq] = s
	for len(j.frames) > j.maxDepth {
		delete(j.frames, j.next)
		j.next++
		j.lost++
	}
	signal(j.arrived)
	return nil
}

// Rejoin readies a buffer whose stream failed (no frame came for the
// timeout) to play the call again, and reports whether it had failed. It
// plays from the newest frames it holds, at most its depth of them, once
// it holds its depth, as at the call's start: the call's current audio,
// not what was said before or during the outage. The frames it skips
// count as lost.
func (j *jitter) Rejoin() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.timedOut {
		return false
	}
	j.timedOut, j.started = false, false
	j.underruns, j.low, j.window = 0, 0, 0
	if len(j.frames) == 0 {
		return true
	}
	held := slices.Sorted(maps.Keys(j.frames)) // all at or after next
	for _, seq := range held[:max(len(held)-j.depth, 0)] {
		delete(j.frames, seq)
	}
	from := held[max(len(held)-j.depth, 0)]
	j.lost += int(from - j.next)
	j.next = from
	return true
}

// End marks the end of the call: what is buffered still plays.
func (j *jitter) End() {
	j.mu.Lock()
	j.ended = true
	j.mu.Unlock()
	signal(j.arrived)
}

// Cut ends the call at once: what is buffered is dropped, and the next
// read ends the stream.
func (j *jitter) Cut() {
	j.mu.Lock()
	j.ended, j.cut = true, true
	clear(j.frames) // the frame being read (pending, 40 ms at most) still plays
	j.mu.Unlock()
	signal(j.arrived)
}

// Close unblocks a Read waiting for the first frames.
func (j *jitter) Close() error {
	j.once.Do(func() { close(j.closed) })
	return nil
}

// Stats returns the frames lost and late so far.
func (j *jitter) Stats() (lost, late int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lost, j.late
}

// jitterCounts is what a call's buffer counted.
type jitterCounts struct {
	played, lost, late int
	buffered           int // frames held, not yet played
	cut                bool
}

// Counts returns the frames played, lost and late so far, those held, and
// whether the call was cut.
func (j *jitter) Counts() jitterCounts {
	j.mu.Lock()
	defer j.mu.Unlock()
	return jitterCounts{played: j.played, lost: j.lost, late: j.late, buffered: len(j.frames), cut: j.cut}
}

// Fresh reports whether the buffer holds frames and the last came less
// than the frame timeout ago: frames it could begin to play again.
func (j *jitter) Fresh() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.frames) > 0 && j.clock.Now().Sub(j.last) < j.timeout
}

// Read serves PCM: never blocking once started.
func (j *jitter) Read(p []byte) (int, error) {
	if len(j.pending) == 0 {
		if err := j.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, j.pending)
	j.pending = j.pending[n:]
	return n, nil
}

// fill puts the next frame (or a frame of silence) in pending.
func (j *jitter) fill() error {
	if err := j.waitStart(); err != nil {
		return err
	}
	j.mu.Lock()
	if len(j.frames) == 0 && !j.ended {
		// The output reads ahead of real time (its own buffer): wait a
		// little for the frame due rather than play silence at once.
		j.mu.Unlock()
		t := time.NewTimer(underrunWait)
		select {
		case <-j.arrived:
		case <-j.closed:
		case <-t.C:
		}
		t.Stop()
		j.mu.Lock()
	}
	defer j.mu.Unlock()
	s, ok := j.frames[j.next]
	if !ok && len(j.frames) > 0 {
		// Overtaken after an empty buffer: the missing frames whose time
		// its silences already took are lost without more silence.
		for ; j.underruns > 0 && !ok; s, ok = j.frames[j.next] {
			j.next++
			j.lost++
			j.underruns--
		}
	}
	switch {
	case ok:
		delete(j.frames, j.next)
		j.next++
		j.played++
		j.underruns = 0
	case len(j.frames) > 0:
		// Overtaken: the frame is lost.
		j.next++
		j.lost++
	case j.ended:
		return io.EOF
	case j.clock.Now().Sub(j.last) >= j.timeout:
		j.timedOut = true
		return fmt.Errorf("%w: no live frame for %s", relay.ErrFailed, j.timeout)
	default:
		j.underruns++ // a frame of silence while the buffer is empty
	}
	j.trim()
	if j.narrow {
		wide := make([]int16, nodeaudio.NarrowFrameWide)
		if err := j.up.Upsample(s, wide); err != nil { // s nil: silence through the filter
			return err
		}
		s = wide
	}
	buf := make([]byte, 2*max(len(s), nodeaudio.FrameSamples))
	for i, v := range s { // s is nil for wideband silence: buf stays zero
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(v))
	}
	j.pending = buf
	return nil
}

// trim drops the oldest frames held beyond the depth once the buffer has
// held more than its depth after every read for a settle window.
func (j *jitter) trim() {
	if held := len(j.frames); j.window == 0 || held < j.low {
		j.low = held
	}
	if j.window++; j.window < j.settle {
		return
	}
	for keep := len(j.frames) - (j.low - j.depth); len(j.frames) > keep; {
		delete(j.frames, j.next) // a gap in the numbering counts as lost too
		j.next++
		j.lost++
	}
	j.window = 0
}

// waitStart blocks until JitterDepth is buffered, the call ended,
// or nothing came for the timeout.
func (j *jitter) waitStart() error {
	for {
		j.mu.Lock()
		if j.started || len(j.frames) >= j.depth || j.ended {
			j.started = true
			j.mu.Unlock()
			return nil
		}
		wait := j.timeout - j.clock.Now().Sub(j.last)
		j.timedOut = wait <= 0
		j.mu.Unlock()
		if wait <= 0 {
			return fmt.Errorf("%w: no live frame for %s", relay.ErrFailed, j.timeout)
		}
		t := j.clock.NewTimer(wait)
		select {
		case <-j.arrived:
		case <-j.closed:
			t.Stop()
			return fmt.Errorf("live call closed before it began: %w", io.ErrClosedPipe)
		case <-t.C():
		}
		t.Stop()
	}
}
