package media

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol/nodeaudio"
)

// tone16 returns n samples of a sine at freq Hz (16 kHz) with amplitude amp.
func tone16(freq, amp float64, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/nodeaudio.SampleRate))
	}
	return s
}

func measure(parts ...[]float32) float64 {
	m := newMeter(nodeaudio.SampleRate)
	for _, p := range parts {
		m.add(p)
	}
	return m.integrated()
}

// TestMeter checks the loudness meter against the definitions of ITU-R
// BS.1770-4 and the gating cases of EBU Tech 3341, on mono.
func TestMeter(t *testing.T) {
	sec := nodeaudio.SampleRate
	tests := []struct {
		name  string
		parts [][]float32
		want  float64
	}{
		// A 1 kHz sine of amplitude A reads 20·log10(A) - 3.01 LUFS in mono
		// (the K-weighting is 0 dB at 1 kHz, and the -0.691 makes up for
		// its +0.691 dB there).
		{"1 kHz at -20 dBFS", [][]float32{tone16(1000, 0.1, 20*sec)}, -23.01},
		{"1 kHz at -3 dBFS", [][]float32{tone16(1000, math.Pow(10, -3.0/20), 10*sec)}, -6.01},
		// Silence is below the absolute gate and does not count.
		{"tone and silence", [][]float32{tone16(1000, 0.1, 10*sec), make([]float32, 10*sec)}, -23.01},
		// Tech 3341 case 3, in mono: 10 s 13 dB quieter on either side of
		// 60 s fall under the relative gate.
		{"relative gate", [][]float32{tone16(1000, 0.1/math.Pow(10, 13.0/20), 10*sec), tone16(1000, 0.1, 60*sec), tone16(1000, 0.1/math.Pow(10, 13.0/20), 10*sec)}, -23.01},
		// Case 4's quieter parts are 20 dB down: also gated.
		{"quieter still", [][]float32{tone16(1000, 0.01, 10*sec), tone16(1000, 0.1, 60*sec), tone16(1000, 0.01, 10*sec)}, -23.01},
		{"shorter than a block", [][]float32{tone16(1000, 0.1, sec/4)}, -23.01},
		{"silence", [][]float32{make([]float32, sec)}, math.Inf(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := measure(tt.parts...)
			tol := 0.1
			if math.IsInf(tt.want, -1) {
				if !math.IsInf(got, -1) {
					t.Errorf("%.2f LUFS, want -Inf", got)
				}
				return
			}
			if math.Abs(got-tt.want) > tol {
				t.Errorf("%.3f LUFS, want %.2f ± %.1f", got, tt.want, tol)
			}
		})
	}
}

// TestKWeighting checks the K-weighting derived from its analogue
// prototype: at 48 kHz it is the filter BS.1770-4 tabulates, and at the
// node rate it weighs tones within 0.2 dB of that.
func TestKWeighting(t *testing.T) {
	shelf, hp := kWeighting(48000)
	got := []float64{shelf.b0, shelf.b1, shelf.b2, shelf.a1, shelf.a2, hp.b0, hp.b1, hp.b2, hp.a1, hp.a2}
	want := []float64{1.53512485958697, -2.69169618940638, 1.19839281085285, -1.69065929318241, 0.73248077421585,
		1, -2, 1, -1.99004745483398, 0.99007225036621}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-8 {
			t.Errorf("coefficient %d is %.14f, BS.1770 says %.14f", i, got[i], want[i])
		}
	}
	for _, f := range []float64{100, 500, 1000, 2000, 4000, 7000} {
		level := map[int]float64{}
		for _, rate := range []int{16000, 48000} {
			m := newMeter(rate)
			s := make([]float32, 5*rate)
			for i := range s {
				s[i] = float32(0.1 * math.Sin(2*math.Pi*f*float64(i)/float64(rate)))
			}
			m.add(s)
			level[rate] = m.integrated()
		}
		if d := level[16000] - level[48000]; math.Abs(d) > 0.2 {
			t.Errorf("%.0f Hz: %.3f LUFS at 16 kHz, %.3f at 48 kHz", f, level[16000], level[48000])
		}
	}
}

func TestLimiter(t *testing.T) {
	ceiling := dbToGain(CeilingDBFS)
	rng := rand.New(rand.NewPCG(1, 2))
	t.Run("never over the ceiling", func(t *testing.T) {
		in := tone16(300, 0.5, 32000)
		for range 200 { // clicks of all sizes
			in[rng.IntN(len(in))] = float32((rng.Float64()*4 - 2))
		}
		for i := 10000; i < 14000; i++ { // a loud stretch
			in[i] *= 4
		}
		l := newLimiter(ceiling, limiterLook, 1280)
		var out []float32
		for i := 0; i < len(in); i += 777 {
			out = l.process(in[i:min(i+777, len(in))], out)
		}
		out = l.flush(out)[l.latency():]
		if len(out) != len(in) {
			t.Fatalf("%d samples out of %d", len(out), len(in))
		}
		for i, v := range out {
			if math.Abs(float64(v)) > ceiling+1e-9 {
				t.Fatalf("sample %d is %.4f, over the ceiling %.4f", i, v, ceiling)
			}
		}
		if l.gainMin > 0.25 {
			t.Errorf("lowest gain %.3f; the loud stretch needs below 0.45", l.gainMin)
		}
	})
	t.Run("transparent below the ceiling", func(t *testing.T) {
		in := tone16(300, 0.8, 16000)
		l := newLimiter(ceiling, limiterLook, 1280)
		out := l.flush(l.process(in, nil))[l.latency():]
		for i := range in {
			if out[i] != in[i] {
				t.Fatalf("sample %d: %v in, %v out", i, in[i], out[i])
			}
		}
	})
}

func TestIngestNormalisesLoudness(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	voiced := func(amp float64) func(int64, int) float64 {
		return func(i int64, _ int) float64 {
			t := float64(i) / 16000
			env := 0.5 + 0.5*math.Sin(2*math.Pi*2.5*t)
			return amp * env * (math.Sin(2*math.Pi*180*t) + 0.5*math.Sin(2*math.Pi*540*t) + 0.3*math.Sin(2*math.Pi*1700*t))
		}
	}
	clicks := func(f func(int64, int) float64) func(int64, int) float64 {
		return func(i int64, c int) float64 {
			if i%4000 == 17 {
				return 0.99
			}
			return f(i, c)
		}
	}
	noisy := func(f func(int64, int) float64) func(int64, int) float64 {
		return func(i int64, c int) float64 { return f(i, c) + 0.003*rng.NormFloat64() }
	}
	tests := []struct {
		name    string
		sample  func(int64, int) float64
		limited bool
	}{
		{"quiet phone recording", noisy(voiced(0.01)), false},
		{"loud master", voiced(0.6), false},
		{"quiet with loud clicks", clicks(voiced(0.02)), true},
		{"at the target already", voiced(0.12), false},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upload := testWAV{rate: 16000, channels: 1, bits: 16}.bytes(16000*4, tt.sample)
			c := mustIngest(t, l, upload, "x.wav")
			y := readSamples(t, l, c.ID)
			f := make([]float32, len(y))
			peak := 0.0
			for i, v := range y {
				f[i] = float32(v)
				peak = max(peak, math.Abs(v))
			}
			got := measure(f)
			t.Logf("%+v; decoded: %.2f LUFS, peak %.2f dBFS", *c.Loudness, got, dB(peak))
			if math.Abs(got-TargetLUFS) > 0.5 {
				t.Errorf("plays at %.2f LUFS, want %.0f ± 0.5", got, TargetLUFS)
			}
			// ADPCM may overshoot the limiter's ceiling by a little.
			if dB(peak) > CeilingDBFS+0.5 {
				t.Errorf("peak %.2f dBFS, ceiling %.0f dBFS", dB(peak), CeilingDBFS)
			}
			if limited := c.Loudness.LimitedDB > 0; limited != tt.limited {
				t.Errorf("limited by %.2f dB, want limiting %v", c.Loudness.LimitedDB, tt.limited)
			}
		})
	}
	t.Run("gain is capped", func(t *testing.T) {
		upload := testWAV{rate: 16000, channels: 1, bits: 24}.bytes(16000*2, voiced(0.002))
		c := mustIngest(t, l, upload, "whisper.wav")
		if c.Loudness.GainDB != MaxGainDB || c.Loudness.OutputLUFS > TargetLUFS-5 {
			t.Errorf("loudness %+v; want the gain capped at %.0f dB", *c.Loudness, MaxGainDB)
		}
	})
}

func TestIngestTrimsSilence(t *testing.T) {
	sec := int64(16000)
	quiet := func(int64, int) float64 { return 0 }
	hiss := func(i int64, _ int) float64 { return 0.0001 * math.Sin(float64(i*i)) } // -80 dBFS
	body := sine(440, 0.3, 16000)
	spans := func(lead, main, tail int64, silence func(int64, int) float64) func(int64, int) float64 {
		return func(i int64, c int) float64 {
			if i < lead || i >= lead+main {
				return silence(i, c)
			}
			return body(i, c)
		}
	}
	tests := []struct {
		name             string
		lead, main, tail int64
		silence          func(int64, int) float64
	}{
		{"digital silence", sec, 2 * sec, 3 * sec / 2, quiet},
		{"hiss", sec / 2, 3 * sec, sec, hiss},
		{"nothing to trim", 0, 2 * sec, 0, quiet},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := tt.lead + tt.main + tt.tail
			upload := testWAV{rate: 16000, channels: 1, bits: 16}.bytes(total, spans(tt.lead, tt.main, tt.tail, tt.silence))
			c, err := l.Ingest(context.Background(), bytes.NewReader(upload), loaxa.IngestOptions{Filename: "x.wav", TrimSilence: true})
			if err != nil {
				t.Fatal(err)
			}
			// What is kept: the sound and up to 100 ms on either side,
			// give or take the 20 ms windows.
			wantStart := max(0, tt.lead-trimMargin) * 1000 / sec
			wantEnd := max(0, tt.tail-trimMargin) * 1000 / sec
			if c.Trim == nil || abs(c.Trim.StartMS-wantStart) > 20 || abs(c.Trim.EndMS-wantEnd) > 20 {
				t.Errorf("Trim %+v, want about %d ms and %d ms", c.Trim, wantStart, wantEnd)
			}
			if c.DurationMS+c.Trim.StartMS+c.Trim.EndMS != total*1000/sec || c.Source.DurationMS != total*1000/sec {
				t.Errorf("DurationMS %d + trim %+v does not add up to the source's %d ms", c.DurationMS, c.Trim, c.Source.DurationMS)
			}
			y := readSamples(t, l, c.ID)
			if int64(len(y))*1000/sec != c.DurationMS {
				t.Errorf("%d samples for %d ms", len(y), c.DurationMS)
			}
			// The tone is all there: its first peak is within the margin.
			m, first := middle(y)
			a, b, _ := fitSine(m, first, 440, nodeaudio.SampleRate)
			if math.Hypot(a, b) < 0.1 {
				t.Errorf("440 Hz at %.3f after trimming", math.Hypot(a, b))
			}
		})
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestIngestWaveform(t *testing.T) {
	l := newTestLibrary(t)
	// One second of silence, then one of a loud tone.
	half := sine(1000, 0.5, 16000)
	upload := testWAV{rate: 16000, channels: 1, bits: 16}.bytes(32000, func(i int64, c int) float64 {
		if i < 16000 {
			return 0
		}
		return half(i, c)
	})
	c := mustIngest(t, l, upload, "x.wav")
	w := c.Waveform
	if w == nil || len(w.Peak) != WaveformBuckets || len(w.RMS) != WaveformBuckets {
		t.Fatalf("waveform %+v", w)
	}
	// The tone plays near the target (blocks half in the silence pass the
	// gates and pull the measure down a little).
	for i := range WaveformBuckets {
		peak, rms := float64(w.Peak[i]), float64(w.RMS[i])
		if i < WaveformBuckets/2 {
			if peak > 5 || rms > 5 {
				t.Errorf("silent bucket %d: peak %.0f rms %.0f", i, peak, rms)
			}
			continue
		}
		want := toneAmp * loaxa.WaveformScale
		if math.Abs(peak/want-1) > 0.15 || math.Abs(rms/(want/math.Sqrt2)-1) > 0.15 {
			t.Errorf("bucket %d: peak %.0f rms %.0f, want about %.0f and %.0f", i, peak, rms, want, want/math.Sqrt2)
		}
	}
	short := mustIngest(t, l, testWAV{rate: 8000, channels: 1, bits: 16}.bytes(50, sine(1000, 0.5, 8000)), "tiny.wav")
	if n := len(short.Waveform.Peak); n != 100 {
		t.Errorf("100 samples give %d buckets", n)
	}
}
