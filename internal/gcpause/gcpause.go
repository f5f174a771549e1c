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
// ends. Overlapping holds keep the collector off for at most MaxSpell in a
// row: a hold asked for later than that into a spell is not taken, so that
// alerts sent one after another (a CAP feed's) cannot keep the heap growing
// unchecked. A cycle already under way is not stopped. A memory limit
// (GOMEMLIMIT, debug.SetMemoryLimit) still starts a cycle when the heap
// reaches it, hold or not.
package gcpause

import (
	"runtime/debug"
	"sync"
	"time"
)

// MaxSpell is the longest the holds keep the collector off in a row.
const MaxSpell = 10 * time.Second

var (
	mu    sync.Mutex
	holds int
	saved int
	since time.Time // when the spell of holds began
	now   = time.Now
)

// For holds new collection cycles off for at most d. The returned release
// ends the hold at once; it may be called more than once, and after the
// hold ran out. Asked for more than MaxSpell into a spell of holds, it
// takes none, and its release does nothing.
func For(d time.Duration) (release func()) {
	mu.Lock()
	switch {
	case holds == 0:
		saved, since = debug.SetGCPercent(-1), now()
	case now().Sub(since) > MaxSpell:
		mu.Unlock()
		return func() {}
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
