package media

import "math"

// Resampler design. The low-pass sits at the lower of the two Nyquist
// frequencies: the pass band ends at passEdge of it and the stop band starts
// at it, so nothing above the output Nyquist folds back into speech (48 kHz
// → 16 kHz) and no image above the input Nyquist appears (8 kHz → 16 kHz).
// A Kaiser window gives about stopbandDB of rejection; 80 dB is below what a
// pole speaker can show and keeps the filter at ~300 taps for 48 kHz input.
const (
	passEdge   = 0.9
	stopbandDB = 80.0
	// maxPhases bounds the coefficient table. Rates whose ratio to 16 kHz
	// needs more phases (e.g. 44101 Hz, 16000 phases) use the nearest of
	// maxPhases; the timing error of at most 1/8192 of an input sample
	// stays below the stop-band level.
	maxPhases = 4096
)

// filter is a polyphase windowed-sinc (Kaiser) low-pass for converting
// between two rates. It is immutable; a resampler streams samples through
// it.
type filter struct {
	l, m        int64 // out/in = l/m, reduced
	passthrough bool
	phases      int64
	half        int       // half-length in input samples
	taps        int       // 2·half coefficients per phase
	coef        []float32 // phases×taps
}

// resampler converts a stream of mono samples from one rate to another. It
// keeps only the input history the filter needs, so memory does not grow
// with the stream.
//
// Output sample k sits at input position k·m/l; the filter is centred there,
// so there is no delay to undo. Input before the first and after the last
// sample counts as silence.
type resampler struct {
	*filter
	buf  []float32 // input samples; buf[0] has absolute index base
	base int64
	k    int64 // next output sample
	nIn  int64 // input samples received
}

// stream returns a resampler at the start of a stream.
func (f *filter) stream() *resampler {
	r := &resampler{filter: f}
	if !f.passthrough {
		// The first output needs history before sample 0: silence.
		r.buf = make([]float32, f.half, f.half+8192)
		r.base = -int64(f.half)
	}
	return r
}

// newFilter designs the filter for converting from rate in to rate out.
func newFilter(in, out int) *filter {
	g := gcd(int64(in), int64(out))
	f := &filter{l: int64(out) / g, m: int64(in) / g}
	if in == out {
		// Same rate: the samples are already what nodes play; filtering
		// would only dull them.
		f.passthrough = true
		return f
	}
	nyquist := float64(min(in, out)) / 2
	cutoff := nyquist * (1 + passEdge) / 2 // -6 dB point, mid-transition
	width := nyquist * (1 - passEdge)      // transition band, Hz
	// Kaiser's estimate of the length for stopbandDB over width.
	length := (stopbandDB - 7.95) / (2.285 * 2 * math.Pi * width / float64(in))
	radius := length / 2 // in input samples
	beta := 0.1102 * (stopbandDB - 8.7)

	f.half = int(math.Ceil(radius)) + 1
	f.taps = 2 * f.half
	f.phases = min(f.l, maxPhases)
	f.coef = make([]float32, int(f.phases)*f.taps)
	fc := 2 * cutoff / float64(in) // cutoff as a fraction of the input Nyquist
	i0beta := besselI0(beta)
	kernel := func(u float64) float64 {
		t := u / radius
		if t <= -1 || t >= 1 {
			return 0
		}
		return fc * sinc(fc*u) * besselI0(beta*math.Sqrt(1-t*t)) / i0beta
	}
	row := make([]float64, f.taps)
	for p := int64(0); p < f.phases; p++ {
		frac := float64(p) / float64(f.phases)
		sum := 0.0
		for n := range row {
			// Tap n multiplies input sample i-half+1+n for an output at
			// input position i+frac.
			row[n] = kernel(frac + float64(f.half-1-n))
			sum += row[n]
		}
		// Unity gain at DC in every phase, so a constant stays constant.
		c := f.coef[int(p)*f.taps : int(p+1)*f.taps]
		for n := range row {
			c[n] = float32(row[n] / sum)
		}
	}
	return f
}

// outputLen returns how many output samples n input samples give: enough to
// cover the input's duration, to within one output sample period.
func (f *filter) outputLen(n int64) int64 {
	return (n*f.l + f.m - 1) / f.m
}

// process consumes in and appends every output sample that can now be
// computed to out.
func (r *resampler) process(in []float32, out []float32) []float32 {
	r.nIn += int64(len(in))
	if r.passthrough {
		r.k += int64(len(in))
		return append(out, in...)
	}
	r.buf = append(r.buf, in...)
	out = r.drain(out, r.outputLen(r.nIn))
	r.compact()
	return out
}

// flush appends the outputs that need silence after the last input sample.
func (r *resampler) flush(out []float32) []float32 {
	if r.passthrough {
		return out
	}
	for range r.half + 1 {
		r.buf = append(r.buf, 0)
	}
	return r.drain(out, r.outputLen(r.nIn))
}

// drain computes outputs up to (not including) sample limit while the input
// they need is in buf.
func (r *resampler) drain(out []float32, limit int64) []float32 {
	end := r.base + int64(len(r.buf))
	for r.k < limit {
		i, p := r.position(r.k)
		first := i - int64(r.half) + 1
		if first+int64(r.taps) > end {
			break
		}
		x := r.buf[first-r.base : first-r.base+int64(r.taps)]
		c := r.coef[int(p)*r.taps : int(p+1)*r.taps]
		out = append(out, dot(x, c))
		r.k++
	}
	return out
}

// position returns the input sample at or before output k and the phase of
// the coefficient set to use.
func (f *filter) position(k int64) (int64, int64) {
	num := k * f.m
	i, p := num/f.l, num%f.l
	if f.phases != f.l {
		p = (p*f.phases + f.l/2) / f.l
		if p == f.phases {
			i, p = i+1, 0
		}
	}
	return i, p
}

// compact drops input the next output no longer needs.
func (r *resampler) compact() {
	i, _ := r.position(r.k)
	keep := i - int64(r.half) // one spare sample for phase rounding
	if drop := keep - r.base; drop > 0 {
		n := copy(r.buf, r.buf[drop:])
		r.buf = r.buf[:n]
		r.base = keep
	}
}

func dot(x, c []float32) float32 {
	c = c[:len(x)]
	var s0, s1, s2, s3 float32
	n := len(x) &^ 3
	for j := 0; j < n; j += 4 {
		s0 += x[j] * c[j]
		s1 += x[j+1] * c[j+1]
		s2 += x[j+2] * c[j+2]
		s3 += x[j+3] * c[j+3]
	}
	for j := n; j < len(x); j++ {
		s0 += x[j] * c[j]
	}
	return s0 + s1 + s2 + s3
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order zero,
// by its power series (converges fast for the β of a Kaiser window).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1.0; k < 100; k++ {
		term *= q / (k * k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
