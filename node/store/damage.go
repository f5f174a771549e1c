package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// OpenBoltOrSetAside opens the store at path like OpenBolt, and if the file
// is damaged — not a bbolt file, cut short, its pages or values corrupt,
// as a power cut on an SD card that does not keep its writes leaves it —
// renames it to path.damaged-<UTC time> and starts a new store, so that the
// board runs rather than fail at every start until someone visits the
// pole. aside is the new name of the damaged file, "" when the store was
// sound. The new store has a new outbox epoch and nothing of the old: the
// node gets its desired state again from the broker (retained), the
// events it had not sent are lost, and so is its replay guard (a message
// captured before and still within its expiry would be accepted once).
// Only the newest damaged file is kept, for a technician to look at (but
// see StartAnew: a file no store was made whole in is removed instead).
//
// A store that cannot be opened for another reason is not touched: held
// by another process (ErrTimeout), not readable or writable by the agent,
// or on a full or read-only file system.
func OpenBoltOrSetAside(path string, now time.Time) (s *Bolt, aside string, err error) {
	s, err = openChecked(path)
	if err == nil || !Damaged(path, err) {
		return s, "", err
	}
	return StartAnew(path, now, err)
}

// StartAnew sets the damaged store at path aside, as OpenBoltOrSetAside
// does, and starts a new one: why is what was found wrong with it (the
// node program checks the file in a process of its own first, which a
// page tree that loops cannot hang; see Check). The error is a
// DamagedError when the new store opened.
//
// The files set aside before are deleted only when the one at path is a
// whole store (see unfinished): it was made at a start that read back into
// it what they held. A shorter file never was a working store, so the
// store set aside before it still holds the only copy of what it held:
// the short file is removed (there is nothing in it to read back), the
// older ones are kept, and aside is the newest of them, for the caller to
// read back as it would the file just found damaged.
func StartAnew(path string, now time.Time, why error) (s *Bolt, aside string, err error) {
	err = why
	if older, _ := SetAside(path); older != "" && unfinished(path) {
		if rerr := os.Remove(path); rerr != nil {
			return nil, "", errors.Join(err, fmt.Errorf("remove the unfinished store: %w", rerr))
		}
		err = fmt.Errorf("%w; shorter than a whole store, a new store whose making was cut off: removed, the store set aside before it is read back", err)
		s, nerr := OpenBolt(path)
		if nerr != nil {
			return nil, older, errors.Join(err, fmt.Errorf("new store: %w", nerr))
		}
		return s, older, &DamagedError{Path: path, Aside: older, Err: err}
	}
	aside = fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format(asideTime))
	if olds, _ := filepath.Glob(path + ".damaged-*"); len(olds) > 0 {
		for _, old := range olds {
			os.Remove(old)
		}
	}
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, "", errors.Join(err, fmt.Errorf("set the damaged store aside: %w", rerr))
	}
	s, nerr := OpenBolt(path)
	if nerr != nil {
		return nil, aside, errors.Join(err, fmt.Errorf("new store after setting the damaged one aside as %s: %w", aside, nerr))
	}
	return s, aside, &DamagedError{Path: path, Aside: aside, Err: err}
}

// asideTime is the layout of the time in a damaged store's new name.
const asideTime = "20060102T150405Z"

// unfinished reports whether the file at path is shorter than the four
// pages bbolt writes at once when it makes a store: no store was ever
// made whole in it. OpenBolt removes a file it could not make whole; a
// power cut while bbolt wrote them leaves one.
func unfinished(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() < 4*int64(os.Getpagesize())
}

// SetAside returns the damaged store set aside beside path (StartAnew
// keeps only the newest), or "", and when it was set aside (zero if its
// name does not say).
func SetAside(path string) (string, time.Time) {
	olds, _ := filepath.Glob(path + ".damaged-*")
	if len(olds) == 0 {
		return "", time.Time{}
	}
	newest := slices.Max(olds) // named by UTC time
	at, _ := time.Parse(asideTime, strings.TrimPrefix(newest, path+".damaged-"))
	return newest, at
}

// DamagedError is what OpenBoltOrSetAside returns, with a working store,
// when it set a damaged store aside: Err is what was wrong with it.
type DamagedError struct {
	Path, Aside string
	Err         error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("node store %s was damaged (%v); set aside as %s, a new one started", e.Path, e.Err, e.Aside)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// openChecked checks the file (Check), then opens the store. A panic or a
// memory fault in bbolt while it opens is an error.
func openChecked(path string) (s *Bolt, err error) {
	defer func() {
		if r := recover(); r != nil {
			if s != nil {
				s.db.Close()
				s = nil
			}
			err = fmt.Errorf("%w: %v", errCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := Check(path); err != nil {
		return nil, err
	}
	return OpenBolt(path)
}

// Check reads every page and every stored value of the store file at
// path, read only (so that a damaged file is set aside as it was found).
// A panic or a memory fault in bbolt (a file cut short maps pages that are
// not there) is an error. A missing or empty file is sound: OpenBolt
// starts it. Damaged(path, err) tells a damaged file from one that cannot
// be read (held by another process, not readable).
//
// bbolt's cursors have no depth bound: a garbled branch page that points
// back into its own tree makes the check descend for ever, its stack
// growing. The node program runs Check in a process of its own with a
// time and memory limit for that reason.
func Check(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil
	}
	return checkFile(path, fi.Size())
}

// checkFile opens the file read only and checks it; the file is closed
// again whatever happens, a panic included.
func checkFile(path string, size int64) (err error) {
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w %s: %v", errCorrupt, path, r)
		}
		if db != nil {
			db.Close()
		}
	}()
	// The free list is read here, not on bbolt's checking goroutine.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		db = nil
		return fmt.Errorf("open node store %s: %w", path, err)
	}
	if err := check(db, size); err != nil {
		return fmt.Errorf("%w %s: %w", errCorrupt, path, err)
	}
	return nil
}

// errCorrupt marks what openChecked found wrong inside the file.
var errCorrupt = errors.New("corrupt node store")

// check makes sure that the file of size bytes holds every page its meta
// page counts, reads every bucket, key and value, and decodes every JSON
// value the agent reads.
func check(db *bolt.DB, size int64) error {
	return db.View(func(tx *bolt.Tx) error {
		if hw := tx.Size(); size < hw {
			return fmt.Errorf("the file is %d bytes and its pages reach %d: cut short", size, hw)
		}
		// Read on this goroutine, where a page id gone wild is a fault
		// openChecked recovers from. Not bbolt's own check (tx.Check):
		// it runs on a goroutine of its own, where such a fault ends the
		// process, and on a garbled page header it counts to four billion
		// (found by fuzzing).
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) }); err != nil {
			return err
		}
		if meta := tx.Bucket(bucketMeta); meta != nil {
			for _, k := range [][]byte{keyDesired, keyKeys, keyAlerts} {
				if v := meta.Get(k); v != nil && !json.Valid(v) {
					return fmt.Errorf("meta %s: not JSON", k)
				}
			}
		}
		for _, name := range [][]byte{bucketProgress, bucketEvents, bucketReplay} {
			b := tx.Bucket(name)
			if b == nil {
				continue // made by OpenBolt
			}
			if err := b.ForEach(func(k, v []byte) error {
				if !json.Valid(v) {
					return fmt.Errorf("%s %x: not JSON", name, k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if sb := tx.Bucket(bucketSalvaged); sb != nil {
			return sb.ForEachBucket(func(epoch []byte) error {
				return sb.Bucket(epoch).ForEach(func(k, v []byte) error {
					if !json.Valid(v) {
						return fmt.Errorf("salvaged %s %x: not JSON", epoch, k)
					}
					return nil
				})
			})
		}
		return nil
	})
}

// readSink keeps walk's reads from being optimised away.
var readSink atomic.Uint32

// walk reads every key and value of b and its nested buckets.
func walk(b *bolt.Bucket) error {
	var sum byte
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			nested := b.Bucket(k)
			if nested == nil {
				return fmt.Errorf("key %x: neither a value nor a bucket", k)
			}
			return walk(nested)
		}
		for _, c := range v {
			sum ^= c
		}
		return nil
	})
	readSink.Add(uint32(sum)) // read for its faults, not its value
	return err
}

// Held reports whether err, opening a store, says another process holds
// it (another agent runs on it).
func Held(err error) bool { return errors.Is(err, bolterrors.ErrTimeout) }

// Damaged reports whether err, from Check or from opening the store at
// path, says the file is damaged rather than that it cannot be reached.
func Damaged(path string, err error) bool {
	switch {
	case Held(err), errors.Is(err, fs.ErrPermission),
		errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return false
	case errors.Is(err, errCorrupt), errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return true
	}
	// Anything else bbolt says of the file itself ("file size too small",
	// a page it cannot read): a damaged store, as long as there is a file
	// to set aside.
	fi, serr := os.Stat(path)
	return serr == nil && fi.Mode().IsRegular()
}
