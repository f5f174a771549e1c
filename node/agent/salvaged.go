package agent

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// sendSalvaged sends the events the store keeps of earlier outboxes
// (Store.Salvaged: read back from a damaged store, or copied from a card
// that takes no writes), one batch at a time under their old epoch and
// numbers, each again if its acknowledgement has not come within
// AckTimeout, and returns once none is left. The controller stores events
// by (node, epoch, seq), so those it already had are dropped as resends;
// it acknowledges a salvaged batch at once.
//
// They are rare and old, so they go one batch at a time, beside the
// outbox's own sender and never holding it up.
func (a *Agent) sendSalvaged(ctx context.Context) {
	topic := a.topics.Node(a.cred.Node, protocol.ChanEvent)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	logged := false
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
			wait = a.cfg.AckTimeout
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
