// Package audio plays a scheduled bulletin through the real audio path —
// controller, broker, agent, oto, ALSA — and checks the sound that came out.
// It is its own test binary because oto allows one sound device per process
// and ALSA's configuration must be redirected before it opens.
package audio

import (
	"bytes"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/node/audio/oto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, alsatest.OtoLoops...)
}

// startTolerance is how far from the instant the node says it began the
// sound may appear in the capture: oto, ALSA and the capture FIFO each
// buffer some audio (tens of milliseconds each), and the capture's clock is
// mapped to wall time from a reference read just before. How late the node
// began after the scheduled instant is measured, not judged: on a machine
// whose cores are taken by other tests it began 537 ms late, and said so.
const startTolerance = 300 * time.Millisecond

func TestBulletinPlaysThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}

	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	n := rig.StartNode(t, c.CreateNode("hp-01", "31"), rig.NodeOptions{Output: out})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("hp-01").Status.State == loaxa.NodeOnline })

	// A 1.5 s chirp uploaded at 44.1 kHz stereo: the node plays what the
	// controller converted, so that is what must come out of the device.
	chirp := alsatest.Chirp(1500*time.Millisecond, 12000)
	ct := c.Upload("chirp.wav", stereoWAV(upsample(chirp), 44100))
	want := c.NodeAudio(ct.ID)

	start := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	ann := c.Announce(ct.ID, []string{"31"}, nil, start)
	rig.Eventually(t, 10*time.Second, "node has the audio", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
	// Reference point: the capture grows at real-time pace, so sample k is
	// heard at refTime + (k - refLen) / rate.
	refLen, refTime := capture.Len(), time.Now()
	// Looked for across silence the device inserted for a writer starved
	// of the CPU on a busy machine: every delivered sample must be heard,
	// in order, as delivered.
	m := capture.AwaitAcrossSilence(t, want, refLen, 15*time.Second)
	heard := refTime.Add(time.Duration(m.Offset-refLen) * time.Second / alsatest.SampleRate)
	if m.Score < 0.999 {
		t.Errorf("captured audio correlates %.4f with the delivered audio, want ≥ 0.999", m.Score)
	}
	if m.Inserted > 0 {
		t.Logf("came out in pieces: %d samples of silence inserted by the device (a starved writer)", m.Inserted)
	}
	rig.Eventually(t, 15*time.Second, "delivery completed", func() bool {
		ds := c.Deliveries(ann.ID)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryCompleted
	})
	// The sound comes out when the node says it began: a play reported on
	// time but heard late (or early) is a defect of the audio path or of
	// the report.
	late := time.Duration(c.Deliveries(ann.ID)[0].LateMS) * time.Millisecond
	if d := heard.Sub(start.Add(late)); d < -startTolerance || d > startTolerance {
		t.Errorf("bulletin heard %v from the instant the node reported it began (%v after its scheduled start), tolerance ±%v",
			d.Round(time.Millisecond), late, startTolerance)
	}
	t.Logf("heard %v after the scheduled start; node reported %v late; correlation %.5f",
		heard.Sub(start).Round(time.Millisecond), late, m.Score)
}

// upsample turns 16 kHz samples into 44.1 kHz by linear interpolation; the
// controller then has real conversion work to do.
func upsample(in []int16) []int16 {
	n := len(in) * 44100 / 16000
	out := make([]int16, n)
	for i := range out {
		pos := float64(i) * 16000 / 44100
		j := int(pos)
		if j+1 >= len(in) {
			out[i] = in[len(in)-1]
			continue
		}
		f := pos - float64(j)
		out[i] = int16(float64(in[j])*(1-f) + float64(in[j+1])*f)
	}
	return out
}

// stereoWAV writes samples to both channels of a 16-bit WAV.
func stereoWAV(s []int16, rate int) []byte {
	var b bytes.Buffer
	u32 := func(v int) { b.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}) }
	u16 := func(v int) { b.Write([]byte{byte(v), byte(v >> 8)}) }
	data := len(s) * 4
	b.WriteString("RIFF")
	u32(36 + data)
	b.WriteString("WAVEfmt ")
	u32(16)
	u16(1)
	u16(2)
	u32(rate)
	u32(rate * 4)
	u16(4)
	u16(16)
	b.WriteString("data")
	u32(data)
	for _, v := range s {
		u16(int(v))
		u16(int(v))
	}
	return b.Bytes()
}
