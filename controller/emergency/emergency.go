// Package emergency sends emergency announcements (phát khẩn cấp) and
// follows them node by node. It implements loaxa.EmergencyService.
//
// One signed alert command goes to the cmd topic of each targeted area,
// and the broker fans it out to every node below: one publish per area,
// not one per node. The alert names a start instant a short lead after it
// was issued, the same for the whole area, so that neighbouring clusters
// start together; the lead adapts to the fan-out measured on the area's
// last alert (lead.go). Nodes report the alert like any occurrence
// (received, content-ready, started with its lateness, completed or
// failed); those events move the alert's deliveries, and the service
// resends the alert on the node's own topic to online nodes that have not
// reported it received within AckBound (or twice the area's lead, if
// longer) plus the area's report window, up to MaxResends times, until it
// expires (resend.go). The nodes of a large area spread their reports of
// the alert over that window (spread.go), so that they do not compete
// with the fan-out. Resends
// wait while an area's receipts are still coming in, and at most
// ResendBatch go out per pass, so that they do not add to the load of a
// big area's own fan-out.
package emergency

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/gcpause"
	"loaxa.vn/protocol"
)

// Defaults of the Service's tunables.
const (
	DefaultAckBound    = 2 * time.Second
	DefaultMaxResends  = 3
	DefaultResendEvery = 250 * time.Millisecond
	DefaultResendQuiet = 500 * time.Millisecond
	DefaultResendBatch = 100
	// Gap is the silence between repeats of the message.
	Gap = time.Second
	// trackFor is how long after its expiry an emergency's in-memory
	// tracking (receive times, resends) is kept for reports.
	trackFor = time.Hour
)

// Service implements loaxa.EmergencyService. Set the fields, then call
// Open; Run resends until its context ends.
type Service struct {
	Store      loaxa.EmergencyStore
	Areas      loaxa.AreaService
	Nodes      loaxa.NodeService
	Contents   loaxa.ContentService
	Media      loaxa.MediaService
	Deliveries loaxa.DeliveryService
	// Alarms is the alarm history the report reads for the faults a node
	// played into (silenced_by); nil says none.
	Alarms    loaxa.AlarmService
	Messenger loaxa.AlertMessenger
	Clock     clock.Clock
	Logger    *slog.Logger

	// Lead bounds the start lead (lead.go).
	Lead Lead
	// Spread sets the window over which an area's nodes spread their
	// reports (spread.go); the zero value spreads nothing.
	Spread ReportSpread
	// AckBound is how long a node may take to report an alert received
	// before it is resent; MaxResends how often at most.
	AckBound    time.Duration
	MaxResends  int
	ResendEvery time.Duration
	// ResendQuiet: an area that reported a receipt less than this ago is
	// still receiving the publish, and its nodes are not resent to yet.
	// ResendBatch is the most resends (alerts and cancels) of one pass,
	// those sent to longest ago first.
	ResendQuiet time.Duration
	ResendBatch int
	// Probing sets how areas are probed before their first alert
	// (probe.go); the zero value never probes.
	Probing Probing

	mu      sync.Mutex
	opening *loaxa.Content
	closing *loaxa.Content
	live    map[string]*tracking // by emergency id
	fanout  map[string]*tracking // area → the tracking of its last alert
	// probes are the probes whose window is open, by id; probedArea the
	// newest closed one of each area.
	probes     map[string]*probe
	probedArea map[string]*probe
	watchers   map[string][]chan struct{} // by emergency id
	// allClearing are the alerts whose all-clear is being sent, so that
	// two at once (a double click, two officers) send one.
	allClearing map[string]bool
	// cutOffs are the active emergencies the controller stopped sending
	// (restore.go), by id: neither followed nor sent again, but closed at
	// their expiry as the tracked ones are (resend.go).
	cutOffs map[string]loaxa.Emergency
}

var _ loaxa.EmergencyService = (*Service)(nil)

// NewService returns a service with defaults.
func NewService() *Service {
	return &Service{
		Clock:       clock.Real{},
		Logger:      slog.New(slog.DiscardHandler),
		Lead:        DefaultLead,
		Spread:      DefaultReportSpread,
		AckBound:    DefaultAckBound,
		MaxResends:  DefaultMaxResends,
		ResendEvery: DefaultResendEvery,
		ResendQuiet: DefaultResendQuiet,
		ResendBatch: DefaultResendBatch,
		Probing:     DefaultProbing,
	}
}

// Open makes the chimes, so that the first alert does not wait for them,
// and takes up the emergencies a previous run left unfinished
// (restore.go).
func (s *Service) Open(ctx context.Context) error {
	if _, _, err := s.ensureChimes(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	if s.live == nil {
		s.live, s.fanout = map[string]*tracking{}, map[string]*tracking{}
	}
	s.mu.Unlock()
	return s.restore(ctx)
}

// tracking is what the service remembers of an emergency while nodes may
// still report it: who should have it, who said so, what was resent.
type tracking struct {
	em       loaxa.Emergency
	cmds     map[string]protocol.Command // area → its alert command
	issued   time.Time
	nodeArea map[string]string // node → the targeted area it is under
	// awaiting are the nodes of nodeArea that waited for their enrolment
	// code when the alert was sent: they have no delivery and are not
	// counted. One online has redeemed its code since: it is given its
	// delivery with its first resend (resend.go).
	awaiting map[string]bool
	// movedIn are the nodes of awaiting that were moved into one of the
	// alert's areas after it was sent (NodeMoved), for the log.
	movedIn  map[string]bool
	received map[string]time.Time // node → when it had the alert (its clock)
	// waiting are the nodes of nodeArea without a receipt: all a resend
	// pass looks at (a pass every 250 ms over every targeted node of a
	// 10,000-node area was a visible part of the controller's CPU).
	waiting map[string]bool
	// publishing: the area publishes are under way; the nodes have no
	// send time yet, and a resend pass leaves them alone.
	publishing bool
	sent       map[string]time.Time // node → last send
	resends    map[string]int
	// resentAt is when a node was first resent to: a receipt before it
	// came from the area publish.
	resentAt map[string]time.Time
	done     map[string]bool // node reported a final event
	// cancelled is when the emergency was cancelled; cancelSent and
	// cancelResends follow the cancel to nodes that had the alert.
	cancelled     time.Time
	cancelSent    map[string]time.Time
	cancelResends map[string]int
	// fanout are the receive delays of nodes that had the first publish,
	// per area, for the next alert's lead.
	fanout map[string][]time.Duration
	// lastReceipt is when (controller clock) a node of the area last
	// reported the alert for the first time: receipts still coming in hold
	// its resends.
	lastReceipt map[string]time.Time
	// closed: the expiry was noted in the store.
	closed bool
	// sending, if not nil, is closed once SendEmergency has stored the
	// alert as sent (its occurrence, its expiry): a cancel waits for it.
	sending chan struct{}
	// epochs are the outbox epochs of the nodes' reports of the alert: a
	// node that comes online with another started on a new store and no
	// longer holds the alert (Service.Epoch).
	epochs map[string]string
}

// receive notes when node had the alert.
func (t *tracking) receive(node string, at time.Time) {
	t.received[node] = at
	delete(t.waiting, node)
}

// wait makes every node of nodeArea without a receipt one to wait for.
func (t *tracking) wait() {
	t.waiting = make(map[string]bool, len(t.nodeArea)-len(t.received))
	for node := range t.nodeArea {
		if _, ok := t.received[node]; !ok {
			t.waiting[node] = true
		}
	}
}

// SendEmergency implements loaxa.EmergencyService.
func (s *Service) SendEmergency(ctx context.Context, req loaxa.EmergencyRequest) (*loaxa.Emergency, error) {
	em, follows, err := s.check(ctx, req)
	if err != nil {
		return nil, err
	}
	main, err := s.Contents.FindContentByID(ctx, em.ContentID)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.EInvalid, "content_id %q does not exist: upload it with POST /api/v1/content, or send text instead.", em.ContentID)
	} else if err != nil {
		return nil, fmt.Errorf("emergency: content %s: %w", em.ContentID, err)
	}
	var intro *loaxa.Content
	if em.IntroContentID != "" {
		intro, err = s.Contents.FindContentByID(ctx, em.IntroContentID)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return nil, loaxa.Errorf(loaxa.EInvalid, "intro_content_id %q does not exist: give the id of stored content (a recording kept on the clusters), or leave it out.", em.IntroContentID)
		} else if err != nil {
			return nil, fmt.Errorf("emergency: intro %s: %w", em.IntroContentID, err)
		}
	}
	opening, closing, err := s.ensureChimes(ctx)
	if err != nil {
		return nil, err
	}
	em.OpeningChime, em.ClosingChime = opening.ID, closing.ID
	em.PlannedMS = opening.DurationMS + closing.DurationMS + int64(em.Repeat)*main.DurationMS + int64(em.Repeat-1)*Gap.Milliseconds()
	if intro != nil {
		em.PlannedMS += intro.DurationMS
	}
	if em.Title == "" {
		em.Title = main.Title
	}
	if em.Drill && !strings.HasPrefix(em.Title, drillMark) {
		em.Title = drillMark + em.Title
	} else if !em.Drill {
		// Only drills carry the mark: a real alert whose title (or its
		// content's) begins with it would read as an exercise on the board,
		// in the reports and on the nodes. Taken out, not refused: a real
		// warning is not held up for its title.
		if t, ok := withoutDrillMark(em.Title); ok {
			s.Logger.Warn("emergency: a real alert's title began with the drill mark; taken out", "title", em.Title, "by", em.CreatedBy)
			em.Title = cmp.Or(t, main.Title)
			if t, ok := withoutDrillMark(em.Title); ok {
				em.Title = t
			}
		}
	}

	if follows != nil {
		release, err := s.claimAllClear(ctx, follows.ID)
		if err != nil {
			return nil, err
		}
		defer release()
		// The alert it follows stops first if it still plays: only now,
		// with the all-clear's request found good, so that a refused one
		// leaves the warning sounding. A cancel stored but not published
		// (the broker away) follows the nodes once the broker is back, as
		// the all-clear does.
		if _, err := s.CancelEmergency(ctx, follows.ID, req.CreatedBy); err != nil &&
			loaxa.ErrorCode(err) != loaxa.EConflict && loaxa.ErrorCode(err) != loaxa.EUnavailable {
			return nil, err
		}
	}

	// Who is targeted, area by area: the enrolled nodes. One still
	// waiting for its code is a pole not put up yet: counted and given a
	// delivery, it read as offline, then not reached, and 200 codes issued
	// ahead made "200 offline" on typhoon day, dead clusters and clusters
	// not installed alike. It is followed all the same (awaiting): one
	// that comes online has redeemed its code, and the resends give it
	// the warning still in force, as to a node back online.
	nodeArea := map[string]string{}
	awaiting := map[string]bool{}
	var nodes []string
	for _, area := range em.Targets {
		ids, err := s.Nodes.NodeIDsWithin(ctx, area)
		if err != nil {
			return nil, fmt.Errorf("emergency: nodes of %s: %w", area, err)
		}
		presence, err := s.Nodes.NodePresence(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("emergency: nodes of %s: %w", area, err)
		}
		a := loaxa.EmergencyArea{Area: area}
		for _, id := range ids {
			p, ok := presence[id]
			if !ok {
				continue // removed meanwhile
			}
			nodeArea[id] = area
			if p.EnrolledAt.IsZero() {
				awaiting[id] = true
				a.AwaitingEnrolment++
				continue
			}
			nodes = append(nodes, id)
			a.Nodes++
		}
		em.Areas = append(em.Areas, a)
	}
	// Each area's lead, before anything is stored: an expiry before the
	// alert could start is refused with nothing left behind.
	var maxLead time.Duration
	for i := range em.Areas {
		a := &em.Areas[i]
		lead, from := s.lead(a.Area, a.Nodes)
		a.LeadMS, a.LeadFrom = lead.Milliseconds(), from
		a.ReportWindowMS = s.Spread.Window(a.Nodes).Milliseconds()
		maxLead = max(maxLead, lead)
	}
	tooSoon := func(latest time.Time) error {
		return loaxa.Errorf(loaxa.EInvalid, "expires %s is before the alert could start (%s); give a later time or leave it out.",
			em.Expires.Format(time.RFC3339), latest.Format(time.RFC3339Nano))
	}
	explicit := !em.Expires.IsZero()
	now := s.Clock.Now()
	if explicit && !em.Expires.After(now.Add(maxLead)) {
		return nil, tooSoon(now.Add(maxLead))
	}
	// Until the publish returns, the record says it is being issued now,
	// active until about then: listed, it reads as the live alert it is,
	// and a cancel waits for the publish (CancelEmergency).
	em.Issued = now
	if !explicit {
		em.Expires = now.Add(maxLead + time.Duration(em.PlannedMS)*time.Millisecond + loaxa.DefaultEmergencyWindow)
	}
	if err := s.Store.CreateEmergency(ctx, em); err != nil {
		return nil, err
	}
	log := s.Logger.With("emergency", em.ID, "kind", em.Kind, "drill", em.Drill)

	// The issue instant is taken after the store work, so that the lead
	// is all the nodes' own.
	issued := s.Clock.Now()
	em.Issued = issued
	em.Occurrence = loaxa.OccurrenceID(em.ID, issued)
	var latest time.Time
	for i := range em.Areas {
		a := &em.Areas[i]
		a.Start = issued.Add(time.Duration(a.LeadMS) * time.Millisecond)
		if a.Start.After(latest) {
			latest = a.Start
		}
	}
	if !explicit {
		em.Expires = latest.Add(time.Duration(em.PlannedMS)*time.Millisecond + loaxa.DefaultEmergencyWindow)
	} else if !em.Expires.After(latest) {
		// Within the store's milliseconds of the check above: closed, so
		// that it is not listed as a live alert that never went out.
		if _, err := s.Store.UpdateEmergency(ctx, em.ID, func(e *loaxa.Emergency) error {
			e.State = loaxa.EmergencyExpired
			return nil
		}); err != nil {
			log.Error("emergency: refused alert not closed", "err", err)
		}
		return nil, tooSoon(latest)
	}
	refs := alertContent(opening, closing, main, intro)
	t := &tracking{
		cmds: map[string]protocol.Command{}, issued: issued, nodeArea: nodeArea, awaiting: awaiting,
		received: map[string]time.Time{}, sent: map[string]time.Time{}, resends: map[string]int{}, epochs: map[string]string{},
		resentAt: map[string]time.Time{}, done: map[string]bool{}, fanout: map[string][]time.Duration{},
		cancelSent: map[string]time.Time{}, cancelResends: map[string]int{}, lastReceipt: map[string]time.Time{},
	}
	t.wait()
	starts := map[string]time.Time{}
	for _, a := range em.Areas {
		starts[a.Area] = a.Start
		t.cmds[a.Area] = alertCommand(em, a, main, refs)
	}
	ds := make([]*loaxa.Delivery, 0, len(nodes))
	for _, id := range nodes {
		ds = append(ds, plannedDelivery(em, id, starts[nodeArea[id]], issued))
	}
	// A copy with its own areas: the publishers below write em.Areas
	// without the lock while resend reads t.em.Areas under it.
	t.em = *em
	t.em.Areas = slices.Clone(em.Areas)
	// Until the publishes return, a node without a send time is one the
	// publish has not reached yet, not one it failed to reach: a resend
	// pass in that window resent to a batch of nodes the publish was
	// bringing the alert to anyway (a pass every 250 ms, a publish of
	// 1–2 s to 10,000 nodes in the benchmark: a batch of 100 spurious
	// resends nearly every round).
	t.publishing = true
	t.sending = make(chan struct{})
	defer close(t.sending) // once the record has its occurrence and expiry
	s.mu.Lock()
	if s.live == nil {
		s.live, s.fanout = map[string]*tracking{}, map[string]*tracking{}
	}
	s.live[em.ID] = t
	s.mu.Unlock()

	// Beside the publish, the record notes what is published: a
	// controller stopped before the alert is recorded as sent knows from
	// it that the alert may have gone out, and what a cancel must name
	// (restore.go). One small record: the alert does not wait for it.
	marked := make(chan error, 1)
	occ := em.Occurrence
	go func() {
		_, err := s.Store.UpdateEmergency(ctx, em.ID, func(e *loaxa.Emergency) error {
			e.Publishing = occ
			return nil
		})
		marked <- err
	}()

	// No new collection cycle while the broker fans the alert out, until
	// the nodes are to start it, at most the longest default lead
	// (gcpause; BENCHMARKS.md, "The alert's fan-out and the collector").
	gcpause.For(min(max(latest.Sub(s.Clock.Now()), 0), DefaultLead.Max))

	// One publish per area, all at once.
	ttl := em.Expires.Sub(s.Clock.Now())
	var wg sync.WaitGroup
	for i := range em.Areas {
		wg.Add(1)
		go func(a *loaxa.EmergencyArea) {
			defer wg.Done()
			err := s.Messenger.SendAreaCommand(ctx, a.Area, t.cmds[a.Area], ttl)
			if err != nil {
				a.Error = err.Error()
				log.Error("emergency: publish failed", "area", a.Area, "err", err)
				return
			}
			a.PublishedAt = s.Clock.Now()
		}(&em.Areas[i])
	}
	wg.Wait()
	if err := <-marked; err != nil {
		log.Error("emergency: what is published not noted; a controller stopped before the alert is recorded as sent takes it for one that did not go out unless a cluster reports it",
			"occurrence", em.Occurrence, "err", err)
	}
	// The deliveries (the plan) are stored once the broker has written
	// the alert out to the areas' nodes, or at the latest start: at 10,000
	// nodes that store takes about 0.1 s of CPU, which beside the broker's
	// writes made the last nodes' copies later (BENCHMARKS.md, "The plan
	// stored after the fan-out"). Storing it before the publish would
	// make every node wait for it. A node that reports the alert before
	// its delivery is stored makes an Unplanned one, which
	// EnsureDeliveries completes with the plan (its start instant, level
	// and drill mark).
	if w, ok := s.Messenger.(FanoutAwaiter); ok {
		w.AwaitFanout(ctx, max(latest.Sub(s.Clock.Now()), 0))
	}
	if err := s.Deliveries.EnsureDeliveries(ctx, ds); err != nil {
		// The alert is out: what is lost is the record of the nodes that
		// never report it, not the warning.
		log.Error("emergency: deliveries not stored; the nodes that report the alert get one from their report", "nodes", len(ds), "err", err)
	}
	s.mu.Lock()
	for node, area := range nodeArea {
		for _, a := range em.Areas {
			if a.Area == area && a.Error == "" {
				t.sent[node] = issued
			}
		}
	}
	t.publishing = false
	t.em = *em
	t.em.Areas = slices.Clone(em.Areas)
	for _, a := range em.Areas {
		s.fanout[a.Area] = t
	}
	s.mu.Unlock()
	stored, err := s.Store.UpdateEmergency(ctx, em.ID, func(e *loaxa.Emergency) error {
		areas, state := em.Areas, e.State
		*e = *em
		e.Areas, e.State = areas, state
		return nil
	})
	if err != nil {
		return nil, err
	}
	if follows != nil {
		if _, err := s.Store.UpdateEmergency(ctx, follows.ID, func(e *loaxa.Emergency) error {
			e.AllClear = em.ID
			return nil
		}); err != nil {
			log.Error("emergency: all-clear not noted on what it follows", "follows", follows.ID, "err", err)
		}
	}
	published := 0
	for _, a := range em.Areas {
		if a.Error == "" {
			published++
		}
	}
	log.Warn("emergency: sent", "title", em.Title, "targets", em.Targets, "nodes", len(nodes), "awaiting_enrolment", len(awaiting),
		"published", published, "occurrence", em.Occurrence, "expires", em.Expires, "by", em.CreatedBy)
	if published == 0 && len(em.Areas) > 0 {
		// Nothing left the controller: resends to single nodes still try,
		// but the operator must know at once.
		return stored, loaxa.Errorf(loaxa.EUnavailable, "Emergency %s could not be published (the broker did not take it): %s. Nodes are retried one by one until it expires; check the broker.", em.ID, em.Areas[0].Error)
	}
	return stored, nil
}

// A FanoutAwaiter is a messenger that can tell when the broker has written
// what it was handed to the subscribers (controller/mqtt's Client with the
// embedded broker): it waits until then, at most limit.
type FanoutAwaiter interface {
	AwaitFanout(ctx context.Context, limit time.Duration)
}

// plannedDelivery is the delivery of em's alert to node, which starts at
// start, as planned at.
func plannedDelivery(em *loaxa.Emergency, node string, start, at time.Time) *loaxa.Delivery {
	return &loaxa.Delivery{Announcement: em.ID, Occurrence: em.Occurrence, Node: node, Start: start,
		State: loaxa.DeliveryPending, Priority: protocol.PriorityEmergency, PlannedMS: em.PlannedMS, Drill: em.Drill, UpdatedAt: at}
}

// claimAllClear claims the sending of the all-clear of emergency id: an
// error if one is being sent or was sent. release ends the claim (once
// the all-clear is noted on id, or it failed).
func (s *Service) claimAllClear(ctx context.Context, id string) (release func(), err error) {
	s.mu.Lock()
	if s.allClearing[id] {
		s.mu.Unlock()
		return nil, &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonAllClearSent, Message: fmt.Sprintf("The all-clear for %s is being sent already.", id)}
	}
	if s.allClearing == nil {
		s.allClearing = map[string]bool{}
	}
	s.allClearing[id] = true
	s.mu.Unlock()
	release = func() {
		s.mu.Lock()
		delete(s.allClearing, id)
		s.mu.Unlock()
	}
	f, err := s.Store.FindEmergencyByID(ctx, id)
	if err != nil {
		release()
		return nil, err
	}
	if f.AllClear != "" {
		release()
		return nil, &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonAllClearSent, Message: fmt.Sprintf("The all-clear for %s was sent already: %s.", id, f.AllClear)}
	}
	return release, nil
}

// alertContent is what an alert's nodes fetch: the chimes first (they are
// short), the intro (nil: none) and then the message.
func alertContent(opening, closing, main, intro *loaxa.Content) []protocol.ContentRef {
	refs := []protocol.ContentRef{ref(opening), ref(closing)}
	if intro != nil {
		refs = append(refs, ref(intro))
	}
	return append(refs, ref(main))
}

// alertCommand is the alert of em for area a: its nodes start at its
// start and spread their reports over its window.
func alertCommand(em *loaxa.Emergency, a loaxa.EmergencyArea, main *loaxa.Content, refs []protocol.ContentRef) protocol.Command {
	start := a.Start
	return protocol.Command{Name: protocol.CmdAlert, Alert: &protocol.Alert{
		ReportWindowMS: a.ReportWindowMS,
		Occurrence: protocol.Occurrence{
			ID: em.Occurrence, Announcement: em.ID, Title: em.Title, Content: main.ID,
			Priority: protocol.PriorityEmergency, Start: start.UTC(), DurationMS: main.DurationMS,
			Repeat: em.Repeat, GapMS: Gap.Milliseconds(), OpeningChime: em.OpeningChime, ClosingChime: em.ClosingChime,
			Intro: em.IntroContentID,
			// Nothing is above an emergency, so only the node's agent
			// stopping (a restart, a power cut) cuts an alert off: it then
			// plays again from the beginning until it expires. What the
			// alert cut off plays again after it by its own policy.
			OnPreempt: protocol.PreemptResume, Expires: em.Expires.UTC(), Volume: em.Volume, Drill: em.Drill,
		},
		Content: refs,
	}}
}

// drillMark starts the title of every drill, in the language the officers
// read, so that no one mistakes it for a real alert.
const drillMark = "[DIỄN TẬP] "

// withoutDrillMark returns title without the drill mark (in any case, as
// often as it is repeated) and whether it had it.
func withoutDrillMark(title string) (string, bool) {
	mark := strings.TrimSpace(drillMark)
	runes := utf8.RuneCountInString(mark)
	had := false
	for {
		t := strings.TrimSpace(title)
		end := 0
		for range runes {
			_, size := utf8.DecodeRuneInString(t[end:])
			end += size
		}
		if !strings.EqualFold(t[:end], mark) {
			return t, had
		}
		title, had = t[end:], true
	}
}

func ref(c *loaxa.Content) protocol.ContentRef {
	return protocol.ContentRef{ID: c.ID, Size: c.Size, DurationMS: c.DurationMS, Path: "/api/v1/content/" + c.ID + "/audio", Chunks: c.Chunks}
}

// check validates req and returns the emergency to send (without id or
// times), and for an all-clear the emergency it follows.
func (s *Service) check(ctx context.Context, req loaxa.EmergencyRequest) (*loaxa.Emergency, *loaxa.Emergency, error) {
	em := &loaxa.Emergency{
		Kind: req.Kind, Title: strings.TrimSpace(req.Title), ContentID: req.ContentID, Text: req.Text, IntroContentID: req.IntroContentID,
		Repeat: req.Repeat, Volume: req.Volume, Drill: req.Drill, Expires: req.Expires,
		State: loaxa.EmergencyActive, CreatedBy: req.CreatedBy,
	}
	var follows *loaxa.Emergency
	targets := req.Targets
	switch em.Kind {
	case "", loaxa.EmergencyAlert:
		em.Kind = loaxa.EmergencyAlert
		if req.Follows != "" {
			return nil, nil, loaxa.Errorf(loaxa.EInvalid, "Only an all-clear follows another emergency; send it with POST /api/v1/emergency/%s/all-clear.", req.Follows)
		}
		if em.Repeat == 0 {
			em.Repeat = loaxa.DefaultEmergencyRepeat
		}
	case loaxa.EmergencyAllClear:
		f, err := s.Store.FindEmergencyByID(ctx, req.Follows)
		if err != nil {
			return nil, nil, err
		}
		follows = f
		em.Follows, em.Drill = f.ID, f.Drill // a drill's all-clear is a drill too
		if len(targets) == 0 {
			targets = f.Targets
		}
		if em.Repeat == 0 {
			em.Repeat = 1
		}
	default:
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "kind %q: use %q or %q.", em.Kind, loaxa.EmergencyAlert, loaxa.EmergencyAllClear)
	}
	if em.Repeat < 1 || em.Repeat > protocol.MaxRepeat {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "repeat %d: give 1 to %d (default %d).", em.Repeat, protocol.MaxRepeat, loaxa.DefaultEmergencyRepeat)
	}
	if em.Volume == 0 {
		em.Volume = protocol.MaxVolume
	}
	if em.Volume < 1 || em.Volume > protocol.MaxVolume {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "volume %d: give 1 to %d (%d, the default, is full volume).", req.Volume, protocol.MaxVolume, protocol.MaxVolume)
	}
	if em.ContentID == "" {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "Give content_id (uploaded audio) or text (read out by text-to-speech).")
	}
	now := s.Clock.Now()
	if !em.Expires.IsZero() && (!em.Expires.After(now) || em.Expires.Sub(now) > loaxa.MaxEmergencyWindow) {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "expires %s: give a time in the next %v, or leave it out.", em.Expires.Format(time.RFC3339), loaxa.MaxEmergencyWindow)
	}
	folded, err := s.fold(ctx, targets)
	if err != nil {
		return nil, nil, err
	}
	em.Targets = folded
	return em, follows, nil
}

// fold checks the target areas and drops those inside another target, so
// that no node gets the alert twice.
func (s *Service) fold(ctx context.Context, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, loaxa.Errorf(loaxa.EInvalid, "targets is empty: name the areas to alert, e.g. {\"targets\": [\"31\"]}.")
	}
	out, err := loaxa.FoldAreas(ctx, s.Areas, targets)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Target area %s does not exist; list areas with GET /api/v1/areas.", strings.TrimPrefix(loaxa.ErrorMessage(err), "area "))
	} else if err != nil {
		return nil, fmt.Errorf("emergency: %w", err)
	}
	return out, nil
}

// CancelEmergency implements loaxa.EmergencyService. An alert still being
// published (listed from the moment it is stored) is cancelled once the
// publish returns, within the messenger's bound, and its plan is stored:
// the cancel must name the occurrence the nodes were sent.
func (s *Service) CancelEmergency(ctx context.Context, id, by string) (*loaxa.Emergency, error) {
	s.mu.Lock()
	t := s.live[id]
	s.mu.Unlock()
	if t != nil && t.sending != nil {
		select {
		case <-t.sending:
		case <-ctx.Done():
			return nil, fmt.Errorf("emergency %s: cancel while it is published: %w", id, ctx.Err())
		}
	}
	// One the controller stopped sending (restore.go, closeUnsent) is not
	// tracked, and its record may not name what its clusters were sent:
	// what it noted beside the publish does, or its deliveries, so that
	// the cancel names it.
	var found string
	if t == nil {
		em, err := s.Store.FindEmergencyByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if em.Occurrence == "" && em.State != loaxa.EmergencyCancelled && s.Clock.Now().Before(em.Expires) {
			if found, err = s.sentOccurrence(ctx, em); err != nil {
				return nil, fmt.Errorf("emergency %s: cancel: %w", id, err)
			}
			if found == "" {
				return nil, loaxa.Errorf(loaxa.EConflict, "Emergency %s was cut off while it was sent (the controller stopped), and nothing says what its clusters were sent: no cluster has reported it. If a cluster sounds it, cancel again once its report has come.", id)
			}
		}
	}
	now := s.Clock.Now()
	em, err := s.Store.UpdateEmergency(ctx, id, func(e *loaxa.Emergency) error {
		switch {
		case e.State == loaxa.EmergencyCancelled:
			err := loaxa.Errorf(loaxa.EConflict, "Emergency %s was cancelled already, by %s at %s.", e.ID, e.CancelledBy, e.CancelledAt.Format(time.RFC3339))
			err.Reason = loaxa.ReasonEmergencyStopped
			return err
		case !now.Before(e.Expires):
			err := loaxa.Errorf(loaxa.EConflict, "Emergency %s expired at %s; no node starts it any more.", e.ID, e.Expires.Format(time.RFC3339))
			err.Reason = loaxa.ReasonEmergencyExpired
			return err
		}
		if e.Occurrence == "" && found != "" {
			e.Occurrence, e.Issued = found, loaxa.OccurrenceTime(found)
		}
		e.State, e.CancelledAt, e.CancelledBy = loaxa.EmergencyCancelled, now, by
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	t = s.live[id]
	if t != nil {
		t.em.State, t.cancelled = loaxa.EmergencyCancelled, now
	}
	delete(s.cutOffs, id) // cancelled: it does not expire
	s.mu.Unlock()
	if t == nil && em.Occurrence != "" {
		// Taken up, so that the cancel follows the clusters that had the
		// alert (their reports may come only now) as any cancel does.
		s.takeUp(ctx, em)
	}
	cmd := protocol.Command{Name: protocol.CmdAlertCancel, Occurrence: em.Occurrence}
	ttl := max(em.Expires.Sub(now), time.Second)
	var errs []error
	for _, a := range em.Areas {
		if err := s.Messenger.SendAreaCommand(ctx, a.Area, cmd, ttl); err != nil {
			errs = append(errs, fmt.Errorf("area %s: %w", a.Area, err))
		}
	}
	s.notify(id)
	s.Logger.Warn("emergency: cancelled", "emergency", id, "drill", em.Drill, "by", by, "failed_areas", len(errs))
	if err := errors.Join(errs...); err != nil {
		return em, loaxa.Errorf(loaxa.EUnavailable, "Emergency %s is cancelled, but the broker did not take the cancel for every area (%v); nodes that play it go on until it ends.", id, err)
	}
	return em, nil
}

// FindEmergencies implements loaxa.EmergencyService.
func (s *Service) FindEmergencies(ctx context.Context, limit int) ([]*loaxa.Emergency, error) {
	ems, err := s.Store.FindEmergencies(ctx, limit)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	for _, e := range ems {
		expire(e, now)
	}
	return ems, nil
}

// expire shows an active emergency past its expiry as expired.
func expire(e *loaxa.Emergency, now time.Time) {
	if e.State == loaxa.EmergencyActive && !now.Before(e.Expires) {
		e.State = loaxa.EmergencyExpired
	}
}

// WatchEmergency implements loaxa.EmergencyService.
func (s *Service) WatchEmergency(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.watchers == nil {
		s.watchers = map[string][]chan struct{}{}
	}
	s.watchers[id] = append(s.watchers[id], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.watchers[id] = slices.DeleteFunc(s.watchers[id], func(c chan struct{}) bool { return c == ch })
		if len(s.watchers[id]) == 0 {
			delete(s.watchers, id)
		}
	}
}

func (s *Service) notify(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.watchers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Events takes node events as they are stored, with the node's outbox
// epoch (wire it to the MQTT client's OnEvents): it notes when each node
// had an alert, which feeds the next lead and stops resends, and tells
// the watchers.
func (s *Service) Events(node, epoch string, events []protocol.Event) {
	var changed []string
	now := s.Clock.Now()
	s.mu.Lock()
	for _, ev := range events {
		id, _, ok := strings.Cut(ev.Occurrence, "@")
		if !ok || !loaxa.IsEmergencyID(id) {
			continue
		}
		t := s.live[id]
		if t == nil || t.em.Occurrence != ev.Occurrence {
			continue
		}
		if !slices.Contains(changed, id) {
			changed = append(changed, id)
		}
		if epoch != "" {
			if t.epochs == nil { // a tracking made by hand (tests)
				t.epochs = map[string]string{}
			}
			t.epochs[node] = epoch
		}
		if _, had := t.received[node]; !had {
			// A receipt of the area publish (not of a resend: see below,
			// though one that arrives after the node was resent to may
			// still be the publish's): the publish is still reaching the
			// area.
			if first, resent := t.resentAt[node]; !resent || ev.At.Before(first) {
				if area, ok := t.nodeArea[node]; ok {
					if t.lastReceipt == nil {
						t.lastReceipt = map[string]time.Time{}
					}
					t.lastReceipt[area] = now
				}
			}
		}
		switch ev.Type {
		case protocol.EventReceived:
			if _, dup := t.received[node]; dup {
				continue
			}
			t.receive(node, ev.At)
			delay := ev.At.Sub(t.issued)
			// Only deliveries of the area publish measure the fan-out; a
			// resend's arrival says more about the node's link. The node's
			// clock is corrected to the controller's, so its time is
			// compared with the controller's resend time.
			first, resent := t.resentAt[node]
			if area, ok := t.nodeArea[node]; ok && (!resent || ev.At.Before(first)) {
				t.fanout[area] = append(t.fanout[area], max(delay, 0))
			}
		case protocol.EventStarted, protocol.EventContentReady, protocol.EventSuspended:
			if _, ok := t.received[node]; !ok {
				t.receive(node, ev.At) // the received event may be in a later batch
			}
		case protocol.EventCompleted, protocol.EventFailed, protocol.EventMissed, protocol.EventPreempted:
			t.done[node] = true
			if _, ok := t.received[node]; !ok {
				t.receive(node, ev.At)
			}
		}
	}
	s.mu.Unlock()
	for _, id := range changed {
		s.notify(id)
	}
}

// Salvaged takes the events a node read back from its damaged store, as
// they are stored (protocol.EventBatch.Salvaged; wire it to the MQTT
// client's OnSalvaged). Only an alert's end counts: the node finished the
// alert before its store was lost, and it keeps the mark of that, so a
// copy sent again would play nothing; it is not waited for any more.
// That it had received or begun an alert says nothing of now: it lost
// the alert with its store, and Epoch has it sent again.
func (s *Service) Salvaged(node string, events []protocol.Event) {
	var changed []string
	s.mu.Lock()
	for _, ev := range events {
		switch ev.Type {
		case protocol.EventCompleted, protocol.EventFailed, protocol.EventMissed, protocol.EventPreempted:
		default:
			continue
		}
		id, _, ok := strings.Cut(ev.Occurrence, "@")
		if !ok || !loaxa.IsEmergencyID(id) {
			continue
		}
		t := s.live[id]
		if t == nil || t.em.Occurrence != ev.Occurrence || t.done[node] {
			continue
		}
		t.done[node] = true
		if _, ok := t.received[node]; !ok {
			t.receive(node, ev.At)
		}
		if !slices.Contains(changed, id) {
			changed = append(changed, id)
		}
	}
	s.mu.Unlock()
	for _, id := range changed {
		s.notify(id)
	}
}

// Epoch takes the outbox epoch of a node's state as it comes online (wire
// it to the MQTT client's OnEpoch). A node that reported a live alert
// from another epoch and has not ended it started on a new store since:
// its old one was damaged (a power cut on a card that does not keep its
// writes, the moment a storm makes likely) and set aside, or the board was
// replaced. It no longer holds the alert, so it waits for it again like a
// node that never had it, and the next resend pass sends it (a node that
// still holds an alert ignores a copy).
func (s *Service) Epoch(node, epoch string) {
	var forgot, occurrences []string
	var drills []bool
	s.mu.Lock()
	for id, t := range s.live {
		old, ok := t.epochs[node]
		if !ok || old == epoch || t.done[node] || t.em.State != loaxa.EmergencyActive {
			continue
		}
		t.epochs[node] = epoch
		delete(t.received, node)
		t.waiting[node] = true
		t.resends[node] = 0
		forgot, occurrences, drills = append(forgot, id), append(occurrences, t.em.Occurrence), append(drills, t.em.Drill)
	}
	s.mu.Unlock()
	for i, id := range forgot {
		s.Logger.Warn("emergency: a node that had the alert started on a new store and no longer holds it; sending it again",
			"emergency", id, "drill", drills[i], "node", node, "epoch", epoch)
		// Its board says the play was cut off, not that it sounds.
		if err := s.Deliveries.NoteLost(context.Background(), occurrences[i], node, s.Clock.Now()); err != nil {
			s.Logger.Error("emergency: a node's lost alert not noted", "emergency", id, "drill", drills[i], "node", node, "err", err)
		}
		s.notify(id)
	}
}
