package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/node/store"
)

// exitStoreDamaged is --store-check's status for a damaged store
// (sysexits' EX_DATAERR).
const exitStoreDamaged = 65

// storeCheckTimeout bounds the store check's process. A sound store of a
// few megabytes is read in well under a second even from a slow SD card;
// a garbled page tree can keep bbolt's cursors going round for ever.
const storeCheckTimeout = time.Minute

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
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go watchHeap(ctx, storeCheckMemory, func(used uint64) {
		fmt.Fprintf(stderr, "node: store %s is damaged: reading it took over %d MiB of memory (%d MiB), as a garbled page tree that loops does\n",
			path, storeCheckMemory>>20, used>>20)
		exit(exitStoreDamaged)
	})
	err := store.Check(path)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "store ok: %s\n", path)
		return 0
	case store.Damaged(path, err):
		fmt.Fprintf(stderr, "node: %v\n", err)
		return exitStoreDamaged
	default:
		fmt.Fprintf(stderr, "node: cannot check the store: %v\n", err)
		return exitFailure
	}
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
