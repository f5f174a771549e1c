package nodeaudio_test

import (
	"bytes"
	"io"
	"math"
	"testing"

	"loaxa.vn/protocol/nodeaudio"
)

// BenchmarkDecode reads 10 s of node audio (a tone with some noise) as
// PCM, as a board does for every play: the rate a small board's CPU must
// beat many times over.
func BenchmarkDecode(b *testing.B) {
	samples := make([]int16, 10*nodeaudio.SampleRate)
	for i := range samples {
		samples[i] = int16(12000*math.Sin(2*math.Pi*440*float64(i)/nodeaudio.SampleRate) + float64((i*7919)%2001-1000))
	}
	file, err := nodeaudio.Encode(samples)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, nodeaudio.Bytes(100e6)) // the outputs read 100 ms at a time
	b.SetBytes(int64(2 * len(samples)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := nodeaudio.NewReader(bytes.NewReader(file))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
		if err != nil || n != int64(2*len(samples)) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
}
