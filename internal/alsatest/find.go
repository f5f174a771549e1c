package alsatest

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/cmplx"
	"time"
)

// MinScore is the normalized cross-correlation above which Find reports a
// match. An exact copy scores 1 whatever its volume; int16 rounding of a
// copy played at volume 1/16 still scores above 0.999; an unrelated signal
// of the same length scores near 0.
const MinScore = 0.98

// Match is where a snippet lies in a longer run of samples.
type Match struct {
	// Offset is the index of the snippet's first sample.
	Offset int
	// Score is the normalized cross-correlation there: 1 for a copy at any
	// volume, lower for a distorted one.
	Score float64
}

// Find returns where needle first appears in haystack: of the offsets
// within one needle's length of the first whose score reaches MinScore,
// the one that correlates best (a ringing note also matches itself a few
// periods off). A later copy, however good, is not looked at: a test
// awaits the next copy after a point, and content that plays twice (an
// alert's repeats) must not be found at its second play because the
// capture already held both when it was searched. Without a match Find
// returns the best offset anywhere, with false. The score is the cosine
// between the needle and the haystack window, so it ignores volume (oto multiplies by
// the player's volume) and tolerates the rounding of an int16 → float32 →
// int16 round trip. Windows quieter than 1 LSB RMS are skipped, since
// silence correlates with nothing.
func Find(haystack, needle []int16) (Match, bool) {
	return find(haystack, needle, MinScore)
}

// find is Find with the score that makes a match: the first offset whose
// score reaches minScore begins the neighbourhood the best is taken from.
func find(haystack, needle []int16, minScore float64) (Match, bool) {
	m := len(needle)
	if m == 0 || m > len(haystack) {
		return Match{Offset: -1}, false
	}
	var needleEnergy float64
	for _, v := range needle {
		needleEnergy += float64(v) * float64(v)
	}
	if needleEnergy == 0 {
		return Match{Offset: -1}, false
	}
	// energy[i] is the sum of squares of haystack[:i].
	energy := make([]float64, len(haystack)+1)
	for i, v := range haystack {
		energy[i+1] = energy[i] + float64(v)*float64(v)
	}

	best := Match{Offset: -1}
	found, until := false, 0 // a score reached MinScore; the last offset of its neighbourhood
	corr := newCorrelator(needle)
	last := len(haystack) - m // the last offset where the needle fits
scan:
	for start := 0; start <= last; start += corr.step {
		block := corr.correlate(haystack[start:])
		for j := 0; j < corr.step && start+j <= last; j++ {
			k := start + j
			if found && k > until {
				break scan
			}
			we := energy[k+m] - energy[k]
			if we < float64(m) {
				continue
			}
			if s := block[j] / math.Sqrt(we*needleEnergy); s > best.Score {
				best = Match{Offset: k, Score: s}
				if !found && s >= minScore {
					found, until = true, k+m-1
				}
			}
		}
	}
	if best.Offset < 0 {
		return best, false
	}
	// Recompute the winner exactly: the FFT's rounding is tiny but real.
	var dot float64
	for i, v := range needle {
		dot += float64(v) * float64(haystack[best.Offset+i])
	}
	we := energy[best.Offset+m] - energy[best.Offset]
	best.Score = dot / math.Sqrt(we*needleEnergy)
	return best, best.Score >= minScore
}

// correlator computes sliding dot products of one needle with blocks of a
// haystack by FFT (overlap-save), so memory stays bounded by the block size
// whatever the haystack's length.
type correlator struct {
	size    int // FFT size, a power of two ≥ 2·len(needle)
	step    int // valid offsets per block: size - len(needle) + 1
	needleF []complex128
	tw      []complex128 // twiddles exp(-2πik/size), k < size/2
	buf     []complex128
	out     []float64
}

func newCorrelator(needle []int16) *correlator {
	size := 1 << bits.Len(uint(4*len(needle)-1))
	size = max(size, 1<<12)
	c := &correlator{
		size:    size,
		step:    size - len(needle) + 1,
		needleF: make([]complex128, size),
		tw:      make([]complex128, size/2),
		buf:     make([]complex128, size),
		out:     make([]float64, size),
	}
	for k := range c.tw {
		c.tw[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(size))
	}
	for i, v := range needle {
		c.needleF[i] = complex(float64(v), 0)
	}
	c.fft(c.needleF, false)
	for i := range c.needleF {
		c.needleF[i] = cmplx.Conj(c.needleF[i])
	}
	return c
}

// correlate returns, for j < step, the dot product of the needle with
// h[j:j+len(needle)] (h zero-padded past its end).
func (c *correlator) correlate(h []int16) []float64 {
	for i := range c.buf {
		if i < len(h) {
			c.buf[i] = complex(float64(h[i]), 0)
		} else {
			c.buf[i] = 0
		}
	}
	c.fft(c.buf, false)
	for i := range c.buf {
		c.buf[i] *= c.needleF[i]
	}
	c.fft(c.buf, true)
	for i := range c.out {
		c.out[i] = real(c.buf[i])
	}
	return c.out
}

// fft transforms a in place (iterative radix-2); the inverse includes the
// 1/n scaling.
func (c *correlator) fft(a []complex128, inverse bool) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, stride := size/2, n/size
		for start := 0; start < n; start += size {
			for k := 0; k < half; k++ {
				w := c.tw[k*stride]
				if inverse {
					w = cmplx.Conj(w)
				}
				u, v := a[start+k], a[start+k+half]*w
				a[start+k], a[start+k+half] = u+v, u-v
			}
		}
	}
	if inverse {
		scale := complex(1/float64(n), 0)
		for i := range a {
			a[i] *= scale
		}
	}
}

// Chirp returns d of a linear sweep from 300 Hz to 3 kHz at amplitude amp
// (of 32767), sampled at SampleRate: a snippet that correlates with itself
// at one offset only, unlike a steady tone.
func Chirp(d time.Duration, amp float64) []int16 {
	n := int(d * SampleRate / time.Second)
	const f0, f1 = 300.0, 3000.0
	secs := float64(n) / SampleRate
	s := make([]int16, n)
	for i := range s {
		t := float64(i) / SampleRate
		phase := 2 * math.Pi * (f0*t + (f1-f0)*t*t/(2*secs))
		s[i] = int16(math.Round(amp * math.Sin(phase)))
	}
	return s
}

// S16LE encodes samples as signed 16-bit little-endian PCM, the node
// format's data.
func S16LE(samples []int16) []byte {
	b := make([]byte, 2*len(samples))
	for i, v := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}
