package agent

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// Event sending: the outbox is sent in order, in batches, a few batches
// ahead of the acknowledgements; on every reconnect and whenever the
// acknowledgements stall for AckTimeout the sender goes back to the first
// unacknowledged event. The controller stores events idempotently by
// (node, epoch, seq), so a resend costs bandwidth, never a duplicate.
const (
	// BatchSize is the most events in one EventBatch.
	BatchSize = 100
	// sendAhead is how many events may be sent and not yet acknowledged.
	sendAhead = 5 * BatchSize
)

func (a *Agent) sendEvents(ctx context.Context) {
	topic := a.topics.Node(a.cred.Node, protocol.ChanEvent)
	var (
		sent      uint64    // highest sequence sent on this connection
		lastAcked uint64    // acknowledged end when last seen
		ackBy     time.Time // when the acknowledgement of sent events is overdue (real time)
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		out, err := a.store.Outbox()
		if err != nil {
			a.log.Error("agent: read outbox", "err", err)
		}
		if out.Acked != lastAcked {
			lastAcked = out.Acked
			ackBy = time.Now().Add(a.cfg.AckTimeout)
		}
		sent = max(sent, out.Acked)
		if sent == out.Acked {
			ackBy = time.Time{}
		}
		var wait time.Duration // 0: wait for a signal only
		switch {
		case err != nil || !a.link.Connected():
		case sent < out.Last && sent-out.Acked < sendAhead:
			next, err := a.sendBatch(ctx, topic, sent)
			if err != nil {
				a.log.Debug("agent: events not sent", "after", sent, "err", err)
				wait = time.Second // the link is flaky; a connect signal comes sooner if it dropped
				break
			}
			if ackBy.IsZero() {
				ackBy = time.Now().Add(a.cfg.AckTimeout)
			}
			sent = next
			continue
		case sent > out.Acked:
			wait = time.Until(ackBy)
			if wait <= 0 {
				a.log.Info("agent: events not acknowledged in time, sending again", "from", out.Acked+1, "to", sent)
				sent = out.Acked
				ackBy = time.Time{}
				continue
			}
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-a.outboxWake:
		case <-a.reconnected:
			sent = 0 // everything unacknowledged again: the last connection may have lost it
			ackBy = time.Time{}
		case <-tc:
		}
		timer.Stop()
	}
}

// sendBatch publishes the events after seq after and returns the last
// sequence sent.
func (a *Agent) sendBatch(ctx context.Context, topic string, after uint64) (uint64, error) {
	events, err := a.store.Events(after, BatchSize)
	if err != nil || len(events) == 0 {
		return after, err
	}
	raw, err := protocol.Encode(protocol.TypeEvents, a.cred.Node, controllerAudience, events[0].Seq, a.clock.Now(), protocol.EventBatch{Epoch: a.epoch, Events: events})
	if err != nil {
		return after, err
	}
	if err := a.link.Publish(ctx, topic, false, raw); err != nil {
		return after, err
	}
	return events[len(events)-1].Seq, nil
}
