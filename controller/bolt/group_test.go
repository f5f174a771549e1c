package bolt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db := NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// incr returns a write that adds one to the counter at key.
func incr(key string) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		var n uint64
		if v := b.Get([]byte(key)); v != nil {
			n = uint64(v[7])
		}
		return b.Put([]byte(key), u64(n+1))
	}
}

func counter(t *testing.T, db *DB, key string) int {
	t.Helper()
	var n int
	err := db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			n = int(v[7])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommitGroup_Failure checks that a failing write in a shared
// transaction costs the other writes nothing: they are committed exactly
// once, and only the failing caller sees the error.
func TestCommitGroup_Failure(t *testing.T) {
	db := openTestDB(t)
	boom := errors.New("boom")
	calls := []*groupCall{
		{fn: incr("a")},
		{fn: func(tx *bbolt.Tx) error {
			if err := incr("b")(tx); err != nil {
				return err
			}
			return boom // after a write, which must be rolled back
		}},
		{fn: incr("c")},
	}
	db.commitGroup(calls)
	if calls[0].err != nil || calls[2].err != nil || !errors.Is(calls[1].err, boom) {
		t.Fatalf("errors %v, %v, %v; want nil, boom, nil", calls[0].err, calls[1].err, calls[2].err)
	}
	for key, want := range map[string]int{"a": 1, "b": 0, "c": 1} {
		if got := counter(t, db, key); got != want {
			t.Errorf("counter %s = %d, want %d", key, got, want)
		}
	}

	lone := []*groupCall{{fn: func(*bbolt.Tx) error { return boom }}}
	db.commitGroup(lone)
	if !errors.Is(lone[0].err, boom) {
		t.Errorf("lone failing write: %v, want boom", lone[0].err)
	}
}

// TestGroupUpdate_Concurrent runs many writers at once, some failing, and
// checks every successful write is committed once and each caller gets its
// own answer.
func TestGroupUpdate_Concurrent(t *testing.T) {
	db := openTestDB(t)
	const writers, each = 16, 10
	errOdd := errors.New("odd writer")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("w%02d", w)
			for range each {
				err := db.groupUpdate(func(tx *bbolt.Tx) error {
					if err := incr(key)(tx); err != nil {
						return err
					}
					if w%2 == 1 {
						return errOdd
					}
					return nil
				})
				if w%2 == 1 && !errors.Is(err, errOdd) || w%2 == 0 && err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		want := each
		if w%2 == 1 {
			want = 0
		}
		if got := counter(t, db, fmt.Sprintf("w%02d", w)); got != want {
			t.Errorf("writer %d: counter %d, want %d", w, got, want)
		}
	}
	if db.group.leading || len(db.group.queue) != 0 {
		t.Errorf("group left leading=%v with %d queued", db.group.leading, len(db.group.queue))
	}
}

func TestGroupUpdate_Closed(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	if err := db.groupUpdate(incr("a")); !errors.Is(err, errClosed) {
		t.Errorf("groupUpdate on a closed DB: %v", err)
	}
}

// TestGroupUpdate_Panic checks that a write that panics fails alone and
// leaves the group able to commit.
func TestGroupUpdate_Panic(t *testing.T) {
	db := openTestDB(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			err := db.groupUpdate(func(tx *bbolt.Tx) error {
				if w == 3 {
					panic("bug in a caller")
				}
				return incr("n")(tx)
			})
			if (w == 3) != (err != nil) {
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if got := counter(t, db, "n"); got != 7 {
		t.Errorf("counter %d, want 7", got)
	}
	if err := db.groupUpdate(incr("n")); err != nil {
		t.Errorf("write after the panic: %v", err)
	}
}

// A busy store's leader waits before it commits, and the writes that
// arrive meanwhile share its commit; an idle store commits at once.
func TestGroupUpdate_LingersWhenBusy(t *testing.T) {
	db := openTestDB(t)
	g := &db.group
	lingered, release := make(chan time.Duration, 1), make(chan struct{})
	g.mu.Lock()
	g.linger = func(d time.Duration) {
		lingered <- d
		<-release
	}
	g.lastEnd = time.Now().Add(time.Hour) // a commit "just" ended, however slow this machine
	g.mu.Unlock()

	var (
		mu  sync.Mutex
		txs = map[int]int{} // transaction id → writes in it
		wg  sync.WaitGroup
	)
	write := func(key string) {
		err := db.groupUpdate(func(tx *bbolt.Tx) error {
			mu.Lock()
			txs[tx.ID()]++
			mu.Unlock()
			return incr(key)(tx)
		})
		if err != nil {
			t.Errorf("write %s: %v", key, err)
		}
	}
	wg.Go(func() { write("lead") })
	select {
	case d := <-lingered:
		if d != groupLinger {
			t.Errorf("lingered %v, want %v", d, groupLinger)
		}
	case <-time.After(10 * time.Second):
		close(release)
		wg.Wait()
		t.Fatal("the leader of a busy store committed without waiting for more writes")
	}
	const joiners = 8
	for i := range joiners {
		wg.Go(func() { write(fmt.Sprintf("j%d", i)) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == joiners+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, joiners+1)
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if len(txs) != 1 {
		t.Errorf("writes per commit %v, want all %d in one", txs, joiners+1)
	}

	// Idle (the last commit long ago): no waiting.
	g.mu.Lock()
	g.linger = func(time.Duration) { t.Error("an idle store lingered") }
	g.lastEnd = time.Now().Add(-time.Hour)
	g.mu.Unlock()
	write("idle")
	if got := counter(t, db, "idle"); got != 1 {
		t.Errorf("idle write counted %d, want 1", got)
	}
}
