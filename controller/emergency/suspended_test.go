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

// TestReportSaysWhetherLateMessagesPlayedInStep: three nodes began with
// the chime and said when they began the message: one on the others'
// second repeat, one that began the alert itself 500 ms late and its
// message 500 ms sooner after that (on the second repeat too, counted from
// the area's start), one 300 ms off it; a fourth had it in time and says
// nothing. The report says which, and counts them.
func TestReportSaysWhetherLateMessagesPlayedInStep(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	if err := s.Nodes.CreateNode(context.Background(), &loaxa.Node{ID: "n4", Name: "n4", Area: "31", SecretHash: loaxa.HashSecret("n4")}); err != nil {
		t.Fatal(err)
	}
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	grid, err := s.messageGrid(context.Background(), em)
	if err != nil || grid == nil || grid.Repeats != em.Repeat || grid.BaseMS <= 0 || grid.PeriodMS <= Gap.Milliseconds() {
		t.Fatalf("the alert's message grid %+v, %v", grid, err)
	}
	w.online(s, "n3", "n4")
	start := em.Areas[0].Start
	joined := grid.BaseMS + grid.PeriodMS
	for _, n := range []struct {
		node            string
		lateMS, message int64
	}{{"n1", 0, joined}, {"n2", 500, joined - 500}, {"n3", 0, joined + 300}, {"n4", 0, 0}} {
		w.report(s, n.node, protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
		w.report(s, n.node, protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: start.Add(time.Duration(n.lateMS) * time.Millisecond), LateMS: n.lateMS, ContentPending: n.message != 0})
		w.report(s, n.node, protocol.Event{Type: protocol.EventCompleted, Occurrence: em.Occurrence, At: start.Add(time.Minute), PlayedMS: em.PlannedMS, MessageMS: n.message})
	}
	rep, err := s.EmergencyReport(context.Background(), em.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Nodes {
		switch n.Node {
		case "n1", "n2", "n3":
			if n.MessageMS == nil || n.MessageInStep == nil || *n.MessageInStep != (n.Node != "n3") {
				t.Errorf("%s: message_ms %v, in step %v; want n1 and n2 in step, n3 not", n.Node, n.MessageMS, n.MessageInStep)
			}
		case "n4":
			if n.MessageMS != nil || n.MessageInStep != nil {
				t.Errorf("n4 had the message in time, and the report says it began it at %v (in step %v)", n.MessageMS, n.MessageInStep)
			}
		}
	}
	if tm := rep.Timing; tm.MessageLate != 3 || tm.MessageInStep != 2 {
		t.Errorf("timing: %d late messages, %d in step; want 3 and 2", tm.MessageLate, tm.MessageInStep)
	}
}
