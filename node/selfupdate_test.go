package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// A rollback to an agent older than probation went unreported: that agent
// does not read the probation marker, and the rollout waited for an answer
// that never came. The rollback stores its update-failed in the node's
// store, after the events not sent yet, where every release's agent sends
// its events from; a board without a store on its card gets none made.
func TestRollbackReportGoesToTheOutbox(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 9, 6, 8, 0, 0, 0, time.UTC)
	played := protocol.Event{Type: protocol.EventCompleted, At: at, Occurrence: "o1"}
	if _, err := st.Append([]protocol.Event{played}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	failed := protocol.Event{Type: protocol.EventUpdateFailed, At: at.Add(time.Minute), Version: "2.0.0",
		Reason: "rolled back from 2.0.0: it started 3 times in 3m0s without running 10m0s"}
	if err := storeInOutbox(data, failed); err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	played.Seq, failed.Seq = 1, 2
	if len(evs) != 2 || evs[0] != played || evs[1] != failed {
		t.Fatalf("the outbox holds %+v; want %+v then %+v", evs, played, failed)
	}

	none := t.TempDir()
	if err := storeInOutbox(none, failed); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("without a store: %v; want it not there", err)
	}
	if _, err := os.Stat(filepath.Join(none, "node.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a store was made for the report (%v)", err)
	}
}
