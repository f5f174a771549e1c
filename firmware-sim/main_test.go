package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

// TestMain checks that the fleet leaves no goroutine behind; see the same
// check in package fleet for why it polls.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for err := goleak.Find(); err != nil; err = goleak.Find() {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}
	os.Exit(code)
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"no command", nil, nil, exitUsage, "usage: firmware-sim fleet"},
		{"unknown command", []string{"boards"}, nil, exitUsage, "usage: firmware-sim fleet"},
		{"help", []string{"help"}, nil, 0, ""},
		// "firmware-sim fleet --help" listed the flags and exited 2, which
		// "go run" reports as "exit status 2", as if it had failed.
		{"fleet help", []string{"fleet", "--help"}, nil, 0, "-alert-prepare"},
		{"missing flags", []string{"fleet"}, nil, exitUsage, "--area, --controller, --nodes required"},
		{"env fills flags", []string{"fleet", "--nodes", "2"}, map[string]string{"LOAXA_AREA": "xa"}, exitUsage, "--controller required"},
		{"bad nodes", []string{"fleet", "--nodes", "many"}, nil, exitUsage, "invalid value"},
		{"bad env", []string{"fleet"}, map[string]string{"LOAXA_NODES": "many"}, exitUsage, "LOAXA_NODES"},
		{"bad log level", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa", "--log-level", "loud"}, nil, exitUsage, "--log-level"},
		{"stray argument", []string{"fleet", "extra"}, nil, exitUsage, "unexpected arguments"},
		{"bad config", []string{"fleet", "--controller", "ftp://x", "--nodes", "1", "--area", "xa"}, nil, exitFailure, "base URL"},
		{"no enrol workers", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa", "--enrol-workers", "0"}, nil, exitUsage, "--enrol-workers 0: want at least 1"},
		{"enrol workers from env", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa"}, map[string]string{"LOAXA_ENROL_WORKERS": "-2"}, exitUsage, "--enrol-workers -2"},
		{"sound log unwritable", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa", "--sound-log", "/nonexistent/dir/sounds"}, nil, exitFailure, "--sound-log"},
		{"bad alert prepare", []string{"fleet", "--alert-prepare", "soon"}, nil, exitUsage, "invalid value \"soon\" for flag -alert-prepare"},
		{"place not a position", []string{"fleet", "--place", "north"}, nil, exitUsage, "invalid value \"north\" for flag -place: want LAT,LON"},
		{"place not numbers", []string{"fleet"}, map[string]string{"LOAXA_PLACE": "20.8,east"}, exitUsage, "LOAXA_PLACE=\"20.8,east\""},
		{"place off the globe", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa", "--place", "106.68,20.86"}, nil, exitFailure, "place 106.68,20.86: want a latitude from -90 to 90"},
		{"bad pprof address", []string{"fleet", "--controller", "http://x", "--nodes", "1", "--area", "xa", "--pprof", "nowhere"}, nil, exitFailure, "--pprof nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut syncbuf.Buffer
			code := run(context.Background(), tt.args, env(tt.env), &out, &errOut)
			if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tt.code, tt.want)
			}
		})
	}
}

// fakeController enrols any node asked for with token "tok" and gives it a
// broker that is not there; it returns its URL and how many it enrolled.
func fakeController(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadBroker := "tcp://" + l.Addr().String()
	l.Close()
	var enrolled atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" || r.Header.Get("Authorization") != "Bearer tok" {
			http.NotFound(w, r)
			return
		}
		var req struct{ ID, Area string }
		json.NewDecoder(r.Body).Decode(&req)
		enrolled.Add(1)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"credentials": protocol.Credentials{
			Node: req.ID, Area: req.Area, Controller: srv.URL, Broker: deadBroker,
			Username: req.ID, Secret: "s", Keys: []protocol.PublicKey{protocol.NewPublicKey(pub)},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &enrolled
}

// TestBusyControlAddressEnrolsNothing: with --control on an address an
// earlier fleet still held, the program enrolled every node and only then
// gave up; without --data the credentials the controller shows once were
// lost, and a re-run with the same prefix got 409 "node exists". A busy
// control address must be found before anything is enrolled.
func TestBusyControlAddressEnrolsNothing(t *testing.T) {
	controller, enrolled := fakeController(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	var out, errOut syncbuf.Buffer
	code := run(context.Background(), []string{"fleet", "--nodes", "2", "--area", "xa-an-lu", "--prefix", "busy",
		"--control", busy.Addr().String(), "--wait", "0s"},
		env(map[string]string{"LOAXA_CONTROLLER": controller, "LOAXA_TOKEN": "tok"}), &out, &errOut)
	if want := "--control " + busy.Addr().String(); code != exitFailure || !strings.Contains(errOut.String(), want) {
		t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitFailure, want)
	}
	if n := enrolled.Load(); n != 0 {
		t.Errorf("%d nodes enrolled before the busy --control address was found; want none", n)
	}
}

// TestSoundLogKeptWhenTheFleetStartsAgain: to take a cluster off the air
// and back during an alert, an operator stops its fleet and starts it
// again on the same --data and --sound-log; the new process emptied the
// sound log, and the plays before (the alert's first start, every earlier
// alert) were gone from it while the controller's report still counted
// them. A fleet adds to the sound log it is given.
func TestSoundLogKeptWhenTheFleetStartsAgain(t *testing.T) {
	controller, _ := fakeController(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	log := filepath.Join(t.TempDir(), "sounds")
	const earlier = "sim-0001 e000001@20260302T000000.000Z 1772409600304000000 0\n"
	if err := os.WriteFile(log, []byte(earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	// A run that opens the sound log and stops before any node plays.
	var out, errOut syncbuf.Buffer
	code := run(context.Background(), []string{"fleet", "--nodes", "1", "--area", "xa-an-lu", "--prefix", "again",
		"--sound-log", log, "--control", busy.Addr().String(), "--wait", "0s"},
		env(map[string]string{"LOAXA_CONTROLLER": controller, "LOAXA_TOKEN": "tok"}), &out, &errOut)
	if code != exitFailure {
		t.Fatalf("exit %d, stderr %q; want %d (busy --control)", code, errOut.String(), exitFailure)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != earlier {
		t.Errorf("sound log after the fleet started again: %q; want the earlier line kept, %q", got, earlier)
	}
}

// TestFleetRunsUntilInterrupted: the fleet says what runs, and what it
// stopped once interrupted, in words that fit one node too (it said "1
// nodes running" and "stopped 1 nodes").
func TestFleetRunsUntilInterrupted(t *testing.T) {
	for _, c := range []struct {
		nodes            string
		running, stopped string
	}{
		{"1", "firmware-sim: 1 node running in area xa-an-lu as cli-0001…: 1 enrolled, 0 on saved credentials, 0 of 1 connected to the broker\n", "stopped 1 node\n"},
		{"2", "firmware-sim: 2 nodes running in area xa-an-lu as cli-0001…: 2 enrolled, 0 on saved credentials, 0 of 2 connected to the broker\n", "stopped 2 nodes\n"},
	} {
		t.Run(c.nodes, func(t *testing.T) {
			controller, _ := fakeController(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncbuf.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"fleet", "--nodes", c.nodes, "--area", "xa-an-lu", "--prefix", "cli", "--wait", "0s"},
					env(map[string]string{"LOAXA_CONTROLLER": controller, "LOAXA_TOKEN": "tok"}), &out, &errOut)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), "running") {
				if time.Now().After(deadline) {
					t.Fatalf("no summary within 10s; stdout %q, stderr %q", out.String(), errOut.String())
				}
				time.Sleep(10 * time.Millisecond) // polling interval
			}
			if out.String() != c.running {
				t.Fatalf("summary %q, want %q", out.String(), c.running)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 || !strings.HasSuffix(out.String(), c.stopped) {
					t.Fatalf("exit %d, stdout %q, stderr %q; want it to end %q", code, out.String(), errOut.String(), c.stopped)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("fleet did not stop within 15s of the interrupt")
			}
		})
	}
}

// TestPlaceStandsTheBoxes: --place (or LOAXA_PLACE) is where the first box
// stands, and the fleet says so as it runs.
func TestPlaceStandsTheBoxes(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"flag": {[]string{"--place", "20.7,106.55"}, nil},
		"env":  {nil, map[string]string{"LOAXA_PLACE": "20.7, 106.55"}},
	} {
		t.Run(name, func(t *testing.T) {
			controller, _ := fakeController(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncbuf.Buffer
			done := make(chan int, 1)
			e := map[string]string{"LOAXA_CONTROLLER": controller, "LOAXA_TOKEN": "tok"}
			maps.Copy(e, c.env)
			go func() {
				done <- run(ctx, append([]string{"fleet", "--nodes", "1", "--area", "xa-an-lu", "--wait", "0s"}, c.args...), env(e), &out, &errOut)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), "running") {
				if time.Now().After(deadline) {
					t.Fatalf("no summary within 10s; stdout %q, stderr %q", out.String(), errOut.String())
				}
				time.Sleep(10 * time.Millisecond) // polling interval
			}
			cancel()
			<-done
			if !strings.Contains(errOut.String(), "fleet: running") || !strings.Contains(errOut.String(), "lat=20.7 lon=106.55") {
				t.Fatalf("stderr %q: want the fleet running from lat=20.7 lon=106.55", errOut.String())
			}
		})
	}
}

// TestControlServesTheRunningFleet: the control address, bound before
// enrolment, serves the boxes once they run.
func TestControlServesTheRunningFleet(t *testing.T) {
	controller, _ := fakeController(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"fleet", "--nodes", "1", "--area", "xa-an-lu", "--prefix", "ctl", "--control", "127.0.0.1:0", "--wait", "0s"},
			env(map[string]string{"LOAXA_CONTROLLER": controller, "LOAXA_TOKEN": "tok"}), &out, &errOut)
	}()
	defer func() {
		cancel()
		<-done
	}()
	const announced = "fault injection on http://"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), announced) {
		if time.Now().After(deadline) {
			t.Fatalf("no control address within 10s; stdout %q, stderr %q", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	_, rest, _ := strings.Cut(out.String(), announced)
	addr, _, _ := strings.Cut(rest, "/")
	resp, err := http.Get("http://" + addr + "/boards/ctl-0001")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /boards/ctl-0001 on the control address: %d, want 200", resp.StatusCode)
	}
}
