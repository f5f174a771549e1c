package main

// Over-the-air updates of the agent itself. The controller sends a signed
// update command naming the release archive for each architecture with
// its SHA-256 and size. The running agent (the old version):
//
//  1. fetches the archive for its architecture and checks size and
//     SHA-256 (node/update), writing the new binary beside its own
//     (.loaxa-node.new, synced) — a bad download is reported
//     (update-failed) and nothing else changes. The download makes way
//     for content a play needs (an alert's message): it stops while
//     that is fetched and then goes on from where it was;
//  2. waits until this release has passed its probation (below), so the
//     release kept to go back to is always one that ran, and until nothing
//     plays and nothing is due for idleWindow, so an update never cuts a
//     broadcast. Until then, the download included,
//     it follows the controller's latest wish (update.Requests.Hold): a
//     request for another release, or none renewed in time (the rollout
//     halted), drops this one at once;
//  3. stops its agent and starts the new binary as a child on trial, with
//     the same arguments, and waits up to --update-trial for it to say, on
//     a pipe, that it connected to the broker and its main loop runs;
//  4. on success stops the child, puts the new release on probation (a
//     marker beside the binary, node/update), renames the new binary over
//     its own (the old one kept as <exe>.previous) and execs it: the new
//     version runs as the service's main process. It reports "updated"
//     once it has run healthy for --update-probation; if it starts too
//     often before that (it crashes, and systemd restarts it) or takes
//     too long, one of its starts puts <exe>.previous back, stores
//     update-failed saying why in the node's outbox (an agent older than
//     probation sends it without knowing it) and execs the previous one;
//  5. otherwise — the child exited (a build that cannot start), or did not
//     connect in time — kills it, deletes the new binary, and starts its
//     own agent again, which reports update-failed with the reason: the
//     node rolls back by itself and keeps playing its schedule.
//
// Under systemd the old process keeps feeding the watchdog during the
// trial; the child does not talk to systemd.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/sdnotify"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/store"
	"loaxa.vn/node/update"
	"loaxa.vn/protocol"
)

const (
	// defaultTrialTimeout is how long a new release has to connect.
	defaultTrialTimeout = 3 * time.Minute
	// idleWindow: an update restarts the agent only when nothing is due
	// within it.
	idleWindow = 2 * time.Minute
	// envTrial marks the child on trial: it writes "ok" on fd 3 once
	// healthy.
	envTrial = "LOAXA_UPDATE_TRIAL"
	// envUpdatedFrom tells a new version which one it replaced.
	envUpdatedFrom = "LOAXA_UPDATED_FROM"
)

// updater carries updates between the agent and the process.
type updater struct {
	cred     *protocol.Credentials
	log      *slog.Logger
	exe      string
	requests *update.Requests // nil: updates off
	off      string           // why updates are off, for the update-failed a rollout reads
	startup  []protocol.Event
	trial    bool // this process is a child on trial
	staged   *protocol.Update
	// probation judges the installed release; verdict is what this
	// start found (node/update).
	probation *update.Probation
	verdict   update.Verdict
	// rolledBack: the previous agent is back at exe while this one ran
	// (it never connected to the broker its link reached); runAgent execs
	// it once the agent stopped.
	rolledBack bool
}

// runAgent runs the agent, and tries updates it is asked for: see the top
// of this file.
func runAgent(ctx context.Context, cred *protocol.Credentials, o options, log *slog.Logger) error {
	u := &updater{cred: cred, log: log, requests: update.NewRequests(clock.Real{}), trial: o.getenv(envTrial) == "1"}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		log.Warn("updates off: cannot tell where this program is", "err", err)
		u.requests = nil
		u.off = fmt.Sprintf("this agent cannot update itself: it cannot tell where its program is (%v)", err)
	}
	u.exe = exe
	switch from := o.getenv(envUpdatedFrom); {
	case u.trial:
	case u.requests != nil:
		// First, before anything that could crash: a release on
		// probation counts this start, or is rolled back.
		u.probation = &update.Probation{Exe: exe, Version: version, Period: o.probation, Clock: clock.Real{}, Log: log,
			Outbox: func(ev protocol.Event) error { return storeInOutbox(o.data, ev) }}
		v, err := u.probation.Start(from)
		if err != nil {
			log.Error("update: probation", "err", err)
		}
		if v.Exec {
			return execPrevious(exe, log)
		}
		u.verdict, u.startup = v, v.Events
	case from != "":
		u.startup = []protocol.Event{{Type: protocol.EventUpdated, At: time.Now().UTC(), Version: version, Reason: "from " + from}}
	}
	for {
		u.staged = nil
		err := runAgentOnce(ctx, cred, o, log, u)
		if u.rolledBack && ctx.Err() == nil {
			return execPrevious(exe, log)
		}
		if err != nil || u.staged == nil {
			return err
		}
		staged := *u.staged
		reason := u.try(ctx, staged, o)
		os.Remove(u.newPath())
		if ctx.Err() != nil {
			return nil
		}
		log.Error("update: new agent refused; carrying on with this one", "version", staged.Version, "reason", reason)
		u.startup = []protocol.Event{{Type: protocol.EventUpdateFailed, At: time.Now().UTC(), Version: staged.Version, Reason: reason}}
	}
}

func (u *updater) newPath() string { return filepath.Join(filepath.Dir(u.exe), ".loaxa-node.new") }

// execPrevious runs the previous agent, put back at exe by a rollback, in
// this process's place; it returns only if that fails.
func execPrevious(exe string, log *slog.Logger) error {
	log.Warn("update: starting the previous agent in this one's place", "exe", exe)
	err := syscall.Exec(exe, append([]string{exe}, os.Args[1:]...), execEnv(""))
	// The previous agent is at exe: systemd starts it.
	return fmt.Errorf("update: exec the previous agent %s: %w", exe, err)
}

// storeInOutbox stores ev in the outbox of the node's store in data, from
// which whatever agent runs next sends it: a rollback's update-failed, for
// a previous release older than probation, which does not read the marker
// (update.Probation.Outbox). The events bucket is the same in every
// release. A store that is not there (the board runs on one in memory) is
// not made for it.
func storeInOutbox(data string, ev protocol.Event) error {
	path := filepath.Join(data, "node.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store %s %s in the outbox: %w", ev.Type, ev.Version, err)
	}
	st, err := store.OpenBolt(path)
	if err != nil {
		return fmt.Errorf("store %s %s in the outbox: %w", ev.Type, ev.Version, err)
	}
	_, err = st.Append([]protocol.Event{ev}, nil)
	return errors.Join(err, st.Close())
}

// serve handles the agent's update requests until ctx ends; when one is
// fetched and the node is idle, it sets u.staged and stops the agent. A
// request the controller withdraws before that is dropped, and once
// nothing is asked for, the partial download of a release is removed. A
// child on trial says when it is healthy. The returned channel closes
// when it is done.
func (u *updater) serve(ctx context.Context, a *agent.Agent, stop func()) <-chan struct{} {
	done := make(chan struct{})
	probation := make(chan struct{})
	go func() {
		defer close(probation)
		u.judge(ctx, a, stop)
	}()
	go func() {
		defer close(done)
		defer func() { <-probation }()
		if u.trial {
			u.sayHealthy(ctx, a)
		}
		if u.requests == nil {
			return
		}
		lapse := time.NewTimer(time.Until(u.requests.Lapse()))
		defer lapse.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-lapse.C:
				if n := u.requests.Sweep(u.newPath()); n > 0 {
					u.log.Info("update: no release asked for any more; its partial download removed", "files", n)
				}
			case <-u.requests.Wake():
				req, ok := u.requests.Take()
				if !ok {
					break
				}
				err := u.stage(ctx, a, req)
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, update.ErrWithdrawn):
					os.Remove(u.newPath())
					u.log.Info("update: the controller no longer asks for this release (a newer one, or the rollout stopped); dropped", "version", req.Version)
				case err != nil:
					u.requests.Settle(req)
					u.log.Error("update: not staged", "version", req.Version, "err", err)
					if err := a.Report(ctx, protocol.Event{Type: protocol.EventUpdateFailed, Version: req.Version, Reason: err.Error()}); err != nil {
						u.log.Error("update: failure not reported", "err", err)
					}
				default:
					u.staged = &req
					stop()
					return
				}
			}
			if d := time.Until(u.requests.Lapse()); d > 0 {
				lapse.Reset(d)
			}
		}
	}()
	return done
}

// judge ends the probation of this release once it has run healthy for
// its period, reporting it updated; or, in the previous release put back,
// once the rollback's report is stored. A release that never connects to
// the broker its link reaches is put back (rollBackRunning).
func (u *updater) judge(ctx context.Context, a *agent.Agent, stop func()) {
	switch {
	case u.verdict.On:
		check := func(ctx context.Context) update.Check {
			if !a.Connected() {
				return update.Check{Reached: a.BrokerReached()}
			}
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			// Connected, its main loop stuck: the watchdog's to judge.
			return update.Check{Healthy: a.Alive(actx) == nil}
		}
		err := u.probation.Watch(ctx, check)
		if errors.Is(err, update.ErrNeverConnected) {
			u.rollBackRunning(ctx, a, err, stop)
			return
		}
		if err != nil {
			return
		}
		// Stored before the marker goes: a power cut between the two
		// reports it twice, never not at all.
		if err := a.Report(ctx, protocol.Event{Type: protocol.EventUpdated, Version: version, Reason: "from " + u.verdict.From}); err != nil {
			u.log.Error("update: probation passed but not reported; judged again at the next start", "err", err)
			return
		}
	case u.verdict.EndAfterReport:
		// The main loop answers once the startup events are stored.
		if a.Alive(ctx) != nil {
			return
		}
	default:
		return
	}
	if err := u.probation.End(); err != nil {
		u.log.Error("update: end the probation", "err", err)
		return
	}
	if u.verdict.On {
		u.log.Info("update: this release passed its probation; kept", "version", version, "previous", u.verdict.From)
	}
	u.verdict = update.Verdict{}
}

// rollBackRunning puts the previous release back while this one runs, why
// being that it never connected to the broker its link reached, once
// nothing plays or is due (a rollback cuts no broadcast either), and stops
// the agent: runAgent then execs the previous one, which sends the
// update-failed stored meanwhile.
func (u *updater) rollBackRunning(ctx context.Context, a *agent.Agent, why error, stop func()) {
	u.log.Error("update: this release never connected to the broker its link reached; putting the previous one back once nothing plays", "version", version, "reason", why)
	for {
		idle, err := a.Idle(ctx, idleWindow)
		if err != nil {
			return
		}
		if idle {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	report := func(ev protocol.Event) error { return a.Report(ctx, ev) }
	if err := u.probation.RollBack(why.Error(), report); err != nil {
		u.log.Error("update: roll back; running on, judged again at the next start", "err", err)
		return
	}
	u.rolledBack = true
	stop()
}

// stage fetches and checks the release, then waits for a quiet moment.
// The controller may replace or withdraw the release meanwhile: the
// download stops then, and an outdated agent is not installed
// (update.ErrWithdrawn).
func (u *updater) stage(ctx context.Context, a *agent.Agent, req protocol.Update) error {
	hctx, release := u.requests.Hold(ctx, req)
	defer release()
	err := u.fetchAndWait(hctx, a, req)
	if errors.Is(context.Cause(hctx), update.ErrWithdrawn) {
		return update.ErrWithdrawn
	}
	return err
}

// fetchAndWait is stage's work, in the request's hold.
func (u *updater) fetchAndWait(ctx context.Context, a *agent.Agent, req protocol.Update) error {
	arch := req.For(agent.Arch)
	client := httpClient(a)
	defer client.CloseIdleConnections()
	// The release makes way for the content plays need: an alert's
	// message is not fetched behind it over a thin link.
	if err := update.Fetch(ctx, client, u.cred.Controller, u.cred.Username, u.cred.Secret, *arch, u.newPath(), a); err != nil {
		return err
	}
	u.log.Info("update: fetched and checked; waiting for a quiet moment", "version", req.Version)
	told := false
	for {
		// The release kept to go back to must be one that ran: this one
		// first passes its own probation (update.BeginProbation).
		on, err := update.OnProbation(u.exe, version)
		switch {
		case err != nil:
			return fmt.Errorf("release %s not tried: %w", req.Version, err)
		case on && !told:
			u.log.Info("update: waiting for this release to pass its probation before trying the next", "running", version, "next", req.Version)
			told = true
		case !on:
			idle, err := a.Idle(ctx, idleWindow)
			if err != nil {
				return err
			}
			if idle {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// try runs the staged binary on trial. On success it installs it and
// execs it, and does not return; otherwise it returns why not.
func (u *updater) try(ctx context.Context, staged protocol.Update, o options) string {
	r, w, err := os.Pipe()
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	cmd := exec.Command(u.newPath(), os.Args[1:]...)
	cmd.Env = append(childEnv(), envTrial+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	u.log.Info("update: trying the new agent", "version", staged.Version, "within", o.trialTimeout)
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Sprintf("new agent %s does not start: %v", staged.Version, err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	healthy := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		healthy <- strings.TrimSpace(line) == "ok"
	}()

	// Keep systemd's watchdog fed while the agent is away.
	fctx, stopFeeding := context.WithCancel(ctx)
	defer stopFeeding()
	if wd, _ := sdnotify.WatchdogInterval(o.getenv); wd > 0 {
		go sdnotify.New(o.getenv).FeedWatchdog(fctx, wd, func(context.Context) error { return nil }, u.log)
	}

	timer := time.NewTimer(o.trialTimeout)
	defer timer.Stop()
	var reason string
	select {
	case ok := <-healthy:
		if ok {
			stopChild(cmd, exited)
			// The marker first: no new binary at exe without it.
			if err := update.BeginProbation(u.exe, update.Marker{Version: staged.Version, Previous: version, Since: time.Now()}); err != nil {
				return fmt.Sprintf("new agent %s not installed: %v", staged.Version, err)
			}
			if err := update.Install(u.newPath(), u.exe); err != nil {
				if err := update.EndProbation(u.exe); err != nil {
					u.log.Error("update: probation marker of a release not installed", "err", err)
				}
				return err.Error()
			}
			stopFeeding()
			u.log.Info("update: new agent healthy; restarting into it, on probation", "version", staged.Version, "probation", o.probation)
			// LOAXA_UPDATED_FROM for a release older than probation,
			// which reports updated from it.
			err := syscall.Exec(u.exe, append([]string{u.exe}, os.Args[1:]...), execEnv(version))
			// Exec failed: the binary is installed; exit and let systemd start it.
			u.log.Error("update: exec the new agent", "err", err)
			os.Exit(exitFailure)
		}
		err := <-exited
		reason = fmt.Sprintf("new agent %s exited at start (%v) before connecting", staged.Version, err)
	case err := <-exited:
		reason = fmt.Sprintf("new agent %s exited at start (%v) before connecting", staged.Version, err)
	case <-timer.C:
		stopChild(cmd, exited)
		reason = fmt.Sprintf("new agent %s did not connect and report healthy within %v", staged.Version, o.trialTimeout)
	case <-ctx.Done():
		stopChild(cmd, exited)
		reason = "stopped during the trial"
	}
	return reason
}

// stopChild asks the child to stop, and kills it if it does not in time.
func stopChild(cmd *exec.Cmd, exited <-chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// childEnv is this process's environment without systemd's variables: the
// child on trial must not speak for the service.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", envTrial, envUpdatedFrom:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// execEnv is this process's environment for the agent exec'd in its
// place, told it replaced from (none if empty): an earlier
// LOAXA_UPDATED_FROM would shadow a new one.
func execEnv(from string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != envUpdatedFrom {
			env = append(env, kv)
		}
	}
	if from != "" {
		env = append(env, envUpdatedFrom+"="+from)
	}
	return env
}

// sayHealthy writes "ok" on fd 3 once the agent is connected and its main
// loop answers: the parent then installs this version.
func (u *updater) sayHealthy(ctx context.Context, a *agent.Agent) {
	f := os.NewFile(3, "trial")
	if f == nil {
		return
	}
	defer f.Close()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.Connected() {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := a.Alive(actx)
		cancel()
		if err == nil {
			if _, err := f.WriteString("ok\n"); err != nil && !errors.Is(err, os.ErrClosed) {
				u.log.Warn("update: could not tell the old agent", "err", err)
			}
			return
		}
	}
}

// httpClient reaches the controller as the agent does: its pinned CA, on
// the agent's clock, which a board without an RTC has only once measured.
func httpClient(a *agent.Agent) *http.Client {
	return &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{TLSClientConfig: a.ControllerTLS(), Proxy: http.ProxyFromEnvironment}}
}
