package loaxa

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Action is something a user asks to do; roles grant actions.
type Action string

// Actions checked by the API. Every route names one.
const (
	ActionRead          Action = "read"           // see areas, nodes, content, schedules, events in scope
	ActionManageUsers   Action = "users.manage"   // create users in scope
	ActionManageAreas   Action = "areas.manage"   // create areas in scope
	ActionManageNodes   Action = "nodes.manage"   // enrol, change, move and revoke nodes in scope
	ActionUploadContent Action = "content.upload" // upload audio
	ActionSchedule      Action = "schedule"       // create and cancel announcements in scope
	ActionEmergency     Action = "emergency"      // send emergency announcements in scope
	ActionSession       Action = "session"        // see and end one's own session
	ActionReadAudit     Action = "audit.read"     // read the audit log in scope
	ActionManageSystem  Action = "system.manage"  // rotate controller signing keys, export broker credentials, take backups, host releases and roll them out (whole tree only)
	ActionMaintain      Action = "nodes.maintain" // remote control (volume, mute, amplifier, reboot), self-tests, acknowledge alarms in scope
)

// Actions lists every action, in the order of the role table.
var Actions = []Action{
	ActionRead, ActionSession, ActionManageUsers, ActionManageAreas, ActionManageNodes, ActionUploadContent,
	ActionSchedule, ActionEmergency, ActionReadAudit, ActionManageSystem, ActionMaintain,
}

// actionWords says what each action covers, in a refusal: the action's
// name alone ("may not emergency") told an officer neither what was
// refused nor whom to ask.
var actionWords = map[Action]string{
	ActionRead:          "see areas, clusters, content, schedules and reports",
	ActionSession:       "see and end one's own session",
	ActionManageUsers:   "create and change users",
	ActionManageAreas:   "create and change areas",
	ActionManageNodes:   "enrol clusters, rename them, set their position or move them to another area, renew or revoke their credentials",
	ActionUploadContent: "upload and make audio content",
	ActionSchedule:      "schedule and cancel bulletins, make live calls",
	ActionEmergency:     "send, stop or approve emergency alerts, make emergency live calls",
	ActionReadAudit:     "read the audit log",
	ActionManageSystem:  "manage the controller: keys, backups, releases",
	ActionMaintain:      "control and test clusters, acknowledge alarms",
}

// rolesGranting returns the roles that grant a, most powerful first.
func rolesGranting(a Action) []string {
	var out []string
	for _, r := range Roles {
		if slices.Contains(grants[r], a) {
			out = append(out, string(r))
		}
	}
	return out
}

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleProvince, RoleDistrict, RoleCommune, RoleTechnician, RoleViewer}

// grants is the role table. docs/security.md shows it to people; this is
// the one place it is enforced.
var grants = map[Role][]Action{
	RoleAdmin:      {ActionRead, ActionSession, ActionManageUsers, ActionManageAreas, ActionManageNodes, ActionUploadContent, ActionSchedule, ActionEmergency, ActionReadAudit, ActionManageSystem, ActionMaintain},
	RoleProvince:   {ActionRead, ActionSession, ActionManageAreas, ActionUploadContent, ActionSchedule, ActionEmergency, ActionReadAudit, ActionMaintain},
	RoleDistrict:   {ActionRead, ActionSession, ActionUploadContent, ActionSchedule, ActionEmergency, ActionReadAudit, ActionMaintain},
	RoleCommune:    {ActionRead, ActionSession, ActionUploadContent, ActionSchedule, ActionEmergency, ActionMaintain},
	RoleTechnician: {ActionRead, ActionSession, ActionManageNodes, ActionMaintain},
	RoleViewer:     {ActionRead, ActionSession},
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
		return Errorf(EForbidden, "Role %q may not %s (%s); the roles that may: %s. Ask a user of one of them, or an admin to change your role.",
			u.Role, a, actionWords[a], strings.Join(rolesGranting(a), ", "))
	}
	if area == "" || u.Area == "" {
		return nil
	}
	chain, err := areas.AreaChain(ctx, area)
	if err != nil {
		return err
	}
	if !u.Covers(chain) {
		return &Error{Code: EForbidden, Reason: ReasonOutsideArea, Message: fmt.Sprintf("Area %q is outside your area %q.", area, u.Area)}
	}
	return nil
}
