package http

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
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
	auditContentUpload        = "content.upload"
	auditAnnCreate            = "announcement.create"
	auditAnnCancel            = "announcement.cancel"
)

// audit records a state-changing action by the requesting user. A failure
// to record is logged, not returned: the action already happened. An
// action not tied to an area is filed under the actor's own area, so that
// the actor's supervisors see it.
func (s *Server) audit(r *http.Request, action, target, area, detail string) {
	actor := "anonymous"
	if u := userFrom(r.Context()); u != nil {
		actor = u.Username
		if area == "" {
			area = u.Area
		}
	} else if n := nodeFrom(r.Context()); n != nil {
		actor = "node:" + n.ID
	}
	s.auditAs(r, actor, action, target, area, detail)
}

// auditAs records an action by a named actor, for requests that are not
// signed in yet (a sign-in attempt, an enrolment).
func (s *Server) auditAs(r *http.Request, actor, action, target, area, detail string) {
	if s.AuditService == nil {
		return
	}
	e := &loaxa.AuditEntry{At: s.now(), Actor: actor, Action: action, Target: target, Area: area, Detail: detail, Remote: r.RemoteAddr}
	if err := s.AuditService.RecordAudit(r.Context(), e); err != nil {
		s.logger().Error("audit: record failed", "action", action, "target", target, "err", err)
	}
}

// auditResponse answers GET /api/v1/audit.
type auditResponse struct {
	Entries []*loaxa.AuditEntry `json:"entries"`
}

// handleListAudit answers GET /api/v1/audit?actor=&area=&from=&to=&limit=:
// the audit log of the user's area, oldest first.
func (s *Server) handleListAudit(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "actor", "area", "from", "to", "limit"); err != nil {
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
	entries, err := s.AuditService.FindAudit(ctx, f)
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, auditResponse{Entries: nonNil(entries)})
	return nil
}

// auditArea files an announcement under its first target area, or, for one
// that names nodes only, under the actor's area.
func auditArea(a *loaxa.Announcement) string {
	if len(a.Targets.Areas) > 0 {
		return a.Targets.Areas[0]
	}
	return ""
}

// auditTargets describes an announcement for the audit log.
func auditTargets(a *loaxa.Announcement) string {
	return fmt.Sprintf("priority=%s start=%s areas=%s nodes=%s content=%s", a.Priority,
		a.Start.UTC().Format(time.RFC3339), strings.Join(a.Targets.Areas, ","), strings.Join(a.Targets.Nodes, ","), a.ContentID)
}
