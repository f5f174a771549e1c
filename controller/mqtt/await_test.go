package mqtt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// slowLink routes a publish within the call, as the embedded broker does,
// taking wait to do it.
type slowLink struct {
	wait time.Duration
	err  error
}

func (l slowLink) open([]string, func(string, []byte)) error { return nil }
func (l slowLink) publish(string, byte, bool, []byte) delivery {
	time.Sleep(l.wait) // the fan-out, in the caller's goroutine
	return done{l.err}
}
func (l slowLink) connected() bool { return true }
func (l slowLink) close()          {}
func (l slowLink) String() string  { return "slow" }

// TestPublishRoutedLateIsNotReportedRefused: an in-process publish whose
// fan-out took longer than PublishTimeout has reached every subscriber
// when it returns; reporting it as not accepted (which the API answers
// with 503) would have an officer send an alert twice. One whose broker
// refused it is still an error.
func TestPublishRoutedLateIsNotReportedRefused(t *testing.T) {
	c := &Client{PublishTimeout: time.Millisecond, link: slowLink{wait: 5 * time.Millisecond}}
	for i := range 20 {
		if err := c.publishRaw(context.Background(), "loa/v1/area/31/cmd", false, []byte("alert")); err != nil {
			t.Fatalf("publish %d, routed in 5 ms with a 1 ms timeout: %v", i, err)
		}
	}
	refused := errors.New("no")
	c.link = slowLink{wait: 5 * time.Millisecond, err: refused}
	if err := c.publishRaw(context.Background(), "loa/v1/area/31/cmd", false, []byte("alert")); !errors.Is(err, refused) {
		t.Fatalf("a refused publish returned %v", err)
	}

	// A delivery still under way when the time is up is a timeout.
	pending := pendingDelivery(make(chan struct{}))
	timer := time.NewTimer(time.Millisecond)
	defer timer.Stop()
	if err := c.await(context.Background(), "t", pending, timer, time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not accept it within") {
		t.Fatalf("a delivery never done returned %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	timer.Reset(time.Hour)
	if err := c.await(ctx, "t", pending, timer, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
}

type pendingDelivery chan struct{}

func (p pendingDelivery) Done() <-chan struct{} { return p }
func (p pendingDelivery) Error() error          { return nil }
