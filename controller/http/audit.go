package http

import (
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// audit records a state-changing action by the requesting user. A failure
// to record is logged, not returned: the action already happened.
func (s *Server) audit(r *http.Request, action, target, area, detail string) {
	if s.AuditService == nil {
		return
	}
	actor := "anonymous"
	if u := userFrom(r.Context()); u != nil {
		actor = u.Username
	}
	e := &loaxa.AuditEntry{At: s.now(), Actor: actor, Action: action, Target: target, Area: area, Detail: detail, Remote: r.RemoteAddr}
	if err := s.AuditService.RecordAudit(r.Context(), e); err != nil {
		s.logger().Error("audit: record failed", "action", action, "target", target, "err", err)
	}
}
