package agent_test

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
