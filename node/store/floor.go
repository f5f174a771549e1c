package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
