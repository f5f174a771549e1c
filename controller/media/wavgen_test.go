package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"
)

// testWAV describes a WAV file for tests to generate, so no binaries are
// checked in. The zero value of each field means the plain choice.
type testWAV struct {
	rate       int
	channels   int
	bits       int
	formatCode uint16      // 0: PCM
	extensible bool        // write WAVE_FORMAT_EXTENSIBLE with formatCode as subformat
	before     []testChunk // chunks between "WAVE" and "fmt "
	between    []testChunk // chunks between "fmt " and "data"
	after      []testChunk // chunks after "data"
	riffSize   *uint32     // overrides the RIFF size field
	dataSize   *uint32     // overrides the data chunk size field
}

type testChunk struct {
	id   string
	body []byte
}

// sine returns a sample function: a sine of freq Hz and amplitude amp on
// every channel.
func sine(freq, amp float64, rate int) func(frame int64, channel int) float64 {
	return func(i int64, _ int) float64 {
		return amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
	}
}

// bytes generates the file with frames frames of sample(frame, channel).
func (s testWAV) bytes(frames int64, sample func(int64, int) float64) []byte {
	var b bytes.Buffer
	if err := s.write(&b, frames, sample); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// write streams the file to w; it holds no more than a buffer in memory, so
// it can generate hour-long files.
func (s testWAV) write(w io.Writer, frames int64, sample func(int64, int) float64) error {
	le := binary.LittleEndian
	bw := bufio.NewWriterSize(w, 64<<10)
	blockAlign := s.channels * s.bits / 8
	data := frames * int64(blockAlign)

	fmtBody := make([]byte, 16, 40)
	code := s.formatCode
	if code == 0 {
		code = formatPCM
	}
	le.PutUint16(fmtBody[0:], code)
	if s.extensible {
		le.PutUint16(fmtBody[0:], formatExtensible)
		fmtBody = fmtBody[:40]
		le.PutUint16(fmtBody[16:], 22)
		le.PutUint16(fmtBody[18:], uint16(s.bits))
		le.PutUint32(fmtBody[20:], 0) // channel mask: unspecified
		le.PutUint32(fmtBody[24:], uint32(code))
		copy(fmtBody[28:], extensibleTail)
	}
	le.PutUint16(fmtBody[2:], uint16(s.channels))
	le.PutUint32(fmtBody[4:], uint32(s.rate))
	le.PutUint32(fmtBody[8:], uint32(s.rate*blockAlign))
	le.PutUint16(fmtBody[12:], uint16(blockAlign))
	le.PutUint16(fmtBody[14:], uint16(s.bits))

	chunkLen := func(cs []testChunk) int64 {
		n := int64(0)
		for _, c := range cs {
			n += 8 + int64(len(c.body)) + int64(len(c.body)&1)
		}
		return n
	}
	riff := uint32(4 + chunkLen(s.before) + 8 + int64(len(fmtBody)) + chunkLen(s.between) + 8 + data + data&1 + chunkLen(s.after))
	if s.riffSize != nil {
		riff = *s.riffSize
	}
	hdr := func(id string, size uint32) {
		bw.WriteString(id)
		binary.Write(bw, le, size)
	}
	chunks := func(cs []testChunk) {
		for _, c := range cs {
			hdr(c.id, uint32(len(c.body)))
			bw.Write(c.body)
			if len(c.body)&1 == 1 {
				bw.WriteByte(0)
			}
		}
	}
	hdr("RIFF", riff)
	bw.WriteString("WAVE")
	chunks(s.before)
	hdr("fmt ", uint32(len(fmtBody)))
	bw.Write(fmtBody)
	chunks(s.between)
	ds := uint32(data)
	if s.dataSize != nil {
		ds = *s.dataSize
	}
	hdr("data", ds)
	buf := make([]byte, 4)
	for i := int64(0); i < frames; i++ {
		for c := 0; c < s.channels; c++ {
			if s.formatCode == formatFloat && s.bits == 32 {
				le.PutUint32(buf, math.Float32bits(float32(sample(i, c))))
				bw.Write(buf)
				continue
			}
			bw.Write(encodeSample(buf, sample(i, c), s.bits))
		}
	}
	if data&1 == 1 {
		bw.WriteByte(0)
	}
	chunks(s.after)
	return bw.Flush()
}

// encodeSample writes v in [-1, 1) as a little-endian PCM sample.
func encodeSample(buf []byte, v float64, bits int) []byte {
	full := float64(int64(1) << (bits - 1))
	x := math.Round(v * full)
	x = math.Max(-full, math.Min(full-1, x))
	le := binary.LittleEndian
	switch bits {
	case 8:
		buf[0] = byte(int(x) + 128)
		return buf[:1]
	case 16:
		le.PutUint16(buf, uint16(int16(x)))
		return buf[:2]
	case 24:
		u := uint32(int32(x))
		buf[0], buf[1], buf[2] = byte(u), byte(u>>8), byte(u>>16)
		return buf[:3]
	case 32:
		le.PutUint32(buf, uint32(int32(x)))
		return buf[:4]
	}
	// Unusual depths (e.g. 12-bit in a rejection test): write zero bytes.
	return buf[:0]
}

func u32(v uint32) *uint32 { return &v }
