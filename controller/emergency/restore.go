package emergency

import (
	"context"
	"fmt"
	"slices"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// A controller restarted while an emergency runs carries on with it. What
// the tracking needs survives in the store: the emergency itself (its
// areas, their start instants, its expiry, whether it was cancelled), and
// per node its delivery, which node events move and which also keep when
// the node had the alert (ReceivedAt) and how often it was resent
// (Resends, ResentAt), and how often the cancel was (CancelResends,
// CancelResentAt). Open rebuilds the tracking of every emergency that has
// not expired from these, so that acknowledgements are followed and
// unacknowledged online nodes are resent to, with what is left of their
// MaxResends, until the expiry; a cancelled one has its cancel followed
// again, with what is left of each node's MaxResends of the cancel. An
// active emergency that expired while the controller was down is closed:
// stored as expired, its outcome logged. One the controller stopped
// sending before it was recorded as sent is not sent again: closed if
// nothing says it went out, otherwise marked cut off and left active until
// its expiry, so that an officer can cancel it (closeUnsent), and closed
// at its expiry by the resend passes as a tracked one is.
//
// The fan-out an area's next lead is measured on (lead.go) is rebuilt too,
// from the newest emergency to the area whose deliveries hold receipts:
// each node's receipt minus the issue, for the nodes that had the area
// publish before any resend (a delivery keeps the count of resends and the
// last one's time, so a node resent to once counts if its receipt came
// before that resend, one resent to more often does not). So a restarted
// controller does not fall back to the estimate for an area it has
// measured.

// fanoutRestoreLimit bounds how many past emergencies Open reads for the
// areas' fan-out.
const fanoutRestoreLimit = 50

// restore takes up the emergencies a previous run left unfinished.
func (s *Service) restore(ctx context.Context) error {
	ems, err := s.Store.FindEmergencies(ctx, 0)
	if err != nil {
		return fmt.Errorf("emergency: restore: %w", err)
	}
	now := s.Clock.Now()
	for i, em := range ems { // newest first
		finished := em.State != loaxa.EmergencyActive && em.State != loaxa.EmergencyCancelled
		if finished || !now.Before(em.Expires) {
			if i < fanoutRestoreLimit {
				if err := s.restoreFanout(ctx, em); err != nil {
					return fmt.Errorf("emergency: fan-out of %s: %w", em.ID, err)
				}
			}
		}
		if finished {
			continue
		}
		switch {
		case em.CutOff && em.State == loaxa.EmergencyActive && now.Before(em.Expires):
			// Found cut off by an earlier start: left as it is until its
			// expiry.
			s.noteCutOff(em)
		case em.Occurrence == "":
			// The controller stopped while sending it, before it was
			// recorded as sent.
			s.closeUnsent(ctx, em)
		case !now.Before(em.Expires):
			if em.State == loaxa.EmergencyActive {
				s.close(ctx, em, nil, "emergency: expired while the controller was stopped")
			}
		default:
			t, err := s.track(ctx, em)
			if err != nil {
				return fmt.Errorf("emergency: restore %s: %w", em.ID, err)
			}
			s.mu.Lock()
			s.live[em.ID] = t
			for _, a := range em.Areas {
				if s.fanout[a.Area] == nil {
					s.fanout[a.Area] = t
				}
			}
			s.mu.Unlock()
			pending := len(t.waiting)
			s.Logger.Warn("emergency: taken up again after a restart", "emergency", em.ID, "state", em.State, "drill", em.Drill,
				"nodes", len(t.nodeArea), "not_acknowledged", pending, "expires", em.Expires)
		}
	}
	return nil
}

// takeUp tracks em, which the controller stopped sending and an officer
// cancelled since: the cancel then follows the clusters that had it. The
// cancel went to its areas all the same if this fails.
func (s *Service) takeUp(ctx context.Context, em *loaxa.Emergency) {
	t, err := s.track(ctx, em)
	if err != nil {
		s.Logger.Error("emergency: cancel not followed node by node; it went to the areas", "emergency", em.ID, "drill", em.Drill, "err", err)
		return
	}
	s.mu.Lock()
	if s.live == nil {
		s.live, s.fanout = map[string]*tracking{}, map[string]*tracking{}
	}
	if s.live[em.ID] == nil {
		s.live[em.ID] = t
	}
	s.mu.Unlock()
}

// sentOccurrence returns the occurrence the alert of em was sent as: the
// one noted beside its publish, or else (a record stored before the note
// was made) the one its deliveries name (the reports of its clusters, or
// the plan, which an earlier version stored beside the publish); "" if
// none has it.
func (s *Service) sentOccurrence(ctx context.Context, em *loaxa.Emergency) (string, error) {
	if em.Publishing != "" {
		return em.Publishing, nil
	}
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		return "", fmt.Errorf("deliveries: %w", err)
	}
	for _, d := range ds {
		if d.Occurrence != "" {
			return d.Occurrence, nil
		}
	}
	return "", nil
}

// track rebuilds the tracking of a sent emergency from the store.
func (s *Service) track(ctx context.Context, em *loaxa.Emergency) (*tracking, error) {
	contents := map[string]*loaxa.Content{}
	for _, id := range []string{em.OpeningChime, em.ClosingChime, em.ContentID, em.IntroContentID} {
		if id == "" {
			continue
		}
		c, err := s.Contents.FindContentByID(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("content %s: %w", id, err)
		}
		contents[id] = c
	}
	main := contents[em.ContentID]
	refs := alertContent(contents[em.OpeningChime], contents[em.ClosingChime], main, contents[em.IntroContentID])
	t := &tracking{
		em: *em, cmds: map[string]protocol.Command{}, issued: em.Issued, nodeArea: map[string]string{},
		received: map[string]time.Time{}, sent: map[string]time.Time{}, resends: map[string]int{}, epochs: map[string]string{},
		resentAt: map[string]time.Time{}, done: map[string]bool{}, fanout: map[string][]time.Duration{},
		cancelSent: map[string]time.Time{}, cancelResends: map[string]int{}, lastReceipt: map[string]time.Time{},
	}
	t.em.Areas = slices.Clone(em.Areas)
	if em.State == loaxa.EmergencyCancelled {
		t.cancelled = em.CancelledAt
	}
	for _, a := range em.Areas {
		t.cmds[a.Area] = alertCommand(em, a, main, refs)
	}
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	// Each node belongs to the targeted area it is under; one moved since
	// is followed with the alert of the area whose start it was given.
	areas := make([]string, len(em.Areas))
	for i, a := range em.Areas {
		areas[i] = a.Area
	}
	if t.nodeArea, err = s.nodesUnder(ctx, areas); err != nil {
		return nil, err
	}
	published := map[string]bool{}
	for _, a := range em.Areas {
		published[a.Area] = a.Error == ""
	}
	tracked := make(map[string]string, len(ds))
	for _, d := range ds {
		area, ok := t.nodeArea[d.Node]
		if !ok {
			i := slices.IndexFunc(em.Areas, func(a loaxa.EmergencyArea) bool { return a.Start.Equal(d.Start) })
			if i < 0 {
				continue
			}
			area = em.Areas[i].Area
		}
		tracked[d.Node] = area
		switch {
		case !d.ReceivedAt.IsZero():
			t.received[d.Node] = d.ReceivedAt
		case d.State != loaxa.DeliveryPending:
			t.received[d.Node] = d.UpdatedAt // stored before receipts were kept
		}
		t.done[d.Node] = d.State.Terminal()
		if d.Epoch != "" {
			t.epochs[d.Node] = d.Epoch
		}
		t.resends[d.Node] = d.Resends
		switch {
		case !d.ResentAt.IsZero():
			t.sent[d.Node] = d.ResentAt
		case published[area]:
			t.sent[d.Node] = em.Issued
		}
		t.cancelResends[d.Node] = d.CancelResends
		if !d.CancelResentAt.IsZero() {
			t.cancelSent[d.Node] = d.CancelResentAt
		}
		if d.Resends > 0 {
			// When the first resend went is not kept: no receipt of this
			// node measures the area's fan-out.
			t.resentAt[d.Node] = em.Issued
		}
	}
	// The nodes that waited for their code when it was sent (without a
	// delivery, created before it and not enrolled by then) are followed
	// again: one that comes online has redeemed it, and is sent the alert.
	// So is one enrolled by then and under the alert's areas now without
	// a delivery: moved into them since the send (NodeMoved) and offline
	// ever since, it had neither the area's publish nor its join; before,
	// the restarted controller dropped it, and the cluster, up again in
	// its new commune under the alert, was never sent it. (A node whose
	// planned delivery was not stored at the send is one too, and is sent
	// the alert as well.) A node created after the issue is none of the
	// alert's, as for the controller that sent it: taking it for one
	// waiting had clusters installed after a warning play it, late, once
	// the controller restarted. Unless it was moved since the issue: its
	// last move brought it under the alert's areas (it is under them
	// now), and the running controller sent it the alert then (NodeMoved)
	// as to any cluster an officer moves into an alert; before, a cluster
	// put up in another commune after the alert and moved in while
	// offline was dropped by the restart and never played it.
	var without []string
	for node := range t.nodeArea {
		if _, ok := tracked[node]; !ok {
			without = append(without, node)
		}
	}
	presence, err := s.Nodes.NodePresence(ctx, without)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	t.awaiting, t.movedIn = map[string]bool{}, map[string]bool{}
	for node, p := range presence {
		moved := p.MovedAt.After(em.Issued)
		if p.CreatedAt.After(em.Issued) && !moved {
			continue
		}
		t.awaiting[node] = true
		tracked[node] = t.nodeArea[node]
		switch {
		case moved:
			// Moved in since the issue, put up after it or waiting for
			// its code then (not reached by the area's publish, made
			// before it belonged there): NodeMoved leaves it so too, to
			// be sent the alert at its first pass online. Before, one
			// that waited for its code at the issue was taken for one
			// of the area's then, sent the alert by its publish, and
			// waited out a resend's bound once up. (One moved within the
			// alert's areas is taken so too: its last move does not say
			// where it was at the issue; it is sent the alert at once
			// rather than after that bound.)
			t.movedIn[node] = true
		case !p.EnrolledAt.IsZero() && p.EnrolledAt.Before(em.Issued):
			// Not reached by the area's publish: sent at its first pass
			// online, as NodeMoved leaves it.
			t.movedIn[node] = true
		case published[tracked[node]]:
			t.sent[node] = em.Issued
		}
	}
	t.nodeArea = tracked
	t.wait()
	t.fanout = fanoutOf(em, ds, tracked)
	return t, nil
}

// restoreFanout makes em's measured fan-out the one of each of its areas
// that has none yet (ems come newest first).
func (s *Service) restoreFanout(ctx context.Context, em *loaxa.Emergency) error {
	var areas []string
	s.mu.Lock()
	for _, a := range em.Areas {
		if s.fanout[a.Area] == nil && a.Error == "" {
			areas = append(areas, a.Area)
		}
	}
	s.mu.Unlock()
	if len(areas) == 0 || em.Occurrence == "" {
		return nil
	}
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	nodeArea, err := s.nodesUnder(ctx, areas)
	if err != nil {
		return err
	}
	t := &tracking{em: *em, issued: em.Issued, fanout: fanoutOf(em, ds, nodeArea)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range areas {
		if len(t.fanout[a]) > 0 && s.fanout[a] == nil {
			s.fanout[a] = t
		}
	}
	return nil
}

// nodesUnder maps each node within one of areas to that area.
func (s *Service) nodesUnder(ctx context.Context, areas []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range areas {
		ids, err := s.Nodes.NodeIDsWithin(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("nodes of %s: %w", a, err)
		}
		for _, id := range ids {
			out[id] = a
		}
	}
	return out, nil
}

// fanoutOf returns the receive delays of the area publish by area, from
// em's deliveries: the nodes (of nodeArea) that had it before any resend.
func fanoutOf(em *loaxa.Emergency, ds []*loaxa.Delivery, nodeArea map[string]string) map[string][]time.Duration {
	out := map[string][]time.Duration{}
	for _, d := range ds {
		area, ok := nodeArea[d.Node]
		if !ok || d.ReceivedAt.IsZero() {
			continue
		}
		if d.Resends > 1 || d.Resends == 1 && !d.ReceivedAt.Before(d.ResentAt) {
			continue
		}
		out[area] = append(out[area], max(d.ReceivedAt.Sub(em.Issued), 0))
	}
	return out
}

// closeUnsent closes an emergency the controller stopped sending before
// it recorded it as sent. Whether the alert left is known only from the
// nodes: the deliveries their reports made. If there are any, the alert
// went out (nodes may be sounding it), so the emergency takes the
// occurrence they name and its issue instant, and the deliveries made
// from the reports alone (Unplanned) take its level, planned length and
// drill mark, so that no report shows a drill as a real alert; each keeps
// the start its node reported. One that may have gone out (a report, what
// it noted beside the publish, or a plan stored beside it by an earlier
// version) stays active until its expiry, marked cut off: neither
// followed nor sent again, but cancellable.
func (s *Service) closeUnsent(ctx context.Context, em *loaxa.Emergency) {
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		// Whether it went out is not known: say so, not that it did not.
		s.close(ctx, em, nil, "emergency: the controller stopped while sending this emergency, and whether clusters reported it could not be read; closed as expired, see its report before sending it again",
			"err", err)
		return
	}
	var occurrence string
	var plans []*loaxa.Delivery
	reported := 0
	for _, d := range ds {
		if d.ReceivedAt.IsZero() && d.State == loaxa.DeliveryPending {
			continue // planned, never reported
		}
		reported++
		occurrence = d.Occurrence
		if d.Unplanned {
			plans = append(plans, &loaxa.Delivery{Announcement: d.Announcement, Occurrence: d.Occurrence, Node: d.Node, Start: d.Start,
				Priority: protocol.PriorityEmergency, PlannedMS: em.PlannedMS, Drill: em.Drill})
		}
	}
	if em.Publishing != "" {
		// Its publish had begun, and its plan is stored only after the
		// publish: the clusters it targeted get theirs now, as the send
		// would have given them, so that its report lists them all.
		planned, err := s.planOfPublish(ctx, em, ds)
		if err != nil {
			s.Logger.Error("emergency: the clusters of an alert cut off while sending not planned; its report lists those that report it", "emergency", em.ID,
				"drill", em.Drill, "err", err)
		}
		plans = append(plans, planned...)
		if occurrence == "" {
			occurrence = em.Publishing
		}
	}
	if len(plans) > 0 {
		if err := s.Deliveries.EnsureDeliveries(ctx, plans); err != nil {
			s.Logger.Error("emergency: the deliveries of an alert stopped while sending not stored: its report may lack clusters it targeted, or show one reported before the stop without the alert's level and drill mark",
				"emergency", em.ID, "drill", em.Drill, "nodes", len(plans), "err", err)
		}
	}
	// One that may have gone out stays active until its expiry, so that
	// an officer can cancel it (the console offers that only for an
	// active alert); it was listed expired at once.
	active := s.Clock.Now().Before(em.Expires)
	issued := loaxa.OccurrenceTime(occurrence)
	named := func(e *loaxa.Emergency) { e.Occurrence, e.Issued = occurrence, issued }
	if reported == 0 && (em.Publishing != "" || len(ds) > 0) {
		// Its publish had begun: it may have gone out, and its clusters
		// may hold their reports (a report window). Named, if what it
		// published was noted.
		if occurrence == "" {
			named = nil
		}
		if active {
			s.cutOff(ctx, em, named, "emergency: the controller stopped while sending this emergency and no cluster has reported it yet; it may have gone out, so it stays active until its expiry and is not sent again: see its report, and cancel it if clusters sound it, before sending it again",
				"occurrence", em.Publishing, "planned", len(ds))
			return
		}
		s.close(ctx, em, named, "emergency: the controller stopped while sending this emergency and no cluster has reported it yet; closed as expired, it may have gone out: see its report, and cancel it if clusters sound it, before sending it again",
			"occurrence", em.Publishing, "planned", len(ds))
		return
	}
	if reported == 0 {
		s.close(ctx, em, nil, "emergency: the controller stopped while sending this emergency and no cluster reported it; closed as expired, send it again if it is still needed")
		return
	}
	if active {
		s.cutOff(ctx, em, named, "emergency: the controller stopped while sending this emergency, but clusters reported it, so it went out; it stays active until its expiry and is not sent again: see its report, and cancel it if it should stop, before sending it again",
			"reported_by", reported)
		return
	}
	s.close(ctx, em, named, "emergency: the controller stopped while sending this emergency, but clusters reported it, so it went out; closed as expired, see its report before sending it again",
		"reported_by", reported)
}

// planOfPublish returns the deliveries the send of em, noted as being
// published (em.Publishing) and stopped before its plan was stored, would
// have stored for the nodes without one of ds: each node under one of its
// areas that was enrolled before the issue, with its area's start.
func (s *Service) planOfPublish(ctx context.Context, em *loaxa.Emergency, ds []*loaxa.Delivery) ([]*loaxa.Delivery, error) {
	sent := *em
	sent.Occurrence = em.Publishing
	issued := loaxa.OccurrenceTime(em.Publishing)
	has := make(map[string]bool, len(ds))
	for _, d := range ds {
		has[d.Node] = true
	}
	var plan []*loaxa.Delivery
	for _, a := range em.Areas {
		ids, err := s.Nodes.NodeIDsWithin(ctx, a.Area)
		if err != nil {
			return plan, fmt.Errorf("nodes of %s: %w", a.Area, err)
		}
		presence, err := s.Nodes.NodePresence(ctx, ids)
		if err != nil {
			return plan, fmt.Errorf("nodes of %s: %w", a.Area, err)
		}
		start := issued.Add(time.Duration(a.LeadMS) * time.Millisecond)
		for _, id := range ids {
			p, ok := presence[id]
			if !ok || has[id] || p.EnrolledAt.IsZero() || p.EnrolledAt.After(issued) {
				continue
			}
			plan = append(plan, plannedDelivery(&sent, id, start, issued))
		}
	}
	return plan, nil
}

// cutOff marks an active emergency the controller stopped sending, which
// may have gone out, as cut off (changed by fn, if not nil): active until
// its expiry, neither followed nor sent again; and logs msg and attrs.
func (s *Service) cutOff(ctx context.Context, em *loaxa.Emergency, fn func(e *loaxa.Emergency), msg string, attrs ...any) {
	marked, err := s.Store.UpdateEmergency(ctx, em.ID, func(e *loaxa.Emergency) error {
		e.CutOff = true
		if fn != nil {
			fn(e)
		}
		return nil
	})
	if err != nil {
		s.Logger.Error("emergency: cut-off emergency not marked", "emergency", em.ID, "drill", em.Drill, "err", err)
		return
	}
	s.noteCutOff(marked)
	s.Logger.Warn(msg, append([]any{"emergency", em.ID, "drill", em.Drill, "expires", em.Expires}, attrs...)...)
}

// noteCutOff has the resend passes close em, active and cut off, at its
// expiry: it is not tracked, and would otherwise be stored active until
// the next start.
func (s *Service) noteCutOff(em *loaxa.Emergency) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cutOffs == nil {
		s.cutOffs = map[string]loaxa.Emergency{}
	}
	s.cutOffs[em.ID] = *em
}

// close stores an active emergency as expired (changed by fn, if not nil)
// and logs its outcome with msg and attrs.
func (s *Service) close(ctx context.Context, em *loaxa.Emergency, fn func(e *loaxa.Emergency), msg string, attrs ...any) {
	if _, err := s.Store.UpdateEmergency(ctx, em.ID, func(e *loaxa.Emergency) error {
		if e.State == loaxa.EmergencyActive {
			e.State = loaxa.EmergencyExpired
		}
		if fn != nil {
			fn(e)
		}
		return nil
	}); err != nil {
		s.Logger.Error("emergency: not closed", "emergency", em.ID, "drill", em.Drill, "err", err)
		return
	}
	attrs = append([]any{"emergency", em.ID, "drill", em.Drill, "expires", em.Expires}, attrs...)
	if rep, err := s.EmergencyReport(ctx, em.ID); err == nil {
		sum := rep.Summary
		attrs = append(attrs, "targeted", sum.Targeted, "reached", sum.Reached, "completed", sum.Completed,
			"failed", sum.Failed, "not_reached", sum.Targeted-sum.Reached)
	} else {
		s.Logger.Error("emergency: report of a closed emergency", "emergency", em.ID, "drill", em.Drill, "err", err)
	}
	s.Logger.Warn(msg, attrs...)
}
