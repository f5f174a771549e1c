package nodeaudio_test

import (
	"errors"
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
