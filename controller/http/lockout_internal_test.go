package http

import (
	"testing"
	"time"
)

// TestWaitTextSaysOne: a sign-in locked out for under a second more was
// told to "wait 1 seconds"; one second and one minute take the singular.
func TestWaitTextSaysOne(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond:  "1 second",
		time.Second:             "1 second",
		1500 * time.Millisecond: "2 seconds",
		59 * time.Second:        "59 seconds",
		time.Minute:             "1 minute",
		90 * time.Second:        "2 minutes",
	} {
		if got := waitText(d); got != want {
			t.Errorf("waitText(%v) = %q, want %q", d, got, want)
		}
	}
}
