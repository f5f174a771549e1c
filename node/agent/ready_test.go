package agent_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestReportsContentReady checks the content-ready events: one per
// occurrence, right after received when the content is cached already,
// later when it arrives later, never for content that never comes (that
// occurrence fails content-missing at the end of its grace), and the
// state's cache figures.
func TestReportsContentReady(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	early := ctl.AddContent(100 * time.Millisecond)
	late := ctl.AddContent(200 * time.Millisecond)
	never := ctl.AddContent(300 * time.Millisecond)
	var hold atomic.Bool
	hold.Store(true)
	ctl.ContentHook = func(w http.ResponseWriter, r *http.Request) bool {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/content/"), "/audio")
		if id == never.ID || id == late.ID && hold.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	n := startAgent(t, cred, options{})
	waitConnected(t, n)

	start := time.Now().Add(time.Hour)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{
		occurrence("o-early", early, start),
		occurrence("o-late", late, start.Add(time.Minute)),
		occurrence("o-early-again", early, start.Add(2*time.Minute)),
		occurrence("o-never", never, start.Add(3*time.Minute)),
	}, early, late, never))
	nodetest.Eventually(t, 10*time.Second, "early content ready", func() bool {
		return slices.Equal(nodetest.ReadySummary(ctl.Events("n1")), []string{"o-early", "o-early-again"})
	})
	hold.Store(false)
	nodetest.Eventually(t, 10*time.Second, "late content ready", func() bool {
		return slices.Equal(nodetest.ReadySummary(ctl.Events("n1")), []string{"o-early", "o-early-again", "o-late"})
	})
	// Content is ready once it can play, which may be while its last
	// bytes are checked (played as it arrives): the state says cached
	// a moment later.
	nodetest.Eventually(t, 10*time.Second, "late content cached", func() bool {
		return len(n.a.Status().ContentMissing) == 1
	})
	st := n.a.Status()
	if !slices.Equal(st.ContentMissing, []string{never.ID}) {
		t.Errorf("ContentMissing = %v, want the one never served", st.ContentMissing)
	}
	if want := early.Size + late.Size; st.CacheBytes != want || st.CacheLimit <= want {
		t.Errorf("cache %d of %d bytes, want %d", st.CacheBytes, st.CacheLimit, want)
	}
	// Each content-ready comes after its occurrence's received.
	seen := map[string]bool{}
	for _, e := range ctl.Events("n1") {
		switch e.Type {
		case protocol.EventReceived:
			seen[e.Occurrence] = true
		case protocol.EventContentReady:
			if !seen[e.Occurrence] || e.Content == "" {
				t.Errorf("content-ready %s (content %q) before its received", e.Occurrence, e.Content)
			}
		}
	}
}

// TestAlertFetchedBeforeItsReceiptStepIsReportedFetched: an alert comes
// whose message the node does not have, and the message is fetched
// before the main loop's next step (a loaded board: the loop was
// descheduled while the download ran). The step reported the alert
// received and its content ready at the step's one instant, and the
// controller read the node as one that had the message when the alert
// came: its report never said fetched (TestAlertDoesNotWaitForABulletinDownload
// waited for it in vain under the full suite's load). The received event
// says when the alert came, the content-ready one when the step found the
// message, after it; a message cached before the alert came is still
// reported ready at its receipt.
func TestAlertFetchedBeforeItsReceiptStepIsReportedFetched(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cached := ctl.AddContent(250 * time.Millisecond)
	msg := ctl.AddContent(300 * time.Millisecond)
	opening := ctl.AddContent(200 * time.Millisecond)
	closing := ctl.AddContent(150 * time.Millisecond)
	loop := &holdingLog{hold: "agent: emergency alert", until: "content: cached", content: msg.ID, done: make(chan struct{})}
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{tune: func(c *agent.Config) {
		c.Logger = slog.New(loop.handler(c.Logger.Handler()))
		c.ContentKeepSpread = time.Millisecond
	}})
	waitConnected(t, n)
	ctl.PublishDesired(desired("n1", 1, nil, opening, closing, cached))
	nodetest.Eventually(t, 10*time.Second, "the chimes and the kept message cached", func() bool {
		st := n.a.Status()
		return st.DesiredVersion == 1 && st.CacheBytes > 0 && len(st.ContentMissing) == 0
	})
	loop.armed.Store(true)
	start := time.Now().Add(300 * time.Millisecond)
	ctl.SendAreaCommand("x1", resumingAlert("e1@x", msg, opening, closing, start, start.Add(time.Minute)), time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "completed e1@x"})
	select {
	case <-loop.done:
	default:
		t.Fatal("the main loop was not held until the message was cached: the test did not make the order it is about")
	}
	loop.armed.Store(false)
	later := time.Now().Add(300 * time.Millisecond)
	ctl.SendAreaCommand("x1", resumingAlert("e2@x", cached, opening, closing, later, later.Add(time.Minute)), time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "completed e1@x", "received e2@x", "started e2@x", "completed e2@x"})

	at := map[string]time.Time{}
	for _, e := range ctl.Events("n1") {
		if e.Type == protocol.EventReceived || e.Type == protocol.EventContentReady {
			at[string(e.Type)+" "+e.Occurrence] = e.At
		}
	}
	if r, ok := at["content-ready e1@x"]; !ok || !r.After(at["received e1@x"]) {
		t.Errorf("fetched message: received at %s, content-ready at %s (reported: %t); want content-ready after received",
			at["received e1@x"].Format(time.RFC3339Nano), r.Format(time.RFC3339Nano), ok)
	}
	if r, ok := at["content-ready e2@x"]; !ok || !r.Equal(at["received e2@x"]) {
		t.Errorf("message cached before the alert: received at %s, content-ready at %s (reported: %t); want the same instant",
			at["received e2@x"].Format(time.RFC3339Nano), r.Format(time.RFC3339Nano), ok)
	}
}

// holdingLog is the agent's log on a loaded board: once armed, the
// goroutine that logs hold (the main loop, taking an alert) is held until
// the log has said until about content, or for 10 s.
type holdingLog struct {
	hold, until, content string
	armed                atomic.Bool
	once                 sync.Once
	done                 chan struct{} // closed once until is logged
}

// handler returns a slog.Handler that logs to next, held by h.
func (h *holdingLog) handler(next slog.Handler) slog.Handler { return &holdingHandler{h, next} }

type holdingHandler struct {
	log  *holdingLog
	next slog.Handler
}

func (v *holdingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return v.next.Enabled(ctx, l)
}

func (v *holdingHandler) Handle(ctx context.Context, r slog.Record) error {
	h := v.log
	switch {
	case !h.armed.Load():
	case r.Message == h.until:
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "content" && a.Value.String() == h.content {
				h.once.Do(func() { close(h.done) })
			}
			return true
		})
	case r.Message == h.hold:
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
		}
	}
	return v.next.Handle(ctx, r)
}

func (v *holdingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &holdingHandler{v.log, v.next.WithAttrs(as)}
}

func (v *holdingHandler) WithGroup(name string) slog.Handler {
	return &holdingHandler{v.log, v.next.WithGroup(name)}
}
