package media

import (
	"math"

	"loaxa.vn/controller/loaxa"
)

// WaveformBuckets is how many peak/RMS pairs summarise a content's audio
// for the UI (fewer for audio of fewer samples).
const WaveformBuckets = 200

// waveform gathers the peak and RMS of equal slices of a stream whose
// length is known up front.
type waveform struct {
	total   int64 // samples in the stream
	buckets int64
	seen    int64
	bucket  int64 // current bucket
	end     int64 // first sample after the current bucket
	peak    float64
	sumSq   float64
	n       int64
	out     loaxa.Waveform
}

func newWaveform(total int64) *waveform {
	b := min(total, WaveformBuckets)
	w := &waveform{total: total, buckets: b}
	if b > 0 {
		w.end = total / b
		w.out.Peak = make([]uint16, 0, b)
		w.out.RMS = make([]uint16, 0, b)
	}
	return w
}

func (w *waveform) add(samples []float32) {
	for _, v := range samples {
		a := math.Abs(float64(v))
		w.peak = max(w.peak, a)
		w.sumSq += a * a
		w.n++
		w.seen++
		if w.seen == w.end {
			w.out.Peak = append(w.out.Peak, scaleWave(w.peak))
			w.out.RMS = append(w.out.RMS, scaleWave(math.Sqrt(w.sumSq/float64(w.n))))
			w.peak, w.sumSq, w.n = 0, 0, 0
			w.bucket++
			w.end = (w.bucket + 1) * w.total / w.buckets
		}
	}
}

// scaleWave maps an amplitude in [0, 1] to the waveform's 0–1000.
func scaleWave(a float64) uint16 {
	return uint16(math.Round(min(a, 1) * loaxa.WaveformScale))
}
