package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestClockFloorWithAFlippedBit: one bit flipped on the card made the
// stored floor's year 2026 read as 3026, a valid time, and the agent moved
// the board's clock a thousand years ahead to it. A floor that does not
// match its checksum is damaged: ClockFloor says so and returns zero, the
// read-back of a damaged store leaves it, and a read-only card's copy
// keeps everything else. A floor stored before checksums reads as before.
func TestClockFloorWithAFlippedBit(t *testing.T) {
	floor := damageNow.Add(-2 * time.Minute)
	flip := func(t *testing.T, path string) {
		t.Helper()
		garble(t, path, func(tx *bolt.Tx) error {
			raw := append([]byte(nil), tx.Bucket(bucketMeta).Get(keyFloor)...)
			raw[0] ^= 1 // '2' becomes '3'
			return tx.Bucket(bucketMeta).Put(keyFloor, raw)
		})
	}
	stored := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "node.db")
		ackedStore(t, path)
		s, err := OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.SetClockFloor(floor); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("read", func(t *testing.T) {
		path := stored(t)
		flip(t, path)
		s, err := OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, err := s.ClockFloor(); !errors.Is(err, ErrClockFloorDamaged) || !got.IsZero() {
			t.Errorf("ClockFloor() = %v, %v; want zero and ErrClockFloorDamaged", got, err)
		}
		if err := s.SetClockFloor(floor); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClockFloor(); err != nil || !got.Equal(floor) {
			t.Errorf("ClockFloor() stored again = %v, %v; want %v", got, err, floor)
		}
	})

	t.Run("salvaged", func(t *testing.T) {
		path := stored(t)
		flip(t, path)
		var k Kept
		if err := Salvage(path, damageNow, k.Add); err != nil {
			t.Fatal(err)
		}
		if !k.Floor.IsZero() {
			t.Errorf("a damaged floor read back as %v", k.Floor)
		}
	})

	t.Run("copied from a read-only card", func(t *testing.T) {
		path := stored(t)
		flip(t, path)
		m, err := MemoryFrom(path, damageNow)
		if err != nil {
			t.Fatalf("MemoryFrom: %v; want the rest of the store copied", err)
		}
		if got, err := m.ClockFloor(); err != nil || !got.IsZero() {
			t.Errorf("copied floor %v (%v), want none", got, err)
		}
	})

	t.Run("read for an enrolment", func(t *testing.T) {
		path := stored(t)
		flip(t, path)
		if got, err := ReadClockFloor(path); !errors.Is(err, ErrClockFloorDamaged) || !got.IsZero() {
			t.Errorf("ReadClockFloor() = %v, %v; want zero and ErrClockFloorDamaged", got, err)
		}
	})

	t.Run("stored without a checksum", func(t *testing.T) {
		path := stored(t)
		garble(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyFloorSum) })
		s, err := OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, err := s.ClockFloor(); err != nil || !got.Equal(floor) {
			t.Errorf("ClockFloor() = %v, %v; want %v, as stored by an agent before checksums", got, err, floor)
		}
	})
}

// TestReadClockFloor: node --enrol on a board enrolled before judged the
// controller's certificate on its raw clock, not on the floor in its
// store. ReadClockFloor reads that floor read only; a board without a
// store has none, and no store file is made for it.
func TestReadClockFloor(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "node.db")
	if got, err := ReadClockFloor(missing); err != nil || !got.IsZero() {
		t.Errorf("ReadClockFloor(no file) = %v, %v; want zero", got, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadClockFloor made %s: %v", missing, err)
	}

	path := filepath.Join(t.TempDir(), "node.db")
	ackedStore(t, path)
	if got, err := ReadClockFloor(path); err != nil || !got.IsZero() {
		t.Errorf("ReadClockFloor(no floor) = %v, %v; want zero", got, err)
	}
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	floor := damageNow.Add(-2 * time.Minute)
	if err := s.SetClockFloor(floor); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadClockFloor(path); err != nil || !got.Equal(floor) {
		t.Errorf("ReadClockFloor() = %v, %v; want %v", got, err, floor)
	}
}
