// Package emergencyaudio plays an emergency through the real audio path —
// controller, broker, agent, oto, ALSA — over a bulletin, and checks the
// sound that came out: the template in order, at the level asked for, and
// the bulletin again afterwards; and a cluster that had the alert late,
// which leaves out as much of its opening chime as it was late. It is its
// own test binary because oto allows one sound device per process.
package emergencyaudio

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/internal/netproxy"
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

// TestEmergencyThroughALSA: one sound device per process, so the cases
// share it.
func TestEmergencyThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}
	t.Run("the template over a bulletin", func(t *testing.T) { templateOverABulletin(t, capture, out) })
	t.Run("a cluster that had it late skips into its chime", func(t *testing.T) { lateClusterSkipsIntoItsChime(t, capture, out) })
}

// templateOverABulletin: a drill at volume 5 cuts a bulletin off; what
// comes out of the sound device is the opening chime, the message, a
// second of silence, the message again and the closing chime, back to
// back, 20 dB below the delivered level; then the bulletin plays again
// from its beginning.
func templateOverABulletin(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	rig.StartNode(t, c.CreateNode("hp-01", "31"), rig.NodeOptions{Output: out})
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
	capture.Await(t, wantBulletin[:nodeaudio.SampleRate], mc.Offset+len(closing)-joinTolerance, 10*time.Second)
	// What the cluster played after the alert was the bulletin's own
	// occurrence, played to its end (read from the cluster's reports, not
	// from what it plays at the moment: on a loaded machine the bulletin
	// can be over before the capture above is searched).
	rig.Eventually(t, 15*time.Second, "the bulletin completed after the alert", func() bool {
		d := c.Deliveries(ann.ID)
		return len(d) == 1 && d[0].Occurrence == occ && d[0].State == loaxa.DeliveryCompleted
	})
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

// lateClusterSkipsIntoItsChime: a cluster keeps the alert's message
// (standing content) and its chimes, but its link holds the alert back
// until 200 ms after its area's start, as a slow 4G link does. It begins
// late and leaves out as much of its opening chime's beginning as it is
// late, so that the rest sounds on its area's timeline: nothing comes out
// of the speaker before the chime's rest, which begins where the
// cluster's report says, and the message follows the chime's end. The
// report counts the cluster as caught up and on the timeline.
func lateClusterSkipsIntoItsChime(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	link, err := netproxy.Start(strings.TrimPrefix(c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	message := c.Upload("canh-bao.wav", rig.PCMWAV(reversed(alsatest.Chirp(time.Second, 12000)), 16000, 1))
	c.MustDo("PUT", "/api/v1/content/"+message.ID+"/standing", map[string]any{"areas": []string{"12346"}}, nil)
	n := rig.StartNode(t, c.CreateNode("tien-thang-01", "12346"), rig.NodeOptions{Broker: "tcp://" + link.Addr(), Output: out})
	c.AwaitKept(n, 30*time.Second)
	wantMessage := c.NodeAudio(message.ID)

	from := capture.Len()
	link.Hold()
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{
		"content_id": message.ID, "targets": []string{"12346"}, "repeat": 1, "drill": true,
	}, &em)
	// Lateness is what this case is about: the link gives the alert to the
	// cluster 200 ms after its area's start, not before.
	time.Sleep(time.Until(em.Areas[0].Start.Add(200 * time.Millisecond)))
	link.Release()

	var node loaxa.EmergencyNode
	var timing loaxa.EmergencyTiming
	rig.Eventually(t, 20*time.Second, "the cluster's start reported", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
		if len(rep.Nodes) != 1 || rep.Nodes[0].SoundMS == nil {
			return false
		}
		node, timing = rep.Nodes[0], rep.Timing
		return true
	})
	t.Logf("late %d ms, skipped %d ms of the chime", node.LateMS, node.ChimeSkippedMS)
	if node.LateMS < 200 {
		t.Fatalf("the cluster began %d ms after its area's start; the link held the alert until 200 ms after it", node.LateMS)
	}
	opening := c.NodeAudio(em.OpeningChime)
	// agent.chimeLeft: a cluster later than its chime less half a second
	// plays the whole chime.
	if most := int64(len(opening))*1000/nodeaudio.SampleRate - 500; node.LateMS > most {
		// A machine too busy for this case: the cluster plays the whole
		// chime, as late as it is.
		if node.ChimeSkippedMS != 0 {
			t.Errorf("began %d ms late, more than the %d ms its chime can make up, and skipped %d ms of it; want none", node.LateMS, most, node.ChimeSkippedMS)
		}
		t.Logf("began %d ms late, more than the %d ms its chime can make up: the skip was not exercised", node.LateMS, most)
		return
	}
	if d := node.LateMS - node.ChimeSkippedMS; d < -1 || d > 1 {
		t.Errorf("began %d ms late and skipped %d ms of the chime, want as much as it was late", node.LateMS, node.ChimeSkippedMS)
	}
	if timing.ChimeSkipped != 1 || timing.OffStart != 0 || timing.SkewMS == nil || timing.SkewMS.Max > 1 {
		t.Errorf("timing %+v (skew %+v), want the cluster caught up and on its area's timeline", timing, timing.SkewMS)
	}

	m1 := capture.Await(t, wantMessage, from, 20*time.Second)
	heard, err := capture.SamplesFrom(from)
	if err != nil {
		t.Fatal(err)
	}
	before := heard[:m1.Offset-from]
	// The chime's end, right before the message: where the whole chime
	// would have begun follows from it.
	tail := opening[len(opening)-8000:]
	mt, ok := alsatest.Find(before, tail)
	if !ok {
		t.Fatalf("the chime's end is not in the capture before the message (best score %.4f)", mt.Score)
	}
	chimeAt := mt.Offset + len(tail) - len(opening) // in before
	if d := m1.Offset - from - (chimeAt + len(opening)); d < -joinTolerance || d > joinTolerance {
		t.Errorf("the message began %d samples off the chime's end", d)
	}
	// The chime's rest from the point the report names, and nothing out
	// of the speaker before it (the tolerance is the report's rounding to
	// a millisecond).
	skip := int(node.ChimeSkippedMS) * nodeaudio.SampleRate / 1000
	const ms = nodeaudio.SampleRate / 1000
	if chimeAt+skip-ms < 0 {
		t.Fatalf("the chime's rest begins %d samples into the capture, before the alert was sent", chimeAt+skip)
	}
	for i, s := range before[:chimeAt+skip-ms] {
		if s != 0 {
			t.Fatalf("sample %d of %d before the chime's rest is %d, want silence: the chime's beginning was left out", i, chimeAt+skip-ms, s)
		}
	}
	rest := opening[skip+ms:]
	mr, ok := alsatest.Find(before, rest)
	if !ok || mr.Score < 0.99 {
		t.Fatalf("the chime's rest is not in the capture (best score %.4f)", mr.Score)
	}
	if d := mr.Offset - (chimeAt + skip + ms); d < -joinTolerance || d > joinTolerance {
		t.Errorf("the chime's rest (from %d ms) came out %d samples off where its end puts it", node.ChimeSkippedMS, d)
	}
	t.Logf("chime at %d (its rest from %d), message at %d; scores %.4f %.4f %.4f", chimeAt, mr.Offset, m1.Offset-from, mt.Score, mr.Score, m1.Score)
}
