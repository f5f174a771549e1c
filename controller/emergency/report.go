package emergency

import (
	"context"
	"fmt"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// EmergencyReport implements loaxa.EmergencyService: every targeted node's
// state, from the alert's deliveries (which node events move, and which
// survive a restart, with when each node had it and how often it was
// resent), the nodes' status, and what the service has seen since; and
// how many nodes of its areas still wait for their enrolment code.
func (s *Service) EmergencyReport(ctx context.Context, id string) (*loaxa.EmergencyReport, error) {
	em, err := s.Store.FindEmergencyByID(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	expire(em, now)
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
	if err != nil {
		return nil, fmt.Errorf("emergency %s: deliveries: %w", id, err)
	}
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.Node)
	}
	// While the alert is followed, the service knows the clusters of its
	// areas still to be given it (awaiting): those of them whose code is
	// not redeemed are the ones waiting to be put up.
	s.mu.Lock()
	var awaiting []string
	t, followed := s.live[id]
	if followed {
		for node := range t.awaiting {
			awaiting = append(awaiting, node)
		}
	}
	s.mu.Unlock()
	nodes, err := s.Nodes.NodePresence(ctx, append(ids, awaiting...))
	if err != nil {
		return nil, fmt.Errorf("emergency %s: nodes: %w", id, err)
	}
	grid, err := s.messageGrid(ctx, em)
	if err != nil {
		s.Logger.Warn("emergency report: the message's timeline is unknown; whether late messages played in step is not said", "emergency", em.ID, "drill", em.Drill, "err", err)
	}
	faults, err := s.playedFaults(ctx, ds, now)
	if err != nil {
		s.Logger.Warn("emergency report: the alarm history is unknown; which clusters played into a fault is not said", "emergency", em.ID, "drill", em.Drill, "err", err)
	}
	rep := &loaxa.EmergencyReport{Emergency: em, Nodes: make([]loaxa.EmergencyNode, 0, len(ds)), ByArea: map[string]loaxa.EmergencySummary{}, Generated: now}
	s.mu.Lock()
	t = s.live[id]
	var at time.Time
	for _, d := range ds {
		n := loaxa.EmergencyNode{
			Node: d.Node, Area: nodes[d.Node].Area, State: string(d.State), Reason: d.Reason,
			LateMS: d.LateMS, ChimeSkippedMS: d.ChimeSkippedMS, PlayedMS: d.PlayedMS, ContentReady: d.ContentReady, Online: nodes[d.Node].Online,
		}
		// The delivery keeps the receipt and the resends across a
		// restart; the tracking may be ahead of it by a moment.
		at, n.Resends = d.ReceivedAt, d.Resends
		if t != nil {
			if r, ok := t.received[d.Node]; ok && (at.IsZero() || r.Before(at)) {
				at = r
			}
			n.Resends = max(n.Resends, t.resends[d.Node])
		}
		if !at.IsZero() {
			ms := max(at.Sub(em.Issued).Milliseconds(), 0)
			n.ReceivedMS = &ms
		}
		// A node that has the audio reports it ready with its receipt (the
		// same instant); one that had to fetch it, when it had it.
		if d.ContentReady && !d.ContentReadyAt.IsZero() {
			ms := max(d.ContentReadyAt.Sub(em.Issued).Milliseconds(), 0)
			n.ContentReadyMS = &ms
			n.Fetched = !d.ReceivedAt.IsZero() && d.ContentReadyAt.After(d.ReceivedAt)
		}
		if d.MessageMS != 0 && grid != nil {
			// On the area's timeline: after the area's start, not its own.
			ms, in := d.MessageMS, grid.InStep(d.MessageMS+d.LateMS)
			n.MessageMS, n.MessageInStep = &ms, &in
		}
		// A node that began: playing, done, suspended (only a play on air
		// is), or stopped after it had played some (a cancel, a later
		// alert).
		if d.State == loaxa.DeliveryStarted || d.State == loaxa.DeliverySuspended || d.State == loaxa.DeliveryCompleted || d.PlayedMS > 0 {
			ms := d.Start.Sub(em.Issued).Milliseconds() + d.LateMS
			n.SoundMS = &ms
			if kinds := loaxa.PlayedIntoFault(d, faults[d.Node], now); len(kinds) > 0 {
				n.SilencedBy = &kinds
			}
		}
		switch {
		case d.State == loaxa.DeliveryFailed && d.Reason == protocol.ReasonCancelled:
			n.State = loaxa.EmergencyCancelledState
		case d.State == loaxa.DeliveryPending && em.State == loaxa.EmergencyCancelled:
			n.State, n.Reason = loaxa.EmergencyCancelledState, loaxa.ReasonNotReached
		case d.State == loaxa.DeliveryPending && em.State == loaxa.EmergencyExpired:
			n.State, n.Reason = string(loaxa.DeliveryMissed), loaxa.ReasonNotReached
		case d.State == loaxa.DeliveryPending && !n.Online:
			n.State = loaxa.EmergencyOffline
		case (d.State == loaxa.DeliveryStarted || d.State == loaxa.DeliverySuspended) && now.After(loaxa.UnconfirmedAfter(em)):
			// Not "sounding" for ever: it began, and went silent.
			n.State = loaxa.EmergencyUnconfirmed
		}
		rep.Summary.Add(n)
		area := rep.ByArea[n.Area]
		area.Add(n)
		if (n.State == string(loaxa.DeliveryReceived) || n.State == string(loaxa.DeliveryStarted)) && !n.ContentReady {
			rep.Summary.Fetching++
			area.Fetching++
		}
		rep.ByArea[n.Area] = area
		rep.Nodes = append(rep.Nodes, n)
	}
	s.mu.Unlock()
	rep.Summary.AwaitingEnrolment = awaitingEnrolment(em, ds, nodes, awaiting, followed)
	rep.Timing = loaxa.TimingOf(rep.Nodes)
	return rep, nil
}

// awaitingEnrolment is how many clusters of em's areas still wait for
// their enrolment code. While em is followed, those of awaiting (the
// clusters the service has still to give it) whose code is not redeemed:
// a cluster that waited at the send, or was moved in since still waiting,
// counts until it is put up; one moved in that was put up long before
// never did. Once em is no longer followed (after its expiry), those that
// waited when it was sent, but those that redeemed their code since and
// were given it: the deliveries beyond the nodes it targeted then, of
// nodes not enrolled before it was sent; a cluster moved in since,
// enrolled before, has such a delivery too, and is not one of those.
func awaitingEnrolment(em *loaxa.Emergency, ds []*loaxa.Delivery, nodes map[string]loaxa.NodePresence, awaiting []string, followed bool) int {
	if followed {
		n := 0
		for _, node := range awaiting {
			if p, ok := nodes[node]; ok && p.EnrolledAt.IsZero() {
				n++
			}
		}
		return n
	}
	targeted, waited, enrolledSince := 0, 0, 0
	for _, a := range em.Areas {
		targeted += a.Nodes
		waited += a.AwaitingEnrolment
	}
	for _, d := range ds {
		if p := nodes[d.Node]; p.EnrolledAt.IsZero() || !p.EnrolledAt.Before(em.Issued) {
			enrolledSince++
		}
	}
	return max(waited-min(max(len(ds)-targeted, 0), enrolledSince), 0)
}

// playedFaults returns, by node, the alarms of the faults that keep a
// pole silent (SilencingFaults) that were open at some time while one of
// ds played (loaxa.PlaySpan): one read of the alarm history over the
// span of every play, not one per node, for what the report says each
// node played into (loaxa.PlayedIntoFault, the broadcast report's rule).
// The history, not the faults open now: a line mended since still says
// the alert went unheard there, and one cut after a play ended does not.
func (s *Service) playedFaults(ctx context.Context, ds []*loaxa.Delivery, now time.Time) (map[string][]*loaxa.Alarm, error) {
	if s.Alarms == nil {
		return nil, nil
	}
	var from, to time.Time
	for _, d := range ds {
		begin, end, ok := loaxa.PlaySpan(d, now)
		if !ok {
			continue
		}
		if from.IsZero() || begin.Before(from) {
			from = begin
		}
		if end.After(to) {
			to = end
		}
	}
	if from.IsZero() {
		return nil, nil // nothing sounded yet
	}
	// An alarm raised the very instant a play ended counts, as in
	// PlayedIntoFault; the read's range ends before its to.
	alarms, err := s.Alarms.FindAlarmsOpenDuring(ctx, "", loaxa.SilencingFaults, from, to.Add(time.Nanosecond))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]*loaxa.Alarm)
	for _, a := range alarms {
		out[a.Node] = append(out[a.Node], a)
	}
	return out, nil
}

// messageGrid returns when em's nodes that began together and had the
// message in time begin each of its repeats; nil for an alert without a
// message of its own (a cancel, an all-clear has one) or chimes on record.
func (s *Service) messageGrid(ctx context.Context, em *loaxa.Emergency) (*loaxa.MessageGrid, error) {
	if em.ContentID == "" || em.Repeat <= 0 {
		return nil, nil
	}
	var base int64
	for _, id := range []string{em.OpeningChime, em.IntroContentID} {
		if id == "" {
			continue
		}
		c, err := s.Contents.FindContentByID(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("content %s: %w", id, err)
		}
		base += c.DurationMS
	}
	main, err := s.Contents.FindContentByID(ctx, em.ContentID)
	if err != nil {
		return nil, fmt.Errorf("content %s: %w", em.ContentID, err)
	}
	return &loaxa.MessageGrid{BaseMS: base, PeriodMS: main.DurationMS + Gap.Milliseconds(), Repeats: em.Repeat}, nil
}
