package emergency

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// recorder is the broker as the service sees it: it records what was sent.
type recorder struct {
	mu   sync.Mutex
	sent []string // "area/31 alert", "node/n1 alert-cancel", …
	last map[string]protocol.Command
	away error // returned for node commands while set: the broker away
	// areaAway is returned for area commands while set.
	areaAway error
	refused  int // node commands refused
}

// setAway has node commands fail with err (nil: taken again).
func (r *recorder) setAway(err error) {
	r.mu.Lock()
	r.away = err
	r.mu.Unlock()
}

// lastSent returns the last command sent to "area/31", "node/n1", ….
func (r *recorder) lastSent(to string) protocol.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[to]
}

func (r *recorder) note(to string, cmd protocol.Command) {
	r.sent = append(r.sent, to+" "+cmd.Name)
	if r.last == nil {
		r.last = map[string]protocol.Command{}
	}
	r.last[to] = cmd
}

var _ loaxa.AlertMessenger = (*recorder)(nil)

func (r *recorder) SendAreaCommand(_ context.Context, area string, cmd protocol.Command, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("area/"+area, cmd)
	return r.areaAway
}

func (r *recorder) SendNodeCommand(_ context.Context, node string, cmd protocol.Command, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.away != nil {
		r.refused++
		return r.away
	}
	r.note("node/"+node, cmd)
	return nil
}

// take returns what was sent since the last take, sorted.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	slices.Sort(out)
	return out
}

func toneWAV() []byte {
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	n := 16000
	b.WriteString("RIFF")
	w(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)} {
		w(v)
	}
	b.WriteString("data")
	w(uint32(2 * n))
	for i := range n {
		w(int16(8000 * ((i / 20) % 2)))
	}
	return b.Bytes()
}

// TestResendAndCancelFollowUp: online nodes that have not reported an
// alert get it again after the ack bound, at most MaxResends times; an
// offline node and a node that reported it do not; after a cancel, the
// cancel follows the nodes that had the alert until they report it over.
func TestResendAndCancelFollowUp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fc := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	db := bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	db.Now = fc.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lib := media.NewLibrary(dir)
	if err := lib.Open(); err != nil {
		t.Fatal(err)
	}
	areas, nodes, contents := bolt.NewAreaService(db), bolt.NewNodeService(db), bolt.NewContentService(db)
	if err := areas.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "31", SecretHash: loaxa.HashSecret(id)}); err != nil {
			t.Fatal(err)
		}
		if id != "n3" { // n3 stays offline
			if err := nodes.UpdateNodeStatus(ctx, id, func(s *loaxa.NodeStatus) { s.State = loaxa.NodeOnline }); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := lib.Ingest(ctx, bytes.NewReader(toneWAV()), loaxa.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Title = "Báo động"
	if _, err := contents.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := NewService()
	s.Store, s.Areas, s.Nodes, s.Contents, s.Media = bolt.NewEmergencyService(db), areas, nodes, contents, lib
	s.Deliveries, s.Messenger, s.Clock = bolt.NewDeliveryService(db), rec, fc

	em, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: c.ID, Targets: []string{"31"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); !slices.Equal(got, []string{"area/31 alert"}) {
		t.Fatalf("sent %v, want one area publish", got)
	}
	step := func(d time.Duration) []string {
		fc.Advance(d)
		s.resend(ctx)
		return rec.take()
	}
	if got := step(time.Second); len(got) != 0 {
		t.Errorf("resent %v within the ack bound", got)
	}
	if got := step(1100 * time.Millisecond); !slices.Equal(got, []string{"node/n1 alert", "node/n2 alert"}) {
		t.Errorf("after the bound: %v, want the two online nodes", got)
	}
	s.Events("n1", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: fc.Now()}})
	for i := 2; i <= 3; i++ {
		if got := step(2100 * time.Millisecond); !slices.Equal(got, []string{"node/n2 alert"}) {
			t.Errorf("resend %d: %v, want n2 only", i, got)
		}
	}
	if got := step(2100 * time.Millisecond); len(got) != 0 {
		t.Errorf("a fourth resend: %v", got)
	}
	rep, err := s.EmergencyReport(ctx, em.ID)
	if err != nil {
		t.Fatal(err)
	}
	resends := map[string]int{}
	for _, n := range rep.Nodes {
		resends[n.Node] = n.Resends
	}
	if resends["n1"] != 1 || resends["n2"] != 3 || resends["n3"] != 0 || rep.Summary.Offline != 1 || rep.Summary.Pending != 2 {
		t.Errorf("report: resends %v, summary %+v", resends, rep.Summary)
	}

	if _, err := s.CancelEmergency(ctx, em.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); !slices.Equal(got, []string{"area/31 alert-cancel"}) {
		t.Errorf("cancel sent %v", got)
	}
	if got := step(2100 * time.Millisecond); !slices.Equal(got, []string{"node/n1 alert-cancel"}) {
		t.Errorf("after the cancel: %v, want the cancel again to n1, which had the alert", got)
	}
	s.Events("n1", "e1", []protocol.Event{{Type: protocol.EventFailed, Reason: protocol.ReasonCancelled, Occurrence: em.Occurrence, At: fc.Now()}})
	if got := step(2100 * time.Millisecond); len(got) != 0 {
		t.Errorf("after n1 reported it over: %v", got)
	}
}

// TestResendsWaitWhileReceiptsArrive: a node past the ack bound is not
// resent to while other nodes of its area still report the area publish
// received (within ResendQuiet); once the receipts stop, it is.
func TestResendsWaitWhileReceiptsArrive(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: "n4", Name: "n4", Area: "31", SecretHash: loaxa.HashSecret("n4")}); err != nil { // offline for now
		t.Fatal(err)
	}
	em := w.send(s)
	w.fc.Advance(1900 * time.Millisecond)
	w.report(s, "n1", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	if got := w.step(s, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("resent %v 200 ms after a receipt of the area publish", got)
	}
	if got := w.step(s, 400*time.Millisecond); !slices.Equal(got, []string{"node/n2 alert"}) {
		t.Errorf("600 ms after the last receipt: %v, want n2 resent", got)
	}
	// n3 comes online. A receipt that the node had before its resend
	// (from the publish, reported late) holds it; a receipt of a resend
	// does not: the publish is over.
	w.online(s, "n3")
	w.report(s, "n2", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now().Add(-time.Millisecond)})
	if got := w.step(s, 100*time.Millisecond); len(got) != 0 {
		t.Errorf("100 ms after a late receipt of the publish: %v, want nothing", got)
	}
	if got := w.step(s, 500*time.Millisecond); !slices.Equal(got, []string{"node/n3 alert"}) {
		t.Errorf("600 ms after it: %v, want n3 resent", got)
	}
	w.report(s, "n3", protocol.Event{Type: protocol.EventReceived, Occurrence: em.Occurrence, At: w.fc.Now()})
	w.online(s, "n4")
	if got := w.step(s, 100*time.Millisecond); !slices.Equal(got, []string{"node/n4 alert"}) {
		t.Errorf("after a resend's receipt: %v, want n4 resent at once", got)
	}
}

// TestResendBatch: one pass resends at most ResendBatch, those sent to
// longest ago first; the others go in the next passes.
func TestResendBatch(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	s.ResendBatch = 1
	w.online(s, "n3")
	if _, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	want := [][]string{{"node/n1 alert"}, {"node/n2 alert"}, {"node/n3 alert"}, nil}
	for i, d := range []time.Duration{2100 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond} {
		if got := w.step(s, d); !slices.Equal(got, want[i]) {
			t.Errorf("pass %d: %v, want %v", i+1, got, want[i])
		}
	}
	// n1, sent to longest ago, is the first of the second round.
	if got := w.step(s, 1500*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert"}) {
		t.Errorf("second round: %v, want n1 first", got)
	}
}

// TestResendStopsAtARefusal: a resend the broker refuses ends the pass (the
// broker is away: the rest would each wait out their timeout in turn) and
// counts against no node; once the broker takes them, every node due gets
// its resend.
func TestResendStopsAtARefusal(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	w.online(s, "n3")
	if _, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	w.rec.setAway(errors.New("not connected to the broker"))
	for range 3 {
		if got := w.step(s, 2100*time.Millisecond); len(got) != 0 {
			t.Fatalf("sent %v with the broker away", got)
		}
	}
	if w.rec.refused != 3 {
		t.Errorf("%d sends tried in three passes with the broker away, want one a pass", w.rec.refused)
	}
	w.rec.setAway(nil)
	if got, want := w.step(s, 250*time.Millisecond), []string{"node/n1 alert", "node/n2 alert", "node/n3 alert"}; !slices.Equal(got, want) {
		t.Errorf("once the broker takes them: %v, want %v", got, want)
	}
}

// TestResendBatchPassesOverOffline: offline nodes, however many and
// however long unsent, do not take the places of online ones in a pass.
func TestResendBatchPassesOverOffline(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := w.service()
	s.ResendBatch = 1
	for _, id := range []string{"a1", "a2", "a3"} { // offline, and first in order
		if err := s.Nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "31", SecretHash: loaxa.HashSecret(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.rec.take()
	if got := w.step(s, 2100*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert"}) {
		t.Errorf("first pass: %v, want n1 (the offline a1–a3 passed over)", got)
	}
	if got := w.step(s, 250*time.Millisecond); !slices.Equal(got, []string{"node/n2 alert"}) {
		t.Errorf("second pass: %v, want n2", got)
	}
}

// gatedMessenger holds every area publish until release is closed, saying
// on entered that one began.
type gatedMessenger struct {
	*recorder
	entered chan struct{}
	release chan struct{}
}

func (g *gatedMessenger) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	g.entered <- struct{}{}
	<-g.release
	return g.recorder.SendAreaCommand(ctx, area, cmd, ttl)
}

// TestNoResendWhilePublishing: a resend pass while the area publish is
// still under way leaves its nodes alone (they have no send time yet, but
// the publish is bringing them the alert); once it returns, nodes that do
// not report are resent to as before.
func TestNoResendWhilePublishing(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	g := &gatedMessenger{recorder: w.rec, entered: make(chan struct{}), release: make(chan struct{})}
	s.Messenger = g
	sent := make(chan error, 1)
	go func() {
		_, err := s.SendEmergency(context.Background(), loaxa.EmergencyRequest{ContentID: w.content, Targets: []string{"31"}, CreatedBy: "admin"})
		sent <- err
	}()
	<-g.entered
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Errorf("a pass during the publish sent %v, want nothing", got)
	}
	close(g.release)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := w.step(s, 0); !slices.Equal(got, []string{"area/31 alert", "node/n1 alert", "node/n2 alert"}) {
		t.Errorf("after the publish, 10 s without a receipt: %v, want the publish and a resend to each online node", got)
	}
}

// TestNodeOnANewStoreGetsTheAlertAgain: a node that reported an alert
// received and then comes online from a new store (another outbox epoch:
// its old store damaged and set aside, or the board replaced) no longer
// holds it, and is sent it again; a node that reconnects with its store,
// or that ended the alert, is not.
func TestNodeOnANewStoreGetsTheAlertAgain(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em := w.send(s)
	ev := w.alertEvent(em)
	w.report(s, "n1", ev(protocol.EventReceived))
	w.report(s, "n1", ev(protocol.EventStarted))
	w.report(s, "n2", ev(protocol.EventReceived))
	w.report(s, "n2", ev(protocol.EventCompleted))
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Fatalf("resent %v to nodes that had the alert", got)
	}

	s.Epoch("n1", "e-n1") // reconnected, its store kept
	s.Epoch("n2", "e-n2-new")
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Errorf("resent %v after a reconnect with the same store, and to a node that completed", got)
	}

	s.Epoch("n1", "e-n1-new")
	if nodes, sum := nodesOf(t, s, em.ID); nodes["n1"].State != "suspended" || nodes["n1"].Reason != protocol.ReasonInterrupted || sum.Sounding != 0 {
		t.Errorf("once n1 lost the alert: n1 %+v, summary %+v; want n1 suspended (interrupted), none sounding", nodes["n1"], sum)
	}
	if got := w.step(s, 250*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert"}) {
		t.Errorf("after n1 came from a new store: %v, want the alert again to n1", got)
	}
	w.reportFrom(s, "n1", "e-n1-new", ev(protocol.EventReceived))
	s.Epoch("n1", "e-n1-new")
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Errorf("resent %v after n1 had it again", got)
	}
	w.reportFrom(s, "n1", "e-n1-new", ev(protocol.EventStarted))
	if nodes, sum := nodesOf(t, s, em.ID); nodes["n1"].State != "started" || nodes["n1"].Resends != 1 || sum.Sounding != 1 {
		t.Errorf("n1 playing it again: %+v, summary %+v; want started, one resend", nodes["n1"], sum)
	}
}

// TestSalvagedEndOfAlert: a node back on a new store is sent the alert
// again; the events its damaged store still held and read back say it
// had begun the alert (which does not stop the resends: it lost it) and
// then finished it (which does: it keeps the mark, and a copy would play
// nothing). Its delivery reads completed.
func TestSalvagedEndOfAlert(t *testing.T) {
	w := newWorld(t)
	s := w.service()
	em := w.send(s)
	ev := w.alertEvent(em)
	w.report(s, "n1", ev(protocol.EventReceived))
	w.report(s, "n2", ev(protocol.EventReceived))
	w.report(s, "n2", ev(protocol.EventCompleted))
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Fatalf("resent %v to nodes that had the alert", got)
	}
	s.Epoch("n1", "e-n1-new")
	w.salvage(s, "n1", "e-n1", 1, ev(protocol.EventReceived), ev(protocol.EventStarted))
	if got := w.step(s, 250*time.Millisecond); !slices.Equal(got, []string{"node/n1 alert"}) {
		t.Errorf("with n1's salvaged receipt and start: %v, want the alert again to n1", got)
	}
	w.salvage(s, "n1", "e-n1", 3, ev(protocol.EventCompleted))
	if got := w.step(s, 10*time.Second); len(got) != 0 {
		t.Errorf("resent %v to n1 after its salvaged end of the alert", got)
	}
	if nodes, sum := nodesOf(t, s, em.ID); nodes["n1"].State != "completed" || sum.Completed != 2 {
		t.Errorf("n1 %+v, summary %+v; want n1 completed, two completed", nodes["n1"], sum)
	}
}
