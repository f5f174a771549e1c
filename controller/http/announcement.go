package http

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Limits on announcements.
const (
	// MaxRepeat is the most times one occurrence plays back to back.
	MaxRepeat = 10
	// MaxTargets is the most areas, and the most nodes, one announcement names.
	MaxTargets = 1000
	// startSlack forgives a start that passed while the request travelled.
	startSlack = 5 * time.Second
)

// exampleZone is the zone of the example times in error messages: Vietnam,
// which keeps +07:00 all year.
var exampleZone = time.FixedZone("+07", 7*60*60)

var priorities = []protocol.Priority{protocol.PriorityBackground, protocol.PriorityNormal, protocol.PriorityHigh, protocol.PriorityEmergency}

// announcementRequest is the body of POST /api/v1/announcements. Start is
// a string so that a bad time gets a message saying how to write one.
type announcementRequest struct {
	Title     string            `json:"title"`
	ContentID string            `json:"content_id"`
	Targets   loaxa.Targets     `json:"targets"`
	Priority  protocol.Priority `json:"priority"`
	Start     string            `json:"start"`
	RRule     *string           `json:"rrule"`
	Repeat    *int              `json:"repeat"`
	// Recurrence bounds and exceptions, sessions, policies and chimes.
	Until        string   `json:"until"`
	Count        int      `json:"count"`
	ExDates      []string `json:"exdates"`
	OnHolidays   bool     `json:"on_holidays"`
	Session      string   `json:"session"`
	GapMS        int64    `json:"gap_ms"`
	OnPreempt    string   `json:"on_preempt"`
	OpeningChime string   `json:"opening_chime"`
	ClosingChime string   `json:"closing_chime"`
	// Force creates the announcement despite conflicts.
	Force bool `json:"force"`
	// StreamURL and DurationMS: a programme relay instead of content.
	StreamURL  string `json:"stream_url"`
	DurationMS int64  `json:"duration_ms"`
}

// conflictResponse answers a create refused for conflicts (409).
type conflictResponse struct {
	Error     errorBody        `json:"error"`
	Conflicts []loaxa.Conflict `json:"conflicts"`
}

// createdAnnouncement answers POST /api/v1/announcements: the announcement,
// the conflicts it was forced in with, and the proposals it made.
type createdAnnouncement struct {
	*loaxa.Announcement
	Conflicts []loaxa.Conflict  `json:"conflicts,omitempty"`
	Proposals []*loaxa.Proposal `json:"proposals,omitempty"`
}

// MaxExDates bounds the exception dates of one announcement.
const MaxExDates = 366

// announcementsResponse answers GET /api/v1/announcements.
type announcementsResponse struct {
	Announcements []*loaxa.Announcement `json:"announcements"`
}

// deliveriesResponse answers GET /api/v1/announcements/{id}/deliveries.
type deliveriesResponse struct {
	Announcement string                      `json:"announcement"`
	Counts       map[loaxa.DeliveryState]int `json:"counts"`
	// FailedToSound counts deliveries overdue for a node event.
	FailedToSound int               `json:"failed_to_sound"`
	Deliveries    []*loaxa.Delivery `json:"deliveries"`
}

// handleCreateAnnouncement answers POST /api/v1/announcements.
func (s *Server) handleCreateAnnouncement(w http.ResponseWriter, r *http.Request) error {
	var req announcementRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.now()
	a := &loaxa.Announcement{
		ContentID: req.ContentID,
		Priority:  req.Priority,
		Repeat:    1,
		State:     loaxa.AnnouncementActive,
		CreatedBy: userFrom(ctx).Username,
		CreatedAt: now,
	}
	if req.RRule != nil {
		a.RRule = strings.TrimSpace(*req.RRule)
	}
	var err error
	if a.Title, err = cleanText("title", req.Title, false); err != nil {
		return err
	}
	if a.Priority == "" {
		a.Priority = protocol.PriorityNormal
	} else if !a.Priority.Valid() {
		return loaxa.Errorf(loaxa.EInvalid, "priority %q is not a priority; use one of %s (default normal).",
			a.Priority, joinPriorities())
	}
	if a.Start, err = parseStart(req.Start, now, a.RRule != "", func() *time.Location { return s.clockOf(ctx, req.Targets.Areas) }); err != nil {
		return err
	}
	if err := s.readSchedule(ctx, &req, a); err != nil {
		return err
	}
	if req.Repeat != nil {
		if *req.Repeat < 1 || *req.Repeat > MaxRepeat {
			return loaxa.Errorf(loaxa.EInvalid, "repeat %d is out of range; give 1 to %d plays in a row (default 1).", *req.Repeat, MaxRepeat)
		}
		a.Repeat = *req.Repeat
	}
	if a.Targets, err = cleanTargets(req.Targets); err != nil {
		return err
	}

	if req.StreamURL != "" {
		if err := checkRelay(&req, a); err != nil {
			return err
		}
	} else if !protocol.ValidContentID(a.ContentID) {
		if a.ContentID == "" {
			return loaxa.Errorf(loaxa.EInvalid, "content_id is required; upload audio with POST /api/v1/content and use the id it returns.")
		}
		return loaxa.Errorf(loaxa.EInvalid, "content_id %q is not a content id; use the 64 hex digits returned by POST /api/v1/content.", a.ContentID)
	}
	if a.StreamURL == "" {
		c, err := s.ContentService.FindContentByID(ctx, a.ContentID)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return loaxa.Errorf(loaxa.EInvalid,
				"content_id %s does not exist; upload the audio with POST /api/v1/content or pick one from GET /api/v1/content.", a.ContentID)
		} else if err != nil {
			return fmt.Errorf("create announcement: find content %s: %w", a.ContentID, err)
		}
		if a.Title == "" {
			a.Title = c.Title
		}
	} else if a.Title == "" {
		a.Title = "Tiếp sóng " + a.StreamURL
	}
	for _, id := range a.Targets.Areas {
		if _, err := s.requireArea(ctx, "targets.areas", id); err != nil {
			return err
		}
	}
	areas, err := s.authorizeTargets(ctx, a)
	if err != nil {
		return err
	}
	if err := s.checkSessionTargets(ctx, a); err != nil {
		return err
	}
	if err := s.checkRecurrence(ctx, a); err != nil {
		return err
	}
	stations, err := s.proposalStations(ctx, a)
	if err != nil {
		return err
	}
	a.Proposed = len(stations) > 0

	resp := createdAnnouncement{Announcement: a}
	if s.ProgrammeService != nil {
		conflicts, err := s.ProgrammeService.CheckAnnouncement(ctx, a)
		if loaxa.ErrorCode(err) == loaxa.EInternal {
			s.writeFault(w, r, "announcement conflict check failed", err,
				fmt.Sprintf("The bulletin %q was not created: the controller failed while checking it against the programme", a.Title),
				"Nothing was stored or sent. "+tryAgain, "title", a.Title)
			return nil
		} else if err != nil {
			return fmt.Errorf("create announcement: %w", err)
		}
		if len(conflicts) > 0 && !req.Force {
			s.writeJSON(w, r, http.StatusConflict, conflictResponse{
				Error: errorBody{Code: loaxa.EConflict, Message: fmt.Sprintf(
					"The announcement conflicts with the programme in %s: %s Fix it, or send the same request with \"force\": true to schedule it anyway.",
					loaxa.Count(len(conflicts), "place", "places"), conflicts[0].Message)},
				Conflicts: conflicts,
			})
			return nil
		}
		resp.Conflicts = conflicts
	}

	if err := s.AnnouncementService.CreateAnnouncement(ctx, a); err != nil {
		return fmt.Errorf("create announcement: %w", err)
	}
	if len(stations) > 0 {
		for _, st := range stations {
			resp.Proposals = append(resp.Proposals, &loaxa.Proposal{Announcement: a.ID, Area: st})
		}
		if err := s.ProposalService.CreateProposals(ctx, resp.Proposals); err != nil {
			return fmt.Errorf("create announcement %s: %w", a.ID, err)
		}
	}
	s.changed()
	s.auditIn(r, auditAnnCreate, a.ID, areas, auditTargets(a)+fmt.Sprintf(", %s forced, %s", loaxa.Count(len(resp.Conflicts), "conflict", "conflicts"), loaxa.Count(len(resp.Proposals), "proposal", "proposals")))
	s.logger().Info("announcement created", "announcement", a.ID, "content", a.ContentID, "priority", a.Priority,
		"start", a.Start, "rrule", a.RRule, "session", a.Session, "areas", a.Targets.Areas, "nodes", a.Targets.Nodes,
		"proposals", len(resp.Proposals), "conflicts", len(resp.Conflicts), "by", a.CreatedBy)
	s.writeJSON(w, r, http.StatusCreated, resp)
	return nil
}

// readSchedule reads the recurrence bounds, exceptions, session, policy
// and chimes of a request into a.
func (s *Server) readSchedule(ctx context.Context, req *announcementRequest, a *loaxa.Announcement) error {
	if req.Until != "" {
		t, err := time.Parse(time.RFC3339, req.Until)
		if err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "until %q is not an RFC 3339 time; write it like 2026-12-31T23:59:59+07:00.", req.Until)
		}
		if !t.After(a.Start) {
			loc := s.clockOf(ctx, req.Targets.Areas)
			return loaxa.Errorf(loaxa.EInvalid, "The end, %s (%s time, until %s), is not after the first play, %s; give the last instant the announcement may play.",
				t.In(loc).Format("15:04 on "+loaxa.DateLayout), loc, req.Until, a.Start.In(loc).Format("15:04 on "+loaxa.DateLayout))
		}
		a.Until = t
	}
	if req.Count < 0 {
		return loaxa.Errorf(loaxa.EInvalid, "count %d is negative; give how many plays in all, or leave it out.", req.Count)
	}
	a.Count = req.Count
	if (a.Count > 0 || !a.Until.IsZero()) && a.RRule == "" {
		return loaxa.Errorf(loaxa.EInvalid, "until and count bound a recurrence; give an rrule too, or leave them out for one play.")
	}
	if len(req.ExDates) > MaxExDates {
		return loaxa.Errorf(loaxa.EInvalid, "exdates has %d dates; the limit is %d.", len(req.ExDates), MaxExDates)
	}
	a.ExDates = req.ExDates
	a.OnHolidays = req.OnHolidays
	switch req.OnPreempt {
	case "", loaxa.PreemptResume, loaxa.PreemptDrop:
		a.OnPreempt = req.OnPreempt
	default:
		return loaxa.Errorf(loaxa.EInvalid, "on_preempt %q is not a policy; use resume (play again from the start after the interruption) or drop.", req.OnPreempt)
	}
	if req.GapMS < 0 || req.GapMS > protocol.MaxGapMS {
		return loaxa.Errorf(loaxa.EInvalid, "gap_ms %d is out of range; give 0 to %d milliseconds of silence between repeats.", req.GapMS, protocol.MaxGapMS)
	}
	a.GapMS = req.GapMS
	for _, ch := range []struct {
		field string
		id    string
		dst   *string
	}{{"opening_chime", req.OpeningChime, &a.OpeningChime}, {"closing_chime", req.ClosingChime, &a.ClosingChime}} {
		if ch.id == "" {
			continue
		}
		if !protocol.ValidContentID(ch.id) {
			return loaxa.Errorf(loaxa.EInvalid, "%s %q is not a content id; use the 64 hex digits returned by POST /api/v1/content.", ch.field, ch.id)
		}
		if _, err := s.ContentService.FindContentByID(ctx, ch.id); loaxa.ErrorCode(err) == loaxa.ENotFound {
			return loaxa.Errorf(loaxa.EInvalid, "%s %s does not exist; upload the chime with POST /api/v1/content first.", ch.field, ch.id)
		} else if err != nil {
			return fmt.Errorf("find chime %s: %w", ch.id, err)
		}
		*ch.dst = ch.id
	}
	if req.Session != "" {
		if s.SessionService == nil {
			return loaxa.Errorf(loaxa.EUnavailable, "Sessions are not available on this controller.")
		}
		sess, err := s.SessionService.FindSessionByID(ctx, req.Session)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonSessionGone, Message: fmt.Sprintf(
				"session %q does not exist (it may have been deleted since the page was read); pick one from GET /api/v1/sessions.", req.Session)}
		} else if err != nil {
			return fmt.Errorf("find session %s: %w", req.Session, err)
		}
		a.Session = sess.ID
	}
	if u := userFrom(ctx); u != nil {
		a.FromArea = u.Area
	}
	return nil
}

// checkSessionTargets refuses a session that some target does not follow:
// a session plays on the nodes of its area and below only, so an item in
// another area's session would play nowhere there.
func (s *Server) checkSessionTargets(ctx context.Context, a *loaxa.Announcement) error {
	if a.Session == "" {
		return nil
	}
	sess, err := s.SessionService.FindSessionByID(ctx, a.Session)
	if err != nil {
		return fmt.Errorf("find session %s: %w", a.Session, err)
	}
	var off []string
	follows := func(area string) (bool, error) {
		chain, err := s.AreaService.AreaChain(ctx, area)
		if err != nil {
			return false, fmt.Errorf("session %s: %w", a.Session, err)
		}
		return slices.Contains(chain, sess.Area), nil
	}
	for _, id := range a.Targets.Areas {
		if ok, err := follows(id); err != nil {
			return err
		} else if !ok {
			off = append(off, "area "+id)
		}
	}
	for _, id := range a.Targets.Nodes {
		n, err := s.requireNode(ctx, "targets.nodes", id)
		if err != nil {
			return err
		}
		if ok, err := follows(n.Area); err != nil {
			return err
		} else if !ok {
			off = append(off, fmt.Sprintf("node %s (area %s)", id, n.Area))
		}
	}
	if len(off) > 0 {
		return loaxa.Errorf(loaxa.EInvalid,
			"session %s (%s) is a session of area %s, which these targets do not follow: %s. A session plays only on the nodes of its area and below; pick a session of the targets' own area or one above it (GET /api/v1/sessions?area=...), or target area %s.",
			sess.ID, sess.Name, sess.Area, strings.Join(off, ", "), sess.Area)
	}
	return nil
}

// checkRecurrence expands a's rule in the zone of every target area, so a
// bad rule or exception is refused with the library's reason, and so is a
// recurrence with nothing left to play from now on (an UNTIL in the past,
// a COUNT used up, a day that does not exist): stored, it would never
// sound.
func (s *Server) checkRecurrence(ctx context.Context, a *loaxa.Announcement) error {
	zones := map[string]bool{loaxa.DefaultTimeZone: true}
	for _, id := range a.Targets.Areas {
		z, err := s.zoneOf(ctx, id)
		if err != nil {
			return err
		}
		zones[z] = true
	}
	for z := range zones {
		loc, err := loaxa.Location(z)
		if err != nil {
			return err
		}
		rec, err := loaxa.NewRecurrence(a, loc)
		if err != nil {
			return err
		}
		if _, ok := rec.Next(s.now().Add(-time.Second)); a.Recurring() && !ok {
			return &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonRecurrenceOver, Message: fmt.Sprintf(
				"rrule %q plays no more from now on (in %s): its UNTIL or count has passed, or it matches no day (like 30 February), so the speakers would stay silent. Check the dates in the rule, e.g. FREQ=DAILY;UNTIL=20261231T165959Z.",
				a.RRule, z)}
		}
	}
	return nil
}

// zoneOf returns the time zone area keeps its schedule in: its own or its
// nearest ancestor's, else DefaultTimeZone.
func (s *Server) zoneOf(ctx context.Context, area string) (string, error) {
	chain, err := s.AreaService.AreaChain(ctx, area)
	if err != nil {
		return "", fmt.Errorf("zone of %s: %w", area, err)
	}
	for _, id := range chain {
		ar, err := s.AreaService.FindAreaByID(ctx, id)
		if err != nil {
			return "", fmt.Errorf("zone of %s: %w", area, err)
		}
		if ar.TimeZone != "" {
			return ar.TimeZone, nil
		}
	}
	return loaxa.DefaultTimeZone, nil
}

// locationOf returns the time zone area lies in, loaded. A zone this
// version cannot load is the area's (stored), named in the error.
func (s *Server) locationOf(ctx context.Context, area string) (*time.Location, error) {
	zone, err := s.zoneOf(ctx, area)
	if err != nil {
		return nil, err
	}
	loc, err := loaxa.Location(zone)
	if err != nil {
		return nil, fmt.Errorf("area %s: %w", area, err)
	}
	return loc, nil
}

// proposalStations returns the stations a normal bulletin from a district
// or province officer is proposed to: the areas with sessions within its
// target areas, and the station each target area and target node's area
// lies in (the nearest area with sessions above it, as the scheduler finds
// it), strictly below the officer's own area. Other bulletins (other
// levels, other roles, a session named) are scheduled as sent.
func (s *Server) proposalStations(ctx context.Context, a *loaxa.Announcement) ([]string, error) {
	u := userFrom(ctx)
	if u == nil || (u.Role != loaxa.RoleProvince && u.Role != loaxa.RoleDistrict) ||
		a.Priority != protocol.PriorityNormal || a.Session != "" || s.SessionService == nil || s.ProposalService == nil {
		return nil, nil
	}
	targets, err := s.targetAreas(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("proposals: %w", err)
	}
	var out []string
	add := func(station string) {
		if !slices.Contains(out, station) {
			out = append(out, station)
		}
	}
	for _, target := range targets {
		// A target below a station (a village of a commune, or one of the
		// commune's clusters) plays through that station.
		chain, err := s.AreaService.AreaChain(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		below := chain
		if i := slices.Index(chain, u.Area); i >= 0 {
			below = chain[:i]
		}
		sessions, err := s.SessionService.FindSessions(ctx, loaxa.SessionFilter{Areas: below})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		for _, id := range below {
			if slices.ContainsFunc(sessions, func(x *loaxa.Session) bool { return x.Area == id }) {
				add(id)
				break
			}
		}
		if !slices.Contains(a.Targets.Areas, target) {
			continue // a node's area: its own station only
		}
		areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: target})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		ids := make([]string, 0, len(areas))
		for _, ar := range areas {
			if ar.ID != u.Area {
				ids = append(ids, ar.ID)
			}
		}
		sessions, err = s.SessionService.FindSessions(ctx, loaxa.SessionFilter{Areas: ids})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		for _, x := range sessions {
			add(x.Area)
		}
	}
	return out, nil
}

// targetAreas returns a's target areas and the areas of its target nodes,
// each once: the areas it plays in.
func (s *Server) targetAreas(ctx context.Context, a *loaxa.Announcement) ([]string, error) {
	areas := slices.Clone(a.Targets.Areas)
	for _, id := range a.Targets.Nodes {
		n, err := s.requireNode(ctx, "targets.nodes", id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(areas, n.Area) {
			areas = append(areas, n.Area)
		}
	}
	return areas, nil
}

// parseStart reads an announcement start: RFC 3339, at most a year ahead,
// and not in the past unless it starts a recurrence (DTSTART may well be
// this morning for "every day at 05:30"). Its refusals an officer meets
// say the times on the clock of clock(), the zone of the bulletin's area
// (read only for a refusal), named: an RFC 3339 instant is not how a
// commune reads a time.
func parseStart(s string, now time.Time, recurring bool, clock func() *time.Location) (time.Time, error) {
	example := now.In(exampleZone).Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339)
	if s == "" {
		return time.Time{}, loaxa.Errorf(loaxa.EInvalid, "start is required; give the time to play in RFC 3339, e.g. %s.", example)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, loaxa.Errorf(loaxa.EInvalid,
			"start %q is not an RFC 3339 time; write the date, T, the time and the UTC offset, e.g. %s.", s, example)
	}
	var loc *time.Location
	at := func(t time.Time) string { return t.In(loc).Format("15:04 on " + loaxa.DateLayout) }
	refuse := func(reason, format string, args ...any) (time.Time, error) {
		return time.Time{}, &loaxa.Error{Code: loaxa.EInvalid, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	if recurring && t.Before(now.AddDate(-1, 0, 0)) {
		loc = clock()
		return refuse(loaxa.ReasonStartTooOld, "The recurrence starts at %s (%s time, start %s), more than a year ago; start it at its first play from now on, on or after %s.",
			at(t), loc, s, now.In(loc).Format(loaxa.DateLayout))
	}
	if !recurring && t.Before(now.Add(-startSlack)) {
		loc = clock()
		return refuse(loaxa.ReasonStartPast, "The time to play, %s (%s time, start %s), has passed: it is %s there now. Give a later time, e.g. %s.",
			at(t), loc, s, at(now), example)
	}
	if limit := now.AddDate(1, 0, 0); t.After(limit) {
		loc = clock()
		return refuse(loaxa.ReasonStartTooFar, "The first play, %s (%s time, start %s), is more than a year ahead; give a time before %s.",
			at(t), loc, s, at(limit))
	}
	return t, nil
}

// clockOf is the clock a bulletin's times are said on: the zone of the
// first of areas the store knows, or Vietnam's (DefaultTimeZone).
func (s *Server) clockOf(ctx context.Context, areas []string) *time.Location {
	for _, id := range areas {
		if loc, err := s.locationOf(ctx, id); err == nil {
			return loc
		}
	}
	if loc, err := loaxa.Location(loaxa.DefaultTimeZone); err == nil {
		return loc
	}
	return exampleZone
}

// cleanTargets checks target ids and drops repeats; at least one target
// is needed.
func cleanTargets(t loaxa.Targets) (loaxa.Targets, error) {
	out := loaxa.Targets{Areas: []string{}, Nodes: []string{}}
	for _, list := range []struct {
		field string
		in    []string
		out   *[]string
	}{{"targets.areas", t.Areas, &out.Areas}, {"targets.nodes", t.Nodes, &out.Nodes}} {
		if len(list.in) > MaxTargets {
			return out, loaxa.Errorf(loaxa.EInvalid, "%s names %d targets; the limit is %d, so target a parent area instead.",
				list.field, len(list.in), MaxTargets)
		}
		for _, id := range list.in {
			if err := checkID(list.field, id); err != nil {
				return out, err
			}
			if !slices.Contains(*list.out, id) {
				*list.out = append(*list.out, id)
			}
		}
	}
	if len(out.Areas) == 0 && len(out.Nodes) == 0 {
		return out, loaxa.Errorf(loaxa.EInvalid,
			"targets is empty; name at least one area or node, e.g. {\"areas\":[\"12346\"],\"nodes\":[]}.")
	}
	return out, nil
}

// authorizeTargets checks that every target node exists and that the user
// may schedule a (and, for an emergency, send one) on every target area and
// every target node's area, and returns those areas (targetAreas). A
// refusal names an area only if the request named it: not the area of a
// target node, nor, for a stored announcement (a.ID set), which of its
// targets lies outside the caller's area (authorizeOn).
func (s *Server) authorizeTargets(ctx context.Context, a *loaxa.Announcement) ([]string, error) {
	actions := []loaxa.Action{loaxa.ActionSchedule}
	if a.Priority == protocol.PriorityEmergency {
		actions = append(actions, loaxa.ActionEmergency)
	}
	check := func(area, what string) error {
		if a.ID != "" {
			what = fmt.Sprintf("Part of announcement %s", a.ID)
		}
		for _, act := range actions {
			if err := s.authorizeOn(ctx, act, area, what); err != nil {
				return err
			}
		}
		return nil
	}
	for _, area := range a.Targets.Areas {
		if err := check(area, fmt.Sprintf("Area %q", area)); err != nil {
			return nil, err
		}
	}
	for _, id := range a.Targets.Nodes {
		n, err := s.requireNode(ctx, "targets.nodes", id)
		if err != nil {
			return nil, err
		}
		if err := check(n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
			return nil, err
		}
	}
	return s.targetAreas(ctx, a)
}

// requireNode returns node id named by a request field, or EInvalid if it
// does not exist.
func (s *Server) requireNode(ctx context.Context, field, id string) (*loaxa.Node, error) {
	if err := checkID(field, id); err != nil {
		return nil, err
	}
	n, err := s.NodeService.FindNodeByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.EInvalid, "%s: there is no node %q; pick one from GET /api/v1/nodes.", field, id)
	} else if err != nil {
		return nil, fmt.Errorf("find node %s: %w", id, err)
	}
	return n, nil
}

func joinPriorities() string {
	names := make([]string, len(priorities))
	for i, p := range priorities {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// handleListAnnouncements answers GET /api/v1/announcements?state=: the
// announcements that play somewhere in the user's area.
func (s *Server) handleListAnnouncements(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "state"); err != nil {
		return err
	}
	ctx := r.Context()
	f := loaxa.AnnouncementFilter{State: r.URL.Query().Get("state")}
	switch f.State {
	case "", loaxa.AnnouncementActive, loaxa.AnnouncementCancelled:
	default:
		return loaxa.Errorf(loaxa.EInvalid, "state %q is not an announcement state; use %s or %s.",
			f.State, loaxa.AnnouncementActive, loaxa.AnnouncementCancelled)
	}
	all, err := s.AnnouncementService.FindAnnouncements(ctx, f)
	if err != nil {
		return fmt.Errorf("list announcements: %w", err)
	}
	sc, err := s.scopeOf(ctx, userFrom(ctx), true)
	if err != nil {
		return err
	}
	out := make([]*loaxa.Announcement, 0, len(all))
	for _, a := range all {
		if sc.reaches(a) {
			out = append(out, a)
		}
	}
	s.writeJSON(w, r, http.StatusOK, announcementsResponse{Announcements: out})
	return nil
}

// findAnnouncement returns the announcement named by the path, if it plays
// somewhere in the user's area, with the user's scope.
func (s *Server) findAnnouncement(r *http.Request) (*loaxa.Announcement, *scope, error) {
	ctx, id := r.Context(), r.PathValue("id")
	a, err := s.AnnouncementService.FindAnnouncementByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, nil, loaxa.Errorf(loaxa.ENotFound, "There is no announcement %q; list them with GET /api/v1/announcements.", id)
	} else if err != nil {
		return nil, nil, fmt.Errorf("get announcement %s: %w", id, err)
	}
	u := userFrom(ctx)
	sc, err := s.scopeOf(ctx, u, true)
	if err != nil {
		return nil, nil, err
	}
	if !sc.reaches(a) {
		return nil, nil, &loaxa.Error{Code: loaxa.EForbidden, Reason: loaxa.ReasonBulletinElsewhere,
			Message: fmt.Sprintf("Announcement %s does not play in your area %q.", a.ID, u.Area)}
	}
	return a, sc, nil
}

// handleGetAnnouncement answers GET /api/v1/announcements/{id}.
func (s *Server) handleGetAnnouncement(w http.ResponseWriter, r *http.Request) error {
	a, _, err := s.findAnnouncement(r)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, a)
	return nil
}

// handleCancelAnnouncement answers POST /api/v1/announcements/{id}/cancel.
// Cancelling needs the same rights on every target as creating.
func (s *Server) handleCancelAnnouncement(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	a, _, err := s.findAnnouncement(r)
	if err != nil {
		return err
	}
	areas, err := s.authorizeTargets(ctx, a)
	if err != nil {
		return err
	}
	if a.State == loaxa.AnnouncementCancelled {
		// Cancelling twice is not an error, so an operator may retry.
		s.writeJSON(w, r, http.StatusOK, a)
		return nil
	}
	if err := s.AnnouncementService.CancelAnnouncement(ctx, a.ID); err != nil {
		return fmt.Errorf("cancel announcement %s: %w", a.ID, err)
	}
	s.changed()
	a, err = s.AnnouncementService.FindAnnouncementByID(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("cancel announcement: %w", err)
	}
	s.auditIn(r, auditAnnCancel, a.ID, areas, auditTargets(a))
	s.logger().Info("announcement cancelled", "announcement", a.ID, "by", userFrom(ctx).Username)
	s.writeJSON(w, r, http.StatusOK, a)
	return nil
}

// handleListDeliveries answers GET /api/v1/announcements/{id}/deliveries:
// the per-node fate of each occurrence, for the nodes in the user's area,
// with a count per state.
func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	a, sc, err := s.findAnnouncement(r)
	if err != nil {
		return err
	}
	ds, err := s.DeliveryService.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: a.ID})
	if err != nil {
		return fmt.Errorf("list deliveries of %s: %w", a.ID, err)
	}
	resp := deliveriesResponse{Announcement: a.ID, Counts: map[loaxa.DeliveryState]int{}, Deliveries: []*loaxa.Delivery{}}
	now := s.now()
	for _, d := range ds {
		if sc.hasNode(d.Node) {
			d.CheckSilence(now, loaxa.SilenceBound)
			if d.FailedToSound {
				resp.FailedToSound++
			}
			resp.Deliveries = append(resp.Deliveries, d)
			resp.Counts[d.State]++
		}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// MaxRelay bounds one relay occurrence.
const MaxRelay = 24 * time.Hour

// checkRelay reads a programme relay request: a background item that
// plays a station's live stream for duration_ms instead of content.
func checkRelay(req *announcementRequest, a *loaxa.Announcement) error {
	u, err := url.Parse(req.StreamURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return loaxa.Errorf(loaxa.EInvalid, "stream_url %q: give the station's http:// or https:// stream address (an Icecast MP3 mount).", req.StreamURL)
	case req.ContentID != "":
		return loaxa.Errorf(loaxa.EInvalid, "Give content_id or stream_url, not both.")
	case req.Priority != "" && req.Priority != protocol.PriorityBackground:
		return loaxa.Errorf(loaxa.EInvalid, "A stream relay is background (anything else preempts it); leave priority out or say background.")
	case req.DurationMS < 5_000 || req.DurationMS > MaxRelay.Milliseconds():
		return loaxa.Errorf(loaxa.EInvalid, "duration_ms %d: a relay lasts from 5 seconds (5000) to 24 hours (86400000), e.g. 3600000 for an hour.", req.DurationMS)
	case req.OpeningChime != "" || req.ClosingChime != "" || (req.Repeat != nil && *req.Repeat > 1):
		return loaxa.Errorf(loaxa.EInvalid, "A stream relay has no chimes and no repeats.")
	}
	a.StreamURL, a.DurationMS, a.Priority = req.StreamURL, req.DurationMS, protocol.PriorityBackground
	return nil
}
