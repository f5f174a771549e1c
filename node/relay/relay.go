// Package relay turns a live HTTP MP3 stream (Icecast/SHOUTcast, a radio
// station's web stream) into node PCM — 16 kHz mono 16-bit, the format
// the audio output takes — for programme relay (tiếp sóng): a background
// occurrence that plays a station instead of stored content.
//
// A stream that fails (refused, cut, or silent for StallTimeout) is
// reconnected after Backoff, up to Retries times in a row; then Read
// returns an error wrapping ErrFailed, so the play ends as failed and is
// reported, and never hangs. A stretch of Healthy audio resets the count.
// The stall and the backoff are timed on Options.Clock.
package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hajimehoshi/go-mp3"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol/nodeaudio"
)

// ErrFailed is wrapped by the error Read returns when the stream could not
// be (re)connected.
var ErrFailed = errors.New("stream relay failed")

// Defaults of Options.
const (
	DefaultRetries      = 3
	DefaultBackoff      = 2 * time.Second
	DefaultStallTimeout = 10 * time.Second
	DefaultHealthy      = 30 * time.Second
)

// Options tune a Stream; zero values take the defaults.
type Options struct {
	Client       *http.Client
	Retries      int
	Backoff      time.Duration
	StallTimeout time.Duration
	// Healthy is how much audio in a row resets the retry count.
	Healthy time.Duration
	Logger  *slog.Logger
	// Clock times the stall watchdog and the waits between attempts;
	// default clock.Real.
	Clock clock.Clock
}

// Stream is an open relay: Read gives node PCM; Close stops it.
type Stream struct {
	url    string
	opt    Options
	ctx    context.Context
	cancel context.CancelFunc
	pr     *io.PipeReader
	pw     *io.PipeWriter
	done   chan struct{}
	once   sync.Once
}

// Open starts relaying url in the background; it does not wait for the
// connection.
func Open(url string, opt Options) *Stream {
	if opt.Client == nil {
		opt.Client = http.DefaultClient
	}
	if opt.Retries <= 0 {
		opt.Retries = DefaultRetries
	}
	if opt.Backoff <= 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.StallTimeout <= 0 {
		opt.StallTimeout = DefaultStallTimeout
	}
	if opt.Healthy <= 0 {
		opt.Healthy = DefaultHealthy
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	s := &Stream{url: url, opt: opt, done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pr, s.pw = io.Pipe()
	go s.run()
	return s
}

// Read reads node PCM.
func (s *Stream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// Close stops the relay and waits for it.
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.pr.Close()
		<-s.done
	})
	return nil
}

func (s *Stream) run() {
	defer close(s.done)
	failures := 0
	var last error
	for {
		played, err := s.once1()
		if s.ctx.Err() != nil {
			s.pw.CloseWithError(s.ctx.Err())
			return
		}
		if played >= s.opt.Healthy {
			failures = 0
		}
		failures++
		last = err
		if failures > s.opt.Retries {
			s.pw.CloseWithError(fmt.Errorf("%w: %s: %d attempts: %v", ErrFailed, s.url, failures, last))
			return
		}
		s.opt.Logger.Warn("relay: stream broke; reconnecting", "url", s.url, "attempt", failures, "of", s.opt.Retries, "err", err)
		t := s.opt.Clock.NewTimer(s.opt.Backoff)
		select {
		case <-s.ctx.Done():
			t.Stop()
			s.pw.CloseWithError(s.ctx.Err())
			return
		case <-t.C():
		}
	}
}

// once1 connects once and relays until the stream breaks; it returns how
// much audio it relayed.
func (s *Stream) once1() (time.Duration, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Icy-MetaData", "0")
	// The stall watchdog: no audio for StallTimeout cancels the request,
	// including while connecting and looking for the first frame. Audio,
	// not bytes: an endless stream that is not MP3 (a station's AAC)
	// brings bytes for ever and never a frame, and the relay waited on it
	// for good, neither playing nor failing.
	stall := clock.NewWatchdog(s.opt.Clock, s.opt.StallTimeout, cancel)
	defer stall.Stop()
	resp, err := s.opt.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v: %w", s.opt.StallTimeout, err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s", resp.Status)
	}
	dec, err := mp3.NewDecoder(resp.Body)
	if err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			err = fmt.Errorf("no MP3 frame within %v (%s)", s.opt.StallTimeout, resp.Header.Get("Content-Type"))
		}
		return 0, fmt.Errorf("not an MP3 stream: %w", err)
	}
	conv := newConverter(dec.SampleRate())
	in := make([]byte, 4608)
	var out []byte
	var played int64
	for {
		n, rerr := dec.Read(in)
		if n > 0 {
			stall.Feed()
			out = conv.convert(in[:n-n%4], out[:0])
			if _, err := s.pw.Write(out); err != nil {
				return nodeaudio.Duration(played), err
			}
			played += int64(len(out))
		}
		if rerr != nil {
			if rerr == io.EOF {
				rerr = errors.New("the station ended the stream")
			}
			if ctx.Err() != nil && s.ctx.Err() == nil {
				rerr = fmt.Errorf("no data for %v", s.opt.StallTimeout)
			}
			return nodeaudio.Duration(played), rerr
		}
	}
}

// converter mixes go-mp3's 16-bit stereo to mono and resamples it to the
// node rate by linear interpolation (speech and music on a loudspeaker;
// the controller's ingest does it better for stored content).
type converter struct {
	step float64 // input samples per output sample
	pos  float64 // position of the next output sample, from prev
	prev float64 // the last input sample of the previous block
	have bool
}

func newConverter(rate int) *converter {
	return &converter{step: float64(rate) / nodeaudio.SampleRate}
}

func (c *converter) convert(stereo, out []byte) []byte {
	n := len(stereo) / 4
	sample := func(i int) float64 { // i = -1 is prev
		if i < 0 {
			return c.prev
		}
		l := int16(binary.LittleEndian.Uint16(stereo[4*i:]))
		r := int16(binary.LittleEndian.Uint16(stereo[4*i+2:]))
		return (float64(l) + float64(r)) / 2
	}
	if !c.have && n > 0 {
		c.prev, c.have, c.pos = sample(0), true, 1
	}
	// Positions are relative to prev (index -1 → 0.0, input i → i+1).
	for c.pos <= float64(n) {
		i := int(c.pos) - 1
		frac := c.pos - float64(int(c.pos))
		a := sample(i)
		b := a
		if i+1 < n {
			b = sample(i + 1)
		}
		v := a + (b-a)*frac
		out = binary.LittleEndian.AppendUint16(out, uint16(int16(max(-32768, min(32767, v)))))
		c.pos += c.step
	}
	if n > 0 {
		c.prev = sample(n - 1)
		c.pos -= float64(n)
	}
	return out
}
