package agent_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
)

// TestClockMeasuredOnALinkThatHolds: a link whose connections neither
// answer nor fail held each time request of the first measurement for
// 10 s, four of them 40 s, while what waits for the measurement (held
// acknowledgements, alerts kept aside) waited too. A request now waits 5 s
// of the board's clock and the next one goes on a new connection; a
// measurement ends after 10 s with what came in time.
func TestClockMeasuredOnALinkThatHolds(t *testing.T) {
	for _, tc := range []struct {
		name string
		held int32 // time requests that hang
	}{
		{"one connection held", 1},
		{"every connection held", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clock.NewFake(time.Now())
			ctl := nodetest.NewController(t, nodetest.StartBroker(t))
			ctl.Clock = func() time.Time { return fc.Now().Add(time.Hour) }
			target, err := url.Parse(ctl.HTTP.URL)
			if err != nil {
				t.Fatal(err)
			}
			forward := httputil.NewSingleHostReverseProxy(target)
			release := make(chan struct{})
			var asked atomic.Int32
			link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v1/time" && asked.Add(1) <= tc.held {
					select { // neither an answer nor a close
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				forward.ServeHTTP(w, r)
			}))
			t.Cleanup(link.Close)
			t.Cleanup(sync.OnceFunc(func() { close(release) })) // runs first
			cred := ctl.Credentials("n1", "x1")
			cred.Controller = link.URL
			logs := &syncBuffer{}
			n := startAgent(t, cred, options{clock: fc, tune: func(c *agent.Config) {
				c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter(t)), nil))
			}})
			measured := func() bool { return n.a.Status().ClockUncertaintyUS > 0 }

			nodetest.Eventually(t, 10*time.Second, "the first time request made", func() bool { return asked.Load() == 1 })
			fc.Advance(5 * time.Second)
			if tc.held == 1 {
				// Nothing else moves the board's clock: the request on a
				// new connection measures, well within the 10 s the old
				// wait took on the real clock.
				nodetest.Eventually(t, 5*time.Second, "the clock measured on a new connection", measured)
				if got := n.a.Clock().Get(); (got - time.Hour).Abs() > time.Second {
					t.Errorf("offset %v, want the controller's hour", got)
				}
				return
			}
			nodetest.Eventually(t, 5*time.Second, "a second time request on a new connection", func() bool { return asked.Load() == 2 })
			fc.Advance(5 * time.Second)
			nodetest.Eventually(t, 5*time.Second, "the measurement given up after 10 s", func() bool {
				return strings.Contains(logs.String(), "clock offset not measured")
			})
			// (The connect's own measurement may follow at once, on the
			// same link.)
			if log := logs.String(); measured() || !strings.Contains(log, "2 attempts failed") || !strings.Contains(log, "no answer within 5s") {
				t.Errorf("measured %v; want nothing measured, and the log to say the measurement gave up after the two requests that fit in the 10 s, each waited 5 s", measured())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogWriter(t *testing.T) io.Writer { return tWriter{t} }
