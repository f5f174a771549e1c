package loaxa

import (
	"context"
	"slices"
)

// Action is something a user asks to do; roles grant actions.
type Action string

// Actions checked by the API. Every route names one.
const (
	ActionRead          Action = "read"           // see areas, nodes, content, schedules, events in scope
	ActionManageUsers   Action = "users.manage"   // create users in scope
	ActionManageAreas   Action = "areas.manage"   // create areas in scope
	ActionManageNodes   Action = "nodes.manage"   // enrol nodes in scope
	ActionUploadContent Action = "content.upload" // upload audio
	ActionSchedule      Action = "schedule"       // create and cancel announcements in scope
	ActionEmergency     Action = "emergency"      // send emergency announcements in scope
)

// grants is the role table. docs/security.md shows it to people; this is
// the one place it is enforced.
var grants = map[Role][]Action{
	RoleAdmin:      {ActionRead, ActionManageUsers, ActionManageAreas, ActionManageNodes, ActionUploadContent, ActionSchedule, ActionEmergency},
	RoleProvince:   {ActionRead, ActionManageAreas, ActionUploadContent, ActionSchedule, ActionEmergency},
	RoleDistrict:   {ActionRead, ActionUploadContent, ActionSchedule, ActionEmergency},
	RoleCommune:    {ActionRead, ActionUploadContent, ActionSchedule, ActionEmergency},
	RoleTechnician: {ActionRead, ActionManageNodes},
	RoleViewer:     {ActionRead},
}

// May reports whether u's role grants a, regardless of area.
func (u *User) May(a Action) bool {
	return u != nil && slices.Contains(grants[u.Role], a)
}

// Covers reports whether an area with the given chain (the area followed by
// its ancestors, from AreaChain) lies within u's subtree.
func (u *User) Covers(chain []string) bool {
	return u != nil && (u.Area == "" || slices.Contains(chain, u.Area))
}

// Authorize returns nil if u may do a on area, or EForbidden saying why.
// area "" means an action not tied to an area (only the role is checked).
func Authorize(ctx context.Context, areas AreaService, u *User, a Action, area string) error {
	if u == nil {
		return Errorf(EUnauthorized, "Sign in first: send Authorization: Bearer <token> from POST /api/v1/auth/token.")
	}
	if !u.May(a) {
		return Errorf(EForbidden, "Role %q may not %s.", u.Role, a)
	}
	if area == "" || u.Area == "" {
		return nil
	}
	chain, err := areas.AreaChain(ctx, area)
	if err != nil {
		return err
	}
	if !u.Covers(chain) {
		return Errorf(EForbidden, "Area %q is outside your area %q.", area, u.Area)
	}
	return nil
}
