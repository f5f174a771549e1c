// Package nodeaudio defines the audio format nodes receive and play, and
// reads and writes it.
//
// Format: a canonical RIFF/WAVE file, PCM, signed 16-bit little-endian,
// mono, 16 kHz (256 kbit/s), with exactly two chunks, "fmt " (16 bytes) and
// "data", so that the same samples always give the same bytes and hence the
// same content id (the SHA-256 of the file). 16 kHz mono carries speech
// fully (telephony uses 8 kHz) and matches what a pole speaker reproduces.
// The node opens its sound device once at this rate and channel count.
package nodeaudio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names the node format in Content.Format.
const Format = "wav/pcm16/16000/mono"

// Node format parameters.
const (
	SampleRate     = 16000
	Channels       = 1
	BytesPerSample = 2
	HeaderSize     = 44
)

// MaxDataSize is the largest data chunk a canonical header can describe.
const MaxDataSize = 1<<32 - 1 - (HeaderSize - 8)

// ErrFormat means the bytes are not canonical node audio.
var ErrFormat = errors.New("not loaxa node audio")

// Duration returns how long n bytes of node-format PCM play.
func Duration(n int64) time.Duration {
	samples := n / (BytesPerSample * Channels)
	return time.Duration(samples) * time.Second / SampleRate
}

// Bytes returns how many PCM bytes play for d, rounded down to whole samples.
func Bytes(d time.Duration) int64 {
	return int64(d) * SampleRate / int64(time.Second) * BytesPerSample * Channels
}

// Header returns the canonical 44-byte header for dataSize bytes of PCM.
func Header(dataSize int64) ([]byte, error) {
	if dataSize < 0 || dataSize > MaxDataSize || dataSize%(BytesPerSample*Channels) != 0 {
		return nil, fmt.Errorf("node audio header: data size %d is not a whole number of samples within the WAV limit", dataSize)
	}
	h := make([]byte, HeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(HeaderSize-8+dataSize))
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], Channels)
	binary.LittleEndian.PutUint32(h[24:], SampleRate)
	binary.LittleEndian.PutUint32(h[28:], SampleRate*Channels*BytesPerSample)
	binary.LittleEndian.PutUint16(h[32:], Channels*BytesPerSample)
	binary.LittleEndian.PutUint16(h[34:], 8*BytesPerSample)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataSize))
	return h, nil
}

// ParseHeader checks that h starts with a canonical header and returns the
// size of the PCM data that follows it.
func ParseHeader(h []byte) (int64, error) {
	if len(h) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFormat, len(h), HeaderSize)
	}
	data := int64(binary.LittleEndian.Uint32(h[40:]))
	want, err := Header(data)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if string(h[:HeaderSize]) != string(want) {
		return 0, fmt.Errorf("%w: header is not the canonical %s header", ErrFormat, Format)
	}
	return data, nil
}

// Reader reads the PCM samples of node audio.
type Reader struct {
	r    io.Reader
	size int64
	left int64
}

// NewReader reads and checks the header from r and returns a reader of the
// PCM data after it. Reads return io.ErrUnexpectedEOF if r ends before the
// size the header promised.
func NewReader(r io.Reader) (*Reader, error) {
	h := make([]byte, HeaderSize)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("%w: reading header: %v", ErrFormat, err)
	}
	size, err := ParseHeader(h)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, size: size, left: size}, nil
}

// Size returns the PCM data size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Duration returns the play time of the data.
func (r *Reader) Duration() time.Duration { return Duration(r.size) }

// Read reads PCM bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = fmt.Errorf("node audio: %w with %d bytes of data left", io.ErrUnexpectedEOF, r.left)
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}
