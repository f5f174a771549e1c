package protocol

import "time"

// CmdProbe measures how long the area publish of an alert takes to reach
// the nodes of an area, before the area has had an alert: the controller
// sends it on the area's cmd topic, the path of an alert, with Probe
// naming it, and each node notes when it had it (on its corrected clock)
// and reports that in the ProbeReceipts of its next State, which its
// heartbeat sends within HeartbeatMS. The node does nothing else for it:
// no event, no extra message.
const CmdProbe = "probe"

// ProbeReceipt is when the node had probe ID, on its clock corrected to
// the controller's.
type ProbeReceipt struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// MaxProbeReceipts is the most receipts a State carries: the newest, one
// per level of the area tree in a round of probes, with room to spare.
const MaxProbeReceipts = 8

// ProbeReceiptAge is how long a node keeps reporting a probe receipt: long
// enough for the heartbeat after it, short enough not to carry it for good.
const ProbeReceiptAge = 10 * time.Minute
