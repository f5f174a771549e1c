package bolt_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
)

// t0 is the fake clock's start in the tests.
var t0 = time.Date(2025, 3, 1, 5, 30, 0, 0, time.UTC)

// MustOpenDB returns an open DB in a temp dir, on a fake clock at t0. On
// cleanup it closes the DB and checks the file: bbolt's page consistency
// and the store's own invariants (bolt.CheckFile).
func MustOpenDB(tb testing.TB) (*bolt.DB, *clock.Fake) {
	tb.Helper()
	clk := clock.NewFake(t0)
	db := bolt.NewDB(filepath.Join(tb.TempDir(), "loaxa.db"))
	db.Now = clk.Now
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Fatal(err)
		}
		if err := bolt.CheckFile(db.Path()); err != nil {
			tb.Fatalf("store is inconsistent after the test:\n%v", err)
		}
	})
	return db, clk
}

// wantCode fails unless err carries the loaxa error code want.
func wantCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := loaxa.ErrorCode(err); got != want {
		tb.Fatalf("error code %q (%v), want %q", got, err, want)
	}
}

// must fails on err.
func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// mustArea creates an area with the given parent.
func mustArea(tb testing.TB, db *bolt.DB, id, parent string) {
	tb.Helper()
	must(tb, bolt.NewAreaService(db).CreateArea(context.Background(), &loaxa.Area{ID: id, Name: "Area " + id, Parent: parent}))
}

// mustNode creates a node in area and returns its secret.
func mustNode(tb testing.TB, db *bolt.DB, id, area string) string {
	tb.Helper()
	secret := loaxa.NewSecret()
	must(tb, bolt.NewNodeService(db).CreateNode(context.Background(), &loaxa.Node{ID: id, Name: "Node " + id, Area: area, SecretHash: loaxa.HashSecret(secret)}))
	return secret
}

func TestDB_OpenTwice(t *testing.T) {
	db, _ := MustOpenDB(t)
	second := bolt.NewDB(db.Path())
	second.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	second.OpenTimeout = 50 * time.Millisecond
	// The first DB holds the file lock; a second controller on the same
	// data directory must fail instead of waiting forever.
	if err := second.Open(); err == nil {
		second.Close()
		t.Fatal("a second Open of a locked file succeeded")
	}
}

func TestDB_Closed(t *testing.T) {
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	must(t, db.Close()) // closing a DB that was never opened is fine
	_, err := bolt.NewAreaService(db).FindAreas(context.Background(), loaxa.AreaFilter{})
	if err == nil {
		t.Fatal("FindAreas on a closed DB succeeded")
	}
	wantCode(t, err, loaxa.EInternal)
}

func TestDB_CanceledContext(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "hp", Name: "Hải Phòng"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateArea with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := bolt.NewAreaService(db).FindAreaByID(context.Background(), "hp"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Fatalf("area stored despite the canceled context: %v", err)
	}
}

func TestDB_SigningKey(t *testing.T) {
	db, _ := MustOpenDB(t)
	key, err := db.SigningKey()
	must(t, err)
	if len(key) != ed25519.PrivateKeySize {
		t.Fatalf("key has %d bytes", len(key))
	}
	again, err := db.SigningKey()
	must(t, err)
	if !key.Equal(again) {
		t.Fatal("second SigningKey returned another key")
	}

	// The key survives a restart: it is the identity every node trusts.
	must(t, db.Close())
	must(t, db.Open())
	reopened, err := db.SigningKey()
	must(t, err)
	if !key.Equal(reopened) {
		t.Fatal("the signing key changed across a reopen")
	}
}

func TestDB_SeqFloor(t *testing.T) {
	db, _ := MustOpenDB(t)
	floor, err := db.SeqFloor()
	must(t, err)
	if floor != 0 {
		t.Fatalf("fresh floor %d, want 0", floor)
	}
	must(t, db.SaveSeqFloor(1000))
	// A lower floor never replaces a higher one: nodes refuse sequences
	// they have already seen.
	must(t, db.SaveSeqFloor(10))
	must(t, db.Close())
	must(t, db.Open())
	if floor, err = db.SeqFloor(); err != nil || floor != 1000 {
		t.Fatalf("floor after reopen %d, %v; want 1000", floor, err)
	}
}
