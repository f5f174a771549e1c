package main

import (
	"context"
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/sdnotify"
	"loaxa.vn/internal/sdnotify/sdnotifytest"
)

// TestUpgradeAtStartExtendsSystemdTimeout: the unit gives the controller
// TimeoutStartSec=60s to say READY=1, and a schema upgrade of a province's
// store runs in Open, before it. systemd killed a start whose upgrade
// outlasted the 60 s, every time, and journalctl showed nothing between
// "starting" and the kill. While the store upgrades the controller must
// log that it does, and ask systemd for more time (EXTEND_TIMEOUT_USEC=,
// with a STATUS= saying what it is doing). Here the upgrade (schema 6 → 7)
// is held at its first log record until systemd has heard the request.
func TestUpgradeAtStartExtendsSystemdTimeout(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.HTTPAddr, cfg.MQTTAddr, cfg.DataDir, cfg.AdminPassword = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), "test-admin-password"
	storeOfSchema6(t, filepath.Join(cfg.DataDir, "loaxa.db"))

	systemd := sdnotifytest.Listen(t)
	socket := systemd.Socket
	read := func() string {
		t.Helper()
		return systemd.Read(t, 30*time.Second)
	}

	extended := make(chan struct{})
	logs := &holdingHandler{hold: extended, held: make(chan string, 1)}
	logger := slog.New(logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	a := app.New(cfg, logger)
	a.Out = &strings.Builder{}
	go func() {
		done <- serve(ctx, a, sdnotify.New(func(k string) string {
			if k == "NOTIFY_SOCKET" {
				return socket
			}
			return ""
		}), logger)
	}()

	var line string
	select {
	case line = <-logs.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the controller logged nothing about the store upgrade")
	}
	first := read()
	close(extended)
	if !strings.HasPrefix(first, "EXTEND_TIMEOUT_USEC=") {
		t.Fatalf("while the store upgraded (log %q) systemd heard %q, want EXTEND_TIMEOUT_USEC=… first", line, first)
	}
	usec, status, _ := strings.Cut(strings.TrimPrefix(first, "EXTEND_TIMEOUT_USEC="), "\n")
	if d, err := time.ParseDuration(usec + "us"); err != nil || d < 30*time.Second {
		t.Errorf("EXTEND_TIMEOUT_USEC=%s: want at least 30 s, the time a silent part of the upgrade (a commit) may take", usec)
	}
	if !strings.HasPrefix(status, "STATUS=") || !strings.Contains(status, "schema 6 → 7") {
		t.Errorf("with the extension systemd heard %q, want a STATUS= naming the upgrade from schema 6 to 7", status)
	}
	for {
		got := read()
		if strings.HasPrefix(got, "READY=1") {
			break
		}
		if !strings.HasPrefix(got, "EXTEND_TIMEOUT_USEC=") {
			t.Fatalf("before READY=1 systemd heard %q", got)
		}
	}
	cancel()
	if got := read(); got != sdnotify.Stopping {
		t.Errorf("at the stop systemd heard %q, want %q", got, sdnotify.Stopping)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// storeOfSchema6 writes at path a store as schema 6 left it: one alarm,
// not indexed by its end, and the version 6.
func storeOfSchema6(t *testing.T, path string) {
	t.Helper()
	db := bolt.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	err := bolt.NewAlarmService(db).CreateAlarm(context.Background(), &loaxa.Alarm{Kind: "offline", Node: "n1", Start: time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket([]byte("alarm_ends")); err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], 6)
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), v[:])
	})
	if err != nil {
		t.Fatal(err)
	}
}

// holdingHandler is a log handler that holds the first record about the
// store's upgrade (sending its message on held) until hold is closed, or
// 30 s have passed, so that the upgrade stays under way while the test
// listens to what systemd hears.
type holdingHandler struct {
	hold chan struct{}
	held chan string
	once sync.Once
}

func (h *holdingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *holdingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *holdingHandler) WithGroup(string) slog.Handler            { return h }
func (h *holdingHandler) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "store:") || !(strings.Contains(r.Message, "upgrad") || strings.Contains(r.Message, "up to date")) {
		return nil
	}
	h.once.Do(func() {
		h.held <- r.Message
		select {
		case <-h.hold:
		case <-time.After(30 * time.Second):
		}
	})
	return nil
}
