package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"loaxa.vn/internal/plural"
	"loaxa.vn/node/store"
)

// storeSalvageTimeout bounds the process that reads back a damaged store.
// With the check's 20 s it stays within the unit's 60 s TimeoutStartSec;
// 20,000 unsent plays take under half a second here (BENCHMARKS.md
// "Reading back a damaged store"). A variable only so that tests of the
// memory limit do not depend on how busy the machine is.
var storeSalvageTimeout = 15 * time.Second

// storeSalvage is `node --store-salvage FILE`: it writes what a new store
// can use of the store file (store.Salvage: the events it had not had
// acknowledged, its learnt keys, its clock floor, its unexpired replay
// guard, the marks of what it finished), one JSON line each (store.Found) as it reads it, so that
// what was read before a fault, a crash or the time limit is not lost,
// and returns 0, or exitStoreDamaged if it had to stop early. A heap
// past storeCheckMemory ends the process through exit, as --store-check's
// does.
func storeSalvage(path string, stdout, stderr io.Writer, exit func(int)) int {
	defer watchStoreHeap("reading back the store "+path, stderr, exit)()
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	n := 0
	// The zero time keeps every replay entry: the board's clock is not
	// checked yet at start (one running fast would drop entries still
	// valid); the agent forgets them on its corrected clock.
	err := store.Salvage(path, time.Time{}, func(f store.Found) error {
		n++
		if err := enc.Encode(f); err != nil {
			return err
		}
		return w.Flush()
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "node: %s read back, then: %v\n", plural.Count(n, "thing", "things"), err)
		return exitStoreDamaged
	}
	return 0
}

// salvageInChild runs this program with --store-salvage on the damaged
// store file at path, with a time limit, and returns what it read back.
// What the child wrote before it failed, crashed or ran out of time is
// kept; err says why it stopped early.
func salvageInChild(ctx context.Context, path string) (*store.Kept, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot tell where this program is: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, storeSalvageTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "--store-salvage", path)
	cmd.Env = childEnv()
	var said strings.Builder
	cmd.Stderr = &said
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s --store-salvage: %w", exe, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s --store-salvage: %w", exe, err)
	}
	got := &store.Kept{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var bad error
	for n := 1; sc.Scan(); n++ {
		var f store.Found
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			bad = fmt.Errorf("line %d of what it read back: %w", n, err)
			break
		}
		if err := got.Add(f); err != nil && bad == nil {
			bad = fmt.Errorf("line %d of what it read back, not taken: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil && bad == nil {
		bad = fmt.Errorf("reading what it read back: %w", err) // a line over 1 MiB: not an event the agent wrote
	}
	io.Copy(io.Discard, out) // let the child finish writing whatever it still has
	runErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case cctx.Err() != nil:
		return got, fmt.Errorf("reading back did not finish within %v", storeSalvageTimeout)
	case bad != nil:
		return got, bad
	case runErr != nil:
		return got, fmt.Errorf("%w: %s", runErr, firstLine(said.String()))
	}
	return got, nil
}

// salvageInto reads back what the new store into can use of the damaged
// store set aside as aside (salvageInChild) and puts it there: the unsent
// events, which the agent sends under their old epoch and numbers, the
// learnt keys, the clock floor (the newer of it and the new store's), the
// unexpired replay guard, the marks of what the node finished.
func salvageInto(ctx context.Context, aside string, into store.Keeper, log *slog.Logger) {
	got, err := salvageInChild(ctx, aside)
	if got != nil {
		err = errors.Join(err, into.Keep(got, time.Time{})) // every replay entry, as above
	}
	var events, marks, replay, keys int
	var floor time.Time
	if got != nil {
		events, marks, replay = got.Len()
		keys, floor = len(got.Keys), got.Floor
	}
	if err != nil {
		log.Warn("node: not all of the damaged store could be read back; what could not is lost", "aside", aside,
			"events", events, "keys", keys, "clock_floor", floor, "replay_entries", replay, "finished_marks", marks, "err", err)
	} else {
		log.Info("node: the damaged store's unsent events, learnt keys, clock floor, replay guard and the marks of what it finished were read back; the agent sends the events under their old numbers",
			"aside", aside, "events", events, "keys", keys, "clock_floor", floor, "replay_entries", replay, "finished_marks", marks)
	}
}
