package emergency

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Run resends alerts to nodes that have not acknowledged them (the
// command-side equivalent of a siren repeating its status until it is
// acknowledged) until ctx ends: every ResendEvery it looks at each live
// emergency, and sends the alert again on the cmd topic of every online
// node that has not reported it received AckBound (or twice its area's
// lead, if longer) plus the area's report window after the last send,
// at most MaxResends times per node, never after the alert expired or was
// cancelled. A node that comes back online before the expiry gets it then.
// At its expiry an active emergency is stored expired and its outcome
// logged, one cut off by a restart (not followed) too.
// After a cancel, the cancel is resent the same way to online nodes that
// had the alert and have not reported it over (a final event) AckBound
// plus their area's report window after the last send.
//
// Resends are paced so that they do not slow down what they make up for:
// no node of an area is resent to while the area's receipts are still
// coming in (one less than ResendQuiet ago), since the publish is still
// reaching it, and one pass sends at most ResendBatch, the nodes sent to
// longest ago first; the rest wait for the next pass.
//
// Alongside, it probes the areas' fan-out every Probing.Every (probe.go).
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.runProbes(ctx) })
	timer := s.Clock.NewTimer(s.ResendEvery)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C():
		}
		s.resend(ctx)
		timer.Reset(s.ResendEvery)
	}
}

// resend makes one pass over the live emergencies.
func (s *Service) resend(ctx context.Context) {
	now := s.Clock.Now()
	type due struct {
		id     string
		cmd    protocol.Command
		nodes  []string
		ttl    time.Duration
		cancel bool
		drill  bool
		// em is the emergency (a copy), for the deliveries of joins: the
		// nodes among nodes that waited for their code when it was sent.
		em    loaxa.Emergency
		joins []string
	}
	// A candidate node of work[w], last sent to at sent; joins: it waited
	// for its code when the alert was sent.
	type candidate struct {
		w     int
		node  string
		sent  time.Time
		joins bool
	}
	var work []due
	var cands []candidate
	var expired []loaxa.Emergency
	s.mu.Lock()
	for id, em := range s.cutOffs {
		if !now.Before(em.Expires) {
			delete(s.cutOffs, id)
			expired = append(expired, em)
		}
	}
	for id, t := range s.live {
		if now.After(t.em.Expires.Add(trackFor)) {
			delete(s.live, id)
			continue
		}
		if !now.Before(t.em.Expires) {
			if t.em.State == loaxa.EmergencyActive && !t.closed {
				t.closed = true
				expired = append(expired, t.em)
			}
			continue
		}
		if t.em.State == loaxa.EmergencyCancelled {
			// The cancel follows nodes that had the alert and have not
			// reported it over, like the alert itself.
			// A node's final event may be waiting out its area's report
			// window.
			window := map[string]time.Duration{}
			for _, a := range t.em.Areas {
				window[a.Area] = time.Duration(a.ReportWindowMS) * time.Millisecond
			}
			w := len(work)
			for node := range t.received {
				sent, ok := t.cancelSent[node]
				if !ok {
					sent = t.cancelled
				}
				bound := s.AckBound + window[t.nodeArea[node]]
				if !t.done[node] && t.cancelResends[node] < s.MaxResends && now.Sub(sent) >= bound {
					cands = append(cands, candidate{w, node, sent, false})
				}
			}
			if len(cands) > 0 && cands[len(cands)-1].w == w {
				work = append(work, due{id: id, cmd: protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: t.em.Occurrence},
					ttl: t.em.Expires.Sub(now), cancel: true, drill: t.em.Drill})
			}
			continue
		}
		if t.em.State != loaxa.EmergencyActive || t.publishing {
			continue
		}
		// A big area's own fan-out takes a good part of its lead: resending
		// before twice that, or while its receipts still come in, would
		// only add to the load that delays it.
		bound := map[string]time.Duration{}
		areaWork := map[string]int{}
		for _, a := range t.em.Areas {
			// Its nodes hold their receipt up to the report window after
			// the start (the issue plus the lead): the bound leaves at
			// least the lead for it to arrive.
			bound[a.Area] = max(s.AckBound, 2*time.Duration(a.LeadMS)*time.Millisecond) +
				time.Duration(a.ReportWindowMS)*time.Millisecond
			if last, ok := t.lastReceipt[a.Area]; ok && now.Sub(last) < s.ResendQuiet {
				bound[a.Area] = -1 // receiving: nothing this pass
			}
		}
		for node := range t.waiting {
			area := t.nodeArea[node]
			if t.done[node] || t.resends[node] >= s.MaxResends || bound[area] < 0 {
				continue
			}
			sent, ok := t.sent[node]
			if ok && now.Sub(sent) < bound[area] {
				continue
			}
			w, ok := areaWork[area]
			if !ok {
				w = len(work)
				areaWork[area] = w
				work = append(work, due{id: id, cmd: t.cmds[area], ttl: t.em.Expires.Sub(now), drill: t.em.Drill, em: t.em})
			}
			cands = append(cands, candidate{w, node, sent, t.awaiting[node]})
		}
	}
	s.mu.Unlock()
	for _, em := range expired {
		s.close(ctx, &em, nil, "emergency: expired")
	}
	// The batch: online nodes, those sent to longest ago first (never
	// sent: first of all). Offline nodes are passed over, not counted,
	// or a few hundred of them would hold every online one back.
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := a.sent.Compare(b.sent); c != 0 {
			return c
		}
		return strings.Compare(a.node, b.node)
	})
	limit := s.ResendBatch
	if limit <= 0 {
		limit = len(cands)
	}
	chunk := max(2*limit, 64)
	picked := 0
	for i := 0; i < len(cands) && picked < limit; i += chunk {
		part := cands[i:min(i+chunk, len(cands))]
		ids := make([]string, len(part))
		for j, c := range part {
			ids[j] = c.node
		}
		presence, err := s.Nodes.NodePresence(ctx, ids)
		if err != nil {
			s.Logger.Error("emergency: nodes to resend to", "err", err)
			break
		}
		for _, c := range part {
			if presence[c.node].Online && picked < limit {
				work[c.w].nodes = append(work[c.w].nodes, c.node)
				if c.joins {
					work[c.w].joins = append(work[c.w].joins, c.node)
				}
				picked++
			}
		}
	}
	if picked == limit && limit < len(cands) {
		s.Logger.Debug("emergency: resends held for the next pass", "due", len(cands), "batch", limit)
	}
	// A send the broker does not take says it takes none now (it is away,
	// or too busy to acknowledge): the rest of the pass waits for the next
	// one, rather than each send waiting out its own timeout in turn, which
	// held every emergency's resends for minutes while a broker was down.
	refused := false
	for _, w := range work {
		if len(w.nodes) == 0 || refused {
			continue
		}
		if len(w.joins) > 0 {
			s.join(ctx, &w.em, w.joins, now)
		}
		var resent []string
		occurrence := w.cmd.Occurrence
		if w.cmd.Alert != nil {
			occurrence = w.cmd.Alert.Occurrence.ID
		}
		for i, id := range w.nodes {
			if err := s.Messenger.SendNodeCommand(ctx, id, w.cmd, w.ttl); err != nil {
				s.Logger.Warn("emergency: resend failed; the rest of this pass waits for the next", "emergency", w.id, "drill", w.drill, "node", id,
					"left", len(w.nodes)-i-1, "err", err)
				refused = true
				break
			}
			s.mu.Lock()
			if t := s.live[w.id]; t != nil && w.cancel {
				t.cancelSent[id] = now
				t.cancelResends[id]++
				resent = append(resent, id)
				s.Logger.Info("emergency: cancel resent to a node that has not reported the alert over", "emergency", w.id, "node", id,
					"resend", t.cancelResends[id], "drill", t.em.Drill)
			} else if t != nil {
				if t.resends[id] == 0 {
					t.resentAt[id] = now
				}
				t.sent[id] = now
				t.resends[id]++
				resent = append(resent, id)
				s.Logger.Info("emergency: resent to a node that has not acknowledged", "emergency", w.id, "node", id,
					"resend", t.resends[id], "drill", t.em.Drill)
			}
			s.mu.Unlock()
		}
		// Kept in the deliveries, so that a restarted controller goes on
		// counting (alerts and cancels) and the report shows them.
		if len(resent) > 0 {
			note, what := s.Deliveries.NoteResends, "emergency: resends not stored"
			if w.cancel {
				note, what = s.Deliveries.NoteCancelResends, "emergency: cancel resends not stored"
			}
			if err := note(ctx, occurrence, resent, now); err != nil {
				s.Logger.Error(what, "emergency", w.id, "drill", w.drill, "nodes", len(resent), "err", err)
			}
		}
	}
}

// join gives nodes, which waited for their enrolment code when em was
// sent and are online now (they redeemed it: a board put up during the
// typhoon), their delivery of em's alert before it is sent to them: from
// now on they are targeted and counted like the others. A delivery not
// stored is logged; the alert goes all the same, and the node's report
// makes one.
func (s *Service) join(ctx context.Context, em *loaxa.Emergency, nodes []string, now time.Time) {
	s.mu.Lock()
	t := s.live[em.ID]
	var ds []*loaxa.Delivery
	moved := map[string]bool{}
	for _, node := range nodes {
		if t == nil || !t.awaiting[node] {
			continue
		}
		delete(t.awaiting, node)
		if t.movedIn[node] {
			moved[node] = true
			delete(t.movedIn, node)
		}
		for _, a := range em.Areas {
			if a.Area == t.nodeArea[node] {
				ds = append(ds, plannedDelivery(em, node, a.Start, now))
			}
		}
	}
	s.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	err := s.Deliveries.EnsureDeliveries(ctx, ds)
	for _, d := range ds {
		if moved[d.Node] {
			s.Logger.Warn("emergency: a cluster moved into the alert's area after it was sent is online; sending it the alert",
				"emergency", em.ID, "drill", em.Drill, "node", d.Node)
			continue
		}
		s.Logger.Warn("emergency: a cluster that waited for its enrolment code when the alert was sent is up; sending it the alert",
			"emergency", em.ID, "drill", em.Drill, "node", d.Node)
	}
	if err != nil {
		s.Logger.Error("emergency: deliveries of clusters enrolled during the alert not stored; their reports make them", "emergency", em.ID,
			"drill", em.Drill, "nodes", len(ds), "err", err)
	}
}
