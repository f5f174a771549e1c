package emergency

import (
	"slices"
	"time"
)

// Lead says how far after the issue an area's alert starts. The start
// instant must be late enough that the nodes of the area have the alert
// (and have opened its audio) by then, so that they start together and
// neighbouring clusters do not echo; and as early as that allows, because
// every millisecond of lead is a millisecond of warning lost.
//
// After an alert, the receive delays of the area's nodes (their received
// event's time, on the controller-corrected clock, minus the issue time;
// only receipts before any resend to the node) are its measured
// fan-out. The next alert to the area starts Factor × the p99 of those,
// plus Margin for the node to open the audio, after the issue: "measured".
// A probe of the area newer than its last alert measures it the same way:
// "probed" (probe.go). Before any alert or probe, the fan-out is estimated
// from the number of nodes: Base plus PerNode each: "estimated". Each is
// kept within [Min, Max].
// Nodes that get the alert after the start begin at once and report how
// late (their started event's late_ms); with the chime and message cached
// they skip into the opening chime by as much, so the rest of the alert
// plays in step with the nodes that began on time (agent's chime skip).
// Factor is the guard band over the measured p99 for a fan-out slower
// than the one measured: too small and more nodes lose the start of the
// chime, too large and every node loses warning time.
type Lead struct {
	Min, Max time.Duration
	Base     time.Duration
	PerNode  time.Duration
	Factor   float64
	Margin   time.Duration
}

// DefaultLead: 300 ms for a commune, 400 ms for 1,000 nodes, 1.3 s for
// 10,000 until measured; a measured area gets 1.2 × its p99 + 100 ms
// (docs/emergency.md says why 1.2).
var DefaultLead = Lead{
	Min:     200 * time.Millisecond,
	Max:     3 * time.Second,
	Base:    300 * time.Millisecond,
	PerNode: 100 * time.Microsecond,
	Factor:  1.2,
	Margin:  100 * time.Millisecond,
}

// Lead sources, as reported in loaxa.EmergencyArea.LeadFrom.
const (
	LeadMeasured  = "measured"
	LeadProbed    = "probed" // measured by a probe (probe.go)
	LeadEstimated = "estimated"
)

// LeadFor is the lead an alert to area with nodes nodes would have now,
// and where it comes from (LeadMeasured, LeadProbed or LeadEstimated).
func (s *Service) LeadFor(area string, nodes int) (time.Duration, string) { return s.lead(area, nodes) }

// lead returns the lead for an alert to area with nodes nodes, and where
// it came from.
func (s *Service) lead(area string, nodes int) (time.Duration, string) {
	l := s.Lead
	s.mu.Lock()
	var samples []time.Duration
	var measured time.Time
	from := LeadMeasured
	if t := s.fanout[area]; t != nil {
		samples, measured = slices.Clone(t.fanout[area]), t.issued
	}
	// A probe newer than the area's last alert measures it too (probe.go).
	if probed, at := s.probed(area, s.Clock.Now()); len(probed) > 0 && (len(samples) == 0 || at.After(measured)) {
		samples, from = slices.Clone(probed), LeadProbed
	}
	s.mu.Unlock()
	d := l.Base + time.Duration(nodes)*l.PerNode
	if p := p99(samples); len(samples) > 0 {
		d = time.Duration(float64(p)*l.Factor) + l.Margin
	} else {
		from = LeadEstimated
	}
	return min(max(d, l.Min), l.Max), from
}

// p99 returns the 99th percentile (nearest rank) of ds, 0 for none.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := (len(ds)*99 + 99) / 100
	return ds[min(max(i-1, 0), len(ds)-1)]
}
