package app

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// TestNoSequenceSignedTwiceAfterACrashAndAClockStep: the signer's sequence
// started at the larger of the floor saved at the last clean shutdown and
// the clock in microseconds. A controller server whose RTC battery had died
// lost power (no shutdown, no floor saved) and booted at the time it had
// booted at before, until NTP corrected it: the restarted controller signed
// the sequence numbers it had already used, and every node, which remembers
// (key id, sequence) for a message's lifetime, refused the emergency sent
// next as a replay. No sequence number may be signed twice, whatever the
// clock does across a crash.
func TestNoSequenceSignedTwiceAfterACrashAndAClockStep(t *testing.T) {
	cfg := testConfig(t)
	t0 := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	fc := clock.NewFake(t0)
	open := func() *App {
		t.Helper()
		a := New(cfg, slog.New(slog.DiscardHandler))
		a.Clock = fc
		if err := a.Open(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	var guard *protocol.ReplayGuard // a node's, as it remembers across both runs
	send := func(a *App, what string) error {
		t.Helper()
		raw, err := a.Signer.Seal(protocol.TypeCommand, "node/tt-01", protocol.Command{Name: protocol.CmdStateNow}, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		v := protocol.NewVerifier([]ed25519.PublicKey{a.Signer.PublicKey()}, fc.Now, 0)
		env, err := v.Open(raw, "node/tt-01")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if guard == nil {
			guard = protocol.NewReplayGuard(nil)
		}
		_, err = guard.Check(env, fc.Now())
		return err
	}

	first := open()
	for i := range 3 {
		fc.Advance(time.Minute)
		if err := send(first, "before the power cut"); err != nil {
			t.Fatalf("command %d before the power cut: %v", i, err)
		}
	}
	// The power cut: the store as the last write left it, without what
	// Close writes.
	var crashed bytes.Buffer
	err := first.DB.Snapshot(t.Context(), func(s loaxa.Snapshot) error {
		_, err := s.WriteTo(&crashed)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "loaxa.db"), crashed.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	fc.Set(t0) // the server boots at the time it booted at before
	second := open()
	defer second.Close()
	for i := range 3 {
		if err := send(second, "after the restart"); err != nil {
			if errors.Is(err, protocol.ErrReplay) {
				t.Fatalf("command %d after the restart was refused as a replay: the controller signed a sequence number it had used before the power cut (%v)", i, err)
			}
			t.Fatalf("command %d after the restart: %v", i, err)
		}
	}
}

// BenchmarkSealReserved measures what reserving sequence numbers costs
// signing: a command sealed by a signer that stores nothing, and by one
// that reserves seqBlock numbers at a time in a real store, as the
// controller's does; and one synced write of the ceiling (save), what the
// message that reaches the end of a block waits for.
func BenchmarkSealReserved(b *testing.B) {
	db := bolt.NewDB(filepath.Join(b.TempDir(), "loaxa.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key, err := db.SigningKey()
	if err != nil {
		b.Fatal(err)
	}
	cmd := protocol.Command{Name: protocol.CmdStateNow}
	for _, c := range []struct {
		name    string
		reserve bool
	}{{"unreserved", false}, {"reserved", true}} {
		b.Run(c.name, func(b *testing.B) {
			s := protocol.NewSigner("controller", key, 0, nil)
			if c.reserve {
				if err := s.Reserve(seqBlock, db.SaveSeqFloor); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, err := s.Seal(protocol.TypeCommand, "node/tt-01", cmd, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("save", func(b *testing.B) {
		floor := uint64(time.Now().UnixMicro())
		for b.Loop() {
			floor += seqBlock
			if err := db.SaveSeqFloor(floor); err != nil {
				b.Fatal(err)
			}
		}
	})
}
