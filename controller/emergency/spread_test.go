package emergency

import (
	"context"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestReportSpreadWindow(t *testing.T) {
	for _, c := range []struct {
		nodes int
		want  time.Duration
	}{
		{0, 0},
		{30, 0}, // a commune reports at once
		{200, 0},
		{201, 201 * time.Millisecond},
		{1000, time.Second},
		{5000, 5 * time.Second},
		{10000, 10 * time.Second},
		{100000, 10 * time.Second},
	} {
		if got := DefaultReportSpread.Window(c.nodes); got != c.want {
			t.Errorf("%d nodes: window %v, want %v", c.nodes, got, c.want)
		}
	}
	if got := (ReportSpread{}).Window(10000); got != 0 {
		t.Errorf("zero spread: window %v, want none", got)
	}
}

// TestAlertCarriesReportWindow: an area's alert tells its nodes the window
// chosen from its number of nodes, and the emergency records it; a
// controller restarted mid-emergency resends the same alert.
func TestAlertCarriesReportWindow(t *testing.T) {
	ctx := context.Background()
	w, _, em := sendSpread(t)
	if got := em.Areas[0].ReportWindowMS; got != 3000 {
		t.Errorf("emergency records a window of %d ms, want 3000", got)
	}
	if a := w.rec.lastSent("area/31").Alert; a == nil || a.ReportWindowMS != 3000 {
		t.Fatalf("area alert %+v, want a window of 3000 ms", a)
	}
	s2 := w.service() // a restarted controller
	w.rec.take()
	if got := w.step(s2, 5100*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert", "node/n2 alert"}) {
		t.Fatalf("after the bound: %v, want the online nodes resent to", got)
	}
	if a := w.rec.lastSent("node/n1").Alert; a == nil || a.ReportWindowMS != 3000 {
		t.Errorf("resent alert %+v, want the window of 3000 ms", a)
	}

	// A small area: no window.
	s3 := w.service()
	s3.Spread = ReportSpread{MinNodes: 3, PerNode: time.Second, Max: 10 * time.Second}
	em, err := s3.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if a := w.rec.lastSent("area/31").Alert; em.Areas[0].ReportWindowMS != 0 || a == nil || a.ReportWindowMS != 0 {
		t.Errorf("small area: window %d ms, alert %+v; want none", em.Areas[0].ReportWindowMS, a)
	}
}

// TestResendBoundIncludesReportWindow: nodes are not resent to while
// their receipt may still be waiting out the report window: the bound is
// the ack bound (or twice the lead) plus the window.
func TestResendBoundIncludesReportWindow(t *testing.T) {
	w, s, _ := sendSpread(t)
	w.rec.take()
	if got := w.step(s, 2100*time.Millisecond); len(got) != 0 {
		t.Errorf("resent %v after the ack bound, within the window", got)
	}
	if got := w.step(s, 2800*time.Millisecond); len(got) != 0 {
		t.Errorf("resent %v 4.9 s after the publish: the bound is 2 s + the 3 s window", got)
	}
	if got := w.step(s, 200*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert", "node/n2 alert"}) {
		t.Errorf("5.1 s after the publish: %v, want the online nodes resent to", got)
	}
}

// TestCancelResendBoundIncludesReportWindow: after a cancel, a node that
// had the alert is sent the cancel again only once its final event has
// had the report window to come.
func TestCancelResendBoundIncludesReportWindow(t *testing.T) {
	ctx := context.Background()
	w, s, em := sendSpread(t)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	if _, err := s.CancelEmergency(ctx, em.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	if got := w.step(s, 4900*time.Millisecond); slices.Contains(got, "node/n1 alert-cancel") {
		t.Errorf("cancel resent to n1 4.9 s after the cancel: the bound is 2 s + the 3 s window")
	}
	if got := w.step(s, 200*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert-cancel"}) {
		t.Errorf("5.1 s after the cancel: %v, want the cancel again to n1", got)
	}
}

// sendSpread sends an emergency to area 31 (3 nodes) with a spread of
// 1 s a node above 2 nodes: a 3 s window.
func sendSpread(t *testing.T) (*world, *Service, *loaxa.Emergency) {
	t.Helper()
	w := newWorld(t)
	s := w.service()
	s.Spread = ReportSpread{MinNodes: 2, PerNode: time.Second, Max: 10 * time.Second}
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return w, s, em
}
