package agent

import (
	"testing"
	"time"
)

// TestSalvagedWait: a salvaged batch not acknowledged is sent again after
// AckTimeout, then twice as long each time up to salvagedBackoffMax; a new
// batch (the last one acknowledged) starts again at AckTimeout.
func TestSalvagedWait(t *testing.T) {
	const ack = 30 * time.Second
	var got []time.Duration
	w := salvagedWait(0, false, ack)
	got = append(got, w)
	for range 8 {
		w = salvagedWait(w, true, ack)
		got = append(got, w)
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		salvagedBackoffMax, salvagedBackoffMax, salvagedBackoffMax}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if w := salvagedWait(salvagedBackoffMax, false, ack); w != ack {
		t.Errorf("a new batch after the longest wait waits %v, want %v", w, ack)
	}
	if w := salvagedWait(time.Hour, true, 2*time.Hour); w != 2*time.Hour {
		t.Errorf("with an AckTimeout above the cap, %v, want the AckTimeout", w)
	}
}
