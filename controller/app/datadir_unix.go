//go:build unix

package app

import (
	"io/fs"
	"syscall"
)

// ownersKnown says whether fileOwner reads owners on this system.
const ownersKnown = true

// fileOwner returns the uid owning the file info describes.
func fileOwner(info fs.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
