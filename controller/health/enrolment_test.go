package health_test

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestAreaHealthLeavesOutClustersAwaitingTheirCode: a commune whose new
// poles had codes issued before the installers put them up read a health
// score of a fraction of its clusters, its two working clusters counted
// against three poles that were not there yet. A node waiting for its
// code is counted (in never, and apart as awaiting enrolment), raises no
// alarm however long it waits, and is no part of the score.
func TestAreaHealthLeavesOutClustersAwaitingTheirCode(t *testing.T) {
	ctx := context.Background()
	db, clk := communeStore(t, t.TempDir())
	nodes := bolt.NewNodeService(db)
	up := []*loaxa.Node{{ID: "a1", Area: "12346", SecretHash: loaxa.HashSecret("a1")}, {ID: "a2", Area: "12346", SecretHash: loaxa.HashSecret("a2")}}
	awaiting := []*loaxa.Node{{ID: "w1", Area: "12346"}, {ID: "w2", Area: "12346"}, {ID: "w3", Area: "12346"}}
	if err := nodes.CreateNodes(ctx, append(up, awaiting...)); err != nil {
		t.Fatal(err)
	}
	m := openMonitor(t, db, clk)
	clk.Advance(7 * 24 * time.Hour)
	for _, n := range up {
		if err := nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) {
			s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOnline, clk.Now(), 60000
		}); err != nil {
			t.Fatal(err)
		}
	}
	m.SweepNow(ctx)
	if st := m.Status(); st.OpenAlarms != 0 {
		t.Errorf("%d alarms open a week after the codes were issued; want none", st.OpenAlarms)
	}
	h, err := m.AreaHealth(ctx, "12346")
	if err != nil {
		t.Fatal(err)
	}
	if h.Nodes != 5 || h.Online != 2 || h.Never != 3 || h.AwaitingEnrolment != 3 || h.Healthy != 2 || h.Score != 100 {
		t.Errorf("area health %+v; want 5 nodes, 2 online and healthy, 3 never connected and awaiting enrolment, score 100", *h)
	}
}
