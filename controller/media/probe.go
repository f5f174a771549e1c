package media

import (
	"bytes"
	"fmt"
	"io"
	"math"

	"loaxa.vn/controller/loaxa"
)

// upload is a probed upload: what it is and how to decode it.
type upload struct {
	source loaxa.Source // Format, SampleRate, Channels, BitDepth, BitRate
	rate   int
	// frames is how many samples per channel the file holds: exact for
	// WAV, from the frame count for MP3 (the decoder may give a few less).
	frames int64
	// open returns a decoder at the start of the audio.
	open func() (decoder, error)
}

// probe says what the upload in f (size bytes) is, WAV or MP3, by its
// first bytes, and checks its structure without decoding it. Errors are
// *loaxa.Error naming the problem.
func probe(f io.ReaderAt, size int64, filename string) (*upload, error) {
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
	if looksLikeMP3(head) {
		info, err := probeMP3(f, size, name)
		if err != nil {
			return nil, err
		}
		seconds := float64(info.samples) / float64(info.rate)
		return &upload{
			source: loaxa.Source{
				Format:     SourceMP3,
				SampleRate: info.rate,
				Channels:   info.channels,
				BitRate:    int(math.Round(float64(info.bytes) * 8 / seconds)),
			},
			rate:   info.rate,
			frames: info.samples,
			open: func() (decoder, error) {
				d, err := newMP3Decoder(f, info)
				if err != nil {
					return nil, fmt.Errorf("decode mp3: %w", err)
				}
				return d, nil
			},
		}, nil
	}
	info, err := probeWAV(f, size, filename)
	if err != nil {
		return nil, err
	}
	format := SourceWAV
	if info.float {
		format = SourceWAVFloat
	}
	return &upload{
		source: loaxa.Source{
			Format:     format,
			SampleRate: info.sampleRate,
			Channels:   info.channels,
			BitDepth:   info.bitDepth,
		},
		rate:   info.sampleRate,
		frames: info.frames,
		open: func() (decoder, error) {
			return newWAVDecoder(canonicalView(f, info), info)
		},
	}, nil
}

// looksLikeMP3 reports whether an upload starts like an MP3 file: an ID3v2
// tag or an MPEG audio frame sync.
func looksLikeMP3(head []byte) bool {
	return bytes.HasPrefix(head, []byte("ID3")) ||
		len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0
}
