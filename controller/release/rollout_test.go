package release

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

type recordingMessenger struct{ sent []string }

func (m *recordingMessenger) PublishDesired(context.Context, *protocol.DesiredState) error {
	return nil
}
func (m *recordingMessenger) SendNodeCommand(_ context.Context, node string, _ protocol.Command, _ time.Duration) error {
	m.sent = append(m.sent, node)
	return nil
}

// TestRolloutSeesUpdatedAfterABacklog: a non-canary node that was offline
// for days comes back, sends the backlog of its schedule's events (it
// plays offline), then installs the release and reports "updated". The
// runner sees it: it reads the update events only. It read all the node's
// events since the rollout began, the 1,000 oldest (the default cap), so
// the node stayed "sent" and the rollout never completed.
func TestRolloutSeesUpdatedAfterABacklog(t *testing.T) {
	t0 := time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Now = clk.Now
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "hp", Name: "HP"}); err != nil {
		t.Fatal(err)
	}
	nodes := bolt.NewNodeService(db)
	for _, id := range []string{"n1", "n2"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "hp", SecretHash: loaxa.HashSecret(loaxa.NewSecret())}); err != nil {
			t.Fatal(err)
		}
	}
	rels := bolt.NewReleaseService(db)
	if _, err := rels.PutReleaseArchive(ctx, "2.0", loaxa.ReleaseArchive{Arch: "arm64", SHA256: strings.Repeat("a", 64), Size: 10}, "admin"); err != nil {
		t.Fatal(err)
	}
	events := bolt.NewEventService(db)
	msgr := &recordingMessenger{}
	r := NewRunner()
	r.Releases, r.Nodes, r.Events, r.Messenger, r.Now = rels, nodes, events, msgr, clk.Now
	r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))

	ro, err := r.Start(ctx, "2.0", loaxa.Targets{Nodes: []string{"n1", "n2"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	canary, other := ro.Nodes[0].Node, ro.Nodes[1].Node
	clk.Advance(time.Second)
	if err := r.step(ctx, ro.ID); err != nil {
		t.Fatal(err)
	}
	// The canary updates.
	clk.Advance(time.Minute)
	if _, _, err := events.RecordEvents(ctx, canary, protocol.EventBatch{Epoch: "c", Events: []protocol.Event{{Seq: 1, Type: protocol.EventUpdated, Version: "2.0", At: clk.Now()}}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if err := r.step(ctx, ro.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.step(ctx, ro.ID); err != nil { // the rest are asked
		t.Fatal(err)
	}
	// The other node was offline for a week, playing its schedule; back
	// online it sends its backlog, then updates.
	b := protocol.EventBatch{Epoch: "o"}
	base := clk.Now()
	for i := range 1200 {
		b.Events = append(b.Events, protocol.Event{Seq: uint64(i + 1), Type: protocol.EventReceived, At: base.Add(time.Duration(i) * 8 * time.Minute)})
	}
	clk.Set(base.Add(7 * 24 * time.Hour))
	b.Events = append(b.Events, protocol.Event{Seq: 1201, Type: protocol.EventUpdated, Version: "2.0", At: clk.Now()})
	if _, _, err := events.RecordEvents(ctx, other, b, clk.Now()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.Advance(2 * time.Second)
		if err := r.step(ctx, ro.ID); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rels.FindRolloutByID(ctx, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got.Nodes {
		if n.Node == other && n.State != loaxa.RolloutNodeUpdated {
			t.Fatalf("node %s reported updated to 2.0 but the rollout holds it %q (rollout %s)", other, n.State, got.State)
		}
	}
	if got.State != loaxa.RolloutDone {
		t.Fatalf("rollout %s, want done", got.State)
	}
}
