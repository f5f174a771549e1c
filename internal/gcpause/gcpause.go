// Package gcpause holds the Go garbage collector's new cycles off for short
// spells in which latency matters more than memory: the controller's
// publish of an emergency, whose fan-out to 10,000 nodes allocates tens of
// megabytes in the broker's write loops. A collection cycle that began in
// that second put its mark assists on those loops and made the fan-out
// 0.3 to 0.6 s slower (BENCHMARKS.md, "The alert's fan-out and the
// collector").
//
// A hold sets the collector's percentage off (debug.SetGCPercent(-1))
// until it is released or its time is up, whichever comes first; holds may
// overlap, and the percentage found by the first is restored when the last
// ends. A cycle already under way is not stopped. A memory limit
// (GOMEMLIMIT, debug.SetMemoryLimit) still starts a cycle when the heap
// reaches it, hold or not.
package gcpause

import (
	"runtime/debug"
	"sync"
	"time"
)

var (
	mu    sync.Mutex
	holds int
	saved int
)

// For holds new collection cycles off for at most d. The returned release
// ends the hold at once; it may be called more than once, and after the
// hold ran out.
func For(d time.Duration) (release func()) {
	mu.Lock()
	if holds == 0 {
		saved = debug.SetGCPercent(-1)
	}
	holds++
	mu.Unlock()
	var once sync.Once
	end := func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if holds--; holds == 0 {
				debug.SetGCPercent(saved)
			}
		})
	}
	t := time.AfterFunc(d, end)
	return func() {
		t.Stop()
		end()
	}
}

// Held reports whether a hold is on.
func Held() bool {
	mu.Lock()
	defer mu.Unlock()
	return holds > 0
}
