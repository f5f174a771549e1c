//go:build unix

package backup

import (
	"fmt"
	"os"
	"syscall"
)

// ownerOf returns a function that gives a path the owner of dir when this
// process runs as root and dir is another user's: a restore run as root
// into the service's data directory must leave files the service's user
// can open. Otherwise it changes nothing.
func ownerOf(dir string) (func(path string) error, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || (st.Uid == 0 && st.Gid == 0) {
		return func(string) error { return nil }, nil
	}
	uid, gid := int(st.Uid), int(st.Gid)
	return func(path string) error {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("give %s to the data directory's owner (%d:%d): %w", path, uid, gid, err)
		}
		return nil
	}, nil
}
