package release

import (
	"fmt"
	"testing"

	"loaxa.vn/controller/loaxa"
)

// BenchmarkRunnerPass is one pass of the runner (every Interval, 2 s) in
// a province a year on: 500 finished rollouts of 100 nodes each, and one
// rollout whose canaries are updating. Only the running one has work:
// reading its canaries' answers (none yet, so nothing is written).
func BenchmarkRunnerPass(b *testing.B) {
	g := newRolloutRig(b, "n1", "n2", "n3", "n4", "n5")
	for i := range 500 {
		ro := &loaxa.Rollout{Version: "2.0", Targets: loaxa.Targets{Areas: []string{"hp"}}, Percent: 100, Canaries: 3, State: loaxa.RolloutCanary, CreatedBy: "admin"}
		if err := g.rels.CreateRollout(g.ctx, ro); err != nil {
			b.Fatal(err)
		}
		if _, err := g.rels.UpdateRollout(g.ctx, ro.ID, func(x *loaxa.Rollout) error {
			x.State = loaxa.RolloutDone
			if i%50 == 0 {
				x.State, x.Reason = loaxa.RolloutHalted, "canary n-0-0 failed: rolled back from 2.0"
			}
			for n := range 100 {
				x.Nodes = append(x.Nodes, loaxa.RolloutNode{Node: fmt.Sprintf("n-%d-%d", i, n), Canary: n < 3, State: loaxa.RolloutNodeUpdated,
					SentAt: g.clk.Now(), FirstSentAt: g.clk.Now(), At: g.clk.Now()})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := g.r.Start(g.ctx, "3.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 3, "admin"); err != nil {
		b.Fatal(err)
	}
	g.r.pass(g.ctx) // the canaries are asked
	b.ReportAllocs()
	for b.Loop() {
		g.r.pass(g.ctx)
	}
}
