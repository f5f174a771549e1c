package media

import "math"

// Loudness is measured as ITU-R BS.1770-4 integrated loudness (LUFS, the
// EBU R 128 measure) on the 16 kHz mono signal nodes play: K-weighting, the
// mean square over 400 ms blocks that overlap by 75 %, an absolute gate at
// -70 LUFS and a relative gate 10 LU below the loudness of the blocks that
// pass it. It matches how people hear programme level closely enough that
// a quiet phone recording and a loud MP3, both brought to the same
// integrated loudness, sound alike on the street.
const (
	blockMS       = 400
	hopMS         = 100
	absoluteGate  = -70.0 // LUFS
	relativeGate  = -10.0 // LU
	loudnessShift = -0.691
)

// biquad is a direct form I second-order IIR filter section.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

func (f *biquad) process(x float64) float64 {
	y := f.b0*x + f.b1*f.x1 + f.b2*f.x2 - f.a1*f.y1 - f.a2*f.y2
	f.x2, f.x1 = f.x1, x
	f.y2, f.y1 = f.y1, y
	return y
}

// kWeighting returns the two BS.1770 K-weighting stages (a high shelf of
// about +4 dB above 1.5 kHz for the head, and a high-pass at 38 Hz) for
// rate, derived from their analogue prototypes as libebur128 does, since
// the standard tabulates coefficients only for 48 kHz.
func kWeighting(rate int) (shelf, highpass biquad) {
	fs := float64(rate)
	f0 := 1681.974450955533
	g := 3.999843853973347
	q := 0.7071752369554196
	k := math.Tan(math.Pi * f0 / fs)
	vh := math.Pow(10, g/20)
	vb := math.Pow(vh, 0.4996667741545416)
	a0 := 1 + k/q + k*k
	shelf = biquad{
		b0: (vh + vb*k/q + k*k) / a0,
		b1: 2 * (k*k - vh) / a0,
		b2: (vh - vb*k/q + k*k) / a0,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/q + k*k) / a0,
	}
	f0 = 38.13547087602444
	q = 0.5003270373238773
	k = math.Tan(math.Pi * f0 / fs)
	a0 = 1 + k/q + k*k
	highpass = biquad{b0: 1, b1: -2, b2: 1, a1: 2 * (k*k - 1) / a0, a2: (1 - k/q + k*k) / a0}
	return shelf, highpass
}

// meter measures integrated loudness of a stream of samples. It keeps one
// number per 100 ms of audio (the mean square of each hop), so its memory
// grows by 80 bytes a second: under 600 KB for the 2 h upload limit.
type meter struct {
	shelf, highpass biquad
	hop             int       // samples per 100 ms
	sum             float64   // sum of squares in the current hop
	n               int       // samples in the current hop
	hops            []float64 // mean square of each complete hop
	samples         int64
}

func newMeter(rate int) *meter {
	m := &meter{hop: rate * hopMS / 1000}
	m.shelf, m.highpass = kWeighting(rate)
	return m
}

func (m *meter) add(samples []float32) {
	for _, v := range samples {
		y := m.highpass.process(m.shelf.process(float64(v)))
		m.sum += y * y
		m.n++
		if m.n == m.hop {
			m.hops = append(m.hops, m.sum/float64(m.hop))
			m.sum, m.n = 0, 0
		}
	}
	m.samples += int64(len(samples))
}

// integrated returns the gated integrated loudness in LUFS, or -Inf when
// nothing passes the absolute gate (silence). Audio shorter than one block
// is measured as one block of what there is.
func (m *meter) integrated() float64 {
	per := blockMS / hopMS
	var blocks []float64
	if len(m.hops) < per {
		total := m.sum
		for _, h := range m.hops {
			total += h * float64(m.hop)
		}
		if m.samples == 0 {
			return math.Inf(-1)
		}
		blocks = []float64{total / float64(m.samples)}
	} else {
		blocks = make([]float64, 0, len(m.hops)-per+1)
		var s float64
		for i, h := range m.hops {
			s += h
			if i >= per {
				s -= m.hops[i-per]
			}
			if i >= per-1 {
				blocks = append(blocks, s/float64(per))
			}
		}
	}
	gated := func(threshold float64) float64 {
		var sum float64
		n := 0
		for _, z := range blocks {
			if lufs(z) > threshold {
				sum += z
				n++
			}
		}
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	}
	z := gated(absoluteGate)
	if z == 0 {
		return math.Inf(-1)
	}
	return lufs(gated(max(absoluteGate, lufs(z)+relativeGate)))
}

// IntegratedLoudness returns the BS.1770 integrated loudness of mono
// samples at rate, in LUFS (-Inf for silence): the measure Ingest
// normalises to TargetLUFS, for tests and tools that check the result.
func IntegratedLoudness(samples []float32, rate int) float64 {
	m := newMeter(rate)
	m.add(samples)
	return m.integrated()
}

// lufs is the loudness of a K-weighted mean square.
func lufs(meanSquare float64) float64 {
	return loudnessShift + 10*math.Log10(meanSquare)
}

func dbToGain(db float64) float64 { return math.Pow(10, db/20) }

func gainToDB(g float64) float64 { return 20 * math.Log10(g) }
