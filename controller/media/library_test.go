package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

func newTestLibrary(t testing.TB) *Library {
	t.Helper()
	l := NewLibrary(t.TempDir())
	if err := l.Open(); err != nil {
		t.Fatal(err)
	}
	return l
}

// dirNames lists the entries of dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func assertTmpEmpty(t testing.TB, l *Library) {
	t.Helper()
	if names := dirNames(t, l.tmpDir()); len(names) != 0 {
		t.Errorf("tmp/ holds %v after ingest; want it empty", names)
	}
}

// ingest ingests upload under name, not trimming.
func ingest(t testing.TB, l *Library, upload []byte, name string) (*loaxa.Content, error) {
	t.Helper()
	return l.Ingest(context.Background(), bytes.NewReader(upload), loaxa.IngestOptions{Filename: name})
}

// mustIngest is ingest that fails the test on error.
func mustIngest(t testing.TB, l *Library, upload []byte, name string) *loaxa.Content {
	t.Helper()
	c, err := ingest(t, l, upload, name)
	if err != nil {
		t.Fatalf("Ingest(%s): %v", name, err)
	}
	return c
}

// toneAmp is the amplitude a 1 kHz sine has at the target loudness: its
// loudness is 20·log10(amplitude) - 3.01 LUFS (K-weighting is 0 dB there).
var toneAmp = math.Pow(10, (TargetLUFS+3.01)/20)

// readSamples reads stored content back through nodeaudio.NewReader, and
// checks on the way that the bytes hash to id.
func readSamples(t testing.TB, l *Library, id string) []float64 {
	t.Helper()
	f, err := l.OpenAudio(context.Background(), id)
	if err != nil {
		t.Fatalf("OpenAudio(%s): %v", id, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != id {
		t.Fatalf("stored bytes hash to %x, not to their id %s", sum, id)
	}
	r, err := nodeaudio.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("stored audio is not node audio: %v", err)
	}
	pcm, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(pcm)) != r.Size() || int64(len(raw)) != nodeaudio.Size(r.Size()/2) || r.Info().Format != nodeaudio.Format {
		t.Fatalf("node audio of %d bytes (%s) has %d PCM bytes, header says %d", len(raw), r.Info().Format, len(pcm), r.Size())
	}
	out := make([]float64, len(pcm)/2)
	for i := range out {
		out[i] = float64(int16(binary.LittleEndian.Uint16(pcm[2*i:]))) / 32768
	}
	return out
}

// fitSine fits a·sin(2πft) + b·cos(2πft) to y (sampled at rate, t = i/rate)
// by least squares and returns a, b and the RMS of what is left.
func fitSine(y []float64, first int, freq, rate float64) (a, b, residual float64) {
	var ss, sc, cc, ys, yc float64
	for i, v := range y {
		w := 2 * math.Pi * freq * float64(i+first) / rate
		s, c := math.Sin(w), math.Cos(w)
		ss += s * s
		sc += s * c
		cc += c * c
		ys += v * s
		yc += v * c
	}
	det := ss*cc - sc*sc
	a = (ys*cc - yc*sc) / det
	b = (yc*ss - ys*sc) / det
	var r float64
	for i, v := range y {
		w := 2 * math.Pi * freq * float64(i+first) / rate
		e := v - a*math.Sin(w) - b*math.Cos(w)
		r += e * e
	}
	return a, b, math.Sqrt(r / float64(len(y)))
}

func rms(y []float64) float64 {
	var s float64
	for _, v := range y {
		s += v * v
	}
	return math.Sqrt(s / float64(len(y)))
}

func dB(x float64) float64 { return 20 * math.Log10(x) }

// middle drops the first and last 25 ms, where the filter sees the silence
// around the file.
func middle(y []float64) ([]float64, int) {
	edge := nodeaudio.SampleRate / 40
	return y[edge : len(y)-edge], edge
}

func TestIngestConvertsEveryWAVLayout(t *testing.T) {
	l := newTestLibrary(t)
	const amp = 0.5
	rates := []int{8000, 8001, 11025, 16000, 22050, 32000, 44100, 44101, 48000}
	type layout struct {
		bits       int
		float      bool
		extensible bool
	}
	layouts := []layout{{8, false, false}, {16, false, false}, {24, false, false}, {32, false, false}, {32, true, false}, {24, false, true}, {32, true, true}}
	for _, lay := range layouts {
		for _, channels := range []int{1, 2, 6} {
			for _, rate := range rates {
				spec := testWAV{rate: rate, channels: channels, bits: lay.bits, extensible: lay.extensible}
				format := SourceWAV
				kind := "pcm"
				if lay.float {
					spec.formatCode, format, kind = formatFloat, SourceWAVFloat, "float"
				}
				if lay.extensible {
					kind += "-ext"
				}
				t.Run(fmt.Sprintf("%s%d/%dch/%dHz", kind, lay.bits, channels, rate), func(t *testing.T) {
					frames := int64(rate) * 3 / 10 // 0.3 s
					upload := spec.bytes(frames, sine(1000, amp, rate))
					c := mustIngest(t, l, upload, "tone.wav")
					wantSource := loaxa.Source{Filename: "tone.wav", Format: format, SampleRate: rate, Channels: channels, BitDepth: lay.bits, Size: int64(len(upload)), DurationMS: c.DurationMS}
					if c.Source != wantSource {
						t.Errorf("Source = %+v, want %+v", c.Source, wantSource)
					}
					if !protocol.ValidContentID(c.ID) || c.Format != nodeaudio.Format {
						t.Errorf("ID %q, Format %q", c.ID, c.Format)
					}
					y := readSamples(t, l, c.ID)
					if c.Size != nodeaudio.Size(int64(len(y))) {
						t.Errorf("Size = %d for %d samples", c.Size, len(y))
					}
					in := float64(frames) / float64(rate)
					out := float64(len(y)) / nodeaudio.SampleRate
					if out < in || out-in >= 1.0/nodeaudio.SampleRate {
						t.Errorf("%d samples play %.6f s; input plays %.6f s; want within one sample period", len(y), out, in)
					}
					if want := int64(out * 1000); c.DurationMS != want {
						t.Errorf("DurationMS = %d, want %d", c.DurationMS, want)
					}

					// 1 kHz in, 1 kHz out, in phase, at the target loudness.
					m, first := middle(y)
					a, b, residual := fitSine(m, first, 1000, nodeaudio.SampleRate)
					if gain := math.Hypot(a, b) / toneAmp; math.Abs(dB(gain)) > 0.2 {
						t.Errorf("1 kHz comes out %.3f dB off the target level", dB(gain))
					}
					if phase := math.Atan2(b, a); math.Abs(phase) > 0.01 {
						t.Errorf("1 kHz comes out shifted by %.4f rad", phase)
					}
					// Everything else is noise, mostly ADPCM's; 8-bit input
					// brings its own, raised by the normalisation gain.
					if r := dB(residual / (toneAmp / math.Sqrt2)); r > -25 {
						t.Errorf("residual besides 1 kHz is %.1f dB, want below -25 dB", r)
					}
					if l := c.Loudness; l == nil || math.Abs(l.OutputLUFS-TargetLUFS) > 0.2 || math.Abs(l.InputLUFS-(dB(amp)-3.01)) > 0.2 || l.LimitedDB != 0 {
						t.Errorf("Loudness = %+v, want input %.2f, output %.0f LUFS, no limiting", l, dB(amp)-3.01, TargetLUFS)
					}
				})
			}
		}
	}
	assertTmpEmpty(t, l)
}

func TestIngestFiltersAboveNodeNyquist(t *testing.T) {
	l := newTestLibrary(t)
	// A 1 kHz reference and a tone at freq at twice its amplitude: what
	// comes out at freq (or, above 8 kHz, at its alias) is compared with
	// the reference, so normalisation does not matter.
	tests := []struct {
		rate, freq int
		pass       bool
	}{
		{48000, 7000, true},  // below the 7.2 kHz pass-band edge
		{48000, 8500, false}, // would alias to 7.5 kHz
		{48000, 12000, false},
		{44100, 7000, true},
		{44100, 12000, false},
		{22050, 10000, false},
		{8000, 3500, true}, // upsampled: its 12.5 kHz image must not appear
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dHz@%d", tt.freq, tt.rate), func(t *testing.T) {
			ref, tone := sine(1000, 0.2, tt.rate), sine(float64(tt.freq), 0.4, tt.rate)
			spec := testWAV{rate: tt.rate, channels: 1, bits: 24}
			upload := spec.bytes(int64(tt.rate)/2, func(i int64, c int) float64 { return ref(i, c) + tone(i, c) })
			m, first := middle(readSamples(t, l, mustIngest(t, l, upload, "tone.wav").ID))
			a, b, _ := fitSine(m, first, 1000, nodeaudio.SampleRate)
			level := math.Hypot(a, b)
			at := float64(tt.freq)
			if at > nodeaudio.SampleRate/2 {
				at = nodeaudio.SampleRate - at
			}
			a, b, _ = fitSine(m, first, at, nodeaudio.SampleRate)
			rel := dB(math.Hypot(a, b) / level)
			t.Logf("%d Hz at %d Hz comes out at %.1f dB against the reference (input: +6 dB)", tt.freq, tt.rate, rel)
			// ADPCM follows 7 kHz a little short (0.3 dB); the resampler
			// alone is flat to 0.01 dB (TestResamplerResponse).
			if tt.pass && math.Abs(rel-dB(2)) > 0.5 {
				t.Errorf("%d Hz comes out at %.2f dB against 1 kHz; want it passed at +6.02 dB", tt.freq, rel)
			}
			if !tt.pass && rel > -40 {
				t.Errorf("%d Hz at %d Hz comes out at %.1f dB at %.0f Hz; want at least 40 dB down (aliasing)", tt.freq, tt.rate, rel, at)
			}
		})
	}
}

func TestIngestPassesNodeRateThrough(t *testing.T) {
	// 16 kHz mono is not resampled: the node gets the input times the
	// normalisation gain, within ADPCM's error; extra chunks change
	// nothing.
	plain := testWAV{rate: 16000, channels: 1, bits: 16}
	// Voiced speech has most of its energy low, falling with frequency.
	noisy := func(i int64, _ int) float64 {
		t := float64(i) / 16000
		return 0.3*math.Sin(2*math.Pi*150*t) + 0.15*math.Sin(2*math.Pi*440*t) + 0.08*math.Sin(2*math.Pi*1200*t) + 0.03*math.Sin(2*math.Pi*3100*t)
	}
	withChunks := plain
	withChunks.before = []testChunk{{"bext", bytes.Repeat([]byte{'b'}, 602)}, {"JUNK", make([]byte, 27)}}
	withChunks.between = []testChunk{{"LIST", append([]byte("INFOINAM"), 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0)}}
	withChunks.after = []testChunk{{"LIST", []byte("INFO")}}

	l := newTestLibrary(t)
	a := mustIngest(t, l, plain.bytes(8000, noisy), "")
	b := mustIngest(t, l, withChunks.bytes(8000, noisy), "")
	if a.ID != b.ID {
		t.Errorf("extra chunks changed the content id: %s, %s", a.ID, b.ID)
	}
	y := readSamples(t, l, a.ID)
	g := math.Pow(10, a.Loudness.GainDB/20)
	var sig, noise float64
	for i, v := range y {
		want := math.Round(noisy(int64(i), 0)*32768) / 32768 * g
		sig += want * want
		noise += (v - want) * (v - want)
	}
	if snr := 10 * math.Log10(sig/noise); snr < 25 {
		t.Errorf("output against input × %.2f dB: SNR %.1f dB, want ≥ 25 dB", a.Loudness.GainDB, snr)
	}
	if names := dirNames(t, l.contentDir()); len(names) != 1 {
		t.Errorf("content/ holds %v; want one file", names)
	}
}

func TestIngestAveragesChannels(t *testing.T) {
	low, high := sine(500, 0.3, 16000), sine(1000, 0.3, 16000)
	tests := []struct {
		name   string
		sample func(int64, int) float64
		ratio  float64 // of 1 kHz to 500 Hz in the mix
	}{
		{"different channels", func(i int64, c int) float64 {
			if c == 0 {
				return low(i, c)
			}
			return high(i, c)
		}, 1},
		{"1 kHz in opposite phase", func(i int64, c int) float64 { return low(i, c) + high(i, c)*float64(1-2*c) }, 0},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upload := testWAV{rate: 16000, channels: 2, bits: 16}.bytes(8000, tt.sample)
			y := readSamples(t, l, mustIngest(t, l, upload, "x.wav").ID)
			a, b, _ := fitSine(y, 0, 500, nodeaudio.SampleRate)
			c, d, _ := fitSine(y, 0, 1000, nodeaudio.SampleRate)
			if got := math.Hypot(c, d) / math.Hypot(a, b); math.Abs(got-tt.ratio) > 0.01 {
				t.Errorf("1 kHz / 500 Hz = %.4f, want %.4f", got, tt.ratio)
			}
		})
	}
}

func TestIngestAcceptsQuirkyWAV(t *testing.T) {
	s := sine(440, 0.3, 22050)
	base := testWAV{rate: 22050, channels: 2, bits: 16}
	odd := base
	odd.channels, odd.bits = 1, 24 // 3-byte frames: odd data size, pad byte
	list := append([]byte("INFOISFT"), 3, 0, 0, 0, 'a', 'b', 0, 0)

	tests := []struct {
		name   string
		upload []byte
	}{
		{"LIST before fmt", func() []byte { w := base; w.before = []testChunk{{"LIST", list}}; return w.bytes(2205, s) }()},
		{"odd-sized chunk with pad byte", func() []byte { w := base; w.between = []testChunk{{"junk", []byte{1, 2, 3}}}; return w.bytes(2205, s) }()},
		{"odd data size", odd.bytes(2205, s)},
		{"RIFF size from a streaming writer", func() []byte { w := base; w.riffSize = u32(0xFFFFFFFF); return w.bytes(2205, s) }()},
		{"RIFF size zero", func() []byte { w := base; w.riffSize = u32(0); return w.bytes(2205, s) }()},
		{"WAVE_FORMAT_EXTENSIBLE PCM", func() []byte { w := base; w.extensible = true; return w.bytes(2205, s) }()},
		{"trailing partial frame", func() []byte {
			w := base
			w.dataSize = u32(2205*4 + 2) // half a stereo frame more than whole frames
			return append(w.bytes(2205, s), 0, 0)
		}()},
		{"float beyond full scale", testWAV{rate: 22050, channels: 1, bits: 32, formatCode: formatFloat}.bytes(2205, sine(440, 3, 22050))},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustIngest(t, l, tt.upload, "quirky.wav")
			m, first := middle(readSamples(t, l, c.ID))
			a, b, residual := fitSine(m, first, 440, nodeaudio.SampleRate)
			if r := dB(residual / math.Hypot(a, b)); r > -25 {
				t.Errorf("440 Hz with %.1f dB of something else", r)
			}
			if c.DurationMS != 100 {
				t.Errorf("DurationMS = %d, want 100", c.DurationMS)
			}
		})
	}
	assertTmpEmpty(t, l)
}

func TestIngestRejects(t *testing.T) {
	s := sine(1000, 0.5, 16000)
	pcm := testWAV{rate: 16000, channels: 1, bits: 16}
	with := func(f func(w *testWAV)) testWAV { w := pcm; f(&w); return w }
	good := pcm.bytes(1600, s)
	fmtChunk := good[12:36]
	dataChunk := good[36:]
	riff := func(chunks ...[]byte) []byte {
		b := []byte("RIFF\x00\x00\x00\x00WAVE")
		for _, c := range chunks {
			b = append(b, c...)
		}
		binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
		return b
	}
	setFmt := func(off int, v uint32, size int) []byte {
		b := bytes.Clone(good)
		switch size {
		case 2:
			binary.LittleEndian.PutUint16(b[20+off:], uint16(v))
		case 4:
			binary.LittleEndian.PutUint32(b[20+off:], v)
		}
		return b
	}
	manyChunks := riff(bytes.Repeat([]byte("JUNK\x00\x00\x00\x00"), 1001), fmtChunk, dataChunk)

	tests := []struct {
		name   string
		upload []byte
		code   string
		msg    string
	}{
		{"empty", nil, loaxa.EInvalid, `"in.wav" is empty`},
		{"text", []byte("Kính gửi bà con thôn Đông,\n"), loaxa.EUnsupported, `"in.wav" is neither WAV nor MP3; upload WAV or MP3`},
		{"Ogg", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00"), loaxa.EUnsupported, `"in.wav" is neither WAV nor MP3 (it looks like Ogg); upload WAV or MP3`},
		{"three bytes", []byte("RIF"), loaxa.EUnsupported, "is neither WAV nor MP3"},
		{"RIFF without WAVE", append([]byte("RIFF\x04\x00\x00\x00AVI "), dataChunk...), loaxa.EUnsupported, `is a RIFF file of type "AVI ", not a WAV file`},
		{"RIFF cut in the header", []byte("RIFF\x24\x00\x00"), loaxa.EInvalid, "the file is truncated: it ends inside the WAV header"},
		{"RF64", append([]byte("RF64\xff\xff\xff\xffWAVE"), fmtChunk...), loaxa.EUnsupported, "64-bit RF64 WAV"},
		{"missing fmt", riff(dataChunk), loaxa.EInvalid, "has no fmt chunk before its audio data"},
		{"nothing after WAVE", riff(), loaxa.EInvalid, "has no fmt chunk"},
		{"missing data", riff(fmtChunk), loaxa.EInvalid, "has no data chunk"},
		{"cut in a chunk header", riff(fmtChunk, []byte("LIS")), loaxa.EInvalid, "the file is truncated: it ends inside a chunk header"},
		{"two fmt chunks", riff(fmtChunk, fmtChunk, dataChunk), loaxa.EInvalid, "has two fmt chunks"},
		// An officer read what was wrong and not what to do about it.
		{"truncated data", good[:44+1000], loaxa.EInvalid,
			"the file is truncated: the header promises 3200 bytes of audio, only 1000 are there. It was cut short (while copied, downloaded or sent): upload the whole file again."},
		{"zero-length data", pcm.bytes(0, s), loaxa.EInvalid, "holds no audio: its data chunk is empty"},
		{"data shorter than a frame", append(with(func(w *testWAV) { w.channels, w.dataSize = 2, u32(2) }).bytes(0, s), 0, 0), loaxa.EInvalid, "data chunk is empty"},
		{"absurd data size", with(func(w *testWAV) { w.dataSize = u32(0xFFFFFFFF) }).bytes(1600, s), loaxa.EInvalid, "the header promises 4294967295 bytes of audio, only 3200 are there"},
		{"absurd fmt size", riff([]byte("fmt \xf0\xff\xff\x7f"), fmtChunk[8:], dataChunk), loaxa.EInvalid, "its fmt chunk promises 2147483632 bytes"},
		{"absurd LIST size", riff([]byte("LIST\xff\xff\xff\xffINFO"), fmtChunk, dataChunk), loaxa.EInvalid, `its "LIST" chunk promises 4294967295 bytes`},
		{"short fmt", riff([]byte("fmt \x0c\x00\x00\x00"), fmtChunk[8:20], dataChunk), loaxa.EInvalid, "fmt chunk of 12 bytes"},
		{"64-bit float", with(func(w *testWAV) { w.formatCode, w.bits = formatFloat, 64 }).bytes(1600, s), loaxa.EUnsupported, "has 64-bit floating-point samples; upload 32-bit float or 16-bit PCM WAV"},
		{"silent", pcm.bytes(16000, func(int64, int) float64 { return 0 }), loaxa.EInvalid, `"in.wav" is silent: its loudness is below -70 LUFS`},
		{"near silent", pcm.bytes(16000, sine(1000, 0.0002, 16000)), loaxa.EInvalid, "is silent"},
		{"extensible unknown GUID", func() []byte {
			b := with(func(w *testWAV) { w.extensible = true }).bytes(1600, s)
			b[20+39] ^= 0xFF
			return b
		}(), loaxa.EUnsupported, "unknown WAVE_FORMAT_EXTENSIBLE subformat"},
		{"extensible too short", setFmt(0, formatExtensible, 2), loaxa.EInvalid, "WAVE_FORMAT_EXTENSIBLE but its fmt chunk has only 16 bytes"},
		{"IMA ADPCM", setFmt(0, 0x11, 2), loaxa.EUnsupported, "holds IMA ADPCM audio (WAV format code 0x0011)"},
		{"MP3 in WAV", setFmt(0, 0x55, 2), loaxa.EUnsupported, "holds MP3 audio (WAV format code 0x0055); only PCM and floating-point WAV are accepted"},
		{"unknown codec", setFmt(0, 0x1234, 2), loaxa.EUnsupported, "holds compressed audio (WAV format code 0x1234)"},
		{"12-bit", setFmt(14, 12, 2), loaxa.EUnsupported, "has 12-bit samples"},
		{"zero channels", setFmt(2, 0, 2), loaxa.EInvalid, "says it has 0 channels"},
		{"block align", setFmt(12, 4, 2), loaxa.EInvalid, "4 bytes per frame for 1 channels of 16 bits"},
		{"sample rate 0", setFmt(4, 0, 4), loaxa.EInvalid, "sample rate is 0 Hz"},
		{"sample rate 96 kHz", setFmt(4, 96000, 4), loaxa.EUnsupported, "sample rate of 96000 Hz; upload audio sampled at 8000 to 48000 Hz"},
		{"sample rate 4 kHz", setFmt(4, 4000, 4), loaxa.EUnsupported, "sample rate of 4000 Hz"},
		{"chunk bomb", manyChunks, loaxa.EInvalid, "more than 1000 chunks before its audio data"},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ingest(t, l, tt.upload, "in.wav")
			if err == nil {
				t.Fatalf("Ingest accepted it as %+v", c)
			}
			if code := loaxa.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
			if msg := loaxa.ErrorMessage(err); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			assertTmpEmpty(t, l)
		})
	}
	if names := dirNames(t, l.contentDir()); len(names) != 0 {
		t.Errorf("content/ holds %v after rejected uploads", names)
	}
}

func TestIngestLimits(t *testing.T) {
	upload := testWAV{rate: 8000, channels: 1, bits: 16}.bytes(3*8000, sine(1000, 0.5, 8000)) // 3 s, 48044 bytes
	tests := []struct {
		name      string
		maxBytes  int64
		maxLength time.Duration
		msg       string
	}{
		{"size", 8 << 10, 0, `"big.wav" is larger than the 8 KB upload limit`},
		{"size just under", int64(len(upload)) - 1, 0, "upload limit"},
		{"duration", 0, 2 * time.Second, `"big.wav" plays for 3s, longer than the 2s limit; split it into shorter parts`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLibrary(t)
			l.MaxUploadBytes, l.MaxDuration = tt.maxBytes, tt.maxLength
			_, err := ingest(t, l, upload, "big.wav")
			if code := loaxa.ErrorCode(err); code != loaxa.ETooLarge {
				t.Fatalf("code %q, want %q (%v)", code, loaxa.ETooLarge, err)
			}
			if msg := loaxa.ErrorMessage(err); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			assertTmpEmpty(t, l)
		})
	}
	t.Run("exactly at the limits", func(t *testing.T) {
		l := newTestLibrary(t)
		l.MaxUploadBytes, l.MaxDuration = int64(len(upload)), 3*time.Second
		if _, err := ingest(t, l, upload, "big.wav"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIngestStoresIdenticalAudioOnce(t *testing.T) {
	l := newTestLibrary(t)
	upload := testWAV{rate: 44100, channels: 2, bits: 16}.bytes(4410, sine(300, 0.2, 44100))
	first := mustIngest(t, l, upload, "a.wav")
	second := mustIngest(t, l, upload, "b.wav")
	if first.ID != second.ID || first.Size != second.Size {
		t.Errorf("same upload gave %s (%d bytes) and %s (%d bytes)", first.ID, first.Size, second.ID, second.Size)
	}
	if second.Source.Filename != "b.wav" {
		t.Errorf("second Source.Filename = %q", second.Source.Filename)
	}
	if names := dirNames(t, l.contentDir()); len(names) != 1 || names[0] != first.ID+".wav" {
		t.Errorf("content/ holds %v, want [%s.wav]", names, first.ID)
	}
	assertTmpEmpty(t, l)
}

// TestOpenAudioSharesOneFile: readers of one content at once share one
// open file, each at its own offset; the file closes with the last of
// them, and a later reader opens it again.
func TestOpenAudioSharesOneFile(t *testing.T) {
	l := newTestLibrary(t)
	c := mustIngest(t, l, testWAV{rate: 16000, channels: 1, bits: 16}.bytes(16000, sine(1000, 0.5, 16000)), "one-second.wav")
	want, err := os.ReadFile(l.path(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	var readers []io.ReadSeekCloser
	for range 3 {
		r, err := l.OpenAudio(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	if n := l.openAudioFiles(); n != 1 {
		t.Fatalf("%d audio files open for three readers of one content, want 1", n)
	}
	// Interleaved reads and a seek: each reader keeps its own place.
	got := make([][]byte, len(readers))
	buf := make([]byte, 1000)
	for done := 0; done < len(readers); {
		done = 0
		for i, r := range readers {
			n, err := r.Read(buf)
			got[i] = append(got[i], buf[:n]...)
			if err == io.EOF {
				done++
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range got {
		if !bytes.Equal(got[i], want) {
			t.Errorf("reader %d read %d bytes, not the file's %d", i, len(got[i]), len(want))
		}
	}
	if _, err := readers[0].Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(readers[0]); !bytes.Equal(rest, want[100:]) {
		t.Error("after a seek the reader does not read from there")
	}
	readers[0].Close()
	readers[0].Close() // twice: no effect on the others
	readers[1].Close()
	if _, err := readers[2].Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(readers[2]); err != nil || !bytes.Equal(all, want) {
		t.Errorf("the last reader after the others closed: %d bytes, %v", len(all), err)
	}
	readers[2].Close()
	if n := l.openAudioFiles(); n != 0 {
		t.Fatalf("%d audio files open after every reader closed", n)
	}
	r, err := l.OpenAudio(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if all, err := io.ReadAll(r); err != nil || !bytes.Equal(all, want) {
		t.Errorf("a reader opened again: %d bytes, %v", len(all), err)
	}
}

func TestOpenAudio(t *testing.T) {
	l := newTestLibrary(t)
	c := mustIngest(t, l, testWAV{rate: 16000, channels: 1, bits: 16}.bytes(16000, sine(1000, 0.5, 16000)), "one-second.wav")
	t.Run("round trip", func(t *testing.T) {
		f, err := l.OpenAudio(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := nodeaudio.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Duration() != time.Second || c.DurationMS != 1000 || c.Size != nodeaudio.Size(16000) {
			t.Errorf("reader plays %v; content says %d ms, %d bytes", r.Duration(), c.DurationMS, c.Size)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != 32000 {
			t.Errorf("read %d PCM bytes, %v", n, err)
		}
		// Nodes resume downloads with Range requests: seeking must work.
		if _, err := f.Seek(nodeaudio.HeaderSize, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, f); n != c.Size-nodeaudio.HeaderSize {
			t.Errorf("after seeking past the header, %d bytes remain", n)
		}
	})
	tests := []struct {
		name, id, code string
	}{
		{"absent", strings.Repeat("ab", 32), loaxa.ENotFound},
		{"path traversal", "../../etc/passwd", loaxa.EInvalid},
		{"upper case", strings.ToUpper(c.ID), loaxa.EInvalid},
		{"empty", "", loaxa.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := l.OpenAudio(context.Background(), tt.id)
			if err == nil {
				f.Close()
				t.Fatal("OpenAudio succeeded")
			}
			if code := loaxa.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
		})
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
	hook func() // called when data runs out, before err is returned
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.hook != nil {
			r.hook()
		}
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestIngestLeavesNothingOnFailure(t *testing.T) {
	upload := testWAV{rate: 48000, channels: 2, bits: 16}.bytes(48000, sine(1000, 0.5, 48000))
	broken := errors.New("connection reset by peer")

	t.Run("upload breaks off", func(t *testing.T) {
		l := newTestLibrary(t)
		_, err := l.Ingest(context.Background(), &failingReader{data: upload[:5000], err: broken}, loaxa.IngestOptions{Filename: "x.wav"})
		if !errors.Is(err, broken) {
			t.Errorf("err = %v, want the read error", err)
		}
		assertTmpEmpty(t, l)
	})
	t.Run("cancelled before", func(t *testing.T) {
		l := newTestLibrary(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := l.Ingest(ctx, bytes.NewReader(upload), loaxa.IngestOptions{Filename: "x.wav"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		assertTmpEmpty(t, l)
	})
	t.Run("cancelled during conversion", func(t *testing.T) {
		// The upload arrives whole; cancelling as it ends means the
		// conversion is what sees the cancellation.
		l := newTestLibrary(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := l.Ingest(ctx, &failingReader{data: upload, err: io.EOF, hook: cancel}, loaxa.IngestOptions{Filename: "x.wav"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		assertTmpEmpty(t, l)
		if names := dirNames(t, l.contentDir()); len(names) != 0 {
			t.Errorf("content/ holds %v", names)
		}
	})
}

func TestOpenRemovesLeftovers(t *testing.T) {
	l := newTestLibrary(t)
	c := mustIngest(t, l, testWAV{rate: 8000, channels: 1, bits: 8}.bytes(800, sine(500, 0.5, 8000)), "x.wav")
	for _, name := range []string{"upload-123", "convert-456.wav", "stage-789.f32"} {
		if err := os.WriteFile(filepath.Join(l.tmpDir(), name), []byte("half written"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(l.tmpDir(), "stray"), 0o755); err != nil {
		t.Fatal(err)
	}
	reopened := NewLibrary(l.Dir)
	if err := reopened.Open(); err != nil {
		t.Fatal(err)
	}
	assertTmpEmpty(t, reopened)
	readSamples(t, reopened, c.ID) // stored content survives
}

func TestConcurrentIngestsOfTheSameAudio(t *testing.T) {
	l := newTestLibrary(t)
	upload := testWAV{rate: 22050, channels: 1, bits: 16}.bytes(22050, sine(700, 0.4, 22050))
	const n = 4
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := ingest(t, l, upload, fmt.Sprintf("copy%d.wav", i))
			if err == nil {
				ids[i] = c.ID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("ingest %d: id %s, %v; ingest 0: id %s", i, ids[i], errs[i], ids[0])
		}
	}
	if names := dirNames(t, l.contentDir()); len(names) != 1 {
		t.Errorf("content/ holds %v", names)
	}
	readSamples(t, l, ids[0])
	assertTmpEmpty(t, l)
}

// TestChunkList: ingest makes the audio's chunk list and its root; asked
// for, the list comes from memory while kept and from the file once let
// go, the same; the lists kept stay within maxChunkCache.
func TestChunkList(t *testing.T) {
	l := newTestLibrary(t)
	c := mustIngest(t, l, testWAV{rate: 16000, channels: 1, bits: 16}.bytes(16000*5, sine(300, 0.2, 16000)), "a.wav")
	f, err := l.OpenAudio(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := protocol.ChunkList(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if c.Chunks != protocol.ChunkRoot(want) || len(want) != protocol.Chunks(c.Size)*protocol.ChunkHashSize {
		t.Fatalf("ingest: chunks %s for %d bytes; want the root of the file's %d-byte list", c.Chunks, c.Size, len(want))
	}
	for _, kept := range []bool{true, false} {
		if !kept {
			l.mu.Lock()
			clear(l.chunks)
			l.chunkBytes = 0
			l.mu.Unlock()
		}
		got, err := l.ChunkList(context.Background(), c.ID)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ChunkList (kept in memory %v): %d bytes, %v; want the file's list", kept, len(got), err)
		}
	}
	if _, err := l.ChunkList(context.Background(), strings.Repeat("0", 64)); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("ChunkList of content not held: %v, want ENotFound", err)
	}

	big := make([]byte, maxChunkCache/3+1)
	for i := range 5 {
		l.keepChunks(fmt.Sprintf("%064d", i), big)
		if l.chunkBytes > maxChunkCache {
			t.Fatalf("after %d lists of %d bytes, %d kept: more than %d", i+1, len(big), l.chunkBytes, maxChunkCache)
		}
	}
	if _, ok := l.chunks[fmt.Sprintf("%064d", 4)]; !ok {
		t.Error("the list kept last was let go")
	}
}

// TestReleaseDeletesOnlyAudioNoOneKept: audio that ingests stored new
// goes when the last of them is released and none kept it (a request
// refused after the ingest leaves nothing in content/); it stays while
// another ingest of the same audio still holds it, once one kept it, and
// always when it was in the library before.
func TestReleaseDeletesOnlyAudioNoOneKept(t *testing.T) {
	ctx := context.Background()
	upload := testWAV{rate: 16000, channels: 1, bits: 16}.bytes(8000, sine(440, 0.3, 16000))
	release := func(l *Library, id string, kept bool) {
		t.Helper()
		if err := l.Release(ctx, id, kept); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("refused", func(t *testing.T) {
		l := newTestLibrary(t)
		c := mustIngest(t, l, upload, "a.wav")
		release(l, c.ID, false)
		if names := dirNames(t, l.contentDir()); len(names) != 0 {
			t.Errorf("content/ holds %v after the only ingest was released unkept", names)
		}
		if _, err := l.ChunkList(ctx, c.ID); loaxa.ErrorCode(err) != loaxa.ENotFound {
			t.Errorf("ChunkList of the removed audio: %v, want ENotFound", err)
		}
		// The same audio again is stored again.
		again := mustIngest(t, l, upload, "a.wav")
		release(l, again.ID, true)
		readSamples(t, l, again.ID)
	})
	t.Run("another ingest still holds it", func(t *testing.T) {
		l := newTestLibrary(t)
		refused := mustIngest(t, l, upload, "a.wav")
		accepted := mustIngest(t, l, upload, "b.wav")
		release(l, refused.ID, false)
		readSamples(t, l, accepted.ID) // the other request records it now
		release(l, accepted.ID, true)
		readSamples(t, l, accepted.ID)
	})
	t.Run("another ingest kept it", func(t *testing.T) {
		l := newTestLibrary(t)
		refused := mustIngest(t, l, upload, "a.wav")
		accepted := mustIngest(t, l, upload, "b.wav")
		release(l, accepted.ID, true)
		release(l, refused.ID, false)
		readSamples(t, l, accepted.ID)
	})
	t.Run("stored before", func(t *testing.T) {
		l := newTestLibrary(t)
		c := mustIngest(t, l, upload, "a.wav")
		release(l, c.ID, true)
		refused := mustIngest(t, l, upload, "b.wav")
		release(l, refused.ID, false)
		readSamples(t, l, c.ID)
	})
	t.Run("not held", func(t *testing.T) {
		l := newTestLibrary(t)
		c := mustIngest(t, l, upload, "a.wav")
		release(l, c.ID, true)
		if err := l.Release(ctx, c.ID, false); err == nil {
			t.Error("a second release of one ingest succeeded; want an error")
		}
		readSamples(t, l, c.ID)
	})
}
