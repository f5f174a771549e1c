package emergency

import (
	"context"
	"errors"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// heldDeliveries stores deliveries only once the alert was published, as
// a busy store at 10,000 nodes does 90 ms after the publish began.
type heldDeliveries struct {
	loaxa.DeliveryService
	published <-chan struct{}
}

func (d *heldDeliveries) EnsureDeliveries(ctx context.Context, ds []*loaxa.Delivery) error {
	select {
	case <-d.published:
	case <-time.After(5 * time.Second):
		return errors.New("the alert was not published while its deliveries were stored")
	}
	return d.DeliveryService.EnsureDeliveries(ctx, ds)
}

// reportingFirst is the broker and a fast node: as the alert is published,
// n1 reports it received, before the emergency's deliveries are stored.
type reportingFirst struct {
	*recorder
	w         *world
	s         *Service
	published chan struct{}
}

func (r *reportingFirst) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	if err := r.recorder.SendAreaCommand(ctx, area, cmd, ttl); err != nil {
		return err
	}
	r.w.report(r.s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: cmd.Alert.Occurrence.ID, At: r.w.fc.Now()})
	close(r.published)
	return nil
}

// TestPublishDoesNotWaitForDeliveries: the alert goes out while its
// deliveries are stored, and a node's report that comes first leaves a
// delivery with the emergency's plan (start instant, level, drill mark) and
// the node's receipt.
func TestPublishDoesNotWaitForDeliveries(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	published := make(chan struct{})
	s.Deliveries = &heldDeliveries{DeliveryService: s.Deliveries, published: published}
	s.Messenger = &reportingFirst{recorder: w.rec, w: w, s: s, published: published}
	ctx := context.Background()
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Drill: true, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("%d deliveries, want one for each of the 3 nodes", len(ds))
	}
	for _, d := range ds {
		if d.Unplanned || !d.Start.Equal(em.Areas[0].Start) || d.Priority != protocol.PriorityEmergency || d.PlannedMS != em.PlannedMS || !d.Drill {
			t.Errorf("delivery to %s: %+v, want the plan: start %v, emergency, %d ms, drill", d.Node, d, em.Areas[0].Start, em.PlannedMS)
		}
		if got := !d.ReceivedAt.IsZero(); got != (d.Node == "n1") {
			t.Errorf("delivery to %s: received at %v; only n1 reported", d.Node, d.ReceivedAt)
		}
	}
}

// TestReportTiming: the report says how fast the alert reached the
// speakers from the nodes' own reports: when each had it, when each began
// (its area's lead plus its late_ms), and which began out of step.
func TestReportTiming(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	ctx := context.Background()
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	lead := em.Areas[0].LeadMS
	start := em.Areas[0].Start
	occ := em.Occurrence
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: em.Issued.Add(100 * time.Millisecond)})
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: em.Issued.Add(300 * time.Millisecond)})
	w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: occ, At: start.Add(5 * time.Millisecond), LateMS: 5})
	w.report(s, "n2", protocol.Event{Type: protocol.EventStarted, Occurrence: occ, At: start.Add(40 * time.Millisecond), LateMS: 40})
	rep, err := s.EmergencyReport(ctx, em.ID)
	if err != nil {
		t.Fatal(err)
	}
	sound := map[string]int64{}
	for _, n := range rep.Nodes {
		if n.SoundMS != nil {
			sound[n.Node] = *n.SoundMS
		}
	}
	if len(sound) != 2 || sound["n1"] != lead+5 || sound["n2"] != lead+40 {
		t.Errorf("sound_ms %v, want n1 %d and n2 %d (lead %d ms + late_ms), none for n3", sound, lead+5, lead+40, lead)
	}
	if len(rep.ByArea) != 1 || rep.ByArea["31"] != rep.Summary {
		t.Errorf("by area %+v, want area 31 counted as the whole %+v", rep.ByArea, rep.Summary)
	}
	tm := rep.Timing
	if tm.Received != 2 || tm.ReceivedMS == nil || *tm.ReceivedMS != (loaxa.Percentiles{P50: 100, P99: 300, Max: 300}) {
		t.Errorf("receipts: %d, %+v; want 2 with p50 100, p99 300", tm.Received, tm.ReceivedMS)
	}
	if tm.Started != 2 || tm.SoundMS == nil || tm.SoundMS.P99 != lead+40 || tm.SkewMS == nil || tm.SkewMS.P99 != 40 || tm.OffStart != 1 {
		t.Errorf("starts: %d, sound %+v, skew %+v, %d off the start; want 2, p99 %d, skew p99 40, 1 off", tm.Started, tm.SoundMS, tm.SkewMS, tm.OffStart, lead+40)
	}
}
