package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// compilation holds what one pass reads once for all nodes, and the
// expansions it has made, so that thousands of nodes sharing a time zone
// expand each announcement once.
type compilation struct {
	// keys are the controller keys every desired state lists (KeyService).
	keys     []protocol.PublicKey
	now      time.Time
	parent   map[string]string
	name     map[string]string // area id → its name, to say who sent a bulletin
	zone     map[string]string // area id → its own TimeZone ("" inherits)
	contents map[string]*loaxa.Content
	anns     []*loaxa.Announcement // active
	// placed are the active announcements and those cancelled within
	// cancelledKept, whose slots in a session already under way stay
	// (see pack).
	placed   []*loaxa.Announcement
	sessions map[string][]*loaxa.Session // by area
	session  map[string]*loaxa.Session   // by id
	// holidays: area ("" global) → date → the holidays on it, standing
	// and deleted within loaxa.HolidayDeletedKept (see holidayState).
	holidays map[string]map[string][]*loaxa.Holiday
	// proposals: announcement → station area → proposal
	proposals map[string]map[string]*loaxa.Proposal
	// longest is the longest planned occurrence, for how far back the
	// desired state keeps occurrences that may still be playing.
	longest time.Duration
	// standing and always are the content nodes keep at all times
	// (Scheduler.StandingService, Scheduler.AlwaysContent).
	standing []*loaxa.StandingContent
	always   []string
	// refused is the pass's first publish the broker did not accept: the
	// pass tries no more (see publishIn).
	refused error
	// changed counts the nodes whose new desired state a pass stored, and
	// changedFirst names the first few, for the pass's one log line.
	changed      int
	changedFirst []string
	// leaveOut: a pass leaves a bulletin that cannot be scheduled out of
	// a node's programme, adding it to leftOut, rather than failing the
	// node's whole schedule (docs/scheduling.md); a programme shown or
	// checked fails with it, so the officer is told which.
	leaveOut bool
	leftOut  []*loaxa.UnplayableError
	// unfinished: the last node's compile stopped before it had placed
	// every bulletin (an error other than a bulletin's own, or a panic),
	// so the bulletins it did not meet are not known to be schedulable
	// for it (see CompileAll).
	unfinished bool
	// view compiles the programme shown for a span (NodeProgramme,
	// AreaProgramme), not one sent to nodes: the plays of announcements
	// cancelled since that had begun by then are in it, as planned that
	// day (see newView).
	view bool

	expanded  map[spanKey][]time.Time        // an announcement's starts in a zone and window
	instances map[spanKey][]loaxa.SessionRun // a session's instances in a zone and window
	locs      map[string]*time.Location
	// refusedZones are the zones that failed to load, by the area that
	// sets them: loading one again read the zone files for every node of
	// the area (165 ms a pass of 5,000 nodes).
	refusedZones map[string]error
}

// cancelledKept is how long after its cancellation an announcement still
// holds its slots in sessions that were under way: longer than any session
// instance and the days the desired state keeps behind now, and the week
// of a programme looked at from today.
const cancelledKept = 8 * 24 * time.Hour

// newCompilation reads areas, announcements, sessions, holidays and
// proposals. extra, if not nil, is compiled as if it were stored now (for
// conflict checks before creating it).
func (s *Scheduler) newCompilation(ctx context.Context, extra *loaxa.Announcement) (*compilation, error) {
	return s.compilationSince(ctx, extra, time.Time{})
}

// newView returns the compilation of the programme shown from from on: a
// past day's shows what was planned that day. So it reads the
// announcements cancelled, and the holidays deleted, since from's week as
// well as in the last cancelledKept (whose slots a pass keeps), and plan
// shows a cancelled announcement's plays that began before it was
// cancelled: they were on that day's programme, and their deliveries say
// how they went. Before, a bulletin cancelled since was missing from
// every day it had played, and a day whose holiday was deleted more than
// 8 days later showed the bulletins the holiday had kept off the air.
func (s *Scheduler) newView(ctx context.Context, from time.Time) (*compilation, error) {
	c, err := s.compilationSince(ctx, nil, from.Add(-cancelledKept))
	if err != nil {
		return nil, err
	}
	c.view = true
	return c, nil
}

// compilationSince is newCompilation, reading also the announcements
// cancelled and the holidays deleted since since, if that is before the
// last cancelledKept and loaxa.HolidayDeletedKept.
func (s *Scheduler) compilationSince(ctx context.Context, extra *loaxa.Announcement, since time.Time) (*compilation, error) {
	areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{})
	if err != nil {
		return nil, fmt.Errorf("areas: %w", err)
	}
	all, err := s.AnnouncementService.FindAnnouncements(ctx, loaxa.AnnouncementFilter{})
	if err != nil {
		return nil, fmt.Errorf("announcements: %w", err)
	}
	now := s.Clock.Now()
	cancelledSince, deletedSince := now.Add(-cancelledKept), now.Add(-loaxa.HolidayDeletedKept)
	if !since.IsZero() {
		cancelledSince, deletedSince = minTime(cancelledSince, since), minTime(deletedSince, since)
	}
	var anns, cancelled []*loaxa.Announcement
	for _, a := range all {
		switch {
		case a.State == loaxa.AnnouncementActive:
			anns = append(anns, a)
		case a.State == loaxa.AnnouncementCancelled && a.CancelledAt.After(cancelledSince):
			cancelled = append(cancelled, a)
		}
	}
	if extra != nil {
		if extra.CreatedAt.IsZero() {
			extra.CreatedAt = now
		}
		anns = append(anns, extra)
	}
	c := &compilation{
		now:       now,
		parent:    make(map[string]string, len(areas)),
		name:      make(map[string]string, len(areas)),
		zone:      make(map[string]string, len(areas)),
		contents:  make(map[string]*loaxa.Content),
		anns:      anns,
		placed:    slices.Concat(anns, cancelled),
		sessions:  map[string][]*loaxa.Session{},
		session:   map[string]*loaxa.Session{},
		holidays:  map[string]map[string][]*loaxa.Holiday{},
		proposals: map[string]map[string]*loaxa.Proposal{},
		expanded:  map[spanKey][]time.Time{},
		instances: map[spanKey][]loaxa.SessionRun{},
		locs:      map[string]*time.Location{},
	}
	for _, a := range areas {
		c.parent[a.ID] = a.Parent
		c.name[a.ID] = a.Name
		c.zone[a.ID] = a.TimeZone
	}
	if s.SessionService != nil {
		// The view has the sessions deleted since, for the days they ran.
		ss, err := s.SessionService.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: since})
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		for _, x := range ss {
			c.sessions[x.Area] = append(c.sessions[x.Area], x)
			c.session[x.ID] = x
		}
	}
	if s.HolidayService != nil {
		hs, err := s.HolidayService.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: deletedSince})
		if err != nil {
			return nil, fmt.Errorf("holidays: %w", err)
		}
		for _, h := range hs {
			if c.holidays[h.Area] == nil {
				c.holidays[h.Area] = map[string][]*loaxa.Holiday{}
			}
			c.holidays[h.Area][h.Date] = append(c.holidays[h.Area][h.Date], h)
		}
	}
	if s.ProposalService != nil {
		ps, err := s.ProposalService.FindProposals(ctx, loaxa.ProposalFilter{})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		for _, p := range ps {
			if c.proposals[p.Announcement] == nil {
				c.proposals[p.Announcement] = map[string]*loaxa.Proposal{}
			}
			c.proposals[p.Announcement][p.Area] = p
		}
	}
	// Content kept at all times that cannot be read is left out (logged
	// once a pass), not the nodes' schedules with it.
	if s.StandingService != nil {
		all, err := s.StandingService.FindStanding(ctx)
		if err != nil {
			return nil, fmt.Errorf("standing content: %w", err)
		}
		for _, sc := range all {
			if _, err := c.content(ctx, s.ContentService, sc.Content); err != nil {
				s.Logger.Error("schedule: standing content left out", "content", sc.Content, "err", err)
				continue
			}
			c.standing = append(c.standing, sc)
		}
	}
	if s.AlwaysContent != nil {
		ids, err := s.AlwaysContent(ctx)
		if err != nil {
			return nil, fmt.Errorf("content every node keeps: %w", err)
		}
		for _, id := range ids {
			if _, err := c.content(ctx, s.ContentService, id); err != nil {
				s.Logger.Error("schedule: content every node keeps left out", "content", id, "err", err)
				continue
			}
			c.always = append(c.always, id)
		}
	}
	for _, a := range anns {
		// A failure here (even a panic) is the business of the nodes a
		// targets: their compile meets it again and fails alone.
		_ = safely("announcement "+a.ID, func() error {
			_, _, _, length, err := s.contentOf(ctx, c, a)
			if err == nil {
				c.longest = max(c.longest, length)
			}
			return err
		})
	}
	for _, x := range c.session {
		c.longest = max(c.longest, x.MaxLength())
		for _, e := range x.Earlier {
			c.longest = max(c.longest, time.Duration(e.MaxMinutes)*time.Minute)
		}
	}
	return c, nil
}

func (c *compilation) chain(area string) []string {
	var chain []string
	for a := area; a != "" && len(chain) <= len(c.parent); a = c.parent[a] {
		chain = append(chain, a)
	}
	return chain
}

// station returns the nearest area in chain with sessions, or "": the one
// whose sessions a priority bulletin from above waits for.
func (c *compilation) station(chain []string) string {
	for _, a := range chain {
		if len(c.sessions[a]) > 0 {
			return a
		}
	}
	return ""
}

// nodeGroup is nodes whose programmes are alike but for their enrolment:
// like compiles for all of them, enrolled from the start of time, and each
// node plays what of it starts from its own enrolment on.
type nodeGroup struct {
	like  *loaxa.Node
	nodes []*loaxa.Node
}

// groupNodes groups the nodes of one area that no announcement names by
// id, as plan reads a node's area, its id only for targets and its
// enrolment only to drop what starts before it; a node an announcement
// names is a group of its own. A province of 10,000 nodes in 200 communes
// compiles 200 programmes instead of 10,000.
func (c *compilation) groupNodes(nodes []*loaxa.Node) []*nodeGroup {
	named := map[string]bool{}
	for _, a := range c.placed {
		for _, n := range a.Targets.Nodes {
			named[n] = true
		}
	}
	var out []*nodeGroup
	byArea := map[string]*nodeGroup{}
	for _, n := range nodes {
		g := byArea[n.Area]
		if g == nil || named[n.ID] {
			like := *n
			like.EnrolledAt = time.Unix(0, 0)
			g = &nodeGroup{like: &like}
			out = append(out, g)
			if !named[n.ID] {
				byArea[n.Area] = g
			}
		}
		g.nodes = append(g.nodes, n)
	}
	return out
}

// location returns the zone of the first area in chain that sets one.
func (c *compilation) location(chain []string) (*time.Location, error) {
	name, area := "", ""
	for _, a := range chain {
		if z := c.zone[a]; z != "" {
			name, area = z, a
			break
		}
	}
	if loc, ok := c.locs[name]; ok {
		return loc, nil
	}
	if err, ok := c.refusedZones[area]; ok {
		return nil, err
	}
	loc, err := loaxa.Location(name)
	if err != nil {
		// The API takes no such zone, but an older version, a restored
		// backup or a hand-mended store may hold one: the officer who
		// meets it typed no zone, and got the 400 of one.
		err = fmt.Errorf("%w (%v)", &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonSettingRefused, Message: fmt.Sprintf(
			"Area %s has the time zone %q, which this controller cannot load, so the programme of the clusters in it and below cannot be compiled, and they get no schedule changes until it is corrected. The API cannot change an area's time zone: ask the controller's administrator to set it in the store to an IANA name such as %s.",
			c.areaName(area), name, loaxa.DefaultTimeZone)}, err)
		if c.refusedZones == nil {
			c.refusedZones = map[string]error{}
		}
		c.refusedZones[area] = err
		return nil, err
	}
	c.locs[name] = loc
	return loc, nil
}

// areaName names area as an officer knows it: "Xã Tiên Thắng (12346)".
func (c *compilation) areaName(area string) string {
	if n := c.name[area]; n != "" {
		return fmt.Sprintf("%s (%s)", n, area)
	}
	return area
}

func (c *compilation) content(ctx context.Context, svc loaxa.ContentService, id string) (*loaxa.Content, error) {
	if ct, ok := c.contents[id]; ok {
		return ct, nil
	}
	ct, err := svc.FindContentByID(ctx, id)
	if err != nil {
		return nil, err
	}
	c.contents[id] = ct
	return ct, nil
}

// contentOf returns a's content, chimes and planned length.
func (s *Scheduler) contentOf(ctx context.Context, c *compilation, a *loaxa.Announcement) (main, opening, closing *loaxa.Content, length time.Duration, err error) {
	if a.StreamURL != "" {
		// A relay: no content to send, the station for its duration.
		return nil, nil, nil, time.Duration(a.DurationMS) * time.Millisecond, nil
	}
	if main, err = c.content(ctx, s.ContentService, a.ContentID); err != nil {
		return nil, nil, nil, 0, c.unplayable(a, loaxa.UnplayableContent, a.ContentID, err)
	}
	if a.OpeningChime != "" {
		if opening, err = c.content(ctx, s.ContentService, a.OpeningChime); err != nil {
			return nil, nil, nil, 0, c.unplayable(a, loaxa.UnplayableOpeningChime, a.OpeningChime, err)
		}
	}
	if a.ClosingChime != "" {
		if closing, err = c.content(ctx, s.ContentService, a.ClosingChime); err != nil {
			return nil, nil, nil, 0, c.unplayable(a, loaxa.UnplayableClosingChime, a.ClosingChime, err)
		}
	}
	return main, opening, closing, PlannedLength(a, main, opening, closing), nil
}

// unplayable says that a cannot be scheduled for its part (content id
// content, or its rule when content is ""), if err is the store not
// finding that content or the rule refused; any other error (the store
// failing) is not a's fault, and is only wrapped.
func (c *compilation) unplayable(a *loaxa.Announcement, part, content string, err error) error {
	code := loaxa.ErrorCode(err)
	if content != "" && code != loaxa.ENotFound || content == "" && code != loaxa.EInvalid {
		if content != "" {
			return fmt.Errorf("announcement %s: %s %s: %w", a.ID, strings.ReplaceAll(part, "_", " "), content, err)
		}
		return fmt.Errorf("announcement %s: %w", a.ID, err)
	}
	return &loaxa.UnplayableError{Announcement: a.ID, Title: a.Title, FromArea: a.FromArea, FromAreaName: c.name[a.FromArea],
		Part: part, Content: content, Err: err}
}

// PlannedLength is how long one occurrence of a runs: the chimes, every
// repeat, and the gaps between repeats.
func PlannedLength(a *loaxa.Announcement, main, opening, closing *loaxa.Content) time.Duration {
	ms := int64(max(a.Repeat, 1)) * main.DurationMS
	if a.Repeat > 1 {
		ms += int64(a.Repeat-1) * gapOf(a).Milliseconds()
	}
	if opening != nil {
		ms += opening.DurationMS
	}
	if closing != nil {
		ms += closing.DurationMS
	}
	return time.Duration(ms) * time.Millisecond
}

func gapOf(a *loaxa.Announcement) time.Duration {
	if a.GapMS > 0 {
		return time.Duration(a.GapMS) * time.Millisecond
	}
	return loaxa.RepeatGap
}

// spanKey names the starts of an announcement or a session (id) in a zone
// and a window, which every node of the zone shares within a pass.
type spanKey struct {
	id       string
	loc      *time.Location
	from, to int64 // Unix ns
}

// expand returns a's starts in (from, to] in loc, cached per zone.
func (c *compilation) expand(a *loaxa.Announcement, loc *time.Location, from, to time.Time) ([]time.Time, error) {
	key := spanKey{a.ID, loc, from.UnixNano(), to.UnixNano()}
	if ts, ok := c.expanded[key]; ok {
		return ts, nil
	}
	r, err := loaxa.NewRecurrence(a, loc)
	if err != nil {
		return nil, c.unplayable(a, loaxa.UnplayableRule, "", err)
	}
	ts := r.Between(from, to)
	c.expanded[key] = ts
	return ts, nil
}

// sessionInstances returns the instances of x starting in (from, to] in
// loc, each with the times it runs by (loaxa.Session.Runs), cached.
func (c *compilation) sessionInstances(x *loaxa.Session, loc *time.Location, from, to time.Time) ([]loaxa.SessionRun, error) {
	key := spanKey{x.ID, loc, from.UnixNano(), to.UnixNano()}
	if runs, ok := c.instances[key]; ok {
		return runs, nil
	}
	runs, err := x.Runs(loc, from, to)
	if loaxa.ErrorCode(err) == loaxa.EInvalid {
		// Times an older version stored, which this one refuses: said of
		// the session, not as the 400 of days the officer never typed.
		return nil, fmt.Errorf("%w (%v)", &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonSettingRefused, Message: fmt.Sprintf(
			"Session %s (%s) of %s has times this controller refuses (%s), so the programme of the clusters that follow it cannot be compiled, and they get no schedule changes until they are corrected. An officer of the area can give it valid times (PATCH /api/v1/sessions/%s, e.g. {\"days\": \"\"} for every day); it cannot be deleted before, as which bulletins from above wait for it cannot be told.",
			x.ID, x.Name, c.areaName(x.Area), strings.TrimSuffix(loaxa.ErrorMessage(err), "."), x.ID)}, err)
	} else if err != nil {
		return nil, fmt.Errorf("session %s: %w", x.ID, err)
	}
	c.instances[key] = runs
	return runs, nil
}

// refusedPast returns a setting_refused error if a session that the nodes
// of area (with below, and of the areas below it) follow ran, on a day in [from, to) before the day its times were
// mended, by earlier times this version refuses: which of its instances
// ran then is unknown (loaxa.Session.RefusedTimes names none), and the
// programme of those days would leave them out without a word. The day of
// the change and after are shown as the session runs by its new times.
func (c *compilation) refusedPast(area string, below bool, from, to time.Time) error {
	chain := c.chain(area)
	for a, xs := range c.sessions {
		if !slices.Contains(chain, a) && !(below && slices.Contains(c.chain(a), area)) {
			continue
		}
		loc, err := c.location(c.chain(a))
		if err != nil {
			return err
		}
		for _, x := range xs {
			t, since, err := x.RefusedTimes(loc, from, to)
			if err == nil {
				continue
			}
			y, m, d := t.Until.In(loc).Date()
			if day := time.Date(y, m, d, 0, 0, 0, 0, loc); from.Before(day) && since.Before(day) {
				return fmt.Errorf("%w (%v)", &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonSettingRefused, Message: fmt.Sprintf(
					"The programme before %s cannot be shown: until %s, session %s (%s) of %s had times this controller refuses (%s), so which of its instances ran then is unknown. View the programme from %s on; only the controller's administrator can correct those earlier times in the store.",
					day.Format(loaxa.DateLayout), t.Until.In(loc).Format("15:04 on 2006-01-02"), x.ID, x.Name, c.areaName(a),
					strings.TrimSuffix(loaxa.ErrorMessage(err), "."), day.Format(loaxa.DateLayout))}, err)
			}
		}
	}
	return nil
}

// programmed is one compiled occurrence with what it needs.
type programmed struct {
	occ                       protocol.Occurrence
	end                       time.Time
	content, opening, closing *loaxa.Content
	ann                       *loaxa.Announcement
	head                      bool // placed at the head of its session
	// joined is when the item was put in its session (its announcement
	// created, or its proposal accepted into it, or a holiday on its day
	// deleted while the session ran); left, when it was taken out
	// (cancelled), or zero; holiday, when a holiday on its day was added
	// while its session ran, or zero. See pack.
	joined, left, holiday time.Time
	// due is the start the announcement gives it, before a session moved
	// it.
	due time.Time
}

// holidayAt reports whether one of hs stood at t: added by then and not
// deleted by then.
func holidayAt(hs []*loaxa.Holiday, t time.Time) bool {
	return slices.ContainsFunc(hs, func(h *loaxa.Holiday) bool {
		return !h.CreatedAt.After(t) && (h.DeletedAt.IsZero() || h.DeletedAt.After(t))
	})
}

// holidayEnd returns when the holidays of hs standing at t were all
// deleted, or zero if one still stands.
func holidayEnd(hs []*loaxa.Holiday, t time.Time) time.Time {
	var end time.Time
	for _, h := range hs {
		if h.CreatedAt.After(t) {
			continue
		}
		if h.DeletedAt.IsZero() {
			return time.Time{}
		}
		end = maxTime(end, h.DeletedAt)
	}
	return end
}

// holidayAdded returns when the first holiday of hs that still stands was
// added after t, or zero.
func holidayAdded(hs []*loaxa.Holiday, t time.Time) time.Time {
	var added time.Time
	for _, h := range hs {
		if h.CreatedAt.After(t) && h.DeletedAt.IsZero() && (added.IsZero() || h.CreatedAt.Before(added)) {
			added = h.CreatedAt
		}
	}
	return added
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// instance is one day's run of a session on one node, being packed.
type instance struct {
	session *loaxa.Session
	start   time.Time
	id      string
	items   []programmed
}

// nodePlan is the compiled programme of a node, or of a group of alike
// nodes (nodeGroup), as if enrolled from the start of time, and the
// conflicts in it that do not depend on enrolment; each node's share of it
// is itemsFor and conflictsFor.
type nodePlan struct {
	items []programmed // by start
	// conflicts are those of sessions (no session that day, one run
	// over): their Node is the node compiled, and their messages name no
	// node, so they hold for every node of its group.
	conflicts []loaxa.Conflict
	loc       *time.Location
}

// itemsFor returns the items of p that n plays: those starting from its
// enrolment on.
func (p *nodePlan) itemsFor(n *loaxa.Node) []programmed {
	// A node enrolled after an occurrence began was no part of it: given
	// it within the late grace, a cluster put up at 08:05 played the 08:00
	// bulletin then, and one that came online later had it counted missed.
	// Enrolled is when its board redeemed its code, not when the code was
	// issued: 200 codes issued a week before the poles went up made a
	// week of missed plays each. A node waiting for its code plays
	// nothing yet. (Nodes do not change areas; enrolment is when a node
	// joins one.)
	first := slices.IndexFunc(p.items, func(it programmed) bool { return n.EnrolledBy(it.occ.Start) })
	if first < 0 {
		return nil
	}
	// Enrolment is one instant: what starts from it on is a tail of the
	// items by start.
	return p.items[first:]
}

// conflictsFor returns the conflicts of p on node n: those of sessions,
// and the plays of its items (itemsFor) that overlap.
func (p *nodePlan) conflictsFor(n *loaxa.Node, items []programmed) []loaxa.Conflict {
	out := make([]loaxa.Conflict, 0, len(p.conflicts))
	for _, cf := range p.conflicts {
		cf.Node = n.ID
		out = append(out, cf)
	}
	return append(out, overlaps(items, n, p.loc)...)
}

// programme compiles node n's occurrences starting in (from, to].
func (s *Scheduler) programme(ctx context.Context, c *compilation, n *loaxa.Node, from, to time.Time) ([]programmed, error) {
	p, err := s.plan(ctx, c, n, from, to)
	if err != nil {
		return nil, err
	}
	return p.itemsFor(n), nil
}

// eachPlan compiles the programme in (from, to] of the nodes of each
// group of alike ones (groupNodes) once, and calls fn with each node, in
// the order of nodes, and its group's plan. A province of 10,000 nodes in
// 200 communes compiles 200 programmes instead of 10,000: an area's
// programme, or a new bulletin's conflict check, took 0.24 s and 360 MB
// there (BENCHMARKS.md).
func (s *Scheduler) eachPlan(ctx context.Context, c *compilation, nodes []*loaxa.Node, from, to time.Time, fn func(*loaxa.Node, *nodePlan) error) error {
	groups := c.groupNodes(nodes)
	if s.eachNode {
		groups = make([]*nodeGroup, 0, len(nodes))
		for _, n := range nodes {
			groups = append(groups, &nodeGroup{like: n, nodes: []*loaxa.Node{n}})
		}
	}
	of := make(map[*loaxa.Node]*nodeGroup, len(nodes))
	for _, g := range groups {
		for _, n := range g.nodes {
			of[n] = g
		}
	}
	plans := make(map[*nodeGroup]*nodePlan, len(groups))
	for _, n := range nodes {
		g := of[n]
		p := plans[g]
		if p == nil {
			var err error
			if p, err = s.plan(ctx, c, g.like, from, to); err != nil {
				return err
			}
			plans[g] = p
		}
		if err := fn(n, p); err != nil {
			return err
		}
	}
	return nil
}

// plan compiles node n's programme in (from, to] as if n were enrolled
// from the start of time, and finds the conflicts of its sessions.
func (s *Scheduler) plan(ctx context.Context, c *compilation, n *loaxa.Node, from, to time.Time) (*nodePlan, error) {
	chain := c.chain(n.Area)
	loc, err := c.location(chain)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.ID, err)
	}
	// holidays returns the holidays on t's day for the node, standing
	// and recently deleted.
	holidays := func(t time.Time) []*loaxa.Holiday {
		day := t.In(loc).Format(loaxa.DateLayout)
		hs := c.holidays[""][day]
		for _, a := range chain {
			hs = append(slices.Clip(hs), c.holidays[a][day]...)
		}
		return hs
	}
	station := c.station(chain)
	plan := &nodePlan{loc: loc}
	instances := map[string]*instance{}
	// Session items are expanded a day wider on each side: the day decides
	// the instance, the packing decides the start.
	wideFrom, wideTo := from.Add(-24*time.Hour-c.longest), to.Add(24*time.Hour)

	for _, a := range c.placed {
		if !Targets(a, n.ID, chain) {
			continue
		}
		// A cancelled announcement plays nowhere; it is here only to hold
		// its slots in sessions it was cancelled from while under way.
		gone := a.State == loaxa.AnnouncementCancelled
		sessionID, head, joined := a.Session, false, a.CreatedAt
		var left time.Time
		if gone {
			left = a.CancelledAt
		}
		if a.Proposed {
			if p := c.proposalFor(a.ID, chain); p != nil {
				switch {
				case p.State == loaxa.ProposalAccepted:
					sessionID = p.Session
					if p.DecidedAt.After(joined) {
						joined = p.DecidedAt
					}
				case c.view && p.Reason == loaxa.CancelSessionDeleted && !p.AcceptedAt.IsZero():
					// Declined as the session it was accepted into was
					// deleted: it was in that session until then.
					sessionID, joined, gone = p.Session, maxTime(joined, p.AcceptedAt), true
					if left.IsZero() || p.DecidedAt.Before(left) {
						left = p.DecidedAt
					}
				default:
					continue
				}
			}
		} else if a.Priority == protocol.PriorityHigh && sessionID == "" && station != "" && above(a.FromArea, station, chain) {
			head = true // a priority bulletin from above opens the next session
		}
		if gone && sessionID == "" && !head && !c.view {
			continue
		}
		main, opening, closing, length, err := s.contentOf(ctx, c, a)
		if err != nil {
			// One with no start left from the earliest window below on
			// (a one-off whose day is over, which stays active) is not
			// met: its missing content keeps nothing from the node, and
			// its alarm ends.
			if gone || over(a, loc, from.AddDate(0, 0, -7).Add(-c.longest)) || c.leftOutFor(err) {
				continue // its slot goes with its content
			}
			return nil, err
		}
		mk := func(start time.Time) programmed {
			id, ms := "", a.DurationMS
			if main != nil {
				id, ms = main.ID, main.DurationMS
			}
			it := programmed{
				occ: protocol.Occurrence{
					ID: loaxa.OccurrenceID(a.ID, start), Announcement: a.ID, Title: a.Title, Stream: a.StreamURL,
					Content: id, Priority: a.Priority, Start: start.UTC(), DurationMS: ms,
					OnPreempt:    a.OnPreempt,
					OpeningChime: a.OpeningChime, ClosingChime: a.ClosingChime,
				},
				end: start.Add(length), content: main, opening: opening, closing: closing, ann: a, head: head,
				joined: joined, left: left, due: start,
			}
			if a.Repeat > 1 {
				it.occ.Repeat, it.occ.GapMS = a.Repeat, gapOf(a).Milliseconds()
			}
			return it
		}
		skips := a.Recurring() && !a.OnHolidays
		wf, wt := from, to
		switch {
		case head:
			// A bulletin from above opens the station's next session,
			// found up to a week after its start (nextInstance): it is
			// expanded from a week back, or one sent on a Saturday for a
			// Monday session dropped out of the desired state on Sunday.
			wf, wt = from.AddDate(0, 0, -7).Add(-c.longest), wideTo
		case sessionID != "":
			wf, wt = wideFrom, wideTo
		}
		starts, err := c.expand(a, loc, wf, wt)
		if err != nil {
			if gone || c.leftOutFor(err) {
				continue
			}
			return nil, err
		}
		for _, t := range starts {
			var hs []*loaxa.Holiday
			if skips {
				hs = holidays(t)
			}
			if sessionID == "" && holidayAt(hs, t) {
				continue // a holiday when it was due; a session item's is judged at its instance
			}
			switch {
			case sessionID != "":
				x := c.session[sessionID]
				if x == nil || !slices.Contains(chain, x.Area) {
					continue // the session is gone, or not this node's
				}
				inst, err := c.instanceOn(x, loc, t, instances)
				if err != nil {
					return nil, err
				}
				if inst == nil {
					if gone || holidayAt(hs, c.now) {
						continue
					}
					if y, mo, d := t.In(loc).Date(); !time.Date(y, mo, d+1, 0, 0, 0, 0, loc).After(from) {
						// A day over before the window, expanded only for
						// packing (a daily bulletin dated before its session
						// was made): nothing of it could play, so no conflict.
						continue
					}
					if a.Recurring() && t.In(loc).Format(loaxa.DateLayout) == x.CreatedAt.In(loc).Format(loaxa.DateLayout) {
						// The day the session was made, after its start
						// (it runs no instance before it was made): as for
						// the days before, a recurring bulletin plays from
						// its next instance. Officers make a session and
						// place the daily bulletin in it at once.
						continue
					}
					plan.conflicts = append(plan.conflicts, loaxa.Conflict{
						Kind: loaxa.ConflictNoSession, Node: n.ID, Session: x.ID,
						Occurrences: []string{loaxa.OccurrenceID(a.ID, t)},
						Items:       []loaxa.ConflictItem{conflictItem(a, t, time.Time{}, loc)},
						Message: fmt.Sprintf("%s is placed in session %s (%s), which does not run on %s; it will not play that day.",
							subject(a), x.ID, x.Name, t.In(loc).Format(loaxa.DateLayout)),
					})
					continue
				}
				if end := inst.start.Add(inst.session.MaxLength()); !gone && !a.Recurring() && !t.Before(end) {
					// A one-off whose own start is after the day's
					// instance ended plays before its start, or (placed
					// today, after the session) nowhere: said, not
					// silently taken.
					plan.conflicts = append(plan.conflicts, loaxa.Conflict{
						Kind: loaxa.ConflictNoSession, Node: n.ID, Session: x.ID,
						Occurrences: []string{loaxa.OccurrenceID(a.ID, t)},
						Items:       []loaxa.ConflictItem{conflictItem(a, t, time.Time{}, loc)},
						SessionEnd:  end.In(loc),
						Message: fmt.Sprintf("%s starts at %s, after session %s (%s) of %s is over (it ends at %s, %s); it would not play then. Place it in a later session, or at its own time.",
							subject(a), t.In(loc).Format("15:04"), x.ID, x.Name, t.In(loc).Format(loaxa.DateLayout), end.In(loc).Format("15:04"), zoneWords(loc)),
					})
				}
				it := mk(t)
				if holidayAt(hs, inst.start) {
					back := holidayEnd(hs, inst.start)
					if back.IsZero() {
						continue // a holiday, as the session began and still
					}
					// The holiday was deleted while the instance ran: the
					// item joins it then, as one added then would.
					it.joined = maxTime(it.joined, back)
				}
				it.holiday = holidayAdded(hs, inst.start)
				inst.items = append(inst.items, it)
			case head:
				inst, err := c.nextInstance(c.sessions[station], loc, t, instances)
				if err != nil {
					return nil, err
				}
				if inst == nil {
					if !t.After(from) || t.After(to) {
						// Expanded from a week back for the sessions only:
						// at its own time it is in the span or not at all
						// (a station whose last session was deleted had
						// the days before the span in it).
						continue
					}
					if !gone {
						plan.items = append(plan.items, mk(t)) // no session ahead: play as sent
					} else if it, ok := c.playedBeforeCancel(mk(t)); ok {
						plan.items = append(plan.items, it)
					}
					continue
				}
				inst.items = append(inst.items, mk(t))
			default:
				if !gone {
					plan.items = append(plan.items, mk(t))
				} else if it, ok := c.playedBeforeCancel(mk(t)); ok {
					plan.items = append(plan.items, it)
				}
			}
		}
	}
	// In the order they start: taken in map order, the conflicts of one
	// check came in another order each time it was asked.
	byStart := slices.SortedFunc(maps.Values(instances), func(x, y *instance) int {
		return cmp.Or(x.start.Compare(y.start), strings.Compare(x.id, y.id))
	})
	for _, inst := range byStart {
		plan.conflicts = append(plan.conflicts, pack(inst, n.ID, loc, c.view)...)
		for _, it := range inst.items {
			if it.occ.Start.After(from) && !it.occ.Start.After(to) {
				plan.items = append(plan.items, it)
			}
		}
	}
	slices.SortFunc(plan.items, func(x, y programmed) int {
		return cmp.Or(x.occ.Start.Compare(y.occ.Start), strings.Compare(x.occ.ID, y.occ.ID))
	})
	return plan, nil
}

// leftOutFor reports whether a pass leaves out the bulletin err says
// cannot be scheduled, and notes it in leftOut.
func (c *compilation) leftOutFor(err error) bool {
	var bad *loaxa.UnplayableError
	if !c.leaveOut || !errors.As(err, &bad) {
		return false
	}
	c.leftOut = append(c.leftOut, bad)
	return true
}

// over reports whether a has no start after from in loc: none it could
// play, nor hold a session's slot with, now or later (expired). One
// whose next start is beyond the horizon is not over: its alarm is due
// now, not a week before it.
func over(a *loaxa.Announcement, loc *time.Location, from time.Time) bool {
	r, err := loaxa.NewRecurrence(a, loc)
	if err != nil {
		return false
	}
	_, more := r.Next(from)
	return !more
}

// reaches reports whether active announcement a is for node n, whose
// area chain is chain: it targets n, and n's station did not decline it
// (or not decide yet on) a proposal of it.
func (c *compilation) reaches(a *loaxa.Announcement, n *loaxa.Node, chain []string) bool {
	if !Targets(a, n.ID, chain) {
		return false
	}
	if a.Proposed {
		if p := c.proposalFor(a.ID, chain); p != nil && p.State != loaxa.ProposalAccepted {
			return false
		}
	}
	return true
}

// unschedulable returns why a cannot be scheduled for any node (its
// content or a chime not in the library, its rule refused), or nil if
// nothing of a itself stops it: what a pass judges of a bulletin that
// no node's compile met, as each failed before it. The rule is judged in
// its sender's zone, or UTC if that zone is refused: whether this version
// takes a rule does not depend on the zone. A store that fails to read a
// content is not a's fault, nor a sign that a is fine: it is the error,
// and the pass leaves a's alarm as it was.
func (s *Scheduler) unschedulable(ctx context.Context, c *compilation, a *loaxa.Announcement) (*loaxa.UnplayableError, error) {
	var bad *loaxa.UnplayableError
	loc, err := c.location(c.chain(a.FromArea))
	if err != nil {
		loc = time.UTC
	}
	if _, _, _, _, err := s.contentOf(ctx, c, a); err != nil {
		if !errors.As(err, &bad) {
			return nil, err
		}
		// Over as plan judges it, from the earliest window a node's
		// compile looks at (a day before it, for the zones).
		if over(a, loc, c.now.Add(-c.longest-s.LateGrace).AddDate(0, 0, -8).Add(-c.longest)) {
			return nil, nil
		}
		return bad, nil
	}
	if _, err := loaxa.NewRecurrence(a, loc); err != nil {
		errors.As(c.unplayable(a, loaxa.UnplayableRule, "", err), &bad)
	}
	return bad, nil
}

// playedBeforeCancel returns it, a play at its own time of an announcement
// cancelled since, for the programme shown (c.view) if it began before the
// cancel, ending then if sooner: it was on that day's programme.
func (c *compilation) playedBeforeCancel(it programmed) (programmed, bool) {
	if !c.view || it.left.IsZero() || !it.occ.Start.Before(it.left) {
		return it, false
	}
	if off := ceilSecond(it.left); off.Before(it.end) {
		it.end = off
	}
	return it, true
}

// above reports whether area from is a strict ancestor of station in chain.
func above(from, station string, chain []string) bool {
	if from == "" || from == station {
		return false
	}
	return slices.Index(chain, from) > slices.Index(chain, station)
}

// proposalFor returns the proposal of announcement ann for the nearest
// station in chain, or nil if none of the node's areas has one.
func (c *compilation) proposalFor(ann string, chain []string) *loaxa.Proposal {
	for _, a := range chain {
		if p := c.proposals[ann][a]; p != nil {
			return p
		}
	}
	return nil
}

// instanceOn returns session x's instance on the local day of t, or nil if
// it does not run that day.
func (c *compilation) instanceOn(x *loaxa.Session, loc *time.Location, t time.Time, m map[string]*instance) (*instance, error) {
	y, mo, d := t.In(loc).Date()
	day := time.Date(y, mo, d, 0, 0, 0, 0, loc)
	runs, err := c.sessionInstances(x, loc, day.Add(-time.Nanosecond), day.AddDate(0, 0, 1).Add(-time.Nanosecond))
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return instanceAt(runs[0], loc, m), nil
}

// nextInstance returns the first instance of any of xs starting at or
// after t (within a week), or nil.
func (c *compilation) nextInstance(xs []*loaxa.Session, loc *time.Location, t time.Time, m map[string]*instance) (*instance, error) {
	var best *loaxa.SessionRun
	for _, x := range xs {
		runs, err := c.sessionInstances(x, loc, t.Add(-time.Nanosecond), t.AddDate(0, 0, 7))
		if err != nil {
			return nil, err
		}
		if len(runs) > 0 && (best == nil || runs[0].Start.Before(best.Start)) {
			best = &runs[0]
		}
	}
	if best == nil {
		return nil, nil
	}
	return instanceAt(*best, loc, m), nil
}

// instanceAt returns the instance of run in m, adding it if new. Its
// session has the times the instance runs by.
func instanceAt(run loaxa.SessionRun, loc *time.Location, m map[string]*instance) *instance {
	id := loaxa.SessionInstanceID(run.Session.ID, run.Start, loc)
	if inst := m[id]; inst != nil {
		return inst
	}
	inst := &instance{session: run.Session, start: run.Start, id: id}
	m[id] = inst
	return inst
}

// pack orders a session instance's items — those put at the head first,
// then by level, highest first, then in creation order — and plays them
// back to back from the session's start. Every item may start (or start
// again after being cut off) until the session's end. Items that run past
// the end are a conflict.
//
// Once the instance has begun, a change must not move what already began:
// a node drops an occurrence whose id (announcement@start) leaves its
// desired state, cutting it off on air. So the order is that of the
// items put in by the instance's start; an item put in later (joined)
// follows all of them, in the order they came, and starts no earlier
// than it came; one added after the instance ended is not in it. An item
// taken out after the start (left) whose slot had begun by then keeps
// what it played of that slot: the next item starts at the end of its
// slot, or when it was taken out if that is sooner (it was on air). One
// whose slot had not begun is left out, and the items after it move up,
// to no earlier than its slot. A holiday added after the start (holiday)
// takes out the items whose slots had not begun by then, in the same way,
// and leaves those that had begun to play on; a holiday deleted after the
// start puts its items in as if they joined then. Items only ever move to
// after the change that moved them, and each pass recomputes the same
// slots from these times, so an item that has begun never moves.
//
// With view (the programme shown, not sent), an item taken out whose slot
// had begun is kept in it, ending when it was taken out if sooner: it was
// on that day's programme.
func pack(inst *instance, node string, loc *time.Location, view bool) []loaxa.Conflict {
	end := inst.start.Add(inst.session.MaxLength())
	inst.items = slices.DeleteFunc(inst.items, func(it programmed) bool {
		return !it.left.IsZero() && !it.left.After(inst.start) || !it.joined.Before(end)
	})
	slices.SortStableFunc(inst.items, func(x, y programmed) int {
		xLate, yLate := x.joined.After(inst.start), y.joined.After(inst.start)
		if xLate != yLate {
			if xLate {
				return 1
			}
			return -1
		}
		if xLate && !x.joined.Equal(y.joined) {
			return x.joined.Compare(y.joined)
		}
		if x.head != y.head {
			if x.head {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(y.occ.Priority.Rank(), x.occ.Priority.Rank()),
			// An announcement being checked is the newest of all.
			cmp.Compare(isNew(x.ann.ID), isNew(y.ann.ID)),
			cmp.Compare(len(x.ann.ID), len(y.ann.ID)), strings.Compare(x.ann.ID, y.ann.ID))
	})
	t := inst.start
	var over []string
	var overItems []loaxa.ConflictItem
	placed := inst.items[:0]
	for _, it := range inst.items {
		length := it.end.Sub(it.occ.Start)
		if it.joined.After(t) {
			t = ceilSecond(it.joined)
		}
		if !it.holiday.IsZero() && !it.holiday.After(t) {
			continue // a holiday added before its slot began
		}
		if !it.left.IsZero() {
			if it.left.After(t) {
				// It had begun: what it played stays, and what follows
				// starts when it was taken off the air.
				begun := t
				t = t.Add(length)
				if off := ceilSecond(it.left); off.Before(t) {
					t = off
				}
				if view {
					it.occ.Start, it.occ.ID = begun.UTC(), loaxa.OccurrenceID(it.ann.ID, begun)
					it.occ.PlayBy, it.occ.Session, it.end = end.UTC(), inst.id, t
					placed = append(placed, it)
				}
			}
			continue
		}
		it.occ.Start = t.UTC()
		it.occ.ID = loaxa.OccurrenceID(it.ann.ID, t)
		it.occ.PlayBy = end.UTC()
		it.occ.Session = inst.id
		it.end = t.Add(length)
		t = it.end
		if t.After(end) {
			over = append(over, it.occ.ID)
			overItems = append(overItems, conflictItem(it.ann, it.occ.Start, it.end, loc))
		}
		placed = append(placed, it)
	}
	inst.items = placed
	if len(over) == 0 {
		return nil
	}
	return []loaxa.Conflict{{
		Kind: loaxa.ConflictSessionOverflow, Node: node, Session: inst.id, Occurrences: over, Items: overItems,
		Message: fmt.Sprintf("Session %s (%s) on %s (%s) runs %s, over its maximum of %s; %s past the end. Shorten or move items, or raise max_minutes.",
			inst.session.ID, inst.session.Name, inst.start.In(loc).Format("2006-01-02 15:04"), zoneWords(loc),
			t.Sub(inst.start).Round(time.Second), loaxa.Count(inst.session.MaxMinutes, "minute", "minutes"), joinItems(overItems, loc)),
	}}
}

// ceilSecond rounds t up to a whole second, so that an item placed when it
// was added has an occurrence id naming its start exactly.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}

// overlaps finds items of the same level (background aside: it yields to
// anything anyway) whose plays overlap, so the later one would wait.
func overlaps(items []programmed, node *loaxa.Node, loc *time.Location) []loaxa.Conflict {
	var out []loaxa.Conflict
	for i := range items {
		a := items[i]
		if a.occ.Priority == protocol.PriorityBackground {
			continue
		}
		for j := i + 1; j < len(items) && items[j].occ.Start.Before(a.end); j++ {
			b := items[j]
			if b.occ.Priority != a.occ.Priority || a.occ.Session != "" && a.occ.Session == b.occ.Session {
				continue
			}
			out = append(out, loaxa.Conflict{
				Kind: loaxa.ConflictOverlap, Node: node.ID, Occurrences: []string{a.occ.ID, b.occ.ID},
				Items: []loaxa.ConflictItem{conflictItem(a.ann, a.occ.Start, a.end, loc), conflictItem(b.ann, b.occ.Start, b.end, loc)},
				Message: fmt.Sprintf("On node %s, %s, from %s to %s on %s, and %s, from %s (%s), are both %s and overlap; the second waits until the first ends. Move one, or give them different levels.",
					nodeName(node), annName(a.ann), clockTime(a.occ.Start, loc), clockTime(a.end, loc), a.occ.Start.In(loc).Format(loaxa.DateLayout),
					annName(b.ann), localTime(b.occ.Start, loc), zoneWords(loc), a.occ.Priority),
			})
		}
	}
	return out
}

// joinItems says which plays run past a session's end, each by its
// bulletin's name and start in loc.
func joinItems(items []loaxa.ConflictItem, loc *time.Location) string {
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = fmt.Sprintf("%s (from %s)", itemName(it.Announcement, it.Title), clockTime(it.Start, loc))
	}
	if len(names) == 1 {
		return names[0] + " runs"
	}
	return strings.Join(names, ", ") + " run"
}

// conflictItem is a's play from start to end (zero: unknown) as a
// Conflict names it, its times in loc.
func conflictItem(a *loaxa.Announcement, start, end time.Time, loc *time.Location) loaxa.ConflictItem {
	it := loaxa.ConflictItem{Occurrence: loaxa.OccurrenceID(a.ID, start), Announcement: a.ID, Title: a.Title, Start: start.In(loc)}
	if !end.IsZero() {
		it.End = end.In(loc)
	}
	return it
}

// annName names a in a conflict's message: by its title, the id after it,
// so that an officer knows it; the one being checked is "this
// announcement".
func annName(a *loaxa.Announcement) string { return itemName(a.ID, a.Title) }

// subject is annName to begin a sentence: "Announcement "Bản tin sáng"
// (a000001)", "This announcement".
func subject(a *loaxa.Announcement) string {
	if a.ID == newID {
		return "This announcement"
	}
	return "Announcement " + annName(a)
}

func itemName(id, title string) string {
	switch {
	case id == newID:
		return "this announcement"
	case title == "":
		return id
	}
	return fmt.Sprintf("%q (%s)", title, id)
}

// nodeName names n by its id and, where it has one, its name.
func nodeName(n *loaxa.Node) string {
	if n.Name == "" {
		return n.ID
	}
	return fmt.Sprintf("%s (%s)", n.ID, n.Name)
}

// localTime writes t as a clock time and a date in loc, "07:00 on
// 2026-03-02": what an officer there reads on a clock.
func localTime(t time.Time, loc *time.Location) string {
	return clockTime(t, loc) + " on " + t.In(loc).Format(loaxa.DateLayout)
}

// clockTime writes t's time of day in loc, "07:00", with its seconds where it
// has some ("07:00:40"): bulletins last seconds, and two that overlap by
// 40 s must not read as one ending when the other starts.
func clockTime(t time.Time, loc *time.Location) string {
	if t.Second() != 0 {
		return t.In(loc).Format("15:04:05")
	}
	return t.In(loc).Format("15:04")
}

// zoneWords says which clock a message's times are on: the area's time
// zone by name.
func zoneWords(loc *time.Location) string {
	return loc.String() + " time"
}

// newID stands for the id of an announcement not stored yet.
const newID = "new"

func isNew(id string) int {
	if id == newID {
		return 1
	}
	return 0
}

// MaxProgrammeSpan bounds a programme request.
const MaxProgrammeSpan = 62 * 24 * time.Hour

// NodeProgramme returns node's occurrences starting in [from, to).
func (s *Scheduler) NodeProgramme(ctx context.Context, node string, from, to time.Time) ([]loaxa.ProgrammeItem, error) {
	return guarded("programme of node "+node, func() ([]loaxa.ProgrammeItem, error) { return s.nodeProgramme(ctx, node, from, to) })
}

func (s *Scheduler) nodeProgramme(ctx context.Context, node string, from, to time.Time) ([]loaxa.ProgrammeItem, error) {
	n, err := s.NodeService.FindNodeByID(ctx, node)
	if err != nil {
		return nil, err
	}
	c, err := s.newView(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("programme of %s: %w", node, err)
	}
	if err := c.refusedPast(n.Area, false, from, to); err != nil {
		return nil, fmt.Errorf("programme of %s: %w", node, err)
	}
	items, err := s.programme(ctx, c, n, from.Add(-time.Nanosecond), to.Add(-time.Nanosecond))
	if err != nil {
		return nil, fmt.Errorf("programme of %s: %w", node, err)
	}
	out := make([]loaxa.ProgrammeItem, 0, len(items))
	for _, it := range items {
		out = append(out, programmeItem(it))
	}
	return out, nil
}

// programmeItem is it as the programme shows it.
func programmeItem(it programmed) loaxa.ProgrammeItem {
	p := loaxa.ProgrammeItem{Occurrence: it.occ, End: it.end.UTC()}
	if it.ann.State == loaxa.AnnouncementCancelled {
		p.CancelledAt = it.ann.CancelledAt.UTC()
	}
	return p
}

// AreaProgramme returns the occurrences on the nodes of area starting in
// [from, to), one item per occurrence with its nodes.
func (s *Scheduler) AreaProgramme(ctx context.Context, area string, from, to time.Time) ([]loaxa.ProgrammeItem, error) {
	return guarded("programme of area "+area, func() ([]loaxa.ProgrammeItem, error) { return s.areaProgramme(ctx, area, from, to) })
}

func (s *Scheduler) areaProgramme(ctx context.Context, area string, from, to time.Time) ([]loaxa.ProgrammeItem, error) {
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: area})
	if err != nil {
		return nil, fmt.Errorf("programme of area %s: %w", area, err)
	}
	c, err := s.newView(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("programme of area %s: %w", area, err)
	}
	if err := c.refusedPast(area, true, from, to); err != nil {
		return nil, fmt.Errorf("programme of area %s: %w", area, err)
	}
	byID := map[string]*loaxa.ProgrammeItem{}
	err = s.eachPlan(ctx, c, nodes, from.Add(-time.Nanosecond), to.Add(-time.Nanosecond), func(n *loaxa.Node, plan *nodePlan) error {
		for _, it := range plan.itemsFor(n) {
			p := byID[it.occ.ID]
			if p == nil {
				pi := programmeItem(it)
				p = &pi
				byID[it.occ.ID] = p
			}
			p.Nodes = append(p.Nodes, n.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("programme of area %s: %w", area, err)
	}
	out := make([]loaxa.ProgrammeItem, 0, len(byID))
	for _, p := range byID {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(x, y loaxa.ProgrammeItem) int {
		return cmp.Or(x.Start.Compare(y.Start), strings.Compare(x.ID, y.ID))
	})
	return out, nil
}

// CheckProposal compiles the programme of the nodes that play p's
// announcement through p over the horizon as if p were decided as given,
// and returns the conflicts the announcement is part of there. A cancelled
// (or unknown) announcement plays nowhere and has none.
func (s *Scheduler) CheckProposal(ctx context.Context, p *loaxa.Proposal) ([]loaxa.Conflict, error) {
	return guarded("check proposal "+p.ID, func() ([]loaxa.Conflict, error) { return s.checkProposal(ctx, p) })
}

func (s *Scheduler) checkProposal(ctx context.Context, p *loaxa.Proposal) ([]loaxa.Conflict, error) {
	c, err := s.newCompilation(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("check proposal: %w", err)
	}
	out := []loaxa.Conflict{}
	i := slices.IndexFunc(c.anns, func(a *loaxa.Announcement) bool { return a.ID == p.Announcement })
	if i < 0 {
		return out, nil
	}
	a, cand := c.anns[i], *p
	if cand.DecidedAt.IsZero() {
		cand.DecidedAt = c.now // decided now: see pack for one under way
	}
	if c.proposals[a.ID] == nil {
		c.proposals[a.ID] = map[string]*loaxa.Proposal{}
	}
	c.proposals[a.ID][cand.Area] = &cand
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: cand.Area})
	if err != nil {
		return nil, fmt.Errorf("check proposal: %w", err)
	}
	out, err = s.conflictsOf(ctx, c, a.ID, nodes, func(n *loaxa.Node) bool {
		chain := c.chain(n.Area)
		return Targets(a, n.ID, chain) && c.proposalFor(a.ID, chain) == &cand
	})
	if err != nil {
		return nil, fmt.Errorf("check proposal: %w", err)
	}
	return out, nil
}

// conflictsOf plans over the horizon the nodes plays selects, once for
// each group of alike ones (eachPlan), and returns the conflicts
// announcement id is part of there, node by node.
func (s *Scheduler) conflictsOf(ctx context.Context, c *compilation, id string, nodes []*loaxa.Node, plays func(*loaxa.Node) bool) ([]loaxa.Conflict, error) {
	out := []loaxa.Conflict{}
	nodes = slices.DeleteFunc(slices.Clone(nodes), func(n *loaxa.Node) bool { return !plays(n) })
	err := s.eachPlan(ctx, c, nodes, c.now, c.now.Add(s.Horizon), func(n *loaxa.Node, p *nodePlan) error {
		for _, cf := range p.conflictsFor(n, p.itemsFor(n)) {
			if slices.ContainsFunc(cf.Occurrences, func(o string) bool { return strings.HasPrefix(o, id+"@") }) {
				out = append(out, cf)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CheckAnnouncement compiles the programme of a's target nodes over the
// horizon as if a were stored, and returns the conflicts a is part of.
func (s *Scheduler) CheckAnnouncement(ctx context.Context, a *loaxa.Announcement) ([]loaxa.Conflict, error) {
	return guarded(fmt.Sprintf("check announcement %q", a.Title), func() ([]loaxa.Conflict, error) { return s.checkAnnouncement(ctx, a) })
}

func (s *Scheduler) checkAnnouncement(ctx context.Context, a *loaxa.Announcement) ([]loaxa.Conflict, error) {
	cand := *a
	if cand.ID == "" {
		cand.ID = newID
	}
	cand.State = loaxa.AnnouncementActive
	c, err := s.newCompilation(ctx, &cand)
	if err != nil {
		return nil, fmt.Errorf("check announcement: %w", err)
	}
	nodes, err := s.targetNodes(ctx, c, &cand)
	if err != nil {
		return nil, fmt.Errorf("check announcement: %w", err)
	}
	out, err := s.conflictsOf(ctx, c, cand.ID, nodes, func(n *loaxa.Node) bool {
		chain := c.chain(n.Area)
		if !Targets(&cand, n.ID, chain) {
			return false
		}
		// A bulletin proposed to the node's station plays there only once
		// its officer accepts it, into a session or at its own times, and
		// that is checked then (CheckProposal). Checked here as played at
		// its own times, a district's 17:00 bulletin was refused for the
		// 17:00 item of a commune's own session, which its sender cannot
		// move.
		if st := c.station(chain); cand.Proposed && st != "" && above(cand.FromArea, st, chain) {
			return false
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("check announcement: %w", err)
	}
	return out, nil
}

// targetNodes returns the nodes a targets, sorted by id, read through the
// by-area index for its areas and by id for its nodes: a commune's
// conflict check read every node record of the province to find its 50
// (about 18 ms of its 21 ms at 10,000 nodes). A target area that does not
// exist has none, as a node that does not. A bulletin to a top area (the
// province) reads every node in one pass, as before: through the index,
// record by record, its check took 3.5 MB and 50,000 allocations more
// (BENCHMARKS.md); the caller keeps those it targets (Targets).
func (s *Scheduler) targetNodes(ctx context.Context, c *compilation, a *loaxa.Announcement) ([]*loaxa.Node, error) {
	if slices.ContainsFunc(a.Targets.Areas, func(area string) bool { _, ok := c.parent[area]; return ok && c.parent[area] == "" }) {
		return s.NodeService.FindNodes(ctx, loaxa.NodeFilter{})
	}
	var out []*loaxa.Node
	for _, area := range a.Targets.Areas {
		ns, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: area})
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("nodes within %s: %w", area, err)
		}
		out = append(out, ns...)
	}
	if len(a.Targets.Nodes) > 0 {
		ns, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{IDs: a.Targets.Nodes})
		if err != nil {
			return nil, fmt.Errorf("target nodes: %w", err)
		}
		out = append(out, ns...)
	}
	// A node in two target areas (a district and one of its communes), or
	// in one and named by id, is checked once.
	slices.SortFunc(out, func(x, y *loaxa.Node) int { return strings.Compare(x.ID, y.ID) })
	return slices.CompactFunc(out, func(x, y *loaxa.Node) bool { return x.ID == y.ID }), nil
}

// CheckSessionDeletion compiles the programme of the nodes in session id's
// area over the horizon with and without the session and returns the
// plays of bulletins from above placed at the head of its instances, each
// with where it would play without it: in another session (of the station
// or, with none left there, of the station above), at its own time, or
// nowhere (Lost: its own time has passed). An unknown session has none.
func (s *Scheduler) CheckSessionDeletion(ctx context.Context, id string) ([]loaxa.SessionBulletin, error) {
	return guarded("check session deletion "+id, func() ([]loaxa.SessionBulletin, error) { return s.checkSessionDeletion(ctx, id) })
}

// guarded returns fn's result, a panic in it as its error (safely): a
// programme or check an officer asked for reached the HTTP server's
// recover, a bare 500 that said nothing of what was not done, where the
// compile pass turns a node's panic into its error.
func guarded[T any](what string, fn func() (T, error)) (out T, err error) {
	err = safely(what, func() error {
		out, err = fn()
		return err
	})
	return out, err
}

func (s *Scheduler) checkSessionDeletion(ctx context.Context, id string) ([]loaxa.SessionBulletin, error) {
	c, err := s.newCompilation(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("check session deletion: %w", err)
	}
	out := []loaxa.SessionBulletin{}
	x := c.session[id]
	if x == nil {
		return out, nil
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: x.Area})
	if err != nil {
		return nil, fmt.Errorf("check session deletion: %w", err)
	}
	// A bulletin from above waits for the sessions of a node's station
	// alone: the nodes of an area below with sessions of its own hold none
	// of it in this one, and are not compiled.
	var groups []*nodeGroup
	for _, g := range c.groupNodes(nodes) {
		if c.station(c.chain(g.like.Area)) == x.Area {
			groups = append(groups, g)
		}
	}
	// A held play is one of an announcement at its own start (due), placed
	// at the head of the session's instances for a group of nodes.
	type play struct {
		ann string
		due int64
	}
	type held struct {
		group *nodeGroup
		it    programmed
	}
	from, to := c.now, c.now.Add(s.Horizon)
	var holds []held
	for _, g := range groups {
		items, err := s.programme(ctx, c, g.like, from, to)
		if err != nil {
			return nil, fmt.Errorf("check session deletion: %w", err)
		}
		for _, it := range items {
			if it.head && strings.HasPrefix(it.occ.Session, id+"@") {
				holds = append(holds, held{g, it})
			}
		}
	}
	if len(holds) == 0 {
		return out, nil
	}
	c.sessions[x.Area] = slices.DeleteFunc(slices.Clone(c.sessions[x.Area]), func(y *loaxa.Session) bool { return y.ID == id })
	delete(c.session, id)
	// Without the session a play moves to the next session within a week
	// of its own start, or to that start: a week past the horizon at most.
	// Only the groups that held plays are compiled again.
	moved := map[*nodeGroup]map[play]programmed{}
	for _, h := range holds {
		if moved[h.group] != nil {
			continue
		}
		items, err := s.programme(ctx, c, h.group.like, from, to.AddDate(0, 0, 7))
		if err != nil {
			return nil, fmt.Errorf("check session deletion: %w", err)
		}
		m := make(map[play]programmed, len(items))
		for _, it := range items {
			m[play{it.ann.ID, it.due.UnixNano()}] = it
		}
		moved[h.group] = m
	}
	// One entry per play, whichever nodes it is on; lost if lost on any:
	// a node enrolled after where it moves to (but by its place in the
	// session) would not play it.
	byPlay := map[string]int{}
	for _, h := range holds {
		it := h.it
		m, ok := moved[h.group][play{it.ann.ID, it.due.UnixNano()}]
		holding, lost := false, !ok
		for _, n := range h.group.nodes {
			if n.EnrolledBy(it.occ.Start) {
				holding = true
				if ok && !n.EnrolledBy(m.occ.Start) {
					lost = true
					break
				}
			}
		}
		if !holding {
			continue // no node of the group was enrolled by then
		}
		b := loaxa.SessionBulletin{Announcement: it.ann.ID, Title: it.ann.Title, FromArea: it.ann.FromArea,
			Due: it.due.UTC(), Start: it.occ.Start, Lost: lost}
		if !lost {
			b.MovesTo = m.occ.Start
			if m.occ.Session != "" {
				b.MovesToSession, _, _ = strings.Cut(m.occ.Session, "@")
			}
		}
		key := it.occ.ID
		if i, ok := byPlay[key]; ok {
			if b.Lost {
				out[i] = b
			}
			continue
		}
		byPlay[key] = len(out)
		out = append(out, b)
	}
	slices.SortFunc(out, func(x, y loaxa.SessionBulletin) int {
		return cmp.Or(x.Due.Compare(y.Due), cmp.Compare(len(x.Announcement), len(y.Announcement)), strings.Compare(x.Announcement, y.Announcement))
	})
	// The sending area by its name as well: an officer knows "Huyện Tiên
	// Lãng", not 318. One it cannot read is named by its id alone.
	names := map[string]string{}
	for i := range out {
		id := out[i].FromArea
		name, ok := names[id]
		if !ok {
			if a, err := s.AreaService.FindAreaByID(ctx, id); err == nil {
				name = a.Name
			}
			names[id] = name
		}
		out[i].FromAreaName = name
	}
	return out, nil
}
