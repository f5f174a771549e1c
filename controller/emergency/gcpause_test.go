package emergency

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/gcpause"
	"loaxa.vn/protocol"
)

// heldAtPublish is the recorder noting whether the garbage collector was
// held off (gcpause) when an alert was published.
type heldAtPublish struct {
	*recorder
	held []bool
}

func (h *heldAtPublish) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	if cmd.Name == protocol.CmdAlert {
		h.held = append(h.held, gcpause.Held())
	}
	return h.recorder.SendAreaCommand(ctx, area, cmd, ttl)
}

// TestPublishHoldsTheCollectorOff: an alert is published with the garbage
// collector's new cycles held off, and the hold ends by itself once the
// area's lead has passed (real time: gcpause's timer is).
func TestPublishHoldsTheCollectorOff(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	h := &heldAtPublish{recorder: w.rec}
	s.Messenger = h
	// An alert of an earlier test may hold it still, for its lead.
	waitUnheld(t, DefaultLead.Max+10*time.Second)
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.held) != 1 || !h.held[0] {
		t.Fatalf("held off at the alert's publishes: %v, want [true]", h.held)
	}
	waitUnheld(t, time.Duration(em.Areas[0].LeadMS)*time.Millisecond+10*time.Second)
}

// waitUnheld waits until no hold keeps the collector off, at most d.
func waitUnheld(t *testing.T, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); gcpause.Held(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the collector still held off after %v", d)
		}
	}
}
