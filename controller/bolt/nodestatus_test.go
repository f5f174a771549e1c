package bolt_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/syncbuf"
)

// openStore opens the store at path with the given status interval
// (negative: flushes only when the test asks, on Snapshot and on Close).
func openStore(tb testing.TB, path string, interval time.Duration, log io.Writer) *bolt.DB {
	tb.Helper()
	db := bolt.NewDB(path)
	db.Now = func() time.Time { return t0 }
	db.Logger = slog.New(slog.NewTextHandler(log, nil))
	db.StatusInterval = interval
	must(tb, db.Open())
	return db
}

// flushedOnRequest opens a store with area hp in a temporary directory,
// its statuses written only on request (FlushStatus, Snapshot, Close);
// the test may close it (cleanup closes it again, which is harmless, and
// checks the file).
func flushedOnRequest(tb testing.TB) (*bolt.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "loaxa.db")
	db := openStore(tb, path, -1, io.Discard)
	tb.Cleanup(func() {
		must(tb, db.Close())
		if err := bolt.CheckFile(path); err != nil {
			tb.Fatalf("store is inconsistent after the test:\n%v", err)
		}
	})
	mustArea(tb, db, "hp", "")
	return db, path
}

// statusStore is a store with area hp and nodes n1 and n2, flushed only
// on request.
func statusStore(t *testing.T) (*bolt.DB, string) {
	t.Helper()
	db, path := flushedOnRequest(t)
	mustNode(t, db, "n1", "hp")
	mustNode(t, db, "n2", "hp")
	return db, path
}

func online(outbox int) func(*loaxa.NodeStatus) {
	return func(st *loaxa.NodeStatus) {
		st.State = loaxa.NodeOnline
		st.LastSeen = t0
		st.Outbox = outbox
	}
}

// TestNodeStatus_VisibleAtOnceWrittenInBatches: a status change is seen
// by every reader at once, reaches the file on a flush (not before), and
// survives Close and a reopen.
func TestNodeStatus_VisibleAtOnceWrittenInBatches(t *testing.T) {
	db, path := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	secret := loaxa.NewSecret()
	_, err := s.SetNodeSecret(ctx, "n1", loaxa.NodeSecret{Hash: loaxa.HashSecret(secret), BrokerHash: loaxa.HashBrokerSecret(secret)})
	must(t, err)

	must(t, s.UpdateNodeStatus(ctx, "n1", online(3)))
	n, err := s.FindNodeByID(ctx, "n1")
	must(t, err)
	if n.Status.State != loaxa.NodeOnline || n.Status.Outbox != 3 {
		t.Errorf("FindNodeByID: status %+v", n.Status)
	}
	found, err := s.FindNodes(ctx, loaxa.NodeFilter{State: loaxa.NodeOnline})
	must(t, err)
	if len(found) != 1 || found[0].ID != "n1" || found[0].Status.Outbox != 3 {
		t.Errorf("FindNodes(online): %+v", found)
	}
	found, err = s.FindNodes(ctx, loaxa.NodeFilter{Within: "hp", State: loaxa.NodeNever})
	must(t, err)
	if len(found) != 1 || found[0].ID != "n2" {
		t.Errorf("FindNodes(hp, never): %+v", found)
	}
	if n, err := s.AuthenticateNode(ctx, "n1", secret); err != nil || n.Status.Outbox != 3 {
		t.Errorf("AuthenticateNode: %v, %+v", err, n)
	}
	if n, err := s.UpdateNodeSettings(ctx, "n1", func(*loaxa.NodeSettings) error { return nil }); err != nil || n.Status.Outbox != 3 {
		t.Errorf("UpdateNodeSettings: %v, %+v", err, n)
	}

	// Not written yet: that is the point.
	st, err := bolt.StoredStatus(db, "n1")
	must(t, err)
	if st.State != loaxa.NodeNever {
		t.Errorf("status written before a flush: %+v", st)
	}
	if got := db.UnflushedStatuses(); got != 1 {
		t.Errorf("%d unflushed statuses, want 1", got)
	}
	must(t, bolt.FlushStatus(db))
	if st, err := bolt.StoredStatus(db, "n1"); err != nil || st.State != loaxa.NodeOnline || st.Outbox != 3 {
		t.Errorf("after a flush the file has %+v, %v", st, err)
	}
	if got := db.UnflushedStatuses(); got != 0 {
		t.Errorf("%d unflushed statuses after a flush", got)
	}

	// A change after the last flush is written by Close.
	must(t, s.UpdateNodeStatus(ctx, "n2", online(7)))
	must(t, db.Close())
	// Closed: an error, not a silent loss.
	if err := s.UpdateNodeStatus(ctx, "n2", online(8)); err == nil {
		t.Error("status change accepted by a closed store")
	}
	db2 := openStore(t, path, -1, io.Discard)
	defer db2.Close()
	s2 := bolt.NewNodeService(db2)
	for id, outbox := range map[string]int{"n1": 3, "n2": 7} {
		n, err := s2.FindNodeByID(ctx, id)
		if err != nil || n.Status.State != loaxa.NodeOnline || n.Status.Outbox != outbox {
			t.Errorf("after reopening, %s: %v, %+v", id, err, n)
		}
	}
}

// TestNodeStatus_CloseWaitsForAChange: Close does not write its last
// flush while a status change is under way, and so does not lose it.
func TestNodeStatus_CloseWaitsForAChange(t *testing.T) {
	db, path := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	entered, release := make(chan struct{}), make(chan struct{})
	changed := make(chan error, 1)
	go func() {
		changed <- s.UpdateNodeStatus(ctx, "n1", func(st *loaxa.NodeStatus) {
			close(entered)
			<-release
			online(9)(st)
		})
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Close must wait for the change; give it the chance not to.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a status change was under way", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	must(t, <-changed)
	must(t, <-closed)
	db2 := openStore(t, path, -1, io.Discard)
	defer db2.Close()
	if st, err := bolt.StoredStatus(db2, "n1"); err != nil || st.Outbox != 9 {
		t.Errorf("after reopening: %+v, %v; want the change made during Close", st, err)
	}
}

// TestNodeStatus_ReadersGetCopies: what a reader gets does not change the
// status in memory, and fn's changes are not seen through an old copy.
func TestNodeStatus_ReadersGetCopies(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", func(st *loaxa.NodeStatus) { st.Keys = []string{"k1"} }))
	n, err := s.FindNodeByID(ctx, "n1")
	must(t, err)
	n.Status.Keys[0] = "changed"
	must(t, s.UpdateNodeStatus(ctx, "n1", func(st *loaxa.NodeStatus) { st.Keys[0] += "!" }))
	if n.Status.Keys[0] != "changed" {
		t.Errorf("a reader's copy changed under it: %q", n.Status.Keys)
	}
	if n, _ := s.FindNodeByID(ctx, "n1"); n.Status.Keys[0] != "k1!" {
		t.Errorf("status in memory %q, want k1!", n.Status.Keys)
	}
}

// TestNodeStatus_WritersLoseNothing: settings, secret and revocation
// writes racing with status changes and flushes lose no status change and
// no write of their own, in memory and in the file after a reopen.
func TestNodeStatus_WritersLoseNothing(t *testing.T) {
	db, path := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	const writes = 30
	// Status changes go on until every other writer is done, so they
	// overlap all of them; each node counts its changes.
	stop := make(chan struct{})
	changes := map[string]uint64{}
	var mu sync.Mutex
	var changers, others sync.WaitGroup
	for _, id := range []string{"n1", "n2"} {
		changers.Go(func() {
			var n uint64
			defer func() { mu.Lock(); changes[id] = n; mu.Unlock() }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) { st.Rejected++ }); err != nil {
					t.Error(err)
					return
				}
				n++
			}
		})
	}
	others.Go(func() {
		for i := range writes {
			vol := i
			if _, err := s.UpdateNodeSettings(ctx, "n1", func(st *loaxa.NodeSettings) error { st.Volume = &vol; return nil }); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// Revocations and new secrets race: whichever commits last must be
	// what NodeCredentials answers.
	others.Go(func() {
		for range writes {
			if _, err := s.RevokeNode(ctx, "n2"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	others.Go(func() {
		for range writes {
			_, sec := loaxa.NewNodeSecret()
			if _, err := s.SetNodeSecret(ctx, "n2", sec); err != nil {
				t.Error(err)
				return
			}
		}
	})
	others.Go(func() {
		for range writes {
			if err := bolt.FlushStatus(db); err != nil {
				t.Error(err)
				return
			}
		}
	})
	others.Wait()
	close(stop)
	changers.Wait()

	check := func(s *bolt.NodeService, when string) {
		t.Helper()
		for _, id := range []string{"n1", "n2"} {
			n, err := s.FindNodeByID(ctx, id)
			must(t, err)
			if n.Status.Rejected != changes[id] {
				t.Errorf("%s: %s has %d of %d status changes", when, id, n.Status.Rejected, changes[id])
			}
		}
		n1, _ := s.FindNodeByID(ctx, "n1")
		if n1.Settings.Volume == nil || *n1.Settings.Volume != writes-1 {
			t.Errorf("%s: n1's last volume lost: %v", when, n1.Settings.Volume)
		}
		n2, _ := s.FindNodeByID(ctx, "n2")
		if c, err := s.NodeCredentials(ctx, "n2"); err != nil || c != n2.Credentials {
			t.Errorf("%s: NodeCredentials(n2) = %q, %v; the record says %s", when, c, err, n2.Credentials)
		}
	}
	check(s, "in memory")
	must(t, db.Close())
	db2 := openStore(t, path, -1, io.Discard)
	defer db2.Close()
	check(bolt.NewNodeService(db2), "after reopening")
}

// TestNodeStatus_DeletedNodeNotResurrected: a node deleted after its status
// changed is not written back by the flush, and later changes are refused.
func TestNodeStatus_DeletedNodeNotResurrected(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(1)))
	must(t, s.UpdateNodeStatus(ctx, "n2", online(2)))
	bolt.DeleteDuringFlush(db, "n1")
	must(t, bolt.FlushStatus(db))
	if _, err := bolt.StoredStatus(db, "n1"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Fatalf("n1 after the flush: %v, want it gone", err)
	}
	if st, err := bolt.StoredStatus(db, "n2"); err != nil || st.Outbox != 2 {
		t.Errorf("n2 after the flush: %+v, %v", st, err)
	}
	wantCode(t, s.UpdateNodeStatus(ctx, "n1", online(3)), loaxa.ENotFound)
	if _, err := s.NodeCredentials(ctx, "n1"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("credentials of the deleted node: %v", err)
	}
	must(t, bolt.FlushStatus(db))
	if _, err := bolt.StoredStatus(db, "n1"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("n1 came back: %v", err)
	}
	// The store's invariants (no node without its area index, …) are
	// checked on cleanup; the test deleted the record alone, so drop the
	// index entry the checker would miss.
	must(t, bolt.DeleteNodeArea(db, "hp", "n1"))
}

// TestNodeStatus_FailedFlushKeepsChanges: a flush that fails keeps every
// change for the next one and counts the failure.
func TestNodeStatus_FailedFlushKeepsChanges(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(1)))
	must(t, s.UpdateNodeStatus(ctx, "n2", online(2)))
	disk := errors.New("disk full")
	bolt.FailStatusFlushes(db, disk)
	if err := bolt.FlushStatus(db); !errors.Is(err, disk) {
		t.Fatalf("flush: %v, want %v", err, disk)
	}
	if got := db.StatusFlushFailures(); got != 1 {
		t.Errorf("%d failures counted, want 1", got)
	}
	if got := db.UnflushedStatuses(); got != 2 {
		t.Errorf("%d unflushed statuses after the failure, want 2", got)
	}
	must(t, s.UpdateNodeStatus(ctx, "n1", online(11)))
	bolt.FailStatusFlushes(db, nil)
	must(t, bolt.FlushStatus(db))
	for id, outbox := range map[string]int{"n1": 11, "n2": 2} {
		if st, err := bolt.StoredStatus(db, id); err != nil || st.Outbox != outbox {
			t.Errorf("%s after the retry: %+v, %v", id, st, err)
		}
	}
	if got := db.UnflushedStatuses(); got != 0 {
		t.Errorf("%d unflushed statuses after the retry", got)
	}
}

// TestNodeStatus_FlushInChunks: a flush writes DB.StatusChunk statuses a
// transaction, so that another write waits for one chunk and not for the
// whole flush; a chunk that fails keeps its statuses and those after it
// for the next flush, and those written before stay written.
func TestNodeStatus_FlushInChunks(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	ids := []string{"n1", "n2"}
	for _, id := range []string{"n3", "n4", "n5"} {
		mustNode(t, db, id, "hp")
		ids = append(ids, id)
	}
	db.StatusChunk = 2
	change := func(outbox int) {
		for _, id := range ids {
			must(t, s.UpdateNodeStatus(ctx, id, online(outbox)))
		}
	}
	written := func() int {
		n := 0
		for _, id := range ids {
			if st, err := bolt.StoredStatus(db, id); err == nil && st.State == loaxa.NodeOnline {
				n++
			}
		}
		return n
	}

	change(1)
	txs := 0
	bolt.OnFlushTransaction(db, func() error { txs++; return nil })
	must(t, bolt.FlushStatus(db))
	if txs != 3 {
		t.Errorf("5 statuses flushed in %d transactions, want 3 of at most 2", txs)
	}
	if got := written(); got != 5 {
		t.Errorf("%d of 5 statuses written", got)
	}

	change(2)
	disk := errors.New("disk full")
	txs = 0
	bolt.OnFlushTransaction(db, func() error {
		if txs++; txs == 2 {
			return disk
		}
		return nil
	})
	if err := bolt.FlushStatus(db); !errors.Is(err, disk) {
		t.Fatalf("flush with its second chunk failing: %v, want %v", err, disk)
	}
	if txs != 2 {
		t.Errorf("%d transactions, want the flush to stop at the failed second", txs)
	}
	if got := db.UnflushedStatuses(); got != 3 {
		t.Errorf("%d statuses left for the next flush, want the failed chunk's 2 and the last 1", got)
	}
	if got := db.StatusFlushFailures(); got != 1 {
		t.Errorf("%d failures counted, want 1", got)
	}
	bolt.OnFlushTransaction(db, nil)
	must(t, bolt.FlushStatus(db))
	for _, id := range ids {
		if st, err := bolt.StoredStatus(db, id); err != nil || st.Outbox != 2 {
			t.Errorf("%s after the next flush: %+v, %v", id, st, err)
		}
	}
	if got := db.UnflushedStatuses(); got != 0 {
		t.Errorf("%d unflushed statuses after the next flush", got)
	}
}

// TestNodeStatus_ChangeDuringFlush: a change that comes while a flush
// writes is not taken as written; the next flush writes it.
func TestNodeStatus_ChangeDuringFlush(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(1)))
	bolt.DuringFlush(db, func() { must(t, s.UpdateNodeStatus(ctx, "n1", online(2))) })
	must(t, bolt.FlushStatus(db))
	if st, _ := bolt.StoredStatus(db, "n1"); st.Outbox != 1 {
		t.Errorf("the flush wrote outbox %d, want the 1 it copied", st.Outbox)
	}
	if got := db.UnflushedStatuses(); got != 1 {
		t.Errorf("%d unflushed statuses, want the change made during the flush", got)
	}
	must(t, bolt.FlushStatus(db))
	if st, _ := bolt.StoredStatus(db, "n1"); st.Outbox != 2 {
		t.Errorf("the next flush wrote outbox %d, want 2", st.Outbox)
	}
}

// TestNodeStatus_BackupHasNewest: a snapshot (what a backup writes) holds
// the status in memory, not the one of the last flush.
func TestNodeStatus_BackupHasNewest(t *testing.T) {
	db, _ := statusStore(t)
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(5)))
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	must(t, db.Snapshot(ctx, func(snap loaxa.Snapshot) error {
		f, err := os.Create(copyPath)
		if err != nil {
			return err
		}
		if _, err := snap.WriteTo(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}))
	backup := openStore(t, copyPath, -1, io.Discard)
	defer backup.Close()
	if st, err := bolt.StoredStatus(backup, "n1"); err != nil || st.State != loaxa.NodeOnline || st.Outbox != 5 {
		t.Errorf("the backup has %+v, %v", st, err)
	}
}

// TestNodeStatus_Flusher: the flusher writes changes every interval, logs
// and counts a failed write and retries it, and stops on Close.
func TestNodeStatus_Flusher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loaxa.db")
	var log syncbuf.Buffer
	db := openStore(t, path, 5*time.Millisecond, &log)
	done := bolt.FlusherDone(db)
	if done == nil {
		t.Fatal("no flusher runs")
	}
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(4)))
	// The flusher runs on wall time: wait for its write, with a bound.
	waitFor(t, "the periodic flush", func() bool {
		st, err := bolt.StoredStatus(db, "n1")
		return err == nil && st.Outbox == 4
	})

	must(t, db.Close())
	select {
	case <-done:
	default:
		t.Fatal("the flusher still runs after Close")
	}
	if err := bolt.CheckFile(path); err != nil {
		t.Fatal(err)
	}
}

// withFlusher sets up a store with area hp and node n1 without a flusher,
// then opens it again with one every 5 ms, logging to log, after tune
// changed it; the test closes it.
func withFlusher(t *testing.T, log io.Writer, tune func(*bolt.DB)) (*bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loaxa.db")
	db := openStore(t, path, -1, io.Discard)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	must(t, db.Close())
	db = bolt.NewDB(path)
	db.Logger = slog.New(slog.NewTextHandler(log, nil))
	db.StatusInterval = 5 * time.Millisecond
	tune(db)
	must(t, db.Open())
	return db, path
}

// TestNodeStatus_FlusherHeld: a periodic flush that is due while
// DB.StatusHold says so waits for it; Close does not.
func TestNodeStatus_FlusherHeld(t *testing.T) {
	var held atomic.Bool
	var asked atomic.Int64
	held.Store(true)
	db, path := withFlusher(t, io.Discard, func(db *bolt.DB) {
		db.StatusHold = func() bool {
			asked.Add(1)
			return held.Load()
		}
	})
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(7)))
	start := asked.Load()
	// Asked three times since the change: a flush came due and waited.
	waitFor(t, "the flush asking whether to wait", func() bool { return asked.Load() >= start+3 })
	if st, err := bolt.StoredStatus(db, "n1"); err != nil || st.Outbox == 7 {
		t.Fatalf("while held: stored %+v, %v; want the change not written yet", st, err)
	}
	held.Store(false)
	waitFor(t, "the flush once the hold ended", func() bool {
		st, err := bolt.StoredStatus(db, "n1")
		return err == nil && st.Outbox == 7
	})

	// Held again, Close writes all the same and stops the flusher.
	held.Store(true)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(8)))
	must(t, db.Close())
	db = openStore(t, path, -1, io.Discard)
	defer db.Close()
	if st, err := bolt.StoredStatus(db, "n1"); err != nil || st.Outbox != 8 {
		t.Errorf("after Close while held: stored %+v, %v; want outbox 8", st, err)
	}
}

// TestNodeStatus_FlusherLogsFailures: a periodic flush that fails is
// logged and counted, and its changes are written once writes work again.
func TestNodeStatus_FlusherLogsFailures(t *testing.T) {
	var log syncbuf.Buffer
	db, path := withFlusher(t, &log, func(db *bolt.DB) {
		bolt.FailStatusFlushes(db, errors.New("disk full")) // before Open: the flusher reads it
	})
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	must(t, s.UpdateNodeStatus(ctx, "n1", online(6)))
	waitFor(t, "two failed flushes", func() bool { return db.StatusFlushFailures() >= 2 })
	if !strings.Contains(log.String(), "node status not written") || !strings.Contains(log.String(), "disk full") {
		t.Errorf("failure not logged:\n%s", log.String())
	}
	// Close still tries, fails and says so; the change is not lost
	// silently.
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close: %v, want the flush's error", err)
	}
	db = openStore(t, path, -1, io.Discard)
	defer db.Close()
	if st, _ := bolt.StoredStatus(db, "n1"); st.Outbox == 6 {
		t.Error("a failing flush wrote")
	}
}

// TestNodeCredentials: the credential state answered from memory follows
// creation, enrolment, rotation and revocation.
func TestNodeCredentials(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	want := func(id, cred string) {
		t.Helper()
		got, err := s.NodeCredentials(ctx, id)
		must(t, err)
		if got != cred {
			t.Errorf("credentials of %s: %s, want %s", id, got, cred)
		}
	}
	mustNode(t, db, "n1", "hp")
	want("n1", loaxa.CredentialsActive)
	must(t, s.CreateNode(ctx, &loaxa.Node{ID: "n2", Area: "hp"}))
	want("n2", loaxa.CredentialsPending)
	code := "code-n2"
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: loaxa.HashEnrolmentCode(code), Node: "n2", Expires: t0.Add(time.Hour)}))
	_, sec := loaxa.NewNodeSecret()
	_, err := s.RedeemEnrolment(ctx, loaxa.HashEnrolmentCode(code), sec)
	must(t, err)
	want("n2", loaxa.CredentialsActive)
	_, err = s.RevokeNode(ctx, "n1")
	must(t, err)
	want("n1", loaxa.CredentialsRevoked)
	_, sec = loaxa.NewNodeSecret()
	_, err = s.SetNodeSecret(ctx, "n1", sec)
	must(t, err)
	want("n1", loaxa.CredentialsActive)
	if _, err := s.NodeCredentials(ctx, "n9"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("unknown node: %v", err)
	}
	// A failed write changes nothing.
	if _, err := s.RevokeNode(ctx, "n9"); err == nil {
		t.Error("revoked an unknown node")
	}
	if err := s.CreateNodes(ctx, []*loaxa.Node{{ID: "n3", Area: "hp"}, {ID: "n4", Area: "nowhere"}}); err == nil {
		t.Error("created a node in a missing area")
	}
	if _, err := s.NodeCredentials(ctx, "n3"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("n3 of a failed CreateNodes: %v", err)
	}
}

// waitFor polls cond until it holds, failing after 5 s: for the flusher,
// which runs on wall time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNodeCredentials_InCommitOrder: two credential writes of one node
// reach the memory in the order they were committed. The revocation
// commits first and is held before it reaches memory; a new secret comes
// meanwhile. Without ordering, the held revocation would land last and
// NodeCredentials would say revoked while the store says active.
func TestNodeCredentials_InCommitOrder(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	ctx := context.Background()
	s := bolt.NewNodeService(db)
	held, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	bolt.OnCredentialsCommitted(db, func() {
		if first.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := s.RevokeNode(ctx, "n1"); err != nil {
			t.Error(err)
		}
	})
	<-held
	secretDone := make(chan struct{})
	wg.Go(func() {
		defer close(secretDone)
		_, sec := loaxa.NewNodeSecret()
		if _, err := s.SetNodeSecret(ctx, "n1", sec); err != nil {
			t.Error(err)
		}
	})
	// Ordered, the secret waits for the revocation to reach memory, so it
	// cannot finish first; give it the chance to if it were not.
	select {
	case <-secretDone:
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	bolt.OnCredentialsCommitted(db, nil)

	n, err := s.FindNodeByID(ctx, "n1")
	must(t, err)
	c, err := s.NodeCredentials(ctx, "n1")
	must(t, err)
	if n.Credentials != loaxa.CredentialsActive || c != n.Credentials {
		t.Errorf("store says %s, NodeCredentials %s; want both active (the secret committed last)", n.Credentials, c)
	}
}
