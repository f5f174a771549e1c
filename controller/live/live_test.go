package live_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/live"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 9, 2, 7, 0, 0, 0, time.UTC)

type fixture struct {
	svc   *live.Service
	audit *bolt.AuditService
	clock *clock.Fake
	db    *bolt.DB
	sent  *nodeLive
	seqs  map[string]uint64 // the last event sequence of each node
}

// recorder returns a function that stores node's event of call id and
// tells svc of it, as the MQTT client does.
func (f *fixture) recorder(t *testing.T, svc *live.Service, id string) func(node string, typ protocol.EventType, heldBy string) {
	events := bolt.NewEventService(f.db)
	seqs := map[string]uint64{}
	return func(node string, typ protocol.EventType, heldBy string) {
		t.Helper()
		seqs[node]++
		ev := protocol.Event{Seq: seqs[node], Type: typ, At: f.clock.Now(), Occurrence: id, Announcement: id, HeldBy: heldBy}
		_, stored, err := events.RecordEvents(t.Context(), node, protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{ev}}, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		svc.Events(node, stored)
	}
}

// nodeLive records the live messages sent to single nodes, as
// "node kind[:reason]", and the messages themselves.
type nodeLive struct {
	mu   sync.Mutex
	sent []string
	msgs []protocol.Live
}

var (
	_ loaxa.LiveNodeMessenger = (*nodeLive)(nil)
	_ loaxa.LiveMessenger     = (*nodeLive)(nil)
)

// SendLive records l to area as "area/{area} call kind".
func (r *nodeLive) SendLive(ctx context.Context, area string, l protocol.Live) error {
	return r.SendNodeLive(ctx, "area/"+area, l)
}

func (r *nodeLive) SendNodeLive(_ context.Context, node string, l protocol.Live) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, strings.TrimSuffix(node+" "+l.Call+" "+l.Kind+":"+l.Reason, ":"))
	r.msgs = append(r.msgs, l)
	return nil
}

func (r *nodeLive) all() ([]string, []protocol.Live) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.sent)
	slices.Sort(out)
	return out, slices.Clone(r.msgs)
}

// newService is a Service on a real store in a temp dir with areas 31 →
// 318 → 12346 and 12347, nodes a1, a2 in 12346 and b1 in 12347.
func newService(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clock: clock.NewFake(t0), sent: &nodeLive{}}
	f.db = bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	f.db.Now = f.clock.Now
	f.db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := f.db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.db.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	areas, nodes := bolt.NewAreaService(f.db), bolt.NewNodeService(f.db)
	for _, a := range []*loaxa.Area{{ID: "31", Name: "HP"}, {ID: "318", Name: "TL", Parent: "31"},
		{ID: "12346", Name: "TT", Parent: "318"}, {ID: "12347", Name: "TM", Parent: "318"}} {
		if err := areas.CreateArea(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for id, area := range map[string]string{"a1": "12346", "a2": "12346", "b1": "12347"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Area: area, SecretHash: loaxa.HashSecret("s")}); err != nil {
			t.Fatal(err)
		}
	}
	f.audit = bolt.NewAuditService(f.db)
	f.svc = f.open(t)
	return f
}

// open makes a Service on f's store, as a (re)started controller does.
func (f *fixture) open(t testing.TB) *live.Service {
	t.Helper()
	s := live.NewService()
	s.Store, s.Nodes, s.Deliveries, s.Audit = bolt.NewLiveCallService(f.db), bolt.NewNodeService(f.db), bolt.NewDeliveryService(f.db), f.audit
	s.Clock, s.Messenger, s.Areas = f.clock, f.sent, f.sent
	s.Tree = bolt.NewAreaService(f.db)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// report records node's events of call at the fixture's time.
func (f *fixture) report(t *testing.T, node, call string, types ...protocol.EventType) {
	t.Helper()
	events := bolt.NewEventService(f.db)
	var batch protocol.EventBatch
	batch.Epoch = "e1"
	if f.seqs == nil {
		f.seqs = map[string]uint64{}
	}
	for _, typ := range types {
		f.seqs[node]++
		batch.Events = append(batch.Events, protocol.Event{Seq: f.seqs[node], Type: typ, At: f.clock.Now(), Occurrence: call, Announcement: call})
	}
	if _, _, err := events.RecordEvents(context.Background(), node, batch, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) audits(t *testing.T, id string) []string {
	t.Helper()
	es, err := f.audit.FindAudit(context.Background(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Target == id {
			out = append(out, e.Actor+" "+e.Action+" "+e.Detail)
		}
	}
	return out
}

func TestBeginCallMakesADeliveryPerNode(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "an", Areas: []string{"12346", "318"}, Priority: protocol.PriorityEmergency}
	if _, err := f.svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Nodes != 3 || !c.Emergency || !c.Started.Equal(t0) {
		t.Errorf("call %+v, want 3 nodes (each once), emergency, started now", c)
	}
	rep, err := f.svc.LiveCallReport(ctx, "live-1")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, n := range rep.Nodes {
		nodes = append(nodes, n.Node+" "+n.State)
	}
	if want := []string{"a1 offline", "a2 offline", "b1 offline"}; !slices.Equal(nodes, want) {
		t.Errorf("nodes %q, want %q", nodes, want)
	}
	if rep.Summary.Targeted != 3 || rep.Summary.Offline != 3 {
		t.Errorf("summary %+v", rep.Summary)
	}
	if _, err := f.svc.EndCall(ctx, "live-1", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
}

// A drill call's title is marked, its deliveries and report say drill,
// and so does the audit of its end, including one closed by a restart.
func TestDrillCallMarked(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	c := &loaxa.LiveCall{ID: "live-5", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh, Title: "Sơ tán", Drill: true, Volume: 3}
	if _, err := f.svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Title != "[DIỄN TẬP] Sơ tán" {
		t.Errorf("drill title %q, want it marked", c.Title)
	}
	rep, err := f.svc.LiveCallReport(ctx, "live-5")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Drill || rep.Volume != 3 || len(rep.Nodes) != 2 {
		t.Fatalf("report %+v with %d nodes, want a drill at volume 3 to 2 nodes", rep.LiveCall, len(rep.Nodes))
	}
	for _, n := range rep.Nodes {
		if !n.Drill {
			t.Errorf("node %s of the drill: %+v, want drill", n.Node, n)
		}
	}
	if _, err := f.svc.EndCall(ctx, "live-5", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped, FramesSent: 10}); err != nil {
		t.Fatal(err)
	}
	want := []string{`an live.stop drill=true priority=priority title="[DIỄN TẬP] Sơ tán" frames=10 dropped=0 bytes=0 reason="speaker stopped" cut_by=""`}
	if got := f.audits(t, "live-5"); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}

	// A drill left on air by a crash, and a real call beside it.
	if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-6", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh, Drill: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-7", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh}); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	for id, drill := range map[string]string{"live-6": "drill=true", "live-7": "drill=false"} {
		if got := f.audits(t, id); len(got) != 1 || !strings.HasPrefix(got[0], "system live.stop "+drill+" ") {
			t.Errorf("audit of %s closed at start-up: %q, want one stop by system with %s", id, got, drill)
		}
	}
	rep, err = f.svc.LiveCallReport(ctx, "live-7")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drill || rep.Title != "" || rep.Nodes[0].Drill {
		t.Errorf("real call %+v, node %+v: marked drill", rep.LiveCall, rep.Nodes[0])
	}
}

// CutCall signals the call's runner and returns once the runner recorded
// the end; the record says who cut it, whatever the runner saw.
func TestCutCallWaitsForTheRunner(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	cut, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-2", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh})
	if err != nil {
		t.Fatal(err)
	}
	runner := make(chan struct{})
	go func() {
		defer close(runner)
		<-cut
		f.clock.Advance(90 * time.Second)
		if _, err := f.svc.EndCall(ctx, "live-2", loaxa.LiveCallEnd{Reason: loaxa.LiveEndDisconnected, FramesSent: 2250, Bytes: 2_880_000}); err != nil {
			t.Error(err)
		}
	}()
	c, err := f.svc.CutCall(ctx, "live-2", "binh")
	<-runner
	if err != nil {
		t.Fatal(err)
	}
	if c.Active() || c.EndReason != loaxa.LiveEndCut || c.CutBy != "binh" || c.FramesSent != 2250 || !c.Ended.Equal(t0.Add(90*time.Second)) {
		t.Errorf("cut call %+v", c)
	}
	_, err = f.svc.CutCall(ctx, "live-2", "chi")
	if loaxa.ErrorCode(err) != loaxa.EConflict {
		t.Fatalf("cutting an ended call: %v, want conflict", err)
	}
	if msg := loaxa.ErrorMessage(err); msg != "Live call live-2 is over: it ended at 14:01:30 02/09/2026 (cut by binh); there is nothing to cut." {
		t.Errorf("message %q", msg)
	}
	if _, err := f.svc.CutCall(ctx, "live-9", "chi"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("cutting an unknown call: %v, want not found", err)
	}
	want := []string{`an live.stop drill=false priority=priority title="" frames=2250 dropped=0 bytes=2880000 reason="cut" cut_by="binh"`}
	if got := f.audits(t, "live-2"); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
}

// A call the last run left on air is closed at start-up, and audited.
func TestOpenClosesCallsLeftOnAir(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-3", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-4", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.EndCall(ctx, "live-4", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
	// The controller dies with live-3 on air and starts again.
	f.clock.Advance(time.Minute)
	svc := f.open(t)
	c, err := svc.FindLiveCallByID(ctx, "live-3")
	if err != nil {
		t.Fatal(err)
	}
	if c.Active() || c.EndReason != loaxa.LiveEndRestarted || !c.Ended.Equal(t0.Add(time.Minute)) {
		t.Errorf("call left on air after a restart: %+v", c)
	}
	if c, _ := svc.FindLiveCallByID(ctx, "live-4"); c.EndReason != loaxa.LiveEndSpeakerStopped {
		t.Errorf("a call that had ended was changed: %+v", c)
	}
	if got := f.audits(t, "live-3"); len(got) != 1 || got[0][:len("system live.stop")] != "system live.stop" {
		t.Errorf("audit %q, want one stop by system", got)
	}
	active, err := svc.FindLiveCalls(ctx, loaxa.LiveCallFilter{Active: true})
	if err != nil || len(active) != 0 {
		t.Errorf("calls on air after the restart: %v %v", active, err)
	}
}

// TestNodeBackOnlineJoinsTheCallOnAir: a pole whose 4G came back in the
// middle of an officer's call stayed silent to its end. The call's start
// had gone out on the commune's live topic while it was away, and nodes
// use clean sessions: nothing kept it for the node, which ignored every
// frame after. A node of the call that comes online while the call is on
// air, and has not done with it, must get the call's start again on its
// own topic, as it was (priority, title, volume, drill); a node of another
// area, or one done with the call, gets nothing.
func TestNodeBackOnlineJoinsTheCallOnAir(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	c := &loaxa.LiveCall{ID: "live-j1", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh, Title: "Họp dân", Drill: true, Volume: 3}
	if _, err := f.svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	f.report(t, "a2", "live-j1", protocol.EventReceived, protocol.EventStarted, protocol.EventPreempted)
	for _, n := range []string{"a1", "a2", "b1"} {
		f.svc.NodeOnline(n)
	}
	f.svc.Close() // waits for the sends
	sent, msgs := f.sent.all()
	if want := []string{"a1 live-j1 start"}; !slices.Equal(sent, want) {
		t.Fatalf("sent %q, want %q", sent, want)
	}
	want := protocol.Live{Call: "live-j1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: loaxa.DrillMark + "Họp dân", Drill: true, Volume: 3}
	if !reflect.DeepEqual(msgs[0], want) {
		t.Errorf("start sent again %+v, want %+v", msgs[0], want)
	}
	if _, err := f.svc.EndCall(ctx, "live-j1", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
}

// TestCallLeavesOutClustersAwaitingTheirCode: a call to a commune whose
// new poles had codes issued but not yet redeemed gave each pole a
// delivery, and its report read them offline, like broken clusters. The
// call is for the enrolled nodes; it says how many more wait for their
// code. A board put up during the call (its code redeemed, online) joins
// it: it is given its delivery and the start.
func TestCallLeavesOutClustersAwaitingTheirCode(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	nodes := bolt.NewNodeService(f.db)
	if err := nodes.CreateNodes(ctx, []*loaxa.Node{{ID: "w1", Area: "12346"}, {ID: "w2", Area: "12346"}}); err != nil {
		t.Fatal(err)
	}
	c := &loaxa.LiveCall{ID: "live-w1", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityEmergency, Title: "Bão số 3"}
	if _, err := f.svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Nodes != 2 || c.AwaitingEnrolment != 2 {
		t.Errorf("call of %d nodes, %d awaiting enrolment; want a1, a2 and w1, w2", c.Nodes, c.AwaitingEnrolment)
	}
	states := func() []string {
		t.Helper()
		rep, err := f.svc.LiveCallReport(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range rep.Nodes {
			out = append(out, n.Node+" "+n.State)
		}
		return out
	}
	if got, want := states(), []string{"a1 offline", "a2 offline"}; !slices.Equal(got, want) {
		t.Errorf("report %q, want %q: w1 and w2 are not put up yet", got, want)
	}

	code := loaxa.HashEnrolmentCode("CODE-W1")
	if err := nodes.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code, Node: "w1", Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.RedeemEnrolment(ctx, code, loaxa.NodeSecret{Hash: loaxa.HashSecret("w1"), BrokerHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.UpdateNodeStatus(ctx, "w1", func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOnline }); err != nil {
		t.Fatal(err)
	}
	f.svc.NodeOnline("w1")
	f.svc.Close() // waits for the sends
	if sent, _ := f.sent.all(); !slices.Equal(sent, []string{"w1 live-w1 start"}) {
		t.Errorf("sent %q, want the start to w1, put up during the call", sent)
	}
	if got, want := states(), []string{"a1 offline", "a2 offline", "w1 pending"}; !slices.Equal(got, want) {
		t.Errorf("report once w1 is up %q, want %q", got, want)
	}
	if _, err := f.svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
}

// TestNodeBackOnlineGetsTheEndItMissed: a node whose link dropped during
// a call (its delivery suspended) missed the call's end: published while
// it was away, it was lost to it, and a crashed controller sends none. The
// node kept the call suspended, waiting for frames, for 2 h, and the
// call's report said so. A node that comes online holding a call ended
// less than protocol.MaxLiveDuration ago (received, started or suspended)
// must get its end on its own topic (with the cut's reason for a cut
// call), also after a restart of the controller; a node done with the
// call, or that never had it, gets nothing, and nothing is sent for a
// call ended longer ago than a node keeps one.
func TestNodeBackOnlineGetsTheEndItMissed(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	for _, id := range []string{"live-e1", "live-e2"} {
		if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: id, CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh}); err != nil {
			t.Fatal(err)
		}
	}
	f.report(t, "a1", "live-e1", protocol.EventReceived, protocol.EventStarted, protocol.EventSuspended)
	f.report(t, "a2", "live-e1", protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted)
	f.report(t, "a1", "live-e2", protocol.EventReceived, protocol.EventStarted, protocol.EventSuspended)
	f.report(t, "a2", "live-e2", protocol.EventReceived)
	if _, err := f.svc.EndCall(ctx, "live-e1", loaxa.LiveCallEnd{Reason: loaxa.LiveEndCut}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	for _, n := range []string{"a1", "a2", "b1"} {
		f.svc.NodeOnline(n)
	}
	f.svc.Close()
	sent, _ := f.sent.all()
	// live-e2 is on air: a1, which holds it, gets its start again (and
	// ignores it), a2 too.
	if want := []string{"a1 live-e1 end:cut", "a1 live-e2 start", "a2 live-e2 start"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}

	// The controller dies with live-e2 on air and starts again an hour
	// later: it closes live-e2, and a1, back online, gets both ends.
	f.clock.Advance(time.Hour)
	f.sent = &nodeLive{}
	svc := f.open(t)
	for _, n := range []string{"a1", "a2", "b1"} {
		svc.NodeOnline(n)
	}
	svc.Close()
	sent, _ = f.sent.all()
	if want := []string{"a1 live-e1 end:cut", "a1 live-e2 end", "a2 live-e2 end"}; !slices.Equal(sent, want) {
		t.Errorf("after a restart: sent %q, want %q", sent, want)
	}

	// Past the longest a node holds a call after its end: nothing.
	f.clock.Advance(protocol.MaxLiveDuration)
	f.sent = &nodeLive{}
	svc = f.open(t)
	svc.NodeOnline("a1")
	svc.Close()
	if sent, _ = f.sent.all(); len(sent) != 0 {
		t.Errorf("%s after the calls' end: sent %q, want nothing", protocol.MaxLiveDuration+time.Hour, sent)
	}
}

// gatedLive is a LiveNodeMessenger whose sends wait for the test to open
// its gate, counting the sends under way.
type gatedLive struct {
	gate chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool // the nodes whose send is under way
	most     int             // the most sends under way at once
	sent     []string
}

var _ loaxa.LiveNodeMessenger = (*gatedLive)(nil)

func (g *gatedLive) SendNodeLive(ctx context.Context, node string, l protocol.Live) error {
	g.mu.Lock()
	g.inFlight[node] = true
	g.most = max(g.most, len(g.inFlight))
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.inFlight, node)
		g.sent = append(g.sent, node+" "+l.Call+" "+l.Kind)
		g.mu.Unlock()
	}()
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestManyNodesBackOnlineAreSentToAFewAtATime: after a broker outage the
// province's 10,000 boards reconnect within a minute or two during a
// call, and NodeOnline started a goroutine for each, every one reading
// the store and publishing at once. At most live.NodeOnlineSends nodes
// are looked up and sent to at a time, the first to come online first;
// the others wait their turn and none is dropped: every node gets the
// call's start.
func TestManyNodesBackOnlineAreSentToAFewAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newService(t)
		ctx := context.Background()
		nodes := bolt.NewNodeService(f.db)
		var order []string
		for i := range 4 * live.NodeOnlineSends {
			id := fmt.Sprintf("m%03d", i)
			if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Area: "12347", SecretHash: loaxa.HashSecret("s")}); err != nil {
				t.Fatal(err)
			}
			order = append(order, id)
		}
		if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-m1", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh}); err != nil {
			t.Fatal(err)
		}
		g := &gatedLive{gate: make(chan struct{}), inFlight: map[string]bool{}}
		f.svc.Messenger = g
		for _, n := range order {
			f.svc.NodeOnline(n)
		}
		synctest.Wait() // every send that could start has started
		g.mu.Lock()
		first := slices.Sorted(maps.Keys(g.inFlight))
		g.mu.Unlock()
		if want := order[:live.NodeOnlineSends]; !slices.Equal(first, want) {
			t.Errorf("sends under way before any ended: %d %q, want the first %d to come online %q", len(first), first, len(want), want)
		}
		close(g.gate)
		synctest.Wait() // every node sent to
		f.svc.Close()
		if g.most > live.NodeOnlineSends {
			t.Errorf("%d sends under way at once, want at most %d", g.most, live.NodeOnlineSends)
		}
		var want []string
		for _, n := range order {
			want = append(want, n+" live-m1 start")
		}
		if got := slices.Sorted(slices.Values(g.sent)); !slices.Equal(got, want) {
			t.Errorf("sent %d starts %q, want one to each of the %d nodes", len(got), got, len(want))
		}
		if _, err := f.svc.EndCall(ctx, "live-m1", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCloseLeavesTheQueuedNodes: a controller stopped while thousands of
// boards came back online waited for every queued node's look-up and
// sends (each up to seconds on a slow broker) before it could stop,
// longer than a service manager waits. Close waits for the sends under
// way and drops the nodes still queued: they come online again to the
// next controller.
func TestCloseLeavesTheQueuedNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newService(t)
		ctx := context.Background()
		nodes := bolt.NewNodeService(f.db)
		var order []string
		for i := range 2 * live.NodeOnlineSends {
			id := fmt.Sprintf("q%03d", i)
			if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Area: "12347", SecretHash: loaxa.HashSecret("s")}); err != nil {
				t.Fatal(err)
			}
			order = append(order, id)
		}
		if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: "live-q1", CreatedBy: "an", Areas: []string{"12347"}, Priority: protocol.PriorityHigh}); err != nil {
			t.Fatal(err)
		}
		g := &gatedLive{gate: make(chan struct{}), inFlight: map[string]bool{}}
		f.svc.Messenger = g
		for _, n := range order {
			f.svc.NodeOnline(n)
		}
		synctest.Wait() // the first NodeOnlineSends sending, the rest queued
		closed := make(chan struct{})
		go func() { defer close(closed); f.svc.Close() }()
		synctest.Wait() // Close waits for the sends under way
		select {
		case <-closed:
			t.Fatal("Close returned with sends under way")
		default:
		}
		close(g.gate)
		<-closed
		var want []string
		for _, n := range order[:live.NodeOnlineSends] {
			want = append(want, n+" live-q1 start")
		}
		if got := slices.Sorted(slices.Values(g.sent)); !slices.Equal(got, want) {
			t.Errorf("sent %d starts %q, want only the %d under way when it closed", len(got), got, len(want))
		}
	})
}

// TestEndLeftOpenReachesNodesThatStayedConnected: the controller crashed
// during a call while its nodes stayed connected to an external broker.
// They went off the air, the call suspended, and, never coming online
// again for the restarted controller, kept it so for 2 h: nothing sent
// them its end. Once the broker takes publishes, the restarted controller
// must send the end of each call it closed as left open to that call's
// areas, and nothing for a call that had ended.
func TestEndLeftOpenReachesNodesThatStayedConnected(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	for _, id := range []string{"live-o1", "live-o2"} {
		if _, err := f.svc.BeginCall(ctx, &loaxa.LiveCall{ID: id, CreatedBy: "an", Areas: []string{"12346", "12347"}, Priority: protocol.PriorityHigh, Drill: id == "live-o1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.EndCall(ctx, "live-o2", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	svc := f.open(t) // the controller dies with live-o1 on air and starts again
	svc.EndLeftOpen(ctx)
	sent, msgs := f.sent.all()
	if want := []string{"area/12346 live-o1 end", "area/12347 live-o1 end"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
	for _, m := range msgs {
		if !m.Drill {
			t.Errorf("end of the drill call %+v not marked drill", m)
		}
	}
}

// countedCalls is a LiveCallStore that counts the call records its
// FindLiveCalls returned.
type countedCalls struct {
	loaxa.LiveCallStore
	mu   sync.Mutex
	read int
}

func (s *countedCalls) FindLiveCalls(ctx context.Context, f loaxa.LiveCallFilter) ([]*loaxa.LiveCall, error) {
	cs, err := s.LiveCallStore.FindLiveCalls(ctx, f)
	s.mu.Lock()
	s.read += len(cs)
	s.mu.Unlock()
	return cs, err
}

// TestOpenReadsOnlyTheCallsItNeeds: to find the calls ended in the last
// protocol.MaxLiveDuration, whose ends a node back online may have missed,
// Open read every call record in the store: with a province's year of
// calls, every record on each start of the controller. It must read the
// calls left on air and those that can have ended lately, no more, and
// still send a node back online the ends of both.
func TestOpenReadsOnlyTheCallsItNeeds(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	store := bolt.NewLiveCallService(f.db)
	const year = 400 // a call every 22 hours
	for i := range year {
		started := t0.Add(-time.Duration(i+1) * 22 * time.Hour)
		c := &loaxa.LiveCall{ID: fmt.Sprintf("live-y%03d", i), CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh,
			Started: started, Ended: started.Add(20 * time.Minute), EndReason: loaxa.LiveEndSpeakerStopped}
		if err := store.CreateLiveCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// A call the last run left on air ten hours ago (the controller
	// crashed and stayed down), and one ended an hour before the restart.
	for _, c := range []*loaxa.LiveCall{
		{ID: "live-open", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh, Started: t0.Add(-10 * time.Hour)},
		{ID: "live-late", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh, Started: t0.Add(-80 * time.Minute)},
	} {
		if _, err := f.svc.BeginCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		f.report(t, "a1", c.ID, protocol.EventReceived, protocol.EventStarted, protocol.EventSuspended)
	}
	if _, err := f.svc.EndCall(ctx, "live-late", loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}

	f.clock.Advance(time.Hour)
	counted := &countedCalls{LiveCallStore: store}
	svc := live.NewService()
	svc.Store, svc.Nodes, svc.Deliveries, svc.Audit = counted, bolt.NewNodeService(f.db), bolt.NewDeliveryService(f.db), f.audit
	svc.Clock, svc.Messenger = f.clock, f.sent
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if counted.read > 3 {
		t.Errorf("Open read %d call records of the %d stored, want those left on air or ended lately (2)", counted.read, year+2)
	}
	svc.NodeOnline("a1")
	svc.Close()
	if sent, _ := f.sent.all(); !slices.Equal(sent, []string{"a1 live-late end", "a1 live-open end"}) {
		t.Errorf("sent %q to a1 back online, want the ends of the call left on air and of the one ended lately", sent)
	}
}

// countedDeliveries is a DeliveryService that counts the reads of its
// FindDeliveries.
type countedDeliveries struct {
	loaxa.DeliveryService
	mu    sync.Mutex
	reads int
}

func (s *countedDeliveries) FindDeliveries(ctx context.Context, f loaxa.DeliveryFilter) ([]*loaxa.Delivery, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.DeliveryService.FindDeliveries(ctx, f)
}

func (s *countedDeliveries) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// TestLiveCallHoldsReadOnlyAfterAHold: a call on air looked up every
// second which of its clusters alerts hold back, through the call's
// summary: for a province-wide call, 5,000 deliveries and their nodes
// read every second, 7–8 MB of garbage a second for as long as the
// officer speaks. The holds are read from the deliveries only after a
// node reported one, or a node held reported anything since; otherwise
// they are answered from memory, and read the same as the summary's.
func TestLiveCallHoldsReadOnlyAfterAHold(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	deliveries := &countedDeliveries{DeliveryService: bolt.NewDeliveryService(f.db)}
	svc := live.NewService()
	svc.Store, svc.Nodes, svc.Deliveries, svc.Audit = bolt.NewLiveCallService(f.db), bolt.NewNodeService(f.db), deliveries, f.audit
	svc.Clock = f.clock
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "an", Areas: []string{"318"}, Priority: protocol.PriorityHigh}
	if _, err := svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	record := f.recorder(t, svc, c.ID)
	// check asks for the holds twice, as two seconds of the call do, and
	// wants them as the summary has them, after reads reads in all.
	check := func(step string, want []loaxa.LiveHold, reads int) {
		t.Helper()
		for range 2 {
			got, err := svc.LiveCallHolds(ctx, c.ID)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("%s: holds %+v, %v; want %+v", step, got, err, want)
			}
		}
		if got := deliveries.count(); got != reads {
			t.Errorf("%s: the deliveries read %d times in all, want %d", step, got, reads)
		}
		// The summary, read by another Service on the same store.
		sums, err := f.svc.LiveCallSummaries(ctx, []string{c.ID})
		if err != nil || !slices.Equal(sums[c.ID].HeldBy, want) {
			t.Errorf("%s: the summary holds %+v, %v; want %+v", step, sums[c.ID].HeldBy, err, want)
		}
	}

	check("on air, nothing reported", nil, 0)
	record("a2", protocol.EventReceived, "")
	record("a2", protocol.EventStarted, "")
	check("a2 plays the call", nil, 0)
	record("a1", protocol.EventReceived, "e000007")
	check("a1 held behind e000007", []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}, 1)
	record("b1", protocol.EventReceived, "")
	check("b1 received it", []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}, 1)
	record("a1", protocol.EventStarted, "")
	check("a1 joined after e000007", []loaxa.LiveHold{{Alert: "e000007", Joined: 1}}, 2)

	if _, err := svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
}

// countedNodes is a NodeService that counts the node records its
// FindNodes and FindNodeByID returned.
type countedNodes struct {
	loaxa.NodeService
	mu   sync.Mutex
	read int
}

func (s *countedNodes) FindNodes(ctx context.Context, f loaxa.NodeFilter) ([]*loaxa.Node, error) {
	ns, err := s.NodeService.FindNodes(ctx, f)
	s.mu.Lock()
	s.read += len(ns)
	s.mu.Unlock()
	return ns, err
}

func (s *countedNodes) FindNodeByID(ctx context.Context, id string) (*loaxa.Node, error) {
	s.mu.Lock()
	s.read++
	s.mu.Unlock()
	return s.NodeService.FindNodeByID(ctx, id)
}

// TestLiveCallSummariesOnAirReadOnlyAfterAChange: each console watching
// the calls on air asks for their summaries every 3 s, and each request
// read every delivery and every node record of each call: 25–40 ms and
// 7 MB a request for a province-wide call, ten officers watching making
// three a second. A call on air is summed from its deliveries as last
// read, read again only after an event of the call was stored or a node
// joined it; whether its pending nodes are online is looked up each time
// (from memory, no node record read), as a node goes offline without any
// event. The summary must always be the one a fresh read of the store
// gives.
func TestLiveCallSummariesOnAirReadOnlyAfterAChange(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	deliveries := &countedDeliveries{DeliveryService: bolt.NewDeliveryService(f.db)}
	nodes := &countedNodes{NodeService: bolt.NewNodeService(f.db)}
	svc := live.NewService()
	svc.Store, svc.Nodes, svc.Deliveries, svc.Audit = bolt.NewLiveCallService(f.db), nodes, deliveries, f.audit
	svc.Clock, svc.Messenger = f.clock, f.sent
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	store := bolt.NewNodeService(f.db)
	if err := store.CreateNodes(ctx, []*loaxa.Node{{ID: "w1", Area: "12347"}}); err != nil {
		t.Fatal(err)
	}
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "an", Areas: []string{"318"}, Priority: protocol.PriorityHigh}
	if _, err := svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	nodes.mu.Lock()
	nodes.read = 0 // BeginCall found the call's nodes
	nodes.mu.Unlock()
	record := f.recorder(t, svc, c.ID)
	online := func(node string, on bool) {
		t.Helper()
		state := loaxa.NodeOffline
		if on {
			state = loaxa.NodeOnline
		}
		if err := store.UpdateNodeStatus(ctx, node, func(st *loaxa.NodeStatus) { st.State = state }); err != nil {
			t.Fatal(err)
		}
	}
	// check asks for the summary twice, as two refreshes of a console
	// do, and wants it as want, as a fresh read of the store has it (by
	// another Service, with no call on air), after reads reads of the
	// deliveries in all and no node record read.
	check := func(step string, want loaxa.LiveCallSummary, reads int) {
		t.Helper()
		fresh, err := f.svc.LiveCallSummaries(ctx, []string{c.ID})
		if err != nil || !reflect.DeepEqual(fresh[c.ID], want) {
			t.Fatalf("%s: the store's summary %+v, %v; the test wants %+v", step, fresh[c.ID], err, want)
		}
		for range 2 {
			got, err := svc.LiveCallSummaries(ctx, []string{c.ID})
			if err != nil || !reflect.DeepEqual(got[c.ID], want) {
				t.Errorf("%s: summary %+v, %v; want %+v", step, got[c.ID], err, want)
			}
		}
		if got := deliveries.count(); got != reads {
			t.Errorf("%s: the deliveries read %d times in all, want %d", step, got, reads)
		}
		nodes.mu.Lock()
		defer nodes.mu.Unlock()
		if nodes.read != 0 {
			t.Errorf("%s: %d node records read, want none", step, nodes.read)
		}
	}

	check("on air, every node offline", loaxa.LiveCallSummary{Targeted: 3, Offline: 3}, 1)
	online("a1", true)
	online("a2", true)
	check("a1 and a2 online, no event", loaxa.LiveCallSummary{Targeted: 3, Offline: 1, Pending: 2}, 1)
	record("a1", protocol.EventReceived, "")
	record("a1", protocol.EventStarted, "")
	check("a1 plays the call", loaxa.LiveCallSummary{Targeted: 3, Reached: 1, Sounding: 1, Offline: 1, Pending: 1}, 2)
	online("a2", false)
	check("a2 offline again, no event", loaxa.LiveCallSummary{Targeted: 3, Reached: 1, Sounding: 1, Offline: 2}, 2)
	online("a1", false)
	check("a1 offline while it plays", loaxa.LiveCallSummary{Targeted: 3, Reached: 1, Sounding: 1, Offline: 2}, 2)
	online("b1", true)
	record("b1", protocol.EventReceived, "e000007")
	check("b1 held behind e000007", loaxa.LiveCallSummary{Targeted: 3, Reached: 2, Sounding: 1, Offline: 1, Held: 1,
		HeldBy: []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}}, 3)

	// w1, waiting for its code when the call began, is put up: it joins.
	code := loaxa.HashEnrolmentCode("CODE-W1")
	if err := store.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code, Node: "w1", Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RedeemEnrolment(ctx, code, loaxa.NodeSecret{Hash: loaxa.HashSecret("w1"), BrokerHash: "x"}); err != nil {
		t.Fatal(err)
	}
	online("w1", true)
	svc.NodeOnline("w1")
	svc.Close() // waits for the sends
	reads := deliveries.count()
	check("w1 joined", loaxa.LiveCallSummary{Targeted: 4, Reached: 2, Sounding: 1, Offline: 1, Pending: 1, Held: 1,
		HeldBy: []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}}, reads+1)
	record("b1", protocol.EventStarted, "")
	check("b1 joined after e000007", loaxa.LiveCallSummary{Targeted: 4, Reached: 2, Sounding: 2, Offline: 1, Pending: 1,
		HeldBy: []loaxa.LiveHold{{Alert: "e000007", Joined: 1}}}, reads+2)

	if _, err := svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
	record("a1", protocol.EventCompleted, "")
	check("after its end, from the store", loaxa.LiveCallSummary{Targeted: 4, Reached: 2, Sounding: 1, Completed: 1, Offline: 1, Pending: 1,
		HeldBy: []loaxa.LiveHold{{Alert: "e000007", Joined: 1}}}, reads+4)
}

// provinceCall begins a province-wide call on f's service: 5,000 nodes in
// 50 communes, all online.
func provinceCall(b *testing.B, f *fixture) *loaxa.LiveCall {
	b.Helper()
	ctx := context.Background()
	nodes := bolt.NewNodeService(f.db)
	var ns []*loaxa.Node
	for c := range 50 {
		area := fmt.Sprintf("9%04d", c)
		if err := bolt.NewAreaService(f.db).CreateArea(ctx, &loaxa.Area{ID: area, Name: area, Parent: "318"}); err != nil {
			b.Fatal(err)
		}
		for n := range 100 {
			ns = append(ns, &loaxa.Node{ID: fmt.Sprintf("p%02d-%03d", c, n), Area: area, SecretHash: loaxa.HashSecret("s")})
		}
	}
	if err := nodes.CreateNodes(ctx, ns); err != nil {
		b.Fatal(err)
	}
	for _, n := range ns {
		if err := nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) { s.State = loaxa.NodeOnline }); err != nil {
			b.Fatal(err)
		}
	}
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "an", Areas: []string{"31"}, Priority: protocol.PriorityEmergency}
	if _, err := f.svc.BeginCall(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := f.svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
			b.Error(err)
		}
	})
	return c
}

// BenchmarkLiveCallSummaryOfAProvinceCall is what a live call on air read
// every second to tell the speaker which clusters alerts hold back, until
// LiveCallHolds: the summary of a province-wide call (provinceCall), all
// its nodes pending. The list of calls with summary=true asks for it once
// per request: from the deliveries as last read, the pending nodes looked
// up online or offline each time.
func BenchmarkLiveCallSummaryOfAProvinceCall(b *testing.B) {
	f := newService(b)
	c := provinceCall(b, f)
	b.ReportAllocs()
	for b.Loop() {
		sums, err := f.svc.LiveCallSummaries(context.Background(), []string{c.ID})
		if err != nil || sums[c.ID].Targeted != 5003 {
			b.Fatalf("summary %+v, %v; want 5,003 nodes", sums[c.ID], err)
		}
	}
}

// BenchmarkLiveCallHoldsOfAProvinceCall is what a province-wide call on
// air looks up every second for the speaker: with nothing reported since
// the last second (most seconds), and with a node held behind an alert
// reporting every second.
func BenchmarkLiveCallHoldsOfAProvinceCall(b *testing.B) {
	f := newService(b)
	c := provinceCall(b, f)
	ctx := context.Background()
	held := []protocol.Event{{Seq: 1, Type: protocol.EventReceived, At: f.clock.Now(), Occurrence: c.ID, Announcement: c.ID, HeldBy: "e000007"}}
	if _, _, err := bolt.NewEventService(f.db).RecordEvents(ctx, "p00-000", protocol.EventBatch{Epoch: "e1", Events: held}, f.clock.Now()); err != nil {
		b.Fatal(err)
	}
	want := []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}
	for _, bc := range []struct {
		name     string
		reported bool
	}{{"nothing new", false}, {"a hold reported", true}} {
		b.Run(bc.name, func(b *testing.B) {
			f.svc.Events("p00-000", held)
			b.ReportAllocs()
			for b.Loop() {
				if bc.reported {
					f.svc.Events("p00-000", held)
				}
				if h, err := f.svc.LiveCallHolds(ctx, c.ID); err != nil || !slices.Equal(h, want) {
					b.Fatalf("holds %+v, %v; want %+v", h, err, want)
				}
			}
		})
	}
}

// flakyEmergencies is the store's emergencies, whose lookups fail while
// failing is set, as a busy or briefly failing store's do.
type flakyEmergencies struct {
	loaxa.EmergencyStore
	mu      sync.Mutex
	failing bool
}

func (s *flakyEmergencies) fail(on bool) {
	s.mu.Lock()
	s.failing = on
	s.mu.Unlock()
}

func (s *flakyEmergencies) FindEmergencyByID(ctx context.Context, id string) (*loaxa.Emergency, error) {
	s.mu.Lock()
	fail := s.failing
	s.mu.Unlock()
	if fail {
		return nil, errors.New("store: timeout")
	}
	return s.EmergencyStore.FindEmergencyByID(ctx, id)
}

// TestHoldNamedOnceTheAlertCanBeRead: a call's summary names the alert
// holding clusters back by its title. A lookup that failed once (a store
// timeout) was kept with the call's summary, so the console showed the
// bare id "e000001" until the call's next event; only an alert that is
// not there any more stays named by its id.
func TestHoldNamedOnceTheAlertCanBeRead(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	stored := bolt.NewEmergencyService(f.db)
	em := &loaxa.Emergency{Title: "Cảnh báo bão số 3", Areas: []loaxa.EmergencyArea{{Area: "318", Nodes: 3}}, CreatedBy: "an"}
	if err := stored.CreateEmergency(ctx, em); err != nil {
		t.Fatal(err)
	}
	emergencies := &flakyEmergencies{EmergencyStore: stored, failing: true}
	svc := live.NewService()
	svc.Store, svc.Nodes, svc.Deliveries, svc.Audit = bolt.NewLiveCallService(f.db), bolt.NewNodeService(f.db), bolt.NewDeliveryService(f.db), f.audit
	svc.Clock, svc.Emergencies = f.clock, emergencies
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "an", Areas: []string{"318"}, Priority: protocol.PriorityHigh}
	if _, err := svc.BeginCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	record := f.recorder(t, svc, c.ID)
	record("a1", protocol.EventReceived, em.ID)
	holds := func() []loaxa.LiveHold {
		t.Helper()
		sums, err := svc.LiveCallSummaries(ctx, []string{c.ID})
		if err != nil {
			t.Fatal(err)
		}
		return sums[c.ID].HeldBy
	}
	if got := holds(); len(got) != 1 || got[0].Alert != em.ID || got[0].Title != "" {
		t.Fatalf("while the store fails, holds %+v; want %s named by its id", got, em.ID)
	}
	emergencies.fail(false)
	want := []loaxa.LiveHold{{Alert: em.ID, Title: "Cảnh báo bão số 3", Waiting: 1}}
	if got := holds(); !slices.Equal(got, want) {
		t.Errorf("once the store answers, holds %+v; want %+v (no event of the call came between)", got, want)
	}

	// An alert not there any more keeps its id.
	record("a2", protocol.EventReceived, "e999999")
	got := holds()
	if len(got) != 2 || got[1].Alert != "e999999" || got[1].Title != "" {
		t.Errorf("holds %+v; want the missing e999999 named by its id", got)
	}
	if _, err := svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
		t.Fatal(err)
	}
}

// TestMovedClusterLeavesItsOldCommunesCallAndJoinsItsNewOnes: a cluster
// moved to another commune (PATCH /nodes/{id}) during live calls. The
// call to its old commune went on holding it: the broker no longer
// delivered it the frames, so it sat suspended, waiting for them, until
// the call's end, which it did not hear either (it no longer hears that
// commune's topic), and the report listed it suspended; coming online
// again it was even sent the old call's start. A call on air in its new
// commune was silent on it to its end: the start had gone to the commune
// before it belonged there, and it ignored every frame. Now the old
// commune's call ends on it at the move (its end, cut, on the node's own
// topic); a call of its new commune gives it its delivery and the start,
// as to a board put up during the call, and it plays from the frames
// that come; a call to the district above both goes on as it was.
func TestMovedClusterLeavesItsOldCommunesCallAndJoinsItsNewOnes(t *testing.T) {
	f := newService(t)
	ctx := context.Background()
	old := &loaxa.LiveCall{ID: "live-m1", CreatedBy: "an", Areas: []string{"12346"}, Priority: protocol.PriorityHigh, Title: "Họp dân Tiên Thắng"}
	next := &loaxa.LiveCall{ID: "live-m2", CreatedBy: "binh", Areas: []string{"12347"}, Priority: protocol.PriorityHigh, Title: "Họp dân Tiên Minh", Volume: 5}
	district := &loaxa.LiveCall{ID: "live-m3", CreatedBy: "cuong", Areas: []string{"318"}, Priority: protocol.PriorityHigh, Title: "Huyện"}
	for _, c := range []*loaxa.LiveCall{old, next, district} {
		if _, err := f.svc.BeginCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	f.report(t, "a1", old.ID, protocol.EventReceived, protocol.EventStarted)
	f.report(t, "a1", district.ID, protocol.EventReceived)
	nodes := bolt.NewNodeService(f.db)
	if _, _, err := nodes.UpdateNodePlace(ctx, "a1", loaxa.NodePlace{Name: "a1", Area: "12347", From: "12346"}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.NodeMoved(ctx, "a1", "12346", "12347"); err != nil {
		t.Fatal(err)
	}
	sent, msgs := f.sent.all()
	if want := []string{"a1 live-m1 end:cut", "a1 live-m2 start"}; !slices.Equal(sent, want) {
		t.Fatalf("sent at the move %q, want %q", sent, want)
	}
	for _, m := range msgs {
		if m.Call == next.ID && !reflect.DeepEqual(m, protocol.Live{Call: next.ID, Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: next.Title, Volume: 5}) {
			t.Errorf("start sent to the moved cluster %+v, want the call's as it began", m)
		}
	}
	rep, err := f.svc.LiveCallReport(ctx, next.ID)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(rep.Nodes, func(n loaxa.LiveNode) bool { return n.Node == "a1" }); i < 0 || rep.Nodes[i].Area != "12347" {
		t.Errorf("new commune's call report %+v; want a1 in it, under 12347", rep.Nodes)
	}
	if _, n, _ := f.svc.LiveCallPreempted(ctx, next.ID); n != 2 {
		t.Errorf("new commune's call is for %d clusters, want 2 (b1 and a1)", n)
	}

	// Back online (its link dropped as the pole was moved), it is sent
	// its new commune's call again, not its old one's start.
	if err := nodes.UpdateNodeStatus(ctx, "a1", func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOnline }); err != nil {
		t.Fatal(err)
	}
	f.sent.mu.Lock()
	f.sent.sent, f.sent.msgs = nil, nil
	f.sent.mu.Unlock()
	f.svc.NodeOnline("a1")
	f.svc.Close() // waits for the sends
	sent, _ = f.sent.all()
	if want := []string{"a1 live-m1 end:cut", "a1 live-m2 start", "a1 live-m3 start"}; !slices.Equal(sent, want) {
		t.Errorf("sent to the moved cluster back online %q, want %q", sent, want)
	}

	// The calls end. The one it was moved into sends a1 its end on its
	// own topic too: a1 hears the commune's live topic only once its new
	// desired state reaches it, and might miss the commune's end.
	f.sent.mu.Lock()
	f.sent.sent, f.sent.msgs = nil, nil
	f.sent.mu.Unlock()
	for _, c := range []*loaxa.LiveCall{old, next, district} {
		if _, err := f.svc.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
			t.Fatal(err)
		}
	}
	if sent, _ = f.sent.all(); !slices.Equal(sent, []string{"a1 live-m2 end"}) {
		t.Errorf("sent to nodes as the calls ended %q, want the end of its new commune's call to a1", sent)
	}
}
