// Command firmware-sim simulates loaxa speaker boxes. Its fleet command
// enrols N simulated boards with a controller and runs a real node agent
// for each until interrupted:
//
//	LOAXA_TOKEN=… go run ./firmware-sim fleet --controller http://127.0.0.1:8080 --nodes 100 --area xa-an-lu
//
// Every flag can also be set by its LOAXA_* environment variable; a flag on
// the command line wins. Prefer LOAXA_TOKEN to --token: other users can
// read a process's arguments.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/firmware-sim/fleet"
)

// Exit statuses.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: firmware-sim fleet --controller URL --token TOKEN --nodes N --area AREA [--prefix sim] [--data DIR] [--control ADDR] [--ca PEM]
                          [--place LAT,LON] [--enrol-workers 8] [--sound-log FILE] [--pprof ADDR] [--alert-prepare 10s]

Enrols N simulated speaker boxes with the controller and runs a node agent
for each until interrupted (Ctrl-C or SIGTERM). The boxes stand in rows of
10 about 220 m apart from a place that follows from the area's code, or
from --place.`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "fleet" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, usage)
			return 0
		}
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	return runFleet(ctx, args[1:], getenv, stdout, stderr)
}

func runFleet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("firmware-sim fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fleet.Config
	var logLevel, agentLogLevel string
	var wait time.Duration
	var control, soundLog, pprofAddr, caFile string
	fs.StringVar(&cfg.Controller, "controller", "", "controller base URL, e.g. http://127.0.0.1:8080 (env LOAXA_CONTROLLER)")
	fs.StringVar(&caFile, "ca", "", "PEM certificate to trust in an https controller while enrolling, as node --enrol --ca: its --tls-ca, or the last certificate of its --tls-cert; default the system's roots (env LOAXA_CA)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token of a user who may enrol nodes in the area (env LOAXA_TOKEN, preferred)")
	fs.IntVar(&cfg.Nodes, "nodes", 0, "how many boxes to simulate (env LOAXA_NODES)")
	fs.StringVar(&cfg.Area, "area", "", "area id the boxes are enrolled in (env LOAXA_AREA)")
	fs.Var(placeFlag{&cfg.Place}, "place", "where the first box stands, LAT,LON in degrees (e.g. 20.86,106.68), the others in rows of 10 northwards; default a place that follows from the area's code (env LOAXA_PLACE)")
	fs.StringVar(&cfg.Prefix, "prefix", fleet.DefaultPrefix, "node id prefix: PREFIX-0001, PREFIX-0002, … (env LOAXA_PREFIX)")
	fs.StringVar(&cfg.DataDir, "data", "", "directory for each node's credentials and store; empty keeps stores in memory (env LOAXA_DATA)")
	fs.StringVar(&logLevel, "log-level", "info", "fleet log level: debug, info, warn or error (env LOAXA_LOG_LEVEL)")
	fs.StringVar(&agentLogLevel, "agent-log-level", "warn", "node agents' log level (env LOAXA_AGENT_LOG_LEVEL)")
	fs.StringVar(&control, "control", "", "serve fault injection over HTTP on ADDR, e.g. 127.0.0.1:9090 (env LOAXA_CONTROL; see firmware-sim/board.Control)")
	fs.IntVar(&cfg.EnrolWorkers, "enrol-workers", fleet.DefaultEnrolWorkers, "how many enrolments run at once (env LOAXA_ENROL_WORKERS)")
	fs.StringVar(&soundLog, "sound-log", "", "append a line \"<node> <occurrence> <Unix ns> <offset ns>\" to FILE when a node's output takes the first sample of a play (offset: how far into its stream, for a late alert that skips into its chime) (env LOAXA_SOUND_LOG)")
	fs.DurationVar(&cfg.AlertPrepare, "alert-prepare", 0, "prepare an emergency alert as it arrives if it starts within this (0: the agent's default, 10s; negative: only the amplifier warm-up before its start, like any play) (env LOAXA_ALERT_PREPARE)")
	fs.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on ADDR, e.g. 127.0.0.1:6060 (env LOAXA_PPROF)")
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the agents to reach the broker before printing the summary (env LOAXA_WAIT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for: the flags are listed
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "firmware-sim fleet: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, env := range map[string]string{
		"controller": "LOAXA_CONTROLLER", "token": "LOAXA_TOKEN", "nodes": "LOAXA_NODES", "area": "LOAXA_AREA",
		"prefix": "LOAXA_PREFIX", "data": "LOAXA_DATA", "log-level": "LOAXA_LOG_LEVEL",
		"agent-log-level": "LOAXA_AGENT_LOG_LEVEL", "wait": "LOAXA_WAIT", "control": "LOAXA_CONTROL",
		"enrol-workers": "LOAXA_ENROL_WORKERS", "sound-log": "LOAXA_SOUND_LOG", "pprof": "LOAXA_PPROF", "alert-prepare": "LOAXA_ALERT_PREPARE",
		"ca": "LOAXA_CA", "place": "LOAXA_PLACE",
	} {
		if v := getenv(env); v != "" && !set[name] {
			if err := fs.Set(name, v); err != nil {
				fmt.Fprintf(stderr, "firmware-sim fleet: %s=%q: %v\n", env, v, err)
				return exitUsage
			}
		}
	}

	var missing []string
	for name, empty := range map[string]bool{"--controller": cfg.Controller == "", "--nodes": cfg.Nodes == 0, "--area": cfg.Area == ""} {
		if empty {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fmt.Fprintf(stderr, "firmware-sim fleet: %s required\n%s\n", strings.Join(missing, ", "), usage)
		return exitUsage
	}
	var err error
	if cfg.Logger, err = newLogger(stderr, "log-level", logLevel); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if cfg.AgentLogger, err = newLogger(stderr, "agent-log-level", agentLogLevel); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}

	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			fmt.Fprintf(stderr, "firmware-sim fleet: --ca: %v\n", err)
			return exitUsage
		}
		cfg.ControllerCA = string(pem)
	}
	if cfg.EnrolWorkers < 1 {
		fmt.Fprintf(stderr, "firmware-sim fleet: --enrol-workers %d: want at least 1\n", cfg.EnrolWorkers)
		return exitUsage
	}
	if pprofAddr != "" {
		ln, err := net.Listen("tcp", pprofAddr)
		if err != nil {
			fmt.Fprintf(stderr, "firmware-sim: --pprof %s: %v\n", pprofAddr, err)
			return exitFailure
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stdout, "firmware-sim: profiles on http://%s/debug/pprof/\n", ln.Addr())
	}
	if soundLog != "" {
		// Appended to: a fleet started again on the same file (a cluster
		// taken off the air and back) keeps the plays before.
		file, err := os.OpenFile(soundLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "firmware-sim: --sound-log: %v\n", err)
			return exitFailure
		}
		defer file.Close()
		cfg.SoundLog = file
	}

	// The control address is bound before the fleet enrols anything: a
	// busy one found afterwards would leave the nodes enrolled on the
	// controller, and without --data their credentials lost. It is served
	// once the fleet runs; a request before waits in the listen queue.
	var controlLn net.Listener
	if control != "" {
		if controlLn, err = net.Listen("tcp", control); err != nil {
			fmt.Fprintf(stderr, "firmware-sim: --control %s: %v\n", control, err)
			return exitFailure
		}
		defer controlLn.Close()
	}

	f, err := fleet.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "firmware-sim: %v\n", err)
		return exitFailure
	}
	if controlLn != nil {
		srv := &http.Server{Handler: f.Control(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(controlLn)
		defer srv.Close()
		fmt.Fprintf(stdout, "firmware-sim: fault injection on http://%s/boards/{id}/faults/{fault} and /boards/{id}/storage/damage\n", controlLn.Addr())
	}
	connected := f.WaitConnected(ctx, wait)
	fmt.Fprintf(stdout, "firmware-sim: %s running in area %s as %s-0001…: %d enrolled, %d on saved credentials, %d of %d connected to the broker\n",
		count(f.Running(), "node", "nodes"), cfg.Area, cfg.Prefix, f.Enrolled(), f.Reused(), connected, len(f.Sims()))
	<-ctx.Done()
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "firmware-sim: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "firmware-sim: stopped %s\n", count(len(f.Sims()), "node", "nodes"))
	return 0
}

// placeFlag is --place LAT,LON.
type placeFlag struct{ p **fleet.Place }

func (f placeFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return fmt.Sprintf("%v,%v", (*f.p).Lat, (*f.p).Lon)
}

func (f placeFlag) Set(s string) error {
	lat, lon, ok := strings.Cut(s, ",")
	if !ok {
		return errors.New("want LAT,LON in degrees, e.g. 20.86,106.68")
	}
	var p fleet.Place
	var err1, err2 error
	p.Lat, err1 = strconv.ParseFloat(strings.TrimSpace(lat), 64)
	p.Lon, err2 = strconv.ParseFloat(strings.TrimSpace(lon), 64)
	if err1 != nil || err2 != nil {
		return errors.New("want LAT,LON in degrees, e.g. 20.86,106.68")
	}
	*f.p = &p
	return nil
}

// count says n things in English: "1 node", "2 nodes".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func newLogger(w io.Writer, flagName, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("firmware-sim fleet: --%s %q: want debug, info, warn or error", flagName, level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
