package mosquittotest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// standInEnv, when set, makes the test binary a stand-in for mosquitto
// (standIn) that acts out the order of mosquitto's start (main in
// src/mosquitto.c): it accepts connections first, with the default
// handling of signals (SIGTERM and SIGHUP end it); then it installs its
// handlers and logs "running"; and only then sets the flag its loop runs
// on, so a SIGTERM in between is lost. The stand-in stretches both
// windows to standInWindow so that a test can hit them.
const standInEnv = "LOAXA_MOSQUITTOTEST_STAND_IN"

const standInWindow = 300 * time.Millisecond

// standIn runs the stand-in with mosquitto's arguments (-c conf) and
// returns its exit code. Next to the configuration it creates "handled"
// once it handles signals.
func standIn(args []string) int {
	if len(args) != 2 || args[0] != "-c" {
		fmt.Fprintf(os.Stderr, "stand-in: want -c conf, got %q\n", args)
		return 3
	}
	conf, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 3
	}
	var port string
	sc := bufio.NewScanner(strings.NewReader(string(conf)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "listener" {
			port = f[1]
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 3
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	time.Sleep(standInWindow) // accepting, signals not handled yet

	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGHUP)
	if err := os.WriteFile(filepath.Join(filepath.Dir(args[1]), "handled"), nil, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 3
	}
	fmt.Fprintln(os.Stderr, "1: mosquitto version stand-in running")
	lost := time.After(standInWindow) // handled, but the loop's flag not set
	for {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "2: %v lost before the loop ran\n", s)
			continue
		case <-lost:
		}
		break
	}
	for s := range sig {
		if s == syscall.SIGTERM {
			fmt.Fprintln(os.Stderr, "3: mosquitto version stand-in terminating")
			return 0
		}
	}
	return 0
}

// useStandIn makes Start run the stand-in for the rest of the test.
func useStandIn(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(standInEnv, "1")
	old := binary
	binary = exe
	t.Cleanup(func() { binary = old })
}

func TestStartWaitsUntilSignalsAreHandled(t *testing.T) {
	useStandIn(t)
	b := Start(t, Options{AllowAnonymous: true})
	// Accepting connections is not enough: a SIGHUP (SetAuth) before the
	// handlers are in place would end the broker.
	if _, err := os.Stat(filepath.Join(b.dir, "handled")); err != nil {
		t.Fatalf("Start returned before the broker handled signals: %v\n%s", err, b.Log())
	}
}

func TestStopRepeatsALostSIGTERM(t *testing.T) {
	useStandIn(t)
	b := Start(t, Options{AllowAnonymous: true})
	if err := b.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, b.Log())
	}
	log := b.Log()
	// Stopped in the window: the first SIGTERM was lost, a later one ended it.
	if !strings.Contains(log, "terminated lost before the loop ran") || !strings.Contains(log, "terminating") {
		t.Fatalf("the stand-in did not lose a SIGTERM and then terminate:\n%s", log)
	}
}
