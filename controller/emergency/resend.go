package emergency

import (
	"context"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Run resends alerts to nodes that have not acknowledged them (the
// command-side equivalent of a siren repeating its status until it is
// acknowledged) until ctx ends: every ResendEvery it looks at each live
// emergency, and sends the alert again on the cmd topic of every online
// node that has not reported it received AckBound after the last send,
// at most MaxResends times per node, never after the alert expired or was
// cancelled. A node that comes back online before the expiry gets it then.
func (s *Service) Run(ctx context.Context) error {
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
		id    string
		cmd   protocol.Command
		nodes []string
		ttl   time.Duration
	}
	var work []due
	s.mu.Lock()
	for id, t := range s.live {
		if now.After(t.em.Expires.Add(trackFor)) {
			delete(s.live, id)
			continue
		}
		if t.em.State != loaxa.EmergencyActive || !now.Before(t.em.Expires) {
			continue
		}
		byArea := map[string][]string{}
		for node, area := range t.nodeArea {
			if _, ok := t.received[node]; ok || t.done[node] || t.resends[node] >= s.MaxResends {
				continue
			}
			if sent, ok := t.sent[node]; ok && now.Sub(sent) < s.AckBound {
				continue
			}
			byArea[area] = append(byArea[area], node)
		}
		for area, nodes := range byArea {
			work = append(work, due{id: id, cmd: t.cmds[area], nodes: nodes, ttl: t.em.Expires.Sub(now)})
		}
	}
	s.mu.Unlock()
	for _, w := range work {
		ns, err := s.Nodes.FindNodes(ctx, loaxa.NodeFilter{IDs: w.nodes, State: loaxa.NodeOnline})
		if err != nil {
			s.Logger.Error("emergency: nodes to resend to", "emergency", w.id, "err", err)
			continue
		}
		for _, n := range ns {
			if err := s.Messenger.SendNodeCommand(ctx, n.ID, w.cmd, w.ttl); err != nil {
				s.Logger.Warn("emergency: resend failed", "emergency", w.id, "node", n.ID, "err", err)
				continue
			}
			s.mu.Lock()
			if t := s.live[w.id]; t != nil {
				t.sent[n.ID] = now
				t.resends[n.ID]++
				s.Logger.Info("emergency: resent to a node that has not acknowledged", "emergency", w.id, "node", n.ID,
					"resend", t.resends[n.ID], "drill", t.em.Drill)
			}
			s.mu.Unlock()
		}
	}
}
