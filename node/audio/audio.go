// Package audio holds the node's sound outputs and the helpers they share.
// None plays nothing and only paces the PCM in real time, for simulated
// fleets and boards without a sound device; package audio/oto plays through
// the real device. Both implement agent.Output.
package audio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol/nodeaudio"
)

// ErrDeviceLost is what an output's error wraps when its sound device
// failed in a way this process cannot recover from: oto keeps one device
// per process and, once a write fails beyond ALSA's recovery (a USB sound
// card gone on a brownout), never plays again. Only a new process can
// open the device again.
var ErrDeviceLost = errors.New("sound device lost: it plays again only once the agent has restarted")

// Chunk is how much audio an output consumes at a time: short enough that a
// stop takes effect at once, long enough to keep wake-ups rare.
const Chunk = 100 * time.Millisecond

// Counter counts the bytes read through it, so the agent can tell how much
// of the content an output consumed. It is safe to read N concurrently.
type Counter struct {
	R io.Reader
	n atomic.Int64
}

// ReadAhead is what a live source implements to bound how much an output
// reads ahead of what is heard: an output that fills a large buffer
// before it sounds would add that buffer to a live call's latency.
type ReadAhead interface {
	ReadAhead() time.Duration
}

// ReadAhead returns R's ReadAhead, or 0 (the output's default).
func (c *Counter) ReadAhead() time.Duration {
	if r, ok := c.R.(ReadAhead); ok {
		return r.ReadAhead()
	}
	return 0
}

// Read reads from R and counts.
func (c *Counter) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// N returns how many bytes were read.
func (c *Counter) N() int64 { return c.n.Load() }

// ReadChunk fills buf from r unless r ends first. It returns the bytes read,
// whether r ended (io.EOF), and any other error, which is wrapped.
func ReadChunk(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		switch {
		case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			return n, true, nil
		case err != nil:
			return n, false, fmt.Errorf("read audio: %w", err)
		case k == 0:
			// A reader that returns nothing and no error is allowed but
			// rare; try again rather than spin on a full buffer.
			continue
		}
	}
	return n, false, nil
}

// None is an Output without a device: it reads the PCM at the pace it would
// play, on its clock, and discards it. Playing on None takes as long as on a
// speaker, so schedules, events and stops behave as on a real board. A read
// that keeps it waiting (content still to come) past when its sound was
// due runs it dry, as a device: what comes after is heard from then on,
// not read at once to catch up.
type None struct {
	clock clock.Clock
	plays atomic.Int64
}

// NewNone returns a None output pacing on c (clock.Real{} when nil).
func NewNone(c clock.Clock) *None {
	if c == nil {
		c = clock.Real{}
	}
	return &None{clock: c}
}

// dryAfter is how long a read may keep None waiting before it counts as
// the output running dry: far longer than reading a cached file takes.
const dryAfter = 50 * time.Millisecond

// waitingReader notes the last read that kept None waiting: at which byte
// of the stream (dryAt) and when it returned (cameAt).
type waitingReader struct {
	r      io.Reader
	clock  clock.Clock
	n      int64
	waited bool
	dryAt  int64
	cameAt time.Time
}

func (w *waitingReader) Read(p []byte) (int, error) {
	asked := w.clock.Now()
	n, err := w.r.Read(p)
	if now := w.clock.Now(); now.Sub(asked) > dryAfter {
		w.waited, w.dryAt, w.cameAt = true, w.n, now
	}
	w.n += int64(n)
	return n, err
}

// Play reads pcm in real time until EOF or ctx is cancelled.
func (o *None) Play(ctx context.Context, pcm io.Reader) error {
	o.plays.Add(1)
	src := &waitingReader{r: pcm, clock: o.clock}
	buf := make([]byte, nodeaudio.Bytes(Chunk))
	start := o.clock.Now()
	var played int64
	var timer clock.Timer // made on the first wait, so a fake clock shows a timer only while Play waits
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, eof, err := ReadChunk(src, buf)
		if err != nil {
			return err
		}
		if src.waited {
			// The sound after the wait is heard when it came, if that is
			// later than its turn.
			if due := start.Add(nodeaudio.Duration(src.dryAt)); src.cameAt.After(due) {
				start = start.Add(src.cameAt.Sub(due))
			}
			src.waited = false
		}
		played += int64(n)
		// Wait until the chunk would have been heard: pacing against the
		// start keeps rounding errors from adding up over a long bulletin.
		if wait := start.Add(nodeaudio.Duration(played)).Sub(o.clock.Now()); wait > 0 {
			if timer == nil {
				timer = o.clock.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C():
			}
		}
		if eof {
			return nil
		}
	}
}

// Plays returns how many times Play was called.
func (o *None) Plays() int64 { return o.plays.Load() }

// Close does nothing; None holds no device.
func (o *None) Close() error { return nil }

// ErrNoDevice is what Missing's Play returns: the agent runs without a
// sound device, so nothing it plays is heard.
var ErrNoDevice = errors.New("no sound device: it could not be opened when the agent started")

// Missing is the output of an agent whose sound device could not be opened
// at start (a USB sound card unplugged, or not yet there at boot): every
// Play fails at once with ErrNoDevice. The agent keeps its link, its state
// and its alarms up, reports the device missing (Missing) and does not
// begin plays; it restarts once the device can be opened (node main).
type Missing struct {
	// Err is why the device could not be opened.
	Err error
}

// Missing returns why the device could not be opened; the agent reports
// it in its state.
func (m Missing) Missing() error { return m.Err }

// Play returns ErrNoDevice with the reason.
func (m Missing) Play(context.Context, io.Reader) error {
	return fmt.Errorf("%w: %w", ErrNoDevice, m.Err)
}

// Close does nothing.
func (Missing) Close() error { return nil }
