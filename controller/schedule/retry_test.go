package schedule_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"loaxa.vn/protocol"
)

// rationedBroker accepts the next accept publishes and refuses the rest,
// as a broker coming back under load might.
type rationedBroker struct {
	*messenger
	mu     sync.Mutex
	accept int
	tried  []string
}

func (b *rationedBroker) PublishDesired(ctx context.Context, d *protocol.DesiredState) error {
	b.mu.Lock()
	b.tried = append(b.tried, d.Node)
	ok := b.accept > 0
	b.accept--
	b.mu.Unlock()
	if !ok {
		return errors.New("broker did not accept it within 10s")
	}
	return b.messenger.PublishDesired(ctx, d)
}

// runUndelivered starts r's scheduler with the broker refusing every
// publish and returns once its first pass put all three nodes on the
// retry list; the scheduler stops at the end of the test.
func runUndelivered(t *testing.T, r *rig) {
	t.Helper()
	r.msg.setFail(errors.New("broker did not accept it within 10s"))
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "first pass", func() bool { n, _ := r.s.Undelivered(); return n == 3 && r.clock.Timers() == 1 })
}

// TestRetryRoundRecordsPublishesInOneCommit: after a broker outage each
// retry the broker accepted was recorded as published (SaveDesired) with
// a commit and fsync of its own: thousands of nodes waiting, thousands of
// commits in a row. A round now records the publishes it got accepted
// together (SaveDesiredBatch): one commit for the three nodes here.
func TestRetryRoundRecordsPublishesInOneCommit(t *testing.T) {
	r := newRig(t)
	w := countWrites(r)
	runUndelivered(t, r)
	w.reset()
	r.msg.setFail(nil)
	r.clock.Advance(time.Second)
	retried := t0.Add(time.Second)
	waitFor(t, "every retry recorded as published", func() bool {
		for _, node := range []string{"tt-01", "tt-02", "tm-01"} {
			if !publishedHead(t, r, node).Published.Equal(retried) {
				return false
			}
		}
		return true
	})
	w.mu.Lock()
	saves, batches, records, other := w.saves, w.batches, w.records, w.ensures+w.drops
	w.mu.Unlock()
	if saves+batches+records+other != 1 {
		t.Errorf("recording 3 accepted retries took %d SaveDesired, %d SaveDesiredBatch, %d RecordPublished and %d other writes; want one write",
			saves, batches, records, other)
	}
}

// TestRetryRoundStoppedByARefusalRecordsWhatWasAccepted: a round still
// stops at the broker's first refusal (the rest wait for the hold), and
// the retries accepted before it are recorded as published, not lost
// with the round.
func TestRetryRoundStoppedByARefusalRecordsWhatWasAccepted(t *testing.T) {
	r := newRig(t)
	b := &rationedBroker{messenger: r.msg, accept: 1}
	runUndelivered(t, r)
	// Run reads it after the clock wakes it: Advance orders the two.
	r.s.Messenger = b
	r.msg.setFail(nil)
	r.clock.Advance(time.Second)
	retried := t0.Add(time.Second)
	// Oldest failure first, then by node: tm-01 is accepted, tt-01
	// refused, tt-02 not tried.
	waitFor(t, "tm-01 recorded as published", func() bool { return publishedHead(t, r, "tm-01").Published.Equal(retried) })
	waitFor(t, "the round over", func() bool { n, _ := r.s.Undelivered(); return n == 2 && r.clock.Timers() == 1 })
	b.mu.Lock()
	tried := b.tried
	b.mu.Unlock()
	if len(tried) != 2 || tried[0] != "tm-01" || tried[1] != "tt-01" {
		t.Errorf("the round tried %v, want tm-01 then tt-01 (and stop at its refusal)", tried)
	}
	for _, node := range []string{"tt-01", "tt-02"} {
		if p := publishedHead(t, r, node).Published; !p.IsZero() {
			t.Errorf("%s: recorded as published at %v, though the broker did not take it", node, p)
		}
	}
}
