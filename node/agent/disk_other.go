//go:build !unix

package agent

// diskFree cannot measure on this system: the state reports it absent.
func diskFree(dir string) *int64 { return nil }
