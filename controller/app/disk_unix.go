//go:build unix

package app

import "golang.org/x/sys/unix"

// volumeFree returns the bytes free for the controller's user on the
// volume of dir, or false if they cannot be measured.
func volumeFree(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
