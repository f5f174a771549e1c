package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// heldLink is a broker that takes a publish only when the test (or its
// delay) says so, like one across a slow WAN, and counts the publishes in
// flight.
type heldLink struct {
	delay time.Duration // 0: held until release

	mu        sync.Mutex
	waiting   []*heldDelivery
	published int
	inFlight  int
	most      int
}

var _ link = (*heldLink)(nil)

type heldDelivery struct {
	l    *heldLink
	once sync.Once
	done chan struct{}
}

func (d *heldDelivery) Done() <-chan struct{} { return d.done }
func (d *heldDelivery) Error() error          { return nil }

func (d *heldDelivery) take() {
	d.once.Do(func() {
		d.l.mu.Lock()
		d.l.inFlight--
		d.l.mu.Unlock()
		close(d.done)
	})
}

func (l *heldLink) open([]string, func(string, []byte)) error { return nil }
func (l *heldLink) connected() bool                           { return true }
func (l *heldLink) close()                                    {}
func (l *heldLink) String() string                            { return "held" }

func (l *heldLink) publish(string, byte, bool, []byte) delivery {
	d := &heldDelivery{l: l, done: make(chan struct{})}
	l.mu.Lock()
	l.published++
	l.inFlight++
	l.most = max(l.most, l.inFlight)
	l.waiting = append(l.waiting, d)
	l.mu.Unlock()
	if l.delay > 0 {
		time.AfterFunc(l.delay, d.take)
	}
	return d
}

// release lets the broker take every publish under way.
func (l *heldLink) release() {
	l.mu.Lock()
	waiting := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	for _, d := range waiting {
		d.take()
	}
}

func (l *heldLink) counts() (published, inFlight, most int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.published, l.inFlight, l.most
}

// ackClient returns a client on l holding an acknowledgement for each of
// nodes.
func ackClient(l *heldLink, nodes int) *Client {
	c := NewClient()
	c.Logger = slog.New(slog.DiscardHandler)
	c.Signer = protocol.NewSigner("controller", prototest.Key(), 0, nil)
	c.PublishTimeout = time.Hour
	c.link = l
	for i := range nodes {
		c.acks.add(fmt.Sprintf("n%05d", i), "e1", 1, time.Time{}, true)
	}
	return c
}

// TestAcksDueGoOutTogether: the held acknowledgements fall due together
// (an emergency round: every node reports within seconds), and were sent
// one at a time, each waiting for the broker's PUBACK: over a provincial
// WAN (100 ms), 5,000 nodes' took over eight minutes, far past the 30 s
// after which every node sends its events again. They must be published
// without waiting for each other, at most ackInflight at once.
func TestAcksDueGoOutTogether(t *testing.T) {
	const nodes = ackInflight + 10
	l := &heldLink{}
	c := ackClient(l, nodes)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.sendDue(context.Background(), time.Time{})
	}()
	// finish lets the broker take everything until sendDue returns.
	finish := func() {
		for {
			l.release()
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond): // releasing what comes in after
			}
		}
	}
	defer finish()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, inFlight, _ := l.counts(); inFlight == ackInflight {
			break
		}
		if time.Now().After(deadline) {
			published, inFlight, _ := l.counts()
			t.Fatalf("%d acknowledgements in flight while the broker holds them (%d published), want %d", inFlight, published, ackInflight)
		}
		time.Sleep(time.Millisecond) // polling the fake broker
	}
	finish()
	if published, _, most := l.counts(); published != nodes || most > ackInflight {
		t.Errorf("%d of %d acknowledgements published, at most %d at once (limit %d)", published, nodes, most, ackInflight)
	}
}

// BenchmarkSendDueSlowBroker measures sending 500 acknowledgements that
// fell due together to a broker that takes each publish 100 ms after it
// was sent (a Mosquitto across a provincial WAN).
func BenchmarkSendDueSlowBroker(b *testing.B) {
	const nodes = 500
	for b.Loop() {
		l := &heldLink{delay: 100 * time.Millisecond}
		c := ackClient(l, nodes)
		start := time.Now()
		c.sendDue(context.Background(), time.Time{})
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/round")
		b.ReportMetric(float64(nodes)/time.Since(start).Seconds(), "acks/s")
	}
}
