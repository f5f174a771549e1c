package schedule_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/protocol"
)

// storeWrites wraps the real delivery and desired-state stores: it counts
// the calls that write (each one transaction, one commit), and can fail
// the writes that concern one node, storing nothing of such a call, as
// bbolt's all-or-nothing transaction would.
type storeWrites struct {
	mu         sync.Mutex
	ensures    int
	drops      int
	saves      int    // SaveDesired: one state
	batches    int    // SaveDesiredBatch
	records    int    // RecordPublished
	failEnsure string // fail each EnsureDeliveries call with a delivery to this node
	failSave   string // fail this node's state in SaveDesiredBatch
	failRecord bool   // fail every record of the next RecordPublished
}

func (w *storeWrites) commits() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ensures + w.drops + w.saves + w.batches + w.records
}

func (w *storeWrites) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ensures, w.drops, w.saves, w.batches, w.records = 0, 0, 0, 0, 0
}

type countedDeliveries struct {
	loaxa.DeliveryService
	w *storeWrites
}

func (d countedDeliveries) EnsureDeliveries(ctx context.Context, ds []*loaxa.Delivery) error {
	d.w.mu.Lock()
	d.w.ensures++
	fail := d.w.failEnsure
	d.w.mu.Unlock()
	if fail != "" && slices.ContainsFunc(ds, func(x *loaxa.Delivery) bool { return x.Node == fail }) {
		return fmt.Errorf("ensure %d deliveries: delivery to %s: disk I/O error", len(ds), fail)
	}
	return d.DeliveryService.EnsureDeliveries(ctx, ds)
}

func (d countedDeliveries) DropDeliveries(ctx context.Context, keep map[string]map[string]bool, now time.Time, grace time.Duration) error {
	d.w.mu.Lock()
	d.w.drops++
	d.w.mu.Unlock()
	return d.DeliveryService.DropDeliveries(ctx, keep, now, grace)
}

type countedDesired struct {
	loaxa.DesiredService
	w *storeWrites
}

func (d countedDesired) SaveDesired(ctx context.Context, rec *loaxa.Desired) error {
	d.w.mu.Lock()
	d.w.saves++
	d.w.mu.Unlock()
	return d.DesiredService.SaveDesired(ctx, rec)
}

func (d countedDesired) SaveDesiredBatch(ctx context.Context, ds []*loaxa.Desired) []error {
	d.w.mu.Lock()
	d.w.batches++
	failSave := d.w.failSave
	d.w.mu.Unlock()
	errs := make([]error, len(ds))
	var pass []*loaxa.Desired
	var at []int
	for i, rec := range ds {
		if rec.Node == failSave {
			errs[i] = fmt.Errorf("save desired state of %s: value too large", rec.Node)
			continue
		}
		pass, at = append(pass, rec), append(at, i)
	}
	for j, err := range d.DesiredService.SaveDesiredBatch(ctx, pass) {
		errs[at[j]] = err
	}
	return errs
}

func (d countedDesired) RecordPublished(ctx context.Context, ps []loaxa.DesiredPublished) []error {
	d.w.mu.Lock()
	d.w.records++
	failRecord := d.w.failRecord
	d.w.failRecord = false
	d.w.mu.Unlock()
	if failRecord {
		errs := make([]error, len(ps))
		for i := range errs {
			errs[i] = errors.New("record 3 publishes: controller stopped")
		}
		return errs
	}
	return d.DesiredService.RecordPublished(ctx, ps)
}

// countWrites puts storeWrites around r's delivery and desired stores.
func countWrites(r *rig) *storeWrites {
	w := &storeWrites{}
	r.s.DeliveryService = countedDeliveries{r.s.DeliveryService, w}
	r.s.DesiredService = countedDesired{r.s.DesiredService, w}
	return w
}

// publishedHead returns node's stored head and fails if there is none.
func publishedHead(t *testing.T, r *rig, node string) loaxa.DesiredHead {
	t.Helper()
	h, err := r.s.DesiredService.FindDesiredHead(r.ctx, node)
	r.must(t, err)
	return h
}

// TestPassStoresABatchInFewCommits: each changed node cost three commits
// of its own (its deliveries, its desired state, and its state again to
// record the publish), each with its fsyncs: a province-wide change of
// 10,000 nodes took 23–26 s (BENCHMARKS.md). A pass now stores a batch of
// nodes with one commit per step, whatever the number of nodes, and a
// restarted controller's republish of every unchanged node records the
// publishes with one commit, not one per node.
func TestPassStoresABatchInFewCommits(t *testing.T) {
	r := newRig(t)
	var more []*loaxa.Node
	for i := range 20 {
		id := fmt.Sprintf("tt-%02d", i+3)
		more = append(more, &loaxa.Node{ID: id, Name: id, Area: "12346", SecretHash: loaxa.HashSecret("s")})
	}
	r.must(t, r.s.NodeService.CreateNodes(r.ctx, more))
	w := countWrites(r)
	a := r.announce(t, loaxa.Targets{Areas: []string{"31"}}, t0.Add(time.Hour))
	r.compile(t, false)
	// Deliveries, drops, desired states, publishes recorded.
	if got := w.commits(); got > 4 {
		t.Errorf("the first pass over 23 nodes made %d store writes (%d deliveries, %d drops, %d single states, %d batches of states, %d of publishes), want at most 4",
			got, w.ensures, w.drops, w.saves, w.batches, w.records)
	}
	nodes, err := r.s.NodeService.FindNodes(r.ctx, loaxa.NodeFilter{})
	r.must(t, err)
	if len(nodes) != 23 {
		t.Fatalf("%d nodes, want 23", len(nodes))
	}
	ds, err := r.s.DeliveryService.FindDeliveries(r.ctx, loaxa.DeliveryFilter{Announcement: a.ID})
	r.must(t, err)
	if len(ds) != len(nodes) {
		t.Errorf("%d deliveries of the bulletin, want one per node (%d)", len(ds), len(nodes))
	}
	for _, n := range nodes {
		got := r.msg.last(n.ID)
		if got == nil || got.Version != 1 || len(got.Occurrences) != 1 {
			t.Errorf("%s: published %+v, want version 1 with the bulletin", n.ID, got)
			continue
		}
		if h := publishedHead(t, r, n.ID); h.Version != 1 || !h.Published.Equal(t0) {
			t.Errorf("%s: stored head %+v, want version 1 published at %v", n.ID, h, t0)
		}
		if n.Status.DesiredVersion != 1 {
			t.Errorf("%s: status desired version %d, want 1", n.ID, n.Status.DesiredVersion)
		}
	}

	// A restarted controller publishes every node again, unchanged.
	w.reset()
	r.clock.Advance(time.Minute)
	before := r.msg.count()
	r.compile(t, true)
	if got := r.msg.count() - before; got != len(nodes) {
		t.Errorf("republish at start: %d publishes, want %d", got, len(nodes))
	}
	if got := w.commits(); got > 1 {
		t.Errorf("republishing 23 unchanged nodes made %d store writes (%d single states, %d batches, %d of publishes), want 1", got, w.saves, w.batches, w.records)
	}
	for _, n := range nodes {
		if h := publishedHead(t, r, n.ID); h.Version != 1 || !h.Published.Equal(r.clock.Now()) {
			t.Errorf("%s: head %+v after the republish, want version 1 published at %v", n.ID, h, r.clock.Now())
		}
	}
}

// TestOneNodesStoreFailureSparesTheOthers: the nodes of a batch share
// their transactions, but a node whose deliveries or state cannot be
// stored fails alone: the others are stored and published, and the next
// pass stores and publishes it.
func TestOneNodesStoreFailureSparesTheOthers(t *testing.T) {
	r := newRig(t)
	w := countWrites(r)
	w.failEnsure, w.failSave = "tm-01", "tt-02"
	r.announce(t, loaxa.Targets{Areas: []string{"318"}}, t0.Add(time.Hour))
	err := r.s.CompileAll(r.ctx, false)
	if err == nil || !strings.Contains(err.Error(), "disk I/O error") && !strings.Contains(err.Error(), "value too large") {
		t.Errorf("pass with two nodes failing to store: %v, want one of their errors", err)
	}
	if got := r.msg.last("tt-01"); got == nil || got.Version != 1 {
		t.Errorf("tt-01 (stored) published %+v, want version 1", got)
	}
	for _, node := range []string{"tm-01", "tt-02"} {
		if got := r.msg.last(node); got != nil {
			t.Errorf("%s published version %d though its store failed", node, got.Version)
		}
		if _, err := r.s.DesiredService.FindDesiredHead(r.ctx, node); loaxa.ErrorCode(err) != loaxa.ENotFound {
			t.Errorf("%s: head after its failure: %v, want none stored", node, err)
		}
	}
	// tt-02's deliveries were stored (before its state, which failed);
	// tm-01's were refused, and so was its state.
	for node, want := range map[string]int{"tt-01": 1, "tt-02": 1, "tm-01": 0} {
		ds, err := r.s.DeliveryService.FindDeliveries(r.ctx, loaxa.DeliveryFilter{Node: node})
		r.must(t, err)
		if len(ds) != want {
			t.Errorf("%s: %d deliveries, want %d", node, len(ds), want)
		}
	}

	w.failEnsure, w.failSave = "", ""
	n := r.msg.count()
	r.compile(t, false)
	for _, node := range []string{"tm-01", "tt-02"} {
		if got := r.msg.last(node); got == nil || got.Version != 1 {
			t.Errorf("%s published %+v after the store recovered, want version 1", node, got)
		}
		if h := publishedHead(t, r, node); h.Version != 1 || h.Published.IsZero() {
			t.Errorf("%s: head %+v, want version 1 recorded as published", node, h)
		}
	}
	if got := r.msg.count() - n; got != 2 {
		t.Errorf("the next pass published %d states, want 2 (tt-01 unchanged)", got)
	}
}

// orderMessenger checks, at each publish, that the node's state is
// stored with its deliveries: a node may report a play the moment it has
// its state, and its delivery must be there for it.
type orderMessenger struct {
	*messenger
	t      *testing.T
	r      *rig
	stop   context.CancelFunc // if set, the first publish stops the controller
	checks int
}

func (m *orderMessenger) PublishDesired(ctx context.Context, d *protocol.DesiredState) error {
	if m.stop != nil {
		m.stop()
		m.stop = nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.checks++
	h, err := m.r.s.DesiredService.FindDesiredHead(context.Background(), d.Node)
	if err != nil || h.Version != d.Version {
		m.t.Errorf("%s: publishing version %d, stored %+v (%v): want it stored first", d.Node, d.Version, h, err)
	}
	ds, err := m.r.s.DeliveryService.FindDeliveries(context.Background(), loaxa.DeliveryFilter{Node: d.Node})
	if err != nil {
		m.t.Error(err)
	}
	for _, o := range d.Occurrences {
		if !slices.ContainsFunc(ds, func(x *loaxa.Delivery) bool { return x.Occurrence == o.ID }) {
			m.t.Errorf("%s: version %d published before the delivery of %s was stored", d.Node, d.Version, o.ID)
		}
	}
	return m.messenger.PublishDesired(ctx, d)
}

// TestStoredBeforePublishedAndRepublishedAfterAStop: storing a batch
// together must keep the order a node's state had alone. Its deliveries
// and its state are stored before it is published; a controller stopped
// after storing and before publishing publishes the stored version (not a
// new one) at its next start; and one stopped after publishing, before
// recording it, publishes it again at the next pass.
func TestStoredBeforePublishedAndRepublishedAfterAStop(t *testing.T) {
	r := newRig(t)
	m := &orderMessenger{messenger: r.msg, t: t, r: r}
	r.s.Messenger = m
	r.announce(t, loaxa.Targets{Areas: []string{"318"}}, t0.Add(time.Hour))

	// Stopped at the first publish.
	ctx, stop := context.WithCancel(r.ctx)
	m.stop = stop
	if err := r.s.CompileAll(ctx, false); err == nil {
		t.Error("pass stopped at its first publish returned no error")
	}
	if r.msg.count() != 0 {
		t.Fatalf("%d states published by a controller stopped at its first publish", r.msg.count())
	}
	for _, node := range []string{"tm-01", "tt-01", "tt-02"} {
		if h := publishedHead(t, r, node); h.Version != 1 || !h.Published.IsZero() {
			t.Errorf("%s: head %+v after the stop, want version 1 stored, not published", node, h)
		}
	}

	// The next start: a new scheduler on the same store.
	s := schedule.NewScheduler()
	s.AreaService, s.NodeService, s.AnnouncementService, s.ContentService = r.s.AreaService, r.s.NodeService, r.s.AnnouncementService, r.s.ContentService
	s.DeliveryService, s.DesiredService, s.Clock = r.s.DeliveryService, r.s.DesiredService, r.clock
	w := &storeWrites{failRecord: true}
	s.DesiredService = countedDesired{s.DesiredService, w}
	s.Messenger = m
	r.s = s
	if err := s.CompileAll(r.ctx, true); err == nil || !strings.Contains(err.Error(), "record publish") {
		t.Errorf("start with the record of its publishes failing: %v, want that error", err)
	}
	for _, node := range []string{"tm-01", "tt-01", "tt-02"} {
		if got := r.msg.last(node); got == nil || got.Version != 1 {
			t.Errorf("%s: published %+v at the next start, want the stored version 1", node, got)
		}
		if h := publishedHead(t, r, node); !h.Published.IsZero() {
			t.Errorf("%s: head %+v, want the publish not recorded (its store failed)", node, h)
		}
	}

	// Not recorded as published: the next pass, not a start, publishes
	// them again and records it.
	r.clock.Advance(time.Minute)
	n := r.msg.count()
	r.compile(t, false)
	if got := r.msg.count() - n; got != 3 {
		t.Errorf("the pass after an unrecorded publish published %d states, want 3", got)
	}
	for _, node := range []string{"tm-01", "tt-01", "tt-02"} {
		if h := publishedHead(t, r, node); h.Version != 1 || !h.Published.Equal(r.clock.Now()) {
			t.Errorf("%s: head %+v, want version 1 published at %v", node, h, r.clock.Now())
		}
	}
	if m.checks == 0 {
		t.Error("no publish was checked")
	}
}

// TestPassLogsItsChangesOnce: every node whose desired state a pass
// changed had its own info line, so a province bulletin wrote 10,000
// lines to the journal each time it was sent, changed or cancelled,
// burying the lines a technician looks for. A pass says at info how many
// nodes it changed and names the first few; each node's line is at debug.
func TestPassLogsItsChangesOnce(t *testing.T) {
	r := newRig(t)
	var more []*loaxa.Node
	for i := range 20 {
		id := fmt.Sprintf("tt-%02d", i+3)
		more = append(more, &loaxa.Node{ID: id, Name: id, Area: "12346", SecretHash: loaxa.HashSecret("s")})
	}
	r.must(t, r.s.NodeService.CreateNodes(r.ctx, more))
	var logs bytes.Buffer
	r.s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r.announce(t, loaxa.Targets{Areas: []string{"31"}}, t0.Add(time.Hour))
	r.compile(t, false)
	var changed []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "desired state") {
			changed = append(changed, strings.TrimSpace(line))
		}
	}
	if len(changed) != 1 || !strings.Contains(changed[0], `msg="schedule: desired states changed" nodes=23 first="[`) {
		t.Errorf("a pass changing 23 nodes logged at info:\n%s\nwant one line with nodes=23 naming the first few", strings.Join(changed, "\n"))
	}
}

// cancellingMessenger stops the controller (cancels the pass's context)
// at the first publish, and fails that publish and every one after as a
// messenger whose context is done does.
type cancellingMessenger struct {
	messenger
	cancel context.CancelFunc
}

func (m *cancellingMessenger) PublishDesired(ctx context.Context, _ *protocol.DesiredState) error {
	m.cancel()
	return fmt.Errorf("publish: %w", ctx.Err())
}

// TestPassLogsEachFailureOnce: every node whose compile failed had an
// error line of its own, every pass: a district whose time zone this
// version refuses wrote 5,000 lines every 30 s, and a controller stopped
// mid-pass one "context canceled" per node of the batch. A pass now says
// each cause once, with how many nodes and the first few (each node's
// line is at debug), and nothing at error for a stop.
func TestPassLogsEachFailureOnce(t *testing.T) {
	errorLines := func(logs *bytes.Buffer) []string {
		var out []string
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "level=ERROR") {
				out = append(out, strings.TrimSpace(line))
			}
		}
		return out
	}
	moreNodes := func(r *rig) {
		var more []*loaxa.Node
		for i := range 20 {
			id := fmt.Sprintf("tt-%02d", i+3)
			more = append(more, &loaxa.Node{ID: id, Name: id, Area: "12346", SecretHash: loaxa.HashSecret("s")})
		}
		r.must(t, r.s.NodeService.CreateNodes(r.ctx, more))
	}

	t.Run("one cause", func(t *testing.T) {
		r := newRig(t)
		moreNodes(r)
		r.storeAreaUnchecked(t, &loaxa.Area{ID: "12346", Name: "Tiên Thắng", Parent: "318", TimeZone: "Mars/Olympus", CreatedAt: t0})
		var logs bytes.Buffer
		r.s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if err := r.s.CompileAll(r.ctx, false); loaxa.ErrorReason(err) != loaxa.ReasonSettingRefused {
			t.Fatalf("pass with the commune's zone refused: %v", err)
		}
		lines := errorLines(&logs)
		if len(lines) != 1 || !strings.Contains(lines[0], `msg="schedule: nodes not compiled" nodes=22 first="[`) ||
			!strings.Contains(lines[0], "Mars/Olympus") {
			t.Errorf("a pass failing 22 nodes for one refused zone logged at error:\n%s\nwant one line with nodes=22 naming the first few and the zone",
				strings.Join(lines, "\n"))
		}
		if r.msg.last("tm-01") == nil {
			t.Error("tm-01, in the other commune, got no desired state")
		}
	})

	t.Run("stopped", func(t *testing.T) {
		r := newRig(t)
		moreNodes(r)
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		r.s.Messenger = &cancellingMessenger{cancel: cancel}
		var logs bytes.Buffer
		r.s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		r.announce(t, loaxa.Targets{Areas: []string{"31"}}, t0.Add(time.Hour))
		if err := r.s.CompileAll(ctx, false); !errors.Is(err, context.Canceled) {
			t.Fatalf("pass stopped at its first publish: %v, want context.Canceled", err)
		}
		if lines := errorLines(&logs); len(lines) != 0 {
			t.Errorf("a pass stopped mid-batch logged at error:\n%s\nwant nothing", strings.Join(lines, "\n"))
		}
	})
}
