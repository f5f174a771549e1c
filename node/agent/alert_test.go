package agent_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// alert returns an alert command for content ref with chimes, starting at
// start and valid until expires.
func alert(id string, ref, opening, closing protocol.ContentRef, start, expires time.Time) protocol.Command {
	return protocol.Command{Name: protocol.CmdAlert, Alert: &protocol.Alert{
		Occurrence: protocol.Occurrence{
			ID: id, Announcement: "e1", Content: ref.ID, Priority: protocol.PriorityEmergency,
			Start: start.UTC(), Expires: expires.UTC(), DurationMS: ref.DurationMS,
			Repeat: 3, GapMS: 500, OpeningChime: opening.ID, ClosingChime: closing.ID,
			OnPreempt: protocol.PreemptDrop, Volume: protocol.MaxVolume, Drill: true,
		},
		// Chimes first: they are short, and fetched first.
		Content: []protocol.ContentRef{opening, closing, ref},
	}}
}

// TestAlertPreemptsAndBulletinResumes: an alert on an ancestor area's cmd
// topic cuts a normal bulletin off at its start instant, plays the
// template (opening chime, message three times, closing chime), and the
// bulletin plays again afterwards. A resend of the same alert on the
// node's own topic changes nothing; every event of the drill says so.
func TestAlertPreemptsAndBulletinResumes(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1", "p1"), options{clock: fc})
	waitConnected(t, n)

	news := ctl.AddContent(4 * time.Second)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("news", news, start)}, news))
	waitEvents(t, ctl, "n1", []string{"received news"})
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received news", "started news"})

	cutAt := start.Add(2 * time.Second)
	fc.Set(cutAt.Add(-500 * time.Millisecond))
	cmd := alert("e1@x", msg, opening, closing, cutAt, cutAt.Add(10*time.Minute))
	ctl.SendAreaCommand("d1", cmd, 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e1@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	ctl.SendCommand("n1", cmd) // the controller's resend to an unacknowledged node
	fc.Set(cutAt)
	waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e1@x", "suspended news preempted", "started e1@x"})
	runUntil(t, fc, time.Minute, "alert and bulletin done", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 8 })
	events := waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e1@x",
		"suspended news preempted", "started e1@x", "completed e1@x", "started news", "completed news"})
	if events[4].LateMS != 0 || !events[4].At.Equal(cutAt) {
		t.Errorf("alert started at %v (%d ms late), want %v", events[4].At, events[4].LateMS, cutAt)
	}
	// 0.7 + 3 × 1 + 2 × 0.5 + 0.6 s.
	if got := events[5].PlayedMS; got != 5300 {
		t.Errorf("alert played %d ms, want 5300 (chimes, three repeats, gaps)", got)
	}
	if events[7].PlayedMS != 4000 {
		t.Errorf("bulletin played %d ms after resuming, want 4000", events[7].PlayedMS)
	}
	for _, e := range events {
		if drill := e.Occurrence == "e1@x"; e.Drill != drill {
			t.Errorf("event %s %s: drill %v, want %v", e.Type, e.Occurrence, e.Drill, drill)
		}
	}
	if st := n.a.Status(); st.Rejected != 0 {
		t.Errorf("%d messages refused", st.Rejected)
	}
}

// waitAlertAudio waits, with the fake clock standing still, until node n1
// reports alert id's audio cached (content-ready). An alert goes on air
// at once with its audio still to come, its place kept in silence as long
// as it takes; the downloads are real HTTP round trips, and runUntil steps
// the clock 100 ms a millisecond, so on a busy machine an alert's 30 s of
// fake time could run out in silence before its audio came.
func waitAlertAudio(t *testing.T, ctl *nodetest.Controller, id string) {
	t.Helper()
	nodetest.Eventually(t, 10*time.Second, "alert "+id+"'s audio cached", func() bool {
		return slices.Contains(nodetest.ReadySummary(ctl.Events("n1")), id)
	})
}

// TestAlertLateStartsAtOnce: a node that gets an alert after its start
// instant (its link was slow) starts at once and reports how late; one
// whose content is not cached fetches it and starts as soon as it has it.
func TestAlertLateStartsAtOnce(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now()
	fc.Set(start.Add(1500 * time.Millisecond))
	ctl.SendAreaCommand("x1", alert("e2@x", msg, opening, closing, start, start.Add(time.Minute)), time.Minute)
	waitAlertAudio(t, ctl, "e2@x")
	runUntil(t, fc, 30*time.Second, "alert done", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 3 })
	events := waitEvents(t, ctl, "n1", []string{"received e2@x", "started e2@x", "completed e2@x"})
	if events[1].LateMS < 1500 {
		t.Errorf("started %d ms late, want at least 1500", events[1].LateMS)
	}
	if got := nodetest.ReadySummary(ctl.Events("n1")); !slices.Equal(got, []string{"e2@x"}) {
		t.Errorf("content-ready events %v, want one for the alert", got)
	}
	if ctl.ContentRequests(msg.ID) != 1 {
		t.Errorf("message fetched %d times", ctl.ContentRequests(msg.ID))
	}
}

// TestAlertCancelStopsIt: cancelling an alert while it plays stops it at
// once (failed, cancelled); the bulletin it cut off plays again. A copy
// of the alert arriving after the cancel does not start it again.
func TestAlertCancelStopsIt(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	news := ctl.AddContent(3 * time.Second)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(time.Minute)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("news", news, start)}, news))
	nodetest.Eventually(t, 5*time.Second, "content not fetched", func() bool {
		st := n.a.Status()
		return st.DesiredVersion == 1 && len(st.ContentMissing) == 0
	})
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received news", "started news"})
	cmd := alert("e3@x", msg, opening, closing, start.Add(time.Second), start.Add(10*time.Minute))
	ctl.SendAreaCommand("d1", cmd, 10*time.Minute)
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool {
		return len(nodetest.Summary(ctl.Events("n1"))) >= 3 && len(n.a.Status().ContentMissing) == 0
	})
	fc.Set(start.Add(time.Second))
	waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e3@x", "suspended news preempted", "started e3@x"})
	fc.Advance(500 * time.Millisecond)
	ctl.SendAreaCommand("d1", protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: "e3@x"}, 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e3@x", "suspended news preempted", "started e3@x",
		"failed e3@x cancelled", "started news"})
	ctl.SendCommand("n1", cmd)
	runUntil(t, fc, time.Minute, "bulletin done", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 8 })
	waitEvents(t, ctl, "n1", []string{"received news", "started news", "received e3@x", "suspended news preempted", "started e3@x",
		"failed e3@x cancelled", "started news", "completed news"})
}

// TestAlertRefusals: an expired alert, one with a bad volume, and one
// for an area not in the node's chain are refused and play nothing.
func TestAlertRefusals(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	now := fc.Now()

	expired, err := ctl.Signer.Seal(protocol.TypeCommand, "area/x1", alert("e4@x", msg, opening, closing, now, now.Add(time.Minute)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fc.Advance(2 * time.Second)
	ctl.Publish(ctl.Topics.Area("x1", protocol.ChanCmd), false, expired)
	nodetest.Eventually(t, 5*time.Second, "expired alert not refused", func() bool { return n.a.Status().Rejected >= 1 })

	loud := alert("e5@x", msg, opening, closing, fc.Now(), fc.Now().Add(time.Minute))
	loud.Alert.Occurrence.Volume = 16
	ctl.SendAreaCommand("x1", loud, time.Minute)
	nodetest.Eventually(t, 5*time.Second, "alert with volume 16 not refused", func() bool { return n.a.Status().Rejected >= 2 })

	ctl.SendAreaCommand("other", alert("e6@x", msg, opening, closing, fc.Now(), fc.Now().Add(time.Minute)), time.Minute)
	// The node does not subscribe to other areas: to see that nothing
	// happened, send a good alert after it and look at what played.
	ok := alert("e7@x", msg, opening, closing, fc.Now(), fc.Now().Add(time.Minute))
	ctl.SendAreaCommand("d1", ok, time.Minute)
	waitAlertAudio(t, ctl, "e7@x")
	runUntil(t, fc, 30*time.Second, "good alert done", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 3 })
	waitEvents(t, ctl, "n1", []string{"received e7@x", "started e7@x", "completed e7@x"})
}

// TestAlertPreparedOnReceipt: an alert that starts a few seconds after it
// arrives is prepared at once (amplifier on, audio open), not only the
// amplifier's warm-up before its start, so that an area's nodes do not all
// prepare it at the same instant; it still starts at its instant.
func TestAlertPreparedOnReceipt(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	board := &fakeBoard{}
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc, board: board})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(3 * time.Second) // the warm-up is 500 ms
	ctl.SendAreaCommand("x1", alert("e3@x", msg, opening, closing, start, start.Add(time.Minute)), time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e3@x"})
	nodetest.Eventually(t, 5*time.Second, "amplifier on while the clock stands 3 s before the start", func() bool {
		return board.Snapshot().Amplifier
	})
	fc.Set(start)
	events := waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x"})
	if events[1].LateMS != 0 || !events[1].At.Equal(start) {
		t.Errorf("alert started at %v (%d ms late), want %v", events[1].At, events[1].LateMS, start)
	}
}

// TestAlertPrepareLikeAnyPlay: with AlertPrepare < 0 an alert is prepared
// like any play. One that arrives 3 s before its start is not prepared when
// it arrives (amplifier off, none of its audio open) but only the
// amplifier's warm-up before its start, and it still starts at its instant.
func TestAlertPrepareLikeAnyPlay(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	board := &fakeBoard{}
	dir := t.TempDir()
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc, board: board, dir: dir,
		tune: func(c *agent.Config) { c.AlertPrepare = -1 }})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	ids := []string{msg.ID, opening.ID, closing.ID}
	start := fc.Now().Add(3 * time.Second)
	ctl.SendAreaCommand("x1", alert("e3@x", msg, opening, closing, start, start.Add(time.Minute)), time.Minute)
	// The step that reports the alert's content ready is one that would
	// have prepared it, had it been prepared on receipt: it turns the
	// amplifier on and opens the audio before it sends its events.
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool {
		return slices.Equal(nodetest.ReadySummary(ctl.Events("n1")), []string{"e3@x"}) && len(n.a.Status().ContentMissing) == 0
	})
	waitEvents(t, ctl, "n1", []string{"received e3@x"})
	if board.Snapshot().Amplifier {
		t.Error("amplifier on 3 s before the start, want it off until the warm-up")
	}
	if open := openContent(t, dir, ids); len(open) > 0 {
		t.Errorf("alert audio open 3 s before the start: %v", open)
	}

	fc.Set(start.Add(-agent.DefaultAmplifierWarmup))
	nodetest.Eventually(t, 5*time.Second, "alert not prepared at the warm-up before its start", func() bool {
		return board.Snapshot().Amplifier && len(openContent(t, dir, ids)) > 0
	})
	fc.Set(start)
	events := waitEvents(t, ctl, "n1", []string{"received e3@x", "started e3@x"})
	if events[1].LateMS != 0 || !events[1].At.Equal(start) {
		t.Errorf("alert started at %v (%d ms late), want %v", events[1].At, events[1].LateMS, start)
	}
}

// openContent returns which of the content ids the process holds open in
// the node's cache under dir (Linux's /proc/self/fd).
func openContent(t *testing.T, dir string, ids []string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("open files are not visible here: %v", err)
	}
	cache, err := filepath.EvalSymlinks(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && filepath.Dir(p) == cache && slices.Contains(ids, filepath.Base(p)) {
			open = append(open, filepath.Base(p))
		}
	}
	return open
}

// TestAlertLateSkipsIntoItsChime: a node that has the alert after its
// start (its link was slow), with the chimes and the message cached,
// begins at once and leaves out as much of the opening chime's beginning
// as it is late, so that the rest plays on its area's timeline; its
// started event says both. Later than the chime's length less its last
// half second it plays the whole chime, as late as it is; within the
// 20 ms the issue allows, it skips nothing.
func TestAlertLateSkipsIntoItsChime(t *testing.T) {
	for _, tc := range []struct {
		name string
		late time.Duration
		skip bool
	}{
		{"late by 300 ms", 300 * time.Millisecond, true},
		{"late by 1.8 s of a 2 s chime", 1800 * time.Millisecond, false},
		{"within the tolerance", 10 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
			ctl := fakeClockController(t, fc)
			out := &pcmOutput{}
			n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc, tune: func(c *agent.Config) {
				// No wait before the kept chimes and message are fetched:
				// the fake clock stands still until they are in.
				c.Output, c.ContentKeepSpread = out, -1
			}})
			waitConnected(t, n)
			msg := ctl.AddContent(time.Second)
			opening := ctl.AddContent(2 * time.Second)
			closing := ctl.AddContent(600 * time.Millisecond)
			ctl.PublishDesired(desired("n1", 1, nil, opening, closing, msg))
			nodetest.Eventually(t, 10*time.Second, "the chimes and the message kept", func() bool {
				st := n.a.Status()
				return st.DesiredVersion == 1 && st.CacheBytes > 0 && len(st.ContentMissing) == 0
			})
			start := fc.Now()
			fc.Set(start.Add(tc.late))
			cmd := alert("e2@x", msg, opening, closing, start, start.Add(time.Minute))
			cmd.Alert.Occurrence.Repeat = 1
			ctl.SendAreaCommand("x1", cmd, time.Minute)
			events := waitEvents(t, ctl, "n1", []string{"received e2@x", "started e2@x", "completed e2@x"})
			began := events[1]
			if began.LateMS != tc.late.Milliseconds() {
				t.Errorf("started %d ms late, want %d", began.LateMS, tc.late.Milliseconds())
			}
			want := time.Duration(0)
			if tc.skip {
				want = tc.late
			}
			if got := time.Duration(began.ChimeSkippedMS) * time.Millisecond; got != want {
				t.Errorf("started event says %v of the chime skipped, want %v", got, want)
			}
			chime := decoded(t, nodeFile(t, ctl, opening))
			rest := slices.Concat(decoded(t, nodeFile(t, ctl, msg)), decoded(t, nodeFile(t, ctl, closing)))
			plays := out.Plays()
			if len(plays) != 1 {
				t.Fatalf("output got %d plays, want one", len(plays))
			}
			if wantPlay := slices.Concat(chime[nodeaudio.Bytes(want):], rest); !bytes.Equal(plays[0], wantPlay) {
				t.Errorf("output of %d bytes; want the chime from %v (%d bytes), the message and the closing chime (%d)", len(plays[0]), want, len(chime)-int(nodeaudio.Bytes(want)), len(rest))
			}
			if got, played := events[2].PlayedMS, (time.Duration(nodeaudio.Duration(int64(len(plays[0]))))).Milliseconds(); got != played {
				t.Errorf("completed event says %d ms played, the output had %d ms", got, played)
			}
		})
	}
}

// TestIdleSeesAHeldAlert: an emergency alert the node holds, due within
// the idle window, keeps the node from counting as idle, or an agent
// update would stop the agent (and later the trial child) right as the
// emergency is due. Idle looked only at the desired state.
func TestIdleSeesAHeldAlert(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: fc})
	waitConnected(t, n)

	news := ctl.AddContent(time.Second)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	// A desired state with nothing due for hours.
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("news", news, fc.Now().Add(3*time.Hour))}, news))
	waitEvents(t, ctl, "n1", []string{"received news"})

	start := fc.Now().Add(time.Minute)
	ctl.SendAreaCommand("d1", alert("e9@x", msg, opening, closing, start, start.Add(10*time.Minute)), 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received news", "received e9@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })

	idle, err := n.a.Idle(context.Background(), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if idle {
		t.Fatalf("Idle(2m) = true with emergency alert e9@x due in 1 minute: an update would restart the agent over it")
	}
}
