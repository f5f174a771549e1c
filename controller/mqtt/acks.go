package mqtt

import (
	"context"
	"sync"
	"time"

	"loaxa.vn/protocol"
)

// DefaultAckDelay is how long the controller holds a node's event
// acknowledgement to cover the batches that follow. Each acknowledgement is
// a signed command: an Ed25519 signature here and a verification on the
// node (which no longer publishes a state for it: a change of its outbox
// count alone waits for its next state below a backlog). An
// emergency round sends each node three batches (received, started,
// completed) within a few seconds; at 10,000 nodes one acknowledgement per
// batch cost the controller about 3 CPU-seconds of signing a round
// (BENCHMARKS.md). Two seconds covers the received and started batches
// whenever the alert's lead is shorter, and stays far below the 30 s after
// which a node sends unacknowledged events again; the node sends its
// events ahead of the acknowledgements (node/agent/outbox.go), so holding
// one delays no report.
const DefaultAckDelay = 2 * time.Second

// pendingAck is an acknowledgement due to a node.
type pendingAck struct {
	epoch string
	seq   uint64
	due   time.Time
}

// ackQueue holds the acknowledgements not sent yet, one per node: the
// newest epoch's highest stored sequence.
type ackQueue struct {
	mu      sync.Mutex
	pending map[string]pendingAck
}

// add holds the acknowledgement of node's events up to seq of epoch until
// due. It reports whether it holds it, and whether one was pending already
// (which then covers them). A pending acknowledgement of another epoch is
// replaced when the batch stored events (fresh): the node keeps only its
// newest epoch's outbox and ignores acknowledgements of any other. A batch
// that stored nothing may be a late copy of one from an outbox the node
// has since replaced (an MQTT redelivery): it leaves the pending one, and
// add holds nothing, for the caller to send at once.
func (q *ackQueue) add(node, epoch string, seq uint64, due time.Time, fresh bool) (held, coalesced bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = map[string]pendingAck{}
	}
	p, ok := q.pending[node]
	switch {
	case ok && p.epoch == epoch:
		p.seq = max(p.seq, seq)
		q.pending[node] = p
		return true, true
	case ok && !fresh:
		return false, false
	}
	q.pending[node] = pendingAck{epoch: epoch, seq: seq, due: due}
	return true, false
}

// take removes and returns the acknowledgements due at now (all of them
// for a zero now), by node.
func (q *ackQueue) take(now time.Time) map[string]pendingAck {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due map[string]pendingAck
	for node, p := range q.pending {
		if now.IsZero() || !p.due.After(now) {
			if due == nil {
				due = map[string]pendingAck{}
			}
			due[node] = p
			delete(q.pending, node)
		}
	}
	return due
}

// acknowledge acknowledges node's events up to seq of epoch, of a batch
// that stored events (fresh) or none: at once without an AckDelay, else
// when the delay has passed since the first batch it covers, or at once
// if the queue does not hold it (ackQueue.add).
func (c *Client) acknowledge(ctx context.Context, node, epoch string, seq uint64, fresh bool) error {
	if c.AckDelay <= 0 {
		return c.sendAck(ctx, node, epoch, seq)
	}
	held, coalesced := c.acks.add(node, epoch, seq, c.ackNow().Add(c.AckDelay), fresh)
	if coalesced {
		c.metrics().acksCoalesced.Inc()
	}
	if !held {
		return c.sendAck(ctx, node, epoch, seq)
	}
	return nil
}

func (c *Client) sendAck(ctx context.Context, node, epoch string, seq uint64) error {
	return c.SendNodeCommand(ctx, node, protocol.Command{Name: protocol.CmdAck, Epoch: epoch, Seq: seq}, AckTTL)
}

// ackNow is the clock of the delay: real time, as the node's AckTimeout,
// not Client.Now (which tests of schedules stop or move by hours); tests
// of the delay replace it (export_test.go).
func (c *Client) ackNow() time.Time {
	if c.ackClock != nil {
		return c.ackClock()
	}
	return time.Now()
}

// ackTick is how often the acknowledgements due are looked for: a
// quarter of the delay, within [10 ms, 250 ms].
func (c *Client) ackTick() time.Duration {
	return min(max(c.AckDelay/4, 10*time.Millisecond), 250*time.Millisecond)
}

// sendAcks sends the acknowledgements as they fall due, until ctx is done.
func (c *Client) sendAcks(ctx context.Context) {
	defer c.wg.Done()
	tick := time.NewTicker(c.ackTick())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.sendDue(ctx, c.ackNow())
		}
	}
}

// ackInflight is the most acknowledgements sendDue has published and the
// broker not yet taken. They fall due together (an emergency round: every
// node reports within seconds), and sent one at a time, each waiting for
// the broker's PUBACK, a broker across a provincial WAN (100 ms) took 10 a
// second: 5,000 nodes' in over eight minutes, far past the 30 s after which
// every node sends its events again (BENCHMARKS.md). 64 at once take 640 a
// second there, and bound what paho holds for a broker that stopped
// answering.
const ackInflight = 64

// sendDue sends the acknowledgements due at now (all for a zero now), up
// to ackInflight at once, and returns when the broker took them or they
// failed. One that fails is not retried: the node sends the events again
// after its AckTimeout, and they are acknowledged then.
func (c *Client) sendDue(ctx context.Context, now time.Time) {
	due := c.acks.take(now)
	if len(due) == 0 {
		return
	}
	slots := make(chan struct{}, ackInflight)
	var wg sync.WaitGroup
	for node, p := range due {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := c.sendAck(ctx, node, p.epoch, p.seq); err != nil {
				c.Logger.Warn("mqtt: event acknowledgement not sent", "node", node, "epoch", p.epoch, "seq", p.seq, "err", err)
			}
		})
	}
	wg.Wait()
}

// flushAcks sends every pending acknowledgement now, waiting at most
// PublishTimeout for all of them: on Close, while the broker connection
// is still up, so that a restart does not make every node send its
// newest events again.
func (c *Client) flushAcks() {
	ctx, cancel := context.WithTimeout(context.Background(), c.PublishTimeout)
	defer cancel()
	c.sendDue(ctx, time.Time{})
}
