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
// row: a hold ends with its spell at the latest, and one asked for later
// than that into a spell is not taken, so that alerts sent one after
// another (a CAP feed's) cannot keep the heap growing unchecked. A memory limit (GOMEMLIMIT, debug.SetMemoryLimit) still
// starts a cycle when the heap reaches it, hold or not.
//
// A cycle already under way is not stopped: it ends as it would, and none
// begins after it. debug.SetGCPercent(-1) waits for such a cycle's marking
// to finish, so it is called off the caller's goroutine: For returns at
// once, and the alert goes out beside the cycle's end rather than after it.
// So that fewer alerts meet such a cycle, SetDefault has the controller
// collect less often between holds (DefaultPercent).
package gcpause

import (
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// MaxSpell is the longest the holds keep the collector off in a row.
const MaxSpell = 10 * time.Second

// DefaultPercent is the collector's percentage (GOGC) the controller runs
// with when its environment sets none: 200, where Go's is 100. A hold
// does not stop a cycle already under way, and at 100 the controller of
// 10,000 nodes began one every 3–5 s while an alert's reports came in
// (340–450 MB live, 0.5–1.0 s of marking each): the next alert met one in
// 7 of 51 of the benchmark's rounds, and those rounds fanned out up to
// twice as slowly. At 200 a cycle came every 9–12 s, marking 0.9–1.3 s,
// and 2 of 40 rounds met one (BENCHMARKS.md, "The controller's collector
// between alerts"). The price is memory: the heap grows to three times
// what is live instead of two.
const DefaultPercent = 200

// SetDefault sets the collector's percentage to DefaultPercent, unless
// getenv("GOGC") names one (the Go runtime has applied it), and returns
// the percentage in force as GOGC spells it. Called at the start, before
// any hold; a hold that is on keeps the collector off, and restores
// DefaultPercent when it ends.
func SetDefault(getenv func(string) string) string {
	if v := getenv("GOGC"); v != "" {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	if applied {
		saved = DefaultPercent
	} else {
		debug.SetGCPercent(DefaultPercent)
	}
	return strconv.Itoa(DefaultPercent)
}

var (
	mu       sync.Mutex
	holds    int
	since    time.Time // when the spell of holds began
	applying bool      // a goroutine is setting the percentage off
	applied  bool      // the percentage is off, saved is what it was
	saved    int
	now      = time.Now
)

// For holds new collection cycles off for at most d, and not past
// MaxSpell from the start of the spell of holds it joins. The returned
// release ends the hold at once; it may be called more than once, and
// after the hold ran out. Asked for more than MaxSpell into a spell of
// holds, it takes none, and its release does nothing.
func For(d time.Duration) (release func()) {
	mu.Lock()
	at := now()
	if holds == 0 {
		since = at
	} else if at.Sub(since) > MaxSpell {
		mu.Unlock()
		return func() {}
	}
	d = holdLength(d, at, since)
	holds++
	start := !applied && !applying
	applying = applying || start
	mu.Unlock()
	if start {
		go apply()
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if holds--; holds == 0 && applied {
				applied = false
				restore(saved)
			}
		})
	}
	t := time.AfterFunc(d, end)
	return func() {
		t.Stop()
		end()
	}
}

// holdLength is how long a hold asked for d at at lasts in a spell that
// began at since: d, cut at the spell's MaxSpell.
func holdLength(d time.Duration, at, since time.Time) time.Duration {
	return max(min(d, since.Add(MaxSpell).Sub(at)), 0)
}

// apply sets the percentage off for the holds, unless they ended while
// it waited for a cycle under way.
func apply() {
	prev := debug.SetGCPercent(-1)
	mu.Lock()
	defer mu.Unlock()
	applying = false
	if holds == 0 {
		restore(prev)
		return
	}
	applied, saved = true, prev
}

// restore sets the percentage back to p (under mu: a percentage that is
// not off is set without waiting).
func restore(p int) {
	if p >= 0 {
		debug.SetGCPercent(p)
	}
}

// Held reports whether a hold is on. The controller's periodic status
// flushes wait while one is (bolt.DB.StatusHold): an alert's fan-out is
// the moment for neither.
func Held() bool {
	mu.Lock()
	defer mu.Unlock()
	return holds > 0
}
