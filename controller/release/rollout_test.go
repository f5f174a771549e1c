package release

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

type recordingMessenger struct {
	sent  []string
	asked []string // node@version of each update command
}

func (m *recordingMessenger) PublishDesired(context.Context, *protocol.DesiredState) error {
	return nil
}
func (m *recordingMessenger) SendNodeCommand(_ context.Context, node string, cmd protocol.Command, _ time.Duration) error {
	m.sent = append(m.sent, node)
	if cmd.Update != nil {
		m.asked = append(m.asked, node+"@"+cmd.Update.Version)
	}
	return nil
}

var _ loaxa.Messenger = (*recordingMessenger)(nil)

// rolloutRig is a Runner on a real store and a fake clock, with nodes
// in area hp and releases 2.0 and 3.0.
type rolloutRig struct {
	t      testing.TB
	ctx    context.Context
	clk    *clock.Fake
	nodes  *bolt.NodeService
	rels   *bolt.ReleaseService
	events *bolt.EventService
	audit  *bolt.AuditService
	msgr   *recordingMessenger
	r      *Runner
	seq    map[string]uint64
}

func newRolloutRig(t testing.TB, nodeIDs ...string) *rolloutRig {
	t.Helper()
	clk := clock.NewFake(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC))
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Now = clk.Now
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := &rolloutRig{t: t, ctx: context.Background(), clk: clk, nodes: bolt.NewNodeService(db), rels: bolt.NewReleaseService(db),
		events: bolt.NewEventService(db), audit: bolt.NewAuditService(db), msgr: &recordingMessenger{}, seq: map[string]uint64{}}
	if err := bolt.NewAreaService(db).CreateArea(g.ctx, &loaxa.Area{ID: "hp", Name: "HP"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range nodeIDs {
		if err := g.nodes.CreateNode(g.ctx, &loaxa.Node{ID: id, Name: id, Area: "hp", SecretHash: loaxa.HashSecret(loaxa.NewSecret())}); err != nil {
			t.Fatal(err)
		}
		g.online(id)
	}
	for i, v := range []string{"2.0", "3.0"} {
		if _, err := g.rels.PutReleaseArchive(g.ctx, v, loaxa.ReleaseArchive{Arch: "arm64", SHA256: strings.Repeat(string(rune('a'+i)), 64), Size: 10}, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	g.r = NewRunner()
	g.r.Releases, g.r.Nodes, g.r.Events, g.r.Messenger, g.r.Now = g.rels, g.nodes, g.events, g.msgr, clk.Now
	g.r.Audit = g.audit
	g.r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return g
}

// status sets a node's connection state, seen now.
func (g *rolloutRig) status(id, state string, lastSeen time.Time) {
	g.t.Helper()
	if err := g.nodes.UpdateNodeStatus(g.ctx, id, func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen, s.Agent = state, lastSeen, "1.0"
	}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *rolloutRig) online(id string) { g.status(id, loaxa.NodeOnline, g.clk.Now()) }

// updated records the node's updated event for version.
func (g *rolloutRig) updated(id, version string) {
	g.t.Helper()
	g.seq[id]++
	b := protocol.EventBatch{Epoch: id, Events: []protocol.Event{{Seq: g.seq[id], Type: protocol.EventUpdated, Version: version, At: g.clk.Now()}}}
	if _, _, err := g.events.RecordEvents(g.ctx, id, b, g.clk.Now()); err != nil {
		g.t.Fatal(err)
	}
}

// failed records the node's update-failed event for version.
func (g *rolloutRig) failed(id, version, reason string) {
	g.t.Helper()
	g.seq[id]++
	b := protocol.EventBatch{Epoch: id, Events: []protocol.Event{{Seq: g.seq[id], Type: protocol.EventUpdateFailed, Version: version, Reason: reason, At: g.clk.Now()}}}
	if _, _, err := g.events.RecordEvents(g.ctx, id, b, g.clk.Now()); err != nil {
		g.t.Fatal(err)
	}
}

// pass advances the clock by d and runs one pass of the runner over the
// rollouts it reads (the running index), then reads rollout id.
func (g *rolloutRig) pass(id string, d time.Duration) *loaxa.Rollout {
	g.t.Helper()
	g.clk.Advance(d)
	g.r.pass(g.ctx)
	ro, err := g.rels.FindRolloutByID(g.ctx, id)
	if err != nil {
		g.t.Fatal(err)
	}
	return ro
}

// step advances the rollout by d and steps it.
func (g *rolloutRig) step(id string, d time.Duration) *loaxa.Rollout {
	g.t.Helper()
	g.clk.Advance(d)
	if err := g.r.step(g.ctx, id); err != nil {
		g.t.Fatal(err)
	}
	ro, err := g.rels.FindRolloutByID(g.ctx, id)
	if err != nil {
		g.t.Fatal(err)
	}
	return ro
}

// nodeStates maps each node of ro to its state.
func nodeStates(ro *loaxa.Rollout) map[string]string {
	m := map[string]string{}
	for _, n := range ro.Nodes {
		m[n.Node] = n.State
	}
	return m
}

// TestRolloutCompletesWithoutTheNodesThatNeverAnswer: a board stolen a
// week before, and one whose pole the typhoon knocked down just after it
// was asked, never answer. Only canaries had a bound on their answer, so
// the rollout stayed rolling for ever and the operator could not tell
// "still going" from "done but for dead boards". A node offline since
// before it was asked is counted unreached at once, one that goes silent
// once NodeTimeout (6 h) has passed; the rollout is then done, N
// unreached. A
// node back online is asked again and its answer updates the record;
// one still offline is not asked, nor any once the rollout is halted.
func TestRolloutCompletesWithoutTheNodesThatNeverAnswer(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2", "n3", "n4")
	ro, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	canary := ro.Nodes[0].Node
	good, fallen, stolen := ro.Nodes[1].Node, ro.Nodes[2].Node, ro.Nodes[3].Node
	g.status(stolen, loaxa.NodeOffline, g.clk.Now().Add(-7*24*time.Hour))
	g.step(ro.ID, time.Second)
	g.updated(canary, "2.0")
	g.step(ro.ID, time.Minute)
	ro = g.step(ro.ID, time.Second) // the rest are asked
	if got := nodeStates(ro); got[good] != loaxa.RolloutNodeSent || got[fallen] != loaxa.RolloutNodeSent || got[stolen] != loaxa.RolloutNodeSent {
		t.Fatalf("after the canary passed: %v, want the rest sent", got)
	}
	g.status(fallen, loaxa.NodeOffline, g.clk.Now())
	g.updated(good, "2.0")
	ro = g.step(ro.ID, time.Minute)
	if got := nodeStates(ro); got[good] != loaxa.RolloutNodeUpdated || got[stolen] != "unreached" || got[fallen] != loaxa.RolloutNodeSent {
		t.Errorf("a minute later: %v, want %s updated, %s (offline for a week) unreached, %s (offline a minute) sent", got, good, stolen, fallen)
	}
	for range 48 { // a day
		ro = g.step(ro.ID, 30*time.Minute)
	}
	if ro.State != loaxa.RolloutDone || ro.Unreached != 2 {
		t.Fatalf("a day later: rollout %s with %d unreached (%v), want done with 2", ro.State, ro.Unreached, nodeStates(ro))
	}
	for _, n := range ro.Nodes {
		if n.State == "unreached" && !strings.Contains(n.Detail, "offline since") {
			t.Errorf("%s unreached, detail %q; want it to say since when it is offline", n.Node, n.Detail)
		}
	}

	// The fallen board is put up again: it is asked, and its answer
	// updates the rollout's record. The stolen one is not asked.
	g.msgr.sent = nil
	g.online(fallen)
	ro = g.step(ro.ID, 2*time.Second)
	if !slices.Equal(g.msgr.sent, []string{fallen}) {
		t.Fatalf("with %s back online the rollout asked %v, want it alone", fallen, g.msgr.sent)
	}
	g.updated(fallen, "2.0")
	ro = g.step(ro.ID, 10*time.Minute)
	if got := nodeStates(ro); got[fallen] != loaxa.RolloutNodeUpdated || ro.State != loaxa.RolloutDone || ro.Unreached != 1 {
		t.Fatalf("after %s updated: rollout %s, %d unreached, %v; want done, 1 unreached, %s updated", fallen, ro.State, ro.Unreached, got, fallen)
	}
	if slices.Contains(g.msgr.sent, stolen) {
		t.Errorf("%s, offline, was asked: %v", stolen, g.msgr.sent)
	}

	// Halted while it waits (the release turned out bad), it asks the
	// stolen board nothing when that is back.
	if ro, err = g.r.Halt(g.ctx, ro.ID, "admin", "loa rè sau cập nhật"); err != nil || ro.State != loaxa.RolloutHalted {
		t.Fatalf("halt a done rollout waiting for %s: %v, %v; want halted", stolen, ro, err)
	}
	g.msgr.sent = nil
	g.online(stolen)
	g.step(ro.ID, g.r.Resend)
	if len(g.msgr.sent) > 0 {
		t.Errorf("the halted rollout asked %v", g.msgr.sent)
	}
}

// TestNewerRolloutTakesTheNodesOfAnOlderOne: a second rollout could be
// started for nodes the first still asked, and each asked them for its
// own release every few minutes; a node drops a request for the next
// one, so it fetched neither to the end. The newer rollout takes them:
// the older counts them replaced, asks them no more and completes; a
// canary taken so halts it.
func TestNewerRolloutTakesTheNodesOfAnOlderOne(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2", "n3")
	a, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	canary, other, taken := a.Nodes[0].Node, a.Nodes[1].Node, a.Nodes[2].Node
	g.step(a.ID, time.Second)
	g.updated(canary, "2.0")
	g.step(a.ID, time.Minute)
	g.step(a.ID, time.Second) // the rest are asked
	b, err := g.r.Start(g.ctx, "3.0", loaxa.Targets{Nodes: []string{taken}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	g.msgr.asked = nil
	g.step(b.ID, time.Second)
	g.updated(other, "2.0")
	a = g.step(a.ID, g.r.Resend)
	if slices.Contains(g.msgr.asked, taken+"@2.0") || !slices.Contains(g.msgr.asked, taken+"@3.0") {
		t.Errorf("update commands %v; want %s asked for 3.0 only", g.msgr.asked, taken)
	}
	got := nodeStates(a)
	if a.State != loaxa.RolloutDone || got[taken] != "replaced" || got[other] != loaxa.RolloutNodeUpdated {
		t.Fatalf("older rollout %s %v; want done, %s replaced, %s updated", a.State, got, taken, other)
	}

	// A newer rollout naming an older one's canary halts it.
	c, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Nodes: []string{other}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := g.r.Start(g.ctx, "3.0", loaxa.Targets{Nodes: []string{other}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if c = g.step(c.ID, time.Second); c.State != loaxa.RolloutHalted || !strings.Contains(c.Reason, d.ID) {
		t.Errorf("rollout whose canary a newer one named: %s %q; want halted, naming %s", c.State, c.Reason, d.ID)
	}
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

// TestRunnerWritesARolloutOnlyWhenItChanges: while the canaries were
// updating (tens of minutes), every 2 s pass rewrote the rollout's
// record and committed the store, though nothing had changed: its
// updated_at moved every pass and the disk took a needless fsync. A pass
// with no answer, no state to move and nobody to ask again writes
// nothing; one that asks again writes.
func TestRunnerWritesARolloutOnlyWhenItChanges(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2", "n3")
	ro, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	asked := g.step(ro.ID, time.Second) // the canary is asked
	if asked.Nodes[0].State != loaxa.RolloutNodeSent {
		t.Fatalf("after the first pass: %v, want the canary sent", nodeStates(asked))
	}
	for range 10 { // 20 s of passes, well within Resend
		ro = g.step(ro.ID, 2*time.Second)
		if !ro.UpdatedAt.Equal(asked.UpdatedAt) {
			t.Fatalf("a pass with nothing new rewrote the rollout: updated_at %v, was %v", ro.UpdatedAt, asked.UpdatedAt)
		}
	}
	g.msgr.sent = nil
	ro = g.step(ro.ID, g.r.Resend) // the canary is asked again
	if len(g.msgr.sent) != 1 || !ro.UpdatedAt.After(asked.UpdatedAt) || !ro.Nodes[0].SentAt.After(asked.Nodes[0].SentAt) {
		t.Errorf("after %v: asked %v, updated_at %v (was %v); want the canary asked again and the rollout written",
			g.r.Resend, g.msgr.sent, ro.UpdatedAt, asked.UpdatedAt)
	}
}

// TestRolloutSendsNoUpdateTheNodesWouldRefuse: the controller checks the
// update command it builds as the node does (protocol.Update.Validate): a
// stored release with an archive whose SHA-256 is not one (here it would
// climb out of the archives' path towards "//other-host…") is refused when
// a rollout of it is started, saying what to do, and when such an archive
// was added after the start, it is signed for no node and the step says
// which release and why.
func TestRolloutSendsNoUpdateTheNodesWouldRefuse(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2")
	bad := loaxa.ReleaseArchive{Arch: "arm", SHA256: "/../../..//other-host.example/x", Size: 10}
	if _, err := g.rels.PutReleaseArchive(g.ctx, "5.0", bad, "admin"); err != nil {
		t.Fatal(err)
	}
	_, err := g.r.Start(g.ctx, "5.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if loaxa.ErrorCode(err) != loaxa.EInvalid || !strings.Contains(loaxa.ErrorMessage(err), "Release 5.0 cannot be sent to nodes") {
		t.Errorf("starting a rollout of a release the nodes would refuse: %v; want it refused as invalid, saying why", err)
	}

	ro, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.rels.PutReleaseArchive(g.ctx, "2.0", bad, "admin"); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Second)
	err = g.r.step(g.ctx, ro.ID)
	if err == nil || !strings.Contains(err.Error(), "release 2.0 not sent") {
		t.Errorf("step: %v; want the release named as not sent", err)
	}
	if len(g.msgr.asked) != 0 {
		t.Errorf("asked %v to install a release the nodes would refuse", g.msgr.asked)
	}
}

// TestHaltedRolloutHearsItsLateInstalls: a rollout halted while its
// clusters were installing (by an admin, or by the controller when a
// canary failed) stopped reading their answers, so a cluster that had
// the request and installed the release after the halt stayed "sent" in
// the rollout's record for ever, while it ran the new version: the
// operator deciding whether to roll it back could not tell which ones
// had it. A halted rollout now hears the nodes it asked before the halt
// for NodeTimeout (late_until), asking nobody, then is left alone.
func TestHaltedRolloutHearsItsLateInstalls(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2", "n3", "n4")
	ro, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	canary := ro.Nodes[0].Node
	late, failing, silent := ro.Nodes[1].Node, ro.Nodes[2].Node, ro.Nodes[3].Node
	g.pass(ro.ID, time.Second)
	g.updated(canary, "2.0")
	g.pass(ro.ID, time.Minute)
	ro = g.pass(ro.ID, time.Second) // the rest are asked
	if got := nodeStates(ro); got[late] != loaxa.RolloutNodeSent || got[failing] != loaxa.RolloutNodeSent || got[silent] != loaxa.RolloutNodeSent {
		t.Fatalf("after the canary passed: %v, want the rest sent", got)
	}
	if ro, err = g.r.Halt(g.ctx, ro.ID, "admin", "loa rè sau cập nhật"); err != nil {
		t.Fatal(err)
	}
	if !ro.LateUntil.Equal(g.clk.Now().Add(g.r.NodeTimeout)) {
		t.Errorf("halted rollout's late_until %v, want %v (NodeTimeout after the halt)", ro.LateUntil, g.clk.Now().Add(g.r.NodeTimeout))
	}
	if _, err := g.r.Halt(g.ctx, ro.ID, "admin", ""); loaxa.ErrorCode(err) != loaxa.EConflict {
		t.Errorf("halting a halted rollout again: %v, want a conflict", err)
	}
	// Ten minutes after the halt, one had installed it (its probation
	// over), one had failed it.
	g.msgr.sent = nil
	g.clk.Advance(10 * time.Minute)
	g.updated(late, "2.0")
	g.failed(failing, "2.0", "checksum")
	ro = g.pass(ro.ID, 2*time.Second)
	got := nodeStates(ro)
	if ro.State != loaxa.RolloutHalted || got[late] != loaxa.RolloutNodeUpdated || got[failing] != loaxa.RolloutNodeFailed || got[silent] != loaxa.RolloutNodeSent {
		t.Errorf("halted rollout after late answers: %s %v; want halted, %s updated, %s failed, %s sent", ro.State, got, late, failing, silent)
	}
	for range 10 {
		ro = g.pass(ro.ID, g.r.Resend)
	}
	if len(g.msgr.sent) > 0 {
		t.Errorf("the halted rollout asked %v", g.msgr.sent)
	}
	// Past late_until it is read no more: the runner leaves it.
	ro = g.pass(ro.ID, g.r.NodeTimeout)
	if !ro.LateUntil.IsZero() || ro.State != loaxa.RolloutHalted {
		t.Errorf("halted rollout after NodeTimeout: %s, late_until %v; want halted, late_until cleared", ro.State, ro.LateUntil)
	}
	running, err := g.rels.FindRollouts(g.ctx, loaxa.RolloutFilter{Running: true})
	if err != nil || len(running) != 0 {
		t.Errorf("rollouts the runner reads after late_until: %d (%v), want none", len(running), err)
	}
}

// TestRolloutHaltedByTheControllerIsAudited: when a canary failed, the
// controller halted the rollout and wrote no audit entry: the audit log
// showed the rollout started and nothing more, though nobody else was
// ever asked. The halt is now recorded as rollout.halt by the system,
// with the version and the reason, as the console words an admin's.
func TestRolloutHaltedByTheControllerIsAudited(t *testing.T) {
	g := newRolloutRig(t, "n1", "n2", "n3")
	ro, err := g.r.Start(g.ctx, "2.0", loaxa.Targets{Areas: []string{"hp"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	canary := ro.Nodes[0].Node
	g.pass(ro.ID, time.Second)
	g.failed(canary, "2.0", "new agent exited at start")
	ro = g.pass(ro.ID, time.Minute)
	if ro.State != loaxa.RolloutHalted {
		t.Fatalf("rollout %s after its canary failed, want halted", ro.State)
	}
	es, err := g.audit.FindAudit(g.ctx, loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	halts := haltEntries(es)
	want := fmt.Sprintf("version=2.0 node=%s reason=%q", canary, ro.Reason)
	if len(halts) != 1 || halts[0].Actor != "system" || halts[0].Target != ro.ID || halts[0].Detail != want {
		t.Fatalf("audit entries of the halt: %s; want one rollout.halt by system on %s, %s", describe(halts), ro.ID, want)
	}
	// Later passes write no second entry.
	for range 5 {
		g.pass(ro.ID, g.r.Resend)
	}
	if es, err = g.audit.FindAudit(g.ctx, loaxa.AuditFilter{}); err != nil || len(haltEntries(es)) != 1 {
		t.Errorf("rollout.halt entries after more passes: %s (%v); want the one", describe(haltEntries(es)), err)
	}
}

// haltEntries are the rollout.halt entries of es.
func haltEntries(es []*loaxa.AuditEntry) []*loaxa.AuditEntry {
	var out []*loaxa.AuditEntry
	for _, e := range es {
		if e.Action == "rollout.halt" {
			out = append(out, e)
		}
	}
	return out
}

// describe lists audit entries for a failure message.
func describe(es []*loaxa.AuditEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "[%s %s %s %q] ", e.Actor, e.Action, e.Target, e.Detail)
	}
	return b.String()
}
