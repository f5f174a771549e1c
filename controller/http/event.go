package http

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"loaxa.vn/controller/loaxa"
)

// MaxEventLimit is the largest limit GET /api/v1/events accepts.
const MaxEventLimit = 10000

// eventsResponse answers GET /api/v1/events.
type eventsResponse struct {
	Events []*loaxa.Event `json:"events"`
}

// handleListEvents answers GET /api/v1/events?node=&area=&from=&to=&limit=&order=:
// the play log of the user's area, oldest first (or newest first).
func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "node", "area", "from", "to", "limit", "order"); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	f := loaxa.EventFilter{Within: userFrom(ctx).Area}
	if id := q.Get("node"); id != "" {
		n, err := s.requireNode(ctx, "node", id)
		if err != nil {
			return err
		}
		if err := s.authorizeOn(ctx, loaxa.ActionRead, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
			return err
		}
		f.Node = n.ID
	}
	if area := q.Get("area"); area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
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
		if err != nil || n < 1 || n > MaxEventLimit {
			return loaxa.Errorf(loaxa.EInvalid, "limit %q is not a number from 1 to %d.", v, MaxEventLimit)
		}
		f.Limit = n
	}
	if f.Newest, err = parseOrder(q.Get("order")); err != nil {
		return err
	}
	events, err := s.EventService.FindEvents(ctx, f)
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, eventsResponse{Events: nonNil(events)})
	return nil
}

// parseOrder reads the optional order query parameter of a log: "oldest"
// (the default) or "newest", which reports true. Newest first, a limit
// keeps the latest entries.
func parseOrder(v string) (newest bool, err error) {
	switch v {
	case "", "oldest":
		return false, nil
	case "newest":
		return true, nil
	}
	return false, loaxa.Errorf(loaxa.EInvalid, "order %q is neither oldest nor newest; give order=newest for the latest first (the limit then keeps the newest).", v)
}

// parseQueryTime reads an optional RFC 3339 query parameter.
func parseQueryTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, loaxa.Errorf(loaxa.EInvalid,
			"%s %q is not an RFC 3339 time; write it like 2026-11-28T00:00:00+07:00 (in a URL, write + as %%2B).", name, v)
	}
	return t, nil
}
