package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/promtest"
	"loaxa.vn/internal/rocard"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// resumingAlert is alert with the policy the controller sends: cut off
// by the agent stopping, it plays again from the beginning.
func resumingAlert(id string, ref, opening, closing protocol.ContentRef, start, expires time.Time) protocol.Command {
	cmd := alert(id, ref, opening, closing, start, expires)
	cmd.Alert.Occurrence.OnPreempt = protocol.PreemptResume
	return cmd
}

// TestAlertResumesAfterRestart: an agent stopped while an alert plays
// reports it suspended, and once started again on the same store plays
// it from the beginning (chimes and every repeat) and completes it. The
// alert's old command, replayed after the restart, is refused; the
// controller's resend of it changes nothing.
func TestAlertResumesAfterRestart(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	st, dir := store.NewMemory(), t.TempDir()
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n)

	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(time.Second)
	cmd := resumingAlert("e1@x", msg, opening, closing, start, start.Add(10*time.Minute))
	raw := ctl.SendAreaCommand("d1", cmd, 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e1@x"})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x"})
	fc.Advance(2 * time.Second) // into the first repeat
	n.stop(t)                   // the board restarts; its suspended event waits in the outbox
	if h, err := st.HeldAlerts(); err != nil || len(h.Alerts) != 1 || h.Alerts[0].Occurrence.ID != "e1@x" {
		t.Fatalf("store holds %+v, %v; want the alert", h, err)
	}

	fc.Advance(30 * time.Second)
	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n2)
	runUntil(t, fc, time.Minute, "alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 5 })
	events := waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "suspended e1@x interrupted", "started e1@x", "completed e1@x"})
	if late := events[3].LateMS; late < 32000 {
		t.Errorf("resumed %d ms after the start instant, want at least 32000 (the agent was off 30 s)", late)
	}
	if got := events[4].PlayedMS; got != 5300 {
		t.Errorf("played %d ms after the restart, want 5300: the whole template again", got)
	}

	rejected := n2.a.Status().Rejected
	ctl.Publish(ctl.Topics.Area("d1", protocol.ChanCmd), false, raw) // a replay of the stored packet
	nodetest.Eventually(t, 5*time.Second, "replayed alert not refused", func() bool { return n2.a.Status().Rejected == rejected+1 })
	ctl.SendCommand("n1", cmd) // a resend: signed anew, but the node has it
	later := fc.Now().Add(10 * time.Second)
	runUntil(t, fc, 20*time.Second, "ten seconds more", func() bool { return fc.Now().After(later) })
	waitEvents(t, ctl, "n1", []string{"received e1@x", "started e1@x", "suspended e1@x interrupted", "started e1@x", "completed e1@x"})
	if got := n2.a.Status().Rejected; got != rejected+1 {
		t.Errorf("%d messages refused after the restart, want only the replay", got-rejected)
	}
}

// TestAlertResumesAfterPowerCut: what a power cut leaves in the store —
// the alert held and marked started, no suspended event — makes a new
// agent report it interrupted and play it again from the beginning.
func TestAlertResumesAfterPowerCut(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(-3 * time.Second)
	cmd := resumingAlert("e2@x", msg, opening, closing, start, start.Add(10*time.Minute))

	st := cutOffStore(t, cmd, start)

	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: fc, store: st})
	waitConnected(t, n)
	// The content comes before the fake time moves, so the message is
	// there when the chime ends: what is measured is the play, not the
	// download racing the test's steps of fake time (a message after the
	// chime's end is waited for in silence, which counts as played).
	nodetest.Eventually(t, 5*time.Second, "alert content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	runUntil(t, fc, time.Minute, "alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 5 })
	events := waitEvents(t, ctl, "n1", []string{"received e2@x", "started e2@x", "suspended e2@x interrupted", "started e2@x", "completed e2@x"})
	if got := events[4].PlayedMS; got != 5300 {
		t.Errorf("played %d ms after the power cut, want 5300", got)
	}
	for _, e := range events {
		if !e.Drill {
			t.Errorf("event %s %s is not marked as a drill", e.Type, e.Occurrence)
		}
	}
}

// TestAlertExpiredOrCancelledAcrossRestart: an alert that expired while
// the agent was stopped is dropped with a final event that says so, and
// plays nothing; one cancelled before the stop stays cancelled, even when
// a copy of it arrives after the restart.
func TestAlertExpiredOrCancelledAcrossRestart(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1")
	st, dir := store.NewMemory(), t.TempDir()
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n)
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)

	// e3 plays when the agent stops and expires before it is back; e4 is
	// cancelled before it begins and expires later; e5 is held, not yet
	// begun, and expires while the agent is off.
	now := fc.Now()
	ctl.SendAreaCommand("x1", resumingAlert("e3@x", msg, opening, closing, now, now.Add(time.Minute)), time.Minute)
	// It starts as soon as its content is in, which may be before the
	// receipt reaches the controller: the received event first is enough.
	nodetest.Eventually(t, 5*time.Second, "e3 received", func() bool {
		s := nodetest.Summary(ctl.Events("n1"))
		return len(s) > 0 && s[0] == "received e3@x"
	})
	nodetest.Eventually(t, 5*time.Second, "alert content not fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	runUntil(t, fc, 10*time.Second, "e3 on air", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= 2 })
	e4 := resumingAlert("e4@x", msg, opening, closing, fc.Now().Add(20*time.Second), fc.Now().Add(10*time.Minute))
	ctl.SendAreaCommand("x1", e4, 10*time.Minute)
	ctl.SendAreaCommand("x1", protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: "e4@x"}, 10*time.Minute)
	e5 := resumingAlert("e5@x", msg, opening, closing, fc.Now().Add(40*time.Second), fc.Now().Add(50*time.Second))
	ctl.SendAreaCommand("x1", e5, 10*time.Minute)
	want := []string{"received e3@x", "started e3@x", "received e4@x", "failed e4@x cancelled", "received e5@x"}
	waitEvents(t, ctl, "n1", want)
	n.stop(t)
	want = append(want, "suspended e3@x interrupted") // sent after the restart

	fc.Advance(2 * time.Minute)
	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n2)
	want = append(want, "failed e3@x expired", "missed e5@x expired")
	waitEvents(t, ctl, "n1", want)
	ctl.SendCommand("n1", e4) // a late copy of the cancelled alert
	later := fc.Now().Add(20 * time.Second)
	runUntil(t, fc, 30*time.Second, "twenty seconds more", func() bool { return fc.Now().After(later) })
	waitEvents(t, ctl, "n1", want)
	if got := n2.out.Plays(); got != 0 {
		t.Errorf("the restarted agent played %d times, want none", got)
	}
	h, err := st.HeldAlerts()
	if err != nil {
		t.Fatal(err)
	}
	if ids := heldIDs(h); !slices.Equal(ids, []string(nil)) {
		t.Errorf("store still holds alerts %v", ids)
	}
	if _, ok := h.Cancelled["e4@x"]; !ok {
		t.Errorf("store forgot that e4@x was cancelled: %v", h.Cancelled)
	}
}

func heldIDs(h agent.HeldAlerts) []string {
	var out []string
	for _, al := range h.Alerts {
		out = append(out, al.Occurrence.ID)
	}
	return out
}

// TestRestoredAlertJudgedAgainOnTheCorrectedClock: the board comes back
// from a power cut with its clock ten minutes behind (no RTC) and an alert
// held that expired a minute ago. On its own clock the alert is still
// valid, so it plays again while the controller has not yet answered the
// time request. Once the controller corrects the clock the alert has
// expired: it stops with reason expired instead of playing on.
func TestRestoredAlertJudgedAgainOnTheCorrectedClock(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl, open := timeUnansweredController(t, fc)
	// Issued 15 minutes ago, expired a minute ago: on the board's clock
	// it began 5 minutes ago and has 9 to go.
	cmd := storedAlert{id: "e9@x", message: 10 * time.Second, began: -15 * time.Minute, expires: -time.Minute}.command(ctl, fc)
	st := store.NewMemory() // held, not marked begun
	if err := st.SetHeldAlerts(agent.HeldAlerts{Alerts: []protocol.Alert{*cmd.Alert}}); err != nil {
		t.Fatal(err)
	}

	board := clock.NewOffset(fc)
	board.Set(-10 * time.Minute)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: board, store: st})
	waitConnected(t, n)
	id := cmd.Alert.Occurrence.ID
	// The board's clock stands still until the time request is answered
	// (waitMeasured): the alert goes on air at once, its audio silence
	// until it comes.
	nodetest.Eventually(t, 10*time.Second, "the stale alert on air before the clock is corrected", func() bool {
		p := n.a.Status().Playing
		return p != nil && p.Occurrence == id
	})
	open() // the controller answers the time request now
	waitMeasured(t, n)
	final := func() *protocol.Event {
		for _, e := range ctl.Events("n1") {
			if e.Occurrence == id && (e.Type == protocol.EventFailed || e.Type == protocol.EventCompleted) {
				return &e
			}
		}
		return nil
	}
	runUntil(t, fc, time.Minute, "a final event of the alert", func() bool { return final() != nil })
	if e := final(); e.Type != protocol.EventFailed || e.Reason != protocol.ReasonExpired {
		t.Fatalf("the alert ended %s (%s), want failed with reason expired", e.Type, e.Reason)
	}
	if e := final(); e.PlayedMS >= 10000 {
		t.Errorf("played %d ms of the expired alert, want it stopped early", e.PlayedMS)
	}
	nodetest.Eventually(t, 5*time.Second, "expired alert still held", func() bool {
		h, err := st.HeldAlerts()
		return err == nil && len(h.Alerts) == 0
	})
}

// lostDevice is a sound device that fails for good: the first play stops
// after 0.5 s of audio, and every play after it at once, as oto does once
// ALSA could not recover a write (a USB sound card gone on a brownout).
type lostDevice struct {
	mu    sync.Mutex
	plays int
}

func (d *lostDevice) Play(ctx context.Context, pcm io.Reader) error {
	d.mu.Lock()
	d.plays++
	first := d.plays == 1
	d.mu.Unlock()
	if first {
		if _, err := io.CopyN(io.Discard, pcm, nodeaudio.Bytes(500*time.Millisecond)); err != nil {
			return err
		}
	}
	return fmt.Errorf("sound device: %w: snd_pcm_writei: No such device", audio.ErrDeviceLost)
}

func (d *lostDevice) Close() error { return nil }

func (d *lostDevice) Plays() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plays
}

// TestAlertCutByALostSoundDeviceResumesAfterRestart: the sound device
// fails for good half a second into an alert. The agent stores the alert
// suspended with reason audio-device and restarts (Config.Restart) rather
// than fail it and every play after it; started again with the device
// back, it reports the cut and plays the alert from the beginning to its
// end. Without a way to restart, the play fails as before.
func TestAlertCutByALostSoundDeviceResumesAfterRestart(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	st, dir := store.NewMemory(), t.TempDir()
	dev := &lostDevice{}
	restarts := make(chan error, 4)
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir,
		tune:      func(c *agent.Config) { c.Output = dev },
		restarted: func(cause error) { restarts <- cause }})
	waitConnected(t, n)

	start := sendCachedAlert(t, ctl, fc, n, "n1", "e1@x").start
	fc.Set(start)
	awaitDeviceLostRestart(t, restarts, "its sound device was lost mid-play")
	n.stop(t)
	if got := dev.Plays(); got != 1 {
		t.Errorf("%d plays on the lost device, want 1: nothing more begins once the agent restarts", got)
	}

	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n2)
	want := []string{"received e1@x", "started e1@x", "suspended e1@x audio-device", "started e1@x", "completed e1@x"}
	runUntil(t, fc, time.Minute, "alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	if got := events[4].PlayedMS; got != 5300 {
		t.Errorf("played %d ms after the restart, want 5300: the whole template again", got)
	}

	// An agent that cannot restart fails the play, as it did before.
	ctl2 := fakeClockController(t, fc)
	cred2 := ctl2.Credentials("n2", "x1", "d1")
	n3 := startAgent(t, cred2, options{clock: fc, tune: func(c *agent.Config) { c.Output = &lostDevice{} }})
	waitConnected(t, n3)
	fc.Set(sendCachedAlert(t, ctl2, fc, n3, "n2", "e2@x").start)
	waitEvents(t, ctl2, "n2", []string{"received e2@x", "started e2@x", "failed e2@x audio-device"})
}

// TestAlertOnANodeWithoutSoundDeviceWaitsForIt: an agent started without
// its sound device (audio.Missing) comes online and says so in its state;
// an alert due then is suspended with reason audio-device and the
// amplifier stays off; the agent restarted with the device plays it
// whole, before its deadline.
func TestAlertOnANodeWithoutSoundDeviceWaitsForIt(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	st, dir := store.NewMemory(), t.TempDir()
	hw := &fakeBoard{}
	missing := audio.Missing{Err: errors.New(`ALSA: cannot find card "0"`)}
	n := startAgent(t, cred, options{clock: fc, store: st, dir: dir, board: hw, tune: func(c *agent.Config) { c.Output = missing }})
	waitConnected(t, n)
	if got := n.a.Status().NoSoundDevice; got != missing.Err.Error() {
		t.Errorf("state says no_sound_device %q, want %q", got, missing.Err)
	}
	nodetest.Eventually(t, 5*time.Second, "a state saying the device is missing at the controller", func() bool {
		states := ctl.Log("n1").States
		return len(states) > 0 && states[len(states)-1].NoSoundDevice != ""
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.a.Collectors()...)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	if v, ok := promtest.Scrape(t, srv.URL).Value("loaxa_node_sound_device_missing"); !ok || v != 1 {
		t.Errorf("loaxa_node_sound_device_missing = %v (present %v), want 1", v, ok)
	}

	start := sendCachedAlert(t, ctl, fc, n, "n1", "e1@x").start
	fc.Set(start)
	waitEvents(t, ctl, "n1", []string{"received e1@x", "suspended e1@x audio-device"})
	n.stop(t)
	if got := nodetest.Summary(ctl.Events("n1")); len(got) != 2 {
		t.Errorf("events %q, want the alert received and suspended only: suspended once, and not begun", got)
	}
	if flips := hw.Flips(); slices.Contains(flips, true) {
		t.Errorf("amplifier switched %v without a sound device, want it left off", flips)
	}

	n2 := startAgent(t, cred, options{clock: fc, store: st, dir: dir})
	waitConnected(t, n2)
	if got := n2.a.Status().NoSoundDevice; got != "" {
		t.Errorf("with the device, state says no_sound_device %q", got)
	}
	want := []string{"received e1@x", "suspended e1@x audio-device", "started e1@x", "completed e1@x"}
	runUntil(t, fc, time.Minute, "alert played after the restart", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	if got := events[3].PlayedMS; got != 5300 {
		t.Errorf("played %d ms after the restart, want 5300: the whole template", got)
	}
}

// TestAlertOnACardThatTakesNoWrites: a board whose SD card went read-only
// runs on a store in memory (the node program does so, storage-failed);
// the chimes it cached on the card play from there, and an alert's new
// message, which the card cannot take, is downloaded into memory: the
// alert plays whole, and nothing is written to the card.
func TestAlertOnACardThatTakesNoWrites(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl := fakeClockController(t, fc)
	cred := ctl.Credentials("n1", "x1", "d1")
	dir := t.TempDir()
	n := startAgent(t, cred, options{clock: fc, dir: dir})
	waitConnected(t, n)
	before := sendCachedAlert(t, ctl, fc, n, "n1", "e1@x") // its chimes cached on the card
	n.stop(t)
	onCard, err := os.ReadDir(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}

	rocard.ReadOnly(t, dir)
	mem := t.TempDir()
	fault := errors.New("open node store: read-only file system")
	n2 := startAgent(t, cred, options{clock: fc, dir: dir, tune: func(c *agent.Config) {
		c.StoreFault, c.ContentInMemory = fault, mem
	}})
	waitConnected(t, n2)
	nodetest.Eventually(t, 5*time.Second, "a state saying the store is in memory", func() bool {
		states := ctl.Log("n1").States
		return len(states) > 0 && states[len(states)-1].StorageFault == fault.Error()
	})
	msg := ctl.AddContent(1500 * time.Millisecond) // never on the card
	start := fc.Now().Add(time.Second)
	ctl.SendAreaCommand("d1", resumingAlert("e2@x", msg, before.opening, before.closing, start, start.Add(10*time.Minute)), 10*time.Minute)
	waitEvents(t, ctl, "n1", []string{"received e2@x"}) // from the new store's outbox
	// Downloaded on real time before the fake clock runs the alert.
	nodetest.Eventually(t, 5*time.Second, "the new message downloaded into memory", func() bool { return len(n2.a.Status().ContentMissing) == 0 })
	want := []string{"received e2@x", "started e2@x", "completed e2@x"}
	runUntil(t, fc, time.Minute, "the alert played", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	// The 0.7 s chime, the 1.5 s message three times 0.5 s apart, the
	// 0.6 s chime.
	if got := events[len(events)-1].PlayedMS; got != 6800 {
		t.Errorf("played %d ms, want 6800: the whole template", got)
	}
	if _, err := os.Stat(filepath.Join(mem, msg.ID)); err != nil {
		t.Errorf("the new message is not in memory: %v", err)
	}
	if after, _ := os.ReadDir(filepath.Join(dir, "content")); len(after) != len(onCard) {
		t.Errorf("the card holds %d files after, %d before", len(after), len(onCard))
	}
}

// idleFailingDevice plays nothing and fails for good, while idle, once
// failed is set; it says so through Err (agent.CheckedOutput).
type idleFailingDevice struct {
	*audio.None
	failed atomic.Bool
}

func (d *idleFailingDevice) Err() error {
	if d.failed.Load() {
		return fmt.Errorf("oto: ALSA error at snd_pcm_writei: %w", audio.ErrDeviceLost)
	}
	return nil
}

// TestSoundDeviceLostWhileIdleRestartsTheAgent: a device that fails
// between plays restarts the agent within StatePoll, not when the next
// play fails on it; one that works does not.
func TestSoundDeviceLostWhileIdleRestartsTheAgent(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	dev := &idleFailingDevice{None: audio.NewNone(nil)}
	restarts := make(chan error, 4)
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{statePoll: 50 * time.Millisecond,
		tune:      func(c *agent.Config) { c.Output = dev },
		restarted: func(cause error) { restarts <- cause }})
	waitConnected(t, n)
	select {
	case cause := <-restarts:
		t.Fatalf("restarted with the device working: %v", cause)
	case <-time.After(300 * time.Millisecond): // six looks at the device
	}
	dev.failed.Store(true)
	awaitDeviceLostRestart(t, restarts, "its sound device failed while idle")
}

// awaitDeviceLostRestart waits for the agent to ask for a restart (its
// Config.Restart sends the cause on restarts) for a lost sound device.
func awaitDeviceLostRestart(t *testing.T, restarts <-chan error, after string) {
	t.Helper()
	select {
	case cause := <-restarts:
		if !errors.Is(cause, audio.ErrDeviceLost) {
			t.Errorf("restarted for %v, want the lost sound device", cause)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the agent did not restart after %s", after)
	}
}

// cachedAlert is what sendCachedAlert sent.
type cachedAlert struct {
	msg, opening, closing protocol.ContentRef
	start                 time.Time
}

// sendCachedAlert sends alert id to area d1 with the controller's resume
// policy: a 1 s message between chimes of 0.7 and 0.6 s, due a second
// from now and valid for ten minutes; and waits until node n (nodeID) has
// it and its content cached.
func sendCachedAlert(t *testing.T, ctl *nodetest.Controller, fc *clock.Fake, n *node, nodeID, id string) cachedAlert {
	t.Helper()
	msg := ctl.AddContent(time.Second)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	start := fc.Now().Add(time.Second)
	ctl.SendAreaCommand("d1", resumingAlert(id, msg, opening, closing, start, start.Add(10*time.Minute)), 10*time.Minute)
	waitEvents(t, ctl, nodeID, []string{"received " + id})
	nodetest.Eventually(t, 5*time.Second, "the alert's content cached", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	return cachedAlert{msg: msg, opening: opening, closing: closing, start: start}
}

// TestRestoredAlertPlaysToItsEndPastItsExpiry: a board whose clock is
// right (50 ms behind the controller) restarts mid-alert; the alert, held
// again, rightly plays again from the beginning before its expiry. Its
// expiry passes while it plays, and only then does the first clock
// correction come (the modem took a while after the power cut). As any
// alert that began before its expiry, it plays to its end: the correction
// judges the start-up, not now (it was cut off mid-message as "failed
// expired").
func TestRestoredAlertPlaysToItsEndPastItsExpiry(t *testing.T) {
	r := startAfterPowerCut(t, -50*time.Millisecond,
		storedAlert{id: "r@x", message: 10 * time.Second, began: -3 * time.Second, expires: 4 * time.Second, repeat: 1})
	fc, ctl, n, open := r.fc, r.ctl, r.n, r.open
	o := r.cmd.Alert.Occurrence
	nodetest.Eventually(t, 5*time.Second, "alert content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	runUntil(t, fc, time.Minute, "the alert on air again", func() bool {
		p := n.a.Status().Playing
		return p != nil && p.Occurrence == o.ID
	})
	// Past its expiry, well inside the 11.3 s it plays.
	runUntil(t, fc, time.Minute, "six seconds in", func() bool { return !fc.Now().Before(o.Expires.Add(2 * time.Second)) })
	open() // the link is up: the first clock correction (+50 ms)
	runUntil(t, fc, time.Minute, "a final event", func() bool {
		for _, e := range ctl.Events("n1") {
			if e.Occurrence == o.ID && (e.Type == protocol.EventFailed || e.Type == protocol.EventCompleted) {
				return true
			}
		}
		return false
	})
	events := waitEvents(t, ctl, "n1", []string{"received r@x", "started r@x", "suspended r@x interrupted", "started r@x", "completed r@x"})
	if events[4].PlayedMS != 11300 {
		t.Errorf("played %d ms, want the whole 11300", events[4].PlayedMS)
	}
}

// cutOffStore is a store as a power cut leaves it mid-alert: cmd's alert
// held, and marked started (received and started reported) at start.
func cutOffStore(t *testing.T, cmd protocol.Command, start time.Time) *store.Memory {
	t.Helper()
	st := store.NewMemory()
	cutOff(t, st, cmd, start)
	return st
}

// cutOff puts into st what a power cut leaves mid-alert (cutOffStore).
func cutOff(t *testing.T, st agent.Store, cmd protocol.Command, start time.Time) {
	t.Helper()
	if err := st.SetHeldAlerts(agent.HeldAlerts{Alerts: []protocol.Alert{*cmd.Alert}}); err != nil {
		t.Fatal(err)
	}
	o := cmd.Alert.Occurrence
	mark := agent.Progress{Occurrence: o.ID, Announcement: o.Announcement, Content: o.Content, Start: o.Start,
		Phase: agent.PhaseStarted, ReceivedAt: start, StartedAt: start, Drill: o.Drill}
	if _, err := st.Append([]protocol.Event{
		{Type: protocol.EventReceived, At: start, Occurrence: o.ID, Announcement: o.Announcement, Content: o.Content, Drill: true},
		{Type: protocol.EventStarted, At: start, Occurrence: o.ID, Announcement: o.Announcement, Content: o.Content, Drill: true},
	}, []agent.Progress{mark}); err != nil {
		t.Fatal(err)
	}
}

// timeUnansweredController is a controller on fake time fc
// (fakeClockController) whose answers to the node's time requests wait
// until open is called: the board's clock stays unmeasured until then.
// open also runs at cleanup, before the HTTP server closes, even if the
// test fails.
func timeUnansweredController(t *testing.T, fc *clock.Fake) (ctl *nodetest.Controller, open func()) {
	t.Helper()
	ctl = fakeClockController(t, fc)
	gate := make(chan struct{})
	open = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
	ctl.Clock = func() time.Time { <-gate; return fc.Now() }
	return ctl, open
}

// waitMeasured waits, with the board's clock standing still, until n has
// measured the controller's time. A time request is a real round trip
// that waits 5 s of the board's clock (timesync.go): a test that steps a
// fake clock on before the answer is in cuts the measurement (or, a step
// within the wait, measures a round trip as long as the step and takes
// half of it for the offset), and the next one comes 15–45 s of the
// board's clock later.
func waitMeasured(t testing.TB, n *node) {
	t.Helper()
	nodetest.Eventually(t, 10*time.Second, "the clock measured", func() bool { return n.a.Status().ClockUncertaintyUS > 0 })
}

// storedAlert is an alert a board held when it was stopped: a message
// between chimes of 0.7 and 0.6 s, with the controller's resume policy.
type storedAlert struct {
	id      string
	message time.Duration // the message's length
	began   time.Duration // its start, from the controller's time now
	expires time.Duration // its expiry, from the controller's time now
	repeat  int           // how often the message plays; 0: alert's 3
}

// command adds a's message and chimes to ctl and returns a's alert, timed
// from fc's now.
func (a storedAlert) command(ctl *nodetest.Controller, fc *clock.Fake) protocol.Command {
	msg := ctl.AddContent(a.message)
	opening := ctl.AddContent(700 * time.Millisecond)
	closing := ctl.AddContent(600 * time.Millisecond)
	cmd := resumingAlert(a.id, msg, opening, closing, fc.Now().Add(a.began), fc.Now().Add(a.expires))
	if a.repeat != 0 {
		cmd.Alert.Occurrence.Repeat = a.repeat
	}
	return cmd
}

// poweredBack is a board back from a power cut (startAfterPowerCut).
type poweredBack struct {
	fc    *clock.Fake
	ctl   *nodetest.Controller
	open  func() // the controller answers time requests from now on
	cmd   protocol.Command
	start time.Time // when the alert began
	st    *store.Memory
	n     *node
}

// startAfterPowerCut starts node n1 (areas x1 and d1) as a board comes
// back from a power cut mid-alert: the store holds a's alert marked
// started (cutOffStore), the board's clock is off by boardClock from the
// controller's fake time, and the controller does not answer the node's
// time request until open (timeUnansweredController).
func startAfterPowerCut(t *testing.T, boardClock time.Duration, a storedAlert) poweredBack {
	t.Helper()
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	ctl, open := timeUnansweredController(t, fc)
	cmd := a.command(ctl, fc)
	start := fc.Now().Add(a.began)
	st := cutOffStore(t, cmd, start)
	board := clock.NewOffset(fc)
	board.Set(boardClock)
	n := startAgent(t, ctl.Credentials("n1", "x1", "d1"), options{clock: board, store: st})
	waitConnected(t, n)
	return poweredBack{fc: fc, ctl: ctl, open: open, cmd: cmd, start: start, st: st, n: n}
}

// TestStoredAlertKeptOnABoardClockAheadUntilMeasured: a board without an
// RTC battery reboots in a typhoon (a power cut) with its clock two hours
// ahead, holding an alert that is valid for another hour. On its own clock
// the alert had expired: the agent dropped it before it had asked the
// controller the time, and the controller, which had the node's receipt,
// sent it nothing again, so the pole stayed silent. An alert that looks
// expired only on a clock not yet measured must be kept, and not played,
// until the first measurement; on the corrected clock it is valid, and it
// plays again from the beginning, as any alert held after a restart.
func TestStoredAlertKeptOnABoardClockAheadUntilMeasured(t *testing.T) {
	r := startAfterPowerCut(t, 2*time.Hour, storedAlert{id: "a@x", message: time.Second, began: -3 * time.Second, expires: time.Hour})
	fc, ctl, n, st := r.fc, r.ctl, r.n, r.st
	nodetest.Eventually(t, 5*time.Second, "alert content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	waitEvents(t, ctl, "n1", []string{"received a@x", "started a@x"}) // from the outbox
	if h, err := st.HeldAlerts(); err != nil || len(h.Alerts) != 1 {
		t.Fatalf("before the clock is measured the store holds %+v (%v); want the alert kept", h, err)
	}
	if p := n.a.Status().Playing; p != nil || n.out.Plays() != 0 {
		t.Errorf("playing %+v (%d plays) before the clock is measured; want nothing: the alert looks expired on the board's clock", p, n.out.Plays())
	}

	r.open() // the controller answers the time request: two hours back
	waitMeasured(t, n)
	want := []string{"received a@x", "started a@x", "suspended a@x interrupted", "started a@x", "completed a@x"}
	runUntil(t, fc, time.Minute, "the alert played again", func() bool { return len(nodetest.Summary(ctl.Events("n1"))) >= len(want) })
	events := waitEvents(t, ctl, "n1", want)
	if got := events[4].PlayedMS; got != 5300 {
		t.Errorf("played %d ms after the restart, want 5300: the whole template again", got)
	}
}

// TestStoredAlertJudgedAtAFirstMeasurementThatMovesNothing: the board's
// clock is half a millisecond ahead and a held alert expired a minute
// ago. The first measurement, which comes once the node has nothing else
// to do, moves the clock by less than the agent logs or acts on for a
// correction; it must still judge the alert kept aside until it, and
// drop it at once (failed, expired), not an hour later.
func TestStoredAlertJudgedAtAFirstMeasurementThatMovesNothing(t *testing.T) {
	r := startAfterPowerCut(t, 500*time.Microsecond, storedAlert{id: "b@x", message: time.Second, began: -10 * time.Minute, expires: -time.Minute})
	ctl, n := r.ctl, r.n
	nodetest.Eventually(t, 5*time.Second, "alert content fetched", func() bool { return len(n.a.Status().ContentMissing) == 0 })
	waitEvents(t, ctl, "n1", []string{"received b@x", "started b@x"})
	nodetest.Eventually(t, 5*time.Second, "outbox acknowledged", func() bool { return n.a.Status().Outbox == 0 })
	// The fake time stands still: only the measurement can end the wait.
	r.open()
	waitEvents(t, ctl, "n1", []string{"received b@x", "started b@x", "failed b@x expired"})
	if got := n.out.Plays(); got != 0 {
		t.Errorf("%d plays of an expired alert, want none", got)
	}
}

// TestStoredAlertDroppedWhenTheClockIsNeverMeasured: a board two hours
// ahead holds an alert that looks expired, and the controller never
// answers its time request (unreachable, or too old to sign its time).
// The alert is kept, not played, for an hour; then it is judged on the
// board's own clock, as before, and dropped (failed, expired), so that
// its delivery does not read as sounding for ever.
func TestStoredAlertDroppedWhenTheClockIsNeverMeasured(t *testing.T) {
	r := startAfterPowerCut(t, 2*time.Hour, storedAlert{id: "c@x", message: time.Second, began: -3 * time.Second, expires: time.Hour})
	fc, ctl, n, st := r.fc, r.ctl, r.n, r.st
	waitEvents(t, ctl, "n1", []string{"received c@x", "started c@x"})
	if h, err := st.HeldAlerts(); err != nil || len(h.Alerts) != 1 {
		t.Fatalf("before the clock is measured the store holds %+v (%v); want the alert kept", h, err)
	}
	fc.Advance(time.Hour)
	waitEvents(t, ctl, "n1", []string{"received c@x", "started c@x", "failed c@x expired"})
	if got := n.out.Plays(); got != 0 {
		t.Errorf("%d plays, want none: on the board's clock the alert had expired", got)
	}
	nodetest.Eventually(t, 5*time.Second, "the dropped alert still stored", func() bool {
		h, err := st.HeldAlerts()
		return err == nil && len(h.Alerts) == 0
	})
}

// TestStoredAlertKeptAsideCanBeCancelled: an officer cancels an alert
// that a board two hours ahead keeps aside after a restart (the cancel
// valid long enough to pass on that clock). It ends failed, cancelled,
// and does not play once the clock is measured.
func TestStoredAlertKeptAsideCanBeCancelled(t *testing.T) {
	r := startAfterPowerCut(t, 2*time.Hour, storedAlert{id: "d@x", message: time.Second, began: -3 * time.Second, expires: time.Hour})
	fc, ctl, n := r.fc, r.ctl, r.n
	waitEvents(t, ctl, "n1", []string{"received d@x", "started d@x"})
	ctl.SendAreaCommand("d1", protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: "d@x"}, 3*time.Hour)
	want := []string{"received d@x", "started d@x", "failed d@x cancelled"}
	waitEvents(t, ctl, "n1", want)
	r.open()
	nodetest.Eventually(t, 5*time.Second, "clock measured", func() bool { return n.a.Status().ClockUncertaintyUS > 0 })
	runUntil(t, fc, 10*time.Second, "ten seconds", func() bool { return fc.Now().After(r.start.Add(13 * time.Second)) })
	waitEvents(t, ctl, "n1", want)
	if got := n.out.Plays(); got != 0 {
		t.Errorf("%d plays of the cancelled alert, want none", got)
	}
}

// TestIdleSeesAnAlertKeptAside: a board two hours ahead keeps aside a
// stored alert valid for another hour until its clock is measured. Idle
// looked only at the alerts held, so an agent update could restart the
// agent meanwhile: the alert came back kept aside, but the restart cost
// the warning its time (the wait for the measurement began again). While
// an alert is kept aside the node is not idle; once it is judged (here
// dropped on the board's clock after the hour without a measurement), it
// is.
func TestIdleSeesAnAlertKeptAside(t *testing.T) {
	r := startAfterPowerCut(t, 2*time.Hour, storedAlert{id: "k@x", message: time.Second, began: -3 * time.Second, expires: time.Hour})
	fc, ctl, n := r.fc, r.ctl, r.n
	waitEvents(t, ctl, "n1", []string{"received k@x", "started k@x"})
	idle := func() bool {
		t.Helper()
		idle, err := n.a.Idle(context.Background(), 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return idle
	}
	if idle() {
		t.Fatal("Idle(2m) = true while alert k@x is kept aside until the clock is measured: an update would restart the agent over it")
	}
	fc.Advance(time.Hour) // never measured: judged on the board's clock, dropped
	waitEvents(t, ctl, "n1", []string{"received k@x", "started k@x", "failed k@x expired"})
	if !idle() {
		t.Error("Idle(2m) = false once the alert kept aside was dropped, nothing else due")
	}
}
