//go:build linux

// Package rocard makes a directory read-only for a test, as the kernel
// remounts an SD card that fails: writes fail with EROFS, whatever the
// test's user may do.
package rocard

import (
	"syscall"
	"testing"
)

// ReadOnly binds dir read-only over itself until the test ends. The test
// is skipped where this process may not mount (not root, no
// CAP_SYS_ADMIN): scripts/test.sh runs as root.
func ReadOnly(t testing.TB, dir string) {
	t.Helper()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount %s read-only here (needs root or CAP_SYS_ADMIN): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}
