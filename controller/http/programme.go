package http

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
)

// Programme ranges.
const (
	// DefaultProgrammeSpan is the range of a programme request without to.
	DefaultProgrammeSpan = 7 * 24 * time.Hour
	// MaxProgrammeSpan is the longest range accepted.
	MaxProgrammeSpan = 62 * 24 * time.Hour
)

// programmeResponse answers the programme routes.
type programmeResponse struct {
	From  time.Time             `json:"from"`
	To    time.Time             `json:"to"`
	Items []loaxa.ProgrammeItem `json:"items"`
	// DeletedSessions are the sessions deleted since that items of past
	// days were played in: they are in no session list, and the console
	// drew their plays loose, with no name.
	DeletedSessions []deletedSession `json:"deleted_sessions,omitempty"`
	// SessionRuns are the days of the span on which a session of the
	// area (or above it) ran by times it has no more, changed since
	// (loaxa.Session.Earlier), with those times: the console's box of
	// that day said the session's times now, 18:00 over plays at 17:00.
	SessionRuns []sessionRun `json:"session_runs,omitempty"`
}

// sessionRun is a session's instance of one day that ran by times other
// than the session's now.
type sessionRun struct {
	Session    string `json:"session"`
	Day        string `json:"day"` // YYYY-MM-DD, in the session's area's zone
	Start      string `json:"start"`
	MaxMinutes int    `json:"max_minutes"`
	Days       string `json:"days,omitempty"`
}

// deletedSession is a session deleted since a past day's play in it,
// with its times and days: it is in no session list, so its box in the
// programme is the only place that says when it ran.
type deletedSession struct {
	ID         string    `json:"id"`
	Area       string    `json:"area"`
	Name       string    `json:"name"`
	Start      string    `json:"start"`
	MaxMinutes int       `json:"max_minutes"`
	Days       string    `json:"days,omitempty"`
	DeletedAt  time.Time `json:"deleted_at"`
	DeletedBy  string    `json:"deleted_by,omitempty"`
}

// programme returns the answer of a programme route of area (a node's
// own, for a node's): items, with the deleted sessions they name and the
// days the sessions of area and above ran by earlier times. Both come
// from one read of the sessions, made only for a span that begins before
// now: a session is deleted, and its times changed, at some time past,
// so a programme of days to come reads nothing more.
func (s *Server) programme(ctx context.Context, area string, from, to time.Time, items []loaxa.ProgrammeItem) (programmeResponse, error) {
	resp := programmeResponse{From: from, To: to, Items: nonNil(items)}
	now := s.now()
	if s.SessionService == nil || !from.Before(now) {
		return resp, nil
	}
	// A deleted session has no instance from its delete on, which is
	// past: only items begun before now can name one.
	named := map[string]bool{}
	for _, it := range items {
		if id, _, ok := strings.Cut(it.Session, "@"); ok && it.Start.Before(now) {
			named[id] = true
		}
	}
	// A session deleted before from has no instance from then on
	// (loaxa.Session.Runs); a day more for an instance begun the day before.
	ss, err := s.SessionService.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: from.Add(-24 * time.Hour)})
	if err != nil {
		return resp, fmt.Errorf("sessions of the programme: %w", err)
	}
	for _, x := range ss {
		if x.Deleted() && named[x.ID] {
			resp.DeletedSessions = append(resp.DeletedSessions, deletedSession{ID: x.ID, Area: x.Area, Name: x.Name, Start: x.Start,
				MaxMinutes: x.MaxMinutes, Days: x.Days, DeletedAt: x.DeletedAt, DeletedBy: x.DeletedBy})
		}
	}
	if resp.SessionRuns, err = s.sessionRuns(ctx, area, ss, from, to); err != nil {
		return resp, err
	}
	return resp, nil
}

// sessionRuns returns the instances in [from, to) of the sessions of ss
// of area and the areas above it that ran by earlier times, which differ
// from the session's now. Only a session changed since is worked out:
// most have no earlier times.
func (s *Server) sessionRuns(ctx context.Context, area string, ss []*loaxa.Session, from, to time.Time) ([]sessionRun, error) {
	var chain []string
	var out []sessionRun
	for _, x := range ss {
		if len(x.Earlier) == 0 || !x.Earlier[len(x.Earlier)-1].Until.After(from.Add(-24*time.Hour)) {
			continue // no day of the span ran by earlier times
		}
		if chain == nil {
			var err error
			if chain, err = s.AreaService.AreaChain(ctx, area); err != nil {
				return nil, fmt.Errorf("session times of %s: %w", area, err)
			}
		}
		if !slices.Contains(chain, x.Area) {
			continue
		}
		loc, err := s.locationOf(ctx, x.Area)
		if err != nil {
			return nil, fmt.Errorf("session times of %s: %w", x.ID, err)
		}
		runs, err := x.Runs(loc, from.Add(-time.Nanosecond), to.Add(-time.Nanosecond))
		if err != nil {
			// Its times refused (stored by an older version): the
			// programme says so; the boxes keep the times it has now.
			s.logger().Warn("programme: times a session ran by not worked out", "session", x.ID, "err", err)
			continue
		}
		for _, run := range runs {
			t := run.Session
			if t.Start == x.Start && t.MaxMinutes == x.MaxMinutes && t.Days == x.Days {
				continue
			}
			out = append(out, sessionRun{Session: x.ID, Day: run.Start.In(loc).Format(loaxa.DateLayout), Start: t.Start, MaxMinutes: t.MaxMinutes, Days: t.Days})
		}
	}
	return out, nil
}

// programmeRange reads from and to (RFC 3339, or a date in the controller's
// default zone); from defaults to now, to to from plus a week.
func (s *Server) programmeRange(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	from, err := parseRangeTime("from", q.Get("from"))
	if err != nil {
		return from, from, err
	}
	to, err := parseRangeTime("to", q.Get("to"))
	if err != nil {
		return from, to, err
	}
	if from.IsZero() {
		from = s.now()
	}
	if to.IsZero() {
		to = from.Add(DefaultProgrammeSpan)
	}
	if !from.Before(to) || to.Sub(from) > MaxProgrammeSpan {
		return from, to, loaxa.Errorf(loaxa.EInvalid, "from %s to %s is not a range of at most %d days; give from < to.",
			from.Format(time.RFC3339), to.Format(time.RFC3339), int(MaxProgrammeSpan/(24*time.Hour)))
	}
	return from, to, nil
}

// reportRangeError refuses the range [from, to) of a report of at most
// MaxReportSpan, saying the times it read in the default zone and that a
// to left out was now: a report asked from tomorrow without to read "from
// 2026-12-03 to  is not a range".
func reportRangeError(from, to time.Time, toLeftOut bool) error {
	if loc, err := loaxa.Location(""); err == nil {
		from, to = from.In(loc), to.In(loc)
	}
	var now string
	if toLeftOut {
		now = " (now: to was left out)"
	}
	return loaxa.Errorf(loaxa.EInvalid, "from %s to %s%s is not a range of at most %d days; give from < to.",
		from.Format(time.RFC3339), to.Format(time.RFC3339), now, int(MaxReportSpan/(24*time.Hour)))
}

// parseRangeTime reads an RFC 3339 time or a date (midnight in the default
// zone).
func parseRangeTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if loc, err := loaxa.Location(""); err == nil {
		if t, err := time.ParseInLocation(loaxa.DateLayout, v, loc); err == nil {
			return t, nil
		}
	}
	return parseQueryTime(name, v)
}

func (s *Server) programmeAvailable() error {
	if s.ProgrammeService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "The programme is not available on this controller.")
	}
	return nil
}

// handleNodeProgramme answers GET /api/v1/nodes/{id}/programme?from=&to=:
// what the node will play, as the scheduler compiles it.
func (s *Server) handleNodeProgramme(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "from", "to"); err != nil {
		return err
	}
	if err := s.programmeAvailable(); err != nil {
		return err
	}
	n, err := s.findNode(r)
	if err != nil {
		return err
	}
	from, to, err := s.programmeRange(r)
	if err != nil {
		return err
	}
	items, err := s.ProgrammeService.NodeProgramme(r.Context(), n.ID, from, to)
	if loaxa.ErrorCode(err) == loaxa.EInternal {
		s.writeFault(w, r, "programme failed", err,
			fmt.Sprintf("The programme of cluster %s (%s) could not be shown: the controller failed while compiling it", n.ID, n.Name),
			"Nothing was changed. "+tryAgain, "node", n.ID)
		return nil
	} else if err != nil {
		return fmt.Errorf("programme of node %s: %w", n.ID, err)
	}
	resp, err := s.programme(r.Context(), n.Area, from, to, items)
	if err != nil {
		return fmt.Errorf("programme of %s: %w", r.PathValue("id"), err)
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// handleAreaProgramme answers GET /api/v1/areas/{id}/programme?from=&to=:
// every occurrence on the area's nodes, with the nodes it plays on.
func (s *Server) handleAreaProgramme(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "from", "to"); err != nil {
		return err
	}
	if err := s.programmeAvailable(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	area, err := s.AreaService.FindAreaByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no area %q; list areas with GET /api/v1/areas.", id)
	} else if err != nil {
		return fmt.Errorf("programme of area %s: %w", id, err)
	}
	if err := s.authorize(ctx, loaxa.ActionRead, id); err != nil {
		return err
	}
	from, to, err := s.programmeRange(r)
	if err != nil {
		return err
	}
	items, err := s.ProgrammeService.AreaProgramme(ctx, id, from, to)
	if loaxa.ErrorCode(err) == loaxa.EInternal {
		s.writeFault(w, r, "programme failed", err,
			fmt.Sprintf("The programme of %s (%s) could not be shown: the controller failed while compiling it", area.Name, area.ID),
			"Nothing was changed. "+tryAgain, "area", id)
		return nil
	} else if err != nil {
		return fmt.Errorf("programme of area %s: %w", id, err)
	}
	resp, err := s.programme(r.Context(), id, from, to, items)
	if err != nil {
		return fmt.Errorf("programme of %s: %w", r.PathValue("id"), err)
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}
