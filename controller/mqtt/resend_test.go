package mqtt

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// ingestWorld is the ingest over a real store with the real health monitor
// as its observer; acknowledgements are held (never sent when due), and
// those the ingest sends at once are taken by a link that keeps them.
type ingestWorld struct {
	t      testing.TB
	db     *bolt.DB
	nodes  *bolt.NodeService
	alarms *bolt.AlarmService
	events *bolt.EventService
	clk    *clock.Fake
	c      *Client
	m      *health.Monitor
	sent   *keepLink
}

// keepLink takes every publish at once and keeps it.
type keepLink struct {
	mu       sync.Mutex
	payloads [][]byte
}

func (l *keepLink) open([]string, func(string, []byte)) error { return nil }
func (l *keepLink) publish(_ string, _ byte, _ bool, payload []byte) delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.payloads = append(l.payloads, payload)
	return done{}
}
func (l *keepLink) connected() bool { return true }
func (l *keepLink) close()          {}
func (l *keepLink) String() string  { return "keep" }

var ingestT0 = time.Date(2026, 3, 2, 6, 0, 0, 0, time.FixedZone("+07", 7*3600))

func newIngestWorld(t testing.TB) *ingestWorld {
	t.Helper()
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "12346", Name: "Tiên Thắng"}); err != nil {
		t.Fatal(err)
	}
	w := &ingestWorld{t: t, db: db, nodes: bolt.NewNodeService(db), alarms: bolt.NewAlarmService(db),
		events: bolt.NewEventService(db), clk: clock.NewFake(ingestT0), sent: &keepLink{}}
	if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: "tt-01", Name: "tt-01", Area: "12346", SecretHash: loaxa.HashSecret("secret-tt-01")}); err != nil {
		t.Fatal(err)
	}
	w.restartMonitor()
	return w
}

// restartMonitor makes a new monitor and ingest client over the same store:
// the controller restarted.
func (w *ingestWorld) restartMonitor() {
	w.t.Helper()
	m := health.NewMonitor()
	m.Clock, m.Nodes, m.Alarms, m.Tests = w.clk, w.nodes, w.alarms, w.alarms
	if err := m.Open(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	c := NewClient()
	c.NodeService, c.EventService, c.Observer = w.nodes, w.events, m
	c.AckDelay = time.Hour // held, never sent when due: no broker in this test
	c.Now = w.clk.Now
	key, err := w.db.SigningKey()
	if err != nil {
		w.t.Fatal(err)
	}
	c.Signer = protocol.NewSigner("controller", key, 0, nil)
	c.link = w.sent
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w.c, w.m = c, m
}

func (w *ingestWorld) ingest(b protocol.EventBatch) {
	w.t.Helper()
	raw, err := protocol.Encode(protocol.TypeEvents, "tt-01", "controller", b.Events[0].Seq, w.clk.Now(), b)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.c.ingestEvents(context.Background(), "tt-01", raw); err != nil {
		w.t.Fatal(err)
	}
}

// sentCommands returns the commands the ingest sent at once, in order.
func (w *ingestWorld) sentCommands() []protocol.Command {
	w.t.Helper()
	w.sent.mu.Lock()
	defer w.sent.mu.Unlock()
	var cmds []protocol.Command
	for _, raw := range w.sent.payloads {
		env, err := protocol.Parse(raw)
		if err != nil {
			w.t.Fatal(err)
		}
		var cmd protocol.Command
		if err := env.Decode(&cmd); err != nil {
			w.t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

func (w *ingestWorld) alarmsOf(kind string) []*loaxa.Alarm {
	w.t.Helper()
	as, err := w.alarms.FindAlarms(context.Background(), loaxa.AlarmFilter{Node: "tt-01", Kind: kind})
	if err != nil {
		w.t.Fatal(err)
	}
	return as
}

func (w *ingestWorld) storedEvents() int {
	w.t.Helper()
	evs, err := w.events.FindEvents(context.Background(), loaxa.EventFilter{Node: "tt-01"})
	if err != nil {
		w.t.Fatal(err)
	}
	return len(evs)
}

// TestLateCopyOfAnOldEpochReopensNoAlarm: a late copy of a batch from the
// outbox a node has since replaced (its store was replaced: a new epoch)
// is not stored again, and the health monitor does not hear it again. It
// did: the monitor remembers only the newest epoch, so an amplifier
// failure that a later play proved over opened a failed-to-sound alarm
// again, which nothing ended.
func TestLateCopyOfAnOldEpochReopensNoAlarm(t *testing.T) {
	w := newIngestWorld(t)
	failed := w.ampFailure(t)
	// The board's store is replaced; it plays the next occurrence fine.
	w.clk.Advance(time.Hour)
	done := protocol.Event{Seq: 1, Type: protocol.EventCompleted, Occurrence: "a000001@20260302T000000.000Z", At: w.clk.Now(), PlayedMS: 3000}
	w.ingest(protocol.EventBatch{Epoch: "epoch-b", Events: []protocol.Event{done}})
	if open := w.alarmsOf(loaxa.AlarmFailedToSound); len(open) != 1 || open[0].End.IsZero() {
		t.Fatalf("the completed play should end the alarm: %+v", open)
	}
	// A late copy of the old outbox's batch (an MQTT redelivery).
	before := w.storedEvents()
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{failed}})
	if after := w.storedEvents(); after != before {
		t.Fatalf("late copy stored: %d events, was %d", after, before)
	}
	as := w.alarmsOf(loaxa.AlarmFailedToSound)
	if len(as) != 1 {
		for _, a := range as {
			t.Logf("alarm %s start %s end %v", a.ID, a.Start, a.End)
		}
		t.Fatalf("a late copy of an already stored, already ended failure made %d failed-to-sound alarms, want 1", len(as))
	}
}

// TestLateCopyOfOldEpochKeepsTheHeldAck: the controller held a node's
// acknowledgement (AckDelay) for its current outbox (a new epoch: its
// store was replaced) when a late copy of a batch of its old outbox came
// (an MQTT redelivery), stored already. The copy's acknowledgement took
// the place of the held one; the node ignores acknowledgements of any
// epoch but its own, so its current events stayed unacknowledged and it
// sent them all again after its AckTimeout (30 s more over 4G, its outbox
// count up meanwhile). The copy is acknowledged at once and the held
// acknowledgement stays.
func TestLateCopyOfOldEpochKeepsTheHeldAck(t *testing.T) {
	w := newIngestWorld(t)
	occ := "a000001@20260302T000000.000Z"
	old := protocol.Event{Seq: 1, Type: protocol.EventReceived, Occurrence: occ, At: w.clk.Now()}
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{old}})
	w.c.acks.take(time.Time{}) // that acknowledgement went out

	// The board's store is replaced (epoch-b); it reports a play.
	w.clk.Advance(time.Hour)
	w.ingest(protocol.EventBatch{Epoch: "epoch-b", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventStarted, Occurrence: occ, At: w.clk.Now()},
		{Seq: 2, Type: protocol.EventCompleted, Occurrence: occ, At: w.clk.Now(), PlayedMS: 3000},
	}})
	if e, s, ok := HeldAck(w.c, "tt-01"); !ok || e != "epoch-b" || s != 2 {
		t.Fatalf("held acknowledgement %q up to %d (held %v), want epoch-b up to 2", e, s, ok)
	}

	// A late copy of the old outbox's batch, within the delay.
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{old}})
	if e, s, ok := HeldAck(w.c, "tt-01"); !ok || e != "epoch-b" || s != 2 {
		t.Fatalf("after a late copy of an old epoch's batch the held acknowledgement is %q up to %d (held %v): the node's current outbox would go unacknowledged; want epoch-b up to 2", e, s, ok)
	}
	if cmds := w.sentCommands(); len(cmds) != 1 || cmds[0].Name != protocol.CmdAck || cmds[0].Epoch != "epoch-a" || cmds[0].Seq != 1 {
		t.Errorf("sent at once %+v, want the copy's acknowledgement: epoch-a up to 1", cmds)
	}
}

// TestResendAfterRestartMakesNoSecondAlarm: after a controller restart, a
// node sends again the events whose acknowledgement the controller held
// (AckDelay) when it stopped. They are stored already, and the new health
// monitor does not hear them as new: one amplifier failure made a second
// failed-to-sound alarm in the alarm history and on the alarm stream.
func TestResendAfterRestartMakesNoSecondAlarm(t *testing.T) {
	w := newIngestWorld(t)
	failed := w.ampFailure(t)
	w.clk.Advance(time.Hour)
	done := protocol.Event{Seq: 2, Type: protocol.EventCompleted, Occurrence: "a000001@20260302T000000.000Z", At: w.clk.Now(), PlayedMS: 3000}
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{done}})

	w.restartMonitor() // the controller restarts before the held acknowledgement went out
	before := w.storedEvents()
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{failed, done}})
	if after := w.storedEvents(); after != before {
		t.Fatalf("resend stored: %d events, was %d", after, before)
	}
	if as := w.alarmsOf(loaxa.AlarmFailedToSound); len(as) != 1 {
		for _, a := range as {
			t.Logf("alarm %s start %s end %v", a.ID, a.Start, a.End)
		}
		t.Fatalf("a resend of already stored events made %d failed-to-sound alarms for one failure, want 1", len(as))
	}
}

// ampFailure ingests an amplifier failure of epoch-a, seq 1, which opens
// a failed-to-sound alarm, and returns the event.
func (w *ingestWorld) ampFailure(t *testing.T) protocol.Event {
	t.Helper()
	failed := protocol.Event{Seq: 1, Type: protocol.EventFailed, Reason: protocol.ReasonAmplifier, Occurrence: "a000001@20260301T230000.000Z", At: ingestT0}
	w.ingest(protocol.EventBatch{Epoch: "epoch-a", Events: []protocol.Event{failed}})
	if n := len(w.alarmsOf(loaxa.AlarmFailedToSound)); n != 1 {
		t.Fatalf("%d failed-to-sound alarms after the failure, want 1", n)
	}
	return failed
}
