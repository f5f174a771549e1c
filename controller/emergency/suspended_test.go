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

// TestReportSaysWhetherLateMessagesPlayedInStep: two nodes began with the
// chime and said when they began the message: one on the others' second
// repeat, one 300 ms off it; a third had it in time and says nothing. The
// report says which, and counts them.
func TestReportSaysWhetherLateMessagesPlayedInStep(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	grid, err := s.messageGrid(context.Background(), em)
	if err != nil || grid == nil || grid.Repeats != em.Repeat || grid.BaseMS <= 0 || grid.PeriodMS <= Gap.Milliseconds() {
		t.Fatalf("the alert's message grid %+v, %v", grid, err)
	}
	w.online(s, "n3")
	start := em.Areas[0].Start
	joined := grid.BaseMS + grid.PeriodMS
	for node, message := range map[string]int64{"n1": joined, "n2": joined + 300, "n3": 0} {
		w.report(s, node, protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
		w.report(s, node, protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: start, ContentPending: message != 0})
		w.report(s, node, protocol.Event{Type: protocol.EventCompleted, Occurrence: em.Occurrence, At: start.Add(time.Minute), PlayedMS: em.PlannedMS, MessageMS: message})
	}
	rep, err := s.EmergencyReport(context.Background(), em.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Nodes {
		switch n.Node {
		case "n1", "n2":
			if n.MessageMS == nil || n.MessageInStep == nil || *n.MessageInStep != (n.Node == "n1") {
				t.Errorf("%s: message_ms %v, in step %v; want n1 in step, n2 not", n.Node, n.MessageMS, n.MessageInStep)
			}
		case "n3":
			if n.MessageMS != nil || n.MessageInStep != nil {
				t.Errorf("n3 had the message in time, and the report says it began it at %v (in step %v)", n.MessageMS, n.MessageInStep)
			}
		}
	}
	if tm := rep.Timing; tm.MessageLate != 2 || tm.MessageInStep != 1 {
		t.Errorf("timing: %d late messages, %d in step; want 2 and 1", tm.MessageLate, tm.MessageInStep)
	}
}
