package agent

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// salvagedBackoffMax bounds the wait between sends of a salvaged batch
// that is not acknowledged: a controller older than the salvaged batch
// (protocol.EventBatch.Salvaged) stores it but may never acknowledge it,
// and a board on 4G should not send it every 30 s until the controller is
// upgraded.
const salvagedBackoffMax = 30 * time.Minute

// salvagedWait is how long to wait for the acknowledgement of a salvaged
// batch just sent: ackTimeout for a new batch, and for one sent again,
// twice the last wait, up to salvagedBackoffMax.
func salvagedWait(last time.Duration, again bool, ackTimeout time.Duration) time.Duration {
	if !again || last <= 0 {
		return ackTimeout
	}
	return min(2*last, max(salvagedBackoffMax, ackTimeout))
}

// sendSalvaged sends the events the store keeps of earlier outboxes
// (Store.Salvaged: read back from a damaged store, or copied from a card
// that takes no writes), one batch at a time under their old epoch and
// numbers, and returns once none is left. A batch whose acknowledgement
// has not come is sent again after AckTimeout, then twice as long each
// time up to salvagedBackoffMax, and at once after a reconnect. The
// controller stores events by (node, epoch, seq), so those it already had
// are dropped as resends; it acknowledges a salvaged batch at once.
//
// They are rare and old, so they go one batch at a time, beside the
// outbox's own sender and never holding it up.
func (a *Agent) sendSalvaged(ctx context.Context) {
	topic := a.topics.Node(a.cred.Node, protocol.ChanEvent)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	logged := false
	var sentEpoch string // the batch last sent: its epoch and first sequence
	var sentFrom uint64
	var backoff time.Duration
	for {
		var wait time.Duration // 0: wait for a signal only
		epoch, events, err := a.store.Salvaged(BatchSize)
		switch {
		case err != nil:
			a.log.Error("agent: read the events salvaged from an earlier store", "err", err)
			wait = a.cfg.AckTimeout
		case len(events) == 0:
			if logged {
				a.log.Info("agent: the events salvaged from an earlier store are all acknowledged")
			}
			return
		case !a.link.Connected():
		default:
			if !logged {
				a.log.Info("agent: sending the events salvaged from an earlier store", "epoch", epoch, "from", events[0].Seq)
				logged = true
			}
			raw, err := protocol.Encode(protocol.TypeEvents, a.cred.Node, controllerAudience, events[0].Seq, a.clock.Now(),
				protocol.EventBatch{Epoch: epoch, Events: events, Salvaged: true})
			if err == nil {
				err = a.link.Publish(ctx, topic, false, raw)
			}
			if err != nil {
				a.log.Debug("agent: salvaged events not sent", "epoch", epoch, "from", events[0].Seq, "err", err)
				wait = time.Second // the link is flaky; a connect signal comes sooner if it dropped
				break
			}
			again := epoch == sentEpoch && events[0].Seq == sentFrom // not acknowledged since
			sentEpoch, sentFrom = epoch, events[0].Seq
			backoff = salvagedWait(backoff, again, a.cfg.AckTimeout)
			wait = backoff
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-a.salvageWake:
		case <-tc:
		}
		timer.Stop()
	}
}
