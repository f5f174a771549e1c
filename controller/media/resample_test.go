package media

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// resampleAll runs in through a resampler in pieces of the given sizes
// (cycled), as convert does chunk by chunk.
func resampleAll(f *filter, in []float32, pieces ...int) []float64 {
	r := f.stream()
	var out []float32
	for i, p := 0, 0; i < len(in); p++ {
		n := min(pieces[p%len(pieces)], len(in)-i)
		out = r.process(in[i:i+n], out)
		i += n
	}
	out = r.flush(out)
	y := make([]float64, len(out))
	for i, v := range out {
		y[i] = float64(v)
	}
	return y
}

func tone(freq float64, rate, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.5 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return x
}

func TestResamplerChunkingDoesNotChangeOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]float32, 20000)
	for i := range in {
		in[i] = rng.Float32()*2 - 1
	}
	for _, rate := range []int{8000, 11025, 16000, 44100, 44101, 48000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			f := newFilter(rate, 16000)
			whole := resampleAll(f, in, len(in))
			for _, pieces := range [][]int{{1}, {7, 300, 1}, {4096}} {
				if got := resampleAll(f, in, pieces...); !slices.Equal(got, whole) {
					t.Errorf("pieces %v give different output than one piece", pieces)
				}
			}
			if want := f.outputLen(int64(len(in))); int64(len(whole)) != want {
				t.Errorf("%d outputs, want %d", len(whole), want)
			}
		})
	}
}

// TestResamplerResponse measures the filter at float precision, below the
// 16-bit floor the library tests see: the pass band is flat and the stop
// band is near the 80 dB the filter is designed for, across rates.
func TestResamplerResponse(t *testing.T) {
	const n = 1 << 14
	for _, rate := range []int{8000, 11025, 22050, 44100, 44101, 48000} {
		nyquist := float64(min(rate, 16000)) / 2
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			flt := newFilter(rate, 16000)
			worstPass, worstStop := 0.0, -200.0
			for f := 100.0; f < float64(rate)/2; f += 250 {
				if f > passEdge*nyquist && f < nyquist {
					continue // transition band
				}
				y := resampleAll(flt, tone(f, rate, n), 1000)
				m, first := middle(y)
				if f > passEdge*nyquist {
					// Downsampling, stop band: whatever comes out is an
					// alias.
					worstStop = math.Max(worstStop, dB(rms(m)/(0.5/math.Sqrt2)))
					continue
				}
				a, b, residual := fitSine(m, first, f, 16000)
				worstPass = math.Max(worstPass, math.Abs(dB(math.Hypot(a, b)/0.5)))
				if rate < 16000 {
					// Upsampling: besides the tone there is only its
					// image at rate-f, in the stop band.
					worstStop = math.Max(worstStop, dB(residual/(0.5/math.Sqrt2)))
				}
			}
			t.Logf("pass-band deviation %.4f dB, worst stop-band level %.1f dB", worstPass, worstStop)
			if worstPass > 0.01 {
				t.Errorf("pass band deviates %.4f dB", worstPass)
			}
			if worstStop > -72 {
				t.Errorf("stop band reaches %.1f dB", worstStop)
			}
		})
	}
}

func TestResamplerKeepsDC(t *testing.T) {
	for _, rate := range []int{8000, 11025, 44100, 44101, 48000} {
		in := make([]float32, rate/10)
		for i := range in {
			in[i] = 0.25
		}
		m, _ := middle(resampleAll(newFilter(rate, 16000), in, 512))
		for i, v := range m {
			if math.Abs(v-0.25) > 1e-5 {
				t.Errorf("%d Hz: constant 0.25 comes out as %v at %d", rate, v, i)
				break
			}
		}
	}
}
