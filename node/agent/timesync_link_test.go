package agent_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
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

// TestClockRetriedOnTheBoardsClock: a measurement that fails (or comes
// out uncertain) is tried again 15–45 s later. Each request's 5 s wait ran
// on the board's clock but the retry on real time, so the two disagreed
// wherever the board's clock is not the machine's: here a fake one, on
// which no retry came however far it moved. The retry now waits on the
// board's clock too: none before 15 s of it, and one once it has moved on
// (the test allows it 2 min, for the steps taken before the retry's
// timer was armed).
func TestClockRetriedOnTheBoardsClock(t *testing.T) {
	fc := clock.NewFake(time.Now())
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	var asked atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/time" {
			asked.Add(1)
		}
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	cred := ctl.Credentials("n1", "x1")
	cred.Controller = busy.URL
	// No broker: a connect measures again at once, and this test counts
	// the start's measurement alone.
	cred.Broker = "tcp://" + closedAddr(t)
	logs := &syncBuffer{}
	startAgent(t, cred, options{clock: fc, tune: func(c *agent.Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter(t)), nil))
	}})
	nodetest.Eventually(t, 10*time.Second, "the start's measurement failed", func() bool {
		return strings.Contains(logs.String(), "clock offset not measured")
	})
	if n := asked.Load(); n != 4 {
		t.Fatalf("%d time requests in the start's measurement, want its 4 samples", n)
	}
	from := fc.Now()
	// Step the board's clock a second at a time, giving the agent a few
	// real milliseconds at each step to ask.
	for asked.Load() == 4 {
		if fc.Now().Sub(from) > 2*time.Minute {
			t.Fatalf("no time request in 2 min of the board's clock after a failed measurement; want one 15–45 s after it")
		}
		fc.Advance(time.Second)
		for end := time.Now().Add(20 * time.Millisecond); asked.Load() == 4 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	// The retry's timer is armed just after the failure is logged: it
	// comes at the earliest 15 s after from, however late it was armed.
	if d := fc.Now().Sub(from); d < 15*time.Second {
		t.Errorf("measured again %v of the board's clock after a failed measurement; want 15–45 s", d)
	}
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
