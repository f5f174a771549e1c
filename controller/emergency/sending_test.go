package emergency

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// alertGate holds area alert publishes (not cancels) until release.
type alertGate struct {
	*recorder
	entered chan struct{}
	release chan struct{}
}

func (g *alertGate) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	if cmd.Name == protocol.CmdAlert {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.recorder.SendAreaCommand(ctx, area, cmd, ttl)
}

// sendGated starts sending an alert to 31 through a gate and returns once
// its area publish is under way.
func sendGated(t *testing.T, w *world, s *Service, expires time.Time) (*alertGate, chan *loaxa.Emergency) {
	t.Helper()
	g := &alertGate{recorder: w.rec, entered: make(chan struct{}), release: make(chan struct{})}
	s.Messenger = g
	done := make(chan *loaxa.Emergency, 1)
	go func() {
		em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Expires: expires, CreatedBy: "admin"})
		if err != nil {
			t.Error(err)
		}
		done <- em
	}()
	<-g.entered
	return g, done
}

// TestCancelWhilePublishing: an officer presses cancel while the alert's
// area publish is still under way (the emergency is listed from the
// moment it is stored, as the live alert it is). The cancel waits for the
// publish, then names the occurrence the nodes were sent, and the
// cancelled alert is not resent to the nodes that have not reported it.
// Before, with the default expiry the list showed the alert as expired and
// the cancel was refused ("expired at 0001-01-01"); with an explicit one
// the cancel named no occurrence, and the end of the publish set the
// alert active again, so it was resent.
func TestCancelWhilePublishing(t *testing.T) {
	for name, expires := range map[string]func(w *world) time.Time{
		"default expiry":  func(*world) time.Time { return time.Time{} },
		"explicit expiry": func(w *world) time.Time { return w.fc.Now().Add(10 * time.Minute) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			s := w.service()
			g, done := sendGated(t, w, s, expires(w))
			ems, err := s.FindEmergencies(ctx, 0)
			if err != nil || len(ems) != 1 {
				t.Fatalf("listed %v, %v", ems, err)
			}
			if ems[0].State != loaxa.EmergencyActive {
				t.Errorf("listed while it is published as %s (expires %v), want active", ems[0].State, ems[0].Expires)
			}
			cancelled := make(chan error, 1)
			go func() {
				_, err := s.CancelEmergency(ctx, ems[0].ID, "admin")
				cancelled <- err
			}()
			close(g.release)
			em := <-done
			if err := <-cancelled; err != nil {
				t.Fatalf("cancel while the alert is being published: %v; want it cancelled", err)
			}
			if c := w.rec.lastSent("area/31"); c.Name != protocol.CmdAlertCancel || c.Occurrence != em.Occurrence {
				t.Errorf("cancel published as %+v; want an alert-cancel naming the alert's occurrence %s", c, em.Occurrence)
			}
			if ems, err := s.FindEmergencies(ctx, 0); err != nil || ems[0].State != loaxa.EmergencyCancelled {
				t.Errorf("stored %v (%v), want it cancelled", ems[0].State, err)
			}
			w.rec.take()
			if got := w.step(s, 10*time.Second); slices.Contains(got, "node/n1 alert") || slices.Contains(got, "node/n2 alert") {
				t.Errorf("after the cancel: %v; a cancelled alert must not be resent", got)
			}
		})
	}
}

// TestRefusedExpiryLeavesNoLiveAlert: an alert whose expiry comes before
// it could start is refused (EInvalid) before anything is stored: no
// emergency listed as active that never went out.
func TestRefusedExpiryLeavesNoLiveAlert(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	ctx := context.Background()
	_, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Expires: w.fc.Now().Add(100 * time.Millisecond), CreatedBy: "admin"})
	if loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Fatalf("err %v, want EInvalid (expires before the start)", err)
	}
	ems, err := s.FindEmergencies(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ems {
		t.Errorf("refused alert left in the store: %s state %s occurrence %q", e.ID, e.State, e.Occurrence)
	}
}

// TestDrillLogLinesSayDrill: every controller log line about a drill
// says drill=true, so that no one reading the log takes it for a real
// alert; the warning that a node lost the alert with its store and is
// sent it again did not.
func TestDrillLogLinesSayDrill(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	var logs bytes.Buffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Drill: true, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	ev := w.alertEvent(em)
	w.report(s, "n1", ev(protocol.EventReceived))
	w.report(s, "n1", ev(protocol.EventStarted))
	s.Epoch("n1", "e-n1-new")
	w.step(s, 250*time.Millisecond)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, em.ID) && !strings.Contains(line, "drill=true") {
			t.Errorf("log line about drill %s without drill=true: %s", em.ID, line)
		}
	}
}

// TestNothingSoundsAfterTheAlertIsOver: a node that reported the alert
// started and then went silent (its power cut in the storm) counts as
// sounding only until every play of the alert would have ended
// (loaxa.UnconfirmedAfter); then as unconfirmed, not "playing it now".
func TestNothingSoundsAfterTheAlertIsOver(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em := w.send(s)
	ev := w.alertEvent(em)
	w.report(s, "n1", ev(protocol.EventReceived))
	w.report(s, "n1", ev(protocol.EventStarted))
	if err := s.Nodes.UpdateNodeStatus(context.Background(), "n1", func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOffline }); err != nil {
		t.Fatal(err)
	}
	w.fc.Set(loaxa.UnconfirmedAfter(em).Add(-time.Second))
	if nodes, sum := nodesOf(t, s, em.ID); sum.Sounding != 1 || nodes["n1"].State != string(loaxa.DeliveryStarted) {
		t.Errorf("while a play of it could still go on: summary %+v, n1 %+v; want n1 sounding", sum, nodes["n1"])
	}
	w.fc.Set(em.Expires.Add(time.Duration(em.PlannedMS)*time.Millisecond + time.Hour))
	nodes, sum := nodesOf(t, s, em.ID)
	if sum.Sounding != 0 || sum.Unconfirmed != 1 || sum.Reached != 1 || nodes["n1"].State != loaxa.EmergencyUnconfirmed {
		t.Errorf("an hour after the alert expired: summary %+v, n1 %+v; want n1 unconfirmed, none sounding", sum, nodes["n1"])
	}
}

// TestRealAlertWithoutTheDrillMark: only drills carry the drill mark. A
// real alert whose title begins with it (typed so, in any case, or taken
// from its content's title) has it taken out, so that it never reads as
// an exercise; a drill's title gets it once.
func TestRealAlertWithoutTheDrillMark(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	ctx := context.Background()
	for _, c := range []struct {
		title string
		drill bool
		want  string
	}{
		{"[DIỄN TẬP] Bão số 3", false, "Bão số 3"},
		{"  [diễn tập] [DIỄN TẬP]Bão số 3", false, "Bão số 3"},
		{"Bão số 3 [DIỄN TẬP]", false, "Bão số 3 [DIỄN TẬP]"},
		{"[DIỄN TẬP] Bão số 3", true, "[DIỄN TẬP] Bão số 3"},
		{"Bão số 3", true, "[DIỄN TẬP] Bão số 3"},
		{"[DIỄN TẬP]", false, "Báo động"}, // the content's title
	} {
		em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{Title: c.title, Drill: c.drill, ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		if em.Title != c.want {
			t.Errorf("title %q (drill %t) sent as %q, want %q", c.title, c.drill, em.Title, c.want)
		}
		if _, err := s.CancelEmergency(ctx, em.ID, "admin"); err != nil {
			t.Fatal(err)
		}
	}
}
