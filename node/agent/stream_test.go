package agent_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// pcmOutput plays nothing; it keeps the PCM of each play. It reads as fast
// as it can, or, paced, in real time as audio.None does (a read that keeps
// it waiting runs it dry).
type pcmOutput struct {
	paced bool
	// hold, when set, stops a paced play once it has read holdAt bytes,
	// until hold is closed: a test can let something happen at a point
	// of the play however slow the machine is.
	hold   chan struct{}
	holdAt int
	mu     sync.Mutex
	plays  [][]byte
}

// The silence a play begins with a lead-in ahead of its instant
// (agent.PlayOffset < 0) is not kept: the plays kept are the streams.
func (o *pcmOutput) Play(ctx context.Context, pcm io.Reader) error {
	var lead int64
	if off := agent.PlayOffset(ctx); off < 0 {
		lead = nodeaudio.Bytes(-off)
	}
	if o.paced {
		o.mu.Lock()
		o.plays = append(o.plays, nil)
		o.mu.Unlock()
		return audio.NewNone(nil).Play(ctx, io.TeeReader(pcm, &skipWriter{n: lead, w: o}))
	}
	b, err := io.ReadAll(pcm)
	b = b[min(lead, int64(len(b))):]
	o.mu.Lock()
	o.plays = append(o.plays, b)
	o.mu.Unlock()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// skipWriter drops the first n bytes written to it.
type skipWriter struct {
	n int64
	w io.Writer
}

func (s *skipWriter) Write(b []byte) (int, error) {
	k := min(s.n, int64(len(b)))
	s.n -= k
	if int(k) == len(b) {
		return len(b), nil
	}
	if _, err := s.w.Write(b[k:]); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Write keeps what a paced play read.
func (o *pcmOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	last := len(o.plays) - 1
	o.plays[last] = append(o.plays[last], b...)
	held := o.hold != nil && len(o.plays[last]) >= o.holdAt
	o.mu.Unlock()
	if held {
		<-o.hold
	}
	return len(b), nil
}

// read returns how many bytes the play under way has read.
func (o *pcmOutput) read() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.plays) == 0 {
		return 0
	}
	return len(o.plays[len(o.plays)-1])
}

func (o *pcmOutput) Close() error { return nil }

func (o *pcmOutput) Plays() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.plays)
}

// trickle serves content file b in 2 KB pieces every 50 ms (40 KB/s, five
// times the rate node audio plays at) up to its last 2 KB, and those only
// once release is closed, served as tail. It counts the requests.
type trickle struct {
	b       []byte
	tail    []byte // what the last 2 KB are served as
	release chan struct{}
	served  atomic.Int32
	// holdAll holds every byte, not the last 2 KB alone, until release.
	holdAll bool
}

func (tr *trickle) serve(w http.ResponseWriter, r *http.Request) {
	tr.served.Add(1)
	w.Header().Set("Content-Length", strconv.Itoa(len(tr.b)))
	w.WriteHeader(http.StatusOK)
	if tr.holdAll {
		w.(http.Flusher).Flush()
		select {
		case <-tr.release:
		case <-r.Context().Done():
			return
		}
	}
	held := len(tr.b) - 2048
	for off := 0; off < held; off += 2048 {
		w.Write(tr.b[off:min(off+2048, held)])
		w.(http.Flusher).Flush()
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	select {
	case <-tr.release:
	case <-r.Context().Done():
		return
	}
	w.Write(tr.tail)
}

// streamedAlert starts an agent recording its PCM, and sends it an alert
// whose 4 s message it does not have, served by tr; the chimes are
// served whole.
func streamedAlert(t *testing.T, makeTail func(b []byte) []byte) (*nodetest.Controller, *node, *pcmOutput, *trickle, []byte, [3]protocol.ContentRef) {
	return heldAlert(t, makeTail, false, 0)
}

// heldAlert is streamedAlert with the trickle's holdAll and the agent's
// ChimeAgainAfter set.
func heldAlert(t *testing.T, makeTail func(b []byte) []byte, holdAll bool, chimeAgain time.Duration) (*nodetest.Controller, *node, *pcmOutput, *trickle, []byte, [3]protocol.ContentRef) {
	return heldAlertWith(t, makeTail, holdAll, func(c *agent.Config) { c.ChimeAgainAfter = chimeAgain })
}

// heldAlertWith is heldAlert with the agent's configuration tuned.
func heldAlertWith(t *testing.T, makeTail func(b []byte) []byte, holdAll bool, tune func(*agent.Config)) (*nodetest.Controller, *node, *pcmOutput, *trickle, []byte, [3]protocol.ContentRef) {
	return heldAlertEdited(t, makeTail, holdAll, tune, nil)
}

// heldAlertEdited is heldAlertWith with edit, if not nil, changing the
// alert before it is sent.
func heldAlertEdited(t *testing.T, makeTail func(b []byte) []byte, holdAll bool, tune func(*agent.Config), edit func(*nodetest.Controller, *protocol.Command)) (*nodetest.Controller, *node, *pcmOutput, *trickle, []byte, [3]protocol.ContentRef) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	out := &pcmOutput{}
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{tune: func(c *agent.Config) {
		c.Output, c.ContentKeepSpread = out, time.Millisecond
		tune(c) // may make out paced
	}})
	waitConnected(t, n)

	samples := make([]int16, 4*nodeaudio.SampleRate)
	for i := range samples {
		samples[i] = int16((i*37)%2000 - 1000)
	}
	file, err := nodeaudio.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	msg := ctl.AddFile(file, 4*time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	// Every cluster keeps the chimes (TestAlertKeepsAMissingChimesPlace
	// has one that does not).
	ctl.PublishDesired(desired("n1", 1, nil, opening, closing))
	nodetest.Eventually(t, 10*time.Second, "the chimes kept", func() bool {
		st := n.a.Status()
		return st.DesiredVersion == 1 && st.CacheBytes > 0 && len(st.ContentMissing) == 0
	})
	tr := &trickle{b: file, tail: makeTail(file[len(file)-2048:]), release: make(chan struct{}), holdAll: holdAll}
	ctl.ContentHook = func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, msg.ID) {
			return false
		}
		tr.serve(w, r)
		return true
	}
	t.Cleanup(func() {
		select {
		case <-tr.release:
		default:
			close(tr.release)
		}
	})
	start := time.Now().Add(300 * time.Millisecond)
	// The policy the controller sends alerts with: cut off, they play again
	// from the beginning.
	cmd := resumingAlert("e3@x", msg, opening, closing, start, start.Add(time.Minute))
	if edit != nil {
		edit(ctl, &cmd)
	}
	ctl.SendAreaCommand("x1", cmd, time.Minute)
	return ctl, n, out, tr, file, [3]protocol.ContentRef{opening, msg, closing}
}

// decoded returns the PCM of node audio file b.
func decoded(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := nodeaudio.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// TestAlertPlaysAsItDownloads: an alert whose message the node does not
// have starts while the message is still downloading (the download holds
// its last bytes until the play has started: a node that waited for the
// whole file would never start), and what it plays is the template with
// every byte of the message, as if it had been cached.
func TestAlertPlaysAsItDownloads(t *testing.T) {
	ctl, _, out, tr, file, refs := streamedAlert(t, func(b []byte) []byte { return b })
	// The download cannot end before release: a start now is a start
	// while it runs.
	nodetest.Eventually(t, 15*time.Second, "the alert started while its message downloads", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started e3@x")
	})
	close(tr.release)
	events := waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "completed e3@x"})
	if got := nodetest.ReadySummary(ctl.Events("n1")); !slices.Equal(got, []string{"e3@x"}) {
		t.Errorf("content-ready events %v, want one for the alert, when it could play", got)
	}
	// 0.7 + 3 × 4 + 2 × 0.5 + 0.6 s.
	if got := events[2].PlayedMS; got != 14300 {
		t.Errorf("alert played %d ms, want 14300", got)
	}
	var want []byte
	want = append(want, decoded(t, nodeFile(t, ctl, refs[0]))...)
	msg := decoded(t, file)
	gap := make([]byte, nodeaudio.Bytes(500*time.Millisecond))
	want = append(append(append(append(append(want, msg...), gap...), msg...), gap...), msg...)
	want = append(want, decoded(t, nodeFile(t, ctl, refs[2]))...)
	plays := out.Plays()
	if len(plays) != 1 || !bytes.Equal(plays[0], want) {
		t.Errorf("output got %d plays (first %d bytes); want one of the template's %d bytes, identical", len(plays), lenFirst(plays), len(want))
	}
	if tr.served.Load() != 1 {
		t.Errorf("message requested %d times, want once", tr.served.Load())
	}
}

// TestAlertOfWrongBytesFails: the message played as it downloaded turns
// out not to be the content its id names (its last bytes differ): the
// play stops, suspended with content-missing, and the node keeps none of
// it; the speaker had the message's checked first chunk and not one
// sample of the wrong bytes. It would play again once the message is
// cached; the downloads the node tries again bring the same wrong bytes,
// so it does not play them again.
func TestAlertOfWrongBytesFails(t *testing.T) {
	ctl, n, out, tr, _, refs := streamedAlert(t, func(b []byte) []byte {
		bad := slices.Clone(b)
		bad[len(bad)-1] ^= 0xff
		return bad
	})
	nodetest.Eventually(t, 15*time.Second, "the alert started", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started e3@x")
	})
	close(tr.release)
	events := waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "suspended e3@x content-missing"})
	if events[2].PlayedMS <= 0 {
		t.Errorf("stopped play reports %d ms played, want what was heard before the end", events[2].PlayedMS)
	}
	if missing := n.a.Status().ContentMissing; !slices.Contains(missing, refs[1].ID) {
		t.Errorf("content missing %v, want the message: none of the wrong bytes kept", missing)
	}
	nodetest.Eventually(t, 15*time.Second, "three more downloads of the same wrong bytes", func() bool { return tr.served.Load() >= 4 })
	waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "suspended e3@x content-missing"})
	plays := out.Plays()
	if len(plays) != 1 {
		t.Fatalf("the output got %d plays, want the one of the wrong bytes alone", len(plays))
	}
	// What a play from a cached message would have begun with, up to the
	// end of the message's first chunk, the last it could check.
	opening := decoded(t, nodeFile(t, ctl, refs[0]))
	msg := decoded(t, tr.b)
	checked := ((protocol.ChunkSize-nodeaudio.HeaderSize)/nodeaudio.BlockAlign + 1) * nodeaudio.SamplesPerBlock * nodeaudio.BytesPerSample
	if !bytes.HasPrefix(slices.Concat(opening, msg), plays[0]) || len(plays[0]) > len(opening)+checked {
		t.Errorf("the output got %d bytes: want no more than the opening chime's %d and the message's first chunk's %d, as in the message",
			len(plays[0]), len(opening), checked)
	}
}

// TestAlertPlaysOnceItsMessageCame: an alert that began with its chime
// waits for a message of which nothing comes for the stall timeout: the
// play stops (suspended, content-missing) rather than holding the
// amplifier on in silence. The message comes later, before the alert's
// deadline: the alert plays again from the beginning, whole.
func TestAlertPlaysOnceItsMessageCame(t *testing.T) {
	ctl, _, out, tr, file, refs := heldAlertWith(t, func(b []byte) []byte { return b }, true, func(c *agent.Config) {
		c.ContentStallTimeout = 500 * time.Millisecond
	})
	waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "suspended e3@x content-missing"})
	close(tr.release)
	waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "suspended e3@x content-missing", "started e3@x", "completed e3@x"})
	opening, msg := decoded(t, nodeFile(t, ctl, refs[0])), decoded(t, file)
	gap := make([]byte, nodeaudio.Bytes(500*time.Millisecond))
	want := slices.Concat(opening, msg, gap, msg, gap, msg, decoded(t, nodeFile(t, ctl, refs[2])))
	plays := out.Plays()
	// The message's place is silence while it is awaited (the stream
	// stays whole, laterPart): how much of it the first play gave before
	// the stall stopped it depends on how long the play took to begin
	// after the download did, on a busy machine 400 ms.
	chimeAlone := len(plays) > 0 && bytes.HasPrefix(plays[0], opening) &&
		!slices.ContainsFunc(plays[0][len(opening):], func(b byte) bool { return b != 0 })
	if len(plays) != 2 || !chimeAlone || !bytes.Equal(plays[1], want) {
		t.Errorf("output got %d plays; want the opening chime alone (then silence), then the whole template", len(plays))
	}
}

// TestAlertChimesWhileItsMessageComes: an alert whose message no byte of
// has come starts at its instant with its cached opening chime, its start
// saying the message is still to come; the message follows the chime
// once it can play, with a content-ready event, and the output gets the
// whole template. Here the message plays as soon as it can (InStepWait
// negative); TestLateMessageJoinsARepeat has it wait to play in step.
func TestAlertChimesWhileItsMessageComes(t *testing.T) {
	ctl, _, out, tr, file, refs := heldAlertWith(t, func(b []byte) []byte { return b }, true, func(c *agent.Config) {
		c.ChimeAgainAfter, c.InStepWait = time.Hour, -1
	})
	nodetest.Eventually(t, 15*time.Second, "the alert started with its chime", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started e3@x")
	})
	for _, e := range ctl.Events("n1") {
		if e.Type == protocol.EventStarted && !e.ContentPending {
			t.Errorf("started event %+v does not say the message is still to come", e)
		}
	}
	if got := nodetest.ReadySummary(ctl.Events("n1")); len(got) != 0 {
		t.Errorf("content-ready events %v before any byte of the message was served", got)
	}
	close(tr.release)
	waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "completed e3@x"})
	nodetest.Eventually(t, 15*time.Second, "content-ready after the start", func() bool {
		return slices.Equal(nodetest.ReadySummary(ctl.Events("n1")), []string{"e3@x"})
	})
	msg, gap := decoded(t, file), make([]byte, nodeaudio.Bytes(500*time.Millisecond))
	plays := out.Plays()
	if len(plays) != 1 {
		t.Fatalf("output got %d plays, want one", len(plays))
	}
	silence := checkTemplate(t, plays[0], decoded(t, nodeFile(t, ctl, refs[0])), nil, slices.Concat(msg, gap, msg, gap, msg, decoded(t, nodeFile(t, ctl, refs[2]))))
	t.Logf("%v of silence while the message was awaited", nodeaudio.Duration(int64(silence)))
	// If it came after the chime's end, the completed event says when the
	// message began: after the chime and the silence.
	if late := nodeaudio.Duration(int64(silence)); late > 20*time.Millisecond {
		checkMessageMS(t, ctl, 700*time.Millisecond+late)
	} else {
		checkMessageMS(t, ctl, 0)
	}
}

// checkMessageMS checks the message_ms of the alert's completed event, to
// the ms it is rounded down to and within how late the play began (a join
// counts that too), and that its content-ready event said the same before
// the play ended: the board need not wait for the end to know whether a
// late message plays in step.
func checkMessageMS(t *testing.T, ctl *nodetest.Controller, want time.Duration) {
	t.Helper()
	var ready *protocol.Event
	for _, e := range ctl.Events("n1") {
		switch e.Type {
		case protocol.EventContentReady:
			ready = &e
		case protocol.EventCompleted:
			if d := time.Duration(e.MessageMS)*time.Millisecond - want; d > 0 || d <= -20*time.Millisecond {
				t.Errorf("completed event says the message began %d ms in; want %v", e.MessageMS, want)
			}
			switch {
			case ready == nil:
				t.Error("no content-ready event before the completed one")
			case ready.MessageMS != e.MessageMS:
				t.Errorf("content-ready event says the message begins %d ms in, the completed one %d ms", ready.MessageMS, e.MessageMS)
			}
			return
		}
	}
	t.Error("no completed event")
}

// checkTemplate checks that play is before (the opening chime, an intro),
// silence (returned, in bytes), again (the chime played again, or
// nothing), and rest: the message's repeats and the closing chime.
func checkTemplate(t *testing.T, play, before, again, rest []byte) int {
	t.Helper()
	silence, ok := isTemplate(play, before, again, rest)
	if !ok {
		t.Fatalf("output of %d bytes; want %d bytes (the chime, an intro), silence, %d (the chime again), the message's repeats and the closing chime (%d)",
			len(play), len(before), len(again), len(rest))
	}
	return silence
}

// isTemplate is checkTemplate's check.
func isTemplate(play, before, again, rest []byte) (int, bool) {
	silence := len(play) - len(before) - len(again) - len(rest)
	return silence, silence >= 0 && bytes.Equal(play[:len(before)], before) &&
		bytes.Equal(play[len(before):len(before)+silence], make([]byte, silence)) &&
		bytes.Equal(play[len(before)+silence:len(play)-len(rest)], again) &&
		bytes.Equal(play[len(play)-len(rest):], rest)
}

// TestLateMessageJoinsARepeat: the alert's message (4 s, twice, 0.5 s
// apart) can play only after the opening chime (0.7 s) has been heard. The
// clusters that had it in time began it at the chime's end, and begin their
// next repeat 4.5 s later: this one waits in silence and begins its first
// repeat then, in step with their second, and plays both. After a
// long wait (ChimeAgainAfter) the chime plays again, ending as the repeat
// begins. A cluster that had the alert itself 400 ms after its start began
// the chime that late; its message joins the area's repeats all the same.
// The output runs in real time (audio.None), as the wait depends on when
// the speaker reaches the message's place.
func TestLateMessageJoinsARepeat(t *testing.T) {
	for _, tc := range []struct {
		name       string
		chimeAgain time.Duration
		chimes     int           // opening chimes before the message
		late       time.Duration // how long after its start the alert comes
	}{
		{"in silence", time.Hour, 1, 0},
		{"after the chime again", time.Millisecond, 2, 0},
		{"the alert came late", time.Hour, 1, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out *pcmOutput
			ctl, _, _, tr, file, refs := heldAlertEdited(t, func(b []byte) []byte { return b }, true, func(c *agent.Config) {
				out = c.Output.(*pcmOutput)
				out.paced, c.ChimeAgainAfter = true, tc.chimeAgain
			}, func(_ *nodetest.Controller, cmd *protocol.Command) {
				cmd.Alert.Occurrence.Repeat = 2
				if tc.late > 0 {
					cmd.Alert.Occurrence.Start = time.Now().Add(-tc.late)
				}
			})
			// The whole chime read: the output has it to the end, and the
			// message (0.5 s of it at least) cannot come before it is heard.
			nodetest.Eventually(t, 15*time.Second, "the chime played", func() bool {
				return out.read() >= len(decoded(t, nodeFile(t, ctl, refs[0])))
			})
			close(tr.release)
			// About 14 s: the chime, the wait, two repeats, the closing chime.
			nodetest.Eventually(t, 40*time.Second, "the alert completed", func() bool {
				return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed e3@x")
			})

			opening, msg := decoded(t, nodeFile(t, ctl, refs[0])), decoded(t, file)
			gap := make([]byte, nodeaudio.Bytes(500*time.Millisecond))
			rest := slices.Concat(msg, gap, msg, decoded(t, nodeFile(t, ctl, refs[2])))
			plays := out.Plays()
			if len(plays) != 1 {
				t.Fatalf("output got %d plays, want one", len(plays))
			}
			play := plays[0]
			checkTemplate(t, play, opening, slices.Repeat(opening, tc.chimes-1), rest)
			// Where it lies, counted from the area's start: how late the
			// play began (its started event, to the ms), then its place in
			// the stream, which the output plays whole. The chime, then
			// whole repeats of the others.
			var began time.Duration
			for _, e := range ctl.Events("n1") {
				if e.Type == protocol.EventStarted {
					began = time.Duration(e.LateMS) * time.Millisecond
				}
			}
			if tc.late > 0 && began < tc.late {
				t.Errorf("the alert began %v after its start, want at least %v", began, tc.late)
			}
			first := len(play) - len(rest)
			period := nodeaudio.Duration(int64(len(msg) + len(gap)))
			after := began + nodeaudio.Duration(int64(first)) - nodeaudio.Duration(int64(len(opening)))
			k := (after + period/2) / period
			off := after - k*period
			t.Logf("the alert began %v after its start, the message %v after the area's chime ended: %d repeats of 4.5 s %+v", began, after, k, off)
			if k < 1 || off.Abs() > 2*time.Millisecond {
				t.Errorf("the message began %v after the area's chime ended, %+v off the others' repeat %d; want it on a repeat after the first", after, off, k+1)
			}
			// In the stream, after its own start: the chime, then whole
			// repeats of the others, less how late it began.
			checkMessageMS(t, ctl, 700*time.Millisecond+time.Duration(k)*period-began)
		})
	}
}

// TestAlertPlaysItsIntro: an alert with an intro (a recording the node
// keeps, as a CAP event type's) whose message has not come: it starts
// with the chime and the intro, and the message follows once it can play.
func TestAlertPlaysItsIntro(t *testing.T) {
	var intro protocol.ContentRef
	// The message plays as soon as it can (TestLateMessageJoinsARepeat has
	// it wait to play in step).
	ctl, _, out, tr, file, refs := heldAlertEdited(t, func(b []byte) []byte { return b }, true, func(c *agent.Config) { c.InStepWait = -1 },
		func(ctl *nodetest.Controller, cmd *protocol.Command) {
			intro = ctl.AddContent(time.Second)
			cmd.Alert.Occurrence.Intro = intro.ID
			cmd.Alert.Content = append(cmd.Alert.Content, intro)
		})
	nodetest.Eventually(t, 15*time.Second, "the alert started", func() bool {
		return slices.Contains(nodetest.Summary(ctl.Events("n1")), "started e3@x")
	})
	close(tr.release)
	waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x", "completed e3@x"})
	msg, gap := decoded(t, file), make([]byte, nodeaudio.Bytes(500*time.Millisecond))
	plays := out.Plays()
	if len(plays) != 1 {
		t.Fatalf("output got %d plays, want one", len(plays))
	}
	// Silence while the intro or the message was awaited.
	opening, introPCM := decoded(t, nodeFile(t, ctl, refs[0])), decoded(t, nodeFile(t, ctl, intro))
	rest := slices.Concat(msg, gap, msg, gap, msg, decoded(t, nodeFile(t, ctl, refs[2])))
	_, beforeIntro := isTemplate(plays[0], opening, introPCM, rest)
	_, afterIntro := isTemplate(plays[0], slices.Concat(opening, introPCM), nil, rest)
	if !beforeIntro && !afterIntro {
		t.Errorf("output of %d bytes; want the chime, the intro, the message three times, the closing chime (%d bytes), and silence before the intro or the message",
			len(plays[0]), len(opening)+len(introPCM)+len(rest))
	}
}

// nodeFile returns the bytes the controller serves for ref.
func nodeFile(t *testing.T, ctl *nodetest.Controller, ref protocol.ContentRef) []byte {
	t.Helper()
	b, ok := ctl.File(ref.ID)
	if !ok {
		t.Fatalf("content %s not on the test controller", ref.ID)
	}
	return b
}

func lenFirst(plays [][]byte) int {
	if len(plays) == 0 {
		return 0
	}
	return len(plays[0])
}

// TestDamagedCachedFileIsFetchedAgain: the alert's message, cached and
// verified, is damaged on the board's storage before the alert plays: a
// sample changed (it would still decode, as a click), or an ADPCM block
// header that no longer decodes, with and without the chunk list the
// cache keeps beside the file. The play stops there, suspended with
// content-missing (not failed as the sound device's fault), the cache
// drops the file and fetches it again, and the alert plays again from the
// beginning, whole. A changed sample with no list to check it against is
// not found: that case plays it.
func TestDamagedCachedFileIsFetchedAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		at     int // the byte changed
		noList bool
		found  bool
	}{
		{"a sample", nodeaudio.HeaderSize + 700, false, true},
		{"a block header", nodeaudio.HeaderSize + 2, false, true},
		{"a block header, no list", nodeaudio.HeaderSize + 2, true, true},
		{"a sample, no list", nodeaudio.HeaderSize + 700, true, false},
		{"the file header", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testDamagedCachedFile(t, tc.at, tc.noList, tc.found) })
	}
}

func testDamagedCachedFile(t *testing.T, at int, noList, found bool) {
	fc := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	dir := t.TempDir()
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc, dir: dir})
	waitConnected(t, n)
	sent := sendCachedAlert(t, ctl, fc, n, "n1", "e1@x")
	msg, start := sent.msg, sent.start

	path := filepath.Join(dir, "content", msg.ID)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch at {
	case nodeaudio.HeaderSize + 2:
		b[at] = 200 // the first block's step index, beyond 88
	default:
		b[at] ^= 0x5a // in the header: "RIFF" no more; the message cannot be opened
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if noList {
		if err := os.Remove(path + ".chunks"); err != nil {
			t.Fatal(err)
		}
	}
	fc.Set(start)
	if !found {
		runUntil(t, fc, time.Minute, "the alert played", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 3 })
		waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "completed e1@x"})
		return
	}
	runUntil(t, fc, time.Minute, "the alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 5 })
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "suspended e1@x content-missing", "started e1@x", "completed e1@x"})
	if got := ctl.ContentRequests(msg.ID); got != 2 {
		t.Errorf("message requested %d times, want twice: once more after the damage", got)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, nodeFile(t, ctl, msg)) {
		t.Error("the cached message is not the content after the second fetch")
	}
}

// TestDamagedBulletinIsFetchedBeforeItsPlay: a bulletin's cached file
// whose header the board's storage changed cannot be opened when its play
// is made. It is not failed: the file is fetched again, and the bulletin
// plays, whole, once it is back (within its late grace).
func TestDamagedBulletinIsFetchedBeforeItsPlay(t *testing.T) {
	fc := clock.NewFake(time.Now())
	ctl := fakeClockController(t, fc)
	dir := t.TempDir()
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc, dir: dir})
	waitConnected(t, n)
	ref := ctl.AddContent(time.Second)
	start := fc.Now().Add(30 * time.Second)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, start)}, ref))
	nodetest.Eventually(t, 10*time.Second, "the bulletin cached", func() bool {
		st := n.a.Status()
		return st.DesiredVersion == 1 && len(st.ContentMissing) == 0
	})
	path := filepath.Join(dir, "content", ref.ID)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a // "RIFF" no more
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runUntil(t, fc, time.Minute, "the bulletin played", func() bool { return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed o1") })
	waitEvents(t, ctl, "n1", []string{"received o1", "started o1", "completed o1"})
	if got := ctl.ContentRequests(ref.ID); got != 2 {
		t.Errorf("bulletin requested %d times, want twice: once more after the damage", got)
	}
}

// TestAlertKeepsAMissingChimesPlace: a cluster that has an alert's message
// but not its opening chime (enrolled minutes ago, or its chime found
// damaged and fetched again) keeps the chime's place on the area's
// timeline: silence of its length, joined by the rest of the chime if it
// comes meanwhile (the clusters that had it are at that point of theirs),
// so its message begins with the neighbours' and not a chime's length
// before theirs. A cluster that has neither starts at the shared instant
// all the same, rather than the whole template once its message came.
// The output runs in real time (audio.None).
func TestAlertKeepsAMissingChimesPlace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		comes bool // the chime comes while its place plays
		kept  bool // the message was on the cluster before the alert
	}{
		{"the chime comes during its place", true, true},
		{"the chime does not come", false, true},
		{"neither the chime nor the message kept", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctl := nodetest.NewController(t, nodetest.StartBroker(t))
			out := &pcmOutput{paced: true}
			place := int(nodeaudio.Bytes(300 * time.Millisecond))
			// The play waits 300 ms into the chime's place until the
			// alert's audio is cached (resume): on a busy machine the
			// chime's download and write took longer than the 1.7 s left
			// of its place, and the message's, after it, could too.
			out.hold, out.holdAt = make(chan struct{}), place
			resume := sync.OnceFunc(func() { close(out.hold) })
			if !tc.comes {
				resume()
			}
			n := startAgent(t, ctl.Credentials("n1", "x1"), options{tune: func(c *agent.Config) {
				c.Output, c.ContentKeepSpread = out, time.Millisecond
			}})
			t.Cleanup(resume) // before the agent stops
			waitConnected(t, n)
			msg := ctl.AddContent(time.Second)
			opening := ctl.AddContent(2 * time.Second)
			closing := ctl.AddContent(600 * time.Millisecond)
			if tc.kept {
				// The message is kept on the cluster; the chimes are not yet.
				ctl.PublishDesired(desired("n1", 1, nil, msg))
				nodetest.Eventually(t, 10*time.Second, "the message kept", func() bool {
					st := n.a.Status()
					return st.DesiredVersion == 1 && st.CacheBytes > 0 && len(st.ContentMissing) == 0
				})
			}
			release := make(chan struct{})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			ctl.ContentHook = func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, opening.ID) {
					<-release
				}
				return false
			}
			start := time.Now().Add(300 * time.Millisecond)
			cmd := alert("e3@x", msg, opening, closing, start, start.Add(time.Minute))
			cmd.Alert.Occurrence.Repeat = 2
			ctl.SendAreaCommand("x1", cmd, time.Minute)

			chime := decoded(t, nodeFile(t, ctl, opening))
			if tc.comes {
				nodetest.Eventually(t, 15*time.Second, "the chime's place began", func() bool { return out.read() >= place })
				close(release)
				nodetest.Eventually(t, 15*time.Second, "the alert's audio cached", func() bool { return len(n.a.Status().ContentMissing) == 0 })
				resume()
			}
			nodetest.Eventually(t, 30*time.Second, "the alert completed", func() bool {
				return slices.Contains(nodetest.Summary(ctl.Events("n1")), "completed e3@x")
			})
			m := decoded(t, nodeFile(t, ctl, msg))
			rest := slices.Concat(m, make([]byte, nodeaudio.Bytes(500*time.Millisecond)), m)
			if tc.comes {
				// Downloaded after the opening one, it is there by its turn.
				rest = append(rest, decoded(t, nodeFile(t, ctl, closing))...)
			}
			plays := out.Plays()
			if len(plays) != 1 {
				t.Fatalf("output got %d plays, want one", len(plays))
			}
			play := plays[0]
			if len(play) != len(chime)+len(rest) || !bytes.Equal(play[len(chime):], rest) {
				t.Fatalf("output of %d bytes; want the chime's place (%d), then the message's repeats from its end (%d)", len(play), len(chime), len(rest))
			}
			// The first sound in the chime's place, and from there the chime.
			first := len(chime)
			if i := slices.IndexFunc(play[:len(chime)], func(b byte) bool { return b != 0 }); i >= 0 {
				first = i
			}
			if !bytes.Equal(play[first:len(chime)], chime[first:]) {
				t.Errorf("the chime's place is %v of silence, then not the rest of the chime", nodeaudio.Duration(int64(first)))
			}
			joined := first < len(chime)
			t.Logf("%v of silence in the chime's place of %v", nodeaudio.Duration(int64(first)), nodeaudio.Duration(int64(len(chime))))
			if joined != tc.comes {
				t.Errorf("the chime joined its place: %v; want %v", joined, tc.comes)
			}
			// It began at the shared instant, not once it had the message.
			for _, e := range ctl.Events("n1") {
				if e.Type == protocol.EventStarted && e.ContentPending == tc.kept {
					t.Errorf("started event says the message is still to come: %v; want %v", e.ContentPending, !tc.kept)
				}
			}
		})
	}
}
