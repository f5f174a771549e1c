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

	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// storeSalvageTimeout bounds the process that reads back a damaged store's
// unsent events. With the check's 20 s it stays within the unit's 60 s
// TimeoutStartSec; reading a few thousand events takes milliseconds.
const storeSalvageTimeout = 15 * time.Second

// salvagedLine is one line of `node --store-salvage`.
type salvagedLine struct {
	Epoch string         `json:"epoch"`
	Event protocol.Event `json:"event"`
}

// storeSalvage is `node --store-salvage FILE`: it writes the events the
// store file had not had acknowledged (store.Salvage), one JSON line each
// as it reads it, so that what was read before a fault, a crash or the
// time limit is not lost, and returns 0, or exitStoreDamaged if it had to
// stop early. A heap past storeCheckMemory ends the process through exit,
// as --store-check's does.
func storeSalvage(path string, stdout, stderr io.Writer, exit func(int)) int {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go watchHeap(ctx, storeCheckMemory, func(used uint64) {
		fmt.Fprintf(stderr, "node: reading back the events of store %s took over %d MiB of memory (%d MiB), as a garbled page tree that loops does\n",
			path, storeCheckMemory>>20, used>>20)
		exit(exitStoreDamaged)
	})
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	n := 0
	err := store.Salvage(path, func(epoch string, e protocol.Event) error {
		n++
		if err := enc.Encode(salvagedLine{Epoch: epoch, Event: e}); err != nil {
			return err
		}
		return w.Flush()
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "node: %d events read back, then: %v\n", n, err)
		return exitStoreDamaged
	}
	return 0
}

// salvageInChild runs this program with --store-salvage on the damaged
// store file at path, with a time limit, and returns the events it read
// back, by epoch. What the child wrote before it failed, crashed or ran
// out of time is kept; err says why it stopped early.
func salvageInChild(ctx context.Context, path string) (map[string][]protocol.Event, error) {
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
	got := map[string][]protocol.Event{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var bad error
	for n := 0; sc.Scan(); n++ {
		var l salvagedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Epoch == "" {
			bad = fmt.Errorf("line %d of what it read back is not an event", n+1)
			break
		}
		es := got[l.Epoch]
		if len(es) >= store.MaxSalvaged || len(es) > 0 && l.Event.Seq != es[len(es)-1].Seq+1 {
			continue // the child keeps to these; a line that does not is not trusted
		}
		got[l.Epoch] = append(es, l.Event)
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

// salvager keeps the events read back from a damaged store: the store the
// node runs on next.
type salvager interface {
	AddSalvaged(epoch string, events []protocol.Event) error
}

// salvageInto reads back the unsent events of the damaged store set aside
// as aside and keeps them in into, which the agent sends them from under
// their old epoch and numbers. It returns how many it kept.
func salvageInto(ctx context.Context, aside string, into salvager, log *slog.Logger) int {
	got, err := salvageInChild(ctx, aside)
	kept := 0
	for epoch, es := range got {
		if aerr := into.AddSalvaged(epoch, es); aerr != nil {
			err = errors.Join(err, aerr)
			continue
		}
		kept += len(es)
	}
	if err != nil {
		log.Warn("node: not every unsent event of the damaged store could be read back; those that could not are lost", "aside", aside, "kept", kept, "err", err)
	} else {
		log.Info("node: the unsent events of the damaged store were read back; the agent sends them under their old numbers", "aside", aside, "kept", kept)
	}
	return kept
}
