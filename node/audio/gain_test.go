package audio

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"
	"testing/iotest"
	"time"
)

func TestVolumeGain(t *testing.T) {
	for _, tt := range []struct {
		level int
		want  float64
	}{{15, 1}, {16, 1}, {0, 0}, {-3, 0}, {14, math.Pow(10, -0.1)}, {3, math.Pow(10, -1.2)}} {
		if got := VolumeGain(tt.level); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("VolumeGain(%d) = %v, want %v", tt.level, got, tt.want)
		}
	}
}

// TestGainOneByteAtATime: samples split across reads are scaled whole.
func TestGainOneByteAtATime(t *testing.T) {
	in := make([]byte, 0, 200)
	for i := range 100 {
		in = binary.LittleEndian.AppendUint16(in, uint16(int16(i*300-15000)))
	}
	for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in)), iotest.HalfReader(bytes.NewReader(in))} {
		out, err := io.ReadAll(NewGain(r, 0.5))
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(in) {
			t.Fatalf("%d bytes out of %d", len(out), len(in))
		}
		for i := 0; i < len(in); i += 2 {
			want := int16(math.Round(float64(int16(binary.LittleEndian.Uint16(in[i:]))) * 0.5))
			if got := int16(binary.LittleEndian.Uint16(out[i:])); got != want {
				t.Fatalf("sample %d = %d, want %d", i/2, got, want)
			}
		}
	}
}

type aheadReader struct{ io.Reader }

func (aheadReader) ReadAhead() time.Duration { return 80 * time.Millisecond }

// A live source's bounded read-ahead shows through a Gain and a Counter.
func TestGainKeepsReadAhead(t *testing.T) {
	c := &Counter{R: NewGain(aheadReader{bytes.NewReader(nil)}, 0.1)}
	if got := c.ReadAhead(); got != 80*time.Millisecond {
		t.Errorf("ReadAhead through a Gain = %v, want 80ms", got)
	}
	if got := (&Gain{R: bytes.NewReader(nil)}).ReadAhead(); got != 0 {
		t.Errorf("ReadAhead of a plain source = %v, want 0", got)
	}
}
