//go:build !unix

package app

// volumeFree cannot measure on this system: the disk check says so.
func volumeFree(string) (int64, bool) { return 0, false }
