package http

import (
	"fmt"
	"net/http"
	"strings"

	"loaxa.vn/controller/loaxa"
)

var roles = []loaxa.Role{loaxa.RoleAdmin, loaxa.RoleProvince, loaxa.RoleDistrict, loaxa.RoleCommune, loaxa.RoleTechnician, loaxa.RoleViewer}

// userRequest is the body of POST /api/v1/users.
type userRequest struct {
	Username string     `json:"username"`
	Password string     `json:"password"`
	Role     loaxa.Role `json:"role"`
	Area     string     `json:"area"`
}

// usersResponse answers GET /api/v1/users.
type usersResponse struct {
	Users []*loaxa.User `json:"users"`
}

// handleListUsers answers GET /api/v1/users: the users whose area lies in
// the caller's subtree.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	caller := userFrom(ctx)
	users, err := s.UserService.FindUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	sc, err := s.scopeOf(ctx, caller, false)
	if err != nil {
		return err
	}
	out := make([]*loaxa.User, 0, len(users))
	for _, u := range users {
		if sc.all || sc.within[u.Area] {
			out = append(out, u)
		}
	}
	s.writeJSON(w, r, http.StatusOK, usersResponse{Users: out})
	return nil
}

// handleCreateUser answers POST /api/v1/users.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	caller := userFrom(ctx)
	if err := checkID("username", req.Username); err != nil {
		return err
	}
	if err := loaxa.CheckPassword("password", req.Password); err != nil {
		return err
	}
	if !req.Role.Valid() {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = string(r)
		}
		return loaxa.Errorf(loaxa.EInvalid, "role %q is not a role; use one of %s.", req.Role, strings.Join(names, ", "))
	}
	if req.Area == "" {
		// No area means the whole tree: only for admins, made by someone
		// who has it.
		if req.Role != loaxa.RoleAdmin {
			return loaxa.Errorf(loaxa.EInvalid, "area is required for role %q; give the area this user works in.", req.Role)
		}
		if caller.Area != "" {
			return loaxa.Errorf(loaxa.EForbidden, "Only a user over the whole tree may create one; give an area within your area %q.", caller.Area)
		}
	} else {
		if _, err := s.requireArea(ctx, "area", req.Area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionManageUsers, req.Area); err != nil {
			return err
		}
	}
	hash, err := loaxa.HashPassword(req.Password, s.PasswordCost)
	if err != nil {
		return fmt.Errorf("create user %s: %w", req.Username, err)
	}
	u := &loaxa.User{Username: req.Username, Role: req.Role, Area: req.Area, PasswordHash: hash, CreatedAt: s.now()}
	if err := s.UserService.CreateUser(ctx, u); loaxa.ErrorCode(err) == loaxa.EConflict {
		return &loaxa.Error{Code: loaxa.EConflict, Reason: loaxa.ReasonUsernameTaken, Message: fmt.Sprintf("Username %q is taken; choose another.", u.Username)}
	} else if err != nil {
		return fmt.Errorf("create user %s: %w", u.Username, err)
	}
	s.audit(r, auditUserCreate, u.Username, u.Area, "role="+string(u.Role))
	s.logger().Info("user created", "username", u.Username, "role", u.Role, "area", u.Area, "by", caller.Username)
	s.writeJSON(w, r, http.StatusCreated, u)
	return nil
}
