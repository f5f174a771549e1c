// Package oto plays node audio on the machine's sound device through
// github.com/hajimehoshi/oto/v2 (ALSA on Linux). It needs cgo.
package oto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	otolib "github.com/hajimehoshi/oto/v2"

	"loaxa.vn/node/audio"
	"loaxa.vn/protocol/nodeaudio"
)

// oto supports one context per process; every Output shares it.
var (
	shared struct {
		once sync.Once
		ctx  *otolib.Context
		err  error
	}
)

// DeviceBuffer is the sound device's buffer. Whatever sits in it delays
// the start of a bulletin (clusters in one village must start together) and
// oto's default at 16 kHz is 128 ms; 50 ms still leaves a slow ARM board
// ample time to refill it.
const DeviceBuffer = 50 * time.Millisecond

func context0() (*otolib.Context, error) {
	shared.once.Do(func() {
		c, ready, err := otolib.NewContextWithOptions(&otolib.NewContextOptions{
			SampleRate:   nodeaudio.SampleRate,
			ChannelCount: nodeaudio.Channels,
			Format:       otolib.FormatSignedInt16LE,
			BufferSize:   DeviceBuffer,
		})
		if err != nil {
			shared.err = fmt.Errorf("open sound device: %w", err)
			return
		}
		<-ready
		// oto reports a device it could not open through Err, after ready.
		if err := c.Err(); err != nil {
			shared.err = fmt.Errorf("open sound device: %w", err)
			return
		}
		shared.ctx = c
	})
	return shared.ctx, shared.err
}

// Output plays on the default sound device at the node audio format.
type Output struct {
	ctx *otolib.Context
	// Poll is how often Play checks whether the player has drained.
	Poll time.Duration
	// Tail is waited after the player drained, before Play returns. It is
	// 0: the agent keeps the amplifier on for the device's buffer (Latency)
	// after Play returns, and a play that follows back to back must not
	// wait for the last one's sound to leave the device.
	Tail time.Duration
}

// Latency returns DeviceBuffer: audio given to the player now is heard
// about that much later, so the agent begins a play that much early.
func (o *Output) Latency() time.Duration { return DeviceBuffer }

// Open opens the sound device (once per process) and returns an output.
func Open() (*Output, error) {
	c, err := context0()
	if err != nil {
		return nil, err
	}
	return &Output{ctx: c, Poll: 10 * time.Millisecond}, nil
}

// Play plays pcm to its end and returns once the player has drained, or
// stops at once when ctx is cancelled. No Read of pcm begins after Play
// has returned; one under way then (a live call waiting for its first
// frames) is let finish, and what it read is not played.
func (o *Output) Play(ctx context.Context, pcm io.Reader) error {
	src := &source{pcm: pcm}
	p := o.ctx.NewPlayer(src)
	defer p.Close()
	defer src.stop() // before the player is closed
	if r, ok := pcm.(audio.ReadAhead); ok && r.ReadAhead() > 0 {
		// A live call: oto's default player buffer (0.5 s) would be
		// filled before the first sample sounds.
		if bs, ok := p.(otolib.BufferSizeSetter); ok {
			bs.SetBufferSize(int(nodeaudio.Bytes(r.ReadAhead())))
		}
	}
	p.Play()
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for p.IsPlaying() {
		select {
		case <-ctx.Done():
			p.Pause()
			return ctx.Err()
		case <-tick.C:
		}
		// A device that fails mid-play never drains the player.
		if err := o.ctx.Err(); err != nil {
			p.Pause()
			return lost(err)
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	if o.Tail > 0 {
		t := time.NewTimer(o.Tail)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := o.ctx.Err(); err != nil {
		return lost(err)
	}
	return nil
}

// source is what a player reads: pcm until Play has stopped. oto reads a
// player's source on goroutines of its own (its first fill on one that
// Player.Play starts, then its mixer's), and a stop does not end the
// fill: a stopped play went on taking the source's bytes after Play
// returned (half a second, or a live call's frames from its jitter buffer
// while the agent counted what was played and closed the files), and the
// fill then added the closed player to oto's mixer for good.
type source struct {
	pcm     io.Reader
	reading sync.Mutex // held through each Read of pcm
	stopped atomic.Bool
}

// A stop does not wait for a Read under way: a live call's buffer waits
// up to its frame timeout (2 s) for the first frames, and an alert that
// preempts the call must not wait for it.

// errStopped is what a player reads once its play has stopped: an error,
// not io.EOF, so that oto closes the player rather than add it to its
// mixer.
var errStopped = errors.New("play stopped")

func (s *source) Read(b []byte) (int, error) {
	s.reading.Lock()
	defer s.reading.Unlock()
	if s.stopped.Load() {
		return 0, errStopped
	}
	n, err := s.pcm.Read(b)
	if s.stopped.Load() {
		return 0, errStopped // stopped while it read: not played
	}
	return n, err
}

// stop makes every later Read fail at once without reading pcm.
func (s *source) stop() { s.stopped.Store(true) }

// Err returns the device's failure, wrapping audio.ErrDeviceLost, once
// oto's context has stopped on an error it cannot recover from (a USB
// sound card that dropped off, even while nothing played: oto keeps
// writing silence); nil while it works.
func (o *Output) Err() error {
	if err := o.ctx.Err(); err != nil {
		return lost(err)
	}
	return nil
}

// lost is the error of a device whose context failed: oto's context stops
// for good on the first error (a write ALSA could not recover from), and
// the process cannot open another.
func lost(err error) error {
	return fmt.Errorf("%w: %w", audio.ErrDeviceLost, err)
}

// Close releases nothing: the process-wide device stays open for the next
// Output, as oto cannot open it twice.
func (o *Output) Close() error { return nil }
