package gcpause

import (
	"runtime/debug"
	"testing"
	"time"
)

// percent reads the collector's percentage (SetGCPercent sets it to read
// it), once the holds' goroutine has set it.
func percent() int {
	for {
		mu.Lock()
		busy := applying
		mu.Unlock()
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestOverlappingHoldsRestoreThePercentFoundFirst: two holds that overlap
// keep the collector off until the second ends, whichever order they end
// in, and then restore the percentage the first found; a release called
// again changes nothing.
func TestOverlappingHoldsRestoreThePercentFoundFirst(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(250))
	a := For(time.Hour)
	if p := percent(); p != -1 || !Held() {
		t.Fatalf("during a hold the percentage is %d (held %v), want -1", p, Held())
	}
	b := For(time.Hour)
	a()
	if p := percent(); p != -1 {
		t.Fatalf("with one hold left the percentage is %d, want -1", p)
	}
	a()
	if p := percent(); p != -1 {
		t.Fatalf("after the first hold was released twice the percentage is %d, want -1 (the second still holds)", p)
	}
	b()
	if p := percent(); p != 250 || Held() {
		t.Fatalf("after both holds the percentage is %d (held %v), want 250", p, Held())
	}
}

// TestSpellIsBounded: holds that keep overlapping keep the collector off
// for at most MaxSpell in a row; one asked for later is not taken, and
// once the spell's holds end, a new spell may begin.
func TestSpellIsBounded(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t0 := time.Date(2026, 9, 6, 8, 0, 0, 0, time.UTC)
	at := t0
	now = func() time.Time { return at }
	defer func() { now = time.Now }()
	first := For(time.Hour)
	at = t0.Add(MaxSpell - time.Second)
	second := For(time.Hour) // within the spell: taken
	first()
	at = t0.Add(MaxSpell + time.Second)
	late := For(time.Hour) // past it: not taken
	second()
	if Held() || percent() != 100 {
		t.Fatalf("a hold asked for %v into a spell was taken (held %v, percentage %d)", MaxSpell+time.Second, Held(), percent())
	}
	late()
	again := For(time.Hour) // a new spell
	if !Held() || percent() != -1 {
		t.Fatal("no new spell after the last one ended")
	}
	again()
}

// TestHoldEndsWithItsSpell: a hold that joins a spell of holds lasts at
// most until the spell's MaxSpell is up, however long it asked for.
func TestHoldEndsWithItsSpell(t *testing.T) {
	t0 := time.Date(2026, 9, 6, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		at   time.Time
		want time.Duration
	}{
		{3 * time.Second, t0, 3 * time.Second},                      // a spell's first hold
		{3 * time.Second, t0.Add(5 * time.Second), 3 * time.Second}, // well within it
		{3 * time.Second, t0.Add(9 * time.Second), time.Second},     // cut at the spell's end
		{3 * time.Second, t0.Add(MaxSpell), 0},                      // at its end
		{3 * time.Second, t0.Add(MaxSpell + time.Millisecond), 0},   // past it (For takes none)
		{time.Hour, t0, MaxSpell},                                   // longer than a spell
	} {
		if got := holdLength(c.d, c.at, t0); got != c.want {
			t.Errorf("a hold of %v asked %v into a spell lasts %v, want %v", c.d, c.at.Sub(t0), got, c.want)
		}
	}
}

// TestHoldRunsOut: a hold not released ends by itself when its time is
// up; releasing it afterwards changes nothing.
func TestHoldRunsOut(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	release := For(20 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for Held() {
		if time.Now().After(deadline) {
			t.Fatal("the hold did not run out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := percent(); p != 100 {
		t.Fatalf("after the hold ran out the percentage is %d, want 100", p)
	}
	other := For(time.Hour)
	release() // the expired hold's release must not end the other
	if !Held() || percent() != -1 {
		t.Fatal("releasing an expired hold ended another")
	}
	other()
}

// TestSetDefault: the controller's percentage is DefaultPercent unless
// GOGC sets one, which is left as the runtime applied it; set during a
// hold, it is what the hold restores.
func TestSetDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	unset := func(string) string { return "" }
	if got := SetDefault(unset); got != "200" || percent() != DefaultPercent {
		t.Errorf("without GOGC: %q, percentage %d, want %d", got, percent(), DefaultPercent)
	}
	debug.SetGCPercent(100)
	env := func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}
	if got := SetDefault(env); got != "50" || percent() != 100 {
		t.Errorf("with GOGC=50: %q, percentage %d, want the runtime's own left alone", got, percent())
	}
	release := For(time.Hour)
	SetDefault(unset)
	if p := percent(); p != -1 {
		t.Errorf("set during a hold: percentage %d, want the hold's -1", p)
	}
	release()
	if p := percent(); p != DefaultPercent {
		t.Errorf("after the hold: percentage %d, want %d", p, DefaultPercent)
	}
}
