package release

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Defaults of the Runner.
const (
	DefaultInterval = 2 * time.Second
	// DefaultResend is how long a node has to answer before it is asked
	// again (the update command's lifetime too): an offline node gets the
	// command when it is back.
	DefaultResend = 5 * time.Minute
	// DefaultCanaryTimeout bounds a canary's update: download, waiting
	// for a quiet moment (no broadcast due), the trial, and the probation
	// (10 minutes by default) after which the node reports updated.
	DefaultCanaryTimeout = 40 * time.Minute
	// DefaultNodeTimeout is how long the rollout waits for another node's
	// answer before counting it unreached: enough for an online node to
	// fetch the release over a thin link while a province fetches it
	// too, wait out a session, and run its probation.
	DefaultNodeTimeout = 6 * time.Hour
)

// ArchivePath is where nodes fetch an archive (GET, node credentials).
func ArchivePath(sha string) string { return "/api/v1/releases/archives/" + sha }

// Runner drives rollouts: every Interval it asks the nodes of each active
// rollout's current stage to update, and reads their answers: their
// updated and update-failed events (a node already running the version
// counts as updated without being asked).
type Runner struct {
	Releases  loaxa.ReleaseService
	Nodes     loaxa.NodeService
	Events    loaxa.EventService
	Messenger loaxa.Messenger
	// Audit records the halts the runner makes itself (a canary failed);
	// nil records nothing.
	Audit  loaxa.AuditService
	Now    func() time.Time
	Logger *slog.Logger

	Interval      time.Duration
	Resend        time.Duration
	CanaryTimeout time.Duration
	// NodeTimeout bounds the wait for a node that is not a canary: one
	// that has not answered within it of being asked (of when it was
	// last seen, for a node offline since before) is counted unreached,
	// so a rollout completes while boards are switched off or gone.
	NodeTimeout time.Duration

	wake chan struct{}
}

// NewRunner returns a Runner with default timings.
func NewRunner() *Runner {
	return &Runner{Interval: DefaultInterval, Resend: DefaultResend, CanaryTimeout: DefaultCanaryTimeout, NodeTimeout: DefaultNodeTimeout,
		Now: time.Now, Logger: slog.Default(), wake: make(chan struct{}, 1)}
}

// Start plans a rollout of version to the nodes of targets: percent of
// them (chosen by a hash of the rollout and node ids, so a second rollout
// picks others), canaries of those first.
func (r *Runner) Start(ctx context.Context, version string, targets loaxa.Targets, percent, canaries int, by string) (*loaxa.Rollout, error) {
	if percent < 1 || percent > 100 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "percent %d: give 1 to 100 (the share of the targeted nodes to update).", percent)
	}
	if canaries < 1 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "canaries %d: give at least 1 (the nodes that update first; the rollout halts if one fails).", canaries)
	}
	rel, err := r.Releases.FindReleaseByVersion(ctx, version)
	if err != nil {
		return nil, err
	}
	if err := updateOf(rel).Validate(); err != nil {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Release %s cannot be sent to nodes (%v); upload its archives again under a new version.", version, err)
	}
	ids := map[string]bool{}
	for _, area := range targets.Areas {
		nodes, err := r.Nodes.FindNodes(ctx, loaxa.NodeFilter{Within: area})
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			ids[n.ID] = true
		}
	}
	if len(targets.Nodes) > 0 {
		nodes, err := r.Nodes.FindNodes(ctx, loaxa.NodeFilter{IDs: targets.Nodes})
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			ids[n.ID] = true
		}
	}
	if len(ids) == 0 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "The targets hold no nodes; name areas or nodes that exist.")
	}
	ro := &loaxa.Rollout{Version: rel.Version, Targets: targets, Percent: percent, Canaries: canaries, State: loaxa.RolloutCanary, CreatedBy: by}
	if err := r.Releases.CreateRollout(ctx, ro); err != nil {
		return nil, err
	}
	order := make([]string, 0, len(ids))
	for id := range ids {
		order = append(order, id)
	}
	rank := func(id string) uint64 {
		h := sha256.Sum256([]byte(ro.ID + "\x00" + id))
		return binary.BigEndian.Uint64(h[:8])
	}
	slices.SortFunc(order, func(a, b string) int {
		ra, rb := rank(a), rank(b)
		if ra != rb {
			if ra < rb {
				return -1
			}
			return 1
		}
		return 0
	})
	order = order[:max(1, (len(order)*percent+99)/100)]
	ro, err = r.Releases.UpdateRollout(ctx, ro.ID, func(x *loaxa.Rollout) error {
		for i, id := range order {
			x.Nodes = append(x.Nodes, loaxa.RolloutNode{Node: id, Canary: i < canaries, State: loaxa.RolloutNodePending})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := r.takeOver(ctx, ro); err != nil {
		return nil, err
	}
	r.Wake()
	return ro, nil
}

// takeOver makes ro the one rollout that asks its nodes: an older rollout
// still asking some (active, or done and waiting for nodes it counted
// unreached) counts them replaced and asks them no more. Two rollouts
// asking a node for two releases would have it drop each for the other
// every few minutes (the node follows the latest request) and install
// neither. A canary taken so halts its rollout at its next step.
func (r *Runner) takeOver(ctx context.Context, ro *loaxa.Rollout) error {
	mine := make(map[string]bool, len(ro.Nodes))
	for _, n := range ro.Nodes {
		mine[n.Node] = true
	}
	running, err := r.Releases.FindRollouts(ctx, loaxa.RolloutFilter{Running: true})
	if err != nil {
		return fmt.Errorf("rollout %s: take its nodes from older rollouts: %w", ro.ID, err)
	}
	detail := fmt.Sprintf("rollout %s of %s asks it now", ro.ID, ro.Version)
	for _, old := range running {
		// Ids grow with time (r000001, …): only older rollouts give way.
		if old.ID >= ro.ID || !slices.ContainsFunc(old.Nodes, func(n loaxa.RolloutNode) bool { return mine[n.Node] && asking(n.State) }) {
			continue
		}
		_, err := r.Releases.UpdateRollout(ctx, old.ID, func(x *loaxa.Rollout) error {
			x.Unreached = 0
			for i := range x.Nodes {
				n := &x.Nodes[i]
				if mine[n.Node] && asking(n.State) {
					n.State, n.At, n.Detail = loaxa.RolloutNodeReplaced, r.Now(), detail
				}
				if n.State == loaxa.RolloutNodeUnreached {
					x.Unreached++
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("rollout %s: take its nodes from rollout %s: %w", ro.ID, old.ID, err)
		}
		r.Logger.Info("rollout: nodes taken by a newer rollout", "rollout", old.ID, "by", ro.ID)
	}
	return nil
}

// asking reports whether a rollout still asks a node in state s.
func asking(s string) bool {
	return s == loaxa.RolloutNodePending || s == loaxa.RolloutNodeSent || s == loaxa.RolloutNodeUnreached
}

// maxHaltReason bounds the reason an admin gives for a halt.
const maxHaltReason = 200

// Halt stops an active rollout by hand, or a done one still waiting for
// nodes it counted unreached: no node is asked any more.
// A node already asked drops the request once it is not renewed within a
// command's lifetime (Resend) after it expired (node/update.Requests),
// unless it is trying the version already; a new rollout of the previous
// version brings those back. Those that install it, or fail it, after the
// halt are heard for NodeTimeout (hearLate).
func (r *Runner) Halt(ctx context.Context, id, by, reason string) (*loaxa.Rollout, error) {
	if len(reason) > maxHaltReason {
		return nil, loaxa.Errorf(loaxa.EInvalid, "reason is %d bytes long; say it in at most %d.", len(reason), maxHaltReason)
	}
	ro, err := r.Releases.UpdateRollout(ctx, id, func(x *loaxa.Rollout) error {
		if !x.Active() && !x.Waiting() {
			return loaxa.Errorf(loaxa.EConflict, "Rollout %s is %s already; only a rollout in progress, or done and waiting for nodes it did not reach, can be halted.", x.ID, x.State)
		}
		x.State, x.Reason, x.LateUntil = loaxa.RolloutHalted, "halted by "+by, r.lateUntil(x, r.Now())
		if reason != "" {
			x.Reason += ": " + reason
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Logger.Warn("rollout halted by hand", "rollout", id, "by", by, "reason", reason)
	r.Wake() // read off the running ones if it has nobody to hear
	return ro, nil
}

// asked reports whether a node in state s was asked and has not answered:
// a halted rollout still hears it (hearLate).
func asked(s string) bool { return s == loaxa.RolloutNodeSent || s == loaxa.RolloutNodeUnreached }

// lateUntil is the LateUntil of x, halted at now: NodeTimeout later if it
// asked nodes that have not answered, zero if none. A node asked before
// the halt may still install the release: it holds the request for up to
// two command lifetimes, and one already trying it goes on through its
// probation; one offline reports its updated event when it is back.
// Without it a cluster that installed the release after the halt stayed
// "sent" in the record for ever, running the new version.
func (r *Runner) lateUntil(x *loaxa.Rollout, now time.Time) time.Time {
	if !slices.ContainsFunc(x.Nodes, func(n loaxa.RolloutNode) bool { return asked(n.State) }) {
		return time.Time{}
	}
	return now.Add(r.NodeTimeout)
}

// hearLate moves halted x's nodes asked before the halt by their answers
// at now: updated or failed. It asks nobody. Past x.LateUntil, or with
// nobody left to hear, it clears LateUntil and the runner leaves x.
func (r *Runner) hearLate(x *loaxa.Rollout, answers map[string]answer, now time.Time) {
	if x.LateUntil.IsZero() {
		return
	}
	if !now.Before(x.LateUntil) {
		x.LateUntil = time.Time{}
		return
	}
	waiting := false
	for i := range x.Nodes {
		n := &x.Nodes[i]
		if !asked(n.State) {
			continue
		}
		switch a := answers[n.Node]; {
		case a.updated:
			n.State, n.At, n.Detail = loaxa.RolloutNodeUpdated, now, "installed after the halt"
		case a.failed != "":
			n.State, n.At, n.Detail = loaxa.RolloutNodeFailed, now, a.failed
		default:
			waiting = true
		}
	}
	x.Unreached = 0
	for _, n := range x.Nodes {
		if n.State == loaxa.RolloutNodeUnreached {
			x.Unreached++
		}
	}
	if !waiting {
		x.LateUntil = time.Time{}
	}
}

// Wake makes Run look at the rollouts now.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run drives the active rollouts, and the done ones still waiting for
// nodes they counted unreached, until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wake:
		}
	}
}

// pass steps each running rollout once. It reads the running ones only:
// a province's year of finished rollouts, decoded every Interval, cost
// 20 MB and 110,000 allocations a pass (BENCHMARKS.md).
func (r *Runner) pass(ctx context.Context) {
	running, err := r.Releases.FindRollouts(ctx, loaxa.RolloutFilter{Running: true})
	if err != nil {
		r.Logger.Error("rollouts: list the running ones", "err", err)
	}
	for _, ro := range running {
		if err := r.step(ctx, ro.ID); err != nil && ctx.Err() == nil {
			r.Logger.Error("rollout: step", "rollout", ro.ID, "err", err)
		}
	}
}

// answer is what a node said about the release.
type answer struct {
	updated bool
	failed  string
}

// step advances one rollout.
func (r *Runner) step(ctx context.Context, id string) error {
	ro, err := r.Releases.FindRolloutByID(ctx, id)
	if err != nil {
		return err
	}
	rel, err := r.Releases.FindReleaseByVersion(ctx, ro.Version)
	if err != nil {
		return err
	}
	// Checked as the node checks it: an update the nodes would refuse,
	// or one whose archive is not on this controller (a stored release
	// damaged or written by hand), is not signed.
	upd := updateOf(rel)
	if err := upd.Validate(); err != nil {
		return fmt.Errorf("rollout %s: release %s not sent to nodes: %w", id, rel.Version, err)
	}
	now := r.Now()
	// Read the answers outside the rollout's transaction.
	answers := map[string]answer{}
	status := map[string]loaxa.NodeStatus{}
	for _, n := range ro.Nodes {
		if !asking(n.State) || ro.State == loaxa.RolloutHalted && !asked(n.State) {
			continue
		}
		node, err := r.Nodes.FindNodeByID(ctx, n.Node)
		if err != nil {
			answers[n.Node] = answer{failed: "node removed"}
			continue
		}
		status[n.Node] = node.Status
		if n.State == loaxa.RolloutNodePending {
			// Already there: nothing to ask.
			if node.Status.Agent == ro.Version {
				answers[n.Node] = answer{updated: true}
			}
			continue
		}
		// An asked node has updated when the installed version says so
		// (the updated event), not when its state first shows the version:
		// that may be the new agent on trial, not installed yet.
		// Only those two types: a node back from days offline sends its
		// backlog first, and the first 1,000 events (the default cap) did
		// not reach its updated one.
		evs, err := r.Events.FindEvents(ctx, loaxa.EventFilter{Node: n.Node, From: ro.CreatedAt,
			Types: []protocol.EventType{protocol.EventUpdated, protocol.EventUpdateFailed}})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch {
			case ev.Version != ro.Version:
			case ev.Type == protocol.EventUpdated:
				answers[n.Node] = answer{updated: true}
			case ev.Type == protocol.EventUpdateFailed:
				answers[n.Node] = answer{failed: ev.Reason}
			}
		}
	}
	// A pass that would change nothing writes nothing: most passes wait
	// for answers (a canary takes tens of minutes, a done rollout waits
	// for boards away for days), and each write is a commit.
	probe := *ro
	probe.Nodes = slices.Clone(ro.Nodes)
	r.advance(&probe, answers, status, now)
	if reflect.DeepEqual(&probe, ro) {
		return nil
	}
	var (
		send    []string
		passed  bool     // the canaries just passed
		counted []string // the nodes just counted unreached
		halted  bool     // the canaries just halted it
	)
	ro, err = r.Releases.UpdateRollout(ctx, id, func(x *loaxa.Rollout) error {
		was := x.State
		send, passed, counted = r.advance(x, answers, status, now)
		halted = was != loaxa.RolloutHalted && x.State == loaxa.RolloutHalted
		return nil
	})
	if err != nil {
		return err
	}
	if halted {
		r.auditHalt(ctx, ro)
	}
	cmd := protocol.Command{Name: protocol.CmdUpdate, Update: upd}
	for _, node := range send {
		if err := r.Messenger.SendNodeCommand(ctx, node, cmd, r.Resend); err != nil {
			r.Logger.Warn("rollout: update command not sent; retried later", "rollout", id, "node", node, "err", err)
		}
	}
	if ro.State == loaxa.RolloutRolling || len(send) > 0 {
		r.Logger.Info("rollout", "rollout", id, "state", ro.State, "asked", len(send))
	}
	if len(counted) > 0 {
		r.Logger.Warn("rollout: nodes counted unreached; asked again once they are online", "rollout", id, "nodes", counted, "unreached", ro.Unreached, "state", ro.State)
	}
	if passed {
		r.Wake() // ask the rest now
	}
	return nil
}

// advance moves x on by what its nodes answered (answers) and how they
// are (status) at now, and says which nodes to ask, whether the canaries
// just passed, and which nodes it just counted unreached.
func (r *Runner) advance(x *loaxa.Rollout, answers map[string]answer, status map[string]loaxa.NodeStatus, now time.Time) (send []string, passed bool, counted []string) {
	if x.State == loaxa.RolloutHalted {
		r.hearLate(x, answers, now)
		return nil, false, nil
	}
	if !x.Running() {
		return nil, false, nil
	}
	canaryStage := x.State == loaxa.RolloutCanary
	for i := range x.Nodes {
		n := &x.Nodes[i]
		if canaryStage && !n.Canary {
			continue
		}
		st, known := status[n.Node]
		switch a := answers[n.Node]; {
		case !asking(n.State):
		case a.updated:
			n.State, n.At, n.Detail = loaxa.RolloutNodeUpdated, now, ""
		case a.failed != "":
			n.State, n.At, n.Detail = loaxa.RolloutNodeFailed, now, a.failed
		case n.Canary && n.State == loaxa.RolloutNodeSent && now.Sub(n.FirstSentAt) > r.CanaryTimeout:
			n.State, n.At, n.Detail = loaxa.RolloutNodeFailed, now, fmt.Sprintf("no answer within %v", r.CanaryTimeout)
		case !n.Canary && n.State == loaxa.RolloutNodeSent && known && r.unreached(n, st, now):
			n.State, n.At, n.Detail = loaxa.RolloutNodeUnreached, now, r.unreachedDetail(st)
			counted = append(counted, n.Node)
		case n.State == loaxa.RolloutNodeUnreached && st.State != loaxa.NodeOnline:
			// Asked again once it is back.
		case n.State == loaxa.RolloutNodePending || now.Sub(n.SentAt) >= r.Resend:
			if n.FirstSentAt.IsZero() {
				n.FirstSentAt = now
			}
			if n.State == loaxa.RolloutNodePending {
				n.State = loaxa.RolloutNodeSent
			}
			n.SentAt = now
			send = append(send, n.Node)
		}
	}
	x.Unreached = 0
	for _, n := range x.Nodes {
		if n.State == loaxa.RolloutNodeUnreached {
			x.Unreached++
		}
	}
	if canaryStage {
		healthy := true
		for _, n := range x.Nodes {
			if !n.Canary {
				continue
			}
			switch n.State {
			case loaxa.RolloutNodeFailed:
				x.State, x.Reason = loaxa.RolloutHalted, fmt.Sprintf("canary %s failed: %s", n.Node, n.Detail)
				x.LateUntil = r.lateUntil(x, now)
				return nil, false, counted
			case loaxa.RolloutNodeReplaced:
				x.State, x.Reason = loaxa.RolloutHalted, fmt.Sprintf("canary %s: %s", n.Node, n.Detail)
				x.LateUntil = r.lateUntil(x, now)
				return nil, false, counted
			}
			healthy = healthy && n.State == loaxa.RolloutNodeUpdated
		}
		if healthy {
			x.State, passed = loaxa.RolloutRolling, true
		}
		return send, passed, counted
	}
	for _, n := range x.Nodes {
		if n.State == loaxa.RolloutNodePending || n.State == loaxa.RolloutNodeSent {
			return send, false, counted
		}
	}
	x.State = loaxa.RolloutDone
	return send, false, counted
}

// AuditHalt is the audit action of a halt, by an admin (the HTTP layer
// writes it) or by the runner when a canary fails.
const AuditHalt = "rollout.halt"

// auditHalt records that the runner halted ro itself, a canary having
// failed (or been taken by a newer rollout): before, the audit log showed
// the rollout started and nothing more, though nobody else was asked.
// The actor is "system", the detail that of an admin's halt with the
// canary that stopped it.
func (r *Runner) auditHalt(ctx context.Context, ro *loaxa.Rollout) {
	canary := ""
	if i := slices.IndexFunc(ro.Nodes, func(n loaxa.RolloutNode) bool {
		return n.Canary && (n.State == loaxa.RolloutNodeFailed || n.State == loaxa.RolloutNodeReplaced)
	}); i >= 0 {
		canary = ro.Nodes[i].Node
	}
	r.Logger.Warn("rollout halted: a canary did not update", "rollout", ro.ID, "version", ro.Version, "node", canary, "reason", ro.Reason)
	if r.Audit == nil {
		return
	}
	e := &loaxa.AuditEntry{At: r.Now(), Actor: "system", Action: AuditHalt, Target: ro.ID,
		Detail: fmt.Sprintf("version=%s node=%s reason=%q", ro.Version, canary, ro.Reason)}
	if err := r.Audit.RecordAudit(ctx, e); err != nil {
		r.Logger.Error("audit: record failed", "action", AuditHalt, "target", ro.ID, "err", err)
	}
}

// unreached reports whether n, asked and silent, has waited NodeTimeout:
// from when it was asked, or from when it was last seen if it has been
// offline since before (a board switched off for the season is counted
// at once, not NodeTimeout later).
func (r *Runner) unreached(n *loaxa.RolloutNode, st loaxa.NodeStatus, now time.Time) bool {
	from := n.FirstSentAt
	if st.State != loaxa.NodeOnline && st.LastSeen.Before(from) {
		from = st.LastSeen
	}
	return now.Sub(from) > r.NodeTimeout
}

// unreachedDetail says why a node is counted unreached.
func (r *Runner) unreachedDetail(st loaxa.NodeStatus) string {
	switch {
	case st.State == loaxa.NodeOnline:
		return fmt.Sprintf("online but no answer within %v; asked again", r.NodeTimeout)
	case st.LastSeen.IsZero():
		return "never connected; asked once it is online"
	default:
		return fmt.Sprintf("offline since %s; asked again once it is online", st.LastSeen.UTC().Format(time.RFC3339))
	}
}

// updateOf is the command body for rel.
func updateOf(rel *loaxa.Release) *protocol.Update {
	u := &protocol.Update{Version: rel.Version}
	for _, a := range rel.Archives {
		u.Archives = append(u.Archives, protocol.UpdateArchive{Arch: a.Arch, SHA256: a.SHA256, Size: a.Size, Path: ArchivePath(a.SHA256)})
	}
	return u
}
