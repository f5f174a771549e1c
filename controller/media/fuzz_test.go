package media

import (
	"bytes"
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol/nodeaudio"
)

// FuzzIngest feeds arbitrary uploads, WAV and MP3, to Ingest: none may
// panic or hang,
// every refusal must be a user error (a file the probe accepts but cannot
// convert would surface as internal), every success must be valid node
// audio, and nothing may stay in tmp/.
func FuzzIngest(f *testing.F) {
	s := func(rate int) func(int64, int) float64 { return sine(1000, 0.5, rate) }
	list := []testChunk{{"LIST", append([]byte("INFOINAM"), 3, 0, 0, 0, 'a', 'b', 0, 0)}}
	for _, w := range []testWAV{
		{rate: 8000, channels: 1, bits: 8},
		{rate: 16000, channels: 1, bits: 16},
		{rate: 44100, channels: 2, bits: 16, before: list},
		{rate: 48000, channels: 2, bits: 24, between: list, after: list},
		{rate: 22050, channels: 3, bits: 32, extensible: true},
		{rate: 8001, channels: 1, bits: 16},
		{rate: 48000, channels: 1, bits: 32, formatCode: formatFloat},
		{rate: 16000, channels: 1, bits: 16, dataSize: u32(0xFFFFFFFF)},
		{rate: 16000, channels: 2, bits: 16, riffSize: u32(0)},
	} {
		b := w.bytes(160, s(w.rate))
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, args := range [][]string{{"-b", "32"}, {"-V", "7"}} {
		mp3 := lame(f, voicedWAV(22050, 1, 0.3)[:4000], args...)
		f.Add(mp3)
		f.Add(mp3[:len(mp3)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("ID3\x04\x00\x00\x00\x00\x00\x23TSSE"))
	f.Add([]byte("RIFF\x04\x00\x00\x00WAVEfmt \xff\xff\xff\xff"))

	l := NewLibrary(f.TempDir())
	l.MaxUploadBytes, l.MaxDuration = 1<<20, time.Minute
	if err := l.Open(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, upload []byte) {
		c, err := l.Ingest(context.Background(), bytes.NewReader(upload), loaxa.IngestOptions{Filename: "fuzz", TrimSilence: len(upload)%2 == 1})
		assertTmpEmpty(t, l)
		if err != nil {
			switch loaxa.ErrorCode(err) {
			case loaxa.EInvalid, loaxa.EUnsupported, loaxa.ETooLarge:
			default:
				t.Fatalf("input refused with an internal error: %v", err)
			}
			if loaxa.ErrorMessage(err) == "" {
				t.Fatal("refusal without a message")
			}
			return
		}
		y := readSamples(t, l, c.ID)
		if c.Size != nodeaudio.Size(int64(len(y))) || c.DurationMS != nodeaudio.Duration(2*int64(len(y))).Milliseconds() {
			t.Fatalf("content %+v does not describe its %d samples", c, len(y))
		}
	})
}
