package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// fakeClockController returns a test controller whose clock and signer run
// on fc, so that the agent's offset to it is zero.
func fakeClockController(t *testing.T, fc *clock.Fake) *nodetest.Controller {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.Clock = fc.Now
	ctl.Signer = protocol.NewSigner("controller", ctl.Key, 0, fc.Now)
	return ctl
}

// runUntil advances fc in 100 ms steps (the output's chunk) until cond
// holds, failing after limit of fake time. Each step waits for the output
// to take its chunk, so the fake time a play lasts is its length.
//
// Once limit has passed, it waits up to afterLimit of real time, the
// clock standing still, before it fails: what cond looks at (events the
// controller holds) comes over the broker, a real round trip that does
// not follow the fake clock. A step takes a millisecond, so on a busy
// machine the fake time ran out while the last event was on its way.
func runUntil(t *testing.T, fc *clock.Fake, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := fc.Now().Add(limit)
	for !cond() {
		if fc.Now().After(end) {
			for deadline := time.Now().Add(afterLimit); !cond(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("after %v of fake time (and %v more of real time) still waiting for: %s", limit, afterLimit, what)
				}
			}
			return
		}
		fc.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond) // let the agent run; outcomes do not depend on it
	}
}

// afterLimit is how long runUntil waits in real time once its fake time
// is up, for what the node did in it to arrive.
const afterLimit = 5 * time.Second

// TestPreemptsAndResumesOnFakeClock: a normal bulletin played three times
// with gaps is cut off by a priority one; it plays again from the
// beginning afterwards and completes; the played times are exact.
func TestPreemptsAndResumesOnFakeClock(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 9, 22, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{clock: fc})
	waitConnected(t, n)

	news := ctl.AddContent(2 * time.Second)
	flood := ctl.AddContent(time.Second)
	chime := ctl.AddContent(500 * time.Millisecond)
	start := fc.Now().Add(time.Minute)
	o1 := occurrence("news", news, start)
	o1.Repeat, o1.GapMS, o1.OpeningChime = 3, 1000, chime.ID // 0.5 + 2+1+2+1+2 = 8.5 s
	o2 := occurrence("flood", flood, start.Add(3*time.Second))
	o2.Priority = protocol.PriorityHigh
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{o1, o2}, news, flood, chime))
	waitEvents(t, ctl, "n1", []string{"received news", "received flood"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received news", "received flood", "started news"})
	// One jump to the priority bulletin's start, so that the cut happens
	// at that instant whatever the scheduling of goroutines.
	fc.Set(start.Add(3 * time.Second))
	waitEvents(t, ctl, "n1", []string{"received news", "received flood", "started news", "suspended news preempted", "started flood"})
	runUntil(t, fc, 30*time.Second, "both completed", func() bool {
		return len(nodetest.Summary(ctl.Events("n1"))) >= 8
	})
	events := waitEvents(t, ctl, "n1", []string{"received news", "received flood",
		"started news", "suspended news preempted", "started flood", "completed flood", "started news", "completed news"})
	if got := events[3].At.Sub(start); got != 3*time.Second {
		t.Errorf("news cut off %v after its start, want 3s", got)
	}
	if events[4].LateMS != 0 {
		t.Errorf("flood started %d ms late", events[4].LateMS)
	}
	if events[5].PlayedMS != 1000 || events[7].PlayedMS != 8500 {
		t.Errorf("played %d ms of flood and %d ms of news, want 1000 and 8500", events[5].PlayedMS, events[7].PlayedMS)
	}
	if events[6].At.Before(events[5].At) {
		t.Errorf("news resumed at %v, before flood ended at %v", events[6].At, events[5].At)
	}
}

// TestRestartResumes: the board loses power while a bulletin plays; after
// the restart it plays again from the beginning, then the rest of the
// session follows, from what the store remembered.
func TestRestartResumes(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n)

	a := ctl.AddContent(3 * time.Second)
	b := ctl.AddContent(time.Second)
	start := fc.Now().Add(time.Minute)
	o1, o2 := occurrence("first", a, start), occurrence("second", b, start.Add(3*time.Second))
	o1.PlayBy, o2.PlayBy = start.Add(15*time.Minute), start.Add(15*time.Minute) // one session
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{o1, o2}, a, b))
	waitEvents(t, ctl, "n1", []string{"received first", "received second"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received first", "received second", "started first"})
	fc.Advance(time.Second)
	n.stop(t)
	fc.Advance(5 * time.Minute) // the board is off for five minutes

	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n2)
	want := []string{"received first", "received second", "started first", "suspended first interrupted",
		"started first", "completed first", "started second", "completed second"}
	runUntil(t, fc, time.Minute, "session finished", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	if events[6].LateMS < (5 * time.Minute).Milliseconds() {
		t.Errorf("second started %d ms late; it should have waited for first to play again", events[6].LateMS)
	}
}

// TestContentMissingFailsAfterGrace: content the controller never serves
// fails the occurrence once its grace is over, because the node knew of it
// in time to fetch it. On a fake clock, so how long the desired state takes
// to arrive cannot turn it into missed too-late.
func TestContentMissingFailsAfterGrace(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 3, 11, 5, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{clock: fc})
	waitConnected(t, n)
	absent := protocol.ContentRef{ID: "00000000000000000000000000000000000000000000000000000000000000aa", Size: 100}
	start := fc.Now().Add(time.Minute)
	d := desired("n1", 1, []protocol.Occurrence{occurrence("nocontent", absent, start)}, absent)
	d.Config.LateGraceMS = 300
	ctl.PublishDesired(d)
	waitEvents(t, ctl, "n1", []string{"received nocontent"})
	nodetest.Eventually(t, 5*time.Second, "missing content not reported", func() bool {
		return slices.Equal(n.a.Status().ContentMissing, []string{absent.ID})
	})
	fc.Set(start.Add(301 * time.Millisecond))
	waitEvents(t, ctl, "n1", []string{"received nocontent", "failed nocontent content-missing"})
}

// exclusiveOutput plays as audio.None does and notes every play that
// began while another was still being played: on the sound device the
// two would be mixed.
type exclusiveOutput struct {
	*audio.None
	mu       sync.Mutex
	playing  []string
	overlaps []string
}

func (o *exclusiveOutput) Play(ctx context.Context, pcm io.Reader) error {
	occ, _ := agent.PlayOccurrence(ctx)
	o.mu.Lock()
	if len(o.playing) > 0 {
		o.overlaps = append(o.overlaps, fmt.Sprintf("%s began while %v played", occ.ID, o.playing))
	}
	o.playing = append(o.playing, occ.ID)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.playing = slices.DeleteFunc(o.playing, func(id string) bool { return id == occ.ID })
		o.mu.Unlock()
	}()
	return o.None.Play(ctx, pcm)
}

func (o *exclusiveOutput) Overlaps() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.overlaps)
}

// TestPreemptingPlayBeginsAfterTheCutOneStopped: a priority bulletin cuts
// a normal one off and an emergency cuts the priority one off, each
// beginning on its own at its instant. The output never plays two at
// once: the play cut off has stopped before the one cutting in gives the
// output its first sample (with a sound device the two were mixed until
// the agent's main loop got round to stopping the first: an alert's
// opening chime over the bulletin). Each cut play is reported preempted
// and played again afterwards.
func TestPreemptingPlayBeginsAfterTheCutOneStopped(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	out := &exclusiveOutput{None: audio.NewNone(clock.Real{})}
	n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Output = out }})
	waitConnected(t, n)

	ref := ctl.AddContent(1500 * time.Millisecond)
	start := time.Now().Add(1500 * time.Millisecond)
	news := occurrence("news", ref, start)
	flood := occurrence("flood", ref, start.Add(500*time.Millisecond))
	flood.Priority = protocol.PriorityHigh
	alarm := occurrence("alarm", ref, start.Add(time.Second))
	alarm.Priority = protocol.PriorityEmergency
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{news, flood, alarm}, ref))
	waitEvents(t, ctl, "n1", []string{"received news", "received flood", "received alarm",
		"started news", "suspended news preempted", "started flood", "suspended flood preempted", "started alarm", "completed alarm",
		"started flood", "completed flood", "started news", "completed news"})
	if o := out.Overlaps(); len(o) > 0 {
		t.Errorf("plays overlapped on the output: %v", o)
	}
}

// TestAlertDoesNotWaitForAStalledStation: a relay whose station sent its
// headers and then nothing is on air, the output waiting in a read of
// the station (audio.None, as the firmware-sim fleet plays, waits for the
// read under way; oto does not). An emergency preempts it at its start:
// the station's stream is closed as the relay is cut off, so the alert
// begins at once. Before, the alert's output waited for that read, which
// a stalled station ends only after its stall timeout and retries
// (relay.DefaultStallTimeout, DefaultRetries: over 40 s).
func TestAlertDoesNotWaitForAStalledStation(t *testing.T) {
	station := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer station.Close()
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{})
	waitConnected(t, n)

	ref := ctl.AddContent(500 * time.Millisecond)
	start := time.Now().Add(time.Second)
	vov := protocol.Occurrence{ID: "vov", Announcement: "relay", Priority: protocol.PriorityBackground,
		Start: start.UTC(), DurationMS: 60_000, Stream: station.URL + "/vov1"}
	alarm := occurrence("alarm", ref, start.Add(1500*time.Millisecond))
	alarm.Priority = protocol.PriorityEmergency
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{vov, alarm}, ref))
	// waitEvents gives up after 15 s, well before the stalled read ends.
	waitEvents(t, ctl, "n1", []string{"received vov", "received alarm", "started vov",
		"suspended vov preempted", "started alarm", "completed alarm", "started vov"})
	// The agent stops without waiting for the station either.
	stopped := time.Now()
	n.stop(t)
	t.Logf("agent stopped in %v with the relay on air", time.Since(stopped).Round(time.Millisecond))
}
