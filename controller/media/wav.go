package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"

	"loaxa.vn/controller/loaxa"
)

// Accepted input sample rates, in Hz.
const (
	MinSampleRate = 8000
	MaxSampleRate = 48000
)

// WAV format codes (the wFormatTag of the fmt chunk).
const (
	formatPCM        = 0x0001
	formatFloat      = 0x0003
	formatExtensible = 0xFFFE
)

// formatNames names the non-PCM codes people actually upload, so the error
// says what the file is.
var formatNames = map[uint16]string{
	0x0002: "Microsoft ADPCM",
	0x0006: "A-law",
	0x0007: "µ-law",
	0x0011: "IMA ADPCM",
	0x0031: "GSM 6.10",
	0x0050: "MPEG",
	0x0055: "MP3",
	0x0092: "Dolby AC-3",
	0x00FF: "AAC",
	0x1610: "AAC",
	0x2000: "Dolby AC-3",
}

// extensibleTail is the fixed part of the KSDATAFORMAT_SUBTYPE GUIDs after
// their first four bytes, which hold the format code.
var extensibleTail = []byte{0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// maxChunks bounds the walk to the data chunk: real files have a handful of
// chunks before it, and a file of millions of empty chunks is an attack.
const maxChunks = 1000

// wavInfo is what the chunk walk learns about an upload.
type wavInfo struct {
	channels   int
	sampleRate int
	bitDepth   int  // bits per sample as stored: 8, 16, 24 or 32
	float      bool // IEEE float samples (32-bit)
	blockAlign int  // bytes per frame
	dataOffset int64
	frames     int64 // whole frames in the data chunk
}

// probeWAV walks the RIFF chunks of the upload in f (size bytes) up to the
// data chunk and checks that it is PCM or float audio this package converts. It reads
// only chunk headers and the fmt chunk, never allocating by a size taken
// from the file, so any input is safe. Errors are *loaxa.Error naming the
// problem.
//
// go-audio/wav is not given the raw upload: it allocates LIST and fmt chunks
// whole by their declared sizes, ignores a failed read of a chunk size and
// accepts truncated data, so the walk here is what makes untrusted input
// safe; the decoder then reads a canonical view of the data (see
// canonicalView).
func probeWAV(f io.ReaderAt, size int64, filename string) (*wavInfo, error) {
	name := displayName(filename)
	if size == 0 {
		return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s is empty", name)}
	}
	head := make([]byte, 12)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read upload header: %w", err)
	}
	head = head[:n]
	if err := checkRIFF(head, name); err != nil {
		return nil, err
	}

	var (
		info    wavInfo
		haveFmt bool
		off     = int64(12)
		hdr     = make([]byte, 8)
	)
	for chunks := 0; ; chunks++ {
		if chunks == maxChunks {
			return nil, loaxa.Errorf(loaxa.EInvalid, "%s has more than %d chunks before its audio data; save it again as a plain PCM WAV", name, maxChunks)
		}
		if off >= size {
			if !haveFmt {
				return nil, loaxa.Errorf(loaxa.EInvalid, "%s has no fmt chunk: it does not say how its audio is encoded", name)
			}
			return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s has no data chunk: it holds no audio", name)}
		}
		if size-off < 8 {
			return nil, truncated("it ends inside a chunk header, %d bytes from the end", size-off)
		}
		if _, err := f.ReadAt(hdr, off); err != nil {
			return nil, fmt.Errorf("read chunk header at %d: %w", off, err)
		}
		id := string(hdr[:4])
		csize := int64(binary.LittleEndian.Uint32(hdr[4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if haveFmt {
				return nil, loaxa.Errorf(loaxa.EInvalid, "%s has two fmt chunks; save it again as a plain PCM WAV", name)
			}
			if csize > size-body {
				return nil, truncated("its fmt chunk promises %d bytes, only %d are there", csize, size-body)
			}
			b := make([]byte, min(csize, 40))
			if _, err := f.ReadAt(b, body); err != nil {
				return nil, fmt.Errorf("read fmt chunk: %w", err)
			}
			if err := parseFmt(b, name, &info); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, loaxa.Errorf(loaxa.EInvalid, "%s has no fmt chunk before its audio data: it does not say how its audio is encoded", name)
			}
			if there := size - body; csize > there {
				return nil, truncated("the header promises %d bytes of audio, only %d are there", csize, there)
			}
			info.dataOffset = body
			// A trailing partial frame (shorter than one sample period)
			// is dropped rather than refusing the file.
			info.frames = csize / int64(info.blockAlign)
			if info.frames == 0 {
				return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s holds no audio: its data chunk is empty", name)}
			}
			return &info, nil
		default:
			// LIST, bext, JUNK, fact, cue… carry nothing nodes play. A
			// chunk that runs past the end means the data chunk is lost.
			if csize > size-body {
				return nil, truncated("its %q chunk promises %d bytes, only %d are there", id, csize, size-body)
			}
		}
		off = body + csize + csize&1 // chunks are word aligned
	}
}

// checkRIFF checks the 12-byte RIFF/WAVE preamble.
func checkRIFF(head []byte, name string) error {
	if len(head) >= 4 {
		switch string(head[:4]) {
		case "RIFF":
			if len(head) < 12 {
				return truncated("it ends inside the WAV header, after %d bytes", len(head))
			}
			if string(head[8:12]) == "WAVE" {
				return nil
			}
			return loaxa.Errorf(loaxa.EUnsupported, "%s is a RIFF file of type %q, not a WAV file; upload WAV or MP3", name, head[8:12])
		case "RF64", "BW64":
			return loaxa.Errorf(loaxa.EUnsupported, "%s is a 64-bit %s WAV file; save it as a standard PCM WAV", name, head[:4])
		case "RIFX":
			return loaxa.Errorf(loaxa.EUnsupported, "%s is a big-endian (RIFX) WAV file; save it as a standard PCM WAV", name)
		}
	}
	return &loaxa.Error{Code: loaxa.EUnsupported, Reason: loaxa.ReasonAudioUnknown,
		Message: fmt.Sprintf("%s is neither WAV nor MP3%s; upload WAV or MP3", name, guessKind(head))}
}

// guessKind names a few common non-WAV uploads by their magic bytes.
func guessKind(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("OggS")):
		return " (it looks like Ogg)"
	case bytes.HasPrefix(head, []byte("fLaC")):
		return " (it looks like FLAC)"
	case len(head) >= 8 && string(head[4:8]) == "ftyp":
		return " (it looks like MP4/M4A)"
	}
	return ""
}

// parseFmt reads the fields of a fmt chunk (b holds at most its first 40
// bytes) into info and checks that they describe audio we convert.
func parseFmt(b []byte, name string, info *wavInfo) error {
	if len(b) < 16 {
		return loaxa.Errorf(loaxa.EInvalid, "%s has a fmt chunk of %d bytes, shorter than the 16 a WAV needs", name, len(b))
	}
	le := binary.LittleEndian
	code := le.Uint16(b[0:])
	channels := int(le.Uint16(b[2:]))
	rate := int64(le.Uint32(b[4:]))
	blockAlign := int(le.Uint16(b[12:]))
	bits := int(le.Uint16(b[14:]))

	what := fmt.Sprintf("WAV format code %#04x", code)
	if code == formatExtensible {
		if len(b) < 40 {
			return loaxa.Errorf(loaxa.EInvalid, "%s says WAVE_FORMAT_EXTENSIBLE but its fmt chunk has only %d bytes, not 40", name, len(b))
		}
		if !bytes.Equal(b[28:40], extensibleTail) {
			return loaxa.Errorf(loaxa.EUnsupported, "%s uses an unknown WAVE_FORMAT_EXTENSIBLE subformat; export it as 16-bit PCM WAV", name)
		}
		sub := le.Uint32(b[24:])
		if sub > 0xFFFF {
			return loaxa.Errorf(loaxa.EUnsupported, "%s uses an unknown WAVE_FORMAT_EXTENSIBLE subformat; export it as 16-bit PCM WAV", name)
		}
		code = uint16(sub)
		what = fmt.Sprintf("WAVE_FORMAT_EXTENSIBLE subformat %#04x", code)
	}
	float := code == formatFloat
	if code != formatPCM && !float {
		kind := "compressed"
		if k, ok := formatNames[code]; ok {
			kind = k
		}
		return loaxa.Errorf(loaxa.EUnsupported, "%s holds %s audio (%s); only PCM and floating-point WAV are accepted: export it as 16-bit PCM WAV", name, kind, what)
	}
	switch {
	case channels == 0:
		return loaxa.Errorf(loaxa.EInvalid, "%s says it has 0 channels", name)
	case float && bits != 32:
		return loaxa.Errorf(loaxa.EUnsupported, "%s has %d-bit floating-point samples; upload 32-bit float or 16-bit PCM WAV", name, bits)
	case bits != 8 && bits != 16 && bits != 24 && bits != 32:
		return loaxa.Errorf(loaxa.EUnsupported, "%s has %d-bit samples; upload 8-, 16-, 24- or 32-bit PCM WAV", name, bits)
	case blockAlign != channels*bits/8:
		return loaxa.Errorf(loaxa.EInvalid, "%s has an inconsistent fmt chunk: %d bytes per frame for %d channels of %d bits; save it again as a plain PCM WAV", name, blockAlign, channels, bits)
	case rate == 0:
		return loaxa.Errorf(loaxa.EInvalid, "%s says its sample rate is 0 Hz", name)
	case rate < MinSampleRate || rate > MaxSampleRate:
		return loaxa.Errorf(loaxa.EUnsupported, "%s has a sample rate of %d Hz; upload audio sampled at %d to %d Hz", name, rate, MinSampleRate, MaxSampleRate)
	}
	info.channels = channels
	info.sampleRate = int(rate)
	info.bitDepth = bits
	info.float = float
	info.blockAlign = blockAlign
	return nil
}

// canonicalView presents the probed upload as a minimal WAV: RIFF header,
// a 16-byte PCM fmt chunk and the data chunk's whole frames read straight
// from f. This is what go-audio/wav decodes: no extra chunks, sizes that
// match the bytes.
func canonicalView(f io.ReaderAt, info *wavInfo) io.ReadSeeker {
	dataSize := info.frames * int64(info.blockAlign)
	h := make([]byte, 44)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+dataSize))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], formatPCM)
	le.PutUint16(h[22:], uint16(info.channels))
	le.PutUint32(h[24:], uint32(info.sampleRate))
	le.PutUint32(h[28:], uint32(info.sampleRate*info.blockAlign))
	le.PutUint16(h[32:], uint16(info.blockAlign))
	le.PutUint16(h[34:], uint16(info.bitDepth))
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(dataSize))
	v := splice{head: h, data: io.NewSectionReader(f, info.dataOffset, dataSize)}
	return io.NewSectionReader(v, 0, int64(len(h))+dataSize)
}

// splice is head followed by data, as an io.ReaderAt.
type splice struct {
	head []byte
	data *io.SectionReader
}

func (s splice) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(s.head)) {
		n = copy(p, s.head[off:])
		off = int64(len(s.head))
	}
	if n == len(p) {
		return n, nil
	}
	m, err := s.data.ReadAt(p[n:], off-int64(len(s.head)))
	return n + m, err
}

// displayName is how messages name the upload.
func displayName(filename string) string {
	if filename == "" {
		return "the file"
	}
	return fmt.Sprintf("%q", filepath.Base(filename))
}

// truncated is the EInvalid of a file cut short, what is missing said by
// format and args, with what the officer can do about it: the message said
// only what was wrong.
func truncated(format string, args ...any) error {
	return loaxa.Errorf(loaxa.EInvalid, "the file is truncated: "+format+". It was cut short (while copied, downloaded or sent): upload the whole file again.", args...)
}
