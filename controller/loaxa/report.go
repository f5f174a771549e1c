package loaxa

import (
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
