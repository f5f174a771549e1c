package emergency

import (
	"context"
	"fmt"
	"slices"

	"loaxa.vn/controller/loaxa"
)

// NodeMoved follows node, just moved to area to (PATCH /nodes/{id}), in
// every alert on air for to or an area above it that it was not targeted
// by: the next resend pass gives it its delivery and sends it the alert,
// as to a board put up during the alert (join). Without it a cluster
// moved to a commune under a typhoon warning stayed silent until the
// warning ended: the alert went to the commune's topic before the
// cluster could hear it, and the resends follow the targeted nodes only.
//
// An alert the node was targeted by before the move stays its own until
// it ends: it keeps playing it, is resent it while it has not
// acknowledged it, and is counted for it under the area it was sent to.
// The node no longer hears its old area's topics, so it hears no new
// alert of its old area.
func (s *Service) NodeMoved(ctx context.Context, node, to string) error {
	chain, err := s.Areas.AreaChain(ctx, to)
	if err != nil {
		return fmt.Errorf("emergency: node %s moved to %s: %w", node, to, err)
	}
	now := s.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.live {
		if _, ok := t.nodeArea[node]; ok || t.em.State != loaxa.EmergencyActive || !now.Before(t.em.Expires) {
			continue
		}
		i := slices.IndexFunc(t.em.Areas, func(a loaxa.EmergencyArea) bool { return slices.Contains(chain, a.Area) })
		if i < 0 {
			continue
		}
		area := t.em.Areas[i].Area
		t.nodeArea[node] = area
		if t.awaiting == nil {
			t.awaiting = map[string]bool{}
		}
		if t.waiting == nil {
			t.waiting = map[string]bool{}
		}
		if t.movedIn == nil {
			t.movedIn = map[string]bool{}
		}
		t.awaiting[node] = true // given its delivery with its first send (join)
		t.movedIn[node] = true
		t.waiting[node] = true
		s.Logger.Warn("emergency: a cluster moved into an area under an alert on air; sending it the alert",
			"emergency", id, "drill", t.em.Drill, "node", node, "area", area)
	}
	return nil
}
