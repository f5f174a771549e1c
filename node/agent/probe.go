package agent

import (
	"slices"

	"loaxa.vn/protocol"
)

// noteProbe notes when the node had probe id (protocol.CmdProbe): the
// controller measures with it how long an alert takes to reach the nodes
// of an area before the area's first alert. The receipt rides on the next
// state, the heartbeat's at the latest, so the probe costs the node no
// message of its own; it reports the same one once.
func (a *Agent) noteProbe(id string) {
	if id == "" {
		a.log.Warn("agent: probe without a name ignored")
		return
	}
	at := a.clock.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.ContainsFunc(a.status.probes, func(r protocol.ProbeReceipt) bool { return r.ID == id }) {
		return
	}
	a.status.probes = append(a.status.probes, protocol.ProbeReceipt{ID: id, At: at})
	if extra := len(a.status.probes) - protocol.MaxProbeReceipts; extra > 0 {
		a.status.probes = slices.Delete(a.status.probes, 0, extra)
	}
	a.log.Debug("agent: probe noted", "probe", id)
}

// probeReceipts are the receipts the state reports: those not older than
// protocol.ProbeReceiptAge. Called with a.mu held.
func (a *Agent) probeReceipts() []protocol.ProbeReceipt {
	since := a.clock.Now().Add(-protocol.ProbeReceiptAge)
	a.status.probes = slices.DeleteFunc(a.status.probes, func(r protocol.ProbeReceipt) bool { return r.At.Before(since) })
	return slices.Clone(a.status.probes)
}
