package http

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// MaxAuditLimit is the largest limit GET /api/v1/audit accepts.
const MaxAuditLimit = 10000

// Audit actions recorded by the API. Other packages' handlers may add
// their own; the names read "noun.verb".
const (
	auditLogin                = "auth.login"
	auditLoginFailed          = "auth.login_failed"
	auditLogout               = "auth.logout"
	auditUserCreate           = "user.create"
	auditSessionsRevoke       = "user.sessions_revoke"
	auditPasswordChange       = "auth.password_change"
	auditPasswordChangeFailed = "auth.password_change_failed"
	auditPasswordReset        = "user.password_reset"
	auditAreaCreate           = "area.create"
	auditNodeCreate           = "node.create"
	auditNodeUpdate           = "node.update"
	auditContentUpload        = "content.upload"
	auditAnnCreate            = "announcement.create"
	auditAnnCancel            = "announcement.cancel"
)

// audit records a state-changing action by the requesting user. A failure
// to record is logged, not returned: the action already happened. An
// action not tied to an area is filed under the actor's own area, so that
// the actor's supervisors see it.
func (s *Server) audit(r *http.Request, action, target, area, detail string) {
	s.record(r, &loaxa.AuditEntry{Action: action, Target: target, Area: area, Detail: detail})
}

// auditIn records an action on several areas (an announcement's targets,
// the areas keeping standing content): filed under the lowest area they
// all lie in, and seen by the readers of each of them.
func (s *Server) auditIn(r *http.Request, action, target string, areas []string, detail string) {
	e := &loaxa.AuditEntry{Action: action, Target: target, Detail: detail}
	s.fileUnder(r.Context(), e, areas)
	s.record(r, e)
}

// fileUnder files e under the lowest area that areas all lie in, listing
// them when there are several, so that the readers of each see it.
func (s *Server) fileUnder(ctx context.Context, e *loaxa.AuditEntry, areas []string) {
	if len(areas) == 0 {
		return
	}
	area, err := s.commonArea(ctx, areas)
	if err != nil {
		// Still recorded: under the first area, for the readers of each.
		s.logger().Error("audit: common area", "action", e.Action, "target", e.Target, "areas", areas, "err", err)
		area = areas[0]
	}
	e.Area = area
	if len(areas) > 1 || areas[0] != area {
		e.Areas = slices.Clone(areas)
	}
}

// record records e by the requesting user (or node). An action not tied
// to an area is filed under the actor's own area.
func (s *Server) record(r *http.Request, e *loaxa.AuditEntry) {
	e.Actor = "anonymous"
	if u := userFrom(r.Context()); u != nil {
		e.Actor = u.Username
		if e.Area == "" {
			e.Area = u.Area
		}
	} else if n := nodeFrom(r.Context()); n != nil {
		e.Actor = "node:" + n.ID
	}
	s.recordAs(r, e)
}

// auditAs records an action by a named actor, for requests that are not
// signed in yet (a sign-in attempt, an enrolment).
func (s *Server) auditAs(r *http.Request, actor, action, target, area, detail string) {
	s.recordAs(r, &loaxa.AuditEntry{Actor: actor, Action: action, Target: target, Area: area, Detail: detail})
}

// recordAs appends e, stamped now with the request's remote address.
func (s *Server) recordAs(r *http.Request, e *loaxa.AuditEntry) {
	if s.AuditService == nil {
		return
	}
	e.At, e.Remote = s.now(), r.RemoteAddr
	if err := s.AuditService.RecordAudit(r.Context(), e); err != nil {
		s.logger().Error("audit: record failed", "action", e.Action, "target", e.Target, "err", err)
	}
}

// commonArea returns the lowest area that areas all lie in (one of them,
// or an ancestor), or "" if there is none or no areas.
func (s *Server) commonArea(ctx context.Context, areas []string) (string, error) {
	var common []string // root first
	for i, id := range areas {
		chain, err := s.AreaService.AreaChain(ctx, id)
		if err != nil {
			return "", fmt.Errorf("common area of %v: %w", areas, err)
		}
		slices.Reverse(chain)
		if i == 0 {
			common = chain
			continue
		}
		n := 0
		for n < len(common) && n < len(chain) && common[n] == chain[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 0 {
		return "", nil
	}
	return common[len(common)-1], nil
}

// auditResponse answers GET /api/v1/audit.
type auditResponse struct {
	Entries []*loaxa.AuditEntry `json:"entries"`
	// Names are what the console calls the things the entries name by
	// id, by kind: the target ("announcement", "emergency", "node",
	// "content", "session", "live", "cap", "proposal"), a cluster's own
	// actions ("node:<id>") and the ids in the details (content=, node=,
	// nodes=, follows=, session=, and the audio of the CAP recordings,
	// old and new). An entry holds ids only
	// (a title can change, and a hash is what was sent); an officer reads
	// names. Things gone since (or never found) are left out.
	Names map[string]map[string]string `json:"names,omitempty"`
}

// handleListAudit answers GET /api/v1/audit?actor=&area=&from=&to=&limit=&order=:
// the audit log of the user's area, oldest first (or newest first).
func (s *Server) handleListAudit(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "actor", "area", "from", "to", "limit", "order"); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	f := loaxa.AuditFilter{Within: userFrom(ctx).Area, Actor: q.Get("actor")}
	if area := q.Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionReadAudit, area); err != nil {
			return err
		}
		f.Within = area
	}
	var err error
	if f.From, err = parseQueryTime("from", q.Get("from")); err != nil {
		return err
	}
	if f.To, err = parseQueryTime("to", q.Get("to")); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return loaxa.Errorf(loaxa.EInvalid, "from %s is not before to %s; give from < to (to is exclusive).", q.Get("from"), q.Get("to"))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return loaxa.Errorf(loaxa.EInvalid, "limit %q is not a number from 1 to %d.", v, MaxAuditLimit)
		}
		f.Limit = n
	}
	if f.Newest, err = parseOrder(q.Get("order")); err != nil {
		return err
	}
	entries, err := s.AuditService.FindAudit(ctx, f)
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, auditResponse{Entries: nonNil(entries), Names: s.auditNames(ctx, entries)})
	return nil
}

// auditTargetKind is the kind of thing an action's target is, by the
// action's noun, for those whose target has a name an officer knows
// better than its id. Users are named by their username, areas by the
// console from its tree.
func auditTargetKind(action string) string {
	noun, _, _ := strings.Cut(action, ".")
	switch noun {
	case "announcement", "emergency", "node", "content", "session", "live", "cap", "proposal":
		if action == "cap.recordings" || action == "cap.auto_start" || action == "node.enrol_failed" {
			return "" // targets "cap", or nothing
		}
		return noun
	case "inbound":
		return "announcement" // an upstream system's bulletin
	}
	return ""
}

// auditDetailKind is the kind of thing each key of an entry's detail
// that holds ids names: content=<hash>, node=<id>, nodes=<id,id>,
// follows=<emergency>, session=<id>, the bulletins a forced session
// delete cancelled=<id,id> or left to play nowhere there, lost=<id,id>,
// and the CAP alert an emergency was sent for, cap=<id>.
var auditDetailKind = map[string]string{"content": "content", "node": "node", "nodes": "node", "follows": "emergency", "session": "session",
	"cancelled": "announcement", "lost": "announcement", "cap": "cap"}

// auditDetailIDs calls add with each id detail names under a key of
// auditDetailKind. A scan, not a regular expression: a read of 10,000
// entries spent three quarters of its naming in one.
func auditDetailIDs(detail string, add func(kind, id string)) {
	for rest := detail; ; {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return
		}
		key := eq
		for key > 0 && (rest[key-1] == '_' || 'a' <= rest[key-1] && rest[key-1] <= 'z' || 'A' <= rest[key-1] && rest[key-1] <= 'Z') {
			key--
		}
		kind, ok := auditDetailKind[rest[key:eq]]
		rest = rest[eq+1:]
		if strings.HasPrefix(rest, `"`) {
			// A quoted value is free text (a session's name): an "=" in
			// it is no key.
			i := 1
			for i < len(rest) && rest[i] != '"' {
				if rest[i] == '\\' {
					i++
				}
				i++
			}
			rest = rest[min(i+1, len(rest)):]
			continue
		}
		if !ok {
			continue
		}
		end := strings.IndexAny(rest, " \t\"")
		if end < 0 {
			end = len(rest)
		}
		for id := range strings.SplitSeq(rest[:end], ",") {
			add(kind, id)
		}
		rest = rest[end:]
	}
}

// auditCapRecordingsIDs calls add with the audio each CAP event type
// plays (cap.recordings): content= as any detail names it, and, in an
// older entry's "Sóng thần=<hash>,Lũ quét=<hash>", each hash.
func auditCapRecordingsIDs(detail string, add func(kind, id string)) {
	if strings.Contains(detail, "content=") {
		auditDetailIDs(detail, add)
		return
	}
	for pair := range strings.SplitSeq(detail, ",") {
		if i := strings.LastIndexByte(pair, '='); i >= 0 && protocol.ValidContentID(pair[i+1:]) {
			add("content", pair[i+1:])
		}
	}
}

// auditNames looks up the names of what entries name, each once. A
// lookup that fails is logged and left out: the console shows the id.
func (s *Server) auditNames(ctx context.Context, entries []*loaxa.AuditEntry) map[string]map[string]string {
	want := map[string]map[string]bool{}
	add := func(kind, id string) {
		if kind == "" || id == "" {
			return
		}
		if want[kind] == nil {
			want[kind] = map[string]bool{}
		}
		want[kind][id] = true
	}
	for _, e := range entries {
		add(auditTargetKind(e.Action), e.Target)
		if node, ok := strings.CutPrefix(e.Actor, "node:"); ok {
			add("node", node)
		}
		switch e.Action {
		case auditSelfTest:
			// A self-test's detail names no ids: an older entry's nodes=
			// is how many clusters it tested, which read as a cluster's id
			// (a cluster "1" was named for every self-test of one).
		case auditCapRecordings:
			auditCapRecordingsIDs(e.Detail, add)
		default:
			auditDetailIDs(e.Detail, add)
		}
	}
	names := map[string]map[string]string{}
	// The emergency service reads no single alert but with every node's
	// state (a province's 10,000): the list, once, is lighter.
	var alerts map[string]string
	if len(want["emergency"]) > 0 && s.EmergencyService != nil {
		list, err := s.EmergencyService.FindEmergencies(ctx, 0)
		if err != nil {
			s.logger().Warn("audit: names of emergencies", "err", err)
		}
		alerts = make(map[string]string, len(list))
		for _, em := range list {
			alerts[em.ID] = em.Title
		}
	}
	for kind, ids := range want {
		for id := range ids {
			var name string
			var err error
			if kind == "emergency" {
				name = alerts[id]
			} else {
				name, err = s.auditName(ctx, kind, id)
			}
			if err != nil {
				if loaxa.ErrorCode(err) != loaxa.ENotFound {
					s.logger().Warn("audit: name", "kind", kind, "id", id, "err", err)
				}
				continue
			}
			if name == "" || name == id {
				continue
			}
			if names[kind] == nil {
				names[kind] = map[string]string{}
			}
			names[kind][id] = name
		}
	}
	if len(names) == 0 {
		return nil
	}
	return names
}

// auditName is the name of the kind of thing id is; "" if it has none or
// the controller keeps no such things.
func (s *Server) auditName(ctx context.Context, kind, id string) (string, error) {
	switch kind {
	case "announcement":
		a, err := s.AnnouncementService.FindAnnouncementByID(ctx, id)
		if err != nil {
			return "", err
		}
		return a.Title, nil
	case "node":
		n, err := s.NodeService.FindNodeByID(ctx, id)
		if err != nil {
			return "", err
		}
		// A bulletin from above names clusters of other communes: those
		// outside the reader's area keep their ids, as GET /nodes does.
		if u := userFrom(ctx); u != nil && u.Area != "" && !s.within(ctx, n.Area, u.Area) {
			return "", nil
		}
		return n.Name, nil
	case "content":
		c, err := s.ContentService.FindContentByID(ctx, id)
		if err != nil {
			return "", err
		}
		if c.Title == "" {
			return c.Source.Filename, nil
		}
		return c.Title, nil
	case "session":
		if s.SessionService == nil {
			return "", nil
		}
		sess, err := s.SessionService.FindSessionByID(ctx, id)
		if err != nil {
			return "", err
		}
		return sess.Name, nil
	case "live":
		if s.LiveCalls == nil {
			return "", nil
		}
		c, err := s.LiveCalls.FindLiveCallByID(ctx, id)
		if err != nil {
			return "", err
		}
		return c.Title, nil
	case "cap":
		if s.CapStore == nil {
			return "", nil
		}
		a, err := s.CapStore.FindCapAlertByID(ctx, id)
		if err != nil {
			return "", err
		}
		if a.Headline == "" {
			return a.Event, nil
		}
		return a.Headline, nil
	case "proposal":
		if s.ProposalService == nil {
			return "", nil
		}
		p, err := s.ProposalService.FindProposalByID(ctx, id)
		if err != nil {
			return "", err
		}
		return s.auditName(ctx, "announcement", p.Announcement)
	}
	return "", nil
}

// auditTargets describes an announcement for the audit log.
func auditTargets(a *loaxa.Announcement) string {
	return fmt.Sprintf("priority=%s start=%s areas=%s nodes=%s content=%s", a.Priority,
		a.Start.UTC().Format(time.RFC3339), strings.Join(a.Targets.Areas, ","), strings.Join(a.Targets.Nodes, ","), a.ContentID)
}
