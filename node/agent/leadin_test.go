package agent_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// takenOutput is audio.None that keeps what each play of an occurrence
// read, when (on the fake clock) its Play was called, and its PlayOffset.
type takenOutput struct {
	*audio.None
	clock clock.Clock
	mu    sync.Mutex
	plays []taken
}

type taken struct {
	occurrence string
	called     time.Time
	offset     time.Duration
	pcm        *bytes.Buffer
}

func (o *takenOutput) Play(ctx context.Context, pcm io.Reader) error {
	occ, ok := agent.PlayOccurrence(ctx)
	if !ok {
		return o.None.Play(ctx, pcm)
	}
	tk := taken{occurrence: occ.ID, called: o.clock.Now(), offset: agent.PlayOffset(ctx), pcm: &bytes.Buffer{}}
	o.mu.Lock()
	o.plays = append(o.plays, tk)
	o.mu.Unlock()
	return o.None.Play(ctx, io.TeeReader(pcm, &lockedWriter{mu: &o.mu, w: tk.pcm}))
}

func (o *takenOutput) taken() []taken {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.plays)
	for i := range out {
		out[i].pcm = bytes.NewBuffer(slices.Clone(out[i].pcm.Bytes()))
	}
	return out
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestPlayBeginsItsLeadInAhead: on a busy board the goroutine that begins
// a prepared play got the processor 20 ms after the play's instant at the
// median and up to 800 ms after (BENCHMARKS.md): the first sample was
// handed to the output that late, an echo of the neighbours that began on
// time. A prepared play now begins its output a lead-in ahead of its
// instant with silence up to it, so that the output's pace, not the
// wake-up, puts the first sample at the instant: with the fake clock
// standing a lead-in before the start, the output has been given the
// play, and its first sample of audio lies exactly at the start. The
// started event says it began at its start; the play's length counts its
// audio, not the silence. A scheduled bulletin and an alert with its
// opening chime (prepared on receipt) alike; an alert that preempts a
// bulletin on air begins at its instant, not a lead-in early.
func TestPlayBeginsItsLeadInAhead(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	out := &takenOutput{None: audio.NewNone(fc), clock: fc}
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc, tune: func(c *agent.Config) { c.Output = out }})
	waitConnected(t, n)

	news := ctl.AddContent(time.Second)
	msg := ctl.AddContent(time.Second)
	chime := ctl.AddContent(700 * time.Millisecond)
	start := fc.Now().Add(time.Minute)
	cut := start.Add(20 * time.Second) // after the quiet that follows an alert
	d := desired("n1", 1, []protocol.Occurrence{occurrence("news", news, start), occurrence("news2", news, cut.Add(-500*time.Millisecond))}, news)
	d.Config.Volume = protocol.MaxVolume
	ctl.PublishDesired(d)
	waitEvents(t, ctl, "n1", []string{"received news", "received news2"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	// checkLeadIn checks the play of occurrence id that began at start
	// with lead of silence ahead of its audio.
	checkLeadIn := func(id string, start time.Time, lead time.Duration, audio time.Duration) {
		t.Helper()
		i := slices.IndexFunc(out.taken(), func(tk taken) bool { return tk.occurrence == id })
		if i < 0 {
			t.Fatalf("%s not given to the output", id)
		}
		tk := out.taken()[i]
		if !tk.called.Equal(start.Add(-lead)) || tk.offset != -lead {
			t.Errorf("%s given to the output at %v with offset %v; want %v, %v before its start, with offset %v",
				id, tk.called, tk.offset, start.Add(-lead), lead, -lead)
		}
		pcm := tk.pcm.Bytes()
		silence := int(nodeaudio.Bytes(lead))
		if want := silence + int(nodeaudio.Bytes(audio)); len(pcm) != want {
			t.Fatalf("%s: the output read %d bytes, want %d (lead-in %v, audio %v)", id, len(pcm), want, lead, audio)
		}
		if !bytes.Equal(pcm[:silence], make([]byte, silence)) {
			t.Errorf("%s: the lead-in is not silence", id)
		}
		if bytes.Equal(pcm[silence:silence+200], make([]byte, 200)) {
			t.Errorf("%s: no audio right after the lead-in", id)
		}
	}

	// A bulletin: prepared a warm-up ahead, given to the output a lead-in
	// before its start.
	fc.Set(start.Add(-agent.DefaultAmplifierWarmup))
	nodetest.Eventually(t, 5*time.Second, "amplifier on a warm-up ahead", func() bool { return n.board.Snapshot().Amplifier })
	fc.Set(start.Add(-agent.LeadIn - time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.a.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	if got := out.taken(); len(got) != 0 {
		t.Fatalf("%s given to the output before its lead-in", got[0].occurrence)
	}
	fc.Set(start.Add(-agent.LeadIn))
	nodetest.Eventually(t, 5*time.Second, "the bulletin given to the output a lead-in before its start", func() bool { return len(out.taken()) == 1 })
	runUntil(t, fc, 5*time.Second, "news completed", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed news")
	})
	checkLeadIn("news", start, agent.LeadIn, time.Second)

	// An alert with its opening chime, prepared on receipt.
	alertAt := start.Add(5 * time.Second)
	fc.Set(alertAt.Add(-3 * time.Second))
	cmd := alert("e1@x", msg, chime, protocol.ContentRef{}, alertAt, alertAt.Add(time.Minute))
	cmd.Alert.Occurrence.Repeat, cmd.Alert.Occurrence.GapMS = 1, 0
	cmd.Alert.Content = []protocol.ContentRef{chime, msg}
	ctl.SendAreaCommand("x1", cmd, time.Minute)
	waitEvents(t, ctl, "n1", []string{"received news", "received news2", "started news", "completed news", "received e1@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	nodetest.Eventually(t, 5*time.Second, "amplifier on for the alert", func() bool { return n.board.Snapshot().Amplifier })
	fc.Set(alertAt.Add(-agent.LeadIn))
	nodetest.Eventually(t, 5*time.Second, "the alert given to the output a lead-in before its start", func() bool { return len(out.taken()) == 2 })
	runUntil(t, fc, 5*time.Second, "alert completed", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed e1@x")
	})
	checkLeadIn("e1@x", alertAt, agent.LeadIn, 1700*time.Millisecond)

	// An alert that preempts the bulletin on air begins at its instant:
	// nothing of the bulletin is cut off early.
	fc.Set(cut.Add(-500 * time.Millisecond))
	nodetest.Eventually(t, 5*time.Second, "news2 given to the output", func() bool { return len(out.taken()) == 3 })
	cmd = alert("e2@x", msg, chime, protocol.ContentRef{}, cut, cut.Add(time.Minute))
	cmd.Alert.Occurrence.Repeat, cmd.Alert.Occurrence.GapMS = 1, 0
	cmd.Alert.Content = []protocol.ContentRef{chime, msg}
	ctl.SendAreaCommand("x1", cmd, time.Minute)
	waitEvents(t, ctl, "n1", []string{"received news", "received news2", "started news", "completed news", "received e1@x",
		"started e1@x", "completed e1@x", "started news2", "received e2@x"})
	if err := n.a.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	fc.Set(cut.Add(-agent.LeadIn))
	if err := n.a.Alive(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(out.taken()); got != 3 {
		t.Fatalf("the alert that preempts was given to the output a lead-in before its start (%d plays)", got)
	}
	fc.Set(cut)
	nodetest.Eventually(t, 5*time.Second, "the alert given to the output at its start", func() bool { return len(out.taken()) == 4 })
	runUntil(t, fc, 5*time.Second, "e2 completed", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed e2@x")
	})
	if tk := out.taken()[3]; !tk.called.Equal(cut) || tk.offset != 0 || int64(tk.pcm.Len()) != nodeaudio.Bytes(1700*time.Millisecond) {
		t.Errorf("the alert that preempts was given to the output at %v with offset %v and %d bytes; want at %v, 0, %d",
			tk.called, tk.offset, tk.pcm.Len(), cut, nodeaudio.Bytes(1700*time.Millisecond))
	}

	starts := map[string]time.Time{"news": start, "e1@x": alertAt, "news2": cut.Add(-500 * time.Millisecond), "e2@x": cut}
	began := map[string]bool{}
	for _, e := range ctl.Events("n1") {
		if e.Type == protocol.EventStarted && !began[e.Occurrence] && (e.LateMS != 0 || !e.At.Equal(starts[e.Occurrence])) {
			t.Errorf("%s started at %v, %d ms late; want at its start %v", e.Occurrence, e.At, e.LateMS, starts[e.Occurrence])
		}
		if e.Type == protocol.EventStarted {
			began[e.Occurrence] = true // news2 begins again after the alert, late
		}
		if e.Type == protocol.EventCompleted && e.PlayedMS != map[string]int64{"news": 1000, "e1@x": 1700, "e2@x": 1700}[e.Occurrence] {
			t.Errorf("%s played %d ms, want its audio's length", e.Occurrence, e.PlayedMS)
		}
	}
}
