package http

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"loaxa.vn/controller/loaxa"
)

// areaRequest is the body of POST /api/v1/areas.
type areaRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Parent   string `json:"parent"`
	TimeZone string `json:"time_zone"`
}

// areasResponse answers GET /api/v1/areas.
type areasResponse struct {
	Areas []*loaxa.Area `json:"areas"`
	// Above names the areas above the caller's own, its parent first: so
	// that a commune officer's console can name the district that sent a
	// warning to the commune. Names only; the areas stay outside the
	// caller's scope.
	Above []areaName `json:"above,omitempty"`
}

// areaName is an area's id and name.
type areaName struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// handleListAreas answers GET /api/v1/areas: the user's area and
// everything below it, and the names of the areas above it.
func (s *Server) handleListAreas(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	own := userFrom(ctx).Area
	areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: own})
	if err != nil {
		return fmt.Errorf("list areas: %w", err)
	}
	resp := areasResponse{Areas: nonNil(areas)}
	if own != "" {
		chain, err := s.AreaService.AreaChain(ctx, own)
		if err != nil {
			return fmt.Errorf("list areas: the areas above %s: %w", own, err)
		}
		for _, id := range chain[1:] {
			a, err := s.AreaService.FindAreaByID(ctx, id)
			if err != nil {
				return fmt.Errorf("list areas: the area %s above %s: %w", id, own, err)
			}
			resp.Above = append(resp.Above, areaName{ID: a.ID, Name: a.Name})
		}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// handleGetArea answers GET /api/v1/areas/{id}.
func (s *Server) handleGetArea(w http.ResponseWriter, r *http.Request) error {
	ctx, id := r.Context(), r.PathValue("id")
	a, err := s.AreaService.FindAreaByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no area %q; list areas with GET /api/v1/areas.", id)
	} else if err != nil {
		return fmt.Errorf("get area %s: %w", id, err)
	}
	if err := s.authorize(ctx, loaxa.ActionRead, a.ID); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, a)
	return nil
}

// handleCreateArea answers POST /api/v1/areas.
func (s *Server) handleCreateArea(w http.ResponseWriter, r *http.Request) error {
	var req areaRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	a := &loaxa.Area{ID: req.ID, Parent: req.Parent, TimeZone: req.TimeZone}
	if err := checkID("id", a.ID); err != nil {
		return err
	}
	var err error
	if a.Name, err = cleanText("name", req.Name, true); err != nil {
		return err
	}
	if a.TimeZone != "" {
		// "Local" would mean whatever zone the controller machine is set to.
		if _, err := time.LoadLocation(a.TimeZone); err != nil || a.TimeZone == "Local" {
			return loaxa.Errorf(loaxa.EInvalid,
				"time_zone %q is not an IANA time zone name; use one like %s, or leave it out to inherit the parent's.",
				a.TimeZone, loaxa.DefaultTimeZone)
		}
	}
	if a.Parent == "" {
		// A new root is outside every subtree but the whole tree's.
		if u := userFrom(ctx); u.Area != "" {
			return loaxa.Errorf(loaxa.EForbidden,
				"Only a user over the whole tree may create a top-level area; give a parent within your area %q.", u.Area)
		}
	} else {
		if _, err := s.requireArea(ctx, "parent", a.Parent); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionManageAreas, a.Parent); err != nil {
			return err
		}
	}
	a.CreatedAt = s.now()
	if err := s.AreaService.CreateArea(ctx, a); loaxa.ErrorCode(err) == loaxa.EConflict {
		return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonAreaExists,
			Message: fmt.Sprintf("Area %q exists already; choose another id or use the existing area.", a.ID)}
	} else if err != nil {
		return fmt.Errorf("create area %s: %w", a.ID, err)
	}
	s.audit(r, auditAreaCreate, a.ID, a.ID, "parent="+a.Parent)
	s.logger().Info("area created", "area", a.ID, "parent", a.Parent, "by", userFrom(ctx).Username)
	s.writeJSON(w, r, http.StatusCreated, a)
	return nil
}

// requireArea returns area id named by a request field, or EInvalid if it
// does not exist.
func (s *Server) requireArea(ctx context.Context, field, id string) (*loaxa.Area, error) {
	if err := checkID(field, id); err != nil {
		return nil, err
	}
	a, err := s.AreaService.FindAreaByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.EInvalid, "%s: there is no area %q; pick one from GET /api/v1/areas or create it first.", field, id)
	} else if err != nil {
		return nil, fmt.Errorf("find area %s: %w", id, err)
	}
	return a, nil
}

// scope is the part of the area tree a user sees: their area and its
// descendants, plus the ancestors above it, because what is sent to an
// ancestor reaches the user's area too.
type scope struct {
	all    bool            // the whole tree
	within map[string]bool // the user's area and its descendants
	above  map[string]bool // the user's area's ancestors
	nodes  map[string]bool // nodes within, when asked for
}

// scopeOf works out u's scope, with the ids of the nodes in it if
// withNodes.
func (s *Server) scopeOf(ctx context.Context, u *loaxa.User, withNodes bool) (*scope, error) {
	if u.Area == "" {
		return &scope{all: true}, nil
	}
	sc := &scope{within: map[string]bool{}, above: map[string]bool{}}
	areas, err := s.AreaService.FindAreas(ctx, loaxa.AreaFilter{Within: u.Area})
	if err != nil {
		return nil, fmt.Errorf("scope of %s: %w", u.Username, err)
	}
	for _, a := range areas {
		sc.within[a.ID] = true
	}
	chain, err := s.AreaService.AreaChain(ctx, u.Area)
	if err != nil {
		return nil, fmt.Errorf("scope of %s: %w", u.Username, err)
	}
	for _, id := range chain[1:] {
		sc.above[id] = true
	}
	if withNodes {
		nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{Within: u.Area})
		if err != nil {
			return nil, fmt.Errorf("scope of %s: %w", u.Username, err)
		}
		sc.nodes = make(map[string]bool, len(nodes))
		for _, n := range nodes {
			sc.nodes[n.ID] = true
		}
	}
	return sc, nil
}

// hasNode reports whether node id is within the scope (scopeOf withNodes).
func (sc *scope) hasNode(id string) bool { return sc.all || sc.nodes[id] }

// touches reports whether any of the areas lies in the scope or above it
// (what is sent above the scope reaches it too).
func (sc *scope) touches(areas []string) bool {
	if sc.all {
		return true
	}
	for _, id := range areas {
		if sc.within[id] || sc.above[id] {
			return true
		}
	}
	return false
}

// reaches reports whether announcement a plays somewhere in the scope.
func (sc *scope) reaches(a *loaxa.Announcement) bool {
	if sc.all {
		return true
	}
	for _, id := range a.Targets.Areas {
		if sc.within[id] || sc.above[id] {
			return true
		}
	}
	for _, id := range a.Targets.Nodes {
		if sc.nodes[id] {
			return true
		}
	}
	return false
}

// nonNil returns s, or an empty slice for nil, so lists encode as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
