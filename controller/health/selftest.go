package health

import (
	"context"
	"fmt"
	"slices"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// sendWorkers is how many self-test commands are published at once.
const sendWorkers = 8

// StartSelfTest stores a self-test run of kind on the nodes of area's
// subtree (those online or stale; "" with no nodes: the whole fleet) and
// the listed nodes, then sends each a signed self-test command in the
// background. The run's report fills in as results arrive; nodes that do
// not answer by its deadline count as no-answer.
func (m *Monitor) StartSelfTest(ctx context.Context, kind, area string, nodes []string, by string) (*loaxa.SelfTest, error) {
	if kind != protocol.TestSilent && kind != protocol.TestAudible {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Self-test kind %q is unknown; use %q or %q.", kind, protocol.TestSilent, protocol.TestAudible)
	}
	targets := slices.Clone(nodes)
	if area != "" || len(nodes) == 0 {
		found, err := m.Nodes.FindNodes(ctx, loaxa.NodeFilter{Within: area})
		if err != nil {
			return nil, fmt.Errorf("self-test: %w", err)
		}
		for _, n := range found {
			if n.Status.State == loaxa.NodeOnline || n.Status.State == loaxa.NodeStale {
				targets = append(targets, n.ID)
			}
		}
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	if len(targets) == 0 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "No node to test: the area has no node online; name nodes to test them anyway.")
	}
	now := m.Clock.Now()
	run := &loaxa.SelfTest{Kind: kind, Area: area, Nodes: targets, RequestedBy: by, Started: now, Deadline: now.Add(m.Config.SelfTestTimeout)}
	if err := m.Tests.CreateSelfTest(ctx, run); err != nil {
		return nil, err
	}
	m.Logger.Info("health: self-test started", "id", run.ID, "kind", kind, "nodes", len(targets), "by", by)
	m.mu.Lock()
	runCtx := m.ctx
	m.mu.Unlock()
	if runCtx == nil {
		runCtx = context.Background()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.send(runCtx, run)
	}()
	return run, nil
}

// send publishes the run's command to each node.
func (m *Monitor) send(ctx context.Context, run *loaxa.SelfTest) {
	cmd := protocol.Command{Name: protocol.CmdSelfTest, Test: run.Kind, TestID: run.ID}
	ids := make(chan string)
	done := make(chan struct{})
	for range min(sendWorkers, len(run.Nodes)) {
		go func() {
			defer func() { done <- struct{}{} }()
			for id := range ids {
				if err := m.Messenger.SendNodeCommand(ctx, id, cmd, m.Config.SelfTestTimeout); err != nil {
					m.Logger.Warn("health: self-test command not sent", "node", id, "test", run.ID, "err", err)
				}
			}
		}()
	}
	for _, id := range run.Nodes {
		select {
		case ids <- id:
		case <-ctx.Done():
		}
	}
	close(ids)
	for range min(sendWorkers, len(run.Nodes)) {
		<-done
	}
}
