package nodeaudio

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Narrowband live frames. A live call carries a voice, which telephony has
// carried at 8 kHz for a century: a narrowband frame holds 40 ms in
// NarrowFrameSamples samples at 8 kHz, 164 bytes (32.7 kbit/s), so that a
// signed frame with its envelope stays within the 64 kbit/s a stream may
// take on a node's 4G link (docs/live.md). The controller low-passes the
// voice below 3.5 kHz and keeps every other sample (NarrowFrameEncoder);
// the node decodes the block (DecodeNarrowFrame) and an Upsampler, which
// keeps its history from one frame to the next, brings the stream back to
// SampleRate without a seam at the frames' joins.

// NarrowFrameSamples is how many 8 kHz samples one narrowband frame holds
// (an IMA block holds an odd number).
const NarrowFrameSamples = 321

// NarrowFrameWide is how many SampleRate samples a narrowband frame
// stands for: 642, 40.125 ms.
const NarrowFrameWide = 2 * NarrowFrameSamples

// NarrowFrameBytes is the size of one narrowband frame: 164 bytes.
const NarrowFrameBytes = 4 + (NarrowFrameSamples-1)/2

// halfbandTaps is the length of the low-pass filters of both ends.
const halfbandTaps = 63

// NarrowDelay is how many SampleRate samples the two filters together
// delay the voice (3.9 ms): what comes out of the Upsampler at sample n
// went into the NarrowFrameEncoder at sample n − NarrowDelay.
const NarrowDelay = halfbandTaps - 1

// halfband returns a windowed-sinc (Hamming) low-pass at 3.5 kHz for
// SampleRate, in Q15, with the given gain at 0 Hz: 1 to decimate, 2 to
// interpolate (half of the zero-stuffed samples are zeros). It passes
// speech up to about 3.1 kHz and stops what would alias above 3.9 kHz.
func halfband(gain float64) [halfbandTaps]int32 {
	const cutoff = 3500.0 / SampleRate
	const mid = (halfbandTaps - 1) / 2
	var h [halfbandTaps]float64
	sum := 0.0
	for i := range h {
		n := float64(i - mid)
		v := 2 * cutoff
		if n != 0 {
			v = math.Sin(2*math.Pi*cutoff*n) / (math.Pi * n)
		}
		h[i] = v * (0.54 - 0.46*math.Cos(2*math.Pi*float64(i)/(halfbandTaps-1)))
		sum += h[i]
	}
	var q [halfbandTaps]int32
	for i := range h {
		q[i] = int32(math.Round(h[i] / sum * gain * 32768))
	}
	return q
}

var (
	decimation    = halfband(1)
	interpolation = halfband(2)
)

// NarrowFrameEncoder encodes PCM at SampleRate into narrowband live
// frames. It keeps the filter's history and the ADPCM step index from one
// frame to the next, as one stream.
type NarrowFrameEncoder struct {
	enc  encoder
	hist [halfbandTaps - 1]int16 // the last input samples, oldest first
}

// Encode encodes exactly NarrowFrameWide samples into one frame.
func (f *NarrowFrameEncoder) Encode(s []int16) ([]byte, error) {
	if len(s) != NarrowFrameWide {
		return nil, fmt.Errorf("narrowband live frame of %d samples: want %d", len(s), NarrowFrameWide)
	}
	buf := make([]int16, 0, len(f.hist)+len(s))
	buf = append(append(buf, f.hist[:]...), s...)
	narrow := make([]int16, NarrowFrameSamples)
	for i := range narrow {
		// Output i is the filter at input sample 2i: the window ending
		// there, buf[2i : 2i+halfbandTaps].
		w := buf[2*i : 2*i+halfbandTaps]
		var acc int64
		for k, h := range decimation {
			acc += int64(h) * int64(w[halfbandTaps-1-k])
		}
		narrow[i] = int16(clamp16(int32((acc + 1<<14) >> 15)))
	}
	copy(f.hist[:], buf[len(buf)-len(f.hist):])
	out := make([]byte, NarrowFrameBytes)
	f.enc.block(narrow, out)
	return out, nil
}

// DecodeNarrowFrame decodes a narrowband frame into out, which must hold
// NarrowFrameSamples samples at 8 kHz.
func DecodeNarrowFrame(in []byte, out []int16) error {
	if len(in) != NarrowFrameBytes || len(out) < NarrowFrameSamples {
		return fmt.Errorf("%w: narrowband live frame of %d bytes into %d samples (want %d bytes)", ErrFormat, len(in), len(out), NarrowFrameBytes)
	}
	pred := int32(int16(binary.LittleEndian.Uint16(in)))
	index := int32(in[2])
	if index > 88 {
		return fmt.Errorf("%w: live frame step index %d is beyond 88", ErrFormat, index)
	}
	out[0] = int16(pred)
	k := 1
	for _, b := range in[4:] {
		for _, c := range [2]byte{b & 0xF, b >> 4} {
			pred = clamp16(pred + signed(delta(stepTable[index], c&7), c))
			index = nextIndex(index, c)
			out[k] = int16(pred)
			k++
		}
	}
	return nil
}

// Upsampler brings consecutive narrowband frames back to SampleRate. It
// keeps the last samples of a frame to interpolate the start of the next;
// a lost frame goes through it as silence, so the stream stays one.
type Upsampler struct {
	hist [halfbandTaps/2 + 1]int16 // the last 8 kHz samples, oldest first
}

// Upsample writes the NarrowFrameWide samples at SampleRate that the
// NarrowFrameSamples samples of narrow (nil: silence) stand for, delayed
// with the filters by NarrowDelay, into out.
func (u *Upsampler) Upsample(narrow []int16, out []int16) error {
	if (narrow != nil && len(narrow) != NarrowFrameSamples) || len(out) < NarrowFrameWide {
		return fmt.Errorf("upsample %d samples into %d: want %d into %d", len(narrow), len(out), NarrowFrameSamples, NarrowFrameWide)
	}
	x := make([]int16, 0, len(u.hist)+NarrowFrameSamples)
	x = append(x, u.hist[:]...)
	if narrow == nil {
		x = x[:len(x)+NarrowFrameSamples] // zeros
	} else {
		x = append(x, narrow...)
	}
	h := len(u.hist)
	for m := range NarrowFrameWide {
		// The zero-stuffed stream z has x[j] at 2j; out[m] = Σ taps[k]·
		// z[2h+m−k] over the k that land on a sample.
		pos := 2*h + m
		var acc int64
		for k := pos & 1; k < halfbandTaps; k += 2 {
			acc += int64(interpolation[k]) * int64(x[(pos-k)/2])
		}
		out[m] = int16(clamp16(int32((acc + 1<<14) >> 15)))
	}
	copy(u.hist[:], x[len(x)-h:])
	return nil
}
