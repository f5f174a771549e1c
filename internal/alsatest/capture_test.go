package alsatest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hajimehoshi/oto/v2"
	"go.uber.org/goleak"

	"loaxa.vn/protocol/nodeaudio"
)

// oto's loops live as long as the process (suspended once TestOto ends).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, OtoLoops...) }

// writeWAV writes samples as a 16 kHz mono 16-bit PCM WAV file (the legacy
// node format), which aplay plays bit for bit.
func writeWAV(t *testing.T, samples []int16) string {
	t.Helper()
	pcm := S16LE(samples)
	h, err := nodeaudio.PCMHeader(int64(len(pcm)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snippet.wav")
	if err := os.WriteFile(path, append(h, pcm...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkCopy fails unless the capture holds want exactly at m.Offset.
func checkCopy(t *testing.T, c *Capture, want []int16, m Match) {
	t.Helper()
	got, err := c.SamplesFrom(m.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) {
		t.Fatalf("capture has %d samples after offset %d, want at least %d", len(got), m.Offset, len(want))
	}
	if i := firstDifference(got[:len(want)], want); i >= 0 {
		t.Fatalf("captured sample %d after offset %d is %d, played %d", i, m.Offset, got[i], want[i])
	}
}

func firstDifference(a, b []int16) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// A subprocess playing through aplay lands in the capture bit for bit: the
// plug converts its S16_LE to the capture's FLOAT_LE, which maps back to the
// same int16 values.
func TestAplayIsCaptured(t *testing.T) {
	aplay, err := exec.LookPath("aplay")
	if err != nil {
		t.Skip("aplay not installed: run scripts/test.sh, which installs alsa-utils")
	}
	c := Setup(t)
	chirp := Chirp(300*time.Millisecond, 10000)
	mark := c.Len()
	cmd := exec.Command(aplay, "-q", writeWAV(t, chirp))
	cmd.Env = append(os.Environ(), c.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aplay: %v\n%s", err, out)
	}
	m := c.Await(t, chirp, mark, 10*time.Second)
	checkCopy(t, c, chirp, m)
}

func TestSetupWritesConfiguration(t *testing.T) {
	c := Setup(t)
	if got := os.Getenv("HOME"); got != c.Home {
		t.Errorf("HOME = %q, want %q", got, c.Home)
	}
	rc, err := os.ReadFile(filepath.Join(c.Home, ".asoundrc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pcm.!default", "type file", `slave.pcm "null"`, "format FLOAT_LE", `"` + c.Device + `"`} {
		if !strings.Contains(string(rc), want) {
			t.Errorf(".asoundrc lacks %q:\n%s", want, rc)
		}
	}
	env := c.Env()
	if !slices.Contains(env, "HOME="+c.Home) {
		t.Errorf("Env() = %v, want HOME=%s", env, c.Home)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// otoContext is the process's oto context: oto allows one, and a test run
// again with -count=N must play through the same one.
var otoContext = sync.OnceValues(func() (*oto.Context, error) {
	ctx, ready, err := oto.NewContext(nodeaudio.SampleRate, nodeaudio.Channels, oto.FormatSignedInt16LE)
	if err != nil {
		return nil, err
	}
	<-ready
	return ctx, ctx.Err()
})

// suspend parks oto's device loop, unless the test failed: the loop may
// then be blocked writing to a device nobody reads, holding the lock
// Suspend takes, and the failure would become a hang.
func suspend(t *testing.T, ctx *oto.Context) {
	if !t.Failed() {
		ctx.Suspend()
	}
}

// TestOto plays through a real oto context, the way the node does. oto
// allows one context per process, so every oto check is a subtest here.
func TestOto(t *testing.T) {
	start := time.Now()
	c := Setup(t)
	ctx, err := otoContext()
	if err != nil {
		t.Fatalf("oto context: %v", err)
	}
	if err := ctx.Resume(); err != nil {
		t.Fatalf("oto device: %v", err)
	}
	// Park the device loop before the capture closes (cleanups run last in,
	// first out).
	t.Cleanup(func() { suspend(t, ctx) })

	play := func(t *testing.T, samples []int16, volume float64) {
		t.Helper()
		p := ctx.NewPlayer(bytes.NewReader(S16LE(samples)))
		defer p.Close()
		p.SetVolume(volume)
		p.Play()
		deadline := time.Now().Add(10 * time.Second)
		for p.IsPlaying() {
			if time.Now().After(deadline) {
				t.Fatal("player still playing after 10s")
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		if err := p.Err(); err != nil {
			t.Fatalf("player: %v", err)
		}
	}

	t.Run("exact copy", func(t *testing.T) {
		chirp := Chirp(400*time.Millisecond, 12000)
		mark := c.Len()
		play(t, chirp, 1)
		m := c.Await(t, chirp, mark, 10*time.Second)
		checkCopy(t, c, chirp, m)
	})
	t.Run("lower volume still found", func(t *testing.T) {
		chirp := Chirp(400*time.Millisecond, 12000)
		mark := c.Len()
		play(t, chirp, 0.25)
		m := c.Await(t, chirp, mark, 10*time.Second)
		got, err := c.SamplesFrom(m.Offset)
		if err != nil {
			t.Fatal(err)
		}
		// A quarter of the amplitude, give or take the float rounding.
		if peak := slices.Max(got[:len(chirp)]); peak < 2950 || peak > 3050 {
			t.Errorf("peak %d at volume 0.25 of a 12000 chirp, want about 3000", peak)
		}
	})
	t.Run("paced, not swallowed", func(t *testing.T) {
		// oto writes silence between players, as fast as the device takes
		// it; the capture may hold at most real time's worth plus one
		// burst. Without pacing it would be orders of magnitude larger.
		size := c.Size()
		limit := int64(time.Since(start).Seconds()*bytesPerSecond) + burst
		if size > limit {
			t.Fatalf("captured %d bytes in %v, more than real time allows (%d)", size, time.Since(start), limit)
		}
		if size == 0 {
			t.Fatal("captured nothing")
		}
	})
	// oto keeps the device it opened for the life of the process: run
	// again with -count=3, TestOto's later runs played into the first
	// run's capture and heard nothing ("player still playing", "captured
	// nothing"). A later Setup in the process must hear the same context.
	t.Run("a later capture hears the same context", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		later := Setup(t)
		t.Cleanup(func() { suspend(t, ctx) }) // before later closes, as above
		chirp := Chirp(400*time.Millisecond, 12000)
		mark := later.Len()
		play(t, chirp, 1)
		m := later.Await(t, chirp, mark, 10*time.Second)
		checkCopy(t, later, chirp, m)
	})
}
