package agent

import (
	"testing"
	"time"
)

// TestResendWait: before the clock is measured, each resend that brought
// no acknowledgement waits twice as long as the last, up to
// salvagedBackoffMax; once measured, AckTimeout.
func TestResendWait(t *testing.T) {
	a := &Agent{cfg: Config{AckTimeout: 30 * time.Second}}
	var got []time.Duration
	w := a.cfg.AckTimeout
	for range 8 {
		w = a.resendWait(w)
		got = append(got, w)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		salvagedBackoffMax, salvagedBackoffMax, salvagedBackoffMax}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("unmeasured, the waits are %v, want %v", got, want)
		}
	}
	a.clockEstimate.Store(&offsetEstimate{rtt: time.Millisecond})
	if w := a.resendWait(salvagedBackoffMax); w != a.cfg.AckTimeout {
		t.Errorf("measured, after the longest wait, %v; want the AckTimeout %v", w, a.cfg.AckTimeout)
	}
}
