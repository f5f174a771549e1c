// Package ota tests over-the-air agent updates end to end: the real
// controller hosts releases and rolls them out; the nodes are real node
// agent processes (an update replaces and re-executes the program, so they
// cannot live in the test process), each with its own copy of the binary.
package ota

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles pkg with the version embedded, and extra arguments.
func build(t *testing.T, pkg, version, out string, extra ...string) {
	t.Helper()
	args := append([]string{"build", "-ldflags", "-s -w -X main.version=" + version, "-o", out}, extra...)
	cmd := exec.Command("go", append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// archive packs bin as build-boards.sh does.
func archive(t *testing.T, version, bin string) []byte {
	t.Helper()
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	// Fast compression: this test binary runs under the race detector,
	// which makes gzip's default level take seconds on a 10 MB program.
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	dir := "loaxa-node-" + version + "-linux-amd64/"
	tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: dir + "node", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(raw))})
	tw.Write(raw)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// buildWith builds a node agent release with testdata/file added to the
// node package (go build -overlay): crashlater.go, a release that passes
// its trial and crashes a second after each start as the installed agent;
// deaflater.go, one that passes its trial and, installed, never connects
// to the broker it reaches.
func buildWith(t *testing.T, file, version, out string) {
	t.Helper()
	nodeDir, err := filepath.Abs(filepath.Join("..", "..", "node"))
	if err != nil {
		t.Fatal(err)
	}
	add, err := filepath.Abs(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(t.TempDir(), "overlay.json")
	raw, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(nodeDir, "zz_"+file): add}})
	if err := os.WriteFile(overlay, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	build(t, "loaxa.vn/node", version, out, "-overlay", overlay)
}

// probation is the boards' --update-probation (LOAXA_UPDATE_PROBATION):
// an installed release is kept after running this long connected.
const probation = 3 * time.Second

// board is a node agent process, restarted when it exits as systemd
// restarts the service (Restart=always).
type board struct {
	id, exe string
	log     *syncbuf.Buffer
	done    chan struct{} // closed once the board is stopped
	starts  atomic.Int32  // processes started
}

func startBoard(t *testing.T, id string, creds *protocol.Credentials, v1 string) *board {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "loaxa-node")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	raw, err := os.ReadFile(v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(dir, "node.json")
	if err := protocol.WriteCredentials(credFile, creds); err != nil {
		t.Fatal(err)
	}
	b := &board{id: id, exe: exe, log: &syncbuf.Buffer{}, done: make(chan struct{})}
	var (
		mu       sync.Mutex
		cmd      *exec.Cmd // the agent process
		stopping = make(chan struct{})
	)
	start := func() error {
		cmd = exec.Command(exe, "--credentials", credFile, "--data", filepath.Join(dir, "data"), "--audio", "none", "--update-trial", "20s")
		cmd.Env = append(os.Environ(), "LOAXA_UPDATE_PROBATION="+probation.String())
		cmd.Stdout, cmd.Stderr = b.log, b.log
		b.starts.Add(1)
		return cmd.Start()
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		mu.Lock()
		defer mu.Unlock()
		for {
			c := cmd
			mu.Unlock()
			err := c.Wait()
			select {
			case <-stopping:
				mu.Lock()
				return
			case <-time.After(100 * time.Millisecond): // RestartSec
			}
			mu.Lock()
			fmt.Fprintf(b.log, "board: the agent ended (%v); starting it again\n", err)
			if err := start(); err != nil {
				fmt.Fprintf(b.log, "board: start the agent: %v\n", err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		close(stopping)
		p := cmd.Process
		mu.Unlock()
		p.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			p.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", id, b.log.String())
		}
	})
	return b
}

func TestOverTheAirUpdates(t *testing.T) {
	dir := t.TempDir()
	v1, v2, bad, crashing, deaf := filepath.Join(dir, "v1"), filepath.Join(dir, "v2"), filepath.Join(dir, "bad"), filepath.Join(dir, "crashing"), filepath.Join(dir, "deaf")
	build(t, "loaxa.vn/node", "1.0.0", v1)
	build(t, "loaxa.vn/node", "2.0.0", v2)
	build(t, "loaxa.vn/e2e/ota/badagent", "3.0.0", bad)
	buildWith(t, "crashlater.go", "5.0.0", crashing)
	buildWith(t, "deaflater.go", "6.0.0", deaf)

	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) { cfg.RolloutInterval = 200 * time.Millisecond }})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	ids := []string{"tt-01", "tt-02", "tt-03"}
	boards := map[string]*board{}
	for _, id := range ids {
		boards[id] = startBoard(t, id, c.CreateNode(id, "12346"), v1)
	}
	runs := func(t testing.TB, id, version string) bool {
		n := c.For(t).Node(id)
		return n.Status.State == loaxa.NodeOnline && n.Status.Agent == version
	}
	for _, id := range ids {
		rig.Eventually(t, 20*time.Second, id+" online with 1.0.0", func() bool { return runs(t, id, "1.0.0") })
	}

	// The helpers below take the subtest's t, so that one failing stops
	// that subtest only.
	upload := func(t *testing.T, version string, body []byte) *loaxa.Release {
		t.Helper()
		req, _ := http.NewRequest("POST", c.URL+"/api/v1/releases?version="+version+"&arch=amd64", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/gzip")
		var rel loaxa.Release
		if status, raw := c.For(t).Send(req, &rel); status != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", version, status, raw)
		}
		return &rel
	}
	rollout := func(t *testing.T, version string, canaries int) *loaxa.Rollout {
		t.Helper()
		var ro loaxa.Rollout
		c.For(t).MustDo("POST", "/api/v1/rollouts", map[string]any{"version": version, "targets": map[string][]string{"areas": {"12346"}}, "canaries": canaries}, &ro)
		if len(ro.Nodes) != len(ids) {
			t.Fatalf("rollout targets %d nodes, want %d", len(ro.Nodes), len(ids))
		}
		return &ro
	}
	await := func(t *testing.T, id, state string) *loaxa.Rollout {
		t.Helper()
		var ro loaxa.Rollout
		rig.Eventually(t, 90*time.Second, "rollout "+id+" "+state, func() bool {
			c.For(t).MustDo("GET", "/api/v1/rollouts/"+id, nil, &ro)
			return ro.State == state || !ro.Active()
		})
		if ro.State != state {
			t.Fatalf("rollout %s ended %s (%s), want %s: %s", id, ro.State, ro.Reason, state, rig.Describe(ro.Nodes))
		}
		return &ro
	}
	binary := func(t *testing.T, path string) []byte {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	v1Bytes, v2Bytes := binary(t, v1), binary(t, v2)

	t.Run("a good release reaches every targeted node", func(t *testing.T) {
		upload(t, "2.0.0", archive(t, "2.0.0", v2))
		ro := await(t, rollout(t, "2.0.0", 1).ID, loaxa.RolloutDone)
		for _, n := range ro.Nodes {
			if n.State != loaxa.RolloutNodeUpdated {
				t.Errorf("%s: %s %s", n.Node, n.State, n.Detail)
			}
		}
		for _, id := range ids {
			rig.Eventually(t, 20*time.Second, id+" online with 2.0.0", func() bool { return runs(t, id, "2.0.0") })
			rig.Eventually(t, 20*time.Second, id+" reports updated", func() bool {
				for _, ev := range c.For(t).Events(url.Values{"node": {id}}) {
					if ev.Type == protocol.EventUpdated && ev.Version == "2.0.0" && ev.Reason == "from 1.0.0" {
						return true
					}
				}
				return false
			})
			rig.Eventually(t, 20*time.Second, id+" kept 2.0.0 (probation passed)", func() bool {
				_, err := os.Stat(boards[id].exe + ".probation")
				return errors.Is(err, os.ErrNotExist)
			})
			// The updated event comes from the installed binary.
			if !bytes.Equal(binary(t, boards[id].exe), v2Bytes) || !bytes.Equal(binary(t, boards[id].exe+".previous"), v1Bytes) {
				t.Errorf("%s: the installed binary is not 2.0.0, or 1.0.0 was not kept beside it", id)
			}
		}
	})

	// canaryFails rolls version out and checks that the canary refused
	// it with a reason saying want, that it still runs 2.0.0, and that
	// nobody else was asked. The canary's agent was started again by its
	// service manager only if restarted.
	canaryFails := func(t *testing.T, version, want string, restarted bool) {
		starts := map[string]int32{}
		for _, id := range ids {
			starts[id] = boards[id].starts.Load()
		}
		ro := await(t, rollout(t, version, 1).ID, loaxa.RolloutHalted)
		if !strings.Contains(ro.Reason, want) {
			t.Errorf("halted because %q; want %q in it", ro.Reason, want)
		}
		for _, n := range ro.Nodes {
			switch {
			case n.Canary && n.State != loaxa.RolloutNodeFailed:
				t.Errorf("canary %s: %s", n.Node, n.State)
			case !n.Canary && n.State != loaxa.RolloutNodePending:
				t.Errorf("%s was asked after the canary failed: %s", n.Node, n.State)
			}
		}
		for _, id := range ids {
			rig.Eventually(t, 20*time.Second, id+" still online with 2.0.0", func() bool { return runs(t, id, "2.0.0") })
			if !bytes.Equal(binary(t, boards[id].exe), v2Bytes) {
				t.Errorf("%s: the binary changed", id)
			}
			canary := slices.ContainsFunc(ro.Nodes, func(n loaxa.RolloutNode) bool { return n.Node == id && n.Canary })
			if n := boards[id].starts.Load() - starts[id]; (n > 0) != (restarted && canary) {
				t.Errorf("%s: the agent was started again %d times", id, n)
			}
		}
	}

	// A release that passes its trial and then crashes (at its first
	// play, at an alert) left the board crash-looping under systemd for
	// ever, and the canary, reported updated at once, let the rollout
	// take every board down with it. On probation it starts at most 3
	// times; the next start puts 2.0.0 back, which reports why, and the
	// rollout halts on the canary.
	t.Run("a release that crashes after its trial is rolled back on the canary and the rollout halts", func(t *testing.T) {
		upload(t, "5.0.0", archive(t, "5.0.0", crashing))
		canaryFails(t, "5.0.0", "rolled back from 5.0.0: it started 3 times in", true)
		for _, id := range ids {
			if _, err := os.Stat(boards[id].exe + ".probation"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the probation marker is still there (%v)", id, err)
			}
		}
	})

	// A release that passed its trial but, installed, never connected to
	// the broker it reached was kept until its next start: deaf to alerts,
	// the canary said nothing and the rollout halted only after 40
	// minutes. Once it has run its probation without once connecting while
	// reaching the broker, it puts 2.0.0 back by itself (no restart), which
	// reports why, and the rollout halts on the canary.
	t.Run("a release that never connects once installed is rolled back on the canary and the rollout halts", func(t *testing.T) {
		upload(t, "6.0.0", archive(t, "6.0.0", deaf))
		canaryFails(t, "6.0.0", "rolled back from 6.0.0: it ran 3s without once connecting to the broker", false)
		for _, id := range ids {
			if _, err := os.Stat(boards[id].exe + ".probation"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the probation marker is still there (%v)", id, err)
			}
		}
	})

	t.Run("a build that exits at start is rolled back on the canary and the rollout halts", func(t *testing.T) {
		upload(t, "3.0.0", archive(t, "3.0.0", bad))
		canaryFails(t, "3.0.0", "exited at start", false)
	})

	t.Run("a tampered archive is refused", func(t *testing.T) {
		rel := upload(t, "4.0.0", archive(t, "4.0.0", v2))
		// Someone changes the archive on the server after it was uploaded
		// (its SHA-256 recorded then, and signed into the command). The
		// controller checks the bytes before a rollout starts and refuses
		// it, naming both hashes; no board is asked. (A board refuses an
		// archive whose bytes differ from the signed command's as well,
		// whoever serves it: node/update TestFetchChecksAndInstalls, "tampered".)
		path := filepath.Join(c.App.Config.DataDir, "releases", rel.Archives[0].SHA256+".tar.gz")
		raw := binary(t, path)
		raw[len(raw)/2] ^= 0xff
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		status, body := c.For(t).Do("POST", "/api/v1/rollouts", map[string]any{"version": "4.0.0", "targets": map[string][]string{"areas": {"12346"}}, "canaries": 1}, nil)
		if status != http.StatusConflict || !strings.Contains(string(body), "damaged") || !strings.Contains(string(body), rel.Archives[0].SHA256) {
			t.Errorf("rollout of a tampered archive: %d %s; want 409 saying it is damaged, naming its uploaded SHA-256", status, body)
		}
		for _, id := range ids {
			if !runs(t, id, "2.0.0") || !bytes.Equal(binary(t, boards[id].exe), v2Bytes) {
				t.Errorf("%s changed its agent after the refused rollout", id)
			}
		}
	})
}
