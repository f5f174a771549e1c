package media

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol/nodeaudio"
)

// Loudness normalisation: every content plays at TargetLUFS integrated
// loudness (ITU-R BS.1770, see loudness.go), the level of spoken-word
// streaming and broadcast on small speakers, with sample peaks held at
// CeilingDBFS by a look-ahead limiter. A quiet phone recording is raised
// and a loud, compressed MP3 is lowered to the same level. The gain is
// capped at MaxGainDB, so a recording of near silence is not raised into
// loud noise.
const (
	TargetLUFS  = -16.0
	CeilingDBFS = -1.0
	MaxGainDB   = 30.0
	// TrimThresholdDBFS is the level, after normalisation, below which a
	// 20 ms window counts as silence when trimming: 34 dB below the target,
	// under the breath and room noise of a phone recording.
	TrimThresholdDBFS = -50.0

	trimWindow       = nodeaudio.SampleRate / 50  // 20 ms
	trimMargin       = nodeaudio.SampleRate / 10  // 100 ms of the silence is kept
	limiterLook      = nodeaudio.SampleRate / 200 // 5 ms look-ahead
	limiterReleaseMS = 50
)

// process converts the probed upload to the node format and writes the
// node audio file to w, in two passes over a staging file in tmp/:
//
//  1. decode, mix to mono, resample to 16 kHz, and write float samples to
//     the staging file, measuring loudness and the level of every 20 ms;
//  2. read the staging file back from the first to the last sample kept,
//     apply the gain and the limiter, summarise the waveform, and encode.
//
// Memory stays bounded by buffers and by a few numbers per 100 ms of audio
// (under 2 MB for two hours), whatever the length of the upload.
func (l *Library) process(ctx context.Context, up io.ReaderAt, src *upload, opt loaxa.IngestOptions, w io.Writer) (*loaxa.Content, error) {
	stage, err := os.CreateTemp(l.tmpDir(), "stage-*.f32")
	if err != nil {
		return nil, err
	}
	defer removeTemp(stage)

	a, err := analyse(ctx, src, stage)
	if err != nil {
		return nil, err
	}
	name := displayName(opt.Filename)
	if a.samples == 0 {
		return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s holds no audio", name)}
	}
	input := a.meter.integrated()
	if math.IsInf(input, -1) {
		return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s is silent: its loudness is below %.0f LUFS; check that the recording has sound", name, absoluteGate)}
	}
	gainDB := min(TargetLUFS-input, MaxGainDB)

	start, end := int64(0), a.samples
	if opt.TrimSilence {
		start, end = a.trim(gainDB)
	}
	n := end - start
	c := &loaxa.Content{
		Format:     nodeaudio.Format,
		Size:       nodeaudio.Size(n),
		DurationMS: n * 1000 / nodeaudio.SampleRate,
		Source:     src.source,
		Loudness:   &loaxa.Loudness{InputLUFS: round2(input), GainDB: round2(gainDB)},
	}
	c.Source.DurationMS = a.samples * 1000 / nodeaudio.SampleRate
	if opt.TrimSilence {
		c.Trim = &loaxa.Trim{StartMS: start * 1000 / nodeaudio.SampleRate, EndMS: (a.samples - end) * 1000 / nodeaudio.SampleRate}
	}

	read := func() (io.Reader, error) {
		if _, err := stage.Seek(start*4, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind staging file: %w", err)
		}
		return bufio.NewReaderSize(io.LimitReader(stage, n*4), 64<<10), nil
	}
	// Where the gain would drive peaks into the limiter, the limiter takes
	// some loudness away (a recording with clicks loses the most): measure
	// the result without writing it, and make up for the loss, a few times
	// at most. Reading the staged samples again costs little next to
	// decoding and resampling them.
	for range maxMakeUp {
		if a.peak*dbToGain(gainDB) <= dbToGain(CeilingDBFS) || gainDB >= MaxGainDB {
			break
		}
		r, err := read()
		if err != nil {
			return nil, err
		}
		dry := &loaxa.Content{Loudness: &loaxa.Loudness{}}
		if err := finish(ctx, r, n, dbToGain(gainDB), nil, dry); err != nil {
			return nil, err
		}
		short := TargetLUFS - dry.Loudness.OutputLUFS
		if short < 0.1 {
			break
		}
		gainDB = min(gainDB+short, MaxGainDB)
	}
	c.Loudness.GainDB = round2(gainDB)
	r, err := read()
	if err != nil {
		return nil, err
	}
	if err := finish(ctx, r, n, dbToGain(gainDB), w, c); err != nil {
		return nil, err
	}
	return c, nil
}

// maxMakeUp bounds the dry runs that make up for what the limiter takes.
const maxMakeUp = 3

// analysis is what the first pass learns.
type analysis struct {
	samples int64 // at 16 kHz
	peak    float64
	meter   *meter
	windows []float32 // mean square of each trimWindow samples
	sum     float64
	inWin   int
}

func (a *analysis) add(s []float32) {
	a.meter.add(s)
	for _, v := range s {
		a.peak = max(a.peak, math.Abs(float64(v)))
		a.sum += float64(v) * float64(v)
		a.inWin++
		if a.inWin == trimWindow {
			a.windows = append(a.windows, float32(a.sum/trimWindow))
			a.sum, a.inWin = 0, 0
		}
	}
	a.samples += int64(len(s))
}

func (a *analysis) close() {
	if a.inWin > 0 {
		a.windows = append(a.windows, float32(a.sum/float64(a.inWin)))
	}
}

// trim returns the samples to keep: from trimMargin before the first
// window that is not silent at gainDB to trimMargin after the last.
func (a *analysis) trim(gainDB float64) (start, end int64) {
	threshold := float32(math.Pow(10, (TrimThresholdDBFS-gainDB)/10))
	first, last := -1, -1
	for i, ms := range a.windows {
		if ms >= threshold {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, a.samples // nothing stands out: keep it all
	}
	start = max(0, int64(first)*trimWindow-trimMargin)
	end = min(a.samples, int64(last+1)*trimWindow+trimMargin)
	return start, end
}

// analyse is the first pass: it decodes src, resamples it to 16 kHz, and
// writes the samples to stage as float32, measuring as it goes.
func analyse(ctx context.Context, src *upload, stage io.Writer) (*analysis, error) {
	dec, err := src.open()
	if err != nil {
		return nil, err
	}
	a := &analysis{meter: newMeter(nodeaudio.SampleRate)}
	rs := newFilter(src.rate, nodeaudio.SampleRate).stream()
	bw := bufio.NewWriterSize(stage, 64<<10)
	out := make([]float32, 0, chunkSamples)
	raw := make([]byte, 0, 4*chunkSamples)
	emit := func(s []float32) error {
		a.add(s)
		raw = raw[:0]
		for _, v := range s {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
		if _, err := bw.Write(raw); err != nil {
			return fmt.Errorf("write staging file: %w", err)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mono, err := dec.next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		// Resample in pieces so that the output buffer stays small.
		for len(mono) > 0 {
			k := min(len(mono), chunkSamples/4)
			if err := emit(rs.process(mono[:k], out[:0])); err != nil {
				return nil, err
			}
			mono = mono[k:]
		}
	}
	if err := emit(rs.flush(out[:0])); err != nil {
		return nil, err
	}
	a.close()
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write staging file: %w", err)
	}
	return a, nil
}

// finish is the second pass: it reads n staged samples from r, applies
// gain and the limiter, and writes the node audio file to w, filling in
// c's Loudness and Waveform. With w nil it only measures.
func finish(ctx context.Context, r io.Reader, n int64, gain float64, w io.Writer, c *loaxa.Content) error {
	var enc *nodeaudio.Writer
	if w != nil {
		var err error
		if enc, err = nodeaudio.NewWriter(w, n); err != nil {
			return err
		}
	}
	lim := newLimiter(dbToGain(CeilingDBFS), limiterLook, limiterReleaseMS*nodeaudio.SampleRate/1000)
	skip := lim.latency() // the limiter's first outputs come before the audio
	out := newMeter(nodeaudio.SampleRate)
	wave := newWaveform(n)
	var (
		raw     = make([]byte, 4*chunkSamples)
		in      = make([]float32, 0, chunkSamples)
		limited = make([]float32, 0, chunkSamples+limiterLook)
		pcm     = make([]int16, 0, chunkSamples+limiterLook)
		peak    float64
		read    int64
	)
	emit := func(s []float32) error {
		if skip > 0 {
			k := min(skip, len(s))
			s, skip = s[k:], skip-k
		}
		out.add(s)
		if enc == nil {
			return nil
		}
		wave.add(s)
		pcm = pcm[:0]
		for _, v := range s {
			peak = max(peak, math.Abs(float64(v)))
			pcm = append(pcm, toS16(v))
		}
		return enc.Write(pcm)
	}
	for read < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(int64(len(raw)), 4*(n-read))
		if _, err := io.ReadFull(r, raw[:k]); err != nil {
			return fmt.Errorf("read staging file: %w", err)
		}
		in = in[:0]
		for i := int64(0); i < k; i += 4 {
			in = append(in, float32(float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))*gain))
		}
		read += k / 4
		if err := emit(lim.process(in, limited[:0])); err != nil {
			return err
		}
	}
	if err := emit(lim.flush(limited[:0])); err != nil {
		return err
	}
	c.Loudness.OutputLUFS = round2(out.integrated())
	if enc == nil {
		return nil
	}
	if err := enc.Close(); err != nil {
		return err
	}
	c.Loudness.OutputLUFS = round2(out.integrated())
	c.Loudness.PeakDBFS = round2(gainToDB(peak))
	c.Loudness.LimitedDB = round2(max(0, -gainToDB(lim.gainMin)))
	c.Waveform = &wave.out
	return nil
}

// toS16 rounds a sample in [-1, 1) to 16 bits, clipping.
func toS16(v float32) int16 {
	x := math.Round(float64(v) * 32768)
	return int16(max(math.MinInt16, min(x, math.MaxInt16)))
}

// round2 rounds a level in dB to hundredths, all it can mean here. JSON
// has no -Inf, so silence and anything below -100 dB read -100.
func round2(x float64) float64 {
	if math.IsInf(x, -1) || x < -100 {
		return -100
	}
	return math.Round(x*100) / 100
}
