package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"loaxa.vn/internal/rocard"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// envTestAsNode makes this test binary the node program: the agent runs
// itself with --store-check (and --sound-check) in a new process, and in
// tests that process is the test binary.
const envTestAsNode = "LOAXA_TEST_AS_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(envTestAsNode) == "1" {
		main()
	}
	os.Setenv(envTestAsNode, "1") // for the children the tests start
	os.Exit(m.Run())
}

// loopingStore writes a node store one of whose bucket trees, bucket's,
// has a branch page that points at itself, as a garbled page can: bbolt's
// cursor descends into it for ever, its stack growing.
func loopingStore(t *testing.T, path, bucket string) {
	t.Helper()
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := []byte(bucket)
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		for i := range 500 {
			if err := b.Put(fmt.Appendf(nil, "key-%04d", i), bytes.Repeat([]byte{'v'}, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var root int64
	db.View(func(tx *bolt.Tx) error { root = int64(tx.Bucket(name).Root()); return nil })
	pageSize := int64(db.Info().PageSize)
	db.Close()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A page: id (8 bytes), flags (2), count (2), overflow (4), then a
	// branch page's elements: position (4), key size (4), child page (8).
	head := make([]byte, 16)
	if _, err := f.ReadAt(head, root*pageSize); err != nil {
		t.Fatal(err)
	}
	const branchPage = 0x01
	if flags := binary.NativeEndian.Uint16(head[8:]); flags != branchPage {
		t.Fatalf("page %d of the bucket's root has flags %#x, want a branch page", root, flags)
	}
	child := binary.NativeEndian.AppendUint64(nil, uint64(root))
	if _, err := f.WriteAt(child, root*pageSize+16+8); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestRunWithALoopingStore: a store whose page tree loops would hold the
// agent at its start for ever (bbolt's cursor never reaches a leaf); the
// check in a process of its own is stopped, the store set aside, and the
// node runs.
func TestRunWithALoopingStore(t *testing.T) {
	n := startNode(t, []string{"--audio", "none"}, nil, realSound, func(data string) {
		os.MkdirAll(data, 0o755)
		loopingStore(t, filepath.Join(data, "node.db"), "many")
	})
	n.ranOnANewStore(t, "the store was damaged", "a garbled page tree that loops")
}

func TestRunStoreCheck(t *testing.T) {
	check := func(data string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--store-check", "--data", data}, env(nil), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	data := t.TempDir()
	path := filepath.Join(data, "node.db")
	if code, out, _ := check(data); code != 0 || !strings.Contains(out, "store ok") {
		t.Errorf("no store yet: exit %d, stdout %q; want 0 (the agent starts one)", code, out)
	}
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	// Held by the agent: not damaged, cannot be checked. A technician
	// typing "node --store-check" on a board whose service runs was told
	// only "open node store …: timeout"; it says who holds it and what to
	// do.
	if code, _, errOut := check(data); code != exitFailure || !strings.Contains(errOut, "cannot check the store") ||
		!strings.Contains(errOut, "a running agent holds it: stop it first (systemctl stop loaxa-node)") {
		t.Errorf("held store: exit %d, stderr %q; want %d and why", code, errOut, exitFailure)
	}
	st.Close()
	if code, out, _ := check(data); code != 0 || !strings.Contains(out, "store ok") {
		t.Errorf("sound store: exit %d, stdout %q; want 0", code, out)
	}
	whole, _ := os.ReadFile(path)
	os.WriteFile(path, whole[:len(whole)/2], 0o600)
	if code, _, errOut := check(data); code != exitStoreDamaged || !strings.Contains(errOut, "corrupt node store") {
		t.Errorf("store cut short: exit %d, stderr %q; want %d and why", code, errOut, exitStoreDamaged)
	}
}

// TestCheckStoreInChild: what the agent learns from the check's process.
func TestCheckStoreInChild(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	path := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if damaged, err := checkStoreInChild(ctx, data, path); damaged != nil || err == nil || !strings.Contains(err.Error(), "cannot check the store") {
		t.Errorf("held store: damaged %v, err %v; want not damaged, and why it could not be checked", damaged, err)
	}
	st.Close()
	if damaged, err := checkStoreInChild(ctx, data, path); damaged != nil || err != nil {
		t.Errorf("sound store: damaged %v, err %v", damaged, err)
	}
	loopingStore(t, path, "many")
	longerLimit(t, &storeCheckTimeout) // the memory limit is to stop it, however busy the machine
	if damaged, err := checkStoreInChild(ctx, data, path); damaged == nil || err != nil || !strings.Contains(damaged.Error(), "MiB of memory") {
		t.Errorf("looping store: damaged %v, err %v; want damaged, over the memory limit", damaged, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if damaged, err := checkStoreInChild(cancelled, data, path); damaged != nil || err == nil {
		t.Errorf("stopped: damaged %v, err %v; want not damaged, the context's error", damaged, err)
	}
}

// TestRunOnAReadOnlyCard: a board whose SD card went read-only (and never
// had its content cache made) runs on a store in memory rather than fail
// at every start: online, its state saying why, for the storage-failed
// alarm, and running the desired state the card holds.
func TestRunOnAReadOnlyCard(t *testing.T) {
	var epoch string
	var unsent []protocol.Event
	n := startNode(t, []string{"--audio", "none"}, nil, realSound, func(data string) {
		path := newStoreIn(t, data)
		epoch, unsent = storeWithUnsent(t, path, 3)
		st, err := store.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetDesired(&protocol.DesiredState{Version: 7, Node: "n1"}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		rocard.ReadOnly(t, data)
	})
	n.awaitState(t, "node online, saying it cannot open its store on the card, on the card's desired state", func(st protocol.State) bool {
		return st.Status == protocol.StatusOnline && strings.Contains(st.StorageFault, "read-only file system") && st.DesiredVersion == 7
	})
	// The events the card had not sent come under the card's epoch.
	nodetest.Eventually(t, 10*time.Second, "the card's unsent events not at the controller", func() bool {
		return sameEvents(n.ctl.Log("n1").Salvaged[epoch], unsent)
	})
	n.cancel()
	if code := n.exited(t, "cancel"); code != 0 {
		t.Fatalf("exit %d: %s", code, n.stderr.String())
	}
	if log := n.stderr.String(); !strings.Contains(log, "running on one in memory") || !strings.Contains(log, "copied into memory") ||
		!strings.Contains(log, "downloads_to="+memoryDir(os.Getenv)) {
		t.Errorf("log does not say the store, copied, and the downloads are in memory: %s", log)
	}
	mem, _ := filepath.Glob(filepath.Join(memoryDir(os.Getenv), "loaxa-content-*"))
	for _, dir := range mem {
		if strings.Contains(n.stderr.String(), "downloads_to="+dir) {
			t.Errorf("the directory in memory for downloads, %s, is left after the node stopped", dir)
		}
	}
}

// TestMemoryDir: downloads in memory go to the service's runtime
// directory when systemd gives one, else to /dev/shm.
func TestMemoryDir(t *testing.T) {
	run := t.TempDir()
	if got := memoryDir(env(map[string]string{"RUNTIME_DIRECTORY": run})); got != run {
		t.Errorf("with RUNTIME_DIRECTORY=%s: %s", run, got)
	}
	want := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		want = "/dev/shm"
	}
	for _, dir := range []string{"", filepath.Join(run, "gone")} {
		if got := memoryDir(env(map[string]string{"RUNTIME_DIRECTORY": dir})); got != want {
			t.Errorf("with RUNTIME_DIRECTORY=%q: %s, want %s", dir, got, want)
		}
	}
}

// longerLimit sets a child process's time limit to five minutes for the
// rest of the test, so that a test of its memory limit sees that limit
// stop it on a machine too busy to reach it within the usual seconds.
func longerLimit(t *testing.T, limit *time.Duration) {
	t.Helper()
	old := *limit
	*limit = 5 * time.Minute
	t.Cleanup(func() { *limit = old })
}
