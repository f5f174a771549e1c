package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// firstSampleOutput is audio.None that notes, for each play, when Play was
// called and when the output first read the play's audio: the first sample
// handed to the output.
type firstSampleOutput struct {
	*audio.None
	mu sync.Mutex
	// clock is the agent's corrected clock: the instants are on it.
	clock func() time.Time
	plays []firstSample
}

type firstSample struct {
	start  time.Time // the occurrence's start
	called time.Time // Play called
	// got is when the first sample of the play's audio is handed to the
	// output: its first Read returned, plus the lead-in's silence.
	got time.Time
}

func (o *firstSampleOutput) Play(ctx context.Context, pcm io.Reader) error {
	o.mu.Lock()
	now := o.clock
	o.mu.Unlock()
	f := firstSample{called: now()}
	if occ, ok := agent.PlayOccurrence(ctx); ok {
		f.start = occ.Start
	}
	// A play begun a lead-in ahead of its instant hands the output its
	// audio's first sample after that much silence, in the output's time.
	lead := -min(agent.PlayOffset(ctx), 0)
	return o.None.Play(ctx, &firstRead{r: pcm, got: func() {
		f.got = now().Add(lead)
		o.mu.Lock()
		o.plays = append(o.plays, f)
		o.mu.Unlock()
	}})
}

func (o *firstSampleOutput) taken() []firstSample {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.plays)
}

type firstRead struct {
	r    io.Reader
	got  func()
	done bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if !f.done {
		f.done = true
		f.got()
	}
	return n, err
}

// BenchmarkStartToFirstSample measures, on the real clock, how long the
// agent takes from a play's scheduled instant to the first sample handed
// to its output, for scheduled bulletins and for emergency alerts with
// their opening chime, each prepared ahead as in service:
// LOAXA_START_PLAYS plays of each kind (default 10) a run, with
// LOAXA_START_BUSY goroutines spinning meanwhile (CPU contention in the
// agent's process; run it under taskset or beside busy loops for
// contention from outside). Run it with -benchtime 1x; see BENCHMARKS.md.
func BenchmarkStartToFirstSample(b *testing.B) {
	plays, _ := strconv.Atoi(os.Getenv("LOAXA_START_PLAYS"))
	if plays <= 0 {
		plays = 10
	}
	busy, _ := strconv.Atoi(os.Getenv("LOAXA_START_BUSY"))
	for b.Loop() {
		startToFirstSample(b, plays, busy)
	}
}

// startToFirstSample is one run of BenchmarkStartToFirstSample.
func startToFirstSample(b *testing.B, plays, busy int) {
	ctl := nodetest.NewController(b, nodetest.StartBroker(b))
	var out *firstSampleOutput
	n := startAgent(b, ctl.Credentials("n1", "x1", "d1"), options{tune: func(c *agent.Config) {
		out = &firstSampleOutput{None: audio.NewNone(nil)}
		c.Output = out
		// Formatted as the node logs, not into the test's log.
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}})
	out.mu.Lock()
	out.clock = n.a.Clock().Now
	out.mu.Unlock()
	waitConnected(b, n)
	waitMeasured(b, n)

	msg := ctl.AddContent(200 * time.Millisecond)
	chime := ctl.AddContent(700 * time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	var spin sync.WaitGroup
	for range busy {
		spin.Go(func() {
			for x := 0; ctx.Err() == nil; x++ {
				_ = x * x
			}
		})
	}
	defer func() { stop(); spin.Wait() }()

	// Bulletins: one desired state, a play every 1.2 s (each prepared a
	// warm-up ahead while nothing plays).
	first := time.Now().Add(2 * time.Second)
	var occs []protocol.Occurrence
	for i := range plays {
		occs = append(occs, occurrence(fmt.Sprintf("b%d", i), msg, first.Add(time.Duration(i)*1200*time.Millisecond)))
	}
	ctl.PublishDesired(desired("n1", 1, occs, msg, chime))
	nodetest.Eventually(b, time.Duration(plays)*2*time.Second+10*time.Second, "the bulletins played", func() bool {
		return len(out.taken()) >= plays
	})
	report(b, "bulletin", out.taken()[:plays], busy, "bulletin")

	// Alerts with their opening chime, one after the other, each sent 3 s
	// before its start (prepared on receipt).
	for i := range plays {
		start := time.Now().Add(3 * time.Second)
		cmd := alert(fmt.Sprintf("e%d@x", i), msg, chime, protocol.ContentRef{}, start, start.Add(time.Minute))
		cmd.Alert.Occurrence.Repeat, cmd.Alert.Occurrence.GapMS = 1, 0
		cmd.Alert.Content = []protocol.ContentRef{chime, msg}
		ctl.SendAreaCommand("x1", cmd, time.Minute)
		nodetest.Eventually(b, 30*time.Second, "the alert played", func() bool { return len(out.taken()) >= plays+i+1 })
		nodetest.Eventually(b, 30*time.Second, "the alert completed", func() bool { return n.a.Status().Playing == nil })
	}
	report(b, "alert with chime", out.taken()[plays:], busy, "alert")
}

// report logs the percentiles of the plays' start times and reports the
// median and the latest start → first sample as metrics named by unit.
func report(b *testing.B, kind string, plays []firstSample, busy int, unit string) {
	var late, call, read []time.Duration
	for _, p := range plays {
		late = append(late, p.got.Sub(p.start))
		call = append(call, p.called.Sub(p.start))
		read = append(read, p.got.Sub(p.called))
	}
	q := func(d []time.Duration) string {
		slices.Sort(d)
		at := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
		return fmt.Sprintf("p50 %v p90 %v max %v", at(0.5).Round(time.Microsecond), at(0.9).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
	}
	b.Logf("%s, %d plays, GOMAXPROCS %d, %d busy goroutines: start → first sample of audio %s; start → Output.Play %s; Output.Play → first sample of audio %s",
		kind, len(plays), runtime.GOMAXPROCS(0), busy, q(late), q(call), q(read))
	b.ReportMetric(float64(late[len(late)/2].Microseconds()), unit+"-p50-µs")
	b.ReportMetric(float64(late[len(late)-1].Microseconds()), unit+"-max-µs")
}
