package emergency

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

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

// writtenLater is reportingFirst with a broker that tells when it has
// written the alert out: AwaitFanout notes the limit it was given and the
// deliveries stored by then.
type writtenLater struct {
	*reportingFirst
	limit  time.Duration
	stored []*loaxa.Delivery
	err    error
}

func (m *writtenLater) AwaitFanout(ctx context.Context, limit time.Duration) {
	m.limit = limit
	m.stored, m.err = m.s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{})
}

// TestPlanStoredAfterTheFanout: the alert goes out before its deliveries
// are stored, and they are stored once the broker says it has written it
// out, which it is given until the area's start to do; a node's report
// that comes first leaves a delivery with the emergency's plan (start
// instant, level, drill mark) and the node's receipt.
func TestPlanStoredAfterTheFanout(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	published := make(chan struct{})
	m := &writtenLater{reportingFirst: &reportingFirst{recorder: w.rec, w: w, s: s, published: published}}
	s.Messenger = m
	ctx := context.Background()
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Drill: true, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if m.err != nil {
		t.Fatal(m.err)
	}
	if len(m.stored) != 1 || m.stored[0].Node != "n1" || !m.stored[0].Unplanned {
		t.Errorf("while the broker wrote the alert out, deliveries %+v were stored; want only n1's, made by its report", m.stored)
	}
	if want := time.Duration(em.Areas[0].LeadMS) * time.Millisecond; m.limit != want {
		t.Errorf("the broker was given %v to write the alert out, want until the start, %v", m.limit, want)
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
