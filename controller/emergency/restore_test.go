package emergency

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// world is a store with area 31 and enrolled nodes n1, n2 (online) and
// n3 (offline), and a message; service makes a controller's emergency
// service on it, as a (re)started controller does.
type world struct {
	t        *testing.T
	fc       *clock.Fake
	db       *bolt.DB
	lib      *media.Library
	events   *bolt.EventService
	content  string
	rec      *recorder
	eventSeq map[string]uint64
}

func newWorld(t *testing.T) *world {
	ctx := context.Background()
	dir := t.TempDir()
	w := &world{t: t, fc: clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)), rec: &recorder{}, eventSeq: map[string]uint64{}}
	w.db = bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	w.db.Now = w.fc.Now
	if err := w.db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.db.Close() })
	w.lib = media.NewLibrary(dir)
	if err := w.lib.Open(); err != nil {
		t.Fatal(err)
	}
	areas, nodes, contents := bolt.NewAreaService(w.db), bolt.NewNodeService(w.db), bolt.NewContentService(w.db)
	w.events = bolt.NewEventService(w.db)
	if err := areas.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "31", SecretHash: loaxa.HashSecret(id)}); err != nil {
			t.Fatal(err)
		}
		if id != "n3" {
			if err := nodes.UpdateNodeStatus(ctx, id, func(s *loaxa.NodeStatus) { s.State = loaxa.NodeOnline }); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := w.lib.Ingest(ctx, bytes.NewReader(toneWAV()), loaxa.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Title = "Báo động"
	if _, err := contents.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	w.content = c.ID
	return w
}

// service opens an emergency service on the world's store.
func (w *world) service() *Service {
	s := NewService()
	s.Store, s.Areas, s.Nodes, s.Contents, s.Media = bolt.NewEmergencyService(w.db), bolt.NewAreaService(w.db), bolt.NewNodeService(w.db), bolt.NewContentService(w.db), w.lib
	s.Deliveries, s.Messenger, s.Clock = bolt.NewDeliveryService(w.db), w.rec, w.fc
	if err := s.Open(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	return s
}

// report is what a node reports, stored and handed to s as the MQTT
// client does.
func (w *world) report(s *Service, node string, ev protocol.Event) {
	w.t.Helper()
	w.reportFrom(s, node, "e-"+node, ev)
}

// reportFrom is report from the node's outbox of epoch.
func (w *world) reportFrom(s *Service, node, epoch string, ev protocol.Event) {
	w.t.Helper()
	w.eventSeq[node+" "+epoch]++ // each outbox counts from 1
	ev.Seq = w.eventSeq[node+" "+epoch]
	if _, _, err := w.events.RecordEvents(context.Background(), node, protocol.EventBatch{Epoch: epoch, Events: []protocol.Event{ev}}, w.fc.Now()); err != nil {
		w.t.Fatal(err)
	}
	s.Events(node, epoch, []protocol.Event{ev})
}

// alertEvent makes events about em's alert, at the world's now.
func (w *world) alertEvent(em *loaxa.Emergency) func(protocol.EventType) protocol.Event {
	return func(typ protocol.EventType) protocol.Event {
		return protocol.Event{Type: typ, Occurrence: em.Occurrence, At: w.fc.Now()}
	}
}

// salvage reports events a node read back from its damaged store of
// epoch, numbered from seq, as the ingest passes them on.
func (w *world) salvage(s *Service, node, epoch string, seq uint64, evs ...protocol.Event) {
	w.t.Helper()
	for i := range evs {
		evs[i].Seq = seq + uint64(i)
	}
	if _, _, err := w.events.RecordEvents(context.Background(), node, protocol.EventBatch{Epoch: epoch, Events: evs, Salvaged: true}, w.fc.Now()); err != nil {
		w.t.Fatal(err)
	}
	s.Salvaged(node, evs)
}

// send sends an alert to area 31 and takes its publish.
func (w *world) send(s *Service) *loaxa.Emergency {
	w.t.Helper()
	em, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.rec.take()
	return em
}

// online marks nodes online, as their state messages would.
func (w *world) online(s *Service, ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		if err := s.Nodes.UpdateNodeStatus(context.Background(), id, func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOnline }); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) step(s *Service, d time.Duration) []string {
	w.fc.Advance(d)
	s.resend(context.Background())
	return w.rec.take()
}

func nodesOf(t *testing.T, s *Service, id string) (map[string]loaxa.EmergencyNode, loaxa.EmergencySummary) {
	t.Helper()
	rep, err := s.EmergencyReport(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]loaxa.EmergencyNode{}
	for _, n := range rep.Nodes {
		out[n.Node] = n
	}
	return out, rep.Summary
}

// TestRestartCarriesOn: a controller restarted mid-emergency reports it
// as completely as before (receipt times, resends, states), goes on
// resending to the online node that has not acknowledged, counting the
// resends made before the restart, stops when it acknowledges, and
// closes the emergency as expired at its expiry.
func TestRestartCarriesOn(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Drill: true, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	w.fc.Advance(150 * time.Millisecond)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now(), Drill: true})
	w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: em.Areas[0].Start, Drill: true})
	if got := w.step(s, 2*time.Second); !slices.Equal(got, []string{"node/n2 alert"}) {
		t.Fatalf("before the restart: %v, want a resend to n2", got)
	}
	before, _ := nodesOf(t, s, em.ID)

	// The controller restarts: a new service on the same store.
	s2 := w.service()
	after, sum := nodesOf(t, s2, em.ID)
	for _, id := range []string{"n1", "n2", "n3"} {
		b, a := before[id], after[id]
		if (b.ReceivedMS == nil) != (a.ReceivedMS == nil) || b.ReceivedMS != nil && *b.ReceivedMS != *a.ReceivedMS ||
			a.Resends != b.Resends || a.State != b.State {
			t.Errorf("%s after the restart: %+v, before: %+v", id, a, b)
		}
	}
	if ms := after["n1"].ReceivedMS; ms == nil || *ms != 150 {
		t.Errorf("n1 received_ms after the restart: %v, want 150", ms)
	}
	if want := (loaxa.EmergencySummary{Targeted: 3, Reached: 1, Sounding: 1, Offline: 1, Pending: 1}); sum != want {
		t.Errorf("summary after the restart %+v, want %+v", sum, want)
	}
	if got := w.step(s2, time.Second); len(got) != 0 {
		t.Errorf("resent %v within the bound of the last resend", got)
	}
	for i, d := range []time.Duration{1100 * time.Millisecond, 2100 * time.Millisecond} {
		if got := w.step(s2, d); !slices.Equal(got, []string{"node/n2 alert"}) {
			t.Errorf("resend %d after the restart: %v, want n2 only", i+2, got)
		}
	}
	if got := w.step(s2, 2100*time.Millisecond); len(got) != 0 {
		t.Errorf("a fourth resend: %v", got)
	}
	w.report(s2, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now(), Drill: true})
	w.report(s2, "n1", protocol.Event{Type: protocol.EventCompleted, Occurrence: em.Occurrence, At: w.fc.Now(), PlayedMS: em.PlannedMS, Drill: true})
	nodes, sum := nodesOf(t, s2, em.ID)
	if nodes["n2"].Resends != 3 || nodes["n2"].ReceivedMS == nil || nodes["n1"].State != "completed" {
		t.Errorf("after the restart, n1 %+v, n2 %+v", nodes["n1"], nodes["n2"])
	}
	// n2 reported the alert but not its audio yet: it is fetching it.
	if want := (loaxa.EmergencySummary{Targeted: 3, Reached: 2, Completed: 1, Offline: 1, Fetching: 1}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}

	// The node that came back online late is sent it until the expiry, not after.
	w.online(s2, "n3")
	if got := w.step(s2, 100*time.Millisecond); !slices.Equal(got, []string{"node/n3 alert"}) {
		t.Errorf("n3 back online: %v, want the alert", got)
	}
	w.fc.Set(em.Expires)
	if got := w.step(s2, 0); len(got) != 0 {
		t.Errorf("at the expiry: %v", got)
	}
	stored, err := s2.Store.FindEmergencyByID(ctx, em.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != loaxa.EmergencyExpired {
		t.Errorf("stored state at the expiry: %s, want expired", stored.State)
	}
}

// TestRestartAfterExpiryOrCancel: an emergency that expired while the
// controller was down is closed as expired and nothing is sent for it; a
// cancelled one that has not expired has its cancel followed again to
// the nodes that had it and have not reported it over.
func TestRestartAfterExpiryOrCancel(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	short, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Expires: w.fc.Now().Add(time.Minute), CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, Expires: w.fc.Now().Add(time.Hour), CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: long.Occurrence, At: w.fc.Now()})
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: long.Occurrence, At: w.fc.Now()})
	w.report(s, "n2", protocol.Event{Type: protocol.EventFailed, Reason: protocol.ReasonCancelled, Occurrence: long.Occurrence, At: w.fc.Now()})
	if _, err := s.CancelEmergency(ctx, long.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	w.rec.take()

	w.fc.Advance(2 * time.Minute) // the controller is down meanwhile
	s2 := w.service()
	stored, err := s2.Store.FindEmergencyByID(ctx, short.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != loaxa.EmergencyExpired {
		t.Errorf("emergency that expired during the restart is %s, want expired", stored.State)
	}
	nodes, _ := nodesOf(t, s2, short.ID)
	for id, n := range nodes {
		if n.State != string(loaxa.DeliveryMissed) || n.Reason != loaxa.ReasonNotReached {
			t.Errorf("%s in the expired emergency: %+v", id, n)
		}
	}
	if got := w.step(s2, 2100*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert-cancel"}) {
		t.Errorf("after the restart: %v, want the cancel again to n1 only", got)
	}
	if st, err := s2.Store.FindEmergencyByID(ctx, long.ID); err != nil || st.State != loaxa.EmergencyCancelled {
		t.Errorf("cancelled emergency after the restart: %+v, %v", st, err)
	}
}

// TestRestartAfterStopWhileSending: the controller stopped while sending
// two drills, after storing them and before recording them as sent. One
// had gone out (n1 reported it received and started, before its
// deliveries were stored): after the restart it is closed with the
// occurrence and issue instant the node named, and the delivery made
// from n1's report carries the drill mark, the emergency level and the
// start n1 was given, so its report reads as any other's. Nobody reported
// the other: it is closed and the log says to send it again if needed.
func TestRestartAfterStopWhileSending(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	stored := func(s *Service) *loaxa.Emergency {
		t.Helper()
		em := &loaxa.Emergency{Kind: loaxa.EmergencyAlert, Title: "[DIỄN TẬP] Báo động", ContentID: w.content, Targets: []string{"31"},
			Repeat: 1, Volume: protocol.MaxVolume, Drill: true, PlannedMS: 9000, State: loaxa.EmergencyActive, CreatedBy: "admin"}
		if err := s.Store.CreateEmergency(ctx, em); err != nil {
			t.Fatal(err)
		}
		return em
	}
	went, silent := stored(s), stored(s)
	issued := w.fc.Now()
	occ := loaxa.OccurrenceID(went.ID, issued)
	start := issued.Add(1200 * time.Millisecond)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: issued.Add(300 * time.Millisecond), Drill: true})
	w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: occ, At: start.Add(7 * time.Millisecond), LateMS: 7, Drill: true})

	var logs bytes.Buffer
	w.fc.Advance(time.Minute) // the controller is down meanwhile
	s2 := NewService()
	s2.Store, s2.Areas, s2.Nodes, s2.Contents, s2.Media = s.Store, s.Areas, s.Nodes, s.Contents, s.Media
	s2.Deliveries, s2.Messenger, s2.Clock = s.Deliveries, w.rec, w.fc
	s2.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}

	em, err := s2.Store.FindEmergencyByID(ctx, went.ID)
	if err != nil {
		t.Fatal(err)
	}
	if em.State != loaxa.EmergencyExpired || em.Occurrence != occ || !em.Issued.Equal(issued) {
		t.Errorf("the emergency that went out: state %s, occurrence %q, issued %s; want expired, %q, %s", em.State, em.Occurrence, em.Issued, occ, issued)
	}
	ds, err := s2.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: went.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("deliveries of the emergency that went out: %d, want n1's", len(ds))
	}
	if d := ds[0]; d.Unplanned || !d.Drill || d.Priority != protocol.PriorityEmergency || d.PlannedMS != 9000 || !d.Start.Equal(start) {
		t.Errorf("n1's delivery after the restart: %+v, want the drill mark, the emergency level, 9000 ms planned and start %s", d, start)
	}
	nodes, _ := nodesOf(t, s2, went.ID)
	if ms := nodes["n1"].SoundMS; ms == nil || *ms != 1207 {
		t.Errorf("n1's sound_ms: %v, want 1207 (its start 1,200 ms after the issue, 7 ms late)", ms)
	}
	if em, err := s2.Store.FindEmergencyByID(ctx, silent.ID); err != nil || em.State != loaxa.EmergencyExpired || em.Occurrence != "" {
		t.Errorf("the emergency nobody reported: %+v, %v; want expired, no occurrence", em, err)
	}
	if got := w.rec.take(); len(got) != 0 {
		t.Errorf("sent after the restart: %v", got)
	}
	for _, want := range []string{
		"clusters reported it, so it went out", "emergency=" + went.ID, "reported_by=1",
		"no cluster reported it; closed as expired, send it again", "emergency=" + silent.ID,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// unreadableDeliveries is a store whose deliveries cannot be read.
type unreadableDeliveries struct{ loaxa.DeliveryService }

func (unreadableDeliveries) FindDeliveries(context.Context, loaxa.DeliveryFilter) ([]*loaxa.Delivery, error) {
	return nil, errors.New("disk read failed")
}

// TestRestartAfterStopWhileSendingUnread: when the deliveries of an
// emergency stopped while sending cannot be read, the restart closes it
// without claiming that no cluster reported it.
func TestRestartAfterStopWhileSendingUnread(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	em := &loaxa.Emergency{Kind: loaxa.EmergencyAlert, ContentID: w.content, Targets: []string{"31"}, Repeat: 1, Volume: protocol.MaxVolume,
		State: loaxa.EmergencyActive, CreatedBy: "admin"}
	if err := s.Store.CreateEmergency(ctx, em); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s2 := NewService()
	s2.Store, s2.Areas, s2.Nodes, s2.Contents, s2.Media = s.Store, s.Areas, s.Nodes, s.Contents, s.Media
	s2.Deliveries, s2.Messenger, s2.Clock = unreadableDeliveries{s.Deliveries}, w.rec, w.fc
	s2.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s2.Store.FindEmergencyByID(ctx, em.ID); err != nil || st.State != loaxa.EmergencyExpired {
		t.Errorf("the emergency: %+v, %v; want expired", st, err)
	}
	if got := logs.String(); !strings.Contains(got, "whether clusters reported it could not be read") || strings.Contains(got, "no cluster reported it") {
		t.Errorf("log:\n%s\nwant it to say the reports could not be read, not that there were none", got)
	}
}

// TestRestartKeepsTheMeasuredLead: after a restart, the next alert to an
// area starts after the lead measured on the area's last emergency (its
// deliveries' receipts), not the estimate; a node that had it only after
// a resend does not count.
func TestRestartKeepsTheMeasuredLead(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	em := w.send(s)
	w.fc.Advance(150 * time.Millisecond)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	if got := w.step(s, 2*time.Second); !slices.Equal(got, []string{"node/n2 alert"}) {
		t.Fatalf("%v, want a resend to n2", got)
	}
	w.fc.Advance(300 * time.Millisecond)
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	want := time.Duration(s.Lead.Factor*float64(150*time.Millisecond)) + 100*time.Millisecond // n1 only
	if d, from := s.lead("31", 3); d != want || from != LeadMeasured {
		t.Fatalf("before the restart: %v %s, want %v measured", d, from, want)
	}

	for _, at := range []time.Time{em.Expires.Add(-time.Minute), em.Expires.Add(time.Hour)} {
		w.fc.Set(at) // restarted while the emergency runs, and after it expired
		if d, from := w.service().lead("31", 3); d != want || from != LeadMeasured {
			t.Errorf("restarted at %v: lead %v %s, want %v measured", at.Sub(em.Issued), d, from, want)
		}
	}
	// The restarted controller knows when that was: it does not probe the
	// area within Probing.Every of it (probe.go).
	s2 := w.service()
	w.rec.take()
	if _, err := s2.sendProbe(ctx, "31"); err != nil {
		t.Fatal(err)
	}
	if sent := w.rec.take(); len(sent) != 0 {
		t.Errorf("a restarted controller probed an area measured %v ago: %v", w.fc.Now().Sub(em.Issued), sent)
	}
}

// TestRestartKeepsCancelResends: the cancel's resends to a node are
// counted across a restart like the alert's: a restarted controller
// resends the cancel only what is left of MaxResends per node, and not
// within the ack bound of the last resend before the restart.
func TestRestartKeepsCancelResends(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	if _, err := s.CancelEmergency(ctx, em.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	cancels := map[string]int{}
	count := func(sent []string) {
		for _, m := range sent {
			switch m {
			case "node/n1 alert-cancel":
				cancels["n1"]++
			case "node/n2 alert-cancel":
				cancels["n2"]++
			default:
				t.Errorf("sent %q, want only the cancel to n1 and n2", m)
			}
		}
	}
	for range 2 {
		count(w.step(s, 2100*time.Millisecond))
	}
	if cancels["n1"] != 2 || cancels["n2"] != 2 {
		t.Fatalf("before the restart: cancel resends %v, want 2 each", cancels)
	}

	s2 := w.service()
	if got := w.step(s2, time.Second); len(got) != 0 {
		t.Errorf("resent %v within the bound of the last cancel resend", got)
	}
	for range 5 {
		count(w.step(s2, 2100*time.Millisecond))
	}
	for _, n := range []string{"n1", "n2"} {
		if cancels[n] != s2.MaxResends {
			t.Errorf("%s: %d cancel resends before and after the restart, want %d in all", n, cancels[n], s2.MaxResends)
		}
	}
	ds, err := s2.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if want := cancels[d.Node]; d.CancelResends != want || want > 0 && d.CancelResentAt.IsZero() {
			t.Errorf("%s stored: %d cancel resends, last at %v; want %d", d.Node, d.CancelResends, d.CancelResentAt, want)
		}
	}
}

// TestIntroGoesWithTheAlert: an emergency with an intro (a recording kept
// on the clusters, played after the opening chime) names it in the alert
// and lists it before the message; its play time counts in the planned
// length; a resend after a controller restart carries it too. An intro
// that is not stored content is refused.
func TestIntroGoesWithTheAlert(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	wav := toneWAV()
	wav[len(wav)-1] ^= 0x40 // another recording of the same length
	c, err := w.lib.Ingest(ctx, bytes.NewReader(wav), loaxa.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Title = "Cảnh báo sóng thần"
	intro, err := bolt.NewContentService(w.db).CreateContent(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, IntroContentID: intro.ID, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if em.IntroContentID != intro.ID || em.PlannedMS != plain.PlannedMS+intro.DurationMS {
		t.Errorf("emergency: intro %q, planned %d ms; want %s and %d + %d ms", em.IntroContentID, em.PlannedMS, intro.ID, plain.PlannedMS, intro.DurationMS)
	}
	check := func(when string, cmd protocol.Command) {
		t.Helper()
		if cmd.Alert == nil || cmd.Alert.Occurrence.Intro != intro.ID {
			t.Fatalf("%s: alert %+v, want intro %s", when, cmd.Alert, intro.ID)
		}
		var ids []string
		for _, r := range cmd.Alert.Content {
			ids = append(ids, r.ID)
		}
		if want := []string{em.OpeningChime, em.ClosingChime, intro.ID, w.content}; !slices.Equal(ids, want) {
			t.Errorf("%s: content %v, want the chimes, the intro, the message: %v", when, ids, want)
		}
		if err := cmd.Alert.Validate(); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	check("sent", w.rec.lastSent("area/31"))
	w.rec.take()

	s2 := w.service() // the controller restarts
	w.report(s2, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	w.report(s2, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: plain.Occurrence, At: w.fc.Now()})
	w.report(s2, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: plain.Occurrence, At: w.fc.Now()})
	if got := w.step(s2, 3*time.Second); !slices.Contains(got, "node/n2 alert") {
		t.Fatalf("after the restart: %v, want a resend to n2", got)
	}
	check("resent after a restart", w.rec.lastSent("node/n2"))

	_, err = s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, IntroContentID: strings.Repeat("ab", 32), Targets: []string{"31"}, CreatedBy: "admin"})
	if loaxa.ErrorCode(err) != loaxa.EInvalid || !strings.Contains(loaxa.ErrorMessage(err), "intro_content_id") {
		t.Errorf("an intro that is not stored: %v, want EInvalid naming intro_content_id", err)
	}
}

// TestRestartStillFindsANodeOnANewStore: the epoch of each node's reports
// of a live alert is kept in its delivery, so a controller that restarted
// during the alert still sends it again to a node that comes online from a
// new store.
func TestRestartStillFindsANodeOnANewStore(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em := w.send(s)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: em.Occurrence, At: w.fc.Now()})
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})

	s = w.service() // restarted
	s.Epoch("n2", "e-n2")
	s.Epoch("n1", "e-n1-new")
	if got := w.step(s, 10*time.Second); !slices.Equal(got, []string{"node/n1 alert"}) {
		t.Errorf("after the restart, n1 from a new store: %v, want the alert again to n1 only", got)
	}
	if nodes, _ := nodesOf(t, s, em.ID); nodes["n1"].State != "suspended" {
		t.Errorf("n1 once it lost the alert: %+v, want suspended", nodes["n1"])
	}
}

// stuckArea is the broker as a controller sees it that stops while it
// publishes: the alert to area 32 never returns (until ctx ends); the
// others are taken and recorded.
type stuckArea struct {
	*recorder
	entered chan struct{}
}

func (g *stuckArea) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	if area == "32" && cmd.Name == protocol.CmdAlert {
		close(g.entered)
		<-ctx.Done()
		return ctx.Err()
	}
	return g.recorder.SendAreaCommand(ctx, area, cmd, ttl)
}

// TestRestartMidSendThenCancel: the controller stops (a crash) while it
// publishes an alert to two areas: area 31 has it, the publish to 32 is
// under way, and no cluster's report has come yet (the clusters of a large
// area hold theirs over the report window). The restarted controller
// closes it as cut off while sending; an officer then cancels it. Before,
// the cancel named no occurrence, since none was recorded: every cluster
// ignored it ("alert-cancel without an occurrence") and the alert sounded
// on to its expiry. The cancel must name what the clusters were sent, go
// to every area, follow the clusters that report the alert until they
// report it over, and the alert is never sent again.
func TestRestartMidSendThenCancel(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := bolt.NewAreaService(w.db).CreateArea(ctx, &loaxa.Area{ID: "32", Name: "Quảng Ninh"}); err != nil {
		t.Fatal(err)
	}
	nodes := bolt.NewNodeService(w.db)
	if err := nodes.CreateNode(ctx, &loaxa.Node{ID: "n4", Name: "n4", Area: "32", SecretHash: loaxa.HashSecret("n4")}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.UpdateNodeStatus(ctx, "n4", func(s *loaxa.NodeStatus) { s.State = loaxa.NodeOnline }); err != nil {
		t.Fatal(err)
	}
	s := w.service()
	gate := &stuckArea{recorder: w.rec, entered: make(chan struct{})}
	s.Messenger = gate
	sendCtx, crash := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.SendEmergency(sendCtx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31", "32"}, CreatedBy: "admin"}); err == nil {
			t.Error("the stopped controller's send ended well")
		}
	}()
	<-gate.entered
	alert := w.rec.lastSent("area/31")
	for alert.Name == "" {
		time.Sleep(time.Millisecond) // the publish to 31 runs beside the stuck one
		alert = w.rec.lastSent("area/31")
	}
	occ := alert.Alert.Occurrence.ID
	ems, err := s.Store.FindEmergencies(ctx, 1)
	if err != nil || len(ems) != 1 {
		t.Fatalf("emergencies %v, %v", ems, err)
	}
	id := ems[0].ID
	// What is published is noted beside the publish; the stop comes after
	// it.
	for {
		em, err := s.Store.FindEmergencyByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if em.Publishing != "" {
			if em.Publishing != occ {
				t.Fatalf("noted as published: %q, want %q", em.Publishing, occ)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}

	w.fc.Advance(time.Second)
	s2 := w.service() // the restarted controller, on the same store
	crash()           // the old one is gone: nothing more of it is stored
	<-done
	w.rec.take()
	// Its record names what was published, and its report lists every
	// cluster it targeted, from the plan the restart made.
	rep, err := s2.EmergencyReport(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Occurrence != occ || !rep.CutOff || rep.State != loaxa.EmergencyActive {
		t.Errorf("after the restart: occurrence %q, cut off %v, %s; want %q, cut off, active", rep.Occurrence, rep.CutOff, rep.State, occ)
	}
	if rep.Summary.Targeted != 4 || len(rep.Nodes) != 4 {
		t.Errorf("after the restart the report counts %d targeted and lists %d clusters, want the 4 of areas 31 and 32", rep.Summary.Targeted, len(rep.Nodes))
	}
	ds, err := s2.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
	if err != nil {
		t.Fatal(err)
	}
	lead := map[string]time.Duration{}
	for _, a := range rep.Areas {
		lead[a.Area] = time.Duration(a.LeadMS) * time.Millisecond
	}
	area := map[string]string{"n1": "31", "n2": "31", "n3": "31", "n4": "32"}
	for _, d := range ds {
		if d.Occurrence != occ || d.Unplanned || !d.Start.Equal(loaxa.OccurrenceTime(occ).Add(lead[area[d.Node]])) {
			t.Errorf("%s's delivery after the restart: %+v, want %s's plan starting its area's lead after the issue", d.Node, d, occ)
		}
	}

	if _, err := s2.CancelEmergency(ctx, id, "admin"); err != nil {
		t.Fatalf("cancel after the restart: %v", err)
	}
	if got := w.rec.take(); !slices.Equal(got, []string{"area/31 alert-cancel", "area/32 alert-cancel"}) {
		t.Errorf("cancel sent %v, want it to each area", got)
	}
	for _, to := range []string{"area/31", "area/32"} {
		if got := w.rec.lastSent(to); got.Occurrence != occ {
			t.Errorf("cancel to %s names %q, want %q, the alert the clusters were sent", to, got.Occurrence, occ)
		}
	}
	// n1's held receipt comes after the cancel: the cancel follows it
	// until it reports the alert over; the alert is not sent again.
	w.report(s2, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: w.fc.Now()})
	if got := w.step(s2, 2100*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert-cancel"}) {
		t.Errorf("after n1's receipt: sent %v, want the cancel to n1", got)
	}
	w.report(s2, "n1", protocol.Event{Type: protocol.EventFailed, Occurrence: occ, Reason: protocol.ReasonCancelled, At: w.fc.Now()})
	for range 5 {
		if got := w.step(s2, 2100*time.Millisecond); len(got) != 0 {
			t.Errorf("after n1 reported it cancelled: sent %v", got)
		}
	}
	// A second restart follows the cancel as well and sends no alert.
	s3 := w.service()
	w.report(s3, "n4", protocol.Event{Type: protocol.EventReceived, Occurrence: occ, At: w.fc.Now()})
	if got := w.step(s3, 2100*time.Millisecond); !slices.Equal(got, []string{"node/n4 alert-cancel"}) {
		t.Errorf("after a second restart and n4's receipt: sent %v, want the cancel to n4", got)
	}
}

// sentWhenCutOff stores an alert to area 31 issued at issued, valid 15
// minutes, as SendEmergency stores it before the publish returns (active),
// and n1 reports it received 0.3 s after: it went out, and the controller
// crashed before the publish returned.
func (w *world) sentWhenCutOff(s *Service, issued time.Time) *loaxa.Emergency {
	w.t.Helper()
	em := &loaxa.Emergency{Kind: loaxa.EmergencyAlert, Title: "Bão số 3", ContentID: w.content, Targets: []string{"31"},
		OpeningChime: s.opening.ID, ClosingChime: s.closing.ID, Areas: []loaxa.EmergencyArea{{Area: "31", Nodes: 3, LeadMS: 1200}},
		Repeat: 3, Volume: protocol.MaxVolume, PlannedMS: 30000, Issued: issued, Expires: issued.Add(15 * time.Minute),
		State: loaxa.EmergencyActive, CreatedBy: "admin"}
	if err := s.Store.CreateEmergency(context.Background(), em); err != nil {
		w.t.Fatal(err)
	}
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: loaxa.OccurrenceID(em.ID, issued), At: issued.Add(300 * time.Millisecond)})
	return em
}

// TestRestartMidSendKeepsItCancellable: the controller crashed while
// publishing an alert whose clusters had it and were sounding it. After
// the restart it was listed "expired" although its expiry was 14 minutes
// away, and the console, which offers "Dừng" only for an active alert,
// gave the officer no way to stop what was still playing. Until its
// expiry it stays active (cancellable), across later restarts too; it is
// not sent again; past its expiry it reads expired.
func TestRestartMidSendKeepsItCancellable(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	issued := w.fc.Now()
	cutOff := func() (*loaxa.Emergency, string) {
		t.Helper()
		em := w.sentWhenCutOff(s, issued)
		occ := loaxa.OccurrenceID(em.ID, issued)
		w.report(s, "n1", protocol.Event{Type: protocol.EventStarted, Occurrence: occ, At: issued.Add(1200 * time.Millisecond)})
		return em, occ
	}
	stopped, occ := cutOff()
	left, _ := cutOff()
	w.rec.take()

	state := func(s *Service, id string) string {
		t.Helper()
		rep, err := s.EmergencyReport(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return rep.State
	}
	w.fc.Advance(time.Minute) // the controller is down meanwhile
	s2 := w.service()
	for _, id := range []string{stopped.ID, left.ID} {
		if got := state(s2, id); got != loaxa.EmergencyActive {
			t.Errorf("after the restart, 14 min before its expiry: %s is %s, want %s so that it can be stopped", id, got, loaxa.EmergencyActive)
		}
	}
	ems, err := s2.FindEmergencies(ctx, 0)
	if err != nil || len(ems) != 2 {
		t.Fatalf("listed after the restart: %d, %v; want 2", len(ems), err)
	}
	for _, em := range ems {
		if em.State != loaxa.EmergencyActive {
			t.Errorf("listed after the restart: %s is %s, want %s", em.ID, em.State, loaxa.EmergencyActive)
		}
	}
	for range 5 {
		if got := w.step(s2, 2100*time.Millisecond); len(got) != 0 {
			t.Fatalf("after the restart: sent %v, want nothing (a cut-off alert is not sent again)", got)
		}
	}
	// A second restart changes nothing of it.
	s3 := w.service()
	if got := state(s3, stopped.ID); got != loaxa.EmergencyActive {
		t.Errorf("after a second restart: %s, want %s", got, loaxa.EmergencyActive)
	}
	for range 5 {
		if got := w.step(s3, 2100*time.Millisecond); len(got) != 0 {
			t.Fatalf("after a second restart: sent %v, want nothing", got)
		}
	}
	if _, err := s3.CancelEmergency(ctx, stopped.ID, "admin"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if got := w.rec.lastSent("area/31"); got.Name != protocol.CmdAlertCancel || got.Occurrence != occ {
		t.Errorf("cancel sent %+v, want alert-cancel of %s to area 31", got, occ)
	}
	if got := state(s3, stopped.ID); got != loaxa.EmergencyCancelled {
		t.Errorf("after the cancel: %s, want %s", got, loaxa.EmergencyCancelled)
	}
	// Past its expiry the other reads expired, and a restart closes it.
	w.fc.Advance(15 * time.Minute)
	if got := state(s3, left.ID); got != loaxa.EmergencyExpired {
		t.Errorf("past its expiry: %s, want %s", got, loaxa.EmergencyExpired)
	}
	s4 := w.service()
	if em, err := s4.Store.FindEmergencyByID(ctx, left.ID); err != nil || em.State != loaxa.EmergencyExpired {
		t.Errorf("restarted past its expiry: stored %+v, %v; want %s", em, err, loaxa.EmergencyExpired)
	}
}

// TestRestartClosesACutOffAlertAtItsExpiry: an alert the controller
// crashed while sending stays active after the restart, marked cut off, so
// that an officer can stop it. Past its expiry it read expired, but the
// store kept it active, and its outcome was never logged, until the
// controller happened to start again (which then said it "expired while
// the controller was stopped"). It is closed at its expiry as any alert
// is: stored expired, its outcome logged; whether this start or an
// earlier one found it cut off. One cancelled meanwhile stays cancelled.
func TestRestartClosesACutOffAlertAtItsExpiry(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	issued := w.fc.Now()
	earlier := w.sentWhenCutOff(s, issued)
	w.fc.Advance(time.Minute)
	w.service() // this start marks it cut off, then the controller stops again
	now, cancelled := w.sentWhenCutOff(s, issued), w.sentWhenCutOff(s, issued)
	w.rec.take()

	w.fc.Advance(time.Minute)
	var logs bytes.Buffer
	s2 := NewService()
	s2.Store, s2.Areas, s2.Nodes, s2.Contents, s2.Media = s.Store, s.Areas, s.Nodes, s.Contents, s.Media
	s2.Deliveries, s2.Messenger, s2.Clock = s.Deliveries, w.rec, w.fc
	s2.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.CancelEmergency(ctx, cancelled.ID, "admin"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	stored := func(id string) string {
		t.Helper()
		em, err := s2.Store.FindEmergencyByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return em.State
	}
	for _, id := range []string{earlier.ID, now.ID} {
		if got := stored(id); got != loaxa.EmergencyActive {
			t.Fatalf("cut off %s before its expiry: stored %s, want %s", id, got, loaxa.EmergencyActive)
		}
	}
	w.fc.Set(earlier.Expires.Add(-time.Second))
	w.step(s2, 0)
	if got := stored(now.ID); got != loaxa.EmergencyActive {
		t.Errorf("a second before its expiry: stored %s, want %s", got, loaxa.EmergencyActive)
	}
	w.step(s2, time.Second) // at the expiry, the next pass
	for _, id := range []string{earlier.ID, now.ID} {
		if got := stored(id); got != loaxa.EmergencyExpired {
			t.Errorf("cut off %s at its expiry: stored %s, want %s", id, got, loaxa.EmergencyExpired)
		}
		if !strings.Contains(logs.String(), `msg="emergency: expired" emergency=`+id) {
			t.Errorf("log lacks the expiry of %s with its outcome:\n%s", id, logs.String())
		}
	}
	if got := stored(cancelled.ID); got != loaxa.EmergencyCancelled {
		t.Errorf("the one cancelled: stored %s, want %s", got, loaxa.EmergencyCancelled)
	}
	if strings.Contains(logs.String(), `msg="emergency: expired" emergency=`+cancelled.ID) {
		t.Errorf("the one cancelled is logged as expired:\n%s", logs.String())
	}
	if strings.Count(logs.String(), `msg="emergency: expired"`) != 2 {
		t.Errorf("want each logged expired once:\n%s", logs.String())
	}
	w.step(s2, time.Minute)
	if n := strings.Count(logs.String(), `msg="emergency: expired"`); n != 2 {
		t.Errorf("logged expired %d times after another pass, want 2 (once each)", n)
	}
}
