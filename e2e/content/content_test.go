// Package content takes audio in every shape officers have — WAV of all
// kinds, MP3, typed text — through upload (or text-to-speech), conversion,
// delivery to a real node agent and playback through oto into ALSA, and
// checks what came out of the sound device: the audio the controller
// delivered, at the common loudness, for as long as the source plays. It is
// its own test binary because oto allows one sound device per process.
package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/protocol/nodeaudio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, alsatest.OtoLoops...)
}

// item is one piece of content in the matrix.
type item struct {
	name   string
	source time.Duration // how long the source plays (0: speech, unknown)
	make   func(t *testing.T, c *rig.Controller) *loaxa.Content
}

func TestContentMatrixPlaysThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	n := rig.StartNode(t, c.CreateNode("hp-01", "31"), rig.NodeOptions{Output: out})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("hp-01").Status.State == loaxa.NodeOnline })

	upload := func(name string, b []byte) func(*testing.T, *rig.Controller) *loaxa.Content {
		return func(t *testing.T, c *rig.Controller) *loaxa.Content { return c.Upload(name, b) }
	}
	items := []item{
		{"quiet phone recording, 44.1 kHz stereo 16-bit", 1500 * time.Millisecond, upload("phone.wav", wavFile(44100, 2, 16, false, 0.02, 1500*time.Millisecond))},
		{"loud 48 kHz 32-bit float", 1200 * time.Millisecond, upload("master.wav", wavFile(48000, 1, 32, true, 0.9, 1200*time.Millisecond))},
		{"8 kHz 8-bit mono", time.Second, upload("old.wav", wavFile(8000, 1, 8, false, 0.5, time.Second))},
		{"22.05 kHz 24-bit, six channels", 1100 * time.Millisecond, upload("surround.wav", wavFile(22050, 6, 24, false, 0.3, 1100*time.Millisecond))},
		{"MP3, 44.1 kHz 128 kbit/s", 1300 * time.Millisecond, upload("bulletin.mp3", lame(t, wavFile(44100, 2, 16, false, 0.3, 1300*time.Millisecond), "-b", "128"))},
		{"MP3, 22.05 kHz 32 kbit/s mono", 1300 * time.Millisecond, upload("phone.mp3", lame(t, wavFile(22050, 1, 16, false, 0.3, 1300*time.Millisecond), "-b", "32"))},
		{"text to speech", 0, func(t *testing.T, c *rig.Controller) *loaxa.Content {
			var ct loaxa.Content
			c.MustDo("POST", "/api/v1/content/tts", map[string]any{"text": "Kính gửi bà con. Chiều nay có mưa lớn."}, &ct)
			return &ct
		}},
		{"legacy PCM content", 900 * time.Millisecond, func(t *testing.T, c *rig.Controller) *loaxa.Content {
			return legacyContent(t, c, 900*time.Millisecond)
		}},
	}

	type planned struct {
		item
		ct   *loaxa.Content
		want []int16
		ann  string
	}
	var plan []planned
	for _, it := range items {
		ct := it.make(t, c)
		want := c.NodeAudio(ct.ID)
		if it.source > 0 {
			// MP3 adds its encoder delay (tens of ms) to the source.
			if d := time.Duration(ct.DurationMS)*time.Millisecond - it.source; d < 0 || d > 80*time.Millisecond {
				t.Errorf("%s: plays %d ms, the source %v", it.name, ct.DurationMS, it.source)
			}
		} else if ct.DurationMS < 1500 || ct.DurationMS > 6000 {
			t.Errorf("%s: speech of %d ms for two short sentences", it.name, ct.DurationMS)
		}
		if it.name != "legacy PCM content" {
			f := make([]float32, len(want))
			for i, v := range want {
				f[i] = float32(v) / 32768
			}
			if l := media.IntegratedLoudness(f, nodeaudio.SampleRate); math.Abs(l-media.TargetLUFS) > 1 {
				t.Errorf("%s: delivered at %.2f LUFS, want %.0f ± 1", it.name, l, media.TargetLUFS)
			}
		}
		plan = append(plan, planned{item: it, ct: ct, want: want})
	}
	// Everything is made: now schedule one after another, a few seconds
	// out, with gaps, and mark the capture before any of it can play.
	from := capture.Len()
	next := time.Now().Add(5 * time.Second)
	for i := range plan {
		start := next.Truncate(time.Millisecond)
		plan[i].ann = c.Announce(plan[i].ct.ID, []string{"31"}, nil, start).ID
		next = start.Add(time.Duration(plan[i].ct.DurationMS)*time.Millisecond + 1500*time.Millisecond)
	}
	rig.Eventually(t, 20*time.Second, "node has all content", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0 && st.CacheBytes > 0
	})

	// Looked for across silence the device inserted: on a busy machine
	// the node's writer can be starved of the CPU and the device plays
	// exact silence until it has more, which cuts a piece out of the
	// sound without changing a sample of it. What is checked is that every
	// sample delivered was heard, in order, as delivered.
	for _, p := range plan {
		m := capture.AwaitAcrossSilence(t, p.want, from, time.Until(next)+15*time.Second)
		if m.Score < 0.999 {
			t.Errorf("%s: captured audio correlates %.4f with the delivered audio, want ≥ 0.999", p.name, m.Score)
		}
		if m.Inserted > 0 {
			t.Logf("%s: came out in pieces, %d samples of silence inserted by the device (a starved writer)", p.name, m.Inserted)
		}
		from = m.End()
		t.Logf("%s: %d ms, %s, heard with correlation %.5f", p.name, p.ct.DurationMS, p.ct.Source.Format, m.Score)
	}
	for _, p := range plan {
		rig.Eventually(t, 15*time.Second, p.name+": delivery completed", func() bool {
			ds := c.Deliveries(p.ann)
			return len(ds) == 1 && ds[0].State == loaxa.DeliveryCompleted && ds[0].ContentReady
		})
	}
}

// wavFile generates a WAV of a voiced, speech-like sound: a gliding pitch
// with harmonics under a syllable envelope, at peak amplitude amp.
func wavFile(rate, channels, bits int, float bool, amp float64, d time.Duration) []byte {
	frames := int(d.Seconds() * float64(rate))
	bps := bits / 8
	data := make([]byte, 0, frames*channels*bps)
	phase := 0.0
	for i := 0; i < frames; i++ {
		t := float64(i) / float64(rate)
		phase += 2 * math.Pi * (140 + 40*math.Sin(2*math.Pi*0.8*t)) / float64(rate)
		v := amp * (0.55 + 0.45*math.Sin(2*math.Pi*4*t)) * (0.6*math.Sin(phase) + 0.25*math.Sin(2*phase) + 0.1*math.Sin(3*phase) + 0.05*math.Sin(7*phase))
		for ch := 0; ch < channels; ch++ {
			switch {
			case float:
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(v)))
			case bits == 8:
				data = append(data, byte(int(math.Round(v*127))+128))
			default:
				x := int32(math.Round(v * float64(int64(1)<<(bits-1)-1)))
				for b := 0; b < bps; b++ {
					data = append(data, byte(x>>(8*b)))
				}
			}
		}
	}
	format := uint16(1)
	if float {
		format = 3
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	binary.Write(&b, le, uint32(4+26+8+12+8+len(data)))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, le, uint32(16))
	binary.Write(&b, le, format)
	binary.Write(&b, le, uint16(channels))
	binary.Write(&b, le, uint32(rate))
	binary.Write(&b, le, uint32(rate*channels*bps))
	binary.Write(&b, le, uint16(channels*bps))
	binary.Write(&b, le, uint16(bits))
	b.WriteString("LIST") // an INFO chunk, as editors write
	binary.Write(&b, le, uint32(12))
	b.WriteString("INFOINAM\x00\x00\x00\x00")
	b.WriteString("data")
	binary.Write(&b, le, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// lame encodes a WAV as MP3 with the lame command (scripts/test.sh
// installs it).
func lame(t *testing.T, wav []byte, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.mp3")
	if err := os.WriteFile(in, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("lame", append(append([]string{"--quiet"}, args...), in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("lame (scripts/test.sh installs it): %v\n%s", err, b)
	}
	mp3, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return mp3
}

// legacyContent stores content in the format nodes received before IMA
// ADPCM — canonical 16-bit PCM WAV — as a controller upgraded from then
// holds it, and returns it.
func legacyContent(t *testing.T, c *rig.Controller, d time.Duration) *loaxa.Content {
	t.Helper()
	wav := wavFile(16000, 1, 16, false, 0.3, d)
	pcm := wav[len(wav)-int(nodeaudio.Bytes(d)):]
	h, err := nodeaudio.PCMHeader(int64(len(pcm)))
	if err != nil {
		t.Fatal(err)
	}
	file := append(h, pcm...)
	sum := sha256.Sum256(file)
	id := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(c.App.Config.DataDir, "content", id+".wav"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	ct, err := c.App.Contents.CreateContent(t.Context(), &loaxa.Content{
		ID: id, Title: "Bản tin cũ", Format: nodeaudio.FormatPCM, Size: int64(len(file)), DurationMS: d.Milliseconds(),
		Source: loaxa.Source{Format: "wav/pcm", SampleRate: 16000, Channels: 1, BitDepth: 16, Size: int64(len(file))}, CreatedBy: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}
