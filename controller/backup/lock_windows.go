package backup

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes bbolt's exclusive lock on the store file f without
// waiting: the byte range bbolt locks on Windows (-1..0); inUse says
// another process (a running controller) holds it.
func tryLock(f *os.File) (inUse bool, err error) {
	const m1 = ^uint32(0) // -1 in a uint32
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0,
		&windows.Overlapped{Offset: m1, OffsetHigh: m1})
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return true, nil
	}
	return false, err
}
