// Package clock lets code that schedules take its time from outside, so
// tests can drive it with a fake clock instead of sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer that schedulers use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Offset is a clock shifted by a changing offset, e.g. the measured
// difference between the controller's clock and this machine's.
type Offset struct {
	Base Clock
	mu   sync.RWMutex
	d    time.Duration
}

// NewOffset wraps base.
func NewOffset(base Clock) *Offset { return &Offset{Base: base} }

// Set changes the offset added to the base clock.
func (o *Offset) Set(d time.Duration) {
	o.mu.Lock()
	o.d = d
	o.mu.Unlock()
}

// Get returns the current offset.
func (o *Offset) Get() time.Duration {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.d
}

// Now returns base time plus the offset.
func (o *Offset) Now() time.Time { return o.Base.Now().Add(o.Get()) }

// NewTimer returns a base timer; durations do not depend on the offset.
func (o *Offset) NewTimer(d time.Duration) Timer { return o.Base.NewTimer(d) }

// Fake is a clock that moves only when told. Timers fire, in deadline order,
// when Advance or Set passes their deadline. Safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and fires due timers.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (forwards or backwards) and fires due timers.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	var due []*fakeTimer
	keep := f.timers[:0]
	for _, tm := range f.timers {
		if !tm.when.After(t) {
			due = append(due, tm)
		} else {
			keep = append(keep, tm)
		}
	}
	f.timers = keep
	// Sort under the lock: a timer's when is written by Reset from other
	// goroutines as soon as the lock is released.
	sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	f.mu.Unlock()
	for _, tm := range due {
		select {
		case tm.c <- t:
		default:
		}
	}
}

// Timers returns how many timers are waiting; tests use it to know that the
// code under test has reached its wait before advancing.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next returns when the earliest waiting timer fires, and whether one
// waits: a test advancing past a wait the code under test arms after a
// change it can see (a retry's backoff noted before its timer is reset)
// first waits until the timer is armed, or the advance comes too early and
// the timer, set after it, never fires.
func (f *Fake) Next() (time.Time, bool) { return f.NextAfter(time.Time{}) }

// NextAfter returns when the earliest timer waiting fires that fires at t
// or later, and whether one waits: a test looking for one wait among
// shorter ones that come and go (a node measuring its clock every few
// seconds while its sender waits a minute for an acknowledgement).
func (f *Fake) NextAfter(t time.Time) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, tm := range f.timers {
		if tm.when.Before(t) {
			continue
		}
		if next.IsZero() || tm.when.Before(next) {
			next = tm.when
		}
	}
	return next, !next.IsZero()
}

// NewTimer returns a timer that fires when the fake time reaches now+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	tm := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	tm.Reset(d)
	return tm
}

type fakeTimer struct {
	f    *Fake
	c    chan time.Time
	when time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	for i, tm := range t.f.timers {
		if tm == t {
			t.f.timers = append(t.f.timers[:i], t.f.timers[i+1:]...)
			return true
		}
	}
	return false
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	active := t.Stop()
	t.f.mu.Lock()
	t.when = t.f.now.Add(d)
	fire := d <= 0
	if !fire {
		t.f.timers = append(t.f.timers, t)
	}
	now := t.f.now
	t.f.mu.Unlock()
	if fire {
		select {
		case t.c <- now:
		default:
		}
	}
	return active
}

// Watchdog calls its function once it has not been fed for its period,
// on a clock: a download or a stream that stops bringing bytes is cut,
// however long a steady one takes.
type Watchdog struct {
	timer Timer
	d     time.Duration
	done  chan struct{} // closed by Stop
	ended chan struct{} // closed once its goroutine has returned
}

// NewWatchdog starts a watchdog on c that calls fire once d passes
// without Feed.
func NewWatchdog(c Clock, d time.Duration, fire func()) *Watchdog {
	w := &Watchdog{timer: c.NewTimer(d), d: d, done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(w.ended)
		select {
		case <-w.timer.C():
			fire()
		case <-w.done:
		}
	}()
	return w
}

// Feed records that something came: the period counts from now.
func (w *Watchdog) Feed() { w.timer.Reset(w.d) }

// Stop ends the watchdog and waits for its goroutine (and fire, if it
// was called).
func (w *Watchdog) Stop() {
	w.timer.Stop()
	close(w.done)
	<-w.ended
}
