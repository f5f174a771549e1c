//go:build unix

package agent

import "golang.org/x/sys/unix"

// diskFree returns the bytes free for an unprivileged user on the volume
// of dir, or nil if it cannot be measured.
func diskFree(dir string) *int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return &free
}
