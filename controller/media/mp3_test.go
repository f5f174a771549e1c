package media

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol/nodeaudio"
)

// lame encodes a WAV with the lame command (installed by scripts/test.sh)
// and returns the MP3.
func lame(t testing.TB, wav []byte, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("lame")
	if err != nil {
		t.Fatal("lame is not installed; scripts/test.sh installs it (apt-get install lame)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.mp3")
	if err := os.WriteFile(in, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(append([]string{"--quiet"}, args...), in, out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lame %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	mp3, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return mp3
}

// lameDecode decodes an MP3 with lame's own decoder into a 16-bit WAV.
func lameDecode(t testing.TB, mp3 []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.mp3"), filepath.Join(dir, "out.wav")
	if err := os.WriteFile(in, mp3, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("lame", "--quiet", "--decode", in, out).CombinedOutput(); err != nil {
		t.Fatalf("lame --decode: %v\n%s", err, b)
	}
	wav, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wav
}

// bestLag returns the lag (y shifted by lag against x) in [-maxLag,
// maxLag] with the highest normalised correlation over the overlap, and
// that correlation.
func bestLag(x, y []float64, maxLag int) (int, float64) {
	best, bestLag := -2.0, 0
	for lag := -maxLag; lag <= maxLag; lag++ {
		var xy, xx, yy float64
		for i := range x {
			j := i + lag
			if j < 0 || j >= len(y) {
				continue
			}
			xy += x[i] * y[j]
			xx += x[i] * x[i]
			yy += y[j] * y[j]
		}
		if c := xy / math.Sqrt(xx*yy); c > best {
			best, bestLag = c, lag
		}
	}
	return bestLag, best
}

func TestIngestMP3(t *testing.T) {
	l := newTestLibrary(t)
	voiced := func(rate int) func(int64, int) float64 {
		return func(i int64, c int) float64 {
			t := float64(i) / float64(rate)
			env := 0.6 + 0.4*math.Sin(2*math.Pi*3*t)
			return env * (0.3*math.Sin(2*math.Pi*150*t+float64(c)) + 0.15*math.Sin(2*math.Pi*440*t) + 0.08*math.Sin(2*math.Pi*1200*t) + 0.03*math.Sin(2*math.Pi*3100*t))
		}
	}
	tests := []struct {
		rate, channels int
		args           []string
	}{
		{44100, 2, []string{"-b", "128"}},
		{48000, 2, []string{"-V", "4"}},
		{32000, 1, []string{"-b", "64"}},
		{44100, 1, []string{"-b", "32", "--resample", "22.05"}}, // MPEG-2, padded frames
		{24000, 1, []string{"-b", "48"}},
		{16000, 1, []string{"-b", "24"}},
		{22050, 2, []string{"-V", "6"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dHz/%dch/%s", tt.rate, tt.channels, strings.Join(tt.args, "")), func(t *testing.T) {
			wav := testWAV{rate: tt.rate, channels: tt.channels, bits: 16}.bytes(int64(tt.rate)*2, voiced(tt.rate))
			mp3 := lame(t, wav, tt.args...)
			c, err := ingest(t, l, mp3, "bulletin.mp3")
			if err != nil {
				t.Fatal(err)
			}
			ref := mustIngest(t, l, lameDecode(t, mp3), "reference.wav")
			y, want := readSamples(t, l, c.ID), readSamples(t, l, ref.ID)
			// go-mp3 keeps the encoder delay that lame's decoder removes:
			// find the lag, then compare a second of speech.
			lag, corr := bestLag(want[4000:20000], y[4000:], 1200)
			t.Logf("source %+v, %d ms (lame's decoder: %d ms), lag %d samples, correlation %.5f, loudness %+v",
				c.Source, c.DurationMS, ref.DurationMS, lag, corr, *c.Loudness)
			if c.Source.Format != SourceMP3 || c.Source.BitRate == 0 || c.Source.Channels == 0 {
				t.Errorf("source %+v", c.Source)
			}
			if corr < 0.99 {
				t.Errorf("correlation with lame's decoding %.4f, want ≥ 0.99", corr)
			}
			if c.Format != nodeaudio.Format || math.Abs(c.Loudness.OutputLUFS-TargetLUFS) > 0.3 {
				t.Errorf("format %s, loudness %+v", c.Format, c.Loudness)
			}
		})
	}
}

// voicedWAV is two seconds of a voiced, speech-like signal as a WAV.
func voicedWAV(rate, channels int, amp float64) []byte {
	return testWAV{rate: rate, channels: channels, bits: 16}.bytes(int64(rate)*2, func(i int64, c int) float64 {
		t := float64(i) / float64(rate)
		return amp * (0.6 + 0.4*math.Sin(2*math.Pi*3*t)) * (math.Sin(2*math.Pi*150*t+float64(c)) + 0.5*math.Sin(2*math.Pi*440*t) + 0.25*math.Sin(2*math.Pi*1200*t))
	})
}

func TestIngestAcceptsQuirkyMP3(t *testing.T) {
	l := newTestLibrary(t)
	base := lame(t, voicedWAV(44100, 1, 0.3), "-b", "64")
	ref := readSamples(t, l, mustIngest(t, l, base, "base.mp3").ID)
	id3 := func(size int) []byte {
		b := []byte{'I', 'D', '3', 4, 0, 0, 0, 0, byte(size >> 7), byte(size & 0x7F)}
		return append(b, make([]byte, size)...)
	}
	tests := []struct {
		name   string
		upload []byte
	}{
		{"ID3v2 tag", append(id3(300), base...)},
		{"two ID3v2 tags", append(append(id3(20), id3(200)...), base...)},
		{"ID3v1 tag", append(bytes.Clone(base), append([]byte("TAG"), make([]byte, 125)...)...)},
		{"junk between frames", append(append(bytes.Clone(base[:len(base)/2]), bytes.Repeat([]byte{0x55, 0xFF}, 300)...), base[len(base)/2:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := readSamples(t, l, mustIngest(t, l, tt.upload, "quirky.mp3").ID)
			// Junk between frames costs the bit reservoir of a frame or two,
			// so this compares a stretch before it.
			if _, corr := bestLag(ref[2000:12000], y[2000:], 10); corr < 0.999 {
				t.Errorf("correlation with the plain file %.4f", corr)
			}
		})
	}
}

func TestIngestRejectsMP3(t *testing.T) {
	good := lame(t, voicedWAV(44100, 2, 0.3), "-b", "128")
	vbr := lame(t, voicedWAV(44100, 1, 0.3), "-V", "5")
	frame, _, _ := parseMP3Header(vbr)
	mpeg25 := lame(t, voicedWAV(8000, 1, 0.3), "-b", "16")
	silent := lame(t, voicedWAV(44100, 1, 0), "-b", "64")
	tests := []struct {
		name   string
		upload []byte
		code   string
		msg    string
	}{
		{"cut in a frame", good[:len(good)-200], loaxa.EInvalid, "the file is truncated"},
		{"cut in a header", good[:len(good)-415], loaxa.EInvalid, "the file is truncated"},
		{"ID3 tag only", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), loaxa.EInvalid, `"in.mp3" has no MP3 frames`},
		{"ID3 tag cut", []byte("ID3\x04\x00\x00\x00\x00\x00\x23TSSE"), loaxa.EInvalid, "the file is truncated: its ID3 tag promises 45 bytes, only 14 are there"},
		{"damaged ID3 size", []byte("ID3\x04\x00\x00\x80\x00\x00\x23TSSE"), loaxa.EInvalid, "has a damaged ID3 tag"},
		{"one frame header", []byte{0xFF, 0xFB, 0x90, 0x64, 0, 0, 0, 0, 0, 0, 0, 0}, loaxa.EInvalid, "the file is truncated: its last MP3 frame needs 417 bytes, only 12 are there"},
		{"Layer II", append([]byte{0xFF, 0xFD, 0x90, 0x64}, make([]byte, 600)...), loaxa.EUnsupported, "holds MPEG Layer II audio (MP2), not MP3"},
		{"free format", append([]byte{0xFF, 0xFB, 0x00, 0x64}, make([]byte, 600)...), loaxa.EUnsupported, "holds free-format MP3"},
		{"MPEG-2.5", mpeg25, loaxa.EUnsupported, "is an MPEG-2.5 MP3 sampled at 8000 Hz, which is not supported"},
		{"tag frame only", vbr[:frame.size], loaxa.EInvalid, "holds no audio: it has only an MP3 tag frame"},
		{"frame then noise", append(bytes.Clone(good[:2000]), bytes.Repeat([]byte{0x12, 0x34, 0x56}, 3000)...), loaxa.EInvalid, "the file is truncated or damaged"},
		{"silent", silent, loaxa.EInvalid, "is silent"},
	}
	l := newTestLibrary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ingest(t, l, tt.upload, "in.mp3")
			if err == nil {
				t.Fatalf("Ingest accepted it as %+v", c)
			}
			if code := loaxa.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
			if msg := loaxa.ErrorMessage(err); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			assertTmpEmpty(t, l)
		})
	}
}
