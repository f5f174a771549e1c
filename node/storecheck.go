package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/store"
)

// nodeStore is the store the agent runs on, as openStore found it.
type nodeStore struct {
	agent.Store
	// damaged is 1 when the store on the card was damaged and a new one
	// started (agent.Config.DamagedAtStart); fault why the agent runs on
	// a store in memory (agent.Config.StoreFault).
	damaged int
	fault   error
	// contentInMemory is the directory in memory the content cache
	// downloads to while the card takes no writes
	// (agent.Config.ContentInMemory), "" if none could be made.
	contentInMemory string
	close           func() error
}

// memoryCacheMax bounds the content downloaded into memory while the card
// takes no writes: a day's bulletins and an alert's message at
// 64 kbit/s, on boards with 512 MiB of memory.
const memoryCacheMax = 64 << 20

// openStore opens the node's store in data: checked in a process of its
// own first (a garbled page tree can keep bbolt going round for ever, and
// that process has a time limit), set aside and started anew if damaged.
// A store that cannot be opened on the board's storage at all — the card
// gone read-only (the kernel's answer to a failing SD card), full, or
// failing with I/O errors — is replaced by one in memory, so that the
// cluster stays connected, plays what it has and says what is wrong,
// rather than fail at every start until someone visits the pole. Only a
// store another agent holds (ErrTimeout) is an error.
func openStore(ctx context.Context, data string, getenv func(string) string, log *slog.Logger) (*nodeStore, error) {
	path := filepath.Join(data, "node.db")
	var st *store.Bolt
	var aside string // where a damaged store was set aside
	var err error
	if err = os.MkdirAll(data, 0o755); err != nil {
		err = fmt.Errorf("data directory: %w", err)
	} else if why, cerr := checkStoreInChild(ctx, data, path); why != nil {
		st, aside, err = store.StartAnew(path, time.Now(), why)
	} else {
		if cerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			log.Warn("node: the store could not be checked in a process of its own; the agent checks it itself", "err", cerr)
		}
		st, aside, err = store.OpenBoltOrSetAside(path, time.Now())
	}
	out := &nodeStore{close: func() error { return nil }}
	var damaged *store.DamagedError
	switch {
	case errors.As(err, &damaged):
		// The board runs on a new store rather than fail at every start;
		// the storage-damaged alarm says the card is failing.
		log.Error("node: the store was damaged (an SD card that lost writes in a power cut?); set aside, running on a new one: the desired state comes again from the broker, the events not yet sent are read back from it",
			"err", damaged.Err, "aside", damaged.Aside)
		out.damaged = 1
		salvageInto(ctx, damaged.Aside, st, log)
	case store.Held(err):
		return nil, err
	case err != nil:
		empty := store.NewMemory()
		out.Store, out.fault = empty, err
		if aside != "" {
			out.damaged = 1 // set aside, but no new one could be made on the card
			salvageInto(ctx, aside, empty, log)
		} else if mem, merr := store.MemoryFrom(path, time.Time{}); merr == nil { // every replay entry: the clock is not checked yet
			// What the card holds, read only: the schedule without a link,
			// held alerts, what was played, the replay guard, the events
			// not sent yet.
			out.Store = mem
			log.Warn("node: the store on the card was copied into memory: its desired state, held alerts, played marks and replay guard, and the events it had not sent, which go under the card's outbox numbers")
		} else {
			if !errors.Is(merr, fs.ErrNotExist) {
				log.Error("node: the store on the card cannot be read either; the one in memory starts empty", "err", merr)
			}
			// A damaged store set aside at an earlier start, whose new
			// store the card could not make then either (it left none, or
			// an empty file): what it holds still comes into memory, at
			// every start until the card is changed.
			if old, at := store.SetAside(path); old != "" {
				if time.Since(at) < 24*time.Hour {
					out.damaged = 1 // a file set aside long ago is not this card's news
				}
				salvageInto(ctx, old, empty, log)
			}
		}
		// What it downloads goes to memory too: the card takes no writes.
		if dir, merr := os.MkdirTemp(memoryDir(getenv), "loaxa-content-"); merr != nil {
			log.Error("node: no directory in memory for downloads either; the cluster plays only what the card holds", "err", merr)
		} else {
			out.contentInMemory = dir
			out.close = func() error { return os.RemoveAll(dir) }
		}
		log.Error("node: the store cannot be opened on the board's storage; running on one in memory, which a restart forgets: the cluster plays what the card holds and what it downloads into memory, and the controller is told (storage-failed); change the SD card",
			"err", err, "downloads_to", out.contentInMemory, "download_limit_mib", memoryCacheMax>>20)
		return out, nil
	}
	out.Store, out.close = st, st.Close
	return out, nil
}

// memoryDir is where openStore makes the directory in memory: the
// service's runtime directory (RuntimeDirectory=, /run/loaxa-node, which
// systemd names in $RUNTIME_DIRECTORY), else /dev/shm, a tmpfs on every
// Linux board, else the system's temporary directory.
func memoryDir(getenv func(string) string) string {
	if dir, _, _ := strings.Cut(getenv("RUNTIME_DIRECTORY"), ":"); dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// exitStoreDamaged is --store-check's status for a damaged store
// (sysexits' EX_DATAERR).
const exitStoreDamaged = 65

// storeCheckTimeout bounds the store check's process. A sound store of a
// few megabytes is read in well under a second even from a slow SD card
// (16 MiB in 20–30 ms here, BENCHMARKS.md); a garbled page tree can keep
// bbolt's cursors going round for ever. Well within the unit's
// TimeoutStartSec (60 s, scripts/systemd/loaxa-node.service), or systemd
// would kill the agent before it is ready, at every start. A variable only
// so that tests of the memory limit do not depend on how busy the machine
// is.
var storeCheckTimeout = 20 * time.Second

// storeCheckMemory bounds the heap of the store check's process. The check
// reads the file through its memory map and keeps next to nothing; a
// branch page that points back into its own tree grows a cursor's stack
// without end, and is stopped here within milliseconds, long before a
// small board runs out of memory.
const storeCheckMemory = 64 << 20

// storeCheck is `node --store-check`: it checks the store file at path,
// read only, and returns 0 if it is sound, exitStoreDamaged if it is
// damaged, exitFailure if it cannot be read. A check whose heap passes
// storeCheckMemory writes why and ends the process through exit with
// exitStoreDamaged: it is meant to run in a process of its own.
func storeCheck(path string, stdout, stderr io.Writer, exit func(int)) int {
	defer watchStoreHeap("store "+path+" is damaged: reading it", stderr, exit)()
	err := store.Check(path)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "store ok: %s\n", path)
		return 0
	case store.Damaged(path, err):
		fmt.Fprintf(stderr, "node: %v\n", err)
		return exitStoreDamaged
	case store.Held(err):
		fmt.Fprintf(stderr, "node: cannot check the store %s: a running agent holds it: stop it first (systemctl stop loaxa-node), then check again (%v)\n", path, err)
		return exitFailure
	default:
		fmt.Fprintf(stderr, "node: cannot check the store: %v\n", err)
		return exitFailure
	}
}

// watchStoreHeap watches this process's heap while it reads a store, until
// the function it returns is called: past storeCheckMemory, it writes
// that doing took too much and ends the process through exit with
// exitStoreDamaged.
func watchStoreHeap(doing string, stderr io.Writer, exit func(int)) (stop func()) {
	ctx, stop := context.WithCancel(context.Background())
	go watchHeap(ctx, storeCheckMemory, func(used uint64) {
		fmt.Fprintf(stderr, "node: %s took over %d MiB of memory (%d MiB), as a garbled page tree that loops does\n",
			doing, storeCheckMemory>>20, used>>20)
		exit(exitStoreDamaged)
	})
	return stop
}

// watchHeap calls over, once, if the heap's objects pass limit bytes, and
// returns when ctx ends.
func watchHeap(ctx context.Context, limit uint64, over func(used uint64)) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if used := sample[0].Value.Uint64(); used > limit {
			over(used)
			return
		}
	}
}

// checkStoreInChild runs this program with --store-check on the store at
// path, with a time limit, and returns why the store is damaged: the child
// said so, crashed reading it, or did not finish in time. It returns nil
// when the store is sound, and also when the check could not be run or
// could not read the file (held by another process, not readable): the
// agent then opens the store in its own process, which checks it again and
// says what is wrong.
func checkStoreInChild(ctx context.Context, data, path string) (damaged error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot tell where this program is: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "--store-check", "--data", data)
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if runErr == nil {
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	said := firstLine(out.String())
	var exit *exec.ExitError
	if !errors.As(runErr, &exit) {
		return nil, fmt.Errorf("%s --store-check: %w", exe, runErr)
	}
	if cctx.Err() != nil {
		return fmt.Errorf("store %s is damaged: checking it did not finish within %v, as a garbled page tree that loops does", path, storeCheckTimeout), nil
	}
	ws, _ := exit.Sys().(syscall.WaitStatus)
	switch {
	case exit.ExitCode() == exitStoreDamaged:
		return errors.New(strings.TrimPrefix(said, "node: ")), nil
	case ws.Signaled() && ws.Signal() != syscall.SIGTERM && ws.Signal() != syscall.SIGINT && ws.Signal() != syscall.SIGHUP:
		// SIGBUS or SIGSEGV reading pages past the file's end, or the
		// kernel's out-of-memory killer.
		return fmt.Errorf("store %s is damaged: checking it was killed by %v", path, ws.Signal()), nil
	case strings.Contains(out.String(), "\ngoroutine "):
		// The Go runtime's own crash (a fault on a goroutine of bbolt's,
		// where it cannot be recovered): the file made it.
		return fmt.Errorf("store %s is damaged: checking it crashed: %s", path, said), nil
	}
	return nil, fmt.Errorf("%s --store-check: %w: %s", exe, runErr, said)
}

// firstLine is s's first non-empty line, trimmed.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}
