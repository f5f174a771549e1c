//go:build !unix

package bolt_test

import (
	"testing"
	"time"
)

// cpuTime: the benchmarks' CPU accounting is getrusage's, which this
// system lacks; the benchmark that needs it is skipped here.
func cpuTime(tb testing.TB) time.Duration {
	tb.Skip("the process's CPU time is read with getrusage, on unix-like systems only")
	return 0
}
