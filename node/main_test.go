package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/internal/sdnotify/sdnotifytest"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"node":"N 1"}`), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no credentials", nil, nil, "--credentials FILE is required"},
		{"missing file", []string{"--credentials", filepath.Join(dir, "none.json")}, nil, "no such file"},
		{"invalid document", []string{"--credentials", bad}, nil, "node: id \"N 1\""},
		{"invalid document from env", nil, map[string]string{"LOAXA_CREDENTIALS": bad}, "secret: required"},
		{"unknown audio", []string{"--credentials", bad, "--audio", "alsa"}, nil, "--audio \"alsa\": want oto or none"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "--log-level \"loud\""},
		{"no cache", []string{"--cache-size", "0"}, nil, "--cache-size 0: want a size in MiB of at least 1"},
		{"cache size from env", nil, map[string]string{"LOAXA_CACHE_SIZE": "-5"}, "--cache-size -5"},
		{"amplifier warm-up without a unit", []string{"--amp-warmup", "500"}, nil, "invalid value \"500\" for flag -amp-warmup"},
		{"amplifier warm-up of nothing", []string{"--amp-warmup", "0s"}, nil, "--amp-warmup 0s: want a duration above 0"},
		{"heartbeat too short", []string{"--heartbeat", "100ms"}, nil, "--heartbeat 100ms: want a duration from 1s to 1h"},
		{"update probation too short", []string{"--update-probation", "500ms"}, nil, "--update-probation 500ms: want a duration from 1s to 24h"},
		{"update probation from env", nil, map[string]string{"LOAXA_UPDATE_PROBATION": "a while"}, "LOAXA_UPDATE_PROBATION=\"a while\""},
		{"sound recheck of nothing", []string{"--sound-recheck", "0s"}, nil, "--sound-recheck 0s: want a duration from 100ms to 1h"},
		{"sound recheck from env", nil, map[string]string{"LOAXA_SOUND_RECHECK": "often"}, "LOAXA_SOUND_RECHECK=\"often\""},
		{"amplifier warm-up from env", nil, map[string]string{"LOAXA_AMP_WARMUP": "soon"}, "LOAXA_AMP_WARMUP=\"soon\""},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, env(tc.env), &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
}

func TestRunCheck(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	credFile := filepath.Join(t.TempDir(), "node.json")
	raw, _ := json.Marshal(ctl.Credentials("n1", "x1"))
	os.WriteFile(credFile, raw, 0o600)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--check", "--credentials", credFile}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "credentials ok: node n1 in area x1") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"node":"n1"}`), 0o600)
	stdout.Reset()
	if code := run(context.Background(), []string{"--check", "--credentials", bad}, env(nil), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "secret: required") {
		t.Fatalf("bad document: exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "loaxa node") {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
}

// TestRunHelp: "node --help" lists the flags and succeeds; it exited 2,
// which "go run ./node --help" reports as "exit status 2", as if the
// technician had typed something wrong.
func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-credentials") {
		t.Fatalf("exit %d, stderr %q; want 0 and the flags", code, stderr.String())
	}
}

// TestRunJoinsAndStops runs the whole node with --audio none from the
// environment: it comes online at the controller and goes offline on cancel.
func TestRunJoinsAndStops(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	dir := t.TempDir()
	credFile := filepath.Join(dir, "node.json")
	raw, _ := json.Marshal(ctl.Credentials("n1", "x1"))
	os.WriteFile(credFile, raw, 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--data", filepath.Join(dir, "data")}, env(map[string]string{
			"LOAXA_CREDENTIALS": credFile, "LOAXA_AUDIO": "none", "LOAXA_LOG_LEVEL": "warn",
		}), &bytes.Buffer{}, &stderr)
	}()
	last := func() protocol.Status {
		st := ctl.Log("n1").States
		if len(st) == 0 {
			return ""
		}
		return st[len(st)-1].Status
	}
	nodetest.Eventually(t, 10*time.Second, "node never online", func() bool { return last() == protocol.StatusOnline })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	nodetest.Eventually(t, 5*time.Second, "node never offline", func() bool { return last() == protocol.StatusOffline })
	if _, err := os.Stat(filepath.Join(dir, "data", "node.db")); err != nil {
		t.Fatalf("store file: %v", err)
	}
}

// Under systemd (Type=notify, WatchdogSec=) the agent says READY=1 once
// its main loop runs, feeds the watchdog while it keeps running, and says
// STOPPING=1 on the way out. systemd is a unix datagram socket here.
func TestRunTellsSystemd(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	dir := t.TempDir()
	credFile := filepath.Join(dir, "node.json")
	raw, _ := json.Marshal(ctl.Credentials("n1", "x1"))
	os.WriteFile(credFile, raw, 0o600)
	systemd := sdnotifytest.Listen(t)
	socket := systemd.Socket
	read := func() string {
		t.Helper()
		return systemd.Read(t, 15*time.Second)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--data", filepath.Join(dir, "data"), "--credentials", credFile, "--audio", "none", "--log-level", "warn"},
			env(map[string]string{"NOTIFY_SOCKET": socket, "WATCHDOG_USEC": "600000"}), &bytes.Buffer{}, &stderr)
	}()
	if got := read(); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	for range 2 {
		if got := read(); got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	for {
		if got := read(); got == "STOPPING=1" {
			break
		} else if got != "WATCHDOG=1" {
			t.Fatalf("notification %q while stopping", got)
		}
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestUnitAgreesWithTheAgent: scripts/systemd/loaxa-node.service and
// the agent are written apart; this reads the unit as installed and checks
// what the agent relies on. systemd waits for READY=1 from the main
// process (Type=notify, NotifyAccess=main: an update's trial runs in a
// child whose environment has no NOTIFY_SOCKET, and the update is exec'd
// in the same process); a watchdog restarts a stuck agent (WatchdogSec=,
// which the agent reads from $WATCHDOG_USEC and feeds every third of); the
// checks of the store before READY=1, each in a process with its own time
// limit, fit in TimeoutStartSec= (or systemd kills every start of a board
// with a damaged store before it could set the store aside); and the
// agent takes ExecStart's arguments.
func TestUnitAgreesWithTheAgent(t *testing.T) {
	raw, err := os.ReadFile("../scripts/systemd/loaxa-node.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			unit[k] = v
		}
	}
	for key, want := range map[string]string{"Type": "notify", "NotifyAccess": "main"} {
		if unit[key] != want {
			t.Errorf("%s=%q, want %q", key, unit[key], want)
		}
	}
	duration := func(key string) time.Duration {
		t.Helper()
		d, err := time.ParseDuration(unit[key]) // the unit writes them as Go would, "30s"
		if err != nil {
			t.Fatalf("%s=%q: %v", key, unit[key], err)
		}
		return d
	}
	// The agent's first ping of its main loop waits up to a second, and it
	// pings every third of the watchdog's period.
	if wd := duration("WatchdogSec"); wd < 3*time.Second {
		t.Errorf("WatchdogSec=%v: the agent pings its main loop every third of it, with at least 1s to answer; want at least 3s", wd)
	}
	if start, before := duration("TimeoutStartSec"), storeCheckTimeout+storeSalvageTimeout; start <= before+10*time.Second {
		t.Errorf("TimeoutStartSec=%v leaves under 10s after the store's check and read-back (%v and %v at most) for the agent to start", start, storeCheckTimeout, storeSalvageTimeout)
	}
	args := strings.Fields(unit["ExecStart"])
	if len(args) < 2 {
		t.Fatalf("ExecStart=%q", unit["ExecStart"])
	}
	// --version is answered once every argument before it is taken.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(args[1:], "--version"), env(nil), &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "loaxa node ") {
		t.Errorf("the agent with ExecStart's arguments %q: exit %d, %q %q", args[1:], code, stdout.String(), firstLine(stderr.String()))
	}
}

// fakeSound is a sound device that cannot be opened until back is set.
type fakeSound struct {
	back   atomic.Bool
	checks atomic.Int64
}

var errNoCard = errors.New(`ALSA: cannot find card "0"`)

func (f *fakeSound) device() soundDevice {
	return soundDevice{
		open: func() (agent.Output, error) {
			if f.back.Load() {
				return audio.NewNone(nil), nil
			}
			return nil, errNoCard
		},
		check: func(context.Context) error {
			f.checks.Add(1)
			if f.back.Load() {
				return nil
			}
			return errNoCard
		},
	}
}

// runningNode is the node program (runWith) run in a goroutine as node
// n1 of area x1 against a test controller, its credentials and data in a
// temporary directory.
type runningNode struct {
	ctl    *nodetest.Controller
	data   string
	stderr *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan int
	run    func() // runs the program again, as its service manager would
}

// startNode makes the controller and the credentials, calls prepare (if
// not nil) with the data directory, and runs the node with args.
func startNode(t *testing.T, args []string, environ map[string]string, sound soundDevice, prepare func(data string)) *runningNode {
	t.Helper()
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	dir := t.TempDir()
	credFile := filepath.Join(dir, "node.json")
	raw, _ := json.Marshal(ctl.Credentials("n1", "x1"))
	if err := os.WriteFile(credFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	n := &runningNode{ctl: ctl, data: filepath.Join(dir, "data"), stderr: &syncbuf.Buffer{}, done: make(chan int, 1)}
	if prepare != nil {
		prepare(n.data)
	}
	args = append([]string{"--credentials", credFile, "--data", n.data, "--log-level", "warn"}, args...)
	n.run = func() {
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel = cancel
		t.Cleanup(cancel)
		go func() { n.done <- runWith(ctx, args, env(environ), &bytes.Buffer{}, n.stderr, sound) }()
	}
	n.run()
	return n
}

// awaitState waits for a state of the node that satisfies ok.
func (n *runningNode) awaitState(t *testing.T, what string, ok func(protocol.State) bool) {
	t.Helper()
	nodetest.Eventually(t, 10*time.Second, what, func() bool {
		st := n.ctl.Log("n1").States
		return len(st) > 0 && ok(st[len(st)-1])
	})
}

// exited waits for the program to end after what happened, and returns
// its exit status.
func (n *runningNode) exited(t *testing.T, after string) int {
	t.Helper()
	select {
	case code := <-n.done:
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("the node did not end after %s", after)
		return -1
	}
}

// TestRunWithoutSoundDevice: a node whose sound device cannot be opened
// runs on without it (online, its state saying why), checks for it, and
// exits with the restart status once the check finds it.
func TestRunWithoutSoundDevice(t *testing.T) {
	snd := &fakeSound{}
	n := startNode(t, []string{"--sound-recheck", "100ms"}, nil, snd.device(), nil)
	n.awaitState(t, "node online, saying it has no sound device", func(st protocol.State) bool {
		return st.Status == protocol.StatusOnline && st.NoSoundDevice == errNoCard.Error()
	})
	nodetest.Eventually(t, 10*time.Second, "the device checked again and again", func() bool { return snd.checks.Load() >= 3 })
	select {
	case code := <-n.done:
		t.Fatalf("exit %d while the device is still missing: %s", code, n.stderr.String())
	default:
	}
	if got := strings.Count(n.stderr.String(), "still no sound device"); got != 1 {
		t.Errorf("%q logged %d times over %d checks, want once (the error did not change)", "still no sound device", got, snd.checks.Load())
	}

	snd.back.Store(true)
	if code := n.exited(t, "the device came back"); code != exitReboot {
		t.Fatalf("exit %d once the device is back, want %d: %s", code, exitReboot, n.stderr.String())
	}
	if !strings.Contains(n.stderr.String(), "can be opened now") {
		t.Errorf("log does not say why the agent stopped: %s", n.stderr.String())
	}
}

// TestRunExitsToRebootOnCommand: the controller's reboot command ends the
// node with the status its service manager starts it again on.
func TestRunExitsToRebootOnCommand(t *testing.T) {
	n := startNode(t, []string{"--audio", "none"}, nil, realSound, nil)
	n.awaitState(t, "node online", func(st protocol.State) bool { return st.Status == protocol.StatusOnline })
	n.ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdReboot})
	if code := n.exited(t, "the reboot command"); code != exitReboot {
		t.Fatalf("exit %d after the reboot command, want %d: %s", code, exitReboot, n.stderr.String())
	}
	if !strings.Contains(n.stderr.String(), "stopped to reboot") {
		t.Errorf("log does not say why the agent stopped: %s", n.stderr.String())
	}
}

// TestRunWithADamagedStore: a store a power cut left cut short does not
// keep the node from starting: it is set aside, the node runs on a new
// one, and its state counts a damaged file, for the storage-damaged alarm.
func TestRunWithADamagedStore(t *testing.T) {
	n := startNode(t, []string{"--audio", "none"}, nil, realSound, func(data string) {
		// The first half of a store, as a card that lost the rest leaves it.
		path := newStoreIn(t, data)
		whole, _ := os.ReadFile(path)
		os.WriteFile(path, whole[:len(whole)/2], 0o600)
	})
	n.ranOnANewStore(t, "the store was damaged")
}

// newStoreIn makes data and an empty node store in it, and returns the
// store's path.
func newStoreIn(t *testing.T, data string) string {
	t.Helper()
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// ranOnANewStore checks that the node came online counting a damaged file,
// kept the damaged store aside, stops cleanly, and logged each of says.
func (n *runningNode) ranOnANewStore(t *testing.T, says ...string) {
	t.Helper()
	n.awaitState(t, "node online, counting a damaged file", func(st protocol.State) bool {
		return st.Status == protocol.StatusOnline && st.StorageDamaged == 1
	})
	n.cancel()
	if code := n.exited(t, "cancel"); code != 0 {
		t.Fatalf("exit %d: %s", code, n.stderr.String())
	}
	if aside, _ := filepath.Glob(filepath.Join(n.data, "node.db.damaged-*")); len(aside) != 1 {
		t.Errorf("damaged store kept as %v, want one file", aside)
	}
	for _, s := range says {
		if !strings.Contains(n.stderr.String(), s) {
			t.Errorf("log does not say %q: %s", s, n.stderr.String())
		}
	}
}

// TestWatchSoundChecksSoonAfterStart: the first check does not wait for
// the full interval, so a card that enumerates a moment after the agent
// started at boot is found at once.
func TestWatchSoundChecksSoonAfterStart(t *testing.T) {
	back := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchSound(ctx, func(context.Context) error { return nil }, time.Hour, func() { close(back) }, slog.New(slog.DiscardHandler))
	select {
	case <-back:
	case <-time.After(30 * time.Second):
		t.Fatal("no check within 30 s of starting, with an hour between checks")
	}
}

func TestRunSoundCheck(t *testing.T) {
	snd := &fakeSound{}
	var stdout, stderr bytes.Buffer
	if code := runWith(context.Background(), []string{"--sound-check"}, env(nil), &stdout, &stderr, snd.device()); code != exitFailure || !strings.Contains(stderr.String(), "cannot find card") {
		t.Fatalf("device missing: exit %d, stderr %q; want %d and the reason", code, stderr.String(), exitFailure)
	}
	snd.back.Store(true)
	stdout.Reset()
	if code := runWith(context.Background(), []string{"--sound-check"}, env(nil), &stdout, &stderr, snd.device()); code != 0 || stdout.String() != "sound device ok\n" {
		t.Fatalf("device there: exit %d, stdout %q", code, stdout.String())
	}
}
