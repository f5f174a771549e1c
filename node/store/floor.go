package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The clock floor is stored with a checksum. bbolt checks its meta pages,
// not the values it stores, and one bit flipped on a card turns the
// floor's year 2025 into 3025, a valid time: the agent would move the
// board's clock there until it measures the controller's time, judge
// every message expired, every bulletin of the day missed and every held
// alert over. A floor that does not match its checksum is damaged, and
// read as none: the board starts on its own clock, as a new board does. A
// floor stored without a checksum (by an agent before this one) is read as
// before; the next store adds it.

// ErrClockFloorDamaged is returned when the stored clock floor does not
// match its checksum or does not read as a time.
var ErrClockFloorDamaged = errors.New("clock floor damaged")

// floorSum is the checksum of a floor's stored bytes.
func floorSum(raw []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(raw))
}

// readFloor reads the clock floor in meta: zero if there is none.
func readFloor(meta *bolt.Bucket) (time.Time, error) {
	var floor time.Time
	raw := meta.Get(keyFloor)
	if raw == nil {
		return floor, nil
	}
	if sum := meta.Get(keyFloorSum); sum != nil && !bytes.Equal(sum, floorSum(raw)) {
		return time.Time{}, fmt.Errorf("%w: %.64q does not match its checksum", ErrClockFloorDamaged, raw)
	}
	if err := floor.UnmarshalText(raw); err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrClockFloorDamaged, err)
	}
	return floor, nil
}

// putFloor stores t as the clock floor in meta, with its checksum.
func putFloor(meta *bolt.Bucket, t time.Time) error {
	raw, err := t.UTC().MarshalText()
	if err != nil {
		return fmt.Errorf("clock floor %v: %w", t, err)
	}
	if err := meta.Put(keyFloor, raw); err != nil {
		return err
	}
	return meta.Put(keyFloorSum, floorSum(raw))
}

// ReadClockFloor reads the clock floor of the store file at path, read
// only, for node --enrol: a board enrolled again (its credentials file
// deleted) judges the controller's certificate on its clock moved up to
// the floor, as the agent would. No file, an empty one or no floor is
// zero; the file is neither made nor changed. A damaged floor is an error
// that wraps ErrClockFloorDamaged, and a panic or a memory fault in bbolt
// is an error.
func ReadClockFloor(path string) (floor time.Time, err error) {
	defer func() {
		if r := recover(); r != nil {
			floor, err = time.Time{}, fmt.Errorf("read the clock floor of %w %s: %v", errCorrupt, path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the clock floor of node store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("read the clock floor of node store %s: %w", path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		var err error
		floor, err = readFloor(meta)
		return err
	}); err != nil {
		return time.Time{}, fmt.Errorf("read the clock floor of node store %s: %w", path, err)
	}
	return floor, nil
}
