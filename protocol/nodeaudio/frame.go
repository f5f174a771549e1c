package nodeaudio

import "fmt"

// Live frames. A live call (docs/live.md) travels as a sequence of single
// IMA ADPCM blocks, each self-contained (its header carries the predictor
// and step index), so a lost frame costs only its own samples.

// FrameSamples is how many samples one live frame holds: 40.06 ms at
// SampleRate. IMA blocks hold an odd number of samples (the header's
// sample and two a byte).
const FrameSamples = 641

// FrameBytes is the size of one live frame: 324 bytes, 64.7 kbit/s.
const FrameBytes = 4 + (FrameSamples-1)/2

// FrameEncoder encodes PCM into live frames, keeping the step index from
// one frame to the next so that the stream adapts like a file would.
type FrameEncoder struct {
	enc encoder
}

// Encode encodes exactly FrameSamples samples into one frame.
func (f *FrameEncoder) Encode(s []int16) ([]byte, error) {
	if len(s) != FrameSamples {
		return nil, fmt.Errorf("live frame of %d samples: want %d", len(s), FrameSamples)
	}
	out := make([]byte, FrameBytes)
	f.enc.block(s, out)
	return out, nil
}

// DecodeFrame decodes one live frame into out, which must hold
// FrameSamples samples.
func DecodeFrame(in []byte, out []int16) error {
	if len(in) != FrameBytes || len(out) < FrameSamples {
		return fmt.Errorf("%w: live frame of %d bytes into %d samples (want %d bytes)", ErrFormat, len(in), len(out), FrameBytes)
	}
	return decodeIMA(in, out, "live frame")
}
