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
//
// Until the clock is measured, acknowledgements that look expired on it
// are held (message.go), and those that look issued in its future are
// refused, so a board that never measures (the controller too old to sign
// its time, a link that drops the answer) would send its outbox again
// every AckTimeout for as long as it runs: on 4G, traffic without end.
// What a held acknowledgement covers counts as acknowledged here (the
// controller signed it; holdAck): it is not sent again, nor does it fill
// the window of events sent ahead. And while the clock is not measured,
// each resend that brought no acknowledgement doubles the wait for the
// next, up to salvagedBackoffMax, as salvaged batches do. An
// acknowledgement brings it back to AckTimeout, and once measured a
// resend waits AckTimeout again. The events stay in the outbox until an
// acknowledgement is judged and stored, and a reconnect still sends at
// once all that none covers.
//
// A batch the controller dropped or refused leaves a gap, and it skips the
// batches sent after it; it says so at once (protocol.Command.Gap), and the
// sender goes back to the first unacknowledged event then, not after
// AckTimeout. Only once per gap: the controller skips the other batches
// sent before the sender went back too, and each says so, but their events
// are on their way again already. If the events sent again are dropped
// too, AckTimeout brings them back, as before: a controller dropping them
// is busy, and waiting spares it.
const (
	// BatchSize is the most events in one EventBatch.
	BatchSize = 100
	// sendAhead is how many events may be sent and not yet acknowledged.
	sendAhead = 5 * BatchSize
)

func (a *Agent) sendEvents(ctx context.Context) {
	topic := a.topics.Node(a.cred.Node, protocol.ChanEvent)
	base := a.clock.Base // the acknowledgements' waits: a correction does not move them
	var (
		sent      uint64    // highest sequence sent on this connection
		rewound   uint64    // highest sequence sent before the sender last went back
		lastAcked uint64    // acknowledged end when last seen
		ackBy     time.Time // when the acknowledgement of sent events is overdue (base clock)
		// ackWait is how long sent events wait for their acknowledgement:
		// AckTimeout, longer after resends while the clock is not measured.
		ackWait = a.cfg.AckTimeout
	)
	// resend goes back to the first unacknowledged event.
	resend := func(acked uint64) {
		a.log.Info("agent: events not acknowledged in time, sending again", "from", acked+1, "to", sent, "next_wait", ackWait)
		rewound = max(rewound, sent)
		sent = acked
		ackBy = time.Time{}
	}
	timer := base.NewTimer(time.Hour)
	timer.Stop()
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
		// What the controller acknowledged: stored, or held until the
		// clock is measured (holdAck). Only the store's leaves the outbox.
		acked := max(out.Acked, min(a.heldAcked.Load(), out.Last))
		if acked != lastAcked {
			lastAcked = acked
			ackWait = a.cfg.AckTimeout
			ackBy = base.Now().Add(ackWait)
		}
		sent = max(sent, acked)
		if gap := a.gap.Swap(0); gap > rewound && sent > acked {
			// The controller took a batch sent after a gap, and says so
			// at once: send from the gap again now.
			a.log.Info("agent: the controller has a gap in the events sent, sending again", "from", acked+1, "to", sent, "gap_before", gap)
			rewound = sent
			sent, ackBy = acked, time.Time{}
		}
		if sent == acked {
			ackBy = time.Time{}
		}
		var wait time.Duration // 0: wait for a signal only
		var heldFor time.Duration
		switch {
		case err != nil || !a.link.Connected():
		case sent < out.Last && sent-acked < sendAhead:
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
				if sent > acked {
					if wait = ackBy.Sub(base.Now()); wait <= 0 {
						ackWait = a.resendWait(ackWait)
						resend(acked)
						continue
					}
				}
				break
			}
			if ackBy.IsZero() {
				ackBy = base.Now().Add(ackWait)
			}
			sent = next
			continue
		case sent > acked:
			wait = ackBy.Sub(base.Now())
			if wait <= 0 {
				ackWait = a.resendWait(ackWait)
				resend(acked)
				continue
			}
		}
		var tc, hc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C()
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
			rewound = max(rewound, sent)
			sent = 0 // everything unacknowledged again: the last connection may have lost it
			ackBy = time.Time{}
		case <-tc:
		case <-hc:
		}
		timer.Stop()
		hold.Stop()
	}
}

// resendWait is how long events sent again wait for their
// acknowledgement, last being the wait that just ran out: AckTimeout once
// the clock is measured, and before that twice the last, up to
// salvagedBackoffMax (salvagedWait).
func (a *Agent) resendWait(last time.Duration) time.Duration {
	if a.clockEstimate.Load() != nil {
		return a.cfg.AckTimeout
	}
	return salvagedWait(last, true, a.cfg.AckTimeout)
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
