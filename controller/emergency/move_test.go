package emergency

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

// TestClusterMovedIntoAnAlertIsSentIt: a cluster moved to a commune while
// an alert is on air there heard nothing of it: the alert went to the
// commune's topic before the cluster could hear it, and the resends
// follow the nodes targeted when it was sent. Once moved (NodeMoved), it
// is given its delivery and sent the alert with the next resend pass,
// counted in the report, and followed after a restart. A cluster moved
// out keeps the alert it had.
func TestClusterMovedIntoAnAlertIsSentIt(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "m1", Name: "m1", Area: "32", SecretHash: loaxa.HashSecret("m1")}); err != nil {
		t.Fatal(err)
	}
	w.online(s, "m1")
	em := w.send(s)
	w.report(s, "n1", w.alertEvent(em)(protocol.EventReceived))
	w.report(s, "n2", w.alertEvent(em)(protocol.EventReceived))

	moveNode(t, s, "m1", "31")
	moveNode(t, s, "n1", "32")
	if got := w.step(s, 600*time.Millisecond); !slices.Equal(got, []string{"node/m1 alert"}) {
		t.Errorf("m1 moved into the alert's area: sent %v, want the alert", got)
	}
	nodes, sum := nodesOf(t, s, em.ID)
	if n, ok := nodes["m1"]; !ok || n.Resends != 1 || sum.Targeted != 4 {
		t.Errorf("report once m1 moved in: m1 %+v (%v), summary %+v; want m1 targeted, sent it once, 4 targeted", n, ok, sum)
	}
	if n := nodes["n1"]; n.State == "" {
		t.Errorf("n1, moved out after it had the alert, left the report: %+v", nodes)
	}
	// Moved again within the alert's area: nothing more to send.
	if err := s.NodeMoved(ctx, "m1", "31"); err != nil {
		t.Fatal(err)
	}
	w.report(s, "m1", w.alertEvent(em)(protocol.EventReceived))
	if got := w.step(s, 2500*time.Millisecond); slices.Contains(got, "node/m1 alert") {
		t.Errorf("m1 acknowledged: sent %v", got)
	}

	s2 := w.service()
	if _, sum := nodesOf(t, s2, em.ID); sum.Targeted != 4 || sum.Reached != 3 {
		t.Errorf("after a restart %+v; want 4 targeted, 3 reached (n1, n2, m1)", sum)
	}
}

// TestClusterMovedIntoAnAlertOfflineIsSentItAfterARestart: a cluster is
// taken down and moved to a commune under an alert on air (PATCH
// /nodes/{id}), and the controller restarts (an upgrade) before the
// cluster is up again there. Before, the restarted controller took it for
// a node of the area that had no delivery of the alert, none of the
// alert's (not one waiting for its code when it was sent), and the
// cluster, up again under the alert, was never sent it: it had missed the
// area's publish, made before it belonged there. It is followed as one
// moved in, sent the alert once online, and counted.
func TestClusterMovedIntoAnAlertOfflineIsSentItAfterARestart(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "m1", Name: "m1", Area: "32", SecretHash: loaxa.HashSecret("m1")}); err != nil {
		t.Fatal(err)
	}
	w.fc.Advance(time.Hour) // m1 enrolled well before the alert
	em := w.send(s)
	w.report(s, "n1", w.alertEvent(em)(protocol.EventReceived))
	w.report(s, "n2", w.alertEvent(em)(protocol.EventReceived))
	moveNode(t, s, "m1", "31")
	if got := w.step(s, 600*time.Millisecond); slices.Contains(got, "node/m1 alert") {
		t.Errorf("m1, offline, was sent %v", got)
	}

	s2 := w.service()
	w.online(s2, "m1")
	if got := w.step(s2, 600*time.Millisecond); !slices.Contains(got, "node/m1 alert") {
		t.Errorf("m1 up again after the restart: sent %v, want the alert", got)
	}
	if nodes, sum := nodesOf(t, s2, em.ID); nodes["m1"].Node == "" || sum.Targeted != 4 {
		t.Errorf("report after the restart: m1 %+v, summary %+v; want m1 targeted, 4 targeted", nodes["m1"], sum)
	}
}

// TestClusterMovedIntoAnAlertLeavesTheClustersAwaitingTheirCodeCounted: a
// cluster moved into a commune under an alert, which is given its
// delivery and counted, took one off the commune's clusters waiting for
// their code: the report read each delivery beyond those the alert
// targeted as a pole put up since, and the board said "0 cụm loa … đang
// chờ lắp đặt" while one still waited. Only a node that waited for its
// code at the send (enrolled after it) is one of those.
func TestClusterMovedIntoAnAlertLeavesTheClustersAwaitingTheirCodeCounted(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "m1", Name: "m1", Area: "32", SecretHash: loaxa.HashSecret("m1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "w1", Name: "w1", Area: "31"}); err != nil { // its code not redeemed
		t.Fatal(err)
	}
	w.online(s, "m1")
	w.fc.Advance(time.Hour) // the clusters enrolled well before the alert
	em := w.send(s)
	if a := em.Areas[0]; a.Nodes != 3 || a.AwaitingEnrolment != 1 {
		t.Fatalf("area 31 of the alert: %+v; want 3 clusters, w1 awaiting its code", a)
	}
	moveNode(t, s, "m1", "31")
	if got := w.step(s, 600*time.Millisecond); !slices.Contains(got, "node/m1 alert") {
		t.Fatalf("m1 moved in: sent %v, want the alert", got)
	}
	if _, sum := nodesOf(t, s, em.ID); sum.Targeted != 4 || sum.AwaitingEnrolment != 1 {
		t.Errorf("summary once m1 moved in %+v; want 4 targeted, w1 still awaiting its code", sum)
	}
}

// TestClusterAwaitingItsCodeMovedInAndPutUpLeavesTheOthersCounted: w1,
// a pole of the alert's commune, and m1, one of Thái Bình, both wait for
// their code when the alert goes out; m1 is moved into the commune and put
// up, and is given the alert. The report took m1's delivery for a pole of
// the commune put up since the send and one off those waiting: "0 … đang
// chờ lắp đặt" while w1 still waited. While the alert is on air the
// service knows which clusters still wait: w1.
func TestClusterAwaitingItsCodeMovedInAndPutUpLeavesTheOthersCounted(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "w1", Name: "w1", Area: "31"}); err != nil { // its code not redeemed
		t.Fatal(err)
	}
	code := awaitingInThaiBinh(t, w, s)
	w.fc.Advance(time.Hour)
	em := w.send(s)
	if a := em.Areas[0]; a.AwaitingEnrolment != 1 {
		t.Fatalf("area 31 of the alert: %+v; want w1 awaiting its code", a)
	}
	moveNode(t, s, "m1", "31")
	if _, sum := nodesOf(t, s, em.ID); sum.AwaitingEnrolment != 2 {
		t.Errorf("summary once m1 moved in, its code not redeemed: %+v; want w1 and m1 awaiting their code", sum)
	}
	putUp(t, w, s, code)
	if got := w.step(s, 600*time.Millisecond); !slices.Equal(got, []string{"node/m1 alert"}) {
		t.Fatalf("m1 put up: sent %v, want the alert", got)
	}
	if nodes, sum := nodesOf(t, s, em.ID); nodes["m1"].Node == "" || sum.AwaitingEnrolment != 1 {
		t.Errorf("summary once m1 is up: %+v (m1 %+v); want m1 targeted, w1 still awaiting its code", sum, nodes["m1"])
	}
}

// TestClusterPutUpAfterAnAlertAndMovedInOfflineIsSentItAfterARestart: a
// cluster put up in Thái Bình after Hải Phòng's alert went out is taken
// down and moved to Hải Phòng while the alert is on air, and the
// controller restarts before the cluster is up again. The running
// controller sent it the alert (NodeMoved); the restarted one took it for
// a pole put up after the alert, none of the alert's, and the cluster, up
// again under the alert, never played it. Its move since the issue (the
// node's MovedAt) tells it from one put up there after the alert, which
// still is none of the alert's.
func TestClusterPutUpAfterAnAlertAndMovedInOfflineIsSentItAfterARestart(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	em := w.send(s)
	w.report(s, "n1", w.alertEvent(em)(protocol.EventReceived))
	w.report(s, "n2", w.alertEvent(em)(protocol.EventReceived))
	w.fc.Advance(time.Minute)
	for _, n := range []*loaxa.Node{
		{ID: "m1", Name: "m1", Area: "32", SecretHash: loaxa.HashSecret("m1")}, // moved in below
		{ID: "p1", Name: "p1", Area: "31", SecretHash: loaxa.HashSecret("p1")}, // put up under the alert
	} {
		if err := s.Nodes.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	w.fc.Advance(time.Minute)
	if after := moveNode(t, s, "m1", "31"); !after.MovedAt.Equal(w.fc.Now()) {
		t.Errorf("m1 moved at %v: MovedAt %v", w.fc.Now(), after.MovedAt)
	}
	if got := w.step(s, 600*time.Millisecond); len(got) != 0 {
		t.Errorf("m1 and p1 offline: sent %v", got)
	}

	s2 := w.service()
	w.online(s2, "m1", "p1")
	if got := w.step(s2, 600*time.Millisecond); !slices.Equal(got, []string{"node/m1 alert"}) {
		t.Errorf("m1 and p1 up after the restart: sent %v, want the alert to m1 alone", got)
	}
	nodes, sum := nodesOf(t, s2, em.ID)
	if nodes["m1"].Node == "" || nodes["p1"].Node != "" || sum.Targeted != 4 {
		t.Errorf("report after the restart: m1 %+v, p1 %+v, summary %+v; want m1 targeted, p1 not, 4 targeted", nodes["m1"], nodes["p1"], sum)
	}
}

// TestClusterAwaitingItsCodeAtAnAlertAndMovedInIsSentItAfterARestart: a
// cluster of Thái Bình whose board was not put up yet (its enrolment code
// not redeemed) when Hải Phòng's alert went out is moved to Hải Phòng
// while the alert is on air, and the controller restarts before the board
// is up. The running controller followed it as moved in (NodeMoved): sent
// the alert at its first pass online. The restarted one took it for one
// of the alert area's poles that waited for their code at the send,
// reached by the area's publish (it was not there then): once up, it was
// sent the alert only after the resend bound from the issue had passed,
// and the log said it had waited for its code.
func TestClusterAwaitingItsCodeAtAnAlertAndMovedInIsSentItAfterARestart(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	thaiBinh(t, s)
	code := awaitingInThaiBinh(t, w, s)
	w.fc.Advance(time.Hour)
	em := w.send(s)
	w.report(s, "n1", w.alertEvent(em)(protocol.EventReceived))
	w.report(s, "n2", w.alertEvent(em)(protocol.EventReceived))
	w.fc.Advance(200 * time.Millisecond)
	moveNode(t, s, "m1", "31")
	if got := w.step(s, 600*time.Millisecond); len(got) != 0 {
		t.Errorf("m1 not put up yet: sent %v", got)
	}

	s2 := w.service()
	var logs syncbuf.Buffer
	s2.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	putUp(t, w, s2, code)
	if got := w.step(s2, 600*time.Millisecond); !slices.Equal(got, []string{"node/m1 alert"}) {
		t.Errorf("m1 put up in Hải Phòng after the restart: sent %v, want the alert at once, as the running controller sends it", got)
	}
	if !strings.Contains(logs.String(), "moved into the alert's area") {
		t.Errorf("log once m1 is up: %s; want it said moved into the alert's area", logs.String())
	}
	nodes, sum := nodesOf(t, s2, em.ID)
	if n := nodes["m1"]; n.Node == "" || n.Resends != 1 || sum.Targeted != 4 || sum.AwaitingEnrolment != 0 {
		t.Errorf("report after the restart: m1 %+v, summary %+v; want m1 targeted, sent it once, 4 targeted, none awaiting its code", n, sum)
	}
}

// awaitingInThaiBinh adds m1, a cluster of Thái Bình (thaiBinh) whose
// enrolment code is not redeemed yet, and returns its code's hash.
func awaitingInThaiBinh(t *testing.T, w *world, s *Service) []byte {
	t.Helper()
	ctx := context.Background()
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "m1", Name: "m1", Area: "32"}); err != nil {
		t.Fatal(err)
	}
	code := loaxa.HashEnrolmentCode("CODE-m1")
	if err := s.Nodes.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code, Node: "m1", Expires: w.fc.Now().Add(7 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return code
}

// putUp has m1 redeem its code and come online.
func putUp(t *testing.T, w *world, s *Service, code []byte) {
	t.Helper()
	if _, err := s.Nodes.RedeemEnrolment(context.Background(), code, loaxa.NodeSecret{Hash: loaxa.HashSecret("m1"), BrokerHash: "x"}); err != nil {
		t.Fatal(err)
	}
	w.online(s, "m1")
}

// thaiBinh adds area 32, Thái Bình, beside the world's alert area 31.
func thaiBinh(t *testing.T, s *Service) {
	t.Helper()
	if err := s.Areas.CreateArea(context.Background(), &loaxa.Area{ID: "32", Name: "Thái Bình"}); err != nil {
		t.Fatal(err)
	}
}

// moveNode moves node to area to as PATCH /nodes/{id} does: stored there,
// then told to the service (NodeMoved). It returns the node as moved.
func moveNode(t *testing.T, s *Service, node, to string) *loaxa.Node {
	t.Helper()
	ctx := context.Background()
	_, after, err := s.Nodes.UpdateNodePlace(ctx, node, loaxa.NodePlace{Name: node, Area: to})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.NodeMoved(ctx, node, to); err != nil {
		t.Fatal(err)
	}
	return after
}
