// Command node is the loaxa node agent for a speaker box: it joins the
// controller with a credentials document, keeps its schedule in DATA, and
// plays through the default sound device (or paces silence with
// --audio none).
//
//	go run ./node --credentials node.json --data /var/lib/loaxa
//
// A board given an enrolment code instead of a document fetches its
// document once, then runs as above:
//
//	go run ./node --enrol 7KQ2M-XH9DP-03RTW-VN5CE --controller https://loa.example.vn --credentials node.json [--ca controller.pem] [--data /var/lib/loaxa-node]
//
// (--data: a board enrolled again judges the controller's certificate on
// the clock floor its store holds.)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/sdnotify"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/node/board"
	"loaxa.vn/node/content"
	"loaxa.vn/node/store"
	"loaxa.vn/node/update"
	"loaxa.vn/protocol"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit statuses.
const (
	exitFailure = 1
	exitUsage   = 2
	// exitReboot: the controller asked for a reboot, the sound device was
	// lost (audio.ErrDeviceLost), or an agent that started without one can
	// open it now (errSoundBack); the agent stopped cleanly and its service
	// manager starts it again (systemd: Restart=on-failure or always).
	exitReboot = 75
)

// errReboot ends runAgent when the controller asked for a reboot.
var errReboot = errors.New("reboot requested by the controller")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line, after environment overrides.
type options struct {
	credentials string
	data        string
	audio       string
	logLevel    string
	ampWarmup   time.Duration
	heartbeat   time.Duration
	metrics     string
	board       string
	enrol       string
	controller  string
	ca          string
	cacheSize   int64 // bytes
	// dataGiven says --data (or LOAXA_DATA) was given, not defaulted.
	dataGiven bool
	getenv    func(string) string
	// sound is the sound device (--audio oto); soundRecheck how often an
	// agent without it checks whether it is back.
	sound        soundDevice
	soundRecheck time.Duration
	// trialTimeout bounds an update's trial; probation is how long an
	// installed release must then run healthy (selfupdate.go).
	trialTimeout time.Duration
	probation    time.Duration
}

// The sound device reports its latency to the agent, which starts plays
// that much early.
var _ agent.LatencyOutput = (*oto.Output)(nil)

// It tells the agent when it has failed while nothing played.
var _ agent.CheckedOutput = (*oto.Output)(nil)

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, getenv, stdout, stderr, realSound)
}

// runWith is run with the sound device given.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, sound soundDevice) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{getenv: getenv, sound: sound}
	fs.StringVar(&o.credentials, "credentials", "", "credentials document from the controller (env LOAXA_CREDENTIALS)")
	fs.StringVar(&o.data, "data", "./data", "data directory: store and content cache (env LOAXA_DATA)")
	fs.StringVar(&o.audio, "audio", "oto", "audio output: oto (sound device) or none (env LOAXA_AUDIO)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (env LOAXA_LOG_LEVEL)")
	fs.DurationVar(&o.trialTimeout, "update-trial", defaultTrialTimeout,
		"how long a new agent release has to connect before it is thrown away (env LOAXA_UPDATE_TRIAL_TIMEOUT)")
	fs.DurationVar(&o.probation, "update-probation", update.DefaultProbation,
		"how long an installed agent release must run connected and answering before it is kept; one that starts 3 times or takes 6 times this is rolled back (env LOAXA_UPDATE_PROBATION)")
	fs.DurationVar(&o.ampWarmup, "amp-warmup", agent.DefaultAmplifierWarmup,
		"how long before a play the amplifier is switched on, e.g. 500ms or 2s (env LOAXA_AMP_WARMUP)")
	fs.DurationVar(&o.heartbeat, "heartbeat", agent.DefaultHeartbeat,
		"how often the node publishes its state when nothing changes (env LOAXA_HEARTBEAT)")
	fs.DurationVar(&o.soundRecheck, "sound-recheck", defaultSoundRecheck,
		"how often an agent that started without its sound device checks whether it is back (env LOAXA_SOUND_RECHECK)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on ADDR/metrics, e.g. 127.0.0.1:9101 (env LOAXA_METRICS; default none)")
	fs.StringVar(&o.board, "board", "", "board file: the GPIO lines of the amplifier relay, its feedback and fault, the door switch and mains (env LOAXA_BOARD; default: no board I/O)")
	fs.StringVar(&o.enrol, "enrol", "", "one-time enrolment `CODE`: fetch the credentials document into --credentials and exit")
	fs.StringVar(&o.controller, "controller", "", "controller base URL to enrol at, e.g. https://loa.example.vn")
	fs.StringVar(&o.ca, "ca", "", "PEM certificate to trust for the controller while enrolling (default: the system's roots)")
	cacheMB := fs.Int64("cache-size", content.DefaultMaxBytes>>20, "content cache limit in MiB; content the schedule needs is kept beyond it (env LOAXA_CACHE_SIZE)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "check the --credentials document and exit (install-node.sh does, before installing)")
	soundCheck := fs.Bool("sound-check", false, "open the sound device and exit: status 0 if it opens (an agent without its device runs this to learn it is back)")
	storeCheckFlag := fs.Bool("store-check", false, "check the store in --data, read only, and exit: status 0 if it is sound, 65 if it is damaged (the agent runs this as it starts)")
	salvageFile := fs.String("store-salvage", "", "read back, read only, the events the damaged store `FILE` had not sent, one JSON line each, and exit (the agent runs this on a store it set aside)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for: the flags are listed
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "loaxa node", version)
		return 0
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for flagName, env := range map[string]string{"credentials": "LOAXA_CREDENTIALS", "data": "LOAXA_DATA", "audio": "LOAXA_AUDIO",
		"log-level": "LOAXA_LOG_LEVEL", "cache-size": "LOAXA_CACHE_SIZE", "amp-warmup": "LOAXA_AMP_WARMUP",
		"heartbeat": "LOAXA_HEARTBEAT", "metrics": "LOAXA_METRICS", "board": "LOAXA_BOARD", "update-trial": "LOAXA_UPDATE_TRIAL_TIMEOUT",
		"update-probation": "LOAXA_UPDATE_PROBATION", "sound-recheck": "LOAXA_SOUND_RECHECK"} {
		if v := getenv(env); v != "" && !set[flagName] {
			if err := fs.Set(flagName, v); err != nil {
				fmt.Fprintf(stderr, "node: %s=%q: %v\n", env, v, err)
				return exitUsage
			}
		}
	}
	o.dataGiven = set["data"] || getenv("LOAXA_DATA") != ""
	if o.ampWarmup <= 0 || o.ampWarmup > time.Minute {
		fmt.Fprintf(stderr, "node: --amp-warmup %v: want a duration above 0 and at most 1m, e.g. 500ms\n", o.ampWarmup)
		return exitUsage
	}

	if o.heartbeat < time.Second || o.heartbeat > time.Hour {
		fmt.Fprintf(stderr, "node: --heartbeat %v: want a duration from 1s to 1h, e.g. 60s\n", o.heartbeat)
		return exitUsage
	}
	if o.probation < time.Second || o.probation > 24*time.Hour {
		fmt.Fprintf(stderr, "node: --update-probation %v: want a duration from 1s to 24h, e.g. 10m\n", o.probation)
		return exitUsage
	}
	if o.soundRecheck < 100*time.Millisecond || o.soundRecheck > time.Hour {
		fmt.Fprintf(stderr, "node: --sound-recheck %v: want a duration from 100ms to 1h, e.g. 15s\n", o.soundRecheck)
		return exitUsage
	}
	if *soundCheck {
		out, err := o.sound.open()
		if err != nil {
			fmt.Fprintf(stderr, "node: %v\n", err)
			return exitFailure
		}
		if err := out.Close(); err != nil {
			fmt.Fprintf(stderr, "node: close the sound device: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(stdout, "sound device ok")
		return 0
	}
	if *storeCheckFlag {
		return storeCheck(filepath.Join(o.data, "node.db"), stdout, stderr, os.Exit)
	}
	if *salvageFile != "" {
		return storeSalvage(*salvageFile, stdout, stderr, os.Exit)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "node: --log-level %q: want debug, info, warn or error\n", o.logLevel)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if *cacheMB < 1 || *cacheMB > 1<<30 {
		fmt.Fprintf(stderr, "node: --cache-size %d: want a size in MiB of at least 1\n", *cacheMB)
		return exitUsage
	}
	o.cacheSize = *cacheMB << 20
	if o.audio != "oto" && o.audio != "none" {
		fmt.Fprintf(stderr, "node: --audio %q: want oto or none\n", o.audio)
		return exitUsage
	}
	if o.credentials == "" {
		fmt.Fprintln(stderr, "node: --credentials FILE is required: the JSON document the controller gave when the node was created")
		return exitUsage
	}
	if o.enrol != "" {
		return enrol(ctx, o, stdout, stderr, log)
	}
	cred, err := protocol.ReadCredentials(o.credentials)
	if err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(stdout, "credentials ok: node %s in area %s, controller %s, broker %s\n", cred.Node, cred.Area, cred.Controller, cred.Broker)
		return 0
	}
	if err := runAgent(ctx, cred, o, log); errors.Is(err, errReboot) {
		log.Warn("node: stopped to reboot; the service manager starts it again", "exit", exitReboot)
		return exitReboot
	} else if errors.Is(err, audio.ErrDeviceLost) {
		log.Error("node: stopped: the sound device failed and cannot be opened again in this process; the service manager starts the agent again", "err", err, "exit", exitReboot)
		return exitReboot
	} else if errors.Is(err, errSoundBack) {
		log.Warn("node: stopped: the sound device that was missing can be opened now; the service manager starts the agent again with it", "exit", exitReboot)
		return exitReboot
	} else if err != nil {
		log.Error("node: stopped", "err", err)
		return exitFailure
	}
	return 0
}

// runAgentOnce runs the agent until ctx ends or an update has been
// fetched and waits for its trial (u returns it, see selfupdate.go).
func runAgentOnce(ctx context.Context, cred *protocol.Credentials, o options, log *slog.Logger, u *updater) (err error) {
	st, err := openStore(ctx, o.data, o.getenv, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.close()) }()
	cacheSize := o.cacheSize
	if st.contentInMemory != "" {
		cacheSize = min(cacheSize, memoryCacheMax)
	}

	var out agent.Output
	var missing bool // no sound device: run without, until it can be opened
	switch o.audio {
	case "oto":
		dev, err := o.sound.open()
		if err != nil {
			log.Error("node: no sound device: running without it (the cluster cannot sound, the controller is told); the agent restarts once it can be opened (use --audio none on a machine meant to have no sound)",
				"err", err, "check_every", o.soundRecheck)
			out, missing = audio.Missing{Err: err}, true
		} else {
			out = dev
		}
	default:
		out = audio.NewNone(clock.Real{})
	}
	defer func() { err = errors.Join(err, out.Close()) }()

	var hw agent.Board = board.None{}
	if o.board != "" {
		f, err := board.ReadFile(o.board)
		if err != nil {
			return err
		}
		pins, err := board.PeriphPins()
		if err != nil {
			return err
		}
		if hw, err = board.OpenGPIO(f, pins); err != nil {
			return fmt.Errorf("board %s: %w", o.board, err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cfg := agent.Config{
		Credentials:   cred,
		DataDir:       o.data,
		Store:         st.Store,
		Output:        out,
		Board:         hw,
		Logger:        log,
		Version:       version,
		CacheMaxBytes: cacheSize,
		StartupEvents: u.startup,

		DamagedAtStart:  st.damaged,
		StoreFault:      st.fault,
		ContentInMemory: st.contentInMemory,
		AmplifierWarmup: o.ampWarmup,
		Heartbeat:       o.heartbeat,
		Reboot:          func() { cancel(errReboot) },
		Restart:         func(cause error) { cancel(cause) },
	}
	if u.requests != nil {
		cfg.Updates = u.requests
	} else {
		cfg.NoUpdates = u.off
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if o.metrics != "" {
		stop, err := serveMetrics(o.metrics, a, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	uctx, stop := context.WithCancel(ctx)
	defer stop()
	done := u.serve(uctx, a, stop)
	defer func() { <-done }()
	if missing {
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watchSound(uctx, o.sound.check, o.soundRecheck, func() { cancel(errSoundBack) }, log)
		}()
		defer func() { stop(); <-watched }()
	}
	if err := runSupervised(uctx, a, o.getenv, log); err != nil {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, errReboot) || errors.Is(cause, audio.ErrDeviceLost) || errors.Is(cause, errSoundBack) {
		return cause
	}
	return nil
}

// runSupervised runs the agent and tells systemd about it (Type=notify):
// READY=1 once the main loop answers, WATCHDOG=1 while it keeps answering
// (WatchdogSec=), STOPPING=1 on the way out. Outside systemd it just runs
// the agent.
func runSupervised(ctx context.Context, a *agent.Agent, getenv func(string) string, log *slog.Logger) error {
	sd := sdnotify.New(getenv)
	watchdog, err := sdnotify.WatchdogInterval(getenv)
	if err != nil {
		log.Warn("systemd watchdog off", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if sd.Enabled() {
		ready := make(chan struct{})
		go func() {
			defer close(ready)
			for ctx.Err() == nil {
				actx, acancel := context.WithTimeout(ctx, time.Second)
				err := a.Alive(actx)
				acancel()
				if err == nil {
					if err := sd.Notify(sdnotify.Ready + "\nSTATUS=agent running"); err != nil {
						log.Warn("systemd notify", "err", err)
					}
					sd.FeedWatchdog(ctx, watchdog, a.Alive, log)
					return
				}
			}
		}()
		defer func() { <-ready }()
	}
	err = <-done
	cancel()
	if err := sd.Notify(sdnotify.Stopping); err != nil {
		log.Warn("systemd notify", "err", err)
	}
	return err
}

// enrol redeems --enrol at --controller and writes the credentials
// document. It refuses to overwrite a document: that would throw away a
// working identity, and the code would be spent for nothing. For the same
// reason it makes sure the document can be written before it redeems the
// code (credentialsWritable).
func enrol(ctx context.Context, o options, stdout, stderr io.Writer, log *slog.Logger) int {
	if o.controller == "" {
		fmt.Fprintln(stderr, "node: --enrol needs --controller URL: the controller's address, as the technician gave it with the code")
		return exitUsage
	}
	if _, err := os.Stat(o.credentials); err == nil {
		fmt.Fprintf(stderr, "node: %s exists already; this board is enrolled. Delete the file first to enrol it again with a new code.\n", o.credentials)
		return exitUsage
	}
	if err := credentialsWritable(o.credentials); err != nil {
		fmt.Fprintf(stderr, "node: cannot write the credentials to %s: %v. The code was not used: run as root, or give --credentials a path in a directory you may write, and enrol again with the same code.\n", o.credentials, err)
		return exitUsage
	}
	// The controller's certificate is verified as the agent verifies it
	// before it has measured the controller's time: a fresh board's clock
	// may be at its image's date, before the certificate was issued, and
	// one enrolled again is judged on its clock floor.
	pinned := &protocol.Credentials{}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			fmt.Fprintf(stderr, "node: --ca: %v\n", err)
			return exitUsage
		}
		pinned.ControllerCA = string(pem)
	}
	cfg, err := pinned.TLSConfig()
	if err != nil {
		fmt.Fprintf(stderr, "node: --ca %s: %v\n", o.ca, err)
		return exitUsage
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = agent.EnrolTLS(cfg, o.controller, time.Now, enrolFloor(ctx, o.data, log), log)
	client := &http.Client{Timeout: time.Minute, Transport: tr}
	cred, err := agent.Enrol(ctx, client, o.controller, o.enrol)
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		// The handshake failed before the code was sent.
		fmt.Fprintf(stderr, "node: %v\nThis board does not trust the controller's certificate: give the certificate the controller pins with --ca PEM (its --tls-ca, or the last certificate of its --tls-cert). The code was not used; enrol again with it.\n", err)
		return exitFailure
	}
	var refused *tls.CertificateVerificationError
	if errors.As(err, &refused) {
		fmt.Fprintf(stderr, "node: %v\nThe code was not used; enrol again with it.\n", err)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return exitFailure
	}
	if cred.ControllerCA == "" {
		// Keep trusting what the enrolment was verified with.
		cred.ControllerCA = pinned.ControllerCA
	}
	if err := protocol.WriteCredentials(o.credentials, cred); err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return exitFailure
	}
	data := "DIR"
	if o.dataGiven {
		data = o.data
	}
	// The document is written mode 0600 for whoever enrolled, root on a
	// board; the installed service runs as loaxa-node (install-node.sh).
	// The agent is named as it was run (./node in a release archive): a
	// board's shell finds no "node", or finds Node.js.
	self := program()
	fmt.Fprintf(stdout, "Enrolled as node %s in area %s; credentials written to %s.\n", cred.Node, cred.Area, o.credentials)
	// Run from an unpacked release archive, what a fresh board needs next
	// is the install script beside it, which docs/deploy.md gives as the
	// second step; the lines below alone sent technicians to start the
	// agent by hand, as root, or to restart a service not installed yet.
	if script, ok := besideProgram(self, "install-node.sh"); ok {
		fmt.Fprintf(stdout, "Install the agent on this board as the loaxa-node service: %s --credentials %s\n", script, o.credentials)
	}
	fmt.Fprintf(stdout, "Start the agent with: %[3]s --credentials %[1]s --data %[2]s\n"+
		"On a board running the loaxa-node service, let it read the document and start it again: chown root:loaxa-node %[1]s && chmod 0640 %[1]s && systemctl restart loaxa-node\n",
		o.credentials, data, self)
	return 0
}

// program is the agent as it was run, for the commands it prints; tests
// give another.
var program = func() string { return os.Args[0] }

// besideProgram returns how to run the executable file name in the
// directory of self, the agent as it was run ("./install-node.sh" for
// "./node"), and whether there is one. An agent found on the PATH (no
// slash in self) has nothing beside it.
func besideProgram(self, name string) (string, bool) {
	dir, _ := filepath.Split(self) // "./" stays, so the shell runs the file
	if dir == "" {
		return "", false
	}
	path := dir + name
	fi, err := os.Stat(path)
	return path, err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// enrolFloor returns the clock floor of the store in data, zero if there
// is none: a board enrolled again after its credentials file was deleted
// keeps its store, and its clock may be behind after a power cut. A floor
// that cannot be read leaves the board's clock alone, as the agent does.
// The store is checked first as the agent's start checks it, in a process
// of its own with a time limit (checkStoreInChild): a garbled page tree
// that loops kept the read below going round until its stack passed 1 GB
// and the runtime ended the enrolment (a board's memory runs out before
// that). A store found damaged is one the agent would set aside, so its
// floor is not used either.
func enrolFloor(ctx context.Context, data string, log *slog.Logger) time.Time {
	path := filepath.Join(data, "node.db")
	damaged, err := checkStoreInChild(ctx, data, path)
	if damaged != nil {
		log.Error("enrol: clock floor not read: the store in --data is damaged (the agent sets it aside when it starts); judging the controller's certificate on the board's clock", "err", damaged)
		return time.Time{}
	}
	if err != nil && ctx.Err() == nil {
		// Held by an agent (said again below), or the check could not
		// run: read it here, as the agent does then.
		log.Warn("enrol: the store could not be checked in a process of its own; reading its clock floor here", "err", err)
	}
	floor, err := store.ReadClockFloor(path)
	if store.Held(err) {
		log.Error("enrol: clock floor not read: an agent holds the store in --data (stop it first: systemctl stop loaxa-node); judging the controller's certificate on the board's clock", "err", err)
		return time.Time{}
	}
	if err != nil {
		log.Error("enrol: clock floor not read; judging the controller's certificate on the board's clock", "err", err)
		return time.Time{}
	}
	return floor
}

// credentialsWritable makes sure a credentials document can be written
// at path: it creates the directory (0700: the document is a secret) if it
// is missing, and a file in it, which it removes. A fresh board has no
// /etc/loaxa yet (install-node.sh makes it later), and a technician may
// run the enrolment without root; finding that out after redeeming the
// one-time code would lose the board's new secret with the code spent.
func credentialsWritable(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// serveMetrics serves the agent's metrics (and the Go runtime's) on
// addr/metrics until stop is called. The listener opens here, so a busy
// port fails at start.
func serveMetrics(addr string, a *agent.Agent, log *slog.Logger) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(a.Collectors()...)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("node: metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() { srv.Close() }, nil
}
