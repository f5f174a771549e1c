package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// slowLink is a node's HTTP link on which the download of one content
// stalls after its first bytes, as tomorrow's bulletin does over a weak 4G
// link: the rest arrives only on a later request. It records each
// request's content path and Range header.
type slowLink struct {
	base    http.RoundTripper
	content string // the content id whose first download stalls

	mu       sync.Mutex
	requests []string
	stalled  bool
	gaveUp   chan struct{} // closed when the stalled download is abandoned
}

func (l *slowLink) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.requests = append(l.requests, r.URL.Path+" "+r.Header.Get("Range"))
	stall := !l.stalled && strings.Contains(r.URL.Path, l.content)
	if stall {
		l.stalled = true
	}
	l.mu.Unlock()
	resp, err := l.base.RoundTrip(r)
	if err != nil || !stall {
		return resp, err
	}
	// Several chunks (16 KiB each, the list in front): a resume asks from
	// the last whole chunk it had.
	resp.Body = &stallingBody{body: resp.Body, left: 64 << 10, done: r.Context().Done(), gaveUp: l.gaveUp}
	return resp, nil
}

func (l *slowLink) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...)
}

// stallingBody passes its first left bytes, then nothing until the
// request is abandoned.
type stallingBody struct {
	body   io.ReadCloser
	left   int
	done   <-chan struct{}
	gaveUp chan struct{}
	once   sync.Once
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.left > 0 {
		n, err := b.body.Read(p[:min(len(p), b.left)])
		b.left -= n
		return n, err
	}
	<-b.done
	b.once.Do(func() { close(b.gaveUp) })
	return 0, io.ErrUnexpectedEOF
}

func (b *stallingBody) Close() error { return b.body.Close() }

// TestAlertDoesNotWaitForABulletinDownload: a cluster is slowly
// downloading this evening's bulletin when an alert comes whose message
// it does not have (typed a moment ago). The bulletin's download makes
// way: the alert is fetched and sounds while the bulletin would still be
// stalled, and the bulletin resumes afterwards from the bytes it had.
func TestAlertDoesNotWaitForABulletinDownload(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	bulletin := c.Upload("ban-tin-toi.wav", rig.ToneWAV(440, 60*time.Second, 16000, 1))
	link := &slowLink{base: http.DefaultTransport, content: bulletin.ID, gaveUp: make(chan struct{})}
	n := rig.StartNode(t, c.CreateNode("tien-thang-01", "12346"), rig.NodeOptions{
		ContentSpread: time.Millisecond,
		Tune:          func(ac *agent.Config) { ac.HTTPClient = &http.Client{Transport: link} },
	})
	rig.Eventually(t, 15*time.Second, "the cluster online", func() bool { return c.Node("tien-thang-01").Status.State == loaxa.NodeOnline })
	c.Announce(bulletin.ID, []string{"12346"}, nil, time.Now().Add(4*time.Hour))
	rig.Eventually(t, 20*time.Second, "the bulletin's download under way", func() bool {
		for _, r := range link.log() {
			if strings.Contains(r, bulletin.ID) {
				return true
			}
		}
		return false
	})

	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "repeat": 1, "drill": true}, &em)
	rig.Eventually(t, 20*time.Second, "the cluster plays the alert", func() bool { return playing(n) == em.Occurrence })
	select {
	case <-link.gaveUp:
	default:
		t.Error("the alert plays, but the bulletin's download was never paused for it")
	}
	rig.Eventually(t, 30*time.Second, "the bulletin cached after the alert", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
	var order []string
	for _, r := range link.log() {
		switch {
		case strings.Contains(r, bulletin.ID):
			order = append(order, "bulletin "+r[strings.Index(r, " ")+1:])
		case strings.Contains(r, alarm.ID):
			order = append(order, "alarm")
		}
	}
	if len(order) != 3 || order[0] != "bulletin " || order[1] != "alarm" || !strings.HasPrefix(order[2], "bulletin bytes=") || order[2] == "bulletin bytes=0-" {
		t.Errorf("downloads %q, want the bulletin, the alarm, then the bulletin from where it stopped", order)
	}
	// The cluster's reports of the alert reach the controller in their
	// own time: the report says fetched once they have.
	rig.Eventually(t, 30*time.Second, "the report says the cluster fetched the alarm", func() bool {
		rep := report(c, em.ID)
		return len(rep.Nodes) == 1 && rep.Nodes[0].Fetched
	})
}

// TestStandingContentSoundsWithoutDownload: a commune keeps its flood
// warning on its clusters (standing content); the cluster fetches it, and
// the emergency chimes, before any alert; the console's list says the
// cluster has it; an alert with it then sounds with no download at all.
func TestStandingContentSoundsWithoutDownload(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	link := &slowLink{base: http.DefaultTransport, gaveUp: make(chan struct{})}
	n := rig.StartNode(t, c.CreateNode("tien-thang-01", "12346"), rig.NodeOptions{
		ContentSpread: time.Millisecond,
		Tune:          func(ac *agent.Config) { ac.HTTPClient = &http.Client{Transport: link} },
	})
	warning := c.Upload("canh-bao-lu.wav", rig.ToneWAV(660, 2*time.Second, 16000, 1))
	c.MustDo("PUT", "/api/v1/content/"+warning.ID+"/standing", map[string]any{"areas": []string{"12346"}}, nil)
	rig.Eventually(t, 20*time.Second, "the cluster has the warning", func() bool {
		var l struct {
			Standing []struct {
				Content      string
				Nodes, Ready int
			}
		}
		c.MustDo("GET", "/api/v1/content/standing", nil, &l)
		return len(l.Standing) == 1 && l.Standing[0].Content == warning.ID && l.Standing[0].Nodes == 1 && l.Standing[0].Ready == 1
	})
	// The chimes came with it: every desired state names them.
	var rec struct{ State protocol.DesiredState }
	c.MustDo("GET", "/api/v1/nodes/tien-thang-01/desired", nil, &rec)
	desired := rec.State
	if len(desired.Content) != 3 || len(desired.Occurrences) != 0 {
		t.Errorf("desired state: content %+v, %d occurrences; want the chimes and the warning, none", desired.Content, len(desired.Occurrences))
	}
	rig.Eventually(t, 20*time.Second, "the cluster has everything it keeps", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion == desired.Version && len(st.ContentMissing) == 0
	})
	before := len(link.log())

	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": warning.ID, "targets": []string{"12346"}, "repeat": 1, "drill": true}, &em)
	rig.Eventually(t, 30*time.Second, "the alert completed", func() bool { return report(c, em.ID).Summary.Completed == 1 })
	if after := link.log()[before:]; len(after) != 0 {
		t.Errorf("the cluster downloaded %q for the alert, want nothing", after)
	}
	if rep := report(c, em.ID); len(rep.Nodes) != 1 || rep.Nodes[0].Fetched {
		t.Errorf("report nodes %+v, want the cluster not fetching", rep.Nodes)
	}
}
