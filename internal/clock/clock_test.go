package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 5, 30, 0, 0, time.UTC)

func fired(tm Timer) bool {
	select {
	case <-tm.C():
		return true
	default:
		return false
	}
}

func TestFakeTimers(t *testing.T) {
	f := NewFake(t0)
	a := f.NewTimer(time.Second)
	b := f.NewTimer(3 * time.Second)
	if f.Timers() != 2 {
		t.Fatalf("%d timers waiting, want 2", f.Timers())
	}
	f.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("a timer fired early")
	}
	f.Advance(time.Millisecond)
	if !fired(a) || fired(b) {
		t.Fatal("want exactly the 1 s timer fired at 1 s")
	}
	if b.Stop() != true || b.Stop() != false {
		t.Fatal("Stop should report true once, then false")
	}
	f.Advance(time.Hour)
	if fired(b) {
		t.Fatal("a stopped timer fired")
	}
	if f.Timers() != 0 {
		t.Fatalf("%d timers left", f.Timers())
	}
}

func TestFakeNext(t *testing.T) {
	f := NewFake(t0)
	if _, ok := f.Next(); ok {
		t.Fatal("Next reports a timer where none waits")
	}
	a := f.NewTimer(3 * time.Second)
	f.NewTimer(time.Hour)
	if next, ok := f.Next(); !ok || !next.Equal(t0.Add(3*time.Second)) {
		t.Errorf("Next = %v, %v; want the 3 s timer's %v", next, ok, t0.Add(3*time.Second))
	}
	a.Reset(time.Second)
	if next, _ := f.Next(); !next.Equal(t0.Add(time.Second)) {
		t.Errorf("Next after a Reset = %v, want %v", next, t0.Add(time.Second))
	}
	f.Advance(time.Second)
	if next, _ := f.Next(); !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("Next once the 1 s timer fired = %v, want the hour's %v", next, t0.Add(time.Hour))
	}
	f.NewTimer(2 * time.Second)
	if next, ok := f.NextAfter(t0.Add(time.Minute)); !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextAfter a minute = %v, %v; want the hour's %v, past the 3 s timer", next, ok, t0.Add(time.Hour))
	}
	if next, _ := f.NextAfter(t0.Add(3 * time.Second)); !next.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("NextAfter 3 s = %v, want the timer due at it, %v", next, t0.Add(3*time.Second))
	}
	if _, ok := f.NextAfter(t0.Add(2 * time.Hour)); ok {
		t.Error("NextAfter reports a timer past the last one")
	}
}

func TestFakeResetAndZero(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(0)
	if !fired(tm) {
		t.Fatal("a zero-duration timer should fire at once")
	}
	tm.Reset(time.Minute)
	f.Set(t0.Add(-time.Hour)) // the clock jumps back: nothing fires
	if fired(tm) {
		t.Fatal("fired after a backward jump")
	}
	f.Set(t0.Add(2 * time.Minute))
	if !fired(tm) {
		t.Fatal("did not fire once the deadline passed")
	}
}

func TestOffset(t *testing.T) {
	f := NewFake(t0)
	o := NewOffset(f)
	o.Set(-90 * time.Second)
	if got := o.Now(); !got.Equal(t0.Add(-90 * time.Second)) {
		t.Fatalf("Now = %v", got)
	}
	tm := o.NewTimer(time.Second)
	f.Advance(time.Second)
	if !fired(tm) {
		t.Fatal("offset timers run on the base clock")
	}
}

// TestFakeSetWhileTimersReset advances the clock while other goroutines
// re-arm the timers it fires, as agents do with a fake clock shared by a
// test; under -race this catches Set reading a timer's deadline after
// releasing the lock.
func TestFakeSetWhileTimersReset(t *testing.T) {
	f := NewFake(t0)
	const workers = 4
	stop := make(chan struct{})
	done := make(chan struct{})
	for range workers {
		tm := f.NewTimer(time.Millisecond)
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					tm.Stop()
					return
				case <-tm.C():
				default:
				}
				// Re-arm whether or not it fired, as a loop that waits
				// on several things does.
				tm.Reset(time.Millisecond)
			}
		}()
	}
	for range 2000 {
		f.Advance(time.Millisecond)
	}
	close(stop)
	for range workers {
		<-done
	}
	if f.Timers() != 0 {
		t.Fatalf("%d timers left after every worker stopped its own", f.Timers())
	}
}

// TestWatchdog: fed, the watchdog waits its period again from the feed;
// unfed for its period, it fires once; stopped, it never fires.
func TestWatchdog(t *testing.T) {
	f := NewFake(t0)
	fire := make(chan struct{}, 2)
	w := NewWatchdog(f, time.Minute, func() { fire <- struct{}{} })
	f.Advance(50 * time.Second)
	w.Feed()
	f.Advance(50 * time.Second) // 100 s from its start, 50 s from the feed
	if f.Timers() != 1 {
		t.Fatal("a watchdog fed 50 s before is no longer waiting 50 s after")
	}
	f.Advance(10 * time.Second)
	<-fire // a minute after the feed
	w.Stop()

	w = NewWatchdog(f, time.Minute, func() { fire <- struct{}{} })
	w.Stop()
	f.Advance(time.Hour)
	if len(fire) != 0 || f.Timers() != 0 {
		t.Fatalf("a stopped watchdog fired (%d) or left its timer waiting (%d)", len(fire), f.Timers())
	}
}
