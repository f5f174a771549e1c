package loaxa

import (
	"slices"
	"time"

	"loaxa.vn/protocol"
)

// BroadcastFigures are the proof-of-broadcast counts of a set of
// deliveries: what provinces send up in their yearly report on grassroots
// information.
type BroadcastFigures struct {
	Scheduled int `json:"scheduled"`
	Completed int `json:"completed"`
	Preempted int `json:"preempted"`
	Failed    int `json:"failed"`
	Missed    int `json:"missed"`
	// Open are not final yet; FailedToSound of them are overdue.
	Open          int `json:"open"`
	FailedToSound int `json:"failed_to_sound"`
	// Emergency counts real emergency plays; Drill the plays of exercises
	// (emergency drills and drill live calls), never counted as
	// emergencies, so that a report cannot pass a drill off as an alert.
	Emergency int   `json:"emergency"`
	Drill     int   `json:"drill"`
	PlannedMS int64 `json:"planned_ms"`
	PlayedMS  int64 `json:"played_ms"`
	// Silenced counts the plays (completed, cut off after playing some,
	// or on air) made while the node had a fault open that keeps its
	// pole silent (SilencingFaults, PlayedIntoFault): counted in their
	// states too, though the pole's residents may have heard nothing.
	Silenced int `json:"silenced,omitempty"`
}

// Add counts d, whose FailedToSound must be checked already.
func (f *BroadcastFigures) Add(d *Delivery) {
	f.Scheduled++
	switch d.State {
	case DeliveryCompleted:
		f.Completed++
	case DeliveryPreempted:
		f.Preempted++
	case DeliveryFailed:
		f.Failed++
	case DeliveryMissed:
		f.Missed++
	default:
		f.Open++
	}
	if d.FailedToSound {
		f.FailedToSound++
	}
	switch {
	case d.Drill:
		f.Drill++
	case d.Priority == protocol.PriorityEmergency:
		f.Emergency++
	}
	f.PlannedMS += d.PlannedMS
	f.PlayedMS += d.PlayedMS
}

// PlayedIntoFault returns the kinds of the alarms among faults (the
// node's silencing ones, SilencingFaults) that were open while d played
// (PlaySpan). None for a play that did not sound. A cluster plays into a
// cut speaker line as into a sound one and reports it completed.
func PlayedIntoFault(d *Delivery, faults []*Alarm, now time.Time) []string {
	begin, end, ok := PlaySpan(d, now)
	if !ok {
		return nil
	}
	var kinds []string
	for _, a := range faults {
		if !a.Start.After(end) && (a.Open() || a.End.After(begin)) && !slices.Contains(kinds, a.Kind) {
			kinds = append(kinds, a.Kind)
		}
	}
	slices.Sort(kinds)
	return kinds
}

// PlaySpan returns when d played: from its start, as late as the node
// began it, for as long as it played (until now for a play still on
// air); ok is false for a play that did not sound. The alarms open in
// that span are what PlayedIntoFault reads. A play the node's mute holds
// back is silent: what it played before the mute, if anything.
func PlaySpan(d *Delivery, now time.Time) (begin, end time.Time, ok bool) {
	onAir := d.State == DeliveryStarted || d.State == DeliverySuspended && !d.Muted()
	if !onAir && d.State != DeliveryCompleted && d.PlayedMS <= 0 {
		return time.Time{}, time.Time{}, false
	}
	begin = d.Start.Add(time.Duration(d.LateMS) * time.Millisecond)
	end = begin.Add(time.Duration(d.PlayedMS) * time.Millisecond)
	if onAir {
		end = now
	}
	return begin, end, true
}

// NodeFigures are one node's figures, with its name: officers know their
// clusters by name, not by id.
type NodeFigures struct {
	Node string `json:"node"`
	Name string `json:"name,omitempty"`
	Area string `json:"area"`
	BroadcastFigures
}

// AreaFigures are the figures of the nodes directly in one area (a commune,
// ward or village).
type AreaFigures struct {
	Area  string `json:"area"`
	Name  string `json:"name"`
	Nodes int    `json:"nodes"`
	BroadcastFigures
}

// BroadcastReport is the report of an area over [From, To).
type BroadcastReport struct {
	Area      string           `json:"area"`
	From      time.Time        `json:"from"`
	To        time.Time        `json:"to"`
	Generated time.Time        `json:"generated"`
	Total     BroadcastFigures `json:"total"`
	Areas     []AreaFigures    `json:"areas"`
	Nodes     []NodeFigures    `json:"nodes"`
}
