package media

import "math"

// limiter is a look-ahead peak limiter: it lowers the gain smoothly ahead
// of a sample that would exceed the ceiling, so that normalising a
// recording with a few loud clicks raises its speech to the target instead
// of leaving it quiet (or clipping the clicks).
//
// For each input sample it needs the gain r = min(1, ceiling/|x|). The
// minimum of r over a window of look samples, made to rise back no faster
// than the release allows, and then averaged over look samples, is a gain
// curve with no step in it that is at or below r for the sample look-1
// back: every window of the average contains that sample. So the output,
// delayed by look-1 samples, never exceeds the ceiling, and the gain ramps
// down over the look-ahead instead of jumping.
type limiter struct {
	ceiling float64
	look    int
	release float64 // per-sample approach of the held gain back to 1

	// Sliding minimum of r over the last look samples: a monotonic deque
	// of (index, value) in a ring.
	dqIdx []int64
	dqVal []float64
	head  int
	size  int
	n     int64 // samples received

	held float64 // the window minimum after the release limit

	box    []float64 // the last look held gains
	boxSum float64
	delay  []float32 // the last look-1 inputs
	pos    int       // ring position in box and delay

	gainMin float64 // lowest gain applied, for the record
}

// newLimiter returns a limiter at ceiling (linear, e.g. 0.89 for -1 dBFS)
// with lookahead and release in samples.
func newLimiter(ceiling float64, look int, releaseSamples float64) *limiter {
	l := &limiter{
		ceiling: ceiling,
		look:    look,
		release: 1 - math.Exp(-1/releaseSamples),
		dqIdx:   make([]int64, look),
		dqVal:   make([]float64, look),
		held:    1,
		box:     make([]float64, look),
		boxSum:  float64(look),
		delay:   make([]float32, look),
		gainMin: 1,
	}
	for i := range l.box {
		l.box[i] = 1
	}
	return l
}

// process appends the limited output for in to out; the output lags the
// input by look-1 samples (the first look-1 outputs are the silence before
// the stream). flush returns the rest.
func (l *limiter) process(in []float32, out []float32) []float32 {
	for _, x := range in {
		out = append(out, l.step(x))
	}
	return out
}

// flush appends the last look-1 outputs.
func (l *limiter) flush(out []float32) []float32 {
	for range l.look - 1 {
		out = append(out, l.step(0))
	}
	return out
}

// latency is how many samples late the output is.
func (l *limiter) latency() int { return l.look - 1 }

func (l *limiter) step(x float32) float32 {
	r := 1.0
	if a := math.Abs(float64(x)); a > l.ceiling {
		r = l.ceiling / a
	}
	// Push r into the sliding-minimum deque: first the value that left the
	// window goes from the front, then larger values from the back.
	if l.size > 0 && l.dqIdx[l.head] <= l.n-int64(l.look) {
		l.head = (l.head + 1) % l.look
		l.size--
	}
	for l.size > 0 && l.dqVal[(l.head+l.size-1)%l.look] >= r {
		l.size--
	}
	l.dqIdx[(l.head+l.size)%l.look] = l.n
	l.dqVal[(l.head+l.size)%l.look] = r
	l.size++
	l.n++
	m := l.dqVal[l.head]

	// Fall at once, rise at the release rate.
	l.held += (1 - l.held) * l.release
	l.held = min(l.held, m)

	l.boxSum += l.held - l.box[l.pos]
	l.box[l.pos] = l.held
	g := l.boxSum / float64(l.look)

	// The sample look-1 back sits in the delay ring at pos+1; x takes the
	// place of the sample that leaves.
	out := l.delay[(l.pos+1)%l.look]
	l.delay[l.pos] = x
	l.pos = (l.pos + 1) % l.look

	g = min(g, 1)
	l.gainMin = min(l.gainMin, g)
	y := float64(out) * g
	// Rounding in the running sum could leave a hair over the ceiling.
	return float32(max(-l.ceiling, min(y, l.ceiling)))
}
