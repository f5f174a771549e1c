package agent

import (
	"bytes"
	"io"
	"math"
	"testing"
	"testing/iotest"
)

func TestVolumeGain(t *testing.T) {
	for _, c := range []struct {
		level int
		db    float64
	}{{15, 0}, {10, -10}, {5, -20}, {1, -28}} {
		if got := 20 * math.Log10(volumeGain(c.level)); math.Abs(got-c.db) > 1e-9 {
			t.Errorf("level %d: %.3f dB, want %.0f", c.level, got, c.db)
		}
	}
}

// TestGainReaderScalesSplitSamples: samples split across reads (one byte
// at a time) are scaled as whole samples.
func TestGainReaderScalesSplitSamples(t *testing.T) {
	in := []int16{1000, -1000, 32767, -32768, 0, 7}
	raw := make([]byte, 0, 2*len(in))
	for _, v := range in {
		raw = append(raw, byte(v), byte(uint16(v)>>8))
	}
	g := &gainReader{r: iotest.OneByteReader(bytes.NewReader(raw)), gain: 0.5}
	out, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{500, -500, 16384, -16384, 0, 4}
	if len(out) != 2*len(want) {
		t.Fatalf("read %d bytes, want %d", len(out), 2*len(want))
	}
	for i, w := range want {
		if got := int16(uint16(out[2*i]) | uint16(out[2*i+1])<<8); got != w {
			t.Errorf("sample %d = %d, want %d", i, got, w)
		}
	}
}
