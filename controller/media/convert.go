package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"

	"loaxa.vn/controller/loaxa"
)

// chunkSamples is how many input samples (all channels) are decoded at a
// time. With the resampler's history it bounds conversion memory, whatever
// the length of the file.
const chunkSamples = 16384

// convert decodes the data of the probed upload (src is its canonical view)
// with go-audio/wav, averages the channels to mono, resamples to the node
// rate through flt and writes s16le samples to w. It returns how many
// samples it wrote.
func convert(ctx context.Context, src io.ReadSeeker, info *wavInfo, flt *filter, w io.Writer) (int64, error) {
	d := wav.NewDecoder(src)
	d.ReadInfo()
	if err := d.Err(); err != nil {
		return 0, fmt.Errorf("decode wav header: %w", err)
	}
	if int(d.NumChans) != info.channels || int(d.SampleRate) != info.sampleRate || int(d.BitDepth) != info.bitDepth {
		return 0, fmt.Errorf("decode wav header: decoder sees %d channels at %d Hz, %d bits; probe saw %d at %d Hz, %d bits",
			d.NumChans, d.SampleRate, d.BitDepth, info.channels, info.sampleRate, info.bitDepth)
	}

	frames := max(1, chunkSamples/info.channels)
	buf := &audio.IntBuffer{Data: make([]int, frames*info.channels)}
	// go-audio/wav returns 8-bit samples unsigned, wider ones signed.
	offset := 0
	if info.bitDepth == 8 {
		offset = 128
	}
	scale := 1 / (float64(int64(1)<<(info.bitDepth-1)) * float64(info.channels))
	rs := flt.stream()

	var (
		mono    = make([]float32, 0, frames)
		out     = make([]float32, 0, frames)
		pcm     = make([]byte, 0, 2*frames)
		sum     int64 // of the current frame's channels
		channel int   // channels summed into sum
		decoded int64 // samples (all channels) decoded
		written int64
		want    = info.frames * int64(info.channels)
	)
	emit := func(out []float32) error {
		pcm = appendS16(pcm[:0], out)
		if _, err := w.Write(pcm); err != nil {
			return fmt.Errorf("write node audio: %w", err)
		}
		written += int64(len(out))
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		n, err := d.PCMBuffer(buf)
		if err != nil {
			return written, fmt.Errorf("decode wav data: %w", err)
		}
		if n == 0 {
			break
		}
		decoded += int64(n)
		if decoded > want {
			return written, fmt.Errorf("decode wav data: decoder returned %d samples, the data chunk holds %d", decoded, want)
		}
		// A frame may in principle straddle two reads, so the mix carries
		// its running sum across them.
		mono = mono[:0]
		for _, s := range buf.Data[:n] {
			sum += int64(s - offset)
			channel++
			if channel == info.channels {
				mono = append(mono, float32(float64(sum)*scale))
				sum, channel = 0, 0
			}
		}
		if err := emit(rs.process(mono, out[:0])); err != nil {
			return written, err
		}
	}
	// go-audio/wav ends quietly on a short read; the probe checked the
	// size, and this checks that the decoder really delivered it.
	if decoded != want {
		bps := int64(info.bitDepth / 8)
		return written, loaxa.Errorf(loaxa.EInvalid, "the file is truncated: the header promises %d bytes of audio, only %d are there", want*bps, decoded*bps)
	}
	if err := emit(rs.flush(out[:0])); err != nil {
		return written, err
	}
	return written, nil
}

// appendS16 appends samples in [-1, 1) as s16le, rounded to nearest and
// clipped (the low-pass may overshoot full scale a little).
func appendS16(b []byte, samples []float32) []byte {
	for _, v := range samples {
		x := math.Round(float64(v) * 32768)
		if x > math.MaxInt16 {
			x = math.MaxInt16
		} else if x < math.MinInt16 {
			x = math.MinInt16
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(int16(x)))
	}
	return b
}
