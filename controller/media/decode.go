package media

import (
	"fmt"
	"io"
	"math"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// chunkSamples is how many input samples (all channels) are decoded at a
// time. With the resampler's history it bounds conversion memory, whatever
// the length of the file.
const chunkSamples = 16384

// maxFloat bounds float WAV samples (+24 dBFS): floats may go past full
// scale, and normalisation brings them back, but a file of huge values or
// NaNs must not wreck the loudness measurement.
const maxFloat = 16

// decoder yields an upload's audio as mono float samples at the upload's
// rate, full scale ±1: channels are averaged.
type decoder interface {
	// next returns the next samples, valid until the following call, or
	// io.EOF after the last.
	next() ([]float32, error)
}

// wavDecoder decodes the data of a probed WAV upload (src is its canonical
// view) with go-audio/wav.
type wavDecoder struct {
	d       *wav.Decoder
	info    *wavInfo
	buf     *audio.IntBuffer
	offset  int     // 128 for unsigned 8-bit samples
	scale   float64 // integer full scale × channels
	mono    []float32
	sum     float64 // of the current frame's channels
	channel int     // channels summed into sum
	decoded int64   // samples (all channels) decoded
	want    int64
	done    bool
}

func newWAVDecoder(src io.ReadSeeker, info *wavInfo) (*wavDecoder, error) {
	d := wav.NewDecoder(src)
	d.ReadInfo()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode wav header: %w", err)
	}
	if int(d.NumChans) != info.channels || int(d.SampleRate) != info.sampleRate || int(d.BitDepth) != info.bitDepth {
		return nil, fmt.Errorf("decode wav header: decoder sees %d channels at %d Hz, %d bits; probe saw %d at %d Hz, %d bits",
			d.NumChans, d.SampleRate, d.BitDepth, info.channels, info.sampleRate, info.bitDepth)
	}
	frames := max(1, chunkSamples/info.channels)
	w := &wavDecoder{
		d:    d,
		info: info,
		buf:  &audio.IntBuffer{Data: make([]int, frames*info.channels)},
		mono: make([]float32, 0, frames),
		want: info.frames * int64(info.channels),
	}
	// go-audio/wav returns 8-bit samples unsigned, wider ones signed, and
	// 32-bit floats as the integer with their bits.
	if info.bitDepth == 8 {
		w.offset = 128
	}
	w.scale = float64(int64(1)<<(info.bitDepth-1)) * float64(info.channels)
	if info.float {
		w.scale = float64(info.channels)
	}
	return w, nil
}

func (w *wavDecoder) next() ([]float32, error) {
	if w.done {
		return nil, io.EOF
	}
	n, err := w.d.PCMBuffer(w.buf)
	if err != nil {
		return nil, fmt.Errorf("decode wav data: %w", err)
	}
	if n == 0 {
		w.done = true
		// go-audio/wav ends quietly on a short read; the probe checked the
		// size, and this checks that the decoder really delivered it.
		if w.decoded != w.want {
			bps := int64(w.info.bitDepth / 8)
			return nil, truncated("the header promises %d bytes of audio, only %d are there", w.want*bps, w.decoded*bps)
		}
		return nil, io.EOF
	}
	w.decoded += int64(n)
	if w.decoded > w.want {
		return nil, fmt.Errorf("decode wav data: decoder returned %d samples, the data chunk holds %d", w.decoded, w.want)
	}
	// A frame may in principle straddle two reads, so the mix carries its
	// running sum across them.
	w.mono = w.mono[:0]
	for _, s := range w.buf.Data[:n] {
		if w.info.float {
			w.sum += sanitize(math.Float32frombits(uint32(int32(s))))
		} else {
			w.sum += float64(s - w.offset)
		}
		w.channel++
		if w.channel == w.info.channels {
			w.mono = append(w.mono, float32(w.sum/w.scale))
			w.sum, w.channel = 0, 0
		}
	}
	return w.mono, nil
}

// sanitize makes a float sample safe to measure: NaN is silence, and
// infinities and absurd values are held at maxFloat.
func sanitize(v float32) float64 {
	x := float64(v)
	if math.IsNaN(x) {
		return 0
	}
	return max(-maxFloat, min(x, maxFloat))
}
