package audio

import (
	"encoding/binary"
	"io"
	"math"
	"sync/atomic"
	"time"
)

// VolumeGain is the linear gain of a volume level 0–15: 15 plays the
// content as it is, each level below is 2 dB quieter, 0 is silent. Levels
// outside the range are clamped.
func VolumeGain(level int) float64 {
	switch {
	case level >= 15:
		return 1
	case level <= 0:
		return 0
	}
	return math.Pow(10, -2*float64(15-level)/20)
}

// Gain scales 16-bit little-endian PCM read through it by its factor (0
// to 1). It never splits a sample: an odd byte is held back until its
// partner arrives. SetFactor may be called while another goroutine reads:
// a volume turned down during a play is heard from the next read on.
type Gain struct {
	R io.Reader

	factor  atomic.Uint64 // math.Float64bits
	held    byte
	hasHeld bool
}

// NewGain returns a Gain that reads r scaled by factor.
func NewGain(r io.Reader, factor float64) *Gain {
	g := &Gain{R: r}
	g.SetFactor(factor)
	return g
}

// SetFactor changes the factor for the bytes read from now on.
func (g *Gain) SetFactor(f float64) { g.factor.Store(math.Float64bits(f)) }

// Factor returns the factor bytes are read at.
func (g *Gain) Factor() float64 { return math.Float64frombits(g.factor.Load()) }

// ReadAhead returns R's ReadAhead, or 0: a live source keeps its bounded
// read-ahead when it plays at a volume.
func (g *Gain) ReadAhead() time.Duration {
	if r, ok := g.R.(ReadAhead); ok {
		return r.ReadAhead()
	}
	return 0
}

// Read reads from R and scales the complete samples.
func (g *Gain) Read(p []byte) (int, error) {
	if len(p) < 2 {
		return g.R.Read(p) // cannot hold a sample; only odd callers do this
	}
	off := 0
	if g.hasHeld {
		p[0], off, g.hasHeld = g.held, 1, false
	}
	n, err := g.R.Read(p[off:])
	n += off
	if n%2 == 1 && err == nil {
		g.held, g.hasHeld = p[n-1], true
		n--
	}
	f := g.Factor()
	if f == 1 {
		return n, err // full volume: the bytes as they are
	}
	for i := 0; i+1 < n; i += 2 {
		v := float64(int16(binary.LittleEndian.Uint16(p[i:]))) * f
		binary.LittleEndian.PutUint16(p[i:], uint16(int16(math.Round(v))))
	}
	return n, err
}
