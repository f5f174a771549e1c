package http

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
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
	var overlap *loaxa.SessionOverlapError
	if err := s.SessionService.CreateSession(ctx, sess); errors.As(err, &overlap) {
		s.writeJSON(w, r, http.StatusConflict, sessionTwinResponse{
			Error:   errorBody{Code: loaxa.EConflict, Message: loaxa.ErrorMessage(err)},
			Session: overlap.Session,
			Overlap: &sessionOverlap{From: overlap.From, To: overlap.To, Minutes: int(overlap.To.Sub(overlap.From) / time.Minute)},
		})
		return nil
	} else if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	s.changed()
	s.audit(r, "session.create", sess.ID, sess.Area, sess.Name)
	s.writeJSON(w, r, http.StatusCreated, sess)
	return nil
}

// sessionTwinResponse answers a session refused for running at the same
// time as another of its area (409): the error, the session already there
// (so that a script run twice can go on with it) and when they overlap.
type sessionTwinResponse struct {
	Error   errorBody       `json:"error"`
	Session *loaxa.Session  `json:"session"`
	Overlap *sessionOverlap `json:"overlap"`
}

// sessionOverlap is the first span two sessions of an area would both run,
// in the area's zone.
type sessionOverlap struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Minutes int       `json:"minutes"`
}

// sessionItemsResponse answers a delete refused for the items still placed
// in the session (409), a forced delete refused for items the user may not
// cancel (403, with the right they need), and a forced delete that
// cancelled them (200).
type sessionItemsResponse struct {
	Error   *errorBody          `json:"error,omitempty"`
	Session string              `json:"session"`
	Items   []loaxa.SessionItem `json:"items"`
	Right   loaxa.Action        `json:"right,omitempty"`
}

// handleDeleteSession answers DELETE /api/v1/sessions/{id}?force=. An item
// still placed in the session would never play again once it is gone (a
// session made again under the same name is another id), and nothing said
// so: the delete is refused while there are any, unless forced, which
// cancels them with the session, an emergency one only for a user who
// may cancel it (emergency over the session's area, as its targets lie
// within it).
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "force"); err != nil {
		return err
	}
	if err := s.sessionsAvailable(); err != nil {
		return err
	}
	var force bool
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "force %q: write true to delete the session and cancel the items still placed in it, or leave it out.", v)
		}
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
	emergency := true
	if err := s.authorize(ctx, loaxa.ActionEmergency, sess.Area); loaxa.ErrorCode(err) == loaxa.EForbidden {
		emergency = false
	} else if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	items, err := s.SessionService.DeleteSession(ctx, id, loaxa.SessionDeletion{Force: force, By: userFrom(ctx).Username, Emergency: emergency})
	var held *loaxa.SessionItemsError
	switch {
	case errors.As(err, &held):
		code := loaxa.ErrorCode(err)
		s.writeJSON(w, r, errorStatus(code), sessionItemsResponse{
			Error:   &errorBody{Code: code, Message: loaxa.ErrorMessage(err)},
			Session: sess.ID, Items: held.Items, Right: held.Right,
		})
		return nil
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		return loaxa.Errorf(loaxa.ENotFound, "There is no session %q; list them with GET /api/v1/sessions.", id)
	case err != nil:
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	s.changed()
	detail := sess.Name
	if len(items) > 0 {
		var ids []string
		for _, it := range items {
			ids = append(ids, it.Announcement)
		}
		detail += fmt.Sprintf("; forced, %d item(s) cancelled with it: %s", len(items), strings.Join(ids, ", "))
	}
	s.audit(r, "session.delete", id, sess.Area, detail)
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.writeJSON(w, r, http.StatusOK, sessionItemsResponse{Session: sess.ID, Items: items})
	return nil
}
