package fetchbench

import (
	"fmt"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// BenchmarkStandingList times GET /api/v1/content/standing for a province
// officer over N nodes (LOAXA_BENCH_NODES, default 10000), each of which
// runs the desired state that names the standing warning: the worst case,
// where the count reads every node's desired state. The emergency form
// asks it without waiting for it; the library waits.
//
//	LOAXA_BENCH_NODES=10000 go test -run '^$' -bench StandingList -benchtime 20x ./e2e/fetchbench/
func BenchmarkStandingList(b *testing.B) {
	n := benchNodes(10000)
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	for from := 0; from < n; from += 1000 {
		var reqs []map[string]any
		for i := from; i < min(from+1000, n); i++ {
			reqs = append(reqs, map[string]any{"id": fmt.Sprintf("cum-%05d", i), "name": "Cụm loa", "area": fmt.Sprintf("31%03d", i%100), "lat": 20.8, "lon": 106.7})
		}
		if from == 0 {
			for i := range 100 {
				c.CreateArea(fmt.Sprintf("31%03d", i), fmt.Sprintf("Xã %03d", i), "31")
			}
		}
		c.MustDo("POST", "/api/v1/nodes/batch", map[string]any{"nodes": reqs}, nil)
	}
	warning := c.Upload("canh-bao.wav", speechWAV(20*time.Second))
	c.MustDo("PUT", "/api/v1/content/"+warning.ID+"/standing", map[string]any{"areas": []string{"31"}}, nil)
	ctx := b.Context()
	rig.Eventually(b, 5*time.Minute, "every node's desired state names the warning", func() bool {
		nodes, err := c.App.Nodes.FindNodes(ctx, loaxa.NodeFilter{})
		if err != nil {
			b.Fatal(err)
		}
		for _, node := range nodes {
			d, err := c.App.Desired.FindDesired(ctx, node.ID)
			if err != nil || len(d.State.Content) != 3 {
				return false
			}
		}
		return true
	})
	nodes, err := c.App.Nodes.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		b.Fatal(err)
	}
	for _, node := range nodes {
		d, err := c.App.Desired.FindDesired(ctx, node.ID)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.App.Nodes.UpdateNodeStatus(ctx, node.ID, func(s *loaxa.NodeStatus) {
			s.DesiredVersion, s.RunningVersion = d.State.Version, d.State.Version
		}); err != nil {
			b.Fatal(err)
		}
	}
	var l struct{ Standing []struct{ Nodes, Ready int } }
	for b.Loop() {
		c.MustDo("GET", "/api/v1/content/standing", nil, &l)
	}
	if len(l.Standing) != 1 || l.Standing[0].Nodes != n || l.Standing[0].Ready != n {
		b.Fatalf("standing list %+v, want %d nodes, all ready", l, n)
	}
}
