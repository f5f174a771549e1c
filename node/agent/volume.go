package agent

import (
	"io"
	"math"

	"loaxa.vn/protocol"
)

// volumeStepDB is how much quieter each volume level below full is: level
// 15 plays as delivered, 10 at −10 dB, 5 at −20 dB, 1 at −28 dB.
const volumeStepDB = 2.0

// volumeGain is the linear gain of volume level v (1–15).
func volumeGain(v int) float64 {
	v = min(max(v, 1), protocol.MaxVolume)
	return math.Pow(10, -float64(protocol.MaxVolume-v)*volumeStepDB/20)
}

// gainReader scales node-format PCM (signed 16-bit little-endian) by gain.
// A sample split across reads of r is carried to the next one.
type gainReader struct {
	r    io.Reader
	gain float64
	buf  []byte
	out  []byte // scaled, not yet read
	half []byte // the first byte of a split sample, or empty
	err  error  // r's error, returned once out is drained
}

func (g *gainReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(g.out) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.fill(max(len(p), 2))
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// fill reads up to size bytes from r and scales the whole samples.
func (g *gainReader) fill(size int) {
	if cap(g.buf) < size {
		g.buf = make([]byte, size)
	}
	buf := g.buf[:size]
	k := copy(buf, g.half)
	g.half = g.half[:0]
	n, err := g.r.Read(buf[k:])
	n += k
	whole := n &^ 1
	if whole < n {
		if err != nil {
			whole = n // a stream that ends mid-sample: the stray byte goes as is
		} else {
			g.half = append(g.half, buf[whole])
		}
	}
	for i := 0; i+1 < whole; i += 2 {
		v := float64(int16(uint16(buf[i]) | uint16(buf[i+1])<<8))
		s := int16(math.Round(v * g.gain))
		buf[i], buf[i+1] = byte(s), byte(uint16(s)>>8)
	}
	g.out, g.err = buf[:whole], err
}
