package e2e

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// TestMovedClusterHearsItsNewCommune: a cluster, once enrolled, could not
// be moved to another commune at all. Moved (PATCH /api/v1/nodes/{id})
// from commune A to its neighbour B while B's alert is on air, cluster
// a1 is sent that alert and plays it; its desired state names B's chain
// and B's bulletin instead of A's; an alert to A then sounds on a2 and
// not on a1, and one to B sounds on a1 from B's area publish. Run on the
// embedded broker, which regrants the node's connection at once.
func TestMovedClusterHearsItsNewCommune(t *testing.T) {
	t.Parallel()
	c, nodes, logs := emergencyFleetOn(t, nil)
	testMovedCluster(t, c, nodes, logs, nil)
}

// TestMovedClusterHearsItsNewCommuneMosquitto is the same through a real
// Mosquitto installed from the files the controller exports: the answer
// to the move says to export them again; once the operator has installed
// them and reloaded Mosquitto, the cluster hears its new commune's area
// publishes.
func TestMovedClusterHearsItsNewCommuneMosquitto(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c, nodes, logs := emergencyFleetOn(t, m)
	testMovedCluster(t, c, nodes, logs, m)
}

func testMovedCluster(t *testing.T, c *rig.Controller, nodes map[string]*rig.Node, logs map[string]*nodeLog, m *rig.Mosquitto) {
	// A bulletin for each commune, far enough ahead to be planned only.
	news := c.Upload("thoi-su.wav", rig.ToneWAV(440, 2*time.Second, 16000, 1))
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	annA := c.Announce(news.ID, []string{"12346"}, nil, start)
	annB := c.Announce(news.ID, []string{"12347"}, nil, start.Add(time.Minute))
	occA, occB := loaxa.OccurrenceID(annA.ID, start), loaxa.OccurrenceID(annB.ID, start.Add(time.Minute))
	desired := func() *protocol.DesiredState {
		var d loaxa.Desired
		c.MustDo("GET", "/api/v1/nodes/a1/desired", nil, &d)
		return d.State
	}
	plans := func(d *protocol.DesiredState, occ string) bool {
		return slices.ContainsFunc(d.Occurrences, func(o protocol.Occurrence) bool { return o.ID == occ })
	}
	rig.Eventually(t, 20*time.Second, "a1 plans commune A's bulletin", func() bool { return plans(desired(), occA) })
	for _, n := range nodes {
		c.AwaitKept(n, 30*time.Second)
	}

	// Commune B's alert goes on air while a1 is still A's.
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 8*time.Second, 16000, 1))
	var onAir loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &onAir)
	rig.Eventually(t, 10*time.Second, "b1 plays B's alert", func() bool { return playing(nodes["b1"]) == onAir.Occurrence })

	var moved struct {
		Node   loaxa.Node `json:"node"`
		Notice string     `json:"notice"`
	}
	c.MustDo("PATCH", "/api/v1/nodes/a1", map[string]any{"area": "12347", "name": "Cụm loa chợ Đôi (chuyển sang Tiên Minh)"}, &moved)
	if moved.Node.Area != "12347" || (m != nil) != (moved.Notice != "") {
		t.Errorf("the move answered %s", rig.Describe(moved))
	}
	if m != nil {
		// What the operator does (docs/deploy.md): export the files again,
		// install them, reload Mosquitto. Until then Mosquitto delivers
		// the cluster nothing of its new commune's topics (it grants the
		// subscription and filters the deliveries, so the cluster cannot
		// tell); the alert on air still reaches it on its own topic.
		var files struct{ Files map[string]string }
		c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
		m.SetAuth(files.Files["loaxa.passwd"], files.Files["loaxa.acl"])
	}
	rig.Eventually(t, 30*time.Second, "a1 plays B's alert on air", func() bool { return playing(nodes["a1"]) == onAir.Occurrence })
	rig.Eventually(t, 30*time.Second, "a1 hears every area of its new chain", func() bool {
		st := c.Node("a1").Status
		return len(st.AreasUnheard) == 0 && st.State == loaxa.NodeOnline
	})
	d := desired()
	if !slices.Equal(d.Areas, []string{"12347", "318", "31"}) || !plans(d, occB) || plans(d, occA) {
		t.Errorf("a1's desired state after the move: areas %v, plans B's bulletin %v, A's %v; want B's chain and bulletin only",
			d.Areas, plans(d, occB), plans(d, occA))
	}
	rig.Eventually(t, 20*time.Second, "a1 runs its new desired state", func() bool {
		return nodes["a1"].Agent.Status().DesiredVersion >= d.Version
	})
	rig.Eventually(t, 30*time.Second, "B's alert completed on b1 and a1", func() bool { return report(c, onAir.ID).Summary.Completed == 2 })
	if rep := report(c, onAir.ID); rep.Summary.Targeted != 2 {
		t.Errorf("B's alert after a1 moved in: %s; want a1 targeted too", rig.Describe(rep.Summary))
	}

	// An alert to A sounds on a2, not on a1; then one to B on a1, from
	// B's area publish. The controller publishes both in order, so once
	// a1 has B's, A's would have reached it before.
	var toA, toB loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "drill": true}, &toA)
	rig.Eventually(t, 10*time.Second, "a2 plays A's alert", func() bool { return playing(nodes["a2"]) == toA.Occurrence })
	if toA.Areas[0].Nodes != 1 {
		t.Errorf("A's alert targets %d clusters, want a2 alone", toA.Areas[0].Nodes)
	}
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &toB)
	rig.Eventually(t, 10*time.Second, "a1 plays B's second alert", func() bool { return playing(nodes["a1"]) == toB.Occurrence })
	if got := logs["a1"].count(`occurrence=` + toB.Occurrence + ` to=area/12347 `); got != 1 {
		t.Errorf("a1 took B's second alert from B's area publish %d times, want once", got)
	}
	if got := logs["a1"].count(toA.Occurrence); got != 0 {
		t.Errorf("a1, moved out of A, heard A's alert (%d log lines)", got)
	}
	if counts := rig.CountEvents(c.Events(url.Values{"node": {"a1"}}), toA.Occurrence); len(counts) != 0 {
		t.Errorf("a1, moved out of A, reported A's alert: %v", counts)
	}
	// The planned deliveries follow: B's bulletin is a1's, A's no longer.
	has := func(ann, node string) bool {
		return slices.ContainsFunc(c.Deliveries(ann), func(d *loaxa.Delivery) bool { return d.Node == node })
	}
	if has(annA.ID, "a1") || !has(annB.ID, "a1") {
		t.Errorf("deliveries after the move: a1 in A's bulletin %v, in B's %v; want B's only", has(annA.ID, "a1"), has(annB.ID, "a1"))
	}
}
