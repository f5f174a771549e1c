// Package streamaudio plays an alert whose message the cluster does not
// have through the real audio path — controller, broker, agent, oto,
// ALSA — while the message downloads over a slow link, and with the
// opening chime before any of it has come, and checks the sound that came
// out. It is its own test binary because oto allows one sound device per
// process.
package streamaudio

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, alsatest.OtoLoops...)
}

// joinTolerance is how far apart, in samples, two parts of one stream may
// appear in the capture (1 ms: the correlation's own precision).
const joinTolerance = 16

// meteredLink is a cluster's HTTP link that brings one content at 16 KB/s,
// twice the rate node audio plays at, and holds its last 2 KB until
// release is closed; with start set, it holds every byte until start is
// closed.
type meteredLink struct {
	content   atomic.Pointer[string]
	start     chan struct{}
	release   chan struct{}
	requests  atomic.Int32
	begun     atomic.Bool // a byte reached the agent
	delivered atomic.Bool // the last byte reached the agent
}

func (l *meteredLink) id() string {
	if p := l.content.Load(); p != nil {
		return *p
	}
	return ""
}

func (l *meteredLink) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if id := l.id(); err != nil || id == "" || !strings.Contains(r.URL.Path, id) {
		return resp, err
	}
	l.requests.Add(1)
	resp.Body = &meteredBody{body: resp.Body, left: resp.ContentLength, link: l, done: r.Context().Done()}
	return resp, nil
}

type meteredBody struct {
	body io.ReadCloser
	left int64 // bytes still to come; the last 2 KB wait for release
	link *meteredLink
	done <-chan struct{}
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if b.link.start != nil {
		select {
		case <-b.link.start:
		case <-b.done:
			return 0, io.ErrUnexpectedEOF
		}
	}
	if b.left <= 2048 {
		select {
		case <-b.link.release:
		case <-b.done:
			return 0, io.ErrUnexpectedEOF
		}
	} else {
		select {
		case <-time.After(125 * time.Millisecond): // 2 KB per 125 ms
		case <-b.done:
			return 0, io.ErrUnexpectedEOF
		}
		p = p[:min(int64(len(p)), 2048, b.left-2048)]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	if n > 0 {
		b.link.begun.Store(true)
	}
	if b.left == 0 {
		b.link.delivered.Store(true)
	}
	return n, err
}

func (b *meteredBody) Close() error { return b.body.Close() }

// TestAlertWhoseMessageDownloadsThroughALSA: one sound device per process,
// so both cases share it.
func TestAlertWhoseMessageDownloadsThroughALSA(t *testing.T) {
	capture := alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}
	t.Run("played as it arrives", func(t *testing.T) { playsAsItDownloads(t, capture, out) })
	t.Run("the chime before the message", func(t *testing.T) { chimesBeforeItsMessage(t, capture, out) })
	t.Run("a late message joins a repeat", func(t *testing.T) { lateMessageJoinsARepeat(t, capture, out) })
	t.Run("a chime the cluster does not have keeps its place", func(t *testing.T) { missingChimeKeepsItsPlace(t, capture, out) })
}

// heldContent is a cluster's HTTP link that brings no content until open
// is closed: a cluster enrolled a moment ago, whose chimes have not come.
type heldContent struct{ open chan struct{} }

func (l heldContent) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/content/") {
		select {
		case <-l.open:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// missingChimeKeepsItsPlace: a cluster enrolled a moment ago, which has
// neither the chimes nor the message, gets an alert repeated twice. It
// starts at the shared instant all the same, in silence where its opening
// chime goes; the chime comes once the cluster is playing, and the rest
// of it plays from there, then the message on the area's timeline: at the
// chime's end, or a message and a gap later (with the others' second
// repeat), within the 20 ms the issue allows between clusters.
func missingChimeKeepsItsPlace(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	link := heldContent{open: make(chan struct{})}
	c, n := clusterOverLink(t, out, link)
	t.Cleanup(func() {
		select {
		case <-link.open:
		default:
			close(link.open)
		}
	})
	rig.Eventually(t, 15*time.Second, "the cluster online and running its desired state", func() bool {
		return c.Node(n.ID).Status.State == loaxa.NodeOnline && n.Agent.Status().DesiredVersion > 0
	})
	message := c.Upload("canh-bao.wav", rig.PCMWAV(alsatest.Chirp(2*time.Second, 12000), 16000, 1))
	wantMessage := c.NodeAudio(message.ID)
	from := capture.Len()
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{
		"content_id": message.ID, "targets": []string{"12346"}, "repeat": 2, "drill": true,
	}, &em)
	rig.Eventually(t, 20*time.Second, "the cluster plays the alert without its chime", func() bool {
		p := n.Agent.Status().Playing
		return p != nil && p.Occurrence == em.Occurrence
	})
	// A play begins its output a lead-in ahead of its instant (silence up
	// to it), and says it plays from then: the chime's place begins at the
	// area's start, and its first 100 ms go by before the chime may come.
	rig.Eventually(t, 20*time.Second, "the chime's place 100 ms under way", func() bool {
		return time.Now().After(em.Areas[0].Start.Add(100 * time.Millisecond))
	})
	close(link.open)

	opening, closing := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime)
	m1 := capture.Await(t, wantMessage, from, 20*time.Second)
	// The chime's last half second ends its place. Looked for once the
	// message is captured after it: a ringing note matches itself a few
	// periods off well enough to pass for it while half captured.
	before, err := capture.SamplesFrom(from)
	if err != nil {
		t.Fatal(err)
	}
	tail := opening[len(opening)-8000:]
	mt, ok := alsatest.Find(before[:m1.Offset-from], tail)
	if !ok {
		t.Fatalf("the chime's end is not in the capture before the message (best score %.4f)", mt.Score)
	}
	mt.Offset += from
	place := mt.Offset + len(tail) - len(opening)
	period := len(wantMessage) + int(emergency.Gap.Seconds()*16000)
	m2 := capture.Await(t, wantMessage, m1.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	mc := capture.Await(t, closing, m2.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	k := (m1.Offset - place - len(opening) + period/2) / period
	off := m1.Offset - (place + len(opening) + k*period)
	t.Logf("the chime's place at %d; the message %+.1f ms off the others' repeat %d; scores %.4f %.4f %.4f %.4f",
		place, float64(off)/16, k+1, mt.Score, m1.Score, m2.Score, mc.Score)
	if k < 0 {
		t.Errorf("the message began %.1f ms off the others' repeat %d: before the chime's place ended", float64(off)/16, k+1)
	}
	onItsRepeat(t, c, em, len(opening), period, k)
	// The chime came after the cluster began: the start of its place is
	// silence (at least the first 100 ms, given before the link opened).
	head, err := capture.SamplesFrom(place)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range head[:1600] {
		if s != 0 {
			t.Errorf("sample %d of the chime's place is %d, want silence: the chime cannot have come yet", i, s)
			break
		}
	}
	for _, m := range []alsatest.Match{mt, m1, m2, mc} {
		if m.Score < 0.99 {
			t.Errorf("a part of the template correlates %.4f with what was delivered, want ≥ 0.99", m.Score)
		}
	}
	if d := m2.Offset - (m1.Offset + period); d < -joinTolerance || d > joinTolerance {
		t.Errorf("second repeat %d samples off a message and a gap after the first", d)
	}
	rig.Eventually(t, 15*time.Second, "the delivery completed", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
		return rep.Summary.Completed == 1
	})
}

// playsAsItDownloads: a commune officer sends a drill with a message
// uploaded a moment ago, which the cluster does not have; its link brings
// it at twice the rate it plays. The cluster starts before the download
// ends (the link holds the message's last bytes until the agent's output
// has begun), and what comes out of the sound device is the opening chime,
// the whole message and the closing chime, back to back, as from a cached
// file.
func playsAsItDownloads(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	link := &meteredLink{release: make(chan struct{})}
	c, n, em, wantMessage, from := alertOverLink(t, capture, out, link, 1)
	rig.Eventually(t, 20*time.Second, "the cluster plays the alert while its message downloads", func() bool {
		p := n.Agent.Status().Playing
		return p != nil && p.Occurrence == em.Occurrence
	})
	if link.delivered.Load() {
		t.Fatal("the message's last bytes reached the cluster before it played")
	}
	close(link.release)

	opening, closing := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime)
	mo := capture.Await(t, opening, from, 15*time.Second)
	mm := capture.Await(t, wantMessage, mo.Offset+len(opening)-joinTolerance, 10*time.Second)
	mc := capture.Await(t, closing, mm.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	for _, j := range []struct {
		what      string
		got, want int
	}{
		{"message after the opening chime", mm.Offset, mo.Offset + len(opening)},
		{"closing chime after the message", mc.Offset, mm.Offset + len(wantMessage)},
	} {
		if d := j.got - j.want; d < -joinTolerance || d > joinTolerance {
			t.Errorf("%s: %d samples off (a gap while the message downloaded?)", j.what, d)
		}
	}
	playedAndFetched(t, c, em, mo, mm, mc)
	if got := link.requests.Load(); got != 1 {
		t.Errorf("the message was requested %d times, want once", got)
	}
	t.Logf("template: opening %d, message %d, closing %d (samples); scores %.4f %.4f %.4f", mo.Offset, mm.Offset, mc.Offset, mo.Score, mm.Score, mc.Score)
}

// chimesBeforeItsMessage: the cluster's link brings nothing of the alert's
// new message until the opening chime has come out of the sound device:
// the cluster starts the alert at its start instant with the chime it
// keeps, its report says it does not have the message yet, and it plays
// the message once enough of it has arrived (after a silence, with the
// amplifier on), then the closing chime right after it.
func chimesBeforeItsMessage(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	link := &meteredLink{start: make(chan struct{}), release: make(chan struct{})}
	close(link.release)
	c, _, em, wantMessage, from := alertOverLink(t, capture, out, link, 1)
	opening, closing := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime)
	mo := capture.Await(t, opening, from, 15*time.Second)
	if link.begun.Load() {
		t.Fatal("a byte of the message reached the cluster before its chime played")
	}
	var rep loaxa.EmergencyReport
	c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
	if len(rep.Nodes) != 1 || rep.Nodes[0].ContentReady {
		t.Errorf("report while the chime played: %+v; want the cluster without its content", rep.Nodes)
	}
	close(link.start)

	mm := capture.Await(t, wantMessage, mo.Offset+len(opening)-joinTolerance, 15*time.Second)
	mc := capture.Await(t, closing, mm.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	if mm.Offset < mo.Offset+len(opening)-joinTolerance {
		t.Errorf("the message began %d samples before the chime ended", mo.Offset+len(opening)-mm.Offset)
	}
	if d := mc.Offset - (mm.Offset + len(wantMessage)); d < -joinTolerance || d > joinTolerance {
		t.Errorf("closing chime %d samples off the message's end", d)
	}
	playedAndFetched(t, c, em, mo, mm, mc)
	// Played once, and late: the clusters that had it in time were done.
	messageInStep(t, c, em, false)
	t.Logf("opening at %d, message at %d (%.2f s after the chime ended), closing at %d; scores %.4f %.4f %.4f",
		mo.Offset, mm.Offset, float64(mm.Offset-mo.Offset-len(opening))/16000, mc.Offset, mo.Score, mm.Score, mc.Score)
}

// lateMessageJoinsARepeat: as above, but the alert repeats its message
// twice. The clusters that had the message in time played it at the
// chime's end and begin their second repeat a message and a gap later;
// this one, whose message came after the chime's end, waits in silence
// and begins its first repeat exactly then, in step with theirs (within
// the 20 ms the issue allows between clusters), and plays both repeats.
func lateMessageJoinsARepeat(t *testing.T, capture *alsatest.Capture, out *oto.Output) {
	link := &meteredLink{start: make(chan struct{}), release: make(chan struct{})}
	close(link.release)
	c, n, em, wantMessage, from := alertOverLink(t, capture, out, link, 2)
	opening, closing := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime)
	// The message must come after the speaker has had the chime, and
	// well before the others' second repeat, three seconds later. The
	// link opens 300 ms after the chime's end by the cluster's own
	// account of when its first sample was heard: not once the capture
	// shows the chime, which a test reading the capture on a busy
	// machine can find seconds late.
	var since time.Time
	rig.Eventually(t, 20*time.Second, "the cluster plays the alert", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && p.Occurrence == em.Occurrence {
			since = p.Since
		}
		return !since.IsZero()
	})
	chime := time.Duration(len(opening)) * time.Second / 16000
	<-time.After(time.Until(since.Add(chime + 300*time.Millisecond)))
	close(link.start)
	mo := capture.Await(t, opening, from, 15*time.Second)

	chimeEnd := mo.Offset + len(opening)
	period := len(wantMessage) + int(emergency.Gap.Seconds()*16000)
	m1 := capture.Await(t, wantMessage, chimeEnd-joinTolerance, 20*time.Second)
	m2 := capture.Await(t, wantMessage, m1.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	mc := capture.Await(t, closing, m2.Offset+len(wantMessage)-joinTolerance, 10*time.Second)
	off := m1.Offset - (chimeEnd + period)
	t.Logf("the message began %.3f s after the chime's end, %+.1f ms off the others' second repeat; scores %.4f %.4f %.4f %.4f",
		float64(m1.Offset-chimeEnd)/16000, float64(off)/16, mo.Score, m1.Score, m2.Score, mc.Score)
	if off < -period/4 || off > period/4 {
		t.Errorf("the message began %.1f ms off the instant the others began their second repeat: not on that repeat", float64(off)/16)
	}
	onItsRepeat(t, c, em, len(opening), period, 1)
	if d := m2.Offset - (m1.Offset + period); d < -joinTolerance || d > joinTolerance {
		t.Errorf("second repeat %d samples off a message and a gap after the first", d)
	}
	if d := mc.Offset - (m2.Offset + len(wantMessage)); d < -joinTolerance || d > joinTolerance {
		t.Errorf("closing chime %d samples off the second repeat's end", d)
	}
	playedAndFetched(t, c, em, mo, m1, m2, mc)
	messageInStep(t, c, em, true)
}

// messageInStep checks what the report says of when the cluster began the
// message: in step with the clusters that had it in time, or not. The
// cluster said where as its message came (its content-ready event), not
// only when its play ended.
func messageInStep(t *testing.T, c *rig.Controller, em loaxa.Emergency, want bool) {
	t.Helper()
	var rep loaxa.EmergencyReport
	c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
	n := rep.Nodes[0]
	if n.MessageMS == nil || n.MessageInStep == nil || *n.MessageInStep != want {
		t.Errorf("report: message_ms %v, message_in_step %v; want in step %v", n.MessageMS, n.MessageInStep, want)
		return
	} else if tm := rep.Timing; tm.MessageLate != 1 || tm.MessageInStep != map[bool]int{true: 1}[want] {
		t.Errorf("report's timing: %d late messages, %d in step", tm.MessageLate, tm.MessageInStep)
	}
	said := map[protocol.EventType]int64{}
	for _, e := range c.Events(url.Values{"node": {n.Node}}) {
		if e.Occurrence == em.Occurrence {
			said[e.Type] = e.MessageMS
		}
	}
	if said[protocol.EventContentReady] != *n.MessageMS || said[protocol.EventCompleted] != *n.MessageMS {
		t.Errorf("the cluster's content-ready event says the message begins %d ms in, its completed event %d ms; the report %d ms",
			said[protocol.EventContentReady], said[protocol.EventCompleted], *n.MessageMS)
	}
}

// onItsRepeat checks, by the cluster's own account (the report's
// message_ms, where in its play it began a message that came late; none
// for one that followed the chime on its first repeat), that it began the
// message within 20 ms (the bound between clusters) of where the
// others began repeat k+1: after the opening chime (opening samples) and
// k periods, from its area's start. Its play began late_ms after that
// start (on a busy machine, 88 ms), and the agent places the message on
// its area's timeline, not its own play's: it is message_ms + late_ms into
// the area's, as the controller reckons message_in_step. The capture shows which repeat it joined; its samples are not
// the wall clock to 20 ms on a busy machine, where a starved output falls
// behind and the agent, keeping to its area's timeline, leaves out what it
// could not play in time (a full run at load 10 found a message 140 ms
// early in the capture, in step by the cluster's account).
func onItsRepeat(t *testing.T, c *rig.Controller, em loaxa.Emergency, opening, period, k int) {
	t.Helper()
	var rep loaxa.EmergencyReport
	c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
	if len(rep.Nodes) == 1 && rep.Nodes[0].MessageMS == nil && k == 0 {
		return // not late: the message followed the chime's place, in one stream
	}
	if len(rep.Nodes) != 1 || rep.Nodes[0].MessageMS == nil {
		t.Errorf("report: %+v; want the cluster's message_ms (it joined repeat %d)", rep.Nodes, k+1)
		return
	}
	want := int64(opening+k*period) / 16
	n := rep.Nodes[0]
	if got := *n.MessageMS + n.LateMS; got < want-inStepMS || got > want+inStepMS {
		t.Errorf("the cluster began the message %d ms into its play, which began %d ms after its area's start; the others began repeat %d at %d ms: want within %d ms",
			*n.MessageMS, n.LateMS, k+1, want, inStepMS)
	}
}

// inStepMS is the bound on start skew between clusters (20 ms).
const inStepMS = 20

// alertOverLink starts a controller and a cluster on out whose content
// comes over link, waits for it to keep the chimes, uploads a 2 s message
// that link then meters, and sends a drill of it, repeated repeat times.
// It returns the message's PCM as the cluster plays it and where the
// capture was at the call.
func alertOverLink(t *testing.T, capture *alsatest.Capture, out *oto.Output, link *meteredLink, repeat int) (*rig.Controller, *rig.Node, loaxa.Emergency, []int16, int) {
	c, n := clusterOverLink(t, out, link)
	c.AwaitKept(n, 15*time.Second)
	message := c.Upload("canh-bao.wav", rig.PCMWAV(alsatest.Chirp(2*time.Second, 12000), 16000, 1))
	link.content.Store(&message.ID)
	wantMessage := c.NodeAudio(message.ID)
	from := capture.Len()
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{
		"content_id": message.ID, "targets": []string{"12346"}, "repeat": repeat, "drill": true,
	}, &em)
	return c, n, em, wantMessage, from
}

// clusterOverLink starts a controller and one cluster of commune 12346
// playing on out, whose HTTP requests go over link.
func clusterOverLink(t *testing.T, out *oto.Output, link http.RoundTripper) (*rig.Controller, *rig.Node) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	n := rig.StartNode(t, c.CreateNode("tien-thang-01", "12346"), rig.NodeOptions{
		Output: out,
		Tune:   func(ac *agent.Config) { ac.HTTPClient = &http.Client{Transport: link} },
	})
	return c, n
}

// playedAndFetched checks that each part of the template came out as it
// was delivered, and that the delivery completed saying the message was
// fetched.
func playedAndFetched(t *testing.T, c *rig.Controller, em loaxa.Emergency, parts ...alsatest.Match) {
	t.Helper()
	for _, m := range parts {
		if m.Score < 0.99 {
			t.Errorf("a part of the template correlates %.4f with what was delivered, want ≥ 0.99", m.Score)
		}
	}
	rig.Eventually(t, 15*time.Second, "the delivery completed and says the message was fetched", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
		return rep.Summary.Completed == 1 && len(rep.Nodes) == 1 && rep.Nodes[0].Fetched
	})
}
