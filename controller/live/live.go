// Package live keeps the records of live calls (phát trực tiếp,
// docs/live.md): one record per call in the store, a delivery per node of
// its areas that the nodes' events move, and the calls on air in this
// process, so that an officer can cut one. The HTTP layer runs the call
// itself: its WebSocket, frames and the messages to the nodes.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// AuditStop is the audit action of a call's end (the start, live.start,
// is written by the HTTP layer with the client's address).
const AuditStop = "live.stop"

// Service implements loaxa.LiveCallService. Set the fields, then Open.
type Service struct {
	Store      loaxa.LiveCallStore
	Nodes      loaxa.NodeService
	Deliveries loaxa.DeliveryService
	Audit      loaxa.AuditService // nil: the restart's closures are only logged
	Clock      clock.Clock
	Logger     *slog.Logger
	// Messenger sends a call's start or end again to a node that comes
	// online (NodeOnline); nil sends nothing.
	Messenger loaxa.LiveNodeMessenger
	// Areas sends the end of the calls the last run left on air to their
	// areas (EndLeftOpen); nil sends nothing.
	Areas loaxa.LiveMessenger
	// Emergencies are where the alerts that hold a call back are found
	// by id, for their titles (LiveHold); nil names none.
	Emergencies loaxa.EmergencyStore
	// Tree is where a moved node's new area lies (NodeMoved); nil: the
	// calls on air do not follow moves.
	Tree loaxa.AreaService

	mu    sync.Mutex
	calls map[string]*onAir
	// over are the calls ended less than protocol.MaxLiveDuration ago: a
	// node that comes online may still hold one, suspended, having missed
	// its end (NodeOnline).
	over   map[string]*loaxa.LiveCall
	closed bool
	// queue holds the nodes back online whose sends wait for a sender;
	// senders run at most NodeOnlineSends at a time (NodeOnline).
	queue   []nodeSends
	senders int
	sends   sync.WaitGroup // the senders
	// leftOpen are the calls Open closed: the last run left them on air.
	leftOpen []*loaxa.LiveCall
}

var _ loaxa.LiveCallService = (*Service)(nil)

// onAir is a call running in this process.
type onAir struct {
	call  loaxa.LiveCall // as begun: what its start says
	cut   chan struct{}  // closed by CutCall
	cutBy string
	done  chan struct{} // closed by EndCall
	// awaiting are the nodes of its areas that waited for their code
	// when it began: one that comes online joins it (NodeOnline).
	awaiting map[string]bool
	// held are the nodes that reported the call held behind an alert
	// (Events); holds is what LiveCallHolds last read of them, never
	// changed in place; stale says an event of one came since.
	held  map[string]bool
	holds []loaxa.LiveHold
	stale bool
	// preempted are the nodes that reported the call preempted (Events):
	// a higher level, an emergency alert, cut it off there for good.
	preempted map[string]bool
	// joined are the nodes that waited for their code when the call began
	// and joined it since (sendAgain), or were moved into its areas since
	// (NodeMoved): with call.Nodes, the nodes it is for.
	joined map[string]bool
	// movedOut are the nodes moved out of its areas since it began
	// (NodeMoved): it ended on them, and they are not sent its start.
	movedOut map[string]bool
	// movedIn are the nodes moved into its areas since it began
	// (NodeMoved): they are sent its end on their own topic too (EndCall).
	movedIn map[string]bool
	// news counts the changes to its deliveries heard of (Events, a node
	// joining in NodeOnline); tally is what LiveCallSummaries last read of
	// them, after news had reached tallyNews, never changed in place.
	news      uint64
	tally     *tally
	tallyNews uint64
}

// tally is a call's deliveries as read once, for its summary: those not
// pending counted, and the pending ones kept, as only they depend on
// their node being online (liveNode), which changes without an event.
type tally struct {
	settled loaxa.LiveCallSummary
	pending []*loaxa.Delivery
	// named are the alerts of settled's holds, named (nameHolds).
	named map[string]loaxa.LiveHold
}

// NewService returns a Service on the real clock.
func NewService() *Service {
	return &Service{Clock: clock.Real{}, Logger: slog.New(slog.DiscardHandler), calls: map[string]*onAir{}}
}

// Open closes the calls a previous run left open: the controller stopped
// without ending them (a crash, a power cut). Their nodes, out of frames,
// hold them suspended until their end reaches them: EndLeftOpen sends it
// to the calls' areas, NodeOnline to each node that comes online.
func (s *Service) Open(ctx context.Context) error {
	open, err := s.Store.FindLiveCalls(ctx, loaxa.LiveCallFilter{Active: true})
	if err != nil {
		return fmt.Errorf("live calls left open: %w", err)
	}
	now := s.Clock.Now()
	for _, c := range open {
		c, err := s.Store.UpdateLiveCall(ctx, c.ID, func(c *loaxa.LiveCall) error {
			c.Ended, c.EndReason = now, loaxa.LiveEndRestarted
			return nil
		})
		if err != nil {
			return fmt.Errorf("close live call left open: %w", err)
		}
		s.Logger.Warn("live call left open by the last run closed", "call", c.ID, "drill", c.Drill, "started", c.Started, "user", c.CreatedBy)
		s.audit(ctx, "system", c)
		s.leftOpen = append(s.leftOpen, c)
		s.noteEnded(c)
	}
	// The nodes of calls ended lately, closed above or not, may still
	// hold them, suspended, if they missed the end: they get it when
	// they come online. Only calls that can have ended lately are read:
	// a year of them was every record on each start.
	lately, err := s.Store.FindLiveCalls(ctx, loaxa.LiveCallFilter{Since: now.Add(-protocol.MaxLiveDuration - longestCall)})
	if err != nil {
		return fmt.Errorf("live calls ended lately: %w", err)
	}
	for _, c := range lately {
		if !c.Active() && now.Sub(c.Ended) < protocol.MaxLiveDuration {
			s.noteEnded(c)
		}
	}
	return nil
}

// longestCall bounds how long after its start a call ended by its runner
// can end: the longest a call may last, its end's sends, and room for the
// clock's steps. (The calls the last run left on air, of any age, Open
// closes and notes itself.)
const longestCall = protocol.MaxLiveDuration + time.Hour

// noteEnded notes call c, just ended, for NodeOnline, and forgets the calls
// ended longer ago than a node may hold one.
func (s *Service) noteEnded(c *loaxa.LiveCall) {
	now := s.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over == nil {
		s.over = map[string]*loaxa.LiveCall{}
	}
	for id, o := range s.over {
		if now.Sub(o.Ended) >= protocol.MaxLiveDuration {
			delete(s.over, id)
		}
	}
	s.over[c.ID] = c
}

// nodeSendTimeout bounds NodeOnline's look-ups and sends for one node.
const nodeSendTimeout = 10 * time.Second

// NodeOnlineSends is how many nodes back online NodeOnline looks up and
// sends to at a time: after a broker outage thousands of boards come back
// within a minute or two, and each would otherwise read the store and
// publish at once.
const NodeOnlineSends = 16

// nodeSends is what NodeOnline sends node: its calls as they were when it
// came online.
type nodeSends struct {
	node string
	dues []due
}

// due is a call NodeOnline may send a node the start or end of; joins:
// the call is on air, and the node waited for its code when it began;
// movedOut: on air, and the node was moved out of its areas (NodeMoved).
type due struct {
	call     loaxa.LiveCall
	onAir    bool
	joins    bool
	movedOut bool
}

// NodeOnline sends node, which has just come online (wire it to the MQTT
// client's OnOnline), what it missed of the live calls while it was
// away: nodes use clean sessions, so a start or an end published on an
// area's live topic meanwhile is lost to it. The start of each call on
// air whose delivery to node is not over: the node joins the call at its
// current frames; without it, it ignored every frame of the call, silent
// to its end. The end of each call ended in the last
// protocol.MaxLiveDuration that node received and has not reported over:
// without it, the node kept the call suspended, waiting for frames, for
// up to 2 h (the call's report said so). Both go on the node's own cmd
// topic, signed for it alone. It returns at once; the sends run in the
// background, NodeOnlineSends nodes at a time in the order they came
// online, the others queued.
func (s *Service) NodeOnline(node string) {
	if s.Messenger == nil {
		return
	}
	var dues []due
	now := s.Clock.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for _, r := range s.calls {
		dues = append(dues, due{call: r.call, onAir: !r.movedOut[node], joins: r.awaiting[node], movedOut: r.movedOut[node]})
	}
	for id, c := range s.over {
		if now.Sub(c.Ended) >= protocol.MaxLiveDuration {
			delete(s.over, id)
			continue
		}
		dues = append(dues, due{call: *c})
	}
	if len(dues) == 0 {
		s.mu.Unlock()
		return
	}
	n := nodeSends{node, dues}
	if s.senders == NodeOnlineSends {
		s.queue = append(s.queue, n)
		s.mu.Unlock()
		return
	}
	s.senders++
	s.sends.Add(1)
	s.mu.Unlock()
	go s.sendQueued(n)
}

// sendQueued sends to n, then to the nodes queued by NodeOnline, one
// after another, until the queue is empty or the service closed.
func (s *Service) sendQueued(n nodeSends) {
	defer s.sends.Done()
	for {
		s.sendAgain(n.node, n.dues)
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.senders--
			s.mu.Unlock()
			return
		}
		n = s.queue[0]
		s.queue[0] = nodeSends{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
	}
}

// sendAgain sends node, back online, the starts and ends of dues it
// missed (NodeOnline).
func (s *Service) sendAgain(node string, dues []due) {
	ctx, cancel := context.WithTimeout(context.Background(), nodeSendTimeout)
	defer cancel()
	for _, d := range dues {
		c := &d.call
		ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: c.ID, Node: node})
		if err != nil {
			s.Logger.Error("live call: a node back online not looked up", "call", c.ID, "drill", c.Drill, "node", node, "err", err)
			continue
		}
		if len(ds) == 0 && d.joins {
			// It waited for its code when the call began; online, it has
			// redeemed it since: a board put up during the call joins it.
			ds = []*loaxa.Delivery{{Announcement: c.ID, Occurrence: c.ID, Node: node, Start: c.Started, Priority: c.Priority, Drill: c.Drill}}
			if err := s.Deliveries.EnsureDeliveries(ctx, ds); err != nil {
				s.Logger.Error("live call: a cluster enrolled during the call not added to it", "call", c.ID, "drill", c.Drill, "node", node, "err", err)
				continue
			}
			s.mu.Lock()
			if r := s.calls[c.ID]; r != nil {
				r.news++ // its summary counts one node more
				if r.joined == nil {
					r.joined = map[string]bool{}
				}
				r.joined[node] = true
			}
			s.mu.Unlock()
			s.Logger.Info("live call: a cluster that waited for its enrolment code when the call began is up; it joins the call", "call", c.ID, "drill", c.Drill, "node", node)
		}
		if len(ds) == 0 || ds[0].State.Terminal() {
			continue // not in the call, or done with it
		}
		l := protocol.Live{Call: c.ID, Drill: c.Drill}
		switch {
		case d.onAir:
			l.Kind, l.Priority, l.Title, l.Volume = protocol.LiveStart, c.Priority, c.Title, c.Volume
		case d.movedOut:
			l = movedOutEnd(c) // it may have had the start as it moved
		case ds[0].State == loaxa.DeliveryPending:
			continue // it never had the call
		default:
			l.Kind = protocol.LiveEnd
			if c.EndReason == loaxa.LiveEndCut {
				l.Reason = protocol.LiveCut
			}
		}
		if err := s.Messenger.SendNodeLive(ctx, node, l); err != nil {
			s.Logger.Error("live call: not sent again to a node back online", "call", c.ID, "drill", c.Drill, "node", node, "kind", l.Kind, "err", err)
			continue
		}
		s.Logger.Info("live call sent again to a node back online", "call", c.ID, "drill", c.Drill, "node", node, "kind", l.Kind, "delivery", ds[0].State)
		s.mu.Lock()
		over := s.over[c.ID]
		s.mu.Unlock()
		if d.onAir && over != nil {
			// It ended as its start went: the node may have had the
			// areas' end before it.
			l = protocol.Live{Call: c.ID, Drill: c.Drill, Kind: protocol.LiveEnd}
			if over.EndReason == loaxa.LiveEndCut {
				l.Reason = protocol.LiveCut
			}
			if err := s.Messenger.SendNodeLive(ctx, node, l); err != nil {
				s.Logger.Error("live call: end not sent again to a node back online", "call", c.ID, "drill", c.Drill, "node", node, "err", err)
			}
		}
	}
}

// EndLeftOpen sends the end of each call the last run left on air (closed
// by Open) to the call's areas; call it once the broker takes publishes.
// Nodes that stayed connected to an external broker while the controller
// was down come online for nobody: without it they kept the call
// suspended, waiting for frames, for up to 2 h. (Those that reconnect get
// the end from NodeOnline.)
func (s *Service) EndLeftOpen(ctx context.Context) {
	if s.Areas == nil {
		return
	}
	for _, c := range s.leftOpen {
		for _, a := range c.Areas {
			if err := s.Areas.SendLive(ctx, a, protocol.Live{Call: c.ID, Kind: protocol.LiveEnd, Drill: c.Drill}); err != nil {
				s.Logger.Error("live call left open by the last run: end not sent; its nodes still connected keep it suspended", "call", c.ID, "drill", c.Drill, "area", a, "err", err)
				continue
			}
			s.Logger.Info("live call left open by the last run: end sent", "call", c.ID, "drill", c.Drill, "area", a)
		}
	}
}

// Close waits for NodeOnline's sends under way and drops the nodes still
// queued; NodeOnline sends nothing after it.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	if n := len(s.queue); n > 0 {
		// Stopping while thousands of boards come back: waiting for each
		// (up to nodeSendTimeout) could outlast the service manager's
		// patience. They come online again to the next controller.
		s.Logger.Info("live calls: nodes back online not sent to, the service stopping", "nodes", n)
		s.queue = nil
	}
	s.mu.Unlock()
	s.sends.Wait()
}

// BeginCall implements loaxa.LiveCallService. The deliveries are stored
// before the caller sends the start, so the nodes' first events find them.
func (s *Service) BeginCall(ctx context.Context, c *loaxa.LiveCall) (<-chan struct{}, error) {
	if !loaxa.IsLiveCallID(c.ID) || len(c.Areas) == 0 || c.CreatedBy == "" {
		return nil, fmt.Errorf("begin live call %q: id, areas and user are required", c.ID)
	}
	if c.Started.IsZero() {
		c.Started = s.Clock.Now()
	}
	c.Emergency = c.Priority == protocol.PriorityEmergency
	if c.Drill && !strings.HasPrefix(c.Title, loaxa.DrillMark) {
		c.Title = strings.TrimSpace(loaxa.DrillMark + c.Title)
	}
	// The call's nodes are the enrolled ones: one still waiting for its
	// code (a pole not put up yet) had a delivery and read as offline.
	// It joins the call if it comes online while the call is on air
	// (NodeOnline): it redeemed its code.
	var nodes []string
	awaiting := map[string]bool{}
	for _, a := range c.Areas {
		ns, err := s.Nodes.FindNodes(ctx, loaxa.NodeFilter{Within: a})
		if err != nil {
			return nil, fmt.Errorf("begin live call %s: nodes of %s: %w", c.ID, a, err)
		}
		for _, n := range ns {
			if n.EnrolledAt.IsZero() {
				awaiting[n.ID] = true
				continue
			}
			nodes = append(nodes, n.ID)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes) // an area inside another target
	c.Nodes, c.AwaitingEnrolment = len(nodes), len(awaiting)
	if err := s.Store.CreateLiveCall(ctx, c); err != nil {
		return nil, err
	}
	ds := make([]*loaxa.Delivery, 0, len(nodes))
	for _, n := range nodes {
		ds = append(ds, &loaxa.Delivery{Announcement: c.ID, Occurrence: c.ID, Node: n, Start: c.Started, Priority: c.Priority, Drill: c.Drill})
	}
	if err := s.Deliveries.EnsureDeliveries(ctx, ds); err != nil {
		// The record stays, closed: the call never went on air.
		s.end(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndNotStarted, Detail: "deliveries not stored"})
		return nil, fmt.Errorf("begin live call %s: %w", c.ID, err)
	}
	r := &onAir{call: *c, cut: make(chan struct{}), done: make(chan struct{}), awaiting: awaiting}
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]*onAir{}
	}
	s.calls[c.ID] = r
	s.mu.Unlock()
	return r.cut, nil
}

// EndCall implements loaxa.LiveCallService. A call that was cut is
// recorded as cut, by whom, whatever end the caller saw.
func (s *Service) EndCall(ctx context.Context, id string, end loaxa.LiveCallEnd) (*loaxa.LiveCall, error) {
	s.mu.Lock()
	r := s.calls[id]
	delete(s.calls, id)
	var movedIn map[string]bool
	if r != nil {
		movedIn = r.movedIn // no more once the call is gone from calls
	}
	s.mu.Unlock()
	cutBy := ""
	if r != nil {
		defer close(r.done)
		cutBy = r.cutBy
	}
	if cutBy != "" {
		end.Reason = loaxa.LiveEndCut
	}
	c, err := s.Store.UpdateLiveCall(ctx, id, func(c *loaxa.LiveCall) error {
		c.Ended, c.EndReason, c.EndDetail, c.CutBy = s.Clock.Now(), end.Reason, end.Detail, cutBy
		c.FramesSent, c.FramesDropped, c.Bytes = end.FramesSent, end.FramesDropped, end.Bytes
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end live call: %w", err)
	}
	s.noteEnded(c)
	s.endMovedIn(ctx, c, movedIn)
	// Recorded before a CutCall waiting on done returns.
	s.audit(ctx, c.CreatedBy, c)
	return c, nil
}

// endMovedIn sends the end of call c to the nodes moved into its areas
// while it was on air, on their own topics: a node hears its new area's
// live topic only once its desired state names the area, so one moved
// moments before the end missed the areas' end and held the call,
// suspended, for up to protocol.MaxLiveDuration. A node that had the end
// already ignores this one.
func (s *Service) endMovedIn(ctx context.Context, c *loaxa.LiveCall, nodes map[string]bool) {
	if s.Messenger == nil || len(nodes) == 0 {
		return
	}
	l := protocol.Live{Call: c.ID, Drill: c.Drill, Kind: protocol.LiveEnd}
	if c.EndReason == loaxa.LiveEndCut {
		l.Reason = protocol.LiveCut
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		if err := s.Messenger.SendNodeLive(ctx, n, l); err != nil {
			s.Logger.Error("live call: end not sent to a cluster moved into its areas; it gets it when it next comes online", "call", c.ID, "drill", c.Drill, "node", n, "err", err)
		}
	}
}

// audit records the end of call c by actor.
func (s *Service) audit(ctx context.Context, actor string, c *loaxa.LiveCall) {
	if s.Audit == nil {
		return
	}
	e := &loaxa.AuditEntry{At: c.Ended, Actor: actor, Action: AuditStop, Target: c.ID, Area: strings.Join(c.Areas, ","),
		Detail: fmt.Sprintf("drill=%t priority=%s title=%q frames=%d dropped=%d bytes=%d reason=%q cut_by=%q",
			c.Drill, c.Priority, c.Title, c.FramesSent, c.FramesDropped, c.Bytes, c.EndReason, c.CutBy)}
	if err := s.Audit.RecordAudit(ctx, e); err != nil {
		s.Logger.Error("audit: record failed", "action", AuditStop, "target", c.ID, "err", err)
	}
}

func (s *Service) end(ctx context.Context, id string, end loaxa.LiveCallEnd) {
	if _, err := s.EndCall(ctx, id, end); err != nil {
		s.Logger.Error("live call: end not recorded", "call", id, "err", err)
	}
}

// CutCall implements loaxa.LiveCallService.
func (s *Service) CutCall(ctx context.Context, id, by string) (*loaxa.LiveCall, error) {
	s.mu.Lock()
	r := s.calls[id]
	if r != nil && r.cutBy == "" {
		r.cutBy = by
		close(r.cut)
	}
	s.mu.Unlock()
	if r == nil {
		c, err := s.Store.FindLiveCallByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if !c.Active() {
			return nil, ended(c)
		}
		// On air in the store but not here: its runner is gone (cannot
		// happen after Open); close the record.
		s.Logger.Warn("live call cut with no runner; record closed", "call", id, "drill", c.Drill, "by", by)
		c, err = s.Store.UpdateLiveCall(ctx, id, func(c *loaxa.LiveCall) error {
			c.Ended, c.EndReason, c.CutBy = s.Clock.Now(), loaxa.LiveEndCut, by
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.noteEnded(c)
		s.audit(ctx, c.CreatedBy, c)
		return c, nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.FindLiveCallByID(ctx, id)
}

// ended is the error of acting on a call that is over.
func ended(c *loaxa.LiveCall) error {
	how := c.EndReason
	if c.CutBy != "" {
		how = "cut by " + c.CutBy
	}
	return loaxa.Errorf(loaxa.EConflict, "Live call %s is over: it ended at %s (%s); there is nothing to cut.",
		c.ID, c.Ended.In(vietnam).Format("15:04:05 02/01/2006"), how)
}

var vietnam = func() *time.Location {
	if l, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return l
	}
	return time.FixedZone("ICT", 7*3600)
}()

// LiveCallReport implements loaxa.LiveCallService: the call and every
// node's delivery, with offline pending nodes marked offline.
func (s *Service) LiveCallReport(ctx context.Context, id string) (*loaxa.LiveCallReport, error) {
	c, err := s.Store.FindLiveCallByID(ctx, id)
	if err != nil {
		return nil, err
	}
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
	if err != nil {
		return nil, fmt.Errorf("live call %s: deliveries: %w", id, err)
	}
	nodes, err := s.presence(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("live call %s: %w", id, err)
	}
	rep := &loaxa.LiveCallReport{LiveCall: c, Nodes: make([]loaxa.LiveNode, 0, len(ds)), Generated: s.Clock.Now()}
	slices.SortFunc(ds, func(a, b *loaxa.Delivery) int { return strings.Compare(a.Node, b.Node) })
	for _, d := range ds {
		n := liveNode(d, nodes[d.Node])
		rep.Summary.Add(n)
		rep.Nodes = append(rep.Nodes, n)
	}
	s.nameHolds(ctx, rep.Summary.HeldBy, map[string]loaxa.LiveHold{})
	return rep, nil
}

// LiveCallSummaries implements loaxa.LiveCallService: each call's summary
// as its report has it. A console watching the calls on air asks every
// 3 s: a call on air here is answered from its deliveries as last read,
// read again only after an event of the call was stored (Events) or a
// node joined it, and its pending nodes looked up online or offline from
// memory each time. Reading every delivery and node of a province-wide
// call cost each request 25–40 ms and 7 MB (BENCHMARKS.md).
func (s *Service) LiveCallSummaries(ctx context.Context, ids []string) (map[string]loaxa.LiveCallSummary, error) {
	out := make(map[string]loaxa.LiveCallSummary, len(ids))
	named := map[string]loaxa.LiveHold{}
	for _, id := range ids {
		t, err := s.tallyOf(ctx, id)
		if err != nil {
			return nil, err
		}
		sum, err := s.summary(ctx, t, named)
		if err != nil {
			return nil, fmt.Errorf("live call %s: %w", id, err)
		}
		out[id] = sum
	}
	return out, nil
}

// tallyOf returns call id's tally: a call on air here from memory unless
// its deliveries changed since it was read, any other read from the store.
func (s *Service) tallyOf(ctx context.Context, id string) (*tally, error) {
	s.mu.Lock()
	r := s.calls[id]
	var news uint64
	if r != nil {
		news = r.news
		if r.tally != nil && r.tallyNews == news {
			defer s.mu.Unlock()
			return r.tally, nil
		}
	}
	s.mu.Unlock()
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
	if err != nil {
		return nil, fmt.Errorf("live call %s: deliveries: %w", id, err)
	}
	t := &tally{named: map[string]loaxa.LiveHold{}}
	for _, d := range ds {
		if d.State == loaxa.DeliveryPending {
			t.pending = append(t.pending, d)
			continue
		}
		t.settled.Add(liveNode(d, loaxa.NodePresence{}))
	}
	s.nameHolds(ctx, t.settled.HeldBy, t.named)
	if r != nil {
		s.mu.Lock()
		// A read begun after more news than the one kept is newer; one
		// begun before news that came while it read is kept, and read
		// again next time.
		if r.tally == nil || news > r.tallyNews {
			r.tally, r.tallyNews = t, news
		}
		s.mu.Unlock()
	}
	return t, nil
}

// summary is t's summary with its pending nodes online or offline now.
// named holds the alerts already named in this listing (nameHolds).
func (s *Service) summary(ctx context.Context, t *tally, named map[string]loaxa.LiveHold) (loaxa.LiveCallSummary, error) {
	sum := t.settled
	sum.HeldBy = slices.Clone(sum.HeldBy) // t is shared
	if len(t.pending) > 0 {
		nodes, err := s.presence(ctx, t.pending)
		if err != nil {
			return loaxa.LiveCallSummary{}, err
		}
		for _, d := range t.pending {
			sum.Add(liveNode(d, nodes[d.Node]))
		}
	}
	maps.Copy(named, t.named)
	s.nameHolds(ctx, sum.HeldBy, named)
	return sum, nil
}

// nameHolds gives each of holds its alert's title and drill mark: an
// officer knows "Cảnh báo bão số 3", not e000012. named holds the alerts
// already looked up (by id, with only Title and Drill set), shared by the
// calls of one listing. An alert not found (removed, or a store that
// fails) keeps its id alone: the call's report is not refused for it.
// Only a lookup that answered is kept in named: one the store failed
// (a timeout) is tried again at the next summary, rather than leaving the
// bare id in the call's kept tally until its next event.
func (s *Service) nameHolds(ctx context.Context, holds []loaxa.LiveHold, named map[string]loaxa.LiveHold) {
	for i := range holds {
		h := &holds[i]
		n, ok := named[h.Alert]
		if !ok {
			var err error
			switch {
			case loaxa.IsEmergencyID(h.Alert) && s.Emergencies != nil:
				var em *loaxa.Emergency
				if em, err = s.Emergencies.FindEmergencyByID(ctx, h.Alert); err == nil {
					n.Title, n.Drill = em.Title, em.Drill
				}
			case loaxa.IsLiveCallID(h.Alert):
				var c *loaxa.LiveCall
				if c, err = s.Store.FindLiveCallByID(ctx, h.Alert); err == nil {
					n.Title, n.Drill = c.Title, c.Drill
				}
			}
			switch {
			case err == nil:
				named[h.Alert] = n
			case loaxa.ErrorCode(err) == loaxa.ENotFound:
				s.Logger.Warn("live call: the alert holding clusters back is not stored; named by its id", "alert", h.Alert)
				named[h.Alert] = n
			default:
				s.Logger.Warn("live call: the alert holding clusters back could not be read; named by its id until it can", "alert", h.Alert, "err", err)
			}
		}
		h.Title, h.Drill = n.Title, n.Drill
	}
}

// presence returns where the nodes of deliveries ds are and whether they
// are online, by id, from memory: no node record is read. A node removed
// since is absent.
func (s *Service) presence(ctx context.Context, ds []*loaxa.Delivery) (map[string]loaxa.NodePresence, error) {
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.Node)
	}
	nodes, err := s.Nodes.NodePresence(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	return nodes, nil
}

// liveNode is delivery d of a node at p (zero: removed since) in a call's
// report: a pending node that is offline is marked offline.
func liveNode(d *loaxa.Delivery, p loaxa.NodePresence) loaxa.LiveNode {
	ln := loaxa.LiveNode{
		Node: d.Node, State: string(d.State), Reason: d.Reason, LateMS: d.LateMS, PlayedMS: d.PlayedMS,
		FramesPlayed: d.FramesPlayed, FramesLost: d.FramesLost, FramesLate: d.FramesLate, HeldBy: d.HeldBy, Drill: d.Drill,
		Area: p.Area, Online: p.Online,
	}
	if d.State == loaxa.DeliveryPending && !ln.Online {
		ln.State = loaxa.EmergencyOffline
	}
	return ln
}

// Events takes node events as they are stored (wire it to the MQTT
// client's OnEvents and OnSalvaged): an event of a call on air that names
// the alert holding it back on node, or any later event of a node so held,
// has LiveCallHolds read the call's deliveries again. Reading them every
// second instead cost a province-wide call 7–8 MB and 80–250 ms a second
// (BENCHMARKS.md). Any event of a call on air has LiveCallSummaries read
// its deliveries again.
func (s *Service) Events(node string, events []protocol.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		r := s.calls[ev.Announcement]
		if r == nil {
			// The store moves the delivery the occurrence names.
			if r = s.calls[ev.Occurrence]; r == nil {
				continue
			}
		}
		r.news++ // the summary reads the deliveries again
		if ev.Type == protocol.EventPreempted {
			if r.preempted == nil {
				r.preempted = map[string]bool{}
			}
			r.preempted[node] = true
		}
		if ev.HeldBy != "" {
			if r.held == nil {
				r.held = map[string]bool{}
			}
			r.held[node] = true
		}
		if r.held[node] {
			r.stale = true
		}
	}
}

// LiveCallPreempted implements loaxa.LiveCallService, from memory: 0 and
// 0 for a call not on air here.
func (s *Service) LiveCallPreempted(ctx context.Context, id string) (preempted, nodes int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.calls[id]; r != nil {
		return len(r.preempted), r.call.Nodes + len(r.joined), nil
	}
	return 0, 0, nil
}

// LiveCallHolds implements loaxa.LiveCallService. A call not on air here
// is read from its deliveries.
func (s *Service) LiveCallHolds(ctx context.Context, id string) ([]loaxa.LiveHold, error) {
	s.mu.Lock()
	r := s.calls[id]
	if r != nil && !r.stale {
		defer s.mu.Unlock()
		return r.holds, nil
	}
	if r != nil {
		r.stale = false // an event from now on is read next time
	}
	s.mu.Unlock()
	holds, err := s.holdsOf(ctx, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == nil {
		return holds, err
	}
	if err != nil {
		r.stale = true
		return nil, err
	}
	r.holds = holds
	return holds, nil
}

// holdsOf reads the HeldBy of call id's summary from its deliveries (only
// the nodes a hold was reported on count there), each alert named.
func (s *Service) holdsOf(ctx context.Context, id string) ([]loaxa.LiveHold, error) {
	ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
	if err != nil {
		return nil, fmt.Errorf("live call %s: deliveries: %w", id, err)
	}
	var sum loaxa.LiveCallSummary
	for _, d := range ds {
		if d.HeldBy != "" {
			sum.Add(liveNode(d, loaxa.NodePresence{}))
		}
	}
	s.nameHolds(ctx, sum.HeldBy, map[string]loaxa.LiveHold{})
	return sum.HeldBy, nil
}

// FindLiveCallByID implements loaxa.LiveCallService.
func (s *Service) FindLiveCallByID(ctx context.Context, id string) (*loaxa.LiveCall, error) {
	return s.Store.FindLiveCallByID(ctx, id)
}

// FindLiveCalls implements loaxa.LiveCallService.
func (s *Service) FindLiveCalls(ctx context.Context, f loaxa.LiveCallFilter) ([]*loaxa.LiveCall, error) {
	return s.Store.FindLiveCalls(ctx, f)
}

// NodeMoved carries node's move from area from to area to (PATCH
// /nodes/{id}) to the calls on air; call it once the node is stored in
// to and the broker grants it to's topics. A call its new area hears (to
// lies in one of the call's areas) and it was not in: it is given its
// delivery and sent the start on its own cmd topic, as a board put up
// during the call (sendAgain's join), and plays from the frames that come
// once it hears its new area's live topic; offline, it gets the start
// when it comes online. A call it was in and its new area does not hear:
// it ends there, sent its end as cut, and is not sent the call's start
// again (NodeOnline). The broker no longer delivers it the call's frames,
// so the speaker of its old commune could not be heard on it anyway;
// before, it sat suspended waiting for them until the call's end, which
// it did not hear either, and coming online it was sent the start again.
// A call that reaches both areas (their district's) goes on as it was.
func (s *Service) NodeMoved(ctx context.Context, node, from, to string) error {
	if s.Tree == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, nodeSendTimeout)
	defer cancel()
	chain, err := s.Tree.AreaChain(ctx, to)
	if err != nil {
		return fmt.Errorf("live calls: node %s moved to %s: %w", node, to, err)
	}
	s.mu.Lock()
	calls := make([]loaxa.LiveCall, 0, len(s.calls))
	for _, r := range s.calls {
		calls = append(calls, r.call)
	}
	s.mu.Unlock()
	var errs []error
	for i := range calls {
		c := &calls[i]
		ds, err := s.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: c.ID, Node: node})
		if err != nil {
			errs = append(errs, fmt.Errorf("call %s: %w", c.ID, err))
			continue
		}
		hears := slices.ContainsFunc(c.Areas, func(a string) bool { return slices.Contains(chain, a) })
		switch {
		case hears && len(ds) == 0:
			if err := s.joinMoved(ctx, c, node, to); err != nil {
				errs = append(errs, err)
			}
		case hears && len(ds) > 0:
			// Moved back into the call's areas: what it had stays.
			s.mu.Lock()
			if r := s.calls[c.ID]; r != nil {
				delete(r.movedOut, node)
			}
			s.mu.Unlock()
		case !hears && len(ds) > 0 && !ds[0].State.Terminal():
			if err := s.leaveMoved(ctx, c, node, from, to); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("live calls: node %s moved to %s: %w", node, to, err)
	}
	return nil
}

// joinMoved gives node, just moved into area to, call c on air there:
// its delivery, and the start on its own topic.
func (s *Service) joinMoved(ctx context.Context, c *loaxa.LiveCall, node, to string) error {
	d := &loaxa.Delivery{Announcement: c.ID, Occurrence: c.ID, Node: node, Start: c.Started, Priority: c.Priority, Drill: c.Drill}
	if err := s.Deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{d}); err != nil {
		return fmt.Errorf("call %s: delivery of the moved node: %w", c.ID, err)
	}
	s.mu.Lock()
	r := s.calls[c.ID]
	if r != nil {
		r.news++ // its summary counts one node more
		if r.joined == nil {
			r.joined = map[string]bool{}
		}
		r.joined[node] = true
		if r.movedIn == nil {
			r.movedIn = map[string]bool{}
		}
		r.movedIn[node] = true
	}
	s.mu.Unlock()
	if r == nil {
		return nil // ended meanwhile
	}
	s.Logger.Info("live call: a cluster moved into an area the call is on air in joins it", "call", c.ID, "drill", c.Drill, "node", node, "area", to)
	if s.Messenger == nil {
		return nil
	}
	l := protocol.Live{Call: c.ID, Drill: c.Drill, Kind: protocol.LiveStart, Priority: c.Priority, Title: c.Title, Volume: c.Volume}
	if err := s.Messenger.SendNodeLive(ctx, node, l); err != nil {
		// It is sent again when it next comes online (NodeOnline).
		return fmt.Errorf("call %s: start to the moved node: %w", c.ID, err)
	}
	return nil
}

// leaveMoved ends call c, on air in the area node was moved out of, on
// node: the end as cut on its own topic, and no start again (NodeOnline).
// Its delivery may read pending while the node holds the call (its
// events not stored yet): the end goes whatever it reads; a node that
// does not hold the call ignores it.
func (s *Service) leaveMoved(ctx context.Context, c *loaxa.LiveCall, node, from, to string) error {
	s.mu.Lock()
	r := s.calls[c.ID]
	if r != nil {
		r.news++
		if r.movedOut == nil {
			r.movedOut = map[string]bool{}
		}
		r.movedOut[node] = true
	}
	s.mu.Unlock()
	if r == nil {
		return nil // ended meanwhile
	}
	s.Logger.Info("live call: a cluster moved out of the call's areas; the call ends on it", "call", c.ID, "drill", c.Drill, "node", node, "from", from, "to", to)
	if s.Messenger == nil {
		return nil
	}
	if err := s.Messenger.SendNodeLive(ctx, node, movedOutEnd(c)); err != nil {
		return fmt.Errorf("call %s: end to the moved node: %w", c.ID, err)
	}
	return nil
}

// movedOutEnd is the end of call c a node moved out of its areas is sent:
// cut, as by an officer, for it never hears the rest.
func movedOutEnd(c *loaxa.LiveCall) protocol.Live {
	return protocol.Live{Call: c.ID, Drill: c.Drill, Kind: protocol.LiveEnd, Reason: protocol.LiveCut}
}
