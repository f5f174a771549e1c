package http

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// sessionItem is an announcement placed in a session (or accepted into it
// through a proposal) that still has plays to come.
type sessionItem struct {
	Announcement string `json:"announcement"`
	Title        string `json:"title"`
	// Proposal is set when the item came down from above and was accepted
	// into the session.
	Proposal string `json:"proposal,omitempty"`
}

// sessionItemsResponse answers a delete refused for the items still placed
// in the session (409), and a forced delete that left them (200).
type sessionItemsResponse struct {
	Error   *errorBody    `json:"error,omitempty"`
	Session string        `json:"session"`
	Items   []sessionItem `json:"items"`
}

// shownItems is how many items a refused delete names in its message.
const shownItems = 3

// handleDeleteSession answers DELETE /api/v1/sessions/{id}?force=. An item
// still placed in the session would never play again once it is gone (a
// session made again under the same name is another id), and nothing said
// so: the delete is refused while there are any, unless forced.
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
			return loaxa.Errorf(loaxa.EInvalid, "force %q: write true to delete the session with the items still placed in it, or leave it out.", v)
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
	items, err := s.itemsToPlayIn(ctx, sess)
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	if len(items) > 0 && !force {
		var named []string
		for _, it := range items[:min(len(items), shownItems)] {
			named = append(named, fmt.Sprintf("%s (%s)", it.Announcement, it.Title))
		}
		list := strings.Join(named, ", ")
		if len(items) > shownItems {
			list += fmt.Sprintf(" and %d more", len(items)-shownItems)
		}
		s.writeJSON(w, r, http.StatusConflict, sessionItemsResponse{
			Error: &errorBody{Code: loaxa.EConflict, Message: fmt.Sprintf(
				"Session %s (%s) still has %d item(s) to play: %s. Once it is deleted they play nowhere, even in a session made again with the same name. Cancel them or place them elsewhere first, or delete with ?force=true to leave them unplayed.",
				sess.ID, sess.Name, len(items), list)},
			Session: sess.ID, Items: items,
		})
		return nil
	}
	if err := s.SessionService.DeleteSession(ctx, id); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	s.changed()
	detail := sess.Name
	if len(items) > 0 {
		var ids []string
		for _, it := range items {
			ids = append(ids, it.Announcement)
		}
		detail += fmt.Sprintf("; forced, %d item(s) left unplayed: %s", len(items), strings.Join(ids, ", "))
	}
	s.audit(r, "session.delete", id, sess.Area, detail)
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.writeJSON(w, r, http.StatusOK, sessionItemsResponse{Session: sess.ID, Items: items})
	return nil
}

// itemsToPlayIn returns the active announcements placed in sess, or
// accepted into it, that have a play on or after the first day whose
// instance of sess is not over yet, in id order.
func (s *Server) itemsToPlayIn(ctx context.Context, sess *loaxa.Session) ([]sessionItem, error) {
	zone, err := s.zoneOf(ctx, sess.Area)
	if err != nil {
		return nil, err
	}
	loc, err := loaxa.Location(zone)
	if err != nil {
		return nil, err
	}
	clock, err := loaxa.ParseClock(sess.Start)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", sess.ID, err)
	}
	now := s.now()
	y, m, d := now.In(loc).Date()
	from := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if !loaxa.AtClock(now, clock, loc).Add(sess.MaxLength()).After(now) {
		from = time.Date(y, m, d+1, 0, 0, 0, 0, loc) // today's is over
	}
	plays := func(a *loaxa.Announcement) (bool, error) {
		rec, err := loaxa.NewRecurrence(a, loc)
		if err != nil {
			return false, fmt.Errorf("announcement %s: %w", a.ID, err)
		}
		_, ok := rec.Next(from.Add(-time.Nanosecond))
		return ok, nil
	}
	anns, err := s.AnnouncementService.FindAnnouncements(ctx, loaxa.AnnouncementFilter{State: loaxa.AnnouncementActive})
	if err != nil {
		return nil, fmt.Errorf("announcements: %w", err)
	}
	byID := map[string]*loaxa.Announcement{}
	var out []sessionItem
	for _, a := range anns {
		byID[a.ID] = a
		if a.Session != sess.ID {
			continue
		}
		if ok, err := plays(a); err != nil {
			return nil, err
		} else if ok {
			out = append(out, sessionItem{Announcement: a.ID, Title: a.Title})
		}
	}
	if s.ProposalService != nil {
		ps, err := s.ProposalService.FindProposals(ctx, loaxa.ProposalFilter{State: loaxa.ProposalAccepted})
		if err != nil {
			return nil, fmt.Errorf("proposals: %w", err)
		}
		for _, p := range ps {
			a := byID[p.Announcement]
			if p.Session != sess.ID || a == nil || a.Session == sess.ID {
				continue // not in it, cancelled, or listed already
			}
			if ok, err := plays(a); err != nil {
				return nil, err
			} else if ok {
				out = append(out, sessionItem{Announcement: a.ID, Title: a.Title, Proposal: p.ID})
			}
		}
	}
	slices.SortFunc(out, func(x, y sessionItem) int {
		return cmp.Or(cmp.Compare(len(x.Announcement), len(y.Announcement)), strings.Compare(x.Announcement, y.Announcement))
	})
	return out, nil
}
