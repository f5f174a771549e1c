package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// board is an agent's install directory: exe, whose bytes are the
// version it holds, and Previous(exe).
type board struct {
	t   *testing.T
	exe string
	clk *clock.Fake
	// outbox, when set, is the node's outbox (Probation.Outbox).
	outbox *[]protocol.Event
}

func newBoard(t *testing.T, running string) *board {
	b := &board{t: t, exe: filepath.Join(t.TempDir(), "loaxa-node"), clk: clock.NewFake(time.Date(2026, 9, 6, 8, 0, 0, 0, time.UTC))}
	b.write(b.exe, running)
	return b
}

func (b *board) write(path, version string) {
	b.t.Helper()
	if err := os.WriteFile(path, []byte(version), 0o755); err != nil {
		b.t.Fatal(err)
	}
}

// running is the version at exe.
func (b *board) running() string {
	b.t.Helper()
	raw, err := os.ReadFile(b.exe)
	if err != nil {
		b.t.Fatalf("no agent at %s: %v", b.exe, err)
	}
	return string(raw)
}

// update installs version as the running agent does after a trial.
func (b *board) update(version string) error {
	if err := BeginProbation(b.exe, Marker{Version: version, Previous: b.running(), Since: b.clk.Now()}); err != nil {
		return err
	}
	newBin := filepath.Join(filepath.Dir(b.exe), ".loaxa-node.new")
	b.write(newBin, version)
	return Install(newBin, b.exe)
}

// start is a start of the agent at exe.
func (b *board) start() (Verdict, error) { return b.startFrom("") }

// onProbation installs version and starts it: the release on probation,
// the one running before it kept to go back to.
func (b *board) onProbation(t *testing.T, version string) {
	t.Helper()
	if err := b.update(version); err != nil {
		t.Fatal(err)
	}
	if v, err := b.start(); err != nil || !v.On {
		t.Fatalf("first start of %s: %+v, %v; want it on probation", version, v, err)
	}
}

// startFrom is a start of the agent at exe, exec'd by an agent older than
// probation that updated it from the release from.
func (b *board) startFrom(from string) (Verdict, error) {
	p := &Probation{Exe: b.exe, Version: b.running(), Period: DefaultProbation, Clock: b.clk, Log: slog.New(slog.DiscardHandler)}
	if b.outbox != nil {
		p.Outbox = func(ev protocol.Event) error {
			*b.outbox = append(*b.outbox, ev)
			return nil
		}
	}
	return p.Start(from)
}

// updateWithoutProbation installs version as an agent older than
// probation does: no marker.
func (b *board) updateWithoutProbation(version string) {
	b.t.Helper()
	newBin := filepath.Join(filepath.Dir(b.exe), ".loaxa-node.new")
	b.write(newBin, version)
	if err := Install(newBin, b.exe); err != nil {
		b.t.Fatal(err)
	}
}

func (b *board) marker() *Marker {
	b.t.Helper()
	m, err := readMarker(b.exe)
	if err != nil {
		b.t.Fatal(err)
	}
	return m
}

// A release that passed its trial and then crashed at every start (at its
// first play, at the first alert) was restarted by systemd for ever: the
// pole stayed silent until a technician climbed it to put the previous
// binary back. It must start at most MaxStarts times; the next start puts
// the previous release back, and that one reports update-failed, naming the
// rejected release and why.
func TestCrashingReleaseIsRolledBack(t *testing.T) {
	b := newBoard(t, "1.0.0")
	if err := b.update("2.0.0"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= MaxStarts; i++ {
		v, err := b.start()
		if err != nil || !v.On || v.From != "1.0.0" || v.Exec || len(v.Events) > 0 {
			t.Fatalf("start %d: %+v, %v; want on probation from 1.0.0", i, v, err)
		}
		if m := b.marker(); m.Starts != i {
			t.Fatalf("start %d: the marker counts %d", i, m.Starts)
		}
		b.clk.Advance(2 * time.Minute) // it crashes before passing
	}
	v, err := b.start()
	if err != nil || !v.Exec {
		t.Fatalf("start %d: %+v, %v; want the previous agent put back and exec'd", MaxStarts+1, v, err)
	}
	if got := b.running(); got != "1.0.0" {
		t.Fatalf("after the rollback %s is at exe, want 1.0.0", got)
	}
	if _, err := os.Stat(Previous(b.exe)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous agent is still kept beside (%v): it is the one running", err)
	}

	// The previous agent, exec'd, reports it.
	v, err = b.start()
	want := protocol.Event{Type: protocol.EventUpdateFailed, At: b.clk.Now().UTC(), Version: "2.0.0",
		Reason: "rolled back from 2.0.0: it started 3 times in 6m0s without running 10m0s"}
	if err != nil || v.On || v.Exec || !v.EndAfterReport || len(v.Events) != 1 || v.Events[0] != want {
		t.Fatalf("the previous agent's start: %+v, %v; want to report %+v", v, err, want)
	}
	p := &Probation{Exe: b.exe}
	if err := p.End(); err != nil {
		t.Fatal(err)
	}
	if v, err := b.start(); err != nil || v.On || v.Exec || len(v.Events) > 0 {
		t.Fatalf("a later start: %+v, %v; want nothing to do", v, err)
	}
}

// A release that ran but never healthy for its period (it kept losing its
// link, its main loop stuck) until a restart long after its install is
// put back as well.
func TestReleaseStillOnProbationAfterItsDeadlineIsRolledBack(t *testing.T) {
	b := newBoard(t, "1.0.0")
	b.onProbation(t, "2.0.0")
	b.clk.Advance(6 * DefaultProbation)
	if v, err := b.start(); err != nil || !v.Exec {
		t.Fatalf("a start after the deadline: %+v, %v; want a rollback", v, err)
	}
	v, _ := b.start()
	if len(v.Events) != 1 || v.Events[0].Reason != "rolled back from 2.0.0: it did not run 10m0s in a row within 1h0m0s of its install" {
		t.Fatalf("the previous agent reports %+v", v.Events)
	}
}

// watching is p.Watch run in the background on the board's clock, each of
// its checks answered by the test.
type watching struct {
	t       *testing.T
	clk     *clock.Fake
	every   time.Duration
	answers chan Check
	result  chan error
}

func watch(t *testing.T, b *board, p *Probation) *watching {
	w := &watching{t: t, clk: b.clk, every: p.Period / 20, answers: make(chan Check), result: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		w.result <- p.Watch(ctx, func(ctx context.Context) Check {
			select {
			case c := <-w.answers:
				return c
			case <-ctx.Done():
				return Check{}
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-w.result
	})
	return w
}

// tick answers one check with c, then moves the clock to the next; Watch
// must not have returned.
func (w *watching) tick(c Check) {
	w.t.Helper()
	w.answers <- c
	for deadline := time.Now().Add(10 * time.Second); w.clk.Timers() == 0; runtime.Gosched() {
		select {
		case err := <-w.result:
			w.result <- err // for the cleanup
			w.t.Fatalf("Watch returned at %v: %v", w.clk.Now(), err)
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatal("Watch does not wait for its next check")
		}
	}
	w.clk.Advance(w.every)
}

// last answers one check with c and returns what Watch returned then.
func (w *watching) last(c Check) error {
	w.answers <- c
	err := <-w.result
	w.result <- err // for the cleanup
	return err
}

// A release that runs healthy for its period in a row passes: the marker
// goes, and later starts are not counted.
func TestHealthyReleasePassesProbation(t *testing.T) {
	b := newBoard(t, "1.0.0")
	b.onProbation(t, "2.0.0")
	p := &Probation{Exe: b.exe, Version: "2.0.0", Period: DefaultProbation, Clock: b.clk}
	w := watch(t, b, p)
	healthy := Check{Healthy: true, Reached: true}
	start := b.clk.Now()
	for b.clk.Now().Sub(start) < DefaultProbation/2 {
		w.tick(healthy)
	}
	w.tick(Check{}) // its link drops: the period starts again
	again := b.clk.Now()
	for b.clk.Now().Sub(again) < DefaultProbation {
		w.tick(healthy)
	}
	if err := w.last(healthy); err != nil {
		t.Fatal(err)
	}
	if got := b.clk.Now().Sub(again); got != DefaultProbation {
		t.Fatalf("passed after %v healthy in a row, want %v", got, DefaultProbation)
	}
	if err := p.End(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxStarts+1; i++ {
		if v, err := b.start(); err != nil || v.On || v.Exec || len(v.Events) > 0 {
			t.Fatalf("a start after passing: %+v, %v; want nothing to do", v, err)
		}
	}
	if got := b.running(); got != "2.0.0" {
		t.Fatalf("%s runs, want 2.0.0 kept", got)
	}
}

// A release that passed its trial but, installed, never connected (its
// link reached the broker and could not speak to it) was kept: only a
// start was judged, a board runs for months between starts, and all that
// time it heard no alert; only the canary's silence halted the rollout,
// after 40 minutes. A release that has run its probation's period without
// once being connected, while its link reached the broker at every check,
// is put back; one whose board has no network (the broker not reached, or
// refusing the node) is not, however long, nor one that was connected
// once (the network's doing afterwards, as far as it can tell).
func TestReleaseThatNeverConnectsIsRolledBack(t *testing.T) {
	reached, offline := Check{Reached: true}, Check{}

	t.Run("no network for hours", func(t *testing.T) {
		b := newBoard(t, "1.0.0")
		if err := b.update("2.0.0"); err != nil {
			t.Fatal(err)
		}
		b.start()
		w := watch(t, b, &Probation{Exe: b.exe, Version: "2.0.0", Period: DefaultProbation, Clock: b.clk})
		start := b.clk.Now()
		for b.clk.Now().Sub(start) < 3*time.Hour {
			w.tick(offline)
		}
		// Reached a while, then the 4G drops again: not a whole period.
		for i := 0; i < 19; i++ {
			w.tick(reached)
		}
		w.tick(offline)
		for i := 0; i < 19; i++ {
			w.tick(reached)
		}
		if got := b.running(); got != "2.0.0" {
			t.Fatalf("%s runs, want 2.0.0 kept", got)
		}
	})

	t.Run("connected once", func(t *testing.T) {
		b := newBoard(t, "1.0.0")
		if err := b.update("2.0.0"); err != nil {
			t.Fatal(err)
		}
		b.start()
		w := watch(t, b, &Probation{Exe: b.exe, Version: "2.0.0", Period: DefaultProbation, Clock: b.clk})
		w.tick(Check{Healthy: true, Reached: true})
		start := b.clk.Now()
		for b.clk.Now().Sub(start) < 2*DefaultProbation {
			w.tick(reached)
		}
	})

	t.Run("the broker reached, never connected", func(t *testing.T) {
		b := newBoard(t, "1.0.0")
		var outbox []protocol.Event
		b.outbox = &outbox
		b.onProbation(t, "2.0.0")
		p := &Probation{Exe: b.exe, Version: "2.0.0", Period: DefaultProbation, Clock: b.clk, Log: slog.New(slog.DiscardHandler)}
		w := watch(t, b, p)
		for i := 0; i < 10; i++ {
			w.tick(offline) // not connected yet
		}
		start := b.clk.Now()
		for b.clk.Now().Sub(start) < DefaultProbation {
			w.tick(reached)
		}
		err := w.last(reached)
		if !errors.Is(err, ErrNeverConnected) {
			t.Fatalf("Watch after %v reached and never connected: %v; want ErrNeverConnected", b.clk.Now().Sub(start), err)
		}
		report := func(ev protocol.Event) error {
			outbox = append(outbox, ev)
			return nil
		}
		if err := p.RollBack(err.Error(), report); err != nil {
			t.Fatal(err)
		}
		if got := b.running(); got != "1.0.0" {
			t.Fatalf("%s at exe after the rollback, want 1.0.0", got)
		}
		want := protocol.Event{Type: protocol.EventUpdateFailed, At: b.clk.Now().UTC(), Version: "2.0.0",
			Reason: "rolled back from 2.0.0: it ran 10m0s without once connecting to the broker, which its link reached all along"}
		if len(outbox) != 1 || outbox[0] != want {
			t.Fatalf("outbox %+v; want %+v", outbox, want)
		}
		if v, err := b.start(); err != nil || v.Exec || v.On || !v.EndAfterReport || len(v.Events) != 0 {
			t.Fatalf("1.0.0's start: %+v, %v; want the marker ended, nothing more to report", v, err)
		}
	})
}

// A rollout of 3.0.0 reached a board whose 2.0.0 was still on probation,
// 1.0.0 kept behind it. Installing 3.0.0 kept the unproven 2.0.0 to go back
// to and threw 1.0.0 away: 3.0.0 crashed, the board went back to 2.0.0,
// which nothing had proven and which then ran without probation; crashing
// too, it left the pole silent. No release may replace one on probation:
// the install is refused until 2.0.0 passed, the board keeps 1.0.0 to go
// back to, and 3.0.0, once installed, has the proven 2.0.0 behind it.
func TestNoReleaseReplacesOneOnProbation(t *testing.T) {
	b := newBoard(t, "1.0.0")
	b.onProbation(t, "2.0.0")
	if on, err := OnProbation(b.exe, "2.0.0"); err != nil || !on {
		t.Fatalf("OnProbation(2.0.0) = %v, %v; want true", on, err)
	}
	if err := b.update("3.0.0"); !errors.Is(err, ErrOnProbation) {
		t.Fatalf("3.0.0 installed over 2.0.0 on probation (%v); want ErrOnProbation", err)
	}
	if got := b.running(); got != "2.0.0" {
		t.Fatalf("%s runs, want 2.0.0", got)
	}
	if m := b.marker(); m == nil || m.Version != "2.0.0" || m.Previous != "1.0.0" || m.Starts != 1 {
		t.Fatalf("marker %+v; want 2.0.0's, started once, 1.0.0 behind it", m)
	}
	// 2.0.0 crashes at every start: the board goes back to 1.0.0.
	for i := 2; i <= MaxStarts; i++ {
		b.clk.Advance(time.Minute)
		if v, err := b.start(); err != nil || !v.On {
			t.Fatalf("start %d of 2.0.0: %+v, %v", i, v, err)
		}
	}
	b.clk.Advance(time.Minute)
	if v, err := b.start(); err != nil || !v.Exec {
		t.Fatalf("start %d of 2.0.0: %+v, %v; want a rollback", MaxStarts+1, v, err)
	}
	if got := b.running(); got != "1.0.0" {
		t.Fatalf("rolled back to %s, want 1.0.0, the release that ran", got)
	}

	// Once 2.0.0 has passed, 3.0.0 goes on probation behind it.
	b = newBoard(t, "1.0.0")
	b.onProbation(t, "2.0.0")
	if err := (&Probation{Exe: b.exe}).End(); err != nil { // it passed
		t.Fatal(err)
	}
	if on, err := OnProbation(b.exe, "2.0.0"); err != nil || on {
		t.Fatalf("OnProbation(2.0.0) after it passed = %v, %v; want false", on, err)
	}
	if err := b.update("3.0.0"); err != nil {
		t.Fatalf("3.0.0 after 2.0.0 passed: %v", err)
	}
	if m := b.marker(); m == nil || m.Version != "3.0.0" || m.Previous != "2.0.0" {
		t.Fatalf("marker %+v; want 3.0.0 on probation from 2.0.0", m)
	}
	if raw, err := os.ReadFile(Previous(b.exe)); err != nil || string(raw) != "2.0.0" {
		t.Fatalf("kept to go back to: %q, %v; want 2.0.0", raw, err)
	}
}

// With no previous binary beside the new one (removed by hand) there is
// nothing to roll back to: the release runs without probation, says so,
// and reports updated at once.
func TestNoPreviousAgentMeansNoProbation(t *testing.T) {
	b := newBoard(t, "1.0.0")
	if err := b.update("2.0.0"); err != nil {
		t.Fatal(err)
	}
	os.Remove(Previous(b.exe))
	v, err := b.start()
	if err != nil || v.On || v.Exec || !v.EndAfterReport || len(v.Events) != 1 || v.Events[0].Type != protocol.EventUpdated || v.Events[0].Reason != "from 1.0.0" {
		t.Fatalf("start: %+v, %v; want updated reported, no probation", v, err)
	}
}

// An agent older than probation execs the new one with
// LOAXA_UPDATED_FROM and writes no marker: the new one begins its
// probation itself.
func TestUpdateFromAnAgentWithoutProbation(t *testing.T) {
	b := newBoard(t, "1.0.0")
	newBin := filepath.Join(filepath.Dir(b.exe), ".loaxa-node.new")
	b.write(newBin, "2.0.0")
	if err := Install(newBin, b.exe); err != nil {
		t.Fatal(err)
	}
	p := &Probation{Exe: b.exe, Version: "2.0.0", Period: DefaultProbation, Clock: b.clk, Log: slog.New(slog.DiscardHandler)}
	v, err := p.Start("1.0.0")
	if err != nil || !v.On || v.From != "1.0.0" {
		t.Fatalf("start: %+v, %v; want on probation", v, err)
	}
	if m := b.marker(); m == nil || m.Version != "2.0.0" || m.Previous != "1.0.0" || m.Starts != 1 {
		t.Fatalf("marker %+v", m)
	}
}

// A board ran 1.0.0, an agent older than probation, and took 2.0.0, which
// crashed at every start: the board went back to 1.0.0, which does not
// read the probation marker and said nothing. The rollout, without an
// answer, asked again every 5 minutes; 1.0.0 downloaded, tried and
// installed 2.0.0 again, which found the rollback's marker and went back
// at once, and again nothing was said: a canary halted its rollout only
// after 40 minutes of silence, and any other node did it over again (15 MB
// over 4G each time) for as long as the rollout ran. The rollback must
// store its update-failed in the node's outbox, which 1.0.0 sends with its
// own events; and 2.0.0 installed again by 1.0.0 is on probation anew.
func TestRollbackToAnAgentWithoutProbationIsReported(t *testing.T) {
	b := newBoard(t, "1.0.0")
	var outbox []protocol.Event
	b.outbox = &outbox
	b.updateWithoutProbation("2.0.0")
	if v, err := b.startFrom("1.0.0"); err != nil || !v.On {
		t.Fatalf("first start of 2.0.0: %+v, %v; want on probation", v, err)
	}
	for i := 2; i <= MaxStarts; i++ {
		b.clk.Advance(time.Minute)
		if v, err := b.start(); err != nil || !v.On {
			t.Fatalf("start %d of 2.0.0: %+v, %v", i, v, err)
		}
	}
	b.clk.Advance(time.Minute)
	if v, err := b.start(); err != nil || !v.Exec {
		t.Fatalf("start %d of 2.0.0: %+v, %v; want a rollback", MaxStarts+1, v, err)
	}
	if got := b.running(); got != "1.0.0" {
		t.Fatalf("rolled back to %s, want 1.0.0", got)
	}
	want := protocol.Event{Type: protocol.EventUpdateFailed, At: b.clk.Now().UTC(), Version: "2.0.0",
		Reason: "rolled back from 2.0.0: it started 3 times in 3m0s without running 10m0s"}
	if len(outbox) != 1 || outbox[0] != want {
		t.Fatalf("the outbox 1.0.0 sends holds %+v; want %+v", outbox, want)
	}

	// 1.0.0 runs without reading the marker; the rollout, answered, would
	// not ask again, but a new rollout of 2.0.0 may.
	b.clk.Advance(time.Hour)
	b.updateWithoutProbation("2.0.0")
	v, err := b.startFrom("1.0.0")
	if err != nil || !v.On || v.Exec {
		t.Fatalf("2.0.0 installed again by 1.0.0: %+v, %v; want on probation anew, not rolled back at once", v, err)
	}
	if m := b.marker(); m == nil || m.Version != "2.0.0" || m.Previous != "1.0.0" || m.Starts != 1 || m.RolledBack != "" {
		t.Fatalf("marker %+v; want a new probation of 2.0.0", m)
	}
	if len(outbox) != 1 {
		t.Fatalf("reported again: %+v", outbox)
	}
}

// A previous release with probation, put back by a rollback whose report
// is in the outbox already, does not report it again.
func TestRollbackReportedOnce(t *testing.T) {
	b := newBoard(t, "1.0.0")
	var outbox []protocol.Event
	b.outbox = &outbox
	if err := b.update("2.0.0"); err != nil {
		t.Fatal(err)
	}
	b.clk.Advance(6 * DefaultProbation)
	if v, err := b.start(); err != nil || !v.Exec {
		t.Fatalf("a start after the deadline: %+v, %v; want a rollback", v, err)
	}
	if len(outbox) != 1 || outbox[0].Type != protocol.EventUpdateFailed || outbox[0].Version != "2.0.0" {
		t.Fatalf("outbox %+v; want 2.0.0's update-failed", outbox)
	}
	v, err := b.start()
	if err != nil || v.Exec || v.On || !v.EndAfterReport || len(v.Events) != 0 {
		t.Fatalf("1.0.0's start: %+v, %v; want the marker ended with nothing more to report", v, err)
	}
}

var errPowerCut = errors.New("power cut")

// A power cut at any step of an install or a rollback must leave a whole
// agent at exe and a marker that says what to do: the board, started again
// and again (systemd), ends on 1.0.0 with nothing on probation, and
// update-failed is reported if and only if 2.0.0 was ever installed.
func TestPowerCutAtAnyStepLeavesABootableAgent(t *testing.T) {
	// Count the steps of a story without a cut.
	var steps []string
	failpoint = func(s string) error { steps = append(steps, s); return nil }
	t.Cleanup(func() { failpoint = nil })
	story(t, newBoard(t, "1.0.0"))
	if len(steps) < 8 {
		t.Fatalf("steps %q in the story; the failpoints are not reached", steps)
	}
	for cut, at := range steps {
		n := 0
		failpoint = func(string) error {
			if n++; n == cut+1 {
				return errPowerCut
			}
			return nil
		}
		t.Run(fmt.Sprintf("%d %s", cut+1, at), func(t *testing.T) {
			b := newBoard(t, "1.0.0")
			installed, reports := story(t, b)
			t.Logf("cut before %q: 2.0.0 installed %v, update-failed reported %d times", at, installed, reports)
			if got := b.running(); got != "1.0.0" {
				t.Errorf("cut before %q: %s runs at the end, want 1.0.0", at, got)
			}
			if m := b.marker(); m != nil {
				t.Errorf("cut before %q: marker left %+v", at, m)
			}
			if installed != (reports > 0) || reports > 2 {
				t.Errorf("cut before %q: 2.0.0 installed %v, update-failed reported %d times", at, installed, reports)
			}
		})
	}
}

// story installs 2.0.0, which crashes at every start, and starts the
// board until it settles, as systemd would. A power cut (failpoint) stops
// what runs; the board starts again from what is on its card, with no
// more cuts. It reports whether 2.0.0 was ever at exe and how many
// update-failed events were reported, stored in the outbox by the
// rollback or by the previous agent's start.
func story(t *testing.T, b *board) (installed bool, reports int) {
	t.Helper()
	var outbox []protocol.Event
	b.outbox = &outbox
	defer func() {
		for _, ev := range outbox {
			if ev.Type != protocol.EventUpdateFailed || ev.Version != "2.0.0" || !strings.HasPrefix(ev.Reason, "rolled back from 2.0.0: it started 3 times") {
				t.Fatalf("stored %+v", ev)
			}
		}
		reports += len(outbox)
	}()
	check := func() {
		t.Helper()
		if v := b.running(); v != "1.0.0" && v != "2.0.0" {
			t.Fatalf("a broken agent at exe: %q", v)
		}
		installed = installed || b.running() == "2.0.0"
		if _, err := readMarker(b.exe); err != nil {
			t.Fatal(err)
		}
	}
	cut := func(err error) bool {
		if errors.Is(err, errPowerCut) {
			failpoint = nil
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	cut(b.update("2.0.0"))
	for boots := 0; ; boots++ {
		check()
		if boots > 2*MaxStarts+4 {
			t.Fatalf("still not settled after %d starts; %s runs, marker %+v", boots, b.running(), b.marker())
		}
		b.clk.Advance(time.Minute)
		v, err := b.start()
		if cut(err) {
			continue
		}
		switch {
		case v.Exec: // the previous agent execs at once
			continue
		case v.On:
			if b.running() != "2.0.0" {
				t.Fatalf("%s on probation", b.running())
			}
			continue // 2.0.0 crashes
		case len(v.Events) > 0 || v.EndAfterReport:
			for _, ev := range v.Events {
				if ev.Type != protocol.EventUpdateFailed || ev.Version != "2.0.0" || !strings.HasPrefix(ev.Reason, "rolled back from 2.0.0: it started 3 times") {
					t.Fatalf("reported %+v", ev)
				}
				reports++
			}
			if v.EndAfterReport && cut((&Probation{Exe: b.exe}).End()) {
				continue
			}
			continue
		}
		return installed, reports
	}
}

// A marker damaged on the card (a failing card zeroes or garbles a file;
// a power cut on a file system that does not keep a rename after its
// data leaves it short) was taken as "no probation": the release running
// was kept unjudged, so a new release that crashes at every start was
// restarted for ever, with the previous one beside it. Markers exist only
// while a release is on probation or being put back: with a previous
// agent to go back to, the release running is on probation anew, and a
// clear error says why.
func TestDamagedMarkerPutsTheReleaseOnProbationAnew(t *testing.T) {
	good, err := json.Marshal(Marker{Version: "2.0.0", Previous: "1.0.0", Since: time.Date(2026, 9, 6, 8, 0, 0, 0, time.UTC), Starts: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"zeroed":          make([]byte, len(good)),
		"cut short":       good[:len(good)/2],
		"empty":           {},
		"garbage":         []byte("\xff\x00loaxa\x13"),
		"long garbage":    bytes.Repeat([]byte{0xa5}, 1<<20),
		"negative starts": []byte(`{"version":"2.0.0","previous":"1.0.0","since":"2026-09-06T08:00:00Z","starts":-1000}`),
	} {
		t.Run(name, func(t *testing.T) {
			b := newBoard(t, "1.0.0")
			b.onProbation(t, "2.0.0")
			b.clk.Advance(time.Minute)
			if err := os.WriteFile(MarkerPath(b.exe), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := b.start()
			if err == nil || !strings.Contains(err.Error(), MarkerPath(b.exe)) || !strings.Contains(err.Error(), fmt.Sprintf("unreadable (%d bytes", len(raw))) {
				t.Errorf("error %v: want one naming the unreadable marker and its length", err)
			}
			if err != nil && len(err.Error()) > 1000 {
				t.Errorf("an error of %d bytes for a marker of %d: the log line would carry the whole file", len(err.Error()), len(raw))
			}
			if !v.On || v.Exec || !strings.Contains(v.From, "unknown") {
				t.Fatalf("verdict %+v: want 2.0.0 on probation anew, from a release unknown", v)
			}
			if m := b.marker(); m.Version != "2.0.0" || m.Starts != 1 || m.RolledBack != "" {
				t.Fatalf("marker %+v: want 2.0.0 on probation, its first start counted", m)
			}
			// It crashes at every start: put back within its starts.
			for i := 2; i <= MaxStarts; i++ {
				if v, err := b.start(); err != nil || !v.On {
					t.Fatalf("start %d: %+v, %v; want on probation", i, v, err)
				}
			}
			if v, err := b.start(); err != nil || !v.Exec || b.running() != "1.0.0" {
				t.Fatalf("start %d: %+v, %v, %s at exe; want 1.0.0 put back", MaxStarts+1, v, err, b.running())
			}
		})
	}
}

// A damaged marker with no previous agent to go back to: nothing to judge
// the release against; it runs without probation, and the marker goes.
func TestDamagedMarkerWithoutAPreviousAgent(t *testing.T) {
	b := newBoard(t, "2.0.0")
	if err := os.WriteFile(MarkerPath(b.exe), []byte("{\"version\":\"2.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := b.start()
	if err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("error %v: want one naming the unreadable marker", err)
	}
	if v.On || v.Exec || len(v.Events) > 0 {
		t.Fatalf("verdict %+v: want none", v)
	}
	if m := b.marker(); m != nil {
		t.Fatalf("marker %+v left", m)
	}
}

// FuzzProbationMarker starts the agent 2.0.0, with 1.0.0 kept to go back
// to, over whatever bytes the card holds as its marker (cut short by a
// power cut, zeroed, garbled): nothing panics; a whole agent is at exe
// (1.0.0 only if it was put back); no unreadable marker is left; bytes
// that are not a marker the agent writes are an error naming the marker
// and put 2.0.0 on probation anew; a marker of 2.0.0 that used its
// starts, or notes a rollback, never keeps it; a start on probation is
// counted; and a marker read is written back and read again as it was.
func FuzzProbationMarker(f *testing.F) {
	since := time.Date(2026, 9, 6, 7, 0, 0, 0, time.UTC)
	for _, m := range []Marker{
		{Version: "2.0.0", Previous: "1.0.0", Since: since},
		{Version: "2.0.0", Previous: "1.0.0", Since: since, Starts: MaxStarts},
		{Version: "2.0.0", Previous: "1.0.0", Since: since, Starts: 1, RolledBack: "rolled back from 2.0.0: it started 3 times"},
		{Version: "2.0.0", Previous: "1.0.0", Since: since, Starts: 1, RolledBack: "why", Reported: true},
		{Version: "3.0.0", Previous: "2.0.0", Since: since, RolledBack: "why"},
		{Version: "3.0.0", Previous: "2.0.0", Since: since},
	} {
		raw, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
		f.Add(make([]byte, len(raw)))
	}
	f.Add([]byte{})
	f.Add([]byte("null"))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":"2.0.0","starts":-1}`))
	f.Add([]byte(`{"VERSION":"2.0.0","Since":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := newBoard(t, "1.0.0")
		b.updateWithoutProbation("2.0.0")
		b.clk.Advance(time.Minute)
		if err := os.WriteFile(MarkerPath(b.exe), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		was, damaged := readMarker(b.exe)
		v, err := b.start()
		switch got := b.running(); {
		case v.Exec && got != "1.0.0":
			t.Fatalf("put back, yet %q at exe", got)
		case !v.Exec && got != "2.0.0":
			t.Fatalf("kept, yet %q at exe", got)
		}
		after, aerr := readMarker(b.exe)
		if aerr != nil {
			t.Fatalf("an unreadable marker left: %v", aerr)
		}
		if damaged != nil {
			if err == nil || !strings.Contains(err.Error(), MarkerPath(b.exe)) {
				t.Fatalf("bytes %q read as no marker without an error naming it (%v)", raw, err)
			}
			if !v.On || after == nil || after.Version != "2.0.0" || after.Starts != 1 {
				t.Fatalf("bytes %q: verdict %+v, marker %+v; want 2.0.0 on probation anew", raw, v, after)
			}
			return
		}
		if err != nil {
			t.Fatalf("marker %+v: %v", was, err)
		}
		if was.Version == "2.0.0" && (was.Starts >= MaxStarts || was.RolledBack != "") && !v.Exec {
			t.Fatalf("marker %+v kept 2.0.0: %+v", was, v)
		}
		if v.On && (was.Version != "2.0.0" || after == nil || after.Version != "2.0.0" || after.Starts != was.Starts+1 || after.Starts < 1 || after.Starts > MaxStarts) {
			t.Fatalf("marker %+v: on probation, marker after %+v; want its start counted", was, after)
		}
		// What was read is written back as it was.
		exe := filepath.Join(t.TempDir(), "loaxa-node")
		if err := writeMarker(exe, *was); err != nil {
			t.Fatalf("marker %+v not written: %v", was, err)
		}
		again, err := readMarker(exe)
		if err != nil {
			t.Fatalf("marker %+v written, then: %v", was, err)
		}
		if !again.Since.Equal(was.Since) {
			t.Fatalf("since %v read back as %v", was.Since, again.Since)
		}
		again.Since = was.Since
		if *again != *was {
			t.Fatalf("marker %+v read back as %+v", was, again)
		}
	})
}
