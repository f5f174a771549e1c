package http

import (
	"context"
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
	Sessions []sessionEntry `json:"sessions"`
}

// sessionEntry is a session in the list, with the overlap the store holds
// it in, if any.
type sessionEntry struct {
	*loaxa.Session
	// Overlap names another session of its area that runs at the same
	// time on a day both run, from now on: one is refused when made or
	// changed, but a store written by an older version, or restored from
	// an old backup, can hold two.
	Overlap *storedOverlap `json:"overlap,omitempty"`
	// RunsNoMore says the session has no instance from now on (one under
	// way still runs): its days' UNTIL or COUNT has passed, or they match
	// no day. Such a session is refused when made or its times changed
	// (checkSessionRuns), but one stored before that was listed and
	// offered for bulletins with nothing saying it never runs.
	RunsNoMore bool `json:"runs_no_more,omitempty"`
}

// storedOverlap is the other session, and the first span both run in the
// area's zone.
type storedOverlap struct {
	Session string `json:"session"`
	sessionOverlap
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
	entries, err := s.sessionOverlaps(ctx, ss)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, sessionsResponse{Sessions: nonNil(entries)})
	return nil
}

// sessionOverlaps returns ss as list entries, each with the first other
// session of its area among ss that runs at the same time as it from now
// on, compared as a new session is (loaxa.CheckSessionOverlap), and
// whether it runs no more. Only areas with two or more sessions cost an
// overlap check. Each session's times are read once for all of these
// (loaxa.AreaSessions), not again for each other session of its area.
func (s *Server) sessionOverlaps(ctx context.Context, ss []*loaxa.Session) ([]sessionEntry, error) {
	byArea := map[string][]*loaxa.Session{}
	for _, x := range ss {
		byArea[x.Area] = append(byArea[x.Area], x)
	}
	areas := map[string]*loaxa.AreaSessions{}
	now := s.now()
	out := make([]sessionEntry, len(ss))
	for i, x := range ss {
		out[i].Session = x
		others := byArea[x.Area]
		area := areas[x.Area]
		if area == nil {
			loc, err := s.locationOf(ctx, x.Area)
			if err != nil {
				if len(others) < 2 {
					// Listed as before: the area's time zone the
					// controller refuses is said where it is used.
					continue
				}
				return nil, err
			}
			area = loaxa.NewAreaSessions(others, loc)
			areas[x.Area] = area
		}
		if area.TimesRefused(x) != nil {
			// Its times cannot be compared (the list answered 500); its
			// programme says what is wrong with them.
			continue
		}
		// As checkSessionRuns: an instance under way runs the rest of it.
		if _, ok, err := area.NextRun(x, now.Add(-x.MaxLength())); err != nil {
			return nil, fmt.Errorf("session %s: %w", x.ID, err)
		} else if !ok {
			out[i].RunsNoMore = true
		}
		if len(others) < 2 {
			continue
		}
		// From now on: CheckSessionOverlap compares from a day before
		// since, and an overlap that is over says nothing to do.
		var overlap *loaxa.SessionOverlapError
		if err := area.CheckOverlap(x, now.Add(24*time.Hour)); errors.As(err, &overlap) {
			out[i].Overlap = &storedOverlap{Session: overlap.Session.ID, sessionOverlap: sessionOverlap{
				From: overlap.From, To: overlap.To, Minutes: int(overlap.To.Sub(overlap.From) / time.Minute)}}
		} else if err != nil {
			return nil, fmt.Errorf("session %s: %w", x.ID, err)
		}
	}
	return out, nil
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
	if err := s.checkSessionTimes(ctx, sess); err != nil {
		return err
	}
	if err := s.checkSessionRuns(ctx, sess, sess.CreatedAt); err != nil {
		return err
	}
	var overlap *loaxa.SessionOverlapError
	if err := s.SessionService.CreateSession(ctx, sess); errors.As(err, &overlap) {
		s.writeOverlap(w, r, err, overlap)
		return nil
	} else if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	s.changed()
	s.audit(r, "session.create", sess.ID, sess.Area, fmt.Sprintf("name=%q start=%s max_minutes=%d days=%q", sess.Name, sess.Start, sess.MaxMinutes, sess.Days))
	s.writeJSON(w, r, http.StatusCreated, sess)
	return nil
}

// checkSessionTimes checks the start, max_minutes and days of a session
// being created or changed, with the errors an officer can act on.
func (s *Server) checkSessionTimes(ctx context.Context, sess *loaxa.Session) error {
	if _, err := loaxa.ParseClock(sess.Start); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "start: %s", loaxa.ErrorMessage(err))
	}
	if sess.MaxMinutes < 1 || sess.MaxMinutes > MaxSessionMinutes {
		return loaxa.Errorf(loaxa.EInvalid, "max_minutes %d is out of range; give 1 to %d (e.g. 15 in town, 45 in the countryside).", sess.MaxMinutes, MaxSessionMinutes)
	}
	if err := loaxa.CheckDays(sess.Days); err != nil {
		return err
	}
	loc, err := s.locationOf(ctx, sess.Area)
	if err != nil {
		return err
	}
	if _, err := sess.Instances(loc, sess.CreatedAt, sess.CreatedAt.AddDate(0, 0, 7)); err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "days: %s", loaxa.ErrorMessage(err))
	}
	return nil
}

// checkSessionRuns refuses a session whose times have it run no instance
// from from on (its creation, or the change of its times): a days rule
// whose UNTIL has passed (a year typo), whose COUNT is used up or that
// matches no day (30 February). It was stored, listed and offered for
// bulletins, and never on air; a bulletin's rrule is refused so.
func (s *Server) checkSessionRuns(ctx context.Context, sess *loaxa.Session, from time.Time) error {
	loc, err := s.locationOf(ctx, sess.Area)
	if err != nil {
		return err
	}
	// An instance under way at from runs the rest of it.
	_, ok, err := sess.NextRun(loc, from.Add(-sess.MaxLength()))
	if err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "days: %s", loaxa.ErrorMessage(err))
	}
	if !ok {
		return loaxa.Errorf(loaxa.EInvalid,
			"The session (%s for %s, days %q) runs no more from now on (in %s): the UNTIL or COUNT of its days has passed, or they match no day (like 30 February), so it would never be on air. Check the dates in days, e.g. FREQ=DAILY;UNTIL=20261231T165959Z, or leave days empty for every day.",
			sess.Start, loaxa.Count(sess.MaxMinutes, "minute", "minutes"), sess.Days, loc)
	}
	return nil
}

// writeOverlap answers a session refused by overlap, err, for running at
// the same time as another of its area (409).
func (s *Server) writeOverlap(w http.ResponseWriter, r *http.Request, err error, overlap *loaxa.SessionOverlapError) {
	s.writeJSON(w, r, http.StatusConflict, sessionTwinResponse{
		Error:   errorBody{Code: loaxa.EConflict, Message: loaxa.ErrorMessage(err)},
		Session: overlap.Session,
		Overlap: &sessionOverlap{From: overlap.From, To: overlap.To, Minutes: int(overlap.To.Sub(overlap.From) / time.Minute)},
	})
}

// sessionChangeRequest is the body of PATCH /api/v1/sessions/{id}: the
// fields to change, those left out kept. Area may be given only as the
// session's own (a form sends it back as it was).
type sessionChangeRequest struct {
	Area       *string `json:"area"`
	Name       *string `json:"name"`
	Start      *string `json:"start"`
	MaxMinutes *int    `json:"max_minutes"`
	Days       *string `json:"days"`
}

// handleUpdateSession answers PATCH /api/v1/sessions/{id}: an officer
// moves, lengthens or renames a session (winter times, a longer morning)
// and its items stay in it, rather than deleting it, which cancels them,
// and placing them all again. The change is checked as a new session is
// (the same errors, the overlap with the area's other sessions in the
// store's transaction); an instance already begun keeps its times, so
// the item on air plays on (loaxa.Session.Runs).
func (s *Server) handleUpdateSession(w http.ResponseWriter, r *http.Request) error {
	var req sessionChangeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.sessionsAvailable(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	sess, err := s.SessionService.FindSessionByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return sessionGone(id)
	} else if err != nil {
		return fmt.Errorf("update session %s: %w", id, err)
	}
	if err := s.authorizeOn(ctx, loaxa.ActionSchedule, sess.Area, fmt.Sprintf("Session %s", sess.ID)); err != nil {
		return err
	}
	if req.Area != nil && *req.Area != sess.Area {
		return loaxa.Errorf(loaxa.EInvalid, "area: session %s (%s) belongs to area %s, and a session's area cannot change; create a session in area %s (POST /api/v1/sessions) and place the items in it instead.",
			sess.ID, sess.Name, sess.Area, *req.Area)
	}
	if req.Name == nil && req.Start == nil && req.MaxMinutes == nil && req.Days == nil {
		return loaxa.Errorf(loaxa.EInvalid, "Nothing to change: give any of name, start, max_minutes, days.")
	}
	ch := loaxa.SessionChange{Start: req.Start, MaxMinutes: req.MaxMinutes, By: userFrom(ctx).Username, At: s.now()}
	if req.Name != nil {
		name, err := cleanText("name", *req.Name, true)
		if err != nil {
			return err
		}
		ch.Name = &name
	}
	if req.Days != nil {
		days := strings.TrimSpace(*req.Days)
		ch.Days = &days
	}
	if err := s.checkSessionChange(ctx, sess, ch); err != nil {
		return err
	}
	var overlap *loaxa.SessionOverlapError
	before, after, err := s.SessionService.UpdateSession(ctx, id, ch)
	switch {
	case errors.As(err, &overlap):
		s.writeOverlap(w, r, err, overlap)
		return nil
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		return sessionGone(id)
	case err != nil:
		return fmt.Errorf("update session %s: %w", id, err)
	}
	s.changed()
	s.audit(r, "session.update", after.ID, after.Area, sessionChangeDetail(before, after))
	s.writeJSON(w, r, http.StatusOK, after)
	return nil
}

// checkSessionChange checks the times sess has after ch, as a new
// session's are checked. A session whose stored times this version
// refuses may be renamed with its times left as they are (or sent back
// unchanged, as the console's form does): a rename answered 400 of days
// the officer did not touch. A change of its times has to make all of
// them valid, and its refusal says so.
func (s *Server) checkSessionChange(ctx context.Context, sess *loaxa.Session, ch loaxa.SessionChange) error {
	after := sess.Apply(ch)
	loc, err := s.locationOf(ctx, sess.Area)
	if err != nil {
		return err
	}
	refused := sess.TimesRefused(loc)
	if refused != nil && after.Start == sess.Start && after.MaxMinutes == sess.MaxMinutes && after.Days == sess.Days {
		return nil
	}
	err = s.checkSessionTimes(ctx, after)
	if err == nil && (after.Start != sess.Start || after.MaxMinutes != sess.MaxMinutes || after.Days != sess.Days) {
		// Only new times: a session whose days have ended may be renamed.
		err = s.checkSessionRuns(ctx, after, s.now())
	}
	if refused != nil && loaxa.ErrorCode(err) == loaxa.EInvalid {
		return &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonSessionTimesRefused, Message: fmt.Sprintf(
			"Session %s (%s) has times this controller refuses, stored by an older version or a restored backup; give valid ones with this change (e.g. \"days\": \"\" for every day): %s",
			sess.ID, sess.Name, loaxa.ErrorMessage(err))}
	}
	return err
}

// sessionChangeDetail says what a change made of a session, for the
// audit log, as the key=value facts the console words: its name, and
// each field changed before and after, e.g. `name="Buổi sáng"
// start_before=05:30 start=06:00`. It was English prose (`name "a" ->
// "b"`), which a Vietnamese officer read in the middle of the worded log.
func sessionChangeDetail(before, after *loaxa.Session) string {
	var parts []string
	if before.Name != after.Name {
		parts = append(parts, fmt.Sprintf("name_before=%q", before.Name))
	}
	parts = append(parts, fmt.Sprintf("name=%q", after.Name))
	changed := false
	diff := func(key, was, is string) {
		if was != is {
			parts = append(parts, key+"_before="+was, key+"="+is)
			changed = true
		}
	}
	diff("start", before.Start, after.Start)
	diff("max_minutes", strconv.Itoa(before.MaxMinutes), strconv.Itoa(after.MaxMinutes))
	// Quoted: a days rule holds "=" and ";", and every day is "".
	diff("days", strconv.Quote(before.Days), strconv.Quote(after.Days))
	if !changed && before.Name == after.Name {
		parts = append(parts, "unchanged=true")
	}
	return strings.Join(parts, " ")
}

// sessionDeleteDetail says what a delete of sess did, for the audit log,
// as key=value facts: its name, and when forced, the bulletins cancelled
// with it (cancelled=) and the plays from above that will not play here
// (lost=), by id.
func sessionDeleteDetail(sess *loaxa.Session, items []loaxa.SessionItem, lost []loaxa.SessionBulletin) string {
	detail := fmt.Sprintf("name=%q", sess.Name)
	if len(items) > 0 || len(lost) > 0 {
		detail += " forced=true"
	}
	if len(items) > 0 {
		ids := make([]string, 0, len(items))
		for _, it := range items {
			ids = append(ids, it.Announcement)
		}
		detail += " cancelled=" + strings.Join(ids, ",")
	}
	if len(lost) > 0 {
		ids := make([]string, 0, len(lost))
		for _, b := range lost {
			ids = append(ids, b.Announcement)
		}
		detail += " lost=" + strings.Join(ids, ",")
	}
	return detail
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
// in the session, or for plays of bulletins from above that would be lost
// with it (409), a forced delete refused for items the user may not cancel
// (403, with the right they need), and a forced delete that cancelled
// items or left plays from above to play nowhere here (200).
type sessionItemsResponse struct {
	Error   *errorBody          `json:"error,omitempty"`
	Session string              `json:"session"`
	Items   []loaxa.SessionItem `json:"items"`
	Right   loaxa.Action        `json:"right,omitempty"`
	// FromAbove are the plays of bulletins from above placed in the
	// session: in a 409, each with where it would play without it, or
	// lost; in a forced delete's answer, those lost.
	FromAbove []loaxa.SessionBulletin `json:"from_above,omitempty"`
	// Unplayable is, in a 409 with reason bulletin_unplayable, the
	// bulletin that keeps the scheduler from telling which plays from
	// above wait for the session.
	Unplayable *loaxa.UnplayableError `json:"unplayable,omitempty"`
}

// handleDeleteSession answers DELETE /api/v1/sessions/{id}?force=. An item
// still placed in the session would never play again once it is gone (a
// session made again under the same name is another id), and nothing said
// so: the delete is refused while there are any, unless forced, which
// cancels them with the session, an emergency one only for a user who
// may cancel it (emergency over the session's area, as its targets lie
// within it). So is a delete that would leave a play of a bulletin from
// above, which the scheduler placed in the session, playing nowhere here
// (its own time passed while it waited for the session): only the
// scheduler knows which wait for it. Forced, those are left as they are,
// the area above's to cancel.
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
		return sessionGone(id)
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
	var fromAbove []loaxa.SessionBulletin
	if s.ProgrammeService != nil {
		fromAbove, err = s.ProgrammeService.CheckSessionDeletion(ctx, id)
		var bad *loaxa.UnplayableError
		if errors.As(err, &bad) {
			// Which plays from above would be lost cannot be known, so the
			// delete waits, forced or not. It answered what the store said
			// deep inside (404 `Content "…" does not exist.`, 400 of an
			// rrule) of a bulletin the officer may never have seen.
			s.logger().Warn("session delete refused: a bulletin cannot be scheduled", "session", id, "announcement", bad.Announcement, "err", err)
			s.writeJSON(w, r, http.StatusConflict, sessionItemsResponse{
				Error: &errorBody{Code: loaxa.EConflict, Reason: loaxa.ReasonBulletinUnplayable, Message: fmt.Sprintf(
					"Session %s (%s) was not deleted: the controller cannot tell which bulletins from above wait for it. %s %s Then delete the session again.",
					sess.ID, sess.Name, bad.Problem(), bad.Remedy())},
				Session: sess.ID, Items: []loaxa.SessionItem{}, Unplayable: bad,
			})
			return nil
		} else if loaxa.ErrorReason(err) == loaxa.ReasonSettingRefused {
			// An area's zone or a session's times stored as this version
			// refuses: it answered 400 of a zone or days rule the officer
			// never typed.
			s.logger().Warn("session delete refused: an area's or a session's stored settings are refused", "session", id, "err", err)
			return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonSettingRefused, Message: fmt.Sprintf(
				"Session %s (%s) was not deleted: the controller cannot tell which bulletins from above wait for it. %s Then delete the session again.",
				sess.ID, sess.Name, loaxa.ErrorMessage(err))}
		} else if err != nil {
			// The check failed (a fault of the controller, a panic in it
			// among them): say which session was kept and what to do, not
			// only "Internal error".
			s.writeFault(w, r, "session delete check failed", err,
				fmt.Sprintf("Session %s (%s) was not deleted: the controller failed while checking which bulletins from above wait for it", sess.ID, sess.Name),
				"Nothing was changed. "+tryAgain, "session", id)
			return nil
		}
	}
	items, err := s.SessionService.DeleteSession(ctx, id, loaxa.SessionDeletion{Force: force, By: userFrom(ctx).Username, Emergency: emergency,
		FromAbove: fromAbove})
	var held *loaxa.SessionItemsError
	switch {
	case errors.As(err, &held):
		code := loaxa.ErrorCode(err)
		s.writeJSON(w, r, errorStatus(code), sessionItemsResponse{
			Error:   &errorBody{Code: code, Message: loaxa.ErrorMessage(err)},
			Session: sess.ID, Items: nonNil(held.Items), Right: held.Right, FromAbove: held.FromAbove,
		})
		return nil
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		return sessionGone(id)
	case err != nil:
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	s.changed()
	lost := loaxa.LostBulletins(fromAbove)
	s.audit(r, "session.delete", id, sess.Area, sessionDeleteDetail(sess, items, lost))
	if len(items) == 0 && len(lost) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.writeJSON(w, r, http.StatusOK, sessionItemsResponse{Session: sess.ID, Items: nonNil(items), FromAbove: lost})
	return nil
}

// sessionGone is the 404 of a session changed or deleted that is not
// there: deleted, by a colleague or from another page, while the
// officer's page still offered it (reason session_gone).
func sessionGone(id string) *loaxa.Error {
	return &loaxa.Error{Code: loaxa.ENotFound, Reason: loaxa.ReasonSessionGone,
		Message: fmt.Sprintf("There is no session %q (it may have been deleted since the page was read); list them with GET /api/v1/sessions.", id)}
}
