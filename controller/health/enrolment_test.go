package health_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestAreaHealthLeavesOutClustersAwaitingTheirCode: a commune whose new
// poles had codes issued before the installers put them up read a health
// score of a fraction of its clusters, its two working clusters counted
// against three poles that were not there yet. A node waiting for its
// code is counted apart as awaiting enrolment (not as never connected),
// raises no alarm however long it waits, and is no part of the score.
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
	if h.Nodes != 5 || h.Online != 2 || h.Never != 0 || h.AwaitingEnrolment != 3 || h.Healthy != 2 || h.Score != 100 {
		t.Errorf("area health %+v; want 5 nodes, 2 online and healthy, 3 awaiting enrolment and none never connected, score 100", *h)
	}
}

// TestHealthCountsClustersAwaitingTheirCodeApartFromNeverSeen: the area
// health and the nodes by state (GET /metrics loaxa_nodes{state}) counted
// a pole waiting for its enrolment code as "never" connected, beside a
// board put up and enrolled that never connected: monitoring watching
// "never" saw 200 codes issued ahead of the installers as 200 boards
// that did not come up. Alerts and live calls leave such poles out, and
// say how many wait (awaiting_enrolment); so do the health counts, and a
// pole counts as never connected from when its code is redeemed.
func TestHealthCountsClustersAwaitingTheirCodeApartFromNeverSeen(t *testing.T) {
	ctx := context.Background()
	db, clk := communeStore(t, t.TempDir())
	nodes := bolt.NewNodeService(db)
	if err := nodes.CreateNodes(ctx, []*loaxa.Node{
		{ID: "a1", Area: "12346", SecretHash: loaxa.HashSecret("a1")}, // up and online
		{ID: "e1", Area: "12346", SecretHash: loaxa.HashSecret("e1")}, // enrolled, never connected
		{ID: "w1", Area: "12346"}, {ID: "w2", Area: "12346"},          // waiting for their code
	}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.UpdateNodeStatus(ctx, "a1", func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOnline, clk.Now(), 60000
	}); err != nil {
		t.Fatal(err)
	}
	m := openMonitor(t, db, clk)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	check := func(when string, never, awaiting int) {
		t.Helper()
		h, err := m.AreaHealth(ctx, "12346")
		if err != nil {
			t.Fatal(err)
		}
		if h.Nodes != 4 || h.Online != 1 || h.Never != never || h.AwaitingEnrolment != awaiting {
			t.Errorf("%s: area health %+v; want 4 nodes, 1 online, %d never connected, %d awaiting enrolment", when, *h, never, awaiting)
		}
		st := m.Status()
		if st.Nodes[loaxa.NodeNever] != never || st.Nodes[loaxa.MonitorAwaitingEnrolment] != awaiting || st.Nodes[loaxa.NodeOnline] != 1 {
			t.Errorf("%s: nodes by state %v; want %d never, %d %s, 1 online", when, st.Nodes, never, awaiting, loaxa.MonitorAwaitingEnrolment)
		}
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "loaxa_nodes" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				got[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
			}
		}
		if got[loaxa.NodeNever] != float64(never) || got[loaxa.MonitorAwaitingEnrolment] != float64(awaiting) {
			t.Errorf("%s: loaxa_nodes %v; want never %d, %s %d", when, got, never, loaxa.MonitorAwaitingEnrolment, awaiting)
		}
	}
	check("two poles waiting for their code", 1, 2)

	// w1 is put up: its code redeemed, it is enrolled, not connected yet.
	if _, err := nodes.SetNodeSecret(ctx, "w1", loaxa.NodeSecret{Hash: loaxa.HashSecret("w1"), BrokerHash: "x"}); err != nil {
		t.Fatal(err)
	}
	m.ReloadNodes(ctx)
	check("one put up", 2, 1)
}
