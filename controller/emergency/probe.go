package emergency

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Probing an area's fan-out before its first alert.
//
// The lead of an alert comes from the receipts of the area's last alert
// (lead.go). An area that has had none got a guess from its number of
// nodes, 300 ms for a commune, and the first real alert to an area is the
// one that matters. On a mobile network the guess can be far off: a
// modem that has been idle for seconds is paged before it hears anything,
// which takes up to a paging cycle (1.28 s on many networks), so most of a
// commune could have its first alert after the start and sound out of
// step, in echo with its neighbours.
//
// So the service probes: one signed probe command on an area's cmd topic,
// the path an alert takes, and each node notes when it had it and reports
// that with its next state (protocol.CmdProbe): the heartbeat's at the
// latest, so a probe costs no report of its own. The areas of one depth of
// the tree are probed together (they hold different nodes, so no node has
// two probes at once), then the next depth, Window apart. Once its Window
// has passed, a probe is its area's measured fan-out, as an alert's is,
// if it is newer: the lead then says "probed". A controller that restarts
// probes again First after it starts; probes are not stored.
type Probing struct {
	// Every is how long after a round of probes ends the next begins; 0
	// or less: never.
	Every time.Duration
	// First is how long after Run starts the first round begins: the
	// nodes reconnect after a restart, and their states settle.
	First time.Duration
	// Window is how long a probe's receipts are taken: the nodes report
	// them with their next state, at most their heartbeat (60 s) later.
	Window time.Duration
}

// DefaultProbing: every 6 hours, the first 2 minutes after the start,
// receipts taken for 90 s.
var DefaultProbing = Probing{Every: 6 * time.Hour, First: 2 * time.Minute, Window: 90 * time.Second}

// probe is one probe sent to an area.
type probe struct {
	id      string
	area    string
	nodes   int // enrolled nodes in the area's subtree when it was sent
	issued  time.Time
	closes  time.Time // issued + Window: its samples are complete then
	seen    map[string]bool
	samples []time.Duration
}

// runProbes probes every area each Probing.Every until ctx ends. A round
// left out (or cut short) because an alert is on air is tried again a
// Probing.Window later, until the alert is over: waiting for the next
// round instead left a controller restarted during a warning without a
// probe for Every (6 hours).
func (s *Service) runProbes(ctx context.Context) {
	if s.Probing.Every <= 0 {
		return
	}
	wait := s.Probing.First
	deferred := false
	for {
		if !s.sleep(ctx, wait) {
			return
		}
		onAir, err := s.probeRound(ctx)
		if err != nil && ctx.Err() == nil {
			s.Logger.Warn("emergency: fan-out probes not sent", "err", err)
		}
		wait = s.Probing.Every
		if onAir {
			if !deferred { // once, not every window of a warning in force for hours
				s.Logger.Info("emergency: fan-out probes left out: an alert is on air; trying again once it is over", "every", s.Probing.Window)
			}
			wait = max(s.Probing.Window, time.Second)
		}
		deferred = onAir
	}
}

// sleep waits d on the service's clock; false if ctx ended first.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	timer := s.Clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C():
		return true
	}
}

// probeRound probes every area with nodes, one depth of the tree at a
// time, Probing.Window apart. onAir reports that it stopped, at its start
// or before a depth, because an alert is on air.
func (s *Service) probeRound(ctx context.Context) (onAir bool, err error) {
	areas, err := s.Areas.FindAreas(ctx, loaxa.AreaFilter{})
	if err != nil {
		return false, fmt.Errorf("probe: %w", err)
	}
	parent := make(map[string]string, len(areas))
	for _, a := range areas {
		parent[a.ID] = a.Parent
	}
	var levels [][]string
	for _, a := range areas {
		d := 0
		for p := a.Parent; p != "" && d <= len(areas); p = parent[p] {
			d++
		}
		for len(levels) <= d {
			levels = append(levels, nil)
		}
		levels[d] = append(levels[d], a.ID)
	}
	for _, level := range levels {
		// Before each depth, not only the round's first: an alert sent
		// during a depth's window ends the round, tried again once the
		// alert is over (runProbes).
		s.mu.Lock()
		busy := s.alertOnAir(s.Clock.Now())
		s.mu.Unlock()
		if busy {
			return true, nil
		}
		sent := 0
		for _, area := range level {
			if ctx.Err() != nil {
				return false, nil
			}
			ok, err := s.sendProbe(ctx, area)
			if err != nil {
				// The broker away, most likely: the next round tries
				// again, rather than each area waiting out its refusal.
				return false, fmt.Errorf("probe of area %s: %w", area, err)
			}
			if ok {
				sent++
			}
		}
		if sent == 0 {
			continue
		}
		// The level's receipts come in with the nodes' next states.
		if !s.sleep(ctx, s.Probing.Window) {
			return false, nil
		}
		s.mu.Lock()
		s.closeProbes(s.Clock.Now())
		s.mu.Unlock()
	}
	return false, nil
}

// sendProbe sends a probe to area, if it has enrolled nodes and no alert
// measured it within Probing.Every; it reports whether it sent one.
// probeRound sends none while an alert is on air (a probe would measure
// the alert's load and add to it). A node waiting for its enrolment code
// is a pole not put up yet, which no probe reaches: an area of such poles
// only is not probed (its round would wait a window for nothing), as an
// alert leaves them out.
func (s *Service) sendProbe(ctx context.Context, area string) (bool, error) {
	ids, err := s.Nodes.NodeIDsWithin(ctx, area)
	if err != nil {
		return false, err
	}
	presence, err := s.Nodes.NodePresence(ctx, ids)
	if err != nil {
		return false, err
	}
	enrolled := 0
	for _, id := range ids {
		if p, ok := presence[id]; ok && !p.EnrolledAt.IsZero() {
			enrolled++
		}
	}
	if enrolled == 0 {
		return false, nil
	}
	now := s.Clock.Now()
	s.mu.Lock()
	t := s.fanout[area]
	recent := t != nil && len(t.fanout[area]) > 0 && now.Sub(t.issued) < s.Probing.Every
	s.mu.Unlock()
	if recent {
		return false, nil // an alert measured it since the last round
	}
	p := &probe{
		id:    "pr" + strconv.FormatInt(now.UnixMilli(), 36) + "-" + area,
		area:  area,
		nodes: enrolled,
		seen:  map[string]bool{},
	}
	cmd := protocol.Command{Name: protocol.CmdProbe, Probe: p.id}
	p.issued, p.closes = now, now.Add(s.Probing.Window)
	s.mu.Lock()
	if s.probes == nil {
		s.probes = map[string]*probe{}
	}
	s.probes[p.id] = p
	s.mu.Unlock()
	if err := s.Messenger.SendAreaCommand(ctx, area, cmd, s.Probing.Window); err != nil {
		s.mu.Lock()
		delete(s.probes, p.id)
		s.mu.Unlock()
		return false, err
	}
	s.Logger.Debug("emergency: fan-out probe sent", "area", area, "probe", p.id, "nodes", enrolled)
	return true, nil
}

// alertOnAir reports whether an alert is active and not expired: its
// nodes are busy with it (and may be the probed area's), and so is the
// controller. Called with s.mu held.
func (s *Service) alertOnAir(now time.Time) bool {
	for _, t := range s.live {
		if t.em.State == loaxa.EmergencyActive && now.Before(t.em.Expires) {
			return true
		}
	}
	return false
}

// ProbeReceipts takes the probe receipts of a node's state (wire it to the
// MQTT client's OnState): each is a sample of its probe's area, once per
// node, if it came within the probe's window.
func (s *Service) ProbeReceipts(node string, receipts []protocol.ProbeReceipt) {
	if len(receipts) == 0 {
		return
	}
	now := s.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range receipts {
		p := s.probes[r.ID]
		if p == nil || p.seen[node] || !now.Before(p.closes) {
			continue
		}
		p.seen[node] = true
		p.samples = append(p.samples, max(r.At.Sub(p.issued), 0))
	}
}

// closeProbes ends the probes whose window has passed: each, if it had a
// receipt, becomes its area's newest probe (probed). Called with s.mu
// held.
func (s *Service) closeProbes(now time.Time) {
	for id, p := range s.probes {
		if now.Before(p.closes) {
			continue
		}
		delete(s.probes, id)
		if len(p.samples) == 0 {
			s.Logger.Warn("emergency: fan-out probe had no receipt", "area", p.area, "probe", p.id, "nodes", p.nodes)
			continue
		}
		if old := s.probedArea[p.area]; old != nil && old.issued.After(p.issued) {
			continue
		}
		if s.probedArea == nil {
			s.probedArea = map[string]*probe{}
		}
		s.probedArea[p.area] = p
		s.Logger.Info("emergency: fan-out probed", "area", p.area, "probe", p.id, "nodes", p.nodes,
			"reported", len(p.samples), "p99", p99(slices.Clone(p.samples)))
	}
}

// probed returns the receive delays of area's newest probe whose window
// has passed, and when it was sent; none if there is none. Called with
// s.mu held.
func (s *Service) probed(area string, now time.Time) ([]time.Duration, time.Time) {
	s.closeProbes(now)
	p := s.probedArea[area]
	if p == nil {
		return nil, time.Time{}
	}
	return p.samples, p.issued
}
