package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
)

// MaxSessionMinutes is the longest session accepted.
const MaxSessionMinutes = 240

// sessionRequest is the body of POST /api/v1/sessions.
type sessionRequest struct {
	Area       string `json:"area"`
	Name       string `json:"name"`
	Start      string `json:"start"`
	MaxMinutes int    `json:"max_minutes"`
	Days       string `json:"days"`
}

// sessionsResponse answers GET /api/v1/sessions.
type sessionsResponse struct {
	Sessions []*loaxa.Session `json:"sessions"`
}

func (s *Server) sessionsAvailable() error {
	if s.SessionService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Sessions are not available on this controller.")
	}
	return nil
}

// handleListSessions answers GET /api/v1/sessions?area=: the sessions of
// the area and its ancestors (what its nodes follow), or of the user's
// whole subtree.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "area"); err != nil {
		return err
	}
	if err := s.sessionsAvailable(); err != nil {
		return err
	}
	ctx := r.Context()
	var f loaxa.SessionFilter
	if area := r.URL.Query().Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return err
		}
		chain, err := s.AreaService.AreaChain(ctx, area)
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		f.Areas = chain
	} else if u := userFrom(ctx); u.Area != "" {
		areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: u.Area})
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		f.Areas = []string{}
		for _, a := range areas {
			f.Areas = append(f.Areas, a.ID)
		}
	}
	ss, err := s.SessionService.FindSessions(ctx, f)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, sessionsResponse{Sessions: nonNil(ss)})
	return nil
}

// handleCreateSession answers POST /api/v1/sessions.
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) error {
	var req sessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.sessionsAvailable(); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.requireArea(ctx, "area", req.Area); err != nil {
		return err
	}
	if err := s.authorize(ctx, loaxa.ActionSchedule, req.Area); err != nil {
		return err
	}
	sess := &loaxa.Session{Area: req.Area, Start: req.Start, MaxMinutes: req.MaxMinutes, Days: strings.TrimSpace(req.Days),
		CreatedBy: userFrom(ctx).Username, CreatedAt: s.now()}
	var err error
	if sess.Name, err = cleanText("name", req.Name, true); err != nil {
		return err
	}
	if _, err := loaxa.ParseClock(req.Start); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "start: %s", loaxa.ErrorMessage(err))
	}
	if req.MaxMinutes < 1 || req.MaxMinutes > MaxSessionMinutes {
		return loaxa.Errorf(loaxa.EInvalid, "max_minutes %d is out of range; give 1 to %d (e.g. 15 in town, 45 in the countryside).", req.MaxMinutes, MaxSessionMinutes)
	}
	if err := loaxa.CheckDays(sess.Days); err != nil {
		return err
	}
	zone, err := s.zoneOf(ctx, req.Area)
	if err != nil {
		return err
	}
	loc, err := loaxa.Location(zone)
	if err != nil {
		return err
	}
	if _, err := sess.Instances(loc, sess.CreatedAt, sess.CreatedAt.AddDate(0, 0, 7)); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "days: %s", loaxa.ErrorMessage(err))
	}
	if err := s.checkSameStart(ctx, sess, loc); err != nil {
		return err
	}
	if err := s.SessionService.CreateSession(ctx, sess); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	s.changed()
	s.audit(r, "session.create", sess.ID, sess.Area, sess.Name)
	s.writeJSON(w, r, http.StatusCreated, sess)
	return nil
}

// sameStartLookahead is how far ahead a new session's days are compared
// with those of its area's sessions at the same start: a year covers every
// weekly, monthly and yearly days rule.
const sameStartLookahead = 366 * 24 * time.Hour

// checkSameStart refuses a session that starts at the same time as
// another of its area on a day both run: every item of the one would
// overlap the other's on the same speakers (a README step run twice made
// such a twin, and a bulletin placed in it then reported an overlap
// conflict per node and day). Sessions at one start on different days
// (weekdays and weekends) are fine.
func (s *Server) checkSameStart(ctx context.Context, sess *loaxa.Session, loc *time.Location) error {
	others, err := s.SessionService.FindSessions(ctx, loaxa.SessionFilter{Areas: []string{sess.Area}})
	if err != nil {
		return fmt.Errorf("sessions of area %s: %w", sess.Area, err)
	}
	from := sess.CreatedAt.Add(-24 * time.Hour)
	for _, o := range others {
		if o.Start != sess.Start {
			continue
		}
		day, err := sess.SharedDay(o, loc, from, from.Add(sameStartLookahead))
		if err != nil {
			return fmt.Errorf("compare with session %s: %w", o.ID, err)
		}
		if day != "" {
			return loaxa.Errorf(loaxa.EConflict,
				"Area %s already has session %s (%s) starting at %s, and both would run on %s: one area's sessions cannot start together. Place the items in %s, give this one other days or another start, or delete %s first.",
				sess.Area, o.ID, o.Name, o.Start, day, o.ID, o.ID)
		}
	}
	return nil
}

// handleDeleteSession answers DELETE /api/v1/sessions/{id}.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	if err := s.sessionsAvailable(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	sess, err := s.SessionService.FindSessionByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no session %q; list them with GET /api/v1/sessions.", id)
	} else if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	if err := s.authorizeOn(ctx, loaxa.ActionSchedule, sess.Area, fmt.Sprintf("Session %s", sess.ID)); err != nil {
		return err
	}
	if err := s.SessionService.DeleteSession(ctx, id); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	s.changed()
	s.audit(r, "session.delete", id, sess.Area, sess.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
