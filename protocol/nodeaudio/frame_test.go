package nodeaudio_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"loaxa.vn/protocol/nodeaudio"
)

func TestFrameRoundTrip(t *testing.T) {
	in := speech(3*nodeaudio.FrameSamples, 7)
	var e nodeaudio.FrameEncoder
	var out []int16
	for i := 0; i < len(in); i += nodeaudio.FrameSamples {
		f, err := e.Encode(in[i : i+nodeaudio.FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != nodeaudio.FrameBytes {
			t.Fatalf("frame of %d bytes, want %d", len(f), nodeaudio.FrameBytes)
		}
		s := make([]int16, nodeaudio.FrameSamples)
		if err := nodeaudio.DecodeFrame(f, s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s...)
	}
	if q := snr(in, out); q < 20 {
		t.Fatalf("SNR %.1f dB through live frames, want ≥ 20", q)
	}
	if _, err := e.Encode(in[:10]); err == nil {
		t.Fatal("a frame of 10 samples was encoded")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	var e nodeaudio.FrameEncoder
	good, _ := e.Encode(speech(nodeaudio.FrameSamples, 1))
	f.Add(good)
	f.Add([]byte{})
	bad := slices.Clone(good)
	bad[2] = 200
	f.Add(bad)
	f.Fuzz(func(t *testing.T, in []byte) {
		out := make([]int16, nodeaudio.FrameSamples)
		err := nodeaudio.DecodeFrame(in, out)
		if len(in) != nodeaudio.FrameBytes && err == nil {
			t.Fatalf("frame of %d bytes decoded", len(in))
		}
		if err != nil && !errors.Is(err, nodeaudio.ErrFormat) {
			t.Fatalf("error %v is not nodeaudio.ErrFormat", err)
		}
	})
}

// TestNarrowFrameRoundTrip: narrowband frames carry a voice. What the node
// plays is the input delayed by the filters, within 16 dB across the
// frames' joins; a frame is 164 bytes. The filters alone keep about 49 dB;
// 4-bit ADPCM at 8 kHz costs the rest (18 dB measured on tones up to
// 2.9 kHz, 19 dB on the voice).
func TestNarrowFrameRoundTrip(t *testing.T) {
	const frames = 8
	n := frames * nodeaudio.NarrowFrameWide
	tones := make([]int16, n)
	for i := range tones {
		x := 0.0
		for _, f := range []float64{180, 440, 1000, 2300, 2900} {
			x += 0.15 * math.Sin(2*math.Pi*f*float64(i)/nodeaudio.SampleRate)
		}
		tones[i] = int16(x * 32767)
	}
	for _, tc := range []struct {
		name string
		in   []int16
		want float64
	}{
		{"speech-band tones", tones, 16},
		// speech() has 1% white noise over the whole 8 kHz band; what is
		// above 3.5 kHz is not carried.
		{"voice", speech(n, 3), 16},
	} {
		var e nodeaudio.NarrowFrameEncoder
		var u nodeaudio.Upsampler
		var out []int16
		for i := 0; i < n; i += nodeaudio.NarrowFrameWide {
			f, err := e.Encode(tc.in[i : i+nodeaudio.NarrowFrameWide])
			if err != nil {
				t.Fatal(err)
			}
			if len(f) != 164 {
				t.Fatalf("narrow frame of %d bytes, want 164", len(f))
			}
			narrow := make([]int16, nodeaudio.NarrowFrameSamples)
			if err := nodeaudio.DecodeNarrowFrame(f, narrow); err != nil {
				t.Fatal(err)
			}
			wide := make([]int16, nodeaudio.NarrowFrameWide)
			if err := u.Upsample(narrow, wide); err != nil {
				t.Fatal(err)
			}
			out = append(out, wide...)
		}
		// Skip the first frame (the filters start from silence), then
		// compare every sample with the input it stands for.
		d, from := nodeaudio.NarrowDelay, nodeaudio.NarrowFrameWide
		q := snr(tc.in[from-d:n-d], out[from:])
		t.Logf("%s: SNR %.1f dB", tc.name, q)
		if q < tc.want {
			t.Errorf("%s: SNR %.1f dB through narrowband frames, want ≥ %.0f", tc.name, q, tc.want)
		}
	}
	var e nodeaudio.NarrowFrameEncoder
	if _, err := e.Encode(tones[:nodeaudio.FrameSamples]); err == nil {
		t.Error("a wideband frame's samples were encoded as a narrowband frame")
	}
}

// TestUpsamplerSilence: a lost frame plays as silence that fades the
// previous frame out through the filter, then stays silent.
func TestUpsamplerSilence(t *testing.T) {
	var u nodeaudio.Upsampler
	loud := make([]int16, nodeaudio.NarrowFrameSamples)
	for i := range loud {
		loud[i] = 20000
	}
	out := make([]int16, nodeaudio.NarrowFrameWide)
	if err := u.Upsample(loud, out); err != nil {
		t.Fatal(err)
	}
	if v := out[nodeaudio.NarrowFrameWide-1]; v < 19000 || v > 21000 {
		t.Fatalf("steady input came out as %d", v)
	}
	if err := u.Upsample(nil, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range out[nodeaudio.NarrowDelay:] {
		if v != 0 {
			t.Fatalf("sample %d of a lost frame after the filter's tail: %d", i+nodeaudio.NarrowDelay, v)
		}
	}
}

func FuzzDecodeNarrowFrame(f *testing.F) {
	var e nodeaudio.NarrowFrameEncoder
	good, _ := e.Encode(speech(nodeaudio.NarrowFrameWide, 1))
	f.Add(good)
	f.Add(good[:10])
	f.Fuzz(func(t *testing.T, in []byte) {
		out := make([]int16, nodeaudio.NarrowFrameSamples)
		err := nodeaudio.DecodeNarrowFrame(in, out)
		if len(in) != nodeaudio.NarrowFrameBytes && err == nil {
			t.Fatalf("a frame of %d bytes decoded", len(in))
		}
		if err != nil && !errors.Is(err, nodeaudio.ErrFormat) {
			t.Fatalf("refused without ErrFormat: %v", err)
		}
	})
}
