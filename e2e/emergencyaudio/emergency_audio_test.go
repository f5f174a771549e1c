// Package emergencyaudio plays an emergency through the real audio path —
// controller, broker, agent, oto, ALSA — over a bulletin, and checks the
// sound that came out: the template in order, at the level asked for, and
// the bulletin again afterwards. It is its own test binary because oto
// allows one sound device per process.
package emergencyaudio

import (
	"math"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/protocol/nodeaudio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, alsatest.OtoLoops...)
}

// joinTolerance is how far apart, in samples, two parts of one stream may
// appear in the capture: they are one stream, so only the correlation's
// own precision (and none of the device buffering) is in it.
const joinTolerance = 16 // 1 ms

// TestEmergencyTemplateThroughALSA: a drill at volume 5 cuts a bulletin
// off; what comes out of the sound device is the opening chime, the
// message, a second of silence, the message again and the closing chime,
// back to back, 20 dB below the delivered level; then the bulletin plays
// again from its beginning.
func TestEmergencyTemplateThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	n := rig.StartNode(t, c.CreateNode("hp-01", "31"), rig.NodeOptions{Output: out})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("hp-01").Status.State == loaxa.NodeOnline })

	bulletin := c.Upload("ban-tin.wav", rig.PCMWAV(alsatest.Chirp(4*time.Second, 12000), 16000, 1))
	message := c.Upload("bao-dong.wav", rig.PCMWAV(reversed(alsatest.Chirp(time.Second, 12000)), 16000, 1))
	wantBulletin := c.NodeAudio(bulletin.ID)
	wantMessage := c.NodeAudio(message.ID)
	start := time.Now().Add(2 * time.Second)
	ann := c.Announce(bulletin.ID, []string{"31"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	from := capture.Len()
	capture.Await(t, wantBulletin[:nodeaudio.SampleRate/2], from, 15*time.Second)

	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{
		"content_id": message.ID, "targets": []string{"31"}, "repeat": 2, "volume": 5, "drill": true,
	}, &em)
	opening, closing := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime)

	mo := capture.Await(t, opening, from, 15*time.Second)
	m1 := capture.Await(t, wantMessage, mo.Offset+len(opening)-joinTolerance, 10*time.Second)
	m2 := capture.Await(t, wantMessage, m1.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	mc := capture.Await(t, closing, m2.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	gap := nodeaudio.SampleRate // emergency.Gap, one second
	for _, j := range []struct {
		what      string
		got, want int
	}{
		{"message after the opening chime", m1.Offset, mo.Offset + len(opening)},
		{"message again after a second of silence", m2.Offset, m1.Offset + len(wantMessage) + gap},
		{"closing chime after the message", mc.Offset, m2.Offset + len(wantMessage)},
	} {
		if d := j.got - j.want; d < -joinTolerance || d > joinTolerance {
			t.Errorf("%s: %d samples off", j.what, d)
		}
	}
	for _, m := range []alsatest.Match{mo, m1, m2, mc} {
		if m.Score < 0.99 {
			t.Errorf("a part of the template correlates %.4f with what was delivered, want ≥ 0.99", m.Score)
		}
	}
	heard, err := capture.SamplesFrom(m1.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if db := 20 * math.Log10(rms(heard[:len(wantMessage)])/rms(wantMessage)); math.Abs(db-(-20)) > 0.5 {
		t.Errorf("message heard at %.2f dB of its delivered level, want −20 dB (volume 5)", db)
	}
	rig.Eventually(t, 10*time.Second, "bulletin back on air", func() bool {
		p := n.Agent.Status().Playing
		return p != nil && p.Occurrence == occ
	})
	capture.Await(t, wantBulletin[:nodeaudio.SampleRate], mc.Offset+len(closing)-joinTolerance, 10*time.Second)
	rig.Eventually(t, 15*time.Second, "emergency delivery completed", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
		return rep.Summary.Completed == 1
	})
	t.Logf("template: opening %d, message %d and %d, closing %d (samples); scores %.4f %.4f %.4f %.4f",
		mo.Offset, m1.Offset, m2.Offset, mc.Offset, mo.Score, m1.Score, m2.Score, mc.Score)
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

func reversed(s []int16) []int16 {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
