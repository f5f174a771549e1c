package http

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"loaxa.vn/controller/loaxa"
)

// Live call records (docs/live.md): GET /api/v1/live/calls,
// GET /api/v1/live/calls/{id} and POST /api/v1/live/calls/{id}/cut.

// Limits of GET /api/v1/live/calls.
const (
	DefaultLiveCallLimit = 50
	MaxLiveCallLimit     = 1000
)

// liveCalls returns the service or says that there is none.
func (s *Server) liveCalls() (loaxa.LiveCallService, error) {
	if s.LiveCalls == nil {
		return nil, loaxa.Errorf(loaxa.EUnavailable, "Live broadcasting is not set up on this controller.")
	}
	return s.LiveCalls, nil
}

// seesLiveCall reports whether the caller may see call c: it went to
// their area or above it, or to an area within theirs.
func (s *Server) seesLiveCall(ctx context.Context, c *loaxa.LiveCall) (bool, error) {
	u := userFrom(ctx)
	if u == nil || u.Area == "" {
		return u != nil, nil
	}
	mine, err := s.AreaService.AreaChain(ctx, u.Area)
	if err != nil {
		return false, fmt.Errorf("area of %s: %w", u.Username, err)
	}
	for _, a := range c.Areas {
		if slices.Contains(mine, a) {
			return true, nil
		}
		chain, err := s.AreaService.AreaChain(ctx, a)
		if err != nil {
			continue // an area removed since
		}
		if u.Covers(chain) {
			return true, nil
		}
	}
	return false, nil
}

// findLiveCall returns call id if the caller may see it.
func (s *Server) findLiveCall(ctx context.Context, svc loaxa.LiveCallService, id string) (*loaxa.LiveCall, error) {
	if err := checkLiveCallID(id); err != nil {
		return nil, err
	}
	c, err := svc.FindLiveCallByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, err := s.seesLiveCall(ctx, c); err != nil {
		return nil, err
	} else if !ok {
		return nil, loaxa.Errorf(loaxa.EForbidden, "Live call %s went to areas outside your area.", id)
	}
	return c, nil
}

func checkLiveCallID(id string) error {
	if err := checkID("id", id); err != nil {
		return err
	}
	if !loaxa.IsLiveCallID(id) {
		return loaxa.Errorf(loaxa.EInvalid, "id %q is not a live call id; live call ids start with %q (list them with GET /api/v1/live/calls).", id, loaxa.LiveCallIDPrefix)
	}
	return nil
}

// listedLiveCall is a call in GET /api/v1/live/calls: the record, and
// with summary=true its report's summary.
type listedLiveCall struct {
	*loaxa.LiveCall
	Summary *loaxa.LiveCallSummary `json:"summary,omitempty"`
}

// handleListLiveCalls answers GET /api/v1/live/calls?active=&limit=&summary=:
// the calls the caller may see, newest first; active=true only those on
// air; summary=true adds each call's summary, so that a console shows
// every call on air with one request rather than one per call.
func (s *Server) handleListLiveCalls(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "active", "limit", "summary"); err != nil {
		return err
	}
	svc, err := s.liveCalls()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f loaxa.LiveCallFilter
	if v := q.Get("active"); v != "" {
		if f.Active, err = strconv.ParseBool(v); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "active %q: write true (only calls on air) or false (all calls).", v)
		}
	}
	var summary bool
	if v := q.Get("summary"); v != "" {
		if summary, err = strconv.ParseBool(v); err != nil {
			return loaxa.Errorf(loaxa.EInvalid, "summary %q: write true (each call with its summary) or false (the records only).", v)
		}
	}
	limit := DefaultLiveCallLimit
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxLiveCallLimit {
			return loaxa.Errorf(loaxa.EInvalid, "limit %q: give a number from 1 to %d.", v, MaxLiveCallLimit)
		}
	}
	ctx := r.Context()
	calls, err := svc.FindLiveCalls(ctx, f)
	if err != nil {
		return err
	}
	out := []listedLiveCall{}
	for _, c := range calls {
		if len(out) == limit {
			break
		}
		if ok, err := s.seesLiveCall(ctx, c); err != nil {
			return err
		} else if ok {
			s.withLiveCounts(c)
			out = append(out, listedLiveCall{LiveCall: c})
		}
	}
	if summary && len(out) > 0 {
		ids := make([]string, len(out))
		for i, c := range out {
			ids[i] = c.ID
		}
		sums, err := svc.LiveCallSummaries(ctx, ids)
		if err != nil {
			return err
		}
		for i := range out {
			sum := sums[out[i].ID]
			out[i].Summary = &sum
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, map[string]any{"calls": out})
	return nil
}

// handleGetLiveCall answers GET /api/v1/live/calls/{id}: the record, a
// summary and every node's delivery.
func (s *Server) handleGetLiveCall(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.liveCalls()
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.findLiveCall(ctx, svc, r.PathValue("id"))
	if err != nil {
		return err
	}
	rep, err := svc.LiveCallReport(ctx, c.ID)
	if err != nil {
		return err
	}
	s.withLiveCounts(rep.LiveCall)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, rep)
	return nil
}

// handleCutLiveCall answers POST /api/v1/live/calls/{id}/cut: the call
// ends now; the speaker's WebSocket gets an "ended" status (reason cut,
// cut_by) and closes with StatusLiveCut, and nodes drop what they buffered
// and release the amplifier. The officer who speaks may cut their own
// call; anyone else needs the right to make such a call (schedule, or
// emergency for an emergency call) on every one of its areas.
func (s *Server) handleCutLiveCall(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	svc, err := s.liveCalls()
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.findLiveCall(ctx, svc, r.PathValue("id"))
	if err != nil {
		return err
	}
	user := userFrom(ctx).Username
	if user != c.CreatedBy {
		for _, a := range c.Areas {
			if err := s.authorizeOn(ctx, liveCallAction(c.Priority), a, fmt.Sprintf("Part of live call %s", c.ID)); err != nil {
				return loaxa.Errorf(loaxa.EForbidden, "Only %s, who speaks, or a user who may make this call (%s on each of its areas) may cut live call %s: %s",
					c.CreatedBy, liveCallAction(c.Priority), c.ID, loaxa.ErrorMessage(err))
			}
		}
	}
	ended, err := svc.CutCall(ctx, c.ID, user)
	if err != nil {
		return err
	}
	s.auditIn(r, auditLiveCut, c.ID, c.Areas, fmt.Sprintf("drill=%t priority=%s speaker=%s frames=%d", c.Drill, c.Priority, c.CreatedBy, ended.FramesSent))
	s.writeJSON(w, r, http.StatusOK, ended)
	return nil
}
