package nodeaudio

import (
	"encoding/binary"
	"fmt"
	"io"
)

// PCMHeaderSize is the size of the legacy PCM format's header.
const PCMHeaderSize = 44

// MaxPCMDataSize is the largest data chunk a canonical PCM header can
// describe.
const MaxPCMDataSize = 1<<32 - 1 - (PCMHeaderSize - 8)

// PCMHeader returns the canonical 44-byte header of the legacy PCM format
// for dataSize bytes of PCM. The controller no longer writes this format;
// tests use it to make legacy content.
func PCMHeader(dataSize int64) ([]byte, error) {
	if dataSize < 0 || dataSize > MaxPCMDataSize || dataSize%(BytesPerSample*Channels) != 0 {
		return nil, fmt.Errorf("node audio header: data size %d is not a whole number of samples within the WAV limit", dataSize)
	}
	h := make([]byte, PCMHeaderSize)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(PCMHeaderSize-8+dataSize))
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], 1) // PCM
	le.PutUint16(h[22:], Channels)
	le.PutUint32(h[24:], SampleRate)
	le.PutUint32(h[28:], SampleRate*Channels*BytesPerSample)
	le.PutUint16(h[32:], Channels*BytesPerSample)
	le.PutUint16(h[34:], 8*BytesPerSample)
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(dataSize))
	return h, nil
}

// parsePCMHeader checks a canonical PCM header (h holds at least 44 bytes).
func parsePCMHeader(h []byte) (Info, error) {
	data := int64(binary.LittleEndian.Uint32(h[40:]))
	want, err := PCMHeader(data)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if string(h[:PCMHeaderSize]) != string(want) {
		return Info{}, fmt.Errorf("%w: header is neither the canonical %s nor the %s header", ErrFormat, Format, FormatPCM)
	}
	return Info{Format: FormatPCM, HeaderSize: PCMHeaderSize, DataSize: data, Samples: data / BytesPerSample}, nil
}

// pcmReader reads the PCM data of a legacy file.
type pcmReader struct {
	r    io.Reader
	left int64
}

func (r *pcmReader) Read(p []byte) (int, error) {
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
