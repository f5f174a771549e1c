package emergency

import "time"

// ReportSpread says over what window the nodes of an area spread their
// reports of an alert (protocol.Alert.ReportWindowMS). Every node of an
// area reports the alert received, started and completed, with a state
// after each, at the same few instants; at thousands of nodes those
// reports reach the broker and the controller while the alert is still
// fanning out to the last nodes, and take the CPU (and on real boards the
// mobile network) the fan-out needs. Spread over a window, each node at
// its own random delay, they cost the same in all but arrive at a rate the
// controller takes in alongside the fan-out.
//
// An area of at most MinNodes nodes (a commune) reports at once: its
// reports are few, and the officer sees them at once. Above, the window is
// PerNode for each node, at most Max. A node waits its delay after each
// report's time, and a receipt before the alert's start from the start, so
// that none of the area's reports compete with the fan-out itself. The
// price of a window is that the report shows the area's receipts up to the
// lead plus the window later, and a node that did not get the alert is
// resent to the window later (resend.go).
type ReportSpread struct {
	MinNodes int
	PerNode  time.Duration
	Max      time.Duration
}

// DefaultReportSpread: none up to 200 nodes, 1 s at 1,000 nodes, 5 s at
// 5,000, 10 s from 10,000 on. The controller spends about 1.5 ms of CPU
// per node on a round's reports (BENCHMARKS.md, thin nodes: 1.65 s a round
// at 1,000 nodes, 14–17 s at 10,000), a third of it on the receipts, which
// are what competes with the fan-out: spread at 1 ms a node, the receipts
// need about half a core, leaving the other core of the 2-core controller
// to the fan-out; the whole round's reports, over the window plus the
// lead and the play, about one core. The 10 s cap is about as long as the
// controller took to take in a 10,000-node round's receipts when they all
// came at once, so no report comes later than it did; it bounds how long
// a missed node waits for its resend. docs/emergency.md explains it.
var DefaultReportSpread = ReportSpread{
	MinNodes: 200,
	PerNode:  time.Millisecond,
	Max:      10 * time.Second,
}

// Window returns the report window for an area of nodes nodes.
func (r ReportSpread) Window(nodes int) time.Duration {
	if nodes <= r.MinNodes || r.PerNode <= 0 {
		return 0
	}
	return min(time.Duration(nodes)*r.PerNode, r.Max)
}
