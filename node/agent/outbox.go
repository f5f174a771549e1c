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
	// hold waits for the first held report (spread.go), on the corrected
	// clock, which the reports' times are on.
	hold := a.clock.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
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
		var heldFor time.Duration
		switch {
		case err != nil || !a.link.Connected():
		case sent < out.Last && sent-out.Acked < sendAhead:
			next, until, err := a.sendBatch(ctx, topic, sent)
			if err != nil {
				a.log.Debug("agent: events not sent", "after", sent, "err", err)
				wait = time.Second // the link is flaky; a connect signal comes sooner if it dropped
				break
			}
			if next == sent && !until.IsZero() {
				// The next event is a held report: wait for its time, or
				// for the acknowledgement of what was sent before it.
				heldFor = max(until.Sub(a.clock.Now()), time.Millisecond)
				if sent > out.Acked {
					if wait = time.Until(ackBy); wait <= 0 {
						a.log.Info("agent: events not acknowledged in time, sending again", "from", out.Acked+1, "to", sent)
						sent = out.Acked
						ackBy = time.Time{}
						continue
					}
				}
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
		var tc, hc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		if heldFor > 0 {
			hold.Reset(heldFor)
			hc = hold.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.outboxWake:
		case <-a.reconnected:
			sent = 0 // everything unacknowledged again: the last connection may have lost it
			ackBy = time.Time{}
		case <-tc:
		case <-hc:
		}
		timer.Stop()
		hold.Stop()
	}
}

// sendBatch publishes the events after seq after and returns the last
// sequence sent. If the first of them is a held report (spread.go) not yet
// due, nor any report of another alert among them, it sends nothing and
// returns when the first of those may be sent. A batch
// that goes out takes the held reports after its first event along: they
// have happened, and one message for the received and started events of
// an alert costs the node, the broker and the controller less than two.
// The load stays spread, since when the batch goes is still the node's
// own random delay after its first event.
func (a *Agent) sendBatch(ctx context.Context, topic string, after uint64) (uint64, time.Time, error) {
	events, err := a.store.Events(after, BatchSize)
	if err != nil || len(events) == 0 {
		return after, time.Time{}, err
	}
	if t := a.heldUntil(events); t.After(a.clock.Now()) {
		return after, t, nil
	}
	out, err := a.store.Outbox()
	if err != nil {
		return after, time.Time{}, err
	}
	raw, err := protocol.Encode(protocol.TypeEvents, a.cred.Node, controllerAudience, events[0].Seq, a.clock.Now(), protocol.EventBatch{Epoch: a.epoch, Events: events, Acked: out.Acked})
	if err != nil {
		return after, time.Time{}, err
	}
	if err := a.link.Publish(ctx, topic, false, raw); err != nil {
		return after, time.Time{}, err
	}
	return events[len(events)-1].Seq, time.Time{}, nil
}
