// Package nodeaudio defines the audio format nodes receive and play, and
// reads and writes it. It is the one place that knows the format: the
// controller writes it (controller/media), nodes read it (node/agent,
// node/content) and tests of both use it.
//
// # Format
//
// A canonical RIFF/WAVE file holding IMA ADPCM (WAVE format 0x0011), mono,
// 16 kHz, 4 bits a sample, in blocks of BlockAlign (1024) bytes of
// SamplesPerBlock (2041) samples: 64.2 kbit/s, 481 KB per broadcast
// minute, a quarter of 16-bit PCM. Speech is carried fully by 16 kHz mono
// (telephony uses 8 kHz, and a pole speaker reproduces little above 7 kHz),
// IMA ADPCM decodes in a few lines of integer arithmetic on any board, and
// the files are standard WAV that sox, ffmpeg and media players open.
//
// The file has exactly three chunks — "fmt " (20 bytes), "fact" (the
// sample count) and "data" (whole blocks; the last one padded with silence
// past the sample count) — so that the same samples always give the same
// bytes and hence the same content id (the SHA-256 of the file). Header
// returns that 60-byte header; Writer writes a whole file.
//
// # Legacy format
//
// Content ingested before the ADPCM format is canonical PCM WAV: signed
// 16-bit little-endian, mono, 16 kHz (256 kbit/s), exactly two chunks
// ("fmt " of 16 bytes and "data"), 44 bytes of header (PCMHeader). Its ids
// are the hashes of those bytes, so it is never converted: the controller
// keeps serving it as it is and NewReader reads both formats.
//
// # What nodes play
//
// NewReader decodes either format to signed 16-bit little-endian PCM, mono,
// SampleRate: the node opens its sound device once at this rate and channel
// count. Duration and Bytes convert between that PCM and play time.
package nodeaudio

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names the node format in Content.Format.
const Format = "wav/ima-adpcm/16000/mono"

// FormatPCM names the legacy node format, still read by nodes.
const FormatPCM = "wav/pcm16/16000/mono"

// Parameters of the decoded PCM that nodes play.
const (
	SampleRate     = 16000
	Channels       = 1
	BytesPerSample = 2
)

// ErrFormat means the bytes are not canonical node audio.
var ErrFormat = errors.New("not loaxa node audio")

// Duration returns how long n bytes of decoded node PCM play.
func Duration(n int64) time.Duration {
	samples := n / (BytesPerSample * Channels)
	return time.Duration(samples) * time.Second / SampleRate
}

// Bytes returns how many decoded PCM bytes play for d, rounded down to
// whole samples.
func Bytes(d time.Duration) int64 {
	return int64(d) * SampleRate / int64(time.Second) * BytesPerSample * Channels
}

// Info describes a node audio file from its header.
type Info struct {
	Format     string // Format or FormatPCM
	HeaderSize int64  // bytes before the audio data
	DataSize   int64  // bytes of the data chunk
	Samples    int64  // samples the file plays
}

// Size returns the length of the whole file.
func (i Info) Size() int64 { return i.HeaderSize + i.DataSize }

// Duration returns the play time.
func (i Info) Duration() time.Duration {
	return time.Duration(i.Samples) * time.Second / SampleRate
}

// ParseHeader checks that h starts with the canonical header of either
// format and says which, and how much audio follows. h must hold at least
// HeaderSize bytes of an ADPCM file or PCMHeaderSize bytes of a PCM one.
func ParseHeader(h []byte) (Info, error) {
	if len(h) < PCMHeaderSize {
		return Info{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFormat, len(h), PCMHeaderSize)
	}
	if isADPCM(h) {
		return parseADPCMHeader(h)
	}
	return parsePCMHeader(h)
}

// Reader decodes node audio of either format into the PCM nodes play.
type Reader struct {
	info Info
	dec  io.Reader
}

// NewReader reads and checks the header from r and returns a reader of the
// decoded PCM after it. Reads return an error wrapping io.ErrUnexpectedEOF
// if r ends before the audio the header promised.
func NewReader(r io.Reader) (*Reader, error) {
	h := make([]byte, HeaderSize)
	if _, err := io.ReadFull(r, h[:PCMHeaderSize]); err != nil {
		return nil, fmt.Errorf("%w: reading header: %w", ErrFormat, err)
	}
	if isADPCM(h) {
		if _, err := io.ReadFull(r, h[PCMHeaderSize:]); err != nil {
			return nil, fmt.Errorf("%w: reading header: %w", ErrFormat, err)
		}
		info, err := parseADPCMHeader(h)
		if err != nil {
			return nil, err
		}
		return &Reader{info: info, dec: newBlockDecoder(r, info.Samples)}, nil
	}
	info, err := parsePCMHeader(h[:PCMHeaderSize])
	if err != nil {
		return nil, err
	}
	return &Reader{info: info, dec: &pcmReader{r: r, left: info.DataSize}}, nil
}

// Info returns what the header says.
func (r *Reader) Info() Info { return r.info }

// Size returns the size of the decoded PCM in bytes.
func (r *Reader) Size() int64 { return r.info.Samples * BytesPerSample }

// Duration returns the play time of the data.
func (r *Reader) Duration() time.Duration { return r.info.Duration() }

// Read reads decoded PCM bytes: signed 16-bit little-endian, mono,
// SampleRate.
func (r *Reader) Read(p []byte) (int, error) { return r.dec.Read(p) }
