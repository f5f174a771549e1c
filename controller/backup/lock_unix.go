//go:build unix

package backup

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes bbolt's exclusive lock on the store file f without
// waiting; inUse says another process (a running controller) holds it.
func tryLock(f *os.File) (inUse bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
