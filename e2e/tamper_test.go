package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// tamperLink is a cluster's plain-HTTP link through a network that
// changes bytes: the first download of one content's audio comes at
// 16 KB/s (twice the rate node audio plays at, so the cluster plays it as
// it arrives) with bytes from..from+n flipped, and stops for a while at
// holdAt, past them but before their chunk's end, until heard returns
// true or 5 s have passed; later downloads come whole and unchanged. A
// cluster that played bytes before checking them would play the changed
// ones during the stop.
type tamperLink struct {
	content  atomic.Pointer[string]
	listLen  int64 // bytes of the content's chunk list
	from, n  int64 // of the audio
	holdAt   int64
	heard    func() bool
	tampered atomic.Int64 // bytes changed on the way
	requests atomic.Int32
}

func (l *tamperLink) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	id := l.content.Load()
	if err != nil || id == nil || !strings.HasSuffix(r.URL.Path, "/"+*id+"/audio") {
		return resp, err
	}
	if l.requests.Add(1) == 1 {
		b := &tamperBody{body: resp.Body, link: l, done: r.Context().Done()}
		if resp.Header.Get("Content-Type") == protocol.ChunkedAudioType {
			b.off = -l.listLen // the chunk list comes first, unchanged
		}
		resp.Body = b
	}
	return resp, nil
}

type tamperBody struct {
	body io.ReadCloser
	link *tamperLink
	off  int64 // in the audio; negative in the chunk list in front
	done <-chan struct{}
}

func (b *tamperBody) Read(p []byte) (int, error) {
	if b.off == b.link.holdAt {
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !b.link.heard(); {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-b.done:
				return 0, io.ErrUnexpectedEOF
			}
		}
	}
	select {
	case <-time.After(125 * time.Millisecond): // 2 KB per 125 ms
	case <-b.done:
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), 2048)
	if b.off < b.link.holdAt {
		k = min(k, int(b.link.holdAt-b.off))
	}
	n, err := b.body.Read(p[:k])
	for i := range n {
		if at := b.off + int64(i); at >= b.link.from && at < b.link.from+b.link.n {
			p[i] ^= 0x5a
			b.link.tampered.Add(1)
		}
	}
	b.off += int64(n)
	return n, err
}

func (b *tamperBody) Close() error { return b.body.Close() }

// recordingOutput plays in real time like the simulator's silent output
// and keeps the PCM of each play.
type recordingOutput struct {
	mu    sync.Mutex
	plays [][]byte
	lead  int64 // bytes of the play's lead-in still to come, not recorded
}

// Play records what pcm plays after the silence of a lead-in (a play
// begun ahead of its instant, agent.PlayOffset < 0): the play's audio.
func (o *recordingOutput) Play(ctx context.Context, pcm io.Reader) error {
	o.mu.Lock()
	o.plays = append(o.plays, nil)
	o.lead = nodeaudio.Bytes(-min(agent.PlayOffset(ctx), 0))
	o.mu.Unlock()
	return audio.NewNone(nil).Play(ctx, io.TeeReader(pcm, o))
}

func (o *recordingOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(b)
	skip := min(o.lead, int64(len(b)))
	b, o.lead = b[skip:], o.lead-skip
	o.plays[len(o.plays)-1] = append(o.plays[len(o.plays)-1], b...)
	return n, nil
}

func (o *recordingOutput) Close() error { return nil }

func (o *recordingOutput) Plays() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([][]byte, len(o.plays))
	for i, p := range o.plays {
		out[i] = bytes.Clone(p)
	}
	return out
}

// sounding returns the samples of PCM that are not silent: a play that
// waited for its message has silence where the template has none.
func sounding(pcm []byte) []int16 {
	var out []int16
	for i := 0; i+1 < len(pcm); i += 2 {
		if v := int16(binary.LittleEndian.Uint16(pcm[i:])); v != 0 {
			out = append(out, v)
		}
	}
	return out
}

// TestTamperedDownloadNeverSounds: a controller without TLS, and a network
// between it and a cluster that changes 2 KB in the middle of an alert's
// new message as the cluster downloads it, fast enough to play as it
// arrives. The cluster plays the opening chime and the checked first
// chunk of the message, stops at the changed chunk (suspended,
// content-missing) without a sample of it reaching the speaker, fetches
// the message again and plays the alert from the beginning, whole.
func TestTamperedDownloadNeverSounds(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	// 2 KB changed early in the message's second chunk; the link stops
	// 6 KB after them until the speaker had them or 5 s passed.
	link := &tamperLink{from: protocol.ChunkSize + 1000, n: 2048, holdAt: protocol.ChunkSize + 9000}
	out := &recordingOutput{}
	n := rig.StartNode(t, c.CreateNode("tien-thang-01", "12346"), rig.NodeOptions{
		Output: out,
		Tune:   func(ac *agent.Config) { ac.HTTPClient = &http.Client{Transport: link} },
	})
	c.AwaitKept(n, 15*time.Second)
	message := c.Upload("canh-bao.wav", rig.ToneWAV(523, 4*time.Second, 16000, 1))
	if message.Size <= link.from+link.n || message.Chunks == "" {
		t.Fatalf("message of %d bytes, chunks %q: want one past the changed bytes, with a chunk list", message.Size, message.Chunks)
	}
	// Heard: the output played the opening chime and the message up to
	// the end of the ADPCM block the changed bytes end in (known once the
	// alert names its chime). The link changes the message from its first
	// request on, so it is set before the alert is sent.
	var upTo atomic.Int64
	link.heard = func() bool {
		p := out.Plays()
		return upTo.Load() > 0 && len(p) > 0 && int64(len(p[0])) >= upTo.Load()
	}
	link.listLen = int64(protocol.Chunks(message.Size) * protocol.ChunkHashSize)
	link.content.Store(&message.ID)
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": message.ID, "targets": []string{"12346"}, "repeat": 1, "drill": true}, &em)
	upTo.Store(int64(len(c.NodeAudio(em.OpeningChime))*2) + (link.from+link.n-nodeaudio.HeaderSize)/nodeaudio.BlockAlign*nodeaudio.SamplesPerBlock*2 + nodeaudio.SamplesPerBlock*2)
	var template []byte
	for _, id := range []string{em.OpeningChime, message.ID, em.ClosingChime} {
		for _, s := range c.NodeAudio(id) {
			template = binary.LittleEndian.AppendUint16(template, uint16(s))
		}
	}
	want := sounding(template)

	// The first play, stopped at the changed chunk: what it sounded is the
	// template's beginning.
	rig.Eventually(t, 30*time.Second, "a second play begun", func() bool { return len(out.Plays()) >= 2 })
	if link.tampered.Load() == 0 {
		t.Fatal("the network changed no byte of the message: the test did not tamper")
	}
	first := sounding(out.Plays()[0])
	if len(first) == 0 || len(first) >= len(want) || !slices.Equal(first, want[:len(first)]) {
		t.Errorf("the stopped play sounded %d samples; want fewer than the template's %d and the same as its first ones: no changed byte played", len(first), len(want))
	}

	rig.Eventually(t, 45*time.Second, "the alert completed", func() bool { return report(c, em.ID).Summary.Completed == 1 })
	var types []string
	for _, e := range c.Events(url.Values{"node": {"tien-thang-01"}}) {
		if e.Occurrence == em.Occurrence && e.Type != protocol.EventReceived && e.Type != protocol.EventContentReady {
			types = append(types, string(e.Type)+" "+e.Reason)
		}
	}
	if want := []string{"started ", "suspended content-missing", "started ", "completed "}; strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("events %q, want %q: the changed chunk stops the play, which plays again once the message is cached", types, want)
	}
	plays := out.Plays()
	if len(plays) != 2 || !slices.Equal(sounding(plays[1]), want) {
		t.Errorf("the output got %d plays; want the stopped one and then the template, whole", len(plays))
	}
	t.Logf("the stopped play sounded %.2f s of the template's %.2f s; %d bytes changed on the way", float64(len(first))/16000, float64(len(want))/16000, link.tampered.Load())
}
