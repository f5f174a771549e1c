package emergency

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestSuspendedIsNotSounding: a node that began the alert and was cut off
// (its message stopped coming) is counted suspended, not sounding, with the
// reason, and keeps when it first sounded; started again, it sounds, and
// its sound_ms is still that of its first start.
func TestSuspendedIsNotSounding(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	w.fc.Advance(100 * time.Millisecond)
	start := em.Areas[0].Start
	for _, id := range []string{"n1", "n2"} {
		w.report(s, id, protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
		w.report(s, id, protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: start.Add(40 * time.Millisecond), LateMS: 40})
	}
	w.fc.Set(start.Add(70 * time.Second))
	w.report(s, "n1", protocol.Event{Type: protocol.EventSuspended, Occurrence: em.Occurrence, At: w.fc.Now(), Reason: protocol.ReasonContentMissing})

	nodes, sum := nodesOf(t, s, em.ID)
	if want := (loaxa.EmergencySummary{Targeted: 3, Reached: 2, Sounding: 1, Suspended: 1, Offline: 1}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	n1 := nodes["n1"]
	wantSound := em.Areas[0].LeadMS + 40
	if n1.State != string(loaxa.DeliverySuspended) || n1.Reason != protocol.ReasonContentMissing || n1.SoundMS == nil || *n1.SoundMS != wantSound {
		t.Errorf("n1 suspended: %+v (sound_ms %v), want suspended content-missing, sound_ms %d", n1, n1.SoundMS, wantSound)
	}

	w.fc.Advance(5 * time.Second)
	w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: w.fc.Now(), LateMS: 75040})
	nodes, sum = nodesOf(t, s, em.ID)
	if want := (loaxa.EmergencySummary{Targeted: 3, Reached: 2, Sounding: 2, Offline: 1}); sum != want {
		t.Errorf("summary once n1 plays again %+v, want %+v", sum, want)
	}
	if n1 := nodes["n1"]; n1.State != string(loaxa.DeliveryStarted) || n1.Reason != "" || n1.SoundMS == nil || *n1.SoundMS != wantSound {
		t.Errorf("n1 playing again: %+v (sound_ms %v), want started, no reason, sound_ms %d", n1, n1.SoundMS, wantSound)
	}
}
