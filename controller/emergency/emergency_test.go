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
