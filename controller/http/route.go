package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
)

// Route is one API endpoint and what a caller needs to use it.
type Route struct {
	Method string
	// Path is the http.ServeMux pattern path, e.g. /api/v1/nodes/{id}.
	Path string
	// Action is what a signed-in user's role must grant; "" marks a public
	// route that needs no credentials.
	Action loaxa.Action
	// Nodes reports whether a node may also call the route with its own
	// credentials (HTTP Basic: node id and secret).
	Nodes bool

	handle func(w http.ResponseWriter, r *http.Request) error
}

// routeTable is every route of the API. Adding a route means naming its
// action here; the wrapper enforces it.
func (s *Server) routeTable() []Route {
	return []Route{
		{Method: "GET", Path: "/metrics", handle: s.handleMetrics},
		{Method: "GET", Path: "/api/v1/health", handle: s.handleHealth},
		{Method: "GET", Path: "/api/v1/time", handle: s.handleTime},
		{Method: "POST", Path: "/api/v1/auth/token", handle: s.handleCreateToken},
		{Method: "POST", Path: "/api/v1/auth/session", handle: s.handleSignInBrowser},
		{Method: "GET", Path: "/api/v1/auth/session", Action: loaxa.ActionSession, handle: s.handleWhoAmI},
		{Method: "POST", Path: "/api/v1/auth/logout", Action: loaxa.ActionSession, handle: s.handleLogout},
		{Method: "POST", Path: "/api/v1/auth/password", Action: loaxa.ActionSession, handle: s.handleChangePassword},

		{Method: "GET", Path: "/api/v1/users", Action: loaxa.ActionManageUsers, handle: s.handleListUsers},
		{Method: "POST", Path: "/api/v1/users", Action: loaxa.ActionManageUsers, handle: s.handleCreateUser},
		{Method: "DELETE", Path: "/api/v1/users/{username}/sessions", Action: loaxa.ActionManageUsers, handle: s.handleRevokeSessions},
		{Method: "PUT", Path: "/api/v1/users/{username}/password", Action: loaxa.ActionManageUsers, handle: s.handleResetPassword},

		{Method: "GET", Path: "/api/v1/areas", Action: loaxa.ActionRead, handle: s.handleListAreas},
		{Method: "POST", Path: "/api/v1/areas", Action: loaxa.ActionManageAreas, handle: s.handleCreateArea},
		{Method: "GET", Path: "/api/v1/areas/{id}", Action: loaxa.ActionRead, handle: s.handleGetArea},

		{Method: "GET", Path: "/api/v1/nodes", Action: loaxa.ActionRead, handle: s.handleListNodes},
		{Method: "POST", Path: "/api/v1/nodes", Action: loaxa.ActionManageNodes, handle: s.handleCreateNode},
		{Method: "POST", Path: "/api/v1/nodes/batch", Action: loaxa.ActionManageNodes, handle: s.handleCreateNodes},
		{Method: "POST", Path: "/api/v1/nodes/{id}/enrolment", Action: loaxa.ActionManageNodes, handle: s.handleCreateEnrolment},
		{Method: "POST", Path: "/api/v1/nodes/{id}/rotate", Action: loaxa.ActionManageNodes, handle: s.handleRotateNode},
		{Method: "POST", Path: "/api/v1/nodes/{id}/revoke", Action: loaxa.ActionManageNodes, handle: s.handleRevokeNode},
		{Method: "POST", Path: "/api/v1/enrol", handle: s.handleEnrol},
		{Method: "GET", Path: "/api/v1/nodes/{id}", Action: loaxa.ActionRead, handle: s.handleGetNode},
		{Method: "PATCH", Path: "/api/v1/nodes/{id}", Action: loaxa.ActionManageNodes, handle: s.handleUpdateNode},
		{Method: "GET", Path: "/api/v1/nodes/{id}/desired", Action: loaxa.ActionRead, handle: s.handleGetDesired},

		{Method: "GET", Path: "/api/v1/content", Action: loaxa.ActionRead, handle: s.handleListContent},
		{Method: "POST", Path: "/api/v1/content", Action: loaxa.ActionUploadContent, handle: s.handleUploadContent},
		{Method: "POST", Path: "/api/v1/content/tts", Action: loaxa.ActionUploadContent, handle: s.handleSpeech},
		{Method: "GET", Path: "/api/v1/content/{id}", Action: loaxa.ActionRead, handle: s.handleGetContent},
		{Method: "GET", Path: "/api/v1/content/standing", Action: loaxa.ActionRead, handle: s.handleListStanding},
		{Method: "PUT", Path: "/api/v1/content/{id}/standing", Action: loaxa.ActionEmergency, handle: s.handleSetStanding},
		{Method: "GET", Path: "/api/v1/content/{id}/audio", Action: loaxa.ActionRead, Nodes: true, handle: s.handleGetAudio},
		{Method: "GET", Path: "/api/v1/content/{id}/chunks", Action: loaxa.ActionRead, Nodes: true, handle: s.handleGetChunks},

		{Method: "GET", Path: "/api/v1/announcements", Action: loaxa.ActionRead, handle: s.handleListAnnouncements},
		{Method: "POST", Path: "/api/v1/announcements", Action: loaxa.ActionSchedule, handle: s.handleCreateAnnouncement},
		{Method: "GET", Path: "/api/v1/announcements/{id}", Action: loaxa.ActionRead, handle: s.handleGetAnnouncement},
		{Method: "POST", Path: "/api/v1/announcements/{id}/cancel", Action: loaxa.ActionSchedule, handle: s.handleCancelAnnouncement},
		{Method: "GET", Path: "/api/v1/announcements/{id}/deliveries", Action: loaxa.ActionRead, handle: s.handleListDeliveries},

		{Method: "GET", Path: "/api/v1/events", Action: loaxa.ActionRead, handle: s.handleListEvents},

		{Method: "GET", Path: "/api/v1/live", Action: loaxa.ActionRead, handle: s.handleLive}, // schedule or emergency on every area, checked inside
		{Method: "GET", Path: "/api/v1/live/calls", Action: loaxa.ActionRead, handle: s.handleListLiveCalls},
		{Method: "GET", Path: "/api/v1/live/calls/{id}", Action: loaxa.ActionRead, handle: s.handleGetLiveCall},
		{Method: "POST", Path: "/api/v1/live/calls/{id}/cut", Action: loaxa.ActionRead, handle: s.handleCutLiveCall}, // the speaker, or schedule/emergency on every area, checked inside
		{Method: "GET", Path: "/api/v1/emergency", Action: loaxa.ActionRead, handle: s.handleListEmergencies},
		{Method: "POST", Path: "/api/v1/emergency", Action: loaxa.ActionEmergency, handle: s.handleSendEmergency},
		{Method: "GET", Path: "/api/v1/emergency/{id}", Action: loaxa.ActionRead, handle: s.handleGetEmergency},
		{Method: "GET", Path: "/api/v1/emergency/{id}/stream", Action: loaxa.ActionRead, handle: s.handleEmergencyStream},
		{Method: "POST", Path: "/api/v1/emergency/{id}/cancel", Action: loaxa.ActionEmergency, handle: s.handleCancelEmergency},
		{Method: "POST", Path: "/api/v1/emergency/{id}/all-clear", Action: loaxa.ActionEmergency, handle: s.handleAllClear},
		{Method: "POST", Path: "/api/v1/cap", Action: loaxa.ActionEmergency, handle: s.handleReceiveCap},
		{Method: "GET", Path: "/api/v1/cap", Action: loaxa.ActionRead, handle: s.handleListCap},
		{Method: "GET", Path: "/api/v1/cap/auto-start", Action: loaxa.ActionRead, handle: s.handleGetCapAutoStart},
		{Method: "GET", Path: "/api/v1/cap/feeds", Action: loaxa.ActionRead, handle: s.handleCapFeeds},
		{Method: "PUT", Path: "/api/v1/cap/auto-start", Action: loaxa.ActionEmergency, handle: s.handlePutCapAutoStart},
		{Method: "GET", Path: "/api/v1/cap/recordings", Action: loaxa.ActionRead, handle: s.handleGetCapRecordings},
		{Method: "PUT", Path: "/api/v1/cap/recordings", Action: loaxa.ActionEmergency, handle: s.handlePutCapRecordings},
		{Method: "GET", Path: "/api/v1/cap/{id}", Action: loaxa.ActionRead, handle: s.handleGetCap},
		{Method: "POST", Path: "/api/v1/cap/{id}/approve", Action: loaxa.ActionEmergency, handle: s.handleApproveCap},

		{Method: "GET", Path: "/api/v1/audit", Action: loaxa.ActionReadAudit, handle: s.handleListAudit},

		{Method: "GET", Path: "/api/v1/keys", Action: loaxa.ActionManageSystem, handle: s.handleListKeys},
		{Method: "POST", Path: "/api/v1/keys", Action: loaxa.ActionManageSystem, handle: s.handleAnnounceKey},
		{Method: "POST", Path: "/api/v1/keys/activate", Action: loaxa.ActionManageSystem, handle: s.handleActivateKey},
		{Method: "GET", Path: "/api/v1/broker/mosquitto", Action: loaxa.ActionManageSystem, handle: s.handleBrokerFiles},
		{Method: "GET", Path: "/api/v1/backup", Action: loaxa.ActionManageSystem, handle: s.handleBackup},
		{Method: "GET", Path: "/api/v1/releases", Action: loaxa.ActionManageSystem, handle: s.handleListReleases},
		{Method: "POST", Path: "/api/v1/releases", Action: loaxa.ActionManageSystem, handle: s.handleUploadRelease},
		{Method: "GET", Path: "/api/v1/releases/archives/{sha}", Action: loaxa.ActionManageSystem, Nodes: true, handle: s.handleGetReleaseArchive},
		{Method: "GET", Path: "/api/v1/rollouts", Action: loaxa.ActionManageSystem, handle: s.handleListRollouts},
		{Method: "POST", Path: "/api/v1/rollouts", Action: loaxa.ActionManageSystem, handle: s.handleCreateRollout},
		{Method: "GET", Path: "/api/v1/rollouts/{id}", Action: loaxa.ActionManageSystem, handle: s.handleGetRollout},
		{Method: "POST", Path: "/api/v1/rollouts/{id}/halt", Action: loaxa.ActionManageSystem, handle: s.handleHaltRollout},
		{Method: "GET", Path: "/api/v1/upstream/export", Action: loaxa.ActionRead, handle: s.handleUpstreamExport},
		{Method: "GET", Path: "/api/v1/upstream/outbox", Action: loaxa.ActionManageSystem, handle: s.handleUpstreamOutbox},
		{Method: "GET", Path: "/api/v1/upstream/systems", Action: loaxa.ActionManageSystem, handle: s.handleListSystems},
		{Method: "POST", Path: "/api/v1/upstream/systems", Action: loaxa.ActionManageSystem, handle: s.handleCreateSystem},
		{Method: "POST", Path: "/api/v1/inbound/bulletins", handle: s.handleInboundBulletin},

		{Method: "GET", Path: "/api/v1/sessions", Action: loaxa.ActionRead, handle: s.handleListSessions},
		{Method: "POST", Path: "/api/v1/sessions", Action: loaxa.ActionSchedule, handle: s.handleCreateSession},
		{Method: "PATCH", Path: "/api/v1/sessions/{id}", Action: loaxa.ActionSchedule, handle: s.handleUpdateSession},
		{Method: "DELETE", Path: "/api/v1/sessions/{id}", Action: loaxa.ActionSchedule, handle: s.handleDeleteSession},
		{Method: "GET", Path: "/api/v1/holidays", Action: loaxa.ActionRead, handle: s.handleListHolidays},
		{Method: "POST", Path: "/api/v1/holidays", Action: loaxa.ActionSchedule, handle: s.handleCreateHoliday},
		{Method: "DELETE", Path: "/api/v1/holidays/{id}", Action: loaxa.ActionSchedule, handle: s.handleDeleteHoliday},
		{Method: "GET", Path: "/api/v1/proposals", Action: loaxa.ActionRead, handle: s.handleListProposals},
		{Method: "POST", Path: "/api/v1/proposals/{id}/accept", Action: loaxa.ActionSchedule, handle: s.handleAcceptProposal},
		{Method: "POST", Path: "/api/v1/proposals/{id}/decline", Action: loaxa.ActionSchedule, handle: s.handleDeclineProposal},
		{Method: "GET", Path: "/api/v1/nodes/{id}/programme", Action: loaxa.ActionRead, handle: s.handleNodeProgramme},
		{Method: "GET", Path: "/api/v1/areas/{id}/programme", Action: loaxa.ActionRead, handle: s.handleAreaProgramme},
		{Method: "GET", Path: "/api/v1/reports/broadcast", Action: loaxa.ActionRead, handle: s.handleBroadcastReport},

		{Method: "GET", Path: "/api/v1/alarms", Action: loaxa.ActionRead, handle: s.handleListAlarms},
		{Method: "GET", Path: "/api/v1/alarms/stream", Action: loaxa.ActionRead, handle: s.handleAlarmStream},
		{Method: "POST", Path: "/api/v1/alarms/{id}/ack", Action: loaxa.ActionMaintain, handle: s.handleAckAlarm},
		{Method: "GET", Path: "/api/v1/fleet/health", Action: loaxa.ActionRead, handle: s.handleFleetHealth},
		{Method: "GET", Path: "/api/v1/areas/{id}/health", Action: loaxa.ActionRead, handle: s.handleAreaHealth},
		{Method: "PATCH", Path: "/api/v1/nodes/{id}/settings", Action: loaxa.ActionMaintain, handle: s.handleNodeSettings},
		{Method: "POST", Path: "/api/v1/nodes/{id}/commands", Action: loaxa.ActionMaintain, handle: s.handleNodeCommand},
		{Method: "GET", Path: "/api/v1/selftests", Action: loaxa.ActionRead, handle: s.handleListSelfTests},
		{Method: "POST", Path: "/api/v1/selftests", Action: loaxa.ActionMaintain, handle: s.handleStartSelfTest},
		{Method: "GET", Path: "/api/v1/selftests/{id}", Action: loaxa.ActionRead, handle: s.handleGetSelfTest},
	}
}

// wrap authenticates the caller of rt, checks rt.Action, runs the handler
// and writes any error it returns.
func (s *Server) wrap(rt Route) http.Handler {
	latency := s.latency.WithLabelValues(rt.Method, rt.Path)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { latency.Observe(time.Since(start).Seconds()) }()
		if rt.Action != "" {
			ctx, err := s.authenticate(r, rt)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			r = r.WithContext(ctx)
		}
		if err := rt.handle(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authenticate finds who calls rt and checks that they may: a user by
// bearer token or session cookie whose role grants rt.Action, or, where
// rt.Nodes allows, a node by HTTP Basic. A state-changing request
// authenticated by the cookie must also pass the CSRF check. It returns the
// request context carrying the caller.
func (s *Server) authenticate(r *http.Request, rt Route) (context.Context, error) {
	ctx := r.Context()
	if id, secret, ok := r.BasicAuth(); ok && rt.Nodes {
		n, err := s.NodeService.AuthenticateNode(ctx, id, secret)
		if err != nil {
			if loaxa.ErrorCode(err) == loaxa.EUnauthorized {
				return nil, loaxa.Errorf(loaxa.EUnauthorized,
					"Node %q is not known, revoked, or its secret is wrong; use the username and secret from the node's current credentials document.", id)
			}
			return nil, err
		}
		return context.WithValue(ctx, nodeKey{}, n), nil
	}

	var (
		user *loaxa.User
		c    caller
	)
	if token, ok := bearerToken(r); ok {
		c.token = token
	} else if r.Header.Get("Authorization") != "" {
		return nil, loaxa.Errorf(loaxa.EUnauthorized,
			"The Authorization header must be \"Bearer <token>\" with a token from POST /api/v1/auth/token.")
	} else if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
		c.token, c.cookie = ck.Value, true
	}
	if c.token != "" {
		u, err := s.UserService.UserByToken(ctx, c.token)
		if err != nil {
			if loaxa.ErrorCode(err) == loaxa.EUnauthorized || loaxa.ErrorCode(err) == loaxa.ENotFound {
				return nil, loaxa.Errorf(loaxa.EUnauthorized,
					"The token is invalid, revoked or has expired; sign in again with POST /api/v1/auth/token (or /auth/session in a browser).")
			}
			return nil, err
		}
		user = u
	}
	// A nil user gets EUnauthorized from Authorize: one place says it.
	if err := loaxa.Authorize(ctx, s.AreaService, user, rt.Action, ""); err != nil {
		return nil, err
	}
	if c.cookie {
		if err := s.checkCSRF(r, c.token); err != nil {
			return nil, err
		}
	}
	ctx = context.WithValue(ctx, callerKey{}, c)
	return context.WithValue(ctx, userKey{}, user), nil
}

// caller is how a signed-in user's request was authenticated.
type caller struct {
	token  string // the session token
	cookie bool   // true: from the session cookie, false: a bearer token
}

type callerKey struct{}

// callerFrom returns how the request's user was authenticated.
func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header.
func bearerToken(r *http.Request) (string, bool) {
	const prefix = "bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

type userKey struct{}

type nodeKey struct{}

// userFrom returns the signed-in user of the request, or nil for a node or
// a public route.
func userFrom(ctx context.Context) *loaxa.User {
	u, _ := ctx.Value(userKey{}).(*loaxa.User)
	return u
}

// nodeFrom returns the node calling with its own credentials, or nil.
func nodeFrom(ctx context.Context) *loaxa.Node {
	n, _ := ctx.Value(nodeKey{}).(*loaxa.Node)
	return n
}

// authorize checks that the signed-in user may do a on area (and its
// subtree); "" checks the role only.
func (s *Server) authorize(ctx context.Context, a loaxa.Action, area string) error {
	return loaxa.Authorize(ctx, s.AreaService, userFrom(ctx), a, area)
}

// authorizeOn checks that the signed-in user may do a on an object the
// request named by its id, what ("Node \"n-1\""), which lies in area. A
// refusal for the area says only that the object is outside the user's
// area, not where it is: an officer of one commune must not learn from it
// in which commune another's node, alarm or session lies.
func (s *Server) authorizeOn(ctx context.Context, a loaxa.Action, area, what string) error {
	err := s.authorize(ctx, a, area)
	if u := userFrom(ctx); loaxa.ErrorCode(err) == loaxa.EForbidden && u != nil && u.May(a) {
		return &loaxa.Error{Code: loaxa.EForbidden, Reason: loaxa.ReasonOutsideArea, Message: fmt.Sprintf("%s is outside your area %q.", what, u.Area)}
	}
	return err
}
