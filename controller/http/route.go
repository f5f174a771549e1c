package http

import (
	"context"
	"net/http"
	"strings"

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
		{Method: "GET", Path: "/api/v1/health", handle: s.handleHealth},
		{Method: "GET", Path: "/api/v1/time", handle: s.handleTime},
		{Method: "POST", Path: "/api/v1/auth/token", handle: s.handleCreateToken},

		{Method: "GET", Path: "/api/v1/users", Action: loaxa.ActionManageUsers, handle: s.handleListUsers},
		{Method: "POST", Path: "/api/v1/users", Action: loaxa.ActionManageUsers, handle: s.handleCreateUser},

		{Method: "GET", Path: "/api/v1/areas", Action: loaxa.ActionRead, handle: s.handleListAreas},
		{Method: "POST", Path: "/api/v1/areas", Action: loaxa.ActionManageAreas, handle: s.handleCreateArea},
		{Method: "GET", Path: "/api/v1/areas/{id}", Action: loaxa.ActionRead, handle: s.handleGetArea},

		{Method: "GET", Path: "/api/v1/nodes", Action: loaxa.ActionRead, handle: s.handleListNodes},
		{Method: "POST", Path: "/api/v1/nodes", Action: loaxa.ActionManageNodes, handle: s.handleCreateNode},
		{Method: "GET", Path: "/api/v1/nodes/{id}", Action: loaxa.ActionRead, handle: s.handleGetNode},
		{Method: "GET", Path: "/api/v1/nodes/{id}/desired", Action: loaxa.ActionRead, handle: s.handleGetDesired},

		{Method: "GET", Path: "/api/v1/content", Action: loaxa.ActionRead, handle: s.handleListContent},
		{Method: "POST", Path: "/api/v1/content", Action: loaxa.ActionUploadContent, handle: s.handleUploadContent},
		{Method: "POST", Path: "/api/v1/content/tts", Action: loaxa.ActionUploadContent, handle: s.handleSpeech},
		{Method: "GET", Path: "/api/v1/content/{id}", Action: loaxa.ActionRead, handle: s.handleGetContent},
		{Method: "GET", Path: "/api/v1/content/{id}/audio", Action: loaxa.ActionRead, Nodes: true, handle: s.handleGetAudio},

		{Method: "GET", Path: "/api/v1/announcements", Action: loaxa.ActionRead, handle: s.handleListAnnouncements},
		{Method: "POST", Path: "/api/v1/announcements", Action: loaxa.ActionSchedule, handle: s.handleCreateAnnouncement},
		{Method: "GET", Path: "/api/v1/announcements/{id}", Action: loaxa.ActionRead, handle: s.handleGetAnnouncement},
		{Method: "POST", Path: "/api/v1/announcements/{id}/cancel", Action: loaxa.ActionSchedule, handle: s.handleCancelAnnouncement},
		{Method: "GET", Path: "/api/v1/announcements/{id}/deliveries", Action: loaxa.ActionRead, handle: s.handleListDeliveries},

		{Method: "GET", Path: "/api/v1/events", Action: loaxa.ActionRead, handle: s.handleListEvents},

		{Method: "GET", Path: "/api/v1/sessions", Action: loaxa.ActionRead, handle: s.handleListSessions},
		{Method: "POST", Path: "/api/v1/sessions", Action: loaxa.ActionSchedule, handle: s.handleCreateSession},
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
	}
}

// wrap authenticates the caller of rt, checks rt.Action, runs the handler
// and writes any error it returns.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
// bearer token whose role grants rt.Action, or, where rt.Nodes allows, a
// node by HTTP Basic. It returns the request context carrying the caller.
func (s *Server) authenticate(r *http.Request, rt Route) (context.Context, error) {
	ctx := r.Context()
	if id, secret, ok := r.BasicAuth(); ok && rt.Nodes {
		n, err := s.NodeService.AuthenticateNode(ctx, id, secret)
		if err != nil {
			if loaxa.ErrorCode(err) == loaxa.EUnauthorized {
				return nil, loaxa.Errorf(loaxa.EUnauthorized,
					"Node %q is not known or its secret is wrong; use the username and secret from the node's credentials document.", id)
			}
			return nil, err
		}
		return context.WithValue(ctx, nodeKey{}, n), nil
	}

	var user *loaxa.User
	if token, ok := bearerToken(r); ok {
		u, err := s.UserService.UserByToken(ctx, token)
		if err != nil {
			if loaxa.ErrorCode(err) == loaxa.EUnauthorized || loaxa.ErrorCode(err) == loaxa.ENotFound {
				return nil, loaxa.Errorf(loaxa.EUnauthorized,
					"The token is invalid or has expired; sign in again with POST /api/v1/auth/token.")
			}
			return nil, err
		}
		user = u
	} else if r.Header.Get("Authorization") != "" {
		return nil, loaxa.Errorf(loaxa.EUnauthorized,
			"The Authorization header must be \"Bearer <token>\" with a token from POST /api/v1/auth/token.")
	}
	// A nil user gets EUnauthorized from Authorize: one place says it.
	if err := loaxa.Authorize(ctx, s.AreaService, user, rt.Action, ""); err != nil {
		return nil, err
	}
	return context.WithValue(ctx, userKey{}, user), nil
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
