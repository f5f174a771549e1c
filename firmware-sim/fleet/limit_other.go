//go:build !unix

package fleet

// checkFileLimit: on systems without RLIMIT_NOFILE (Windows) a fleet
// runs out of handles, if ever, as the system says when it happens.
func checkFileLimit(Config) error { return nil }
