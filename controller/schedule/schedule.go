// Package schedule compiles announcements into each node's desired state:
// the concrete occurrences of the coming days on that node, with the content
// they need. It recompiles when told that something changed and on a timer,
// so the horizon keeps rolling forward, and publishes a new version only when
// a node's schedule actually changed.
package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Scheduler implements loaxa.Scheduler.
type Scheduler struct {
	AreaService         loaxa.AreaService
	NodeService         loaxa.NodeService
	AnnouncementService loaxa.AnnouncementService
	ContentService      loaxa.ContentService
	DeliveryService     loaxa.DeliveryService
	DesiredService      loaxa.DesiredService
	Messenger           loaxa.Messenger
	// SessionService, HolidayService and ProposalService may be nil: no
	// sessions, holidays or proposals then.
	SessionService  loaxa.SessionService
	HolidayService  loaxa.HolidayService
	ProposalService loaxa.ProposalService
	// KeyService, if set, gives the controller keys every desired state
	// tells its node to trust (see protocol.DesiredState.Keys).
	KeyService loaxa.KeyService
	// StandingService, if set, names content the nodes of some areas keep
	// at all times (loaxa.StandingContent); AlwaysContent, if set, content
	// every node keeps (the emergency chimes). Each desired state lists
	// them among its content, played by no occurrence: the node fetches
	// them after the content it plays and keeps them.
	StandingService loaxa.StandingService
	AlwaysContent   func(ctx context.Context) ([]string, error)

	Clock clock.Clock
	// Horizon is how far ahead occurrences are compiled.
	Horizon time.Duration
	// LateGrace is how late a node may still start an occurrence; an
	// occurrence stays in the desired state until then (and until it has
	// had time to finish).
	LateGrace time.Duration
	// Volume is the default node volume (0–15) in desired states.
	Volume int
	// Interval is how often the scheduler recompiles without being told:
	// it rolls the horizon and retries publishes that failed.
	Interval time.Duration
	// Debounce coalesces bursts of Changed calls. It runs on real time,
	// not on Clock: it is about API requests arriving together, not about
	// schedule time, so a controller on a fake clock still recompiles
	// promptly after a change without the clock having to move.
	Debounce time.Duration
	// RepublishAfter re-signs and republishes an unchanged desired state
	// once it is this old, so the retained copy never expires.
	RepublishAfter time.Duration
	// RetryMin and RetryMax bound the wait before a desired state the
	// broker did not accept (an error, or no acknowledgement within the
	// messenger's timeout) is published again: RetryMin after the first
	// failure, doubling up to RetryMax. They run on Clock.
	RetryMin, RetryMax time.Duration
	// BehindAfter: a node online this long that still runs an older
	// version than one published this long ago gets it published again
	// (see behind); 0 turns it off.
	BehindAfter time.Duration
	// Alarms, if set, hears of a node whose desired state has been
	// undelivered for AlarmAfter, and of its delivery after that.
	Alarms     loaxa.DesiredAlarms
	AlarmAfter time.Duration
	Logger     *slog.Logger

	kick chan struct{}
	// eachNode compiles each node of an area's programme or a conflict
	// check on its own, not once per group of alike nodes (eachPlan): the
	// answer the grouped one is tested against (export_test.go).
	eachNode bool

	mu          sync.Mutex
	undelivered map[string]*undelivered // by node
	// hold is when the next retry may start after a retry failed: a
	// broker that refused one will not take the next one at once either.
	hold    time.Time
	retries atomic.Uint64
	// lagging are the nodes found running an older version than the one
	// published, by node: the version republished and when it may be
	// again (the wait doubles while the node stays behind).
	lagging  map[string]*lag
	caughtUp atomic.Uint64 // republishes for a node left behind

	lastRun atomic.Int64 // Unix ns of the last finished pass
}

var _ loaxa.Scheduler = (*Scheduler)(nil)

// NewScheduler returns a scheduler with defaults.
func NewScheduler() *Scheduler {
	return &Scheduler{
		Clock:          clock.Real{},
		Horizon:        7 * 24 * time.Hour,
		LateGrace:      10 * time.Minute,
		Volume:         10,
		Interval:       30 * time.Second,
		Debounce:       50 * time.Millisecond,
		RepublishAfter: 7 * 24 * time.Hour,
		RetryMin:       time.Second,
		RetryMax:       2 * time.Minute,
		BehindAfter:    2 * time.Minute,
		AlarmAfter:     5 * time.Minute,
		Logger:         slog.Default(),
		kick:           make(chan struct{}, 1),
	}
}

// LastRun returns when the scheduler last finished compiling every node
// (zero before the first pass). A last run much older than Interval means
// it is stuck or overloaded.
func (s *Scheduler) LastRun() time.Time {
	if ns := s.lastRun.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Changed asks for a recompile soon. It never blocks.
func (s *Scheduler) Changed() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run compiles and publishes every node's desired state at once (the
// retained copies may be gone if the broker restarted), then again whenever
// Changed is called and every Interval, until ctx is done. Between passes it
// publishes again, with backoff, the desired states the broker did not
// accept (see Undelivered).
//
// LastRun says when it last finished a pass, for the controller's health.
func (s *Scheduler) Run(ctx context.Context) error {
	republish := true
	for {
		err := s.CompileAll(ctx, republish)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			republish = false
		case errors.Is(err, ErrNotAccepted):
			// Only publishes failed: each is retried on its own below,
			// not by republishing every node again in the next pass.
			republish = false
			s.Logger.Warn("schedule: desired states not accepted by the broker; retrying them", "nodes", s.undeliveredCount(), "first", err)
		default:
			s.Logger.Error("schedule: compile failed", "err", err)
		}
		s.lastRun.Store(s.Clock.Now().UnixNano())
		s.raiseAlarms(ctx, s.Clock.Now())
		if !s.wait(ctx) {
			return nil
		}
	}
}

// wait returns when the next pass is due (Interval, or Changed and the
// debounce), retrying undelivered desired states meanwhile, or false once
// ctx is done.
func (s *Scheduler) wait(ctx context.Context) bool {
	next := s.Clock.Now().Add(s.Interval)
	for {
		d := next.Sub(s.Clock.Now())
		retry := false
		if due, ok := s.nextRetry(); ok && due.Before(next) {
			d, retry = due.Sub(s.Clock.Now()), true
		}
		timer := s.Clock.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C():
			if !retry {
				return true
			}
			s.retryDue(ctx)
			s.raiseAlarms(ctx, s.Clock.Now())
		case <-s.kick:
			timer.Stop()
			debounce := time.NewTimer(s.Debounce)
			select {
			case <-ctx.Done():
				debounce.Stop()
				return false
			case <-debounce.C:
			}
			return true
		}
	}
}

// CompileAll recompiles every node. Nodes whose schedule changed get a new
// version, pending deliveries for new occurrences, and a publish; unchanged
// ones are republished only if republish is set, their last publish failed
// (and is not waiting for its retry, see Undelivered), or it is older than
// RepublishAfter. Errors for single nodes are logged and the rest continue;
// the first is returned, one that is not ErrNotAccepted if there is one.
func (s *Scheduler) CompileAll(ctx context.Context, republish bool) error {
	c, err := s.newCompilation(ctx, nil)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	c.leaveOut = true
	if s.KeyService != nil {
		if c.keys, err = s.KeyService.TrustedKeys(ctx); err != nil {
			return fmt.Errorf("compile: keys: %w", err)
		}
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return fmt.Errorf("compile: nodes: %w", err)
	}
	var first, firstUndelivered error
	// bad are the bulletins that cannot be scheduled, left out of the
	// nodes they target: said once each, not once per node (a province
	// bulletin would make thousands), and as an alarm.
	bad := map[string]loaxa.AlarmFacts{}
	// missed counts, by bulletin, the nodes whose compile failed before
	// it met the bulletin (a refused area time zone, a session's refused
	// times): they do not get it either, and if it cannot be scheduled its
	// alarm must not end only because no node happened to reach it.
	missed := map[string]int{}
	// reaching finds and counts them by area, not by every bulletin for
	// every such node: 5,000 nodes failing for a district's refused zone
	// × 200 active bulletins cost 15 ms a pass (BENCHMARKS.md).
	var reaching reachIndex
	// unjudged are the bulletins such nodes missed that could not be
	// judged on their own: their alarms stay as they were.
	unjudged := map[string]bool{}
	leftOut := func(n *loaxa.Node) {
		var seen map[string]bool // made only for a node that left one out
		for _, u := range c.leftOut {
			if seen[u.Announcement] {
				continue
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[u.Announcement] = true
			f, ok := bad[u.Announcement]
			if !ok {
				f = u.Facts(0)
			}
			f.Nodes++
			bad[u.Announcement] = f
		}
		c.leftOut = c.leftOut[:0]
		if !c.unfinished {
			return
		}
		c.unfinished = false
		reaching.miss(c, n, seen, missed)
	}
	// failed groups the nodes that failed by cause, for one line each at
	// the end of the pass: a district's refused time zone failed 5,000
	// nodes, and each had its own line every pass.
	var failed failures
	defer failed.log(s.Logger)
	note := func(n *loaxa.Node, err error) {
		switch {
		case err == nil:
		case errors.Is(err, ErrNotAccepted):
			if firstUndelivered == nil {
				firstUndelivered = err
			}
		case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
			// The controller is stopping: not a fault of the node, and
			// the next start compiles and publishes every node again.
			if first == nil {
				first = err
			}
		default:
			s.Logger.Debug("schedule: node not compiled", "node", n.ID, "err", err)
			failed.add(n.ID, err)
			if first == nil {
				first = err
			}
		}
	}
	var batch []*change
	store := func() {
		for i, err := range s.storeChanges(ctx, c, batch) {
			note(batch[i].node, err)
		}
		batch = batch[:0]
	}
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := s.compileNodeSafely(ctx, c, n, republish)
		leftOut(n)
		note(n, err)
		if ch != nil {
			batch = append(batch, ch)
		}
		if len(batch) == changeBatch {
			store()
		}
	}
	store()
	if c.changed > 0 {
		s.Logger.Info("schedule: desired states changed", "nodes", c.changed, "first", c.changedFirst)
	}
	reaching.count(missed)
	// A bulletin that nodes missed is judged on its own: one that cannot
	// be scheduled counts them too (met by other nodes or by none), so its
	// alarm ends only once it is fixed or gone.
	for _, a := range c.anns {
		k := missed[a.ID]
		if k == 0 {
			continue
		}
		if f, ok := bad[a.ID]; ok {
			f.Nodes += k
			bad[a.ID] = f
			continue
		}
		// Safely, as a node's compile is: a library choking on the
		// bulletin would otherwise stop the pass and every alarm with it.
		// Not judged (the store failed, or a panic), its alarm is left as
		// it was: ended, it said the bulletin was fine when nobody knew.
		var u *loaxa.UnplayableError
		if err := safely("judge announcement "+a.ID, func() (err error) {
			u, err = s.unschedulable(ctx, c, a)
			return err
		}); err != nil {
			s.Logger.Error("schedule: bulletin not judged; its alarm is left as it was", "announcement", a.ID, "err", err)
			unjudged[a.ID] = true
		} else if u != nil {
			bad[a.ID] = u.Facts(k)
		}
	}
	s.reportUnschedulable(ctx, bad, unjudged, c.now)
	if first != nil {
		return first
	}
	return firstUndelivered
}

// reachIndex counts, by bulletin, the nodes that missed the bulletins
// they are for (c.reaches), by area: those a node's area reaches are the
// same for every node of it, found once, and counted once per area at the
// end; only the few that name a node by id, or a node that met some
// bulletins before it failed, are looked at node by node.
type reachIndex struct {
	byArea map[string][]*loaxa.Announcement // reaching the area's nodes by its areas
	byNode map[string][]*loaxa.Announcement // naming the node by id
	nodes  map[string]int                   // nodes of the area that missed all of byArea's
}

// miss counts n, whose compile stopped before it placed every bulletin,
// in missed: each active bulletin of c that reaches n but those in seen
// (met before it stopped).
func (x *reachIndex) miss(c *compilation, n *loaxa.Node, seen map[string]bool, missed map[string]int) {
	var chain []string // c.chain(n.Area), made only if needed: 3 ms a pass of 5,000 nodes
	byAreas := func(a *loaxa.Announcement) bool {
		return slices.ContainsFunc(a.Targets.Areas, func(t string) bool { return slices.Contains(chain, t) })
	}
	if x.byArea == nil {
		x.byArea, x.byNode, x.nodes = map[string][]*loaxa.Announcement{}, map[string][]*loaxa.Announcement{}, map[string]int{}
		for _, a := range c.anns {
			for _, id := range a.Targets.Nodes {
				x.byNode[id] = append(x.byNode[id], a)
			}
		}
	}
	list, ok := x.byArea[n.Area]
	named := x.byNode[n.ID]
	if !ok || len(named) > 0 {
		chain = c.chain(n.Area)
	}
	if !ok {
		for _, a := range c.anns {
			if byAreas(a) && c.reaches(a, n, chain) {
				list = append(list, a)
			}
		}
		x.byArea[n.Area] = list
	}
	if len(seen) == 0 {
		x.nodes[n.Area]++
	} else {
		for _, a := range list {
			if !seen[a.ID] {
				missed[a.ID]++
			}
		}
	}
	for i, a := range named {
		// Once each: a bulletin may name the node twice.
		if !seen[a.ID] && !byAreas(a) && !slices.Contains(named[:i], a) && c.reaches(a, n, chain) {
			missed[a.ID]++
		}
	}
}

// count adds the nodes counted by area to missed.
func (x *reachIndex) count(missed map[string]int) {
	for area, k := range x.nodes {
		for _, a := range x.byArea[area] {
			missed[a.ID] += k
		}
	}
}

// failures are a pass's nodes that failed, by cause.
type failures struct {
	causes []*failure
	by     map[string]*failure
}

// failure is one cause of failed nodes: how many, the first few, and the
// first one's error.
type failure struct {
	err   error
	nodes int
	first []string
}

// add counts node as failed with err, under err's cause (failureCause).
func (f *failures) add(node string, err error) {
	key := failureCause(err)
	x := f.by[key]
	if x == nil {
		if f.by == nil {
			f.by = map[string]*failure{}
		}
		x = &failure{err: err}
		f.by[key] = x
		f.causes = append(f.causes, x)
	}
	if x.nodes++; len(x.first) < changedNamed {
		x.first = append(x.first, node)
	}
}

// log says each cause once, in the order met, with its count and first
// nodes (each node's own line is at debug).
func (f *failures) log(l *slog.Logger) {
	for _, x := range f.causes {
		l.Error("schedule: nodes not compiled", "nodes", x.nodes, "first", x.first, "err", x.err)
	}
}

// failureCause is what nodes that failed for the same reason share: the
// message of the coded error (a refused area time zone names the area,
// not the node), else of the innermost error, without the wrapping that
// names a node's versions.
func failureCause(err error) string {
	var e *loaxa.Error
	if errors.As(err, &e) {
		return e.Code + " " + e.Message
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// reportUnschedulable logs each bulletin of bad (by announcement) that a
// pass could not schedule, and tells Alarms of them all: alarms open for
// the new ones and end for those a pass no longer meets, but those of
// unjudged, which it could not tell.
func (s *Scheduler) reportUnschedulable(ctx context.Context, bad map[string]loaxa.AlarmFacts, unjudged map[string]bool, now time.Time) {
	for _, ann := range slices.Sorted(maps.Keys(bad)) {
		f := bad[ann]
		s.Logger.Error("schedule: bulletin cannot be scheduled; left out of the desired states of the nodes it targets",
			"announcement", ann, "from_area", f.FromArea, "part", f.Part, "content", f.Content, "nodes", f.Nodes, "err", f.Error)
	}
	if s.Alarms != nil {
		s.Alarms.BulletinsUnschedulable(ctx, bad, unjudged, now)
	}
}

// Targets reports whether announcement a plays on a node with id node in the
// area chain (the node's area followed by its ancestors).
func Targets(a *loaxa.Announcement, node string, chain []string) bool {
	if slices.Contains(a.Targets.Nodes, node) {
		return true
	}
	for _, area := range a.Targets.Areas {
		if slices.Contains(chain, area) {
			return true
		}
	}
	return false
}

// compile builds the desired state of node n (without Version and
// Generated): every occurrence of a targeting announcement that has not
// ended more than LateGrace ago and starts within the horizon.
func (s *Scheduler) compile(ctx context.Context, c *compilation, n *loaxa.Node) (*protocol.DesiredState, []programmed, error) {
	chain := c.chain(n.Area)
	d := &protocol.DesiredState{
		Node:        n.ID,
		Areas:       chain,
		Horizon:     c.now.Add(s.Horizon),
		Occurrences: []protocol.Occurrence{},
		Content:     []protocol.ContentRef{},
		Config:      nodeConfig(n.Settings, s.Volume, s.LateGrace),
		Keys:        c.keys,
	}
	items, err := s.programme(ctx, c, n, c.now.Add(-c.longest-s.LateGrace), c.now.Add(s.Horizon))
	if err != nil {
		return nil, nil, err
	}
	refs := map[string]bool{}
	ref := func(ct *loaxa.Content) {
		if ct != nil && !refs[ct.ID] {
			refs[ct.ID] = true
			d.Content = append(d.Content, protocol.ContentRef{
				ID: ct.ID, Size: ct.Size, DurationMS: ct.DurationMS,
				Path: "/api/v1/content/" + ct.ID + "/audio", Chunks: ct.Chunks,
			})
		}
	}
	// Content kept at all times (read by newCompilation).
	for _, id := range c.always {
		ref(c.contents[id])
	}
	for _, sc := range c.standing {
		if slices.ContainsFunc(sc.Areas, func(a string) bool { return slices.Contains(chain, a) }) {
			ref(c.contents[sc.Content])
		}
	}
	d.Occurrences = make([]protocol.Occurrence, 0, len(items))
	kept := make([]programmed, 0, len(items))
	for _, it := range items {
		// A packed session item may start before the window it was
		// expanded for; keep only what has not ended long ago. One that
		// may still start until its session ends (PlayBy: cut off, or
		// queued, it starts again within it) is kept until it could have
		// played from there; dropped at its planned end, the node failed it
		// "removed" in the middle of its session.
		until := it.end
		if pb := it.occ.PlayBy; !pb.IsZero() {
			if last := pb.Add(it.end.Sub(it.occ.Start)); last.After(until) {
				until = last
			}
		}
		if !until.Add(s.LateGrace).After(c.now) {
			continue
		}
		d.Occurrences = append(d.Occurrences, it.occ)
		ref(it.content)
		ref(it.opening)
		ref(it.closing)
		kept = append(kept, it)
	}
	sort.Slice(d.Content, func(i, j int) bool { return d.Content[i].ID < d.Content[j].ID })
	return d, kept, nil
}

// Hash identifies the schedule content of d, ignoring Version, Generated and
// Horizon, so recompiling an unchanged schedule keeps its version.
func Hash(d *protocol.DesiredState) string {
	cp := *d
	cp.Version, cp.Generated, cp.Horizon = 0, time.Time{}, time.Time{}
	raw, _ := json.Marshal(&cp)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// compileNodeSafely compiles one node and turns a panic (a library
// choking on an input it accepted) into that node's error, so one bad
// announcement cannot stop the schedules of a whole province.
func (s *Scheduler) compileNodeSafely(ctx context.Context, c *compilation, n *loaxa.Node, republish bool) (ch *change, err error) {
	err = safely("compile node "+n.ID, func() error {
		ch, err = s.compileNode(ctx, c, n, republish)
		return err
	})
	return ch, err
}

// safely runs fn, returning a panic in it as an error named by what.
func safely(what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: panic: %v", what, p)
		}
	}()
	return fn()
}

// change is a node a pass publishes: one whose schedule changed, with
// its new desired state, the deliveries of its occurrences and the
// occurrences it plans (keep), to store once the deliveries it no longer
// plans are dropped; or one whose unchanged state is due to be published
// again (stored).
type change struct {
	node       *loaxa.Node
	rec        *loaxa.Desired
	keep       map[string]bool
	deliveries []*loaxa.Delivery
	// stored: rec is in the store (an unchanged state, or a new one once
	// storeChanges stored it), ready to publish.
	stored bool
}

// changeBatch is how many nodes a pass stores and publishes together:
// each step of storing them is one transaction (one commit, with its
// fsyncs) for the batch, not one per node, which made a pass that changed
// 10,000 nodes take 23–26 s (BENCHMARKS.md). It bounds how many compiled
// states a pass holds at once.
const changeBatch = 200

// changedNamed is how many of the nodes whose schedule a pass changed its
// log line names; each node's own line is at debug level.
const changedNamed = 5

// compileNode compiles n. A changed schedule, or an unchanged one due to
// be published again, is returned to be stored and published by
// storeChanges.
func (s *Scheduler) compileNode(ctx context.Context, c *compilation, n *loaxa.Node, republish bool) (*change, error) {
	// Cleared once the compile placed every bulletin; a panic in it
	// leaves it set as an error does.
	c.unfinished = true
	d, items, err := s.compile(ctx, c, n)
	if err != nil {
		return nil, err
	}
	c.unfinished = false
	hash := Hash(d)
	prev, found, err := s.findHead(ctx, n.ID)
	if err != nil {
		return nil, fmt.Errorf("load desired state: %w", err)
	}
	// A node that runs a newer version than the last one stored here got
	// it from this controller before its store was restored from an older
	// backup: it would take every version up to the one it runs for a
	// copy of what it has and keep its old schedule. It is given what
	// this store says, as a version above its own.
	ahead := found && n.Status.RunningVersion > prev.Version && n.Status.RunningVersion < math.MaxUint64
	if found && prev.Hash == hash && !ahead {
		if s.retrying(n.ID) {
			return nil, nil // its retry publishes it, when due
		}
		if republish || prev.Published.IsZero() || c.now.Sub(prev.Published) >= s.RepublishAfter || s.behind(n, prev, c.now) {
			rec, err := s.DesiredService.FindDesired(ctx, n.ID)
			if err != nil {
				return nil, fmt.Errorf("load desired state: %w", err)
			}
			return &change{node: n, rec: rec, stored: true}, nil
		}
		return nil, nil
	}
	d.Version = 1
	if found {
		d.Version = max(prev.Version, n.Status.RunningVersion) + 1
	}
	if ahead {
		s.Logger.Warn("schedule: node runs a newer desired state than this controller stored (a store restored from an older backup); giving it this store's as a newer version",
			"node", n.ID, "running", n.Status.RunningVersion, "stored", prev.Version, "version", d.Version)
	}
	d.Generated = c.now
	ds := make([]*loaxa.Delivery, 0, len(items))
	keep := make(map[string]bool, len(items))
	for _, it := range items {
		o := it.occ
		keep[o.ID] = true
		ds = append(ds, &loaxa.Delivery{
			Announcement: o.Announcement, Occurrence: o.ID, Node: n.ID, Start: o.Start,
			State: loaxa.DeliveryPending, UpdatedAt: c.now,
			Priority: o.Priority, PlannedMS: it.end.Sub(o.Start).Milliseconds(),
		})
	}
	return &change{node: n, rec: &loaxa.Desired{Node: n.ID, State: d, Hash: hash}, keep: keep, deliveries: ds}, nil
}

// storeChanges stores and publishes the nodes of batch, with a bounded
// number of transactions whatever its size, in this order:
//
//  1. the deliveries of every changed node's occurrences are stored
//     (EnsureDeliveries keeps a delivery that exists: one a fast node
//     already reported, or one of a node's report made before its plan);
//  2. the deliveries the changed nodes no longer plan (cancelled,
//     declined, moved within a session; only the future is rewritten) are
//     dropped;
//  3. their new desired states are stored;
//  4. each node's state is published, and
//  5. the times the broker accepted them are recorded.
//
// Each step comes before the next because a node's new state, once
// stored, is what the next pass compares against: a controller that
// stopped between a stored state and its deliveries, or their drop, would
// never make them. A state stored and not yet recorded as published is
// published again by the next pass (Published is zero; and a restarted
// controller's first pass republishes every node). A node that fails a
// step goes no further, and fails alone where it can: its state's store
// has an error of its own, and a batch of deliveries refused as a whole is
// stored again node by node (a failed drop is the store's, and fails the
// changed nodes of the batch, as before). It returns each node's error.
func (s *Scheduler) storeChanges(ctx context.Context, c *compilation, batch []*change) []error {
	errs := make([]error, len(batch))
	if len(batch) == 0 {
		return errs
	}
	var changed []int // indices into batch of the changed nodes still going
	for i, ch := range batch {
		if !ch.stored {
			changed = append(changed, i)
		}
	}
	changed = s.ensureDeliveries(ctx, batch, changed, errs)
	if len(changed) > 0 {
		keep := make(map[string]map[string]bool, len(changed))
		for _, i := range changed {
			keep[batch[i].node.ID] = batch[i].keep
		}
		if err := s.DeliveryService.DropDeliveries(ctx, keep, c.now, s.LateGrace); err != nil {
			for _, i := range changed {
				errs[i] = fmt.Errorf("deliveries: %w", err)
			}
			changed = nil
		}
	}
	if len(changed) > 0 {
		recs := make([]*loaxa.Desired, len(changed))
		for j, i := range changed {
			recs[j] = batch[i].rec
		}
		for j, err := range s.DesiredService.SaveDesiredBatch(ctx, recs) {
			i := changed[j]
			if err != nil {
				errs[i] = fmt.Errorf("save desired state: %w", err)
				continue
			}
			ch, d := batch[i], batch[i].rec.State
			// In memory: the node status is written in batches of its own
			// (bolt's status table), not a commit per node here.
			if err := s.NodeService.UpdateNodeStatus(ctx, ch.node.ID, func(st *loaxa.NodeStatus) { st.DesiredVersion = d.Version }); err != nil {
				errs[i] = fmt.Errorf("node status: %w", err)
				continue
			}
			ch.stored = true
			// One line a node at debug: a province bulletin changes
			// 10,000 nodes, and CompileAll says the pass's count at info.
			s.Logger.Debug("schedule: desired state changed", "node", ch.node.ID, "version", d.Version, "occurrences", len(d.Occurrences))
			if c.changed++; len(c.changedFirst) < changedNamed {
				c.changedFirst = append(c.changedFirst, ch.node.ID)
			}
		}
	}
	var sent []int
	for i, ch := range batch {
		if errs[i] != nil || !ch.stored {
			continue
		}
		if errs[i] = s.publishIn(ctx, c, ch.rec); errs[i] == nil {
			sent = append(sent, i)
		}
	}
	if len(sent) == 0 {
		return errs
	}
	recs := make([]loaxa.DesiredPublished, len(sent))
	for j, i := range sent {
		batch[i].rec.Published = c.now
		recs[j] = loaxa.DesiredPublished{Node: batch[i].node.ID, Version: batch[i].rec.State.Version, At: c.now}
	}
	for j, err := range s.DesiredService.RecordPublished(ctx, recs) {
		if err != nil {
			i := sent[j]
			errs[i] = errors.Join(fmt.Errorf("record publish of desired state %d", batch[i].rec.State.Version), err)
		}
	}
	return errs
}

// ensureDeliveries stores the deliveries of the changed nodes of batch
// (indices into it) in one call, and returns those that have them. A call
// that fails (a node removed since the pass read it, and nothing is
// stored) is made again for each node alone, so only the nodes that fail
// on their own get an error in errs.
func (s *Scheduler) ensureDeliveries(ctx context.Context, batch []*change, changed []int, errs []error) []int {
	if len(changed) == 0 {
		return changed
	}
	var all []*loaxa.Delivery
	for _, i := range changed {
		all = append(all, batch[i].deliveries...)
	}
	err := s.DeliveryService.EnsureDeliveries(ctx, all)
	if err == nil {
		return changed
	}
	if ctx.Err() != nil || len(changed) == 1 {
		for _, i := range changed {
			errs[i] = fmt.Errorf("deliveries: %w", err)
		}
		return nil
	}
	s.Logger.Warn("schedule: storing the deliveries of a batch failed; storing them node by node", "nodes", len(changed), "err", err)
	ok := changed[:0:0]
	for _, i := range changed {
		if err := s.DeliveryService.EnsureDeliveries(ctx, batch[i].deliveries); err != nil {
			errs[i] = fmt.Errorf("deliveries: %w", err)
			continue
		}
		ok = append(ok, i)
	}
	return ok
}

// findHead reads the head of node's stored desired state, and whether
// there is one.
func (s *Scheduler) findHead(ctx context.Context, node string) (loaxa.DesiredHead, bool, error) {
	head, err := s.DesiredService.FindDesiredHead(ctx, node)
	switch {
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		return head, false, nil
	case err != nil:
		return head, false, err
	}
	return head, true, nil
}

// publishIn publishes rec in pass c, without recording when (storeChanges
// records a batch's publishes together). Once the broker has refused one
// publish of the pass it takes none (it is away, or too loaded to
// acknowledge): the rest of the pass's nodes go straight onto the retry
// list, which backs off and stops at the first refusal, rather than each
// waiting out the publish timeout in turn (1,000 changed nodes with the
// broker away held the pass for hours).
func (s *Scheduler) publishIn(ctx context.Context, c *compilation, rec *loaxa.Desired) error {
	if c.refused != nil {
		s.notAccepted(rec, c.now, c.refused)
		return fmt.Errorf("publish desired state %d: %w (not tried: the broker refused an earlier one of this pass)", rec.State.Version, ErrNotAccepted)
	}
	err := s.send(ctx, rec, c.now)
	if errors.Is(err, ErrNotAccepted) {
		c.refused = err
	}
	return err
}

// send publishes rec. A publish the broker did not accept leaves
// Published zero and puts the node on the retry list (see Undelivered);
// the error then wraps ErrNotAccepted.
func (s *Scheduler) send(ctx context.Context, rec *loaxa.Desired, now time.Time) error {
	if err := s.Messenger.PublishDesired(ctx, rec.State); err != nil {
		if ctx.Err() != nil {
			// Shutting down: the next start republishes every node.
			return fmt.Errorf("publish desired state %d: %w", rec.State.Version, err)
		}
		s.notAccepted(rec, now, err)
		return fmt.Errorf("publish desired state %d: %w: %w", rec.State.Version, ErrNotAccepted, err)
	}
	s.accepted(ctx, rec.Node, rec.State.Version, now)
	return nil
}

// nodeConfig is the NodeConfig of a node with settings st: its own volume,
// mute and amplifier policy where set, else the defaults.
func nodeConfig(st loaxa.NodeSettings, volume int, grace time.Duration) protocol.NodeConfig {
	c := protocol.NodeConfig{Volume: volume, LateGraceMS: grace.Milliseconds(), Muted: st.Muted, AmplifierPolicy: st.AmplifierPolicy}
	if st.Volume != nil {
		c.Volume = *st.Volume
	}
	return c
}
