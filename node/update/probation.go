package update

// Probation after an update: a release that passed its trial may still
// crash later — at its first play, at the first alert, after a reboot — and
// systemd would restart it for ever (Restart=always), leaving a pole silent
// until a technician climbs to it. So, as embedded fleets do with A/B
// images and boot counting, the new release runs on probation: a marker
// beside the binary (<exe>.probation) counts its starts, and the release
// passes once it has run healthy for a period in a row. A release that
// starts too often or takes too long, or runs a period without once
// connecting to the broker its link reaches, is replaced by the previous
// binary; the report of why is stored for the previous agent to send.
//
// Every change to the marker and the binaries is one rename followed by a
// sync of the directory, in an order that leaves, after a power cut at any
// point, a whole binary at exe and a marker that says what to do next:
//
//	install (the old agent, after the trial, once it passed its own
//	probation: the release kept to go back to is always one that ran):
//	  marker {version: new, previous: old, starts: 0} written and synced
//	  exe linked as <exe>.previous; new binary renamed over exe; synced
//	each start of the new agent: starts+1, synced, before anything else
//	passing: the updated event stored, then the marker removed
//	rolling back (a start of the new agent):
//	  marker {rolled_back: why} synced; <exe>.previous renamed over exe
//	  (the new binary goes with it); synced; update-failed {version: new,
//	  reason: why} stored in the node's outbox, then marker {reported}
//	  synced; the previous agent exec'd
//	the previous agent's start: update-failed stored unless reported,
//	  then the marker removed (an agent older than probation leaves it:
//	  it sends the stored report with its other events)
//
// A marker naming another release than the one running, and not a rollback
// to the running one, is left from an install cut short before its rename
// (or from a binary replaced by hand): it is removed. So is a rollback's
// marker found by a release installed by an agent that writes none. A
// marker damaged on the card puts the running release on probation anew
// (Probation.damaged).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

const (
	// DefaultProbation is how long a new release must run healthy — its
	// broker link up, its main loop answering — in a row to pass.
	DefaultProbation = 10 * time.Minute
	// MaxStarts is how many starts a release on probation has: the next
	// one puts the previous release back.
	MaxStarts = 3
	// deadlineFactor: a release still on probation this many periods
	// after its install is put back at its next start.
	deadlineFactor = 6
)

// Marker is what the probation marker says.
type Marker struct {
	// Version is the release on probation; Previous the one it replaced,
	// kept at Previous(exe).
	Version  string `json:"version"`
	Previous string `json:"previous"`
	// Since is when it was installed (the board's clock).
	Since time.Time `json:"since"`
	// Starts counts its starts since.
	Starts int `json:"starts"`
	// RolledBack says why the previous release is being put back; set
	// before it is.
	RolledBack string `json:"rolled_back,omitempty"`
	// Reported: the rollback's update-failed is stored in the node's
	// outbox already (Probation.Outbox); the previous release does not
	// report it again.
	Reported bool `json:"reported,omitempty"`
}

// MarkerPath is where the probation marker of the agent at exe is kept.
func MarkerPath(exe string) string { return exe + ".probation" }

// failpoint, when set by a test, is called before each step that changes
// the disk; an error stops the operation there, as a power cut would.
var failpoint func(step string) error

func step(name string) error {
	if failpoint == nil {
		return nil
	}
	return failpoint(name)
}

// ErrOnProbation: the running release is still on probation, and another
// may not replace it before it passed: the release it would keep to go
// back to is one that never proved itself, and the one that did would be
// gone.
var ErrOnProbation = errors.New("the running release is still on probation")

// BeginProbation puts a release on probation: call it after its trial and
// before Install, so that no new binary runs at exe without a marker. It
// refuses (ErrOnProbation) while m.Previous, the release at exe, is on
// probation itself.
func BeginProbation(exe string, m Marker) error {
	on, err := OnProbation(exe, m.Previous)
	if err != nil {
		return fmt.Errorf("put %s on probation: %w", m.Version, err)
	}
	if on {
		return fmt.Errorf("put %s on probation: %s has not passed its own yet: %w", m.Version, m.Previous, ErrOnProbation)
	}
	return writeMarker(exe, m)
}

// OnProbation reports whether version, the release at exe, is on
// probation: it has not passed yet and is not being rolled back. An
// update waits until it is not (BeginProbation).
func OnProbation(exe, version string) (bool, error) {
	m, err := readMarker(exe)
	if err != nil {
		return false, err
	}
	return m != nil && m.Version == version && m.RolledBack == "", nil
}

// writeMarker replaces the marker with m: written beside it, synced,
// renamed over it, the directory synced.
func writeMarker(exe string, m Marker) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("probation marker: %w", err)
	}
	path := MarkerPath(exe)
	tmp := path + ".tmp"
	if err := step("write marker"); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("probation marker: %w", err)
	}
	_, werr := f.Write(raw)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("probation marker %s: %w", tmp, err)
	}
	if err := step("rename marker"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("probation marker: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("probation marker: sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// readMarker returns the marker of the agent at exe, nil if there is none.
func readMarker(exe string) (*Marker, error) {
	raw, err := os.ReadFile(MarkerPath(exe))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("probation marker: %w", err)
	}
	var m Marker
	// A negative count is none the agent writes: taken for one, it would
	// give the release as many more starts.
	if err := json.Unmarshal(raw, &m); err != nil || m.Version == "" || m.Starts < 0 {
		// At most its first 64 bytes quoted: a garbled file may be long.
		return nil, fmt.Errorf("probation marker %s unreadable (%d bytes: %.64q)", MarkerPath(exe), len(raw), raw)
	}
	return &m, nil
}

// removeMarker removes the marker and syncs the directory.
func removeMarker(exe string) error {
	if err := step("remove marker"); err != nil {
		return err
	}
	if err := os.Remove(MarkerPath(exe)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("probation marker: %w", err)
	}
	if err := syncDir(filepath.Dir(exe)); err != nil {
		return fmt.Errorf("probation marker: sync %s: %w", filepath.Dir(exe), err)
	}
	return nil
}

// Probation judges, at each start of the agent at Exe, its release on
// probation.
type Probation struct {
	// Exe is the installed agent; Version the release running.
	Exe     string
	Version string
	// Period is how long the release must run healthy in a row to pass
	// (DefaultProbation).
	Period time.Duration
	// Clock is the board's clock: the marker's Since survives reboots.
	Clock clock.Clock
	Log   *slog.Logger
	// Outbox, when set, stores an event in the node's outbox, from which
	// whatever agent runs next sends it. A rollback stores its
	// update-failed there before the previous release runs: one older
	// than probation does not read the marker and would not report it,
	// and the rollout would get no answer.
	Outbox func(protocol.Event) error
}

// Deadline is how long after its install a release may stay on probation:
// one still on it then is put back at its next start.
func (p *Probation) Deadline() time.Duration { return deadlineFactor * p.Period }

// Verdict is what a start found.
type Verdict struct {
	// On: this start is on probation; Watch, then report updated from
	// From, then End.
	On   bool
	From string
	// Exec: the previous agent is back at Exe; run it in this process's
	// place (exec) before anything else.
	Exec bool
	// Events are to be reported as the agent starts.
	Events []protocol.Event
	// EndAfterReport: the marker goes once Events are stored (End).
	EndAfterReport bool
}

// Start is called first at each start of the agent (not of a child on
// trial), before anything that could crash. updatedFrom is the release
// that exec'd this one, when an agent older than probation did (it
// wrote no marker): this start then begins the probation.
//
// An error says the marker could not be read or written; the verdict is
// still to be followed.
func (p *Probation) Start(updatedFrom string) (Verdict, error) {
	now := p.Clock.Now()
	m, err := readMarker(p.Exe)
	if err != nil {
		return p.damaged(err, updatedFrom, now)
	}
	if m != nil && m.RolledBack != "" && updatedFrom != "" {
		// An agent that writes no marker installed this release after its
		// trial: the marker is left from an earlier rollback to that
		// agent, which does not remove it. Not a rollback cut short (a
		// start by the service manager, without updatedFrom): this
		// install is judged anew.
		p.Log.Warn("update: probation marker of an earlier rollback removed; this install is on probation anew", "marker", m.Version, "reason", m.RolledBack, "from", updatedFrom)
		if err := removeMarker(p.Exe); err != nil {
			return Verdict{}, err
		}
		m = nil
	}
	if m != nil && m.Version != p.Version {
		if m.RolledBack != "" && m.Previous == p.Version {
			// This is the previous release, put back: say why, unless
			// the rollback stored it already.
			p.Log.Warn("update: back on this release after a rollback", "rejected", m.Version, "reason", m.RolledBack, "reported", m.Reported)
			if m.Reported {
				return Verdict{EndAfterReport: true}, nil
			}
			return Verdict{EndAfterReport: true, Events: []protocol.Event{{Type: protocol.EventUpdateFailed, At: now.UTC(), Version: m.Version, Reason: m.RolledBack}}}, nil
		}
		p.Log.Warn("update: probation marker of another release removed (its install was cut short, or the agent was replaced by hand)", "marker", m.Version, "running", p.Version)
		if err := removeMarker(p.Exe); err != nil {
			return Verdict{}, err
		}
		m = nil
	}
	if m == nil {
		if updatedFrom == "" {
			return Verdict{}, nil
		}
		m = &Marker{Version: p.Version, Previous: updatedFrom, Since: now}
	}
	why := m.RolledBack
	age := now.Sub(m.Since).Round(time.Second)
	switch {
	case why != "":
		// A rollback was cut short: finish it.
	case m.Starts >= MaxStarts:
		why = fmt.Sprintf("it started %d times in %v without running %v", m.Starts, age, p.Period)
	case age >= p.Deadline():
		why = fmt.Sprintf("it did not run %v in a row within %v of its install", p.Period, p.Deadline())
	}
	if _, err := os.Stat(Previous(p.Exe)); err != nil {
		// Nothing to go back to (removed by hand): say so, once.
		p.Log.Warn("update: no previous agent to go back to; this release runs without probation", "previous", Previous(p.Exe), "err", err)
		ev := protocol.Event{Type: protocol.EventUpdated, At: now.UTC(), Version: p.Version, Reason: "from " + m.Previous}
		if why != "" {
			ev.Type, ev.Reason = protocol.EventUpdateFailed, fmt.Sprintf("failed its probation (%s) but not rolled back: no previous agent", why)
		}
		return Verdict{EndAfterReport: true, Events: []protocol.Event{ev}}, nil
	}
	if why != "" && m.RolledBack == "" {
		why = fmt.Sprintf("rolled back from %s: %s", m.Version, why)
	}
	if why != "" {
		if err := p.putBack(m, why, p.Outbox); err != nil {
			return Verdict{}, err
		}
		return Verdict{Exec: true}, nil
	}
	m.Starts++
	if err := writeMarker(p.Exe, *m); err != nil {
		// Not counted: run on probation all the same.
		return Verdict{On: true, From: m.Previous}, err
	}
	p.Log.Info("update: this release is on probation", "version", p.Version, "start", m.Starts, "of", MaxStarts, "passes_after", p.Period)
	return Verdict{On: true, From: m.Previous}, nil
}

// unknownPrevious stands for the release a damaged marker named as the
// previous one: the updated event says "from" it.
const unknownPrevious = "unknown (its probation marker was damaged)"

// damaged is Start's verdict on a marker damaged on the card (a failing
// card zeroes or garbles a file; a power cut on a file system that does
// not keep a rename after its data leaves it short): nothing it says can
// be trusted, not even which release it was about. A marker is there only
// while a release is on probation or being put back, so the release
// running may be one that never proved itself: with a previous agent to go
// back to, it is on probation anew, its start counted, rather than kept
// unjudged (a release that crashes at every start would be restarted for
// ever). Without one, there is nothing to judge it against: probation off.
func (p *Probation) damaged(err error, updatedFrom string, now time.Time) (Verdict, error) {
	if _, serr := os.Stat(Previous(p.Exe)); serr != nil {
		return Verdict{}, errors.Join(fmt.Errorf("probation off (no previous agent to go back to): %w", err), removeMarker(p.Exe))
	}
	m := Marker{Version: p.Version, Previous: updatedFrom, Since: now, Starts: 1}
	if m.Previous == "" {
		m.Previous = unknownPrevious
	}
	err = fmt.Errorf("%w; %s is on probation anew, the previous agent kept to go back to", err, p.Version)
	// Written over the damaged one; not written, run on probation all the
	// same, as Start does.
	return Verdict{On: true, From: m.Previous}, errors.Join(err, writeMarker(p.Exe, m))
}

// putBack puts the previous release back for the reason why: noted in the
// marker m first, then the previous binary renamed over exe, then the
// report stored in outbox (storeReport). The caller then execs exe.
func (p *Probation) putBack(m *Marker, why string, outbox func(protocol.Event) error) error {
	p.Log.Error("update: this release failed its probation; putting the previous one back", "version", m.Version, "previous", m.Previous, "reason", why)
	m.RolledBack = why
	if err := writeMarker(p.Exe, *m); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	if err := rollBack(p.Exe); err != nil {
		return err
	}
	p.storeReport(m, p.Clock.Now(), outbox)
	return nil
}

// RollBack puts the previous release back while this one runs, on
// probation, for the reason why (Watch's error): the caller stops the
// agent and execs exe. outbox stores the report in the node's outbox, as
// Outbox does at a start; the running agent holds the store.
func (p *Probation) RollBack(why string, outbox func(protocol.Event) error) error {
	m, err := readMarker(p.Exe)
	if err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	if m == nil || m.Version != p.Version || m.RolledBack != "" {
		return fmt.Errorf("roll back %s: it is not on probation (marker %+v)", p.Version, m)
	}
	if _, err := os.Stat(Previous(p.Exe)); err != nil {
		return fmt.Errorf("roll back %s: %w", p.Version, err)
	}
	return p.putBack(m, fmt.Sprintf("rolled back from %s: %s", m.Version, why), outbox)
}

// storeReport stores the update-failed of the rollback m in the node's
// outbox, then notes in the marker that it did. After the rollback
// is on disk: a crash here, or a hang on a damaged store that the service
// manager's timeout ends, loses at most this report, which a previous
// release with probation makes itself from the marker. A power cut between
// the two reports it twice, never not at all.
func (p *Probation) storeReport(m *Marker, now time.Time, outbox func(protocol.Event) error) {
	if outbox == nil || m.Reported {
		return
	}
	if err := step("store report"); err != nil {
		return
	}
	ev := protocol.Event{Type: protocol.EventUpdateFailed, At: now.UTC(), Version: m.Version, Reason: m.RolledBack}
	if err := outbox(ev); err != nil {
		p.Log.Warn("update: the rollback's report not stored in the outbox; only a previous release with probation reports it", "err", err)
		return
	}
	m.Reported = true
	if err := writeMarker(p.Exe, *m); err != nil {
		p.Log.Warn("update: the rollback's report stored, but not noted in the marker; the previous release may report it twice", "err", err)
	}
}

// rollBack renames the previous agent over exe: one rename, so exe is the
// new binary until it and the previous one after.
func rollBack(exe string) error {
	if err := step("put previous back"); err != nil {
		return err
	}
	if err := os.Rename(Previous(exe), exe); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	if err := syncDir(filepath.Dir(exe)); err != nil {
		return fmt.Errorf("roll back: sync %s: %w", filepath.Dir(exe), err)
	}
	return nil
}

// Check is what a check of the release on probation finds.
type Check struct {
	// Healthy: connected to the broker, its main loop answering.
	Healthy bool
	// Reached: its link's last attempt to connect reached the broker (TCP,
	// TLS) and was not refused by it (mqtt.Link.Reaches). Not connected
	// then, the release fails where neither the network nor the broker's
	// judgement of the node is to blame.
	Reached bool
}

// ErrNeverConnected: the release on probation ran Period without once
// being healthy while its link reached the broker at every check (Watch).
var ErrNeverConnected = errors.New("never connected to the broker its link reached")

// neverConnected is Watch's ErrNeverConnected, saying how long.
type neverConnected struct{ ran time.Duration }

func (e neverConnected) Error() string {
	return fmt.Sprintf("it ran %v without once connecting to the broker, which its link reached all along", e.ran)
}

func (e neverConnected) Is(target error) bool { return target == ErrNeverConnected }

// Watch returns nil once check has found it healthy for Period in a row,
// asked every Period/20 (at most every 5 s); ErrNeverConnected once, never
// healthy since Watch began, it has found the broker reached yet not
// connected for Period in a row; or ctx's error. A check that finds the
// broker not reached (no network, the broker down or refusing the node)
// starts that period again: a release is not put back for the network.
func (p *Probation) Watch(ctx context.Context, check func(context.Context) Check) error {
	every := min(max(p.Period/20, 10*time.Millisecond), 5*time.Second)
	var (
		since time.Time // healthy since; zero: not healthy
		deaf  time.Time // reached but not connected since; zero: not
		once  bool      // healthy once
	)
	for {
		c := check(ctx)
		now := p.Clock.Now()
		switch {
		case c.Healthy:
			once, deaf = true, time.Time{}
			if since.IsZero() {
				since = now
			}
			if now.Sub(since) >= p.Period {
				return nil
			}
		case c.Reached && !once:
			since = time.Time{}
			if deaf.IsZero() {
				deaf = now
			}
			if now.Sub(deaf) >= p.Period {
				return neverConnected{ran: p.Period}
			}
		default:
			since, deaf = time.Time{}, time.Time{}
		}
		t := p.Clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// End ends the probation: call it once the release passed and its updated
// event is stored, or once the rollback's update-failed is.
func (p *Probation) End() error { return EndProbation(p.Exe) }

// EndProbation removes the probation marker of the agent at exe: after a
// release put on probation could not be installed.
func EndProbation(exe string) error { return removeMarker(exe) }
