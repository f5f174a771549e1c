package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/controller/release"
	"loaxa.vn/controller/tts"
	"loaxa.vn/controller/upstream"
	"loaxa.vn/protocol"
)

// authzEnv is the world of the authorisation test: province 31 with
// district 318 (communes 12346 and 12347) and district 319 (commune 12350);
// node n-a in 12346 (in scope of a user at 318) and n-c in 12350 (out of
// it); one user of every role at 318, and the whole-tree admin.
type authzEnv struct {
	*env
	content string
	ann     map[bool]string // announcement targeting the in-scope / out-of-scope commune
	seq     atomic.Int64
	archive string // a release archive's SHA-256
	rollout string // a rollout's id
	runner  *release.Runner
}

// scopeArea, scopeNode and scopeUser are what a request names in scope
// (true) or out of it (false) for a user at 318.
var (
	scopeArea = map[bool]string{true: "12346", false: "12350"}
	scopeNode = map[bool]string{true: "n-a", false: "n-c"}
	scopeUser = map[bool]string{true: "nguoi-12346", false: "nguoi-12350"}
)

func (a *authzEnv) unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, a.seq.Add(1))
}

// authzRequest is one request a case makes for a caller.
type authzRequest struct {
	method, path string
	body         io.Reader
	contentType  string
	// token replaces the caller's token (for requests that end it).
	token string
}

// authzCase says how to exercise one route for a caller, in scope or out.
type authzCase struct {
	// scoped: the answer depends on the area the request names; otherwise
	// in and out of scope are the same request.
	scoped bool
	// wholeTree: only a user over the whole tree may, whatever the role.
	wholeTree bool
	// needs are actions required besides the route's own.
	needs []loaxa.Action
	// ok is the status of an allowed request (0: any 2xx).
	ok    int
	build func(a *authzEnv, username string, in bool) authzRequest
}

func jsonReq(method, path string, body any) authzRequest {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return authzRequest{method: method, path: path, body: bytes.NewReader(raw), contentType: "application/json"}
}

func get(path string) func(*authzEnv, string, bool) authzRequest {
	return func(*authzEnv, string, bool) authzRequest { return authzRequest{method: "GET", path: path} }
}

// authzCases has a case for every route of the API: TestAuthorization
// fails for a route without one, so a new route cannot skip the check.
func authzCases() map[string][]authzCase {
	return map[string][]authzCase{
		"GET /api/v1/auth/session": {{ok: 200, build: get("/api/v1/auth/session")}},
		"POST /api/v1/auth/logout": {{ok: 204, build: func(a *authzEnv, user string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/auth/logout", token: a.token(user)}
		}}},

		"POST /api/v1/auth/password": {{ok: 200, build: func(a *authzEnv, user string, in bool) authzRequest {
			// A twin of the caller (same role and area), so that the
			// change does not end the caller's session used by other cases.
			u, err := a.stores.users.FindUserByUsername(context.Background(), user)
			if err != nil {
				panic(err)
			}
			twin := a.unique("pw")
			r := jsonReq("POST", "/api/v1/auth/password", map[string]string{"current_password": testPassword, "new_password": "mật khẩu mới 2026"})
			r.token = a.addUser(twin, u.Role, u.Area)
			return r
		}}},
		"GET /api/v1/users": {{ok: 200, build: get("/api/v1/users")}},
		"POST /api/v1/users": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/users", map[string]string{"username": a.unique("u"), "password": testPassword, "role": "viewer", "area": scopeArea[in]})
		}}},
		"DELETE /api/v1/users/{username}/sessions": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "DELETE", path: "/api/v1/users/" + scopeUser[in] + "/sessions"}
		}}},

		"PUT /api/v1/users/{username}/password": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("PUT", "/api/v1/users/"+scopeUser[in]+"/password", map[string]string{"password": "mật khẩu mới 2026"})
		}}},

		"GET /api/v1/areas": {{ok: 200, build: get("/api/v1/areas")}},
		"POST /api/v1/areas": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/areas", map[string]string{"id": a.unique("thon"), "name": "Thôn", "parent": scopeArea[in]})
		}}},
		"GET /api/v1/areas/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/areas/" + scopeArea[in]}
		}}},

		"GET /api/v1/nodes": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/nodes?area=" + scopeArea[in]}
		}}},
		"POST /api/v1/nodes": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/nodes", map[string]any{"id": a.unique("n"), "name": "Cụm loa", "area": scopeArea[in], "lat": 20.7, "lon": 106.5})
		}}},
		"POST /api/v1/nodes/batch": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/nodes/batch", map[string]any{"credentials": "code", "nodes": []map[string]any{
				{"id": a.unique("n"), "name": "Cụm loa", "area": "12346"}, {"id": a.unique("n"), "name": "Cụm loa", "area": scopeArea[in]}}})
		}}},
		"POST /api/v1/nodes/{id}/enrolment": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/nodes/" + scopeNode[in] + "/enrolment"}
		}}},
		"POST /api/v1/nodes/{id}/rotate": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/nodes/" + scopeNode[in] + "/rotate"}
		}}},
		"POST /api/v1/nodes/{id}/revoke": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/nodes/" + scopeNode[in] + "/revoke"}
		}}},
		"PATCH /api/v1/nodes/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("PATCH", "/api/v1/nodes/"+scopeNode[in], map[string]any{"name": "Cụm loa " + a.unique("n")})
		}}, {scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			// A move of a cluster of one's own (a new one, so that the
			// others stay where the other cases want them) to another
			// commune: in scope, or out of it.
			id := a.unique("n")
			if err := a.stores.nodes.CreateNode(context.Background(), &loaxa.Node{ID: id, Name: id, Area: "12347"}); err != nil {
				a.t.Fatal(err)
			}
			return jsonReq("PATCH", "/api/v1/nodes/"+id, map[string]any{"area": scopeArea[in]})
		}}},
		"GET /api/v1/nodes/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/nodes/" + scopeNode[in]}
		}}},
		"GET /api/v1/nodes/{id}/desired": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/nodes/" + scopeNode[in] + "/desired"}
		}}},

		"GET /api/v1/content": {{ok: 200, build: get("/api/v1/content")}},
		"POST /api/v1/content": {{build: func(a *authzEnv, _ string, in bool) authzRequest {
			body, ct := multipartBody(a.t, part{name: "file", filename: "ban-tin.wav", data: wav(16000, 1, 1600)})
			return authzRequest{method: "POST", path: "/api/v1/content", body: body, contentType: ct}
		}}},
		"POST /api/v1/content/tts": {{build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/content/tts", map[string]string{"text": "Kính gửi bà con."})
		}}},
		"GET /api/v1/content/{id}": {{ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/content/" + a.content}
		}}},
		"GET /api/v1/content/standing": {{ok: 200, build: get("/api/v1/content/standing")}},
		"PUT /api/v1/content/{id}/standing": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			// Content of its own for each request, so that no request
			// removes an area another one set.
			sum := sha256.Sum256([]byte(a.unique("standing")))
			id := hex.EncodeToString(sum[:])
			if _, err := a.stores.contents.CreateContent(context.Background(), &loaxa.Content{ID: id, Title: "Cảnh báo", Size: 1000}); err != nil {
				panic(err)
			}
			return jsonReq("PUT", "/api/v1/content/"+id+"/standing", map[string]any{"areas": []string{scopeArea[in]}})
		}}},
		"GET /api/v1/content/{id}/audio": {{ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/content/" + a.content + "/audio"}
		}}},
		"GET /api/v1/content/{id}/chunks": {{ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/content/" + a.content + "/chunks"}
		}}},

		"GET /api/v1/announcements": {{ok: 200, build: get("/api/v1/announcements")}},
		"POST /api/v1/announcements": {
			{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest { return a.announce(in, protocol.PriorityNormal) }},
			{scoped: true, ok: 201, needs: []loaxa.Action{loaxa.ActionEmergency}, build: func(a *authzEnv, _ string, in bool) authzRequest {
				return a.announce(in, protocol.PriorityEmergency)
			}},
		},
		"GET /api/v1/announcements/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/announcements/" + a.ann[in]}
		}}},
		"POST /api/v1/announcements/{id}/cancel": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/announcements/" + a.ann[in] + "/cancel"}
		}}},
		"GET /api/v1/announcements/{id}/deliveries": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/announcements/" + a.ann[in] + "/deliveries"}
		}}},

		"GET /api/v1/sessions": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/sessions?area=" + scopeArea[in]}
		}}},
		"POST /api/v1/sessions": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			m := int(a.seq.Add(1)) * 3
			return jsonReq("POST", "/api/v1/sessions", map[string]any{"area": scopeArea[in], "name": "Buổi", "start": fmt.Sprintf("%02d:%02d", m/60, m%60), "max_minutes": 2})
		}}},
		"PATCH /api/v1/sessions/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			m := int(a.seq.Add(1)) * 3
			sess := &loaxa.Session{Area: scopeArea[in], Name: "Buổi", Start: fmt.Sprintf("%02d:%02d", m/60, m%60), MaxMinutes: 2}
			if err := a.stores.sessions.CreateSession(context.Background(), sess); err != nil {
				a.t.Fatal(err)
			}
			return jsonReq("PATCH", "/api/v1/sessions/"+sess.ID, map[string]any{"name": "Buổi mới"})
		}}},
		"DELETE /api/v1/sessions/{id}": {{scoped: true, ok: 0, build: func(a *authzEnv, _ string, in bool) authzRequest {
			m := int(a.seq.Add(1)) * 3
			sess := &loaxa.Session{Area: scopeArea[in], Name: "Buổi", Start: fmt.Sprintf("%02d:%02d", m/60, m%60), MaxMinutes: 2}
			if err := a.stores.sessions.CreateSession(context.Background(), sess); err != nil {
				a.t.Fatal(err)
			}
			return authzRequest{method: "DELETE", path: "/api/v1/sessions/" + sess.ID}
		}}, {scoped: true, ok: 200, needs: []loaxa.Action{loaxa.ActionEmergency}, build: func(a *authzEnv, _ string, in bool) authzRequest {
			// Forced, the delete cancels the items placed in the session;
			// an emergency one needs emergency, as cancelling it alone
			// does. Every role with schedule has emergency today, so this
			// case guards the role table: give a role one without the
			// other and it fails until handleDeleteSession checks it.
			m := int(a.seq.Add(1)) * 3
			sess := &loaxa.Session{Area: scopeArea[in], Name: "Buổi", Start: fmt.Sprintf("%02d:%02d", m/60, m%60), MaxMinutes: 2}
			if err := a.stores.sessions.CreateSession(context.Background(), sess); err != nil {
				a.t.Fatal(err)
			}
			now := a.clock.Now()
			if err := a.stores.anns.CreateAnnouncement(context.Background(), &loaxa.Announcement{Title: "Cảnh báo", ContentID: a.content,
				Targets: loaxa.Targets{Areas: []string{scopeArea[in]}}, Priority: protocol.PriorityEmergency, Start: now, RRule: "FREQ=DAILY",
				Repeat: 1, State: loaxa.AnnouncementActive, Session: sess.ID, CreatedBy: "admin", CreatedAt: now}); err != nil {
				a.t.Fatal(err)
			}
			return authzRequest{method: "DELETE", path: "/api/v1/sessions/" + sess.ID + "?force=true"}
		}}},
		"GET /api/v1/holidays": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/holidays?area=" + scopeArea[in]}
		}}},
		"POST /api/v1/holidays": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/holidays", map[string]any{"area": scopeArea[in], "name": "Nghỉ", "date": a.day()})
		}}},
		"DELETE /api/v1/holidays/{id}": {{scoped: true, ok: 0, build: func(a *authzEnv, _ string, in bool) authzRequest {
			h := &loaxa.Holiday{Area: scopeArea[in], Name: "Nghỉ", Date: a.day()}
			if err := a.stores.holidays.CreateHoliday(context.Background(), h); err != nil {
				a.t.Fatal(err)
			}
			return authzRequest{method: "DELETE", path: "/api/v1/holidays/" + h.ID}
		}}},
		"GET /api/v1/proposals": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/proposals?area=" + scopeArea[in]}
		}}},
		"POST /api/v1/proposals/{id}/accept": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/proposals/"+a.proposal(in)+"/accept", map[string]any{})
		}}},
		"POST /api/v1/proposals/{id}/decline": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/proposals/"+a.proposal(in)+"/decline", map[string]any{})
		}}},
		"GET /api/v1/nodes/{id}/programme": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/nodes/" + scopeNode[in] + "/programme"}
		}}},
		"GET /api/v1/areas/{id}/programme": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/areas/" + scopeArea[in] + "/programme"}
		}}},
		"GET /api/v1/reports/broadcast": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/reports/broadcast?area=" + scopeArea[in]}
		}}},
		"GET /api/v1/events": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/events?area=" + scopeArea[in]}
		}}},
		// Allowed, the request reaches the WebSocket upgrade, which a plain
		// GET fails with 426.
		"GET /api/v1/live": {
			{scoped: true, needs: []loaxa.Action{loaxa.ActionSchedule}, ok: http.StatusUpgradeRequired, build: func(_ *authzEnv, _ string, in bool) authzRequest {
				return authzRequest{method: "GET", path: "/api/v1/live?areas=" + scopeArea[in]}
			}},
			{scoped: true, needs: []loaxa.Action{loaxa.ActionEmergency}, ok: http.StatusUpgradeRequired, build: func(_ *authzEnv, _ string, in bool) authzRequest {
				return authzRequest{method: "GET", path: "/api/v1/live?priority=emergency&areas=" + scopeArea[in]}
			}},
			// A drill needs what the same call for real needs.
			{scoped: true, needs: []loaxa.Action{loaxa.ActionSchedule}, ok: http.StatusUpgradeRequired, build: func(_ *authzEnv, _ string, in bool) authzRequest {
				return authzRequest{method: "GET", path: "/api/v1/live?drill=1&volume=3&areas=" + scopeArea[in]}
			}},
			{scoped: true, needs: []loaxa.Action{loaxa.ActionEmergency}, ok: http.StatusUpgradeRequired, build: func(_ *authzEnv, _ string, in bool) authzRequest {
				return authzRequest{method: "GET", path: "/api/v1/live?drill=true&priority=emergency&areas=" + scopeArea[in]}
			}},
		},
		"GET /api/v1/live/calls": {{ok: 200, build: get("/api/v1/live/calls")}},
		"GET /api/v1/live/calls/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/live/calls/" + a.liveCall(in)}
		}}},
		// Another officer's call on air (no runner here: the record is
		// closed as cut); cutting it needs the right to make it.
		"POST /api/v1/live/calls/{id}/cut": {{scoped: true, needs: []loaxa.Action{loaxa.ActionSchedule}, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/live/calls/" + a.liveCall(in) + "/cut"}
		}}},
		"GET /api/v1/emergency": {{ok: 200, build: get("/api/v1/emergency")}},
		"POST /api/v1/emergency": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/emergency", map[string]any{"content_id": a.content, "targets": []string{scopeArea[in]}, "drill": true})
		}}},
		"GET /api/v1/emergency/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/emergency/" + a.emergency(in, false)}
		}}},
		"GET /api/v1/emergency/{id}/stream": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			// A cancelled one whose node never had it: the stream ends at once.
			return authzRequest{method: "GET", path: "/api/v1/emergency/" + a.emergency(in, true) + "/stream"}
		}}},
		"POST /api/v1/emergency/{id}/cancel": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/emergency/" + a.emergency(in, false) + "/cancel"}
		}}},
		"POST /api/v1/emergency/{id}/all-clear": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/emergency/"+a.emergency(in, false)+"/all-clear", map[string]any{"content_id": a.content})
		}}},
		"POST /api/v1/cap": {{scoped: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			// Not on the auto-start list: it waits for approval, but its
			// area is checked all the same.
			return authzRequest{method: "POST", path: "/api/v1/cap", contentType: "application/cap+xml",
				body: strings.NewReader(capXML(a.unique("id"), "Actual", scopeArea[in]))}
		}}},
		"GET /api/v1/cap":            {{ok: 200, build: get("/api/v1/cap")}},
		"GET /api/v1/cap/auto-start": {{ok: 200, build: get("/api/v1/cap/auto-start")}},
		"GET /api/v1/cap/feeds":      {{ok: 200, build: get("/api/v1/cap/feeds")}},
		"PUT /api/v1/cap/auto-start": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {"Lũ quét"}})
		}}},
		"GET /api/v1/cap/recordings": {{ok: 200, build: get("/api/v1/cap/recordings")}},
		"PUT /api/v1/cap/recordings": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("PUT", "/api/v1/cap/recordings", map[string]map[string]string{"recordings": {}})
		}}},
		"GET /api/v1/cap/{id}": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/cap/" + a.pendingCap(in)}
		}}},
		"POST /api/v1/cap/{id}/approve": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/cap/" + a.pendingCap(in) + "/approve"}
		}}},
		"GET /api/v1/keys": {{wholeTree: true, ok: 200, build: get("/api/v1/keys")}},
		"POST /api/v1/keys": {{wholeTree: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			a.stores.keys.ActivateKey(context.Background()) // one may be announced already
			return authzRequest{method: "POST", path: "/api/v1/keys"}
		}}},
		"POST /api/v1/keys/activate": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			a.stores.keys.AnnounceKey(context.Background()) // none may be announced yet
			return jsonReq("POST", "/api/v1/keys/activate", map[string]bool{"force": true})
		}}},
		"GET /api/v1/broker/mosquitto": {{wholeTree: true, ok: 200, build: get("/api/v1/broker/mosquitto")}},
		"GET /api/v1/backup":           {{wholeTree: true, ok: 200, build: get("/api/v1/backup")}},
		"GET /api/v1/releases":         {{wholeTree: true, ok: 200, build: get("/api/v1/releases")}},
		"POST /api/v1/releases": {{wholeTree: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: fmt.Sprintf("/api/v1/releases?version=2.%d&arch=amd64", a.seq.Add(1)), contentType: "application/gzip", body: bytes.NewReader(releaseArchive(a.t, 62))}
		}}},
		"GET /api/v1/releases/archives/{sha}": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/releases/archives/" + a.archive}
		}}},
		"GET /api/v1/rollouts": {{wholeTree: true, ok: 200, build: get("/api/v1/rollouts")}},
		"GET /api/v1/upstream/export": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/upstream/export?area=" + scopeArea[in]}
		}}},
		"GET /api/v1/upstream/outbox":  {{ok: 200, build: get("/api/v1/upstream/outbox")}},
		"GET /api/v1/upstream/systems": {{ok: 200, build: get("/api/v1/upstream/systems")}},
		"POST /api/v1/upstream/systems": {{wholeTree: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/upstream/systems", map[string]string{"id": fmt.Sprintf("tinh-%d", a.seq.Add(1)), "name": "Hệ thống thông tin nguồn tỉnh", "area": "31"})
		}}},
		"POST /api/v1/rollouts": {{wholeTree: true, ok: 201, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/rollouts", map[string]any{"version": "1.0.0", "targets": map[string][]string{"nodes": {"n-c"}}})
		}}},
		"POST /api/v1/rollouts/{id}/halt": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			ro, err := a.runner.Start(context.Background(), "1.0.0", loaxa.Targets{Nodes: []string{"n-c"}}, 100, 1, "admin")
			if err != nil {
				panic(err)
			}
			return authzRequest{method: "POST", path: "/api/v1/rollouts/" + ro.ID + "/halt"}
		}}},
		"GET /api/v1/rollouts/{id}": {{wholeTree: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/rollouts/" + a.rollout}
		}}},
		"GET /api/v1/audit": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/audit?area=" + scopeArea[in]}
		}}},

		"GET /api/v1/alarms": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/alarms?area=" + scopeArea[in]}
		}}},
		"GET /api/v1/alarms/stream": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/alarms/stream?max=1ms&area=" + scopeArea[in]}
		}}},
		"POST /api/v1/alarms/{id}/ack": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "POST", path: "/api/v1/alarms/" + a.alarm(in) + "/ack"}
		}}},
		"GET /api/v1/fleet/health": {{ok: 200, build: get("/api/v1/fleet/health")}},
		"GET /api/v1/areas/{id}/health": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return authzRequest{method: "GET", path: "/api/v1/areas/" + scopeArea[in] + "/health"}
		}}},
		"PATCH /api/v1/nodes/{id}/settings": {{scoped: true, ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("PATCH", "/api/v1/nodes/"+scopeNode[in]+"/settings", map[string]int{"volume": 9})
		}}},
		"POST /api/v1/nodes/{id}/commands": {{scoped: true, ok: 202, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/nodes/"+scopeNode[in]+"/commands", map[string]string{"name": "state-now"})
		}}},
		"GET /api/v1/selftests": {{ok: 200, build: get("/api/v1/selftests")}},
		"POST /api/v1/selftests": {{scoped: true, ok: 202, build: func(a *authzEnv, _ string, in bool) authzRequest {
			return jsonReq("POST", "/api/v1/selftests", map[string]any{"kind": "silent", "nodes": []string{scopeNode[in]}})
		}}},
		"GET /api/v1/selftests/{id}": {{ok: 200, build: func(a *authzEnv, _ string, in bool) authzRequest {
			t := &loaxa.SelfTest{Kind: protocol.TestSilent, Nodes: []string{"n-a", "n-c"}, RequestedBy: "admin", Started: a.clock.Now(), Deadline: a.clock.Now().Add(time.Minute)}
			if err := a.stores.alarms.CreateSelfTest(context.Background(), t); err != nil {
				a.t.Fatal(err)
			}
			return authzRequest{method: "GET", path: "/api/v1/selftests/" + t.ID}
		}}},
	}
}

// emergency sends a drill to the in- or out-of-scope commune as admin,
// cancelled at once if asked, and returns its id.
func (a *authzEnv) emergency(in, cancelled bool) string {
	ctx := context.Background()
	em, err := a.env.emergency.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: a.content, Targets: []string{scopeArea[in]}, Drill: true, CreatedBy: "admin"})
	if err != nil {
		a.t.Fatal(err)
	}
	if cancelled {
		if _, err := a.env.emergency.CancelEmergency(ctx, em.ID, "admin"); err != nil {
			a.t.Fatal(err)
		}
	}
	return em.ID
}

// pendingCap stores a CAP alert waiting for approval for the in- or
// out-of-scope commune and returns its id.
func (a *authzEnv) pendingCap(in bool) string {
	key := a.unique("cap")
	rec := &loaxa.CapAlert{Key: key, Identifier: key, Sender: "test", Status: "Actual", MsgType: "Alert", Event: "Bão",
		Text: "Bão.", Targets: []string{scopeArea[in]}, Action: "pending", ReceivedAt: a.clock.Now()}
	if err := a.env.caps.CreateCapAlert(context.Background(), rec); err != nil {
		a.t.Fatal(err)
	}
	return rec.ID
}

// alarm stores an open alarm of the in- or out-of-scope node.
func (a *authzEnv) alarm(in bool) string {
	al := &loaxa.Alarm{Kind: loaxa.AlarmDoorOpen, Node: scopeNode[in], Area: scopeArea[in], Start: a.clock.Now()}
	if err := a.stores.alarms.CreateAlarm(context.Background(), al); err != nil {
		a.t.Fatal(err)
	}
	return al.ID
}

// day returns a new date for a holiday.
func (a *authzEnv) day() string {
	return time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(a.seq.Add(1))).Format("2006-01-02")
}

// proposal stores a pending proposal for the in- or out-of-scope commune,
// of an announcement of its own at a time of its own: the shared ones may
// have been cancelled (POST /announcements/{id}/cancel), which withdraws
// their proposals, and one at a taken time is a conflict to accept.
func (a *authzEnv) proposal(in bool) string {
	ann := &loaxa.Announcement{ContentID: a.content, Targets: loaxa.Targets{Areas: []string{scopeArea[in]}},
		Priority: protocol.PriorityNormal, Start: a.clock.Now().Add(2*time.Hour + time.Duration(a.seq.Add(1))*time.Minute), Repeat: 1, Proposed: true}
	if err := a.stores.anns.CreateAnnouncement(context.Background(), ann); err != nil {
		a.t.Fatal(err)
	}
	p := &loaxa.Proposal{Announcement: ann.ID, Area: scopeArea[in], State: loaxa.ProposalPending}
	if err := a.stores.proposals.CreateProposals(context.Background(), []*loaxa.Proposal{p}); err != nil {
		a.t.Fatal(err)
	}
	return p.ID
}

func (a *authzEnv) announce(in bool, p protocol.Priority) authzRequest {
	return jsonReq("POST", "/api/v1/announcements", map[string]any{
		"content_id": a.content, "priority": p, "start": a.clock.Now().Add(time.Hour).Format(time.RFC3339), "force": true,
		"targets": map[string][]string{"areas": {scopeArea[in]}, "nodes": {}},
	})
}

// publicRoutes need no credentials; TestEveryRouteNeedsCredentials checks
// that they are exactly the routes without an action.
var publicRoutes = map[string]bool{
	"GET /api/v1/health": true, "GET /api/v1/time": true, "GET /metrics": true,
	"POST /api/v1/auth/token": true, "POST /api/v1/auth/session": true, "POST /api/v1/enrol": true,
	"POST /api/v1/inbound/bulletins": true, // authenticated by the system's key
}

// upstreamLink is the controller's upstream link on the test's stores.
type upstreamLink struct{ src *upstream.Source }

func (u upstreamLink) Export(ctx context.Context, area string, from, to, now time.Time) (any, error) {
	return u.src.Build(ctx, area, from, to, now)
}

func (u upstreamLink) Status(ctx context.Context) (any, error) {
	return map[string]int{"pending": 0}, nil
}

func newAuthzEnv(t *testing.T) *authzEnv {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "319", "name": "Huyện Vĩnh Bảo", "parent": "31"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12350", "name": "Xã Vĩnh An", "parent": "319"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-c", "name": "Cụm loa Vĩnh An", "area": "12350", "lat": 20.7, "lon": 106.4}, http.StatusCreated, nil)
	a := &authzEnv{env: e, ann: map[bool]string{}}
	e.srv.Live = discardLive{}
	e.srv.Backup = func(ctx context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "backup")
		return err
	}
	e.srv.Upstream = upstreamLink{src: &upstream.Source{Areas: e.stores.areas, Nodes: e.stores.nodes, Deliveries: e.stores.deliveries, Announcements: e.stores.anns, System: "test"}}
	e.srv.UpstreamSystems = bolt.NewUpstreamService(e.db)
	rels := bolt.NewReleaseService(e.db)
	archives := &release.Archives{Dir: t.TempDir()}
	runner := release.NewRunner()
	runner.Releases, runner.Nodes, runner.Events = rels, e.stores.nodes, e.stores.events
	e.srv.ReleaseService, e.srv.ReleaseArchives, e.srv.Rollouts = rels, archives, runner
	ar, err := archives.Put(bytes.NewReader(releaseArchive(t, 62)), "amd64", "x.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rels.PutReleaseArchive(context.Background(), "1.0.0", *ar, "admin"); err != nil {
		t.Fatal(err)
	}
	a.archive = ar.SHA256
	ro, err := runner.Start(context.Background(), "1.0.0", loaxa.Targets{Nodes: []string{"n-c"}}, 100, 1, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a.rollout = ro.ID
	a.runner = runner
	e.srv.BrokerFiles = func(ctx context.Context) (map[string]string, []string, error) {
		f, err := mqtt.ExportMosquitto(ctx, e.stores.nodes, e.stores.areas, protocol.NewTopics(""), "loaxa-controller", loaxa.HashBrokerSecret("x"))
		if err != nil {
			return nil, nil, err
		}
		return map[string]string{"loaxa.acl": f.ACL}, f.Missing, nil
	}
	a.content = e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 800), "Bản tin", http.StatusCreated).ID
	for _, in := range []bool{true, false} {
		var ann loaxa.Announcement
		r := a.announce(in, protocol.PriorityNormal)
		resp := e.request(r.method, r.path, e.admin, r.contentType, r.body)
		if resp.status != http.StatusCreated || json.Unmarshal(resp.body, &ann) != nil {
			t.Fatalf("announce: %d %s", resp.status, resp.body)
		}
		a.ann[in] = ann.ID
		e.addUser(scopeUser[in], loaxa.RoleViewer, scopeArea[in])
		n := scopeNode[in]
		err := e.stores.desired.SaveDesired(context.Background(), &loaxa.Desired{Node: n, Hash: "x",
			State: &protocol.DesiredState{Node: n, Version: 1, Areas: []string{scopeArea[in]}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// TestAuthorization walks every route × every role × a request in and out
// of the caller's area, and checks the answer against the role table
// (loaxa grants): allowed in scope, 403 otherwise.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	a := newAuthzEnv(t)
	cases := authzCases()

	type caller struct {
		name      string
		user      *loaxa.User
		token     string
		wholeTree bool
	}
	callers := []caller{{name: "admin (whole tree)", user: &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin}, token: a.admin, wholeTree: true}}
	for _, role := range loaxa.Roles {
		name := "at-318-" + string(role)
		callers = append(callers, caller{name: string(role) + " at 318", user: &loaxa.User{Username: name, Role: role, Area: "318"}, token: a.addUser(name, role, "318")})
	}

	for _, rt := range a.srv.Routes() {
		key := rt.Method + " " + rt.Path
		if publicRoutes[key] {
			if _, ok := cases[key]; ok {
				t.Errorf("%s is public but has an authorisation case", key)
			}
			continue
		}
		cs, ok := cases[key]
		if !ok {
			t.Errorf("route %s has no case in authzCases: add one saying how to call it in and out of scope", key)
			continue
		}
		delete(cases, key)
		for i, c := range cs {
			for _, cl := range callers {
				for _, in := range []bool{true, false} {
					allowed := cl.user.May(rt.Action) && (in || !c.scoped || cl.wholeTree) && (!c.wholeTree || cl.wholeTree)
					for _, n := range c.needs {
						allowed = allowed && cl.user.May(n)
					}
					req := c.build(a, cl.user.Username, in)
					token := cl.token
					if req.token != "" {
						token = req.token
					}
					var sent bytes.Buffer
					if req.body != nil {
						req.body = io.TeeReader(req.body, &sent)
					}
					r := a.request(req.method, req.path, token, req.contentType, req.body)
					where := map[bool]string{true: "in scope", false: "out of scope"}[in]
					name := fmt.Sprintf("%s #%d as %s, %s", key, i, cl.name, where)
					switch {
					case allowed && c.ok != 0 && r.status != c.ok, allowed && c.ok == 0 && (r.status < 200 || r.status > 299):
						t.Errorf("%s: status %d, want %d (allowed): %.300s", name, r.status, max(c.ok, 200), r.body)
					case !allowed && r.status != http.StatusForbidden:
						t.Errorf("%s: status %d, want 403: %.300s", name, r.status, r.body)
					case !allowed && !strings.Contains(string(r.body), `"code":"forbidden"`):
						t.Errorf("%s: body %.300s, want code forbidden", name, r.body)
					case !allowed && leaksArea(r.body, req.path+sent.String()):
						t.Errorf("%s: the refusal names the area of what it refused: %.300s", name, r.body)
					}
				}
			}
		}
	}
	for key := range cases {
		t.Errorf("authzCases has %s, which is not a route", key)
	}
}

// TestOutOfScopeRefusalSaysNotWhere: an officer of one commune who asked
// for another district's node or alarm by its id was told "Area \"12350\"
// is outside your area", learning in which commune it lies; cutting a
// live call, cancelling an emergency or an announcement, approving or
// withdrawing a CAP alert that also reaches elsewhere, or naming another's
// node or user, told the same. A refusal of an object outside the
// caller's area, wholly or in part, is 403 (docs/api.md) and says only
// that it is outside their area; an id that names nothing is 404.
func TestOutOfScopeRefusalSaysNotWhere(t *testing.T) {
	t.Parallel()
	a := newAuthzEnv(t)
	ctx := context.Background()
	officer := a.addUser("can-bo-tien-thang", loaxa.RoleCommune, scopeArea[true])
	userAdmin := a.addUser("quan-tri-tien-thang", loaxa.RoleAdmin, scopeArea[true])
	a.addUser("thu-ky-xa-ben", loaxa.RoleViewer, scopeArea[false])
	both := []string{scopeArea[true], scopeArea[false]}

	// What another officer made for both communes, which this officer
	// sees but may not stop alone.
	em, err := a.env.emergency.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: a.content, Targets: both, Drill: true, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	call := &loaxa.LiveCall{ID: loaxa.LiveCallIDPrefix + a.unique("call"), CreatedBy: "admin", Areas: both, Priority: protocol.PriorityHigh, Started: a.clock.Now()}
	if err := a.live.Store.CreateLiveCall(ctx, call); err != nil {
		t.Fatal(err)
	}
	key := a.unique("cap")
	pending := &loaxa.CapAlert{Key: key, Identifier: key, Sender: "test", Status: "Actual", MsgType: "Alert", Event: "Bão",
		Text: "Bão.", Targets: both, Action: "pending", ReceivedAt: a.clock.Now()}
	if err := a.env.caps.CreateCapAlert(ctx, pending); err != nil {
		t.Fatal(err)
	}
	var ann loaxa.Announcement
	a.call("POST", "/api/v1/announcements", a.admin, map[string]any{
		"content_id": a.content, "priority": protocol.PriorityNormal, "start": a.clock.Now().Add(time.Hour).Format(time.RFC3339), "force": true,
		"targets": map[string][]string{"areas": {scopeArea[true]}, "nodes": {scopeNode[false]}},
	}, http.StatusCreated, &ann)
	// A warning for the other district only, which a Cancel names.
	a.request("POST", "/api/v1/cap", a.admin, "application/cap+xml", strings.NewReader(capXML("xa-ben-1", "Actual", scopeArea[false])))
	cancel := strings.Replace(capXML("tien-thang-1", "Actual", scopeArea[true], "<references>nchmf.gov.vn,xa-ben-1,2026-03-02T04:50:00+07:00</references>"),
		"<msgType>Alert", "<msgType>Cancel", 1)
	announce, err := json.Marshal(map[string]any{
		"content_id": a.content, "priority": protocol.PriorityNormal, "start": a.clock.Now().Add(time.Hour).Format(time.RFC3339), "force": true,
		"targets": map[string][]string{"areas": {}, "nodes": {scopeNode[false]}},
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		token, method, path, contentType, body, want string
	}{
		{officer, "GET", "/api/v1/nodes/n-c", "", "", `Node \"n-c\" is outside your area \"12346\"`},
		{officer, "GET", "/api/v1/nodes/n-c/desired", "", "", `Node \"n-c\" is outside your area`},
		{officer, "GET", "/api/v1/events?node=n-c", "", "", `Node \"n-c\" is outside your area`},
		{officer, "POST", "/api/v1/alarms/" + a.alarm(false) + "/ack", "", "", "is outside your area"},
		{officer, "GET", "/api/v1/emergency/" + a.emergency(false, false), "", "", "outside your area"},
		{officer, "GET", "/api/v1/areas/319", "", "", `Area \"319\" is outside your area`},
		{officer, "GET", "/api/v1/cap/" + a.pendingCap(false), "", "", `is for areas outside your area \"12346\"`},
		{officer, "POST", "/api/v1/cap/" + pending.ID + "/approve", "", "", `Part of CAP alert ` + pending.ID + ` is outside your area \"12346\"`},
		{officer, "POST", "/api/v1/cap", "application/cap+xml", cancel, "nchmf.gov.vn,xa-ben-1, which went to areas outside your area"},
		{officer, "POST", "/api/v1/emergency/" + em.ID + "/cancel", "", "", `Part of emergency ` + em.ID + ` is outside your area \"12346\"`},
		{officer, "POST", "/api/v1/emergency/" + em.ID + "/all-clear", "application/json", `{"content_id":"` + a.content + `"}`, `Part of emergency ` + em.ID + ` is outside your area`},
		{officer, "POST", "/api/v1/live/calls/" + call.ID + "/cut", "", "", `Part of live call ` + call.ID + ` is outside your area \"12346\"`},
		{officer, "POST", "/api/v1/announcements/" + ann.ID + "/cancel", "", "", `Part of announcement ` + ann.ID + ` is outside your area \"12346\"`},
		{officer, "POST", "/api/v1/announcements", "application/json", string(announce), `Node \"n-c\" is outside your area \"12346\"`},
		{userAdmin, "DELETE", "/api/v1/users/thu-ky-xa-ben/sessions", "", "", `User \"thu-ky-xa-ben\" is outside your area \"12346\"`},
		{userAdmin, "PUT", "/api/v1/users/thu-ky-xa-ben/password", "application/json", `{"password":"mật khẩu mới 2026"}`, `User \"thu-ky-xa-ben\" is outside your area \"12346\"`},
	} {
		r := a.request(tc.method, tc.path, tc.token, tc.contentType, strings.NewReader(tc.body))
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s %s: %d %s, want 403 saying %s", tc.method, tc.path, r.status, r.body, tc.want)
		}
		if leaksArea(r.body, tc.path+tc.body) {
			t.Errorf("%s %s: the refusal says where: %s", tc.method, tc.path, r.body)
		}
	}
	checkError(t, a.request("GET", "/api/v1/nodes/n-x", officer, "", nil), http.StatusNotFound, loaxa.ENotFound, `There is no node "n-x"`)
}

// leaksArea reports whether a refusal names the out-of-scope area (or
// its district), by id or by name, that the request did not name: an
// officer asking for another commune's node, alarm or call learnt where
// it is.
func leaksArea(body []byte, request string) bool {
	for _, area := range []string{scopeArea[false], "319", "Vĩnh An", "Vĩnh Bảo"} {
		named := regexp.MustCompile(`(^|[^0-9A-Za-z-])` + regexp.QuoteMeta(area) + `($|[^0-9A-Za-z-])`)
		if named.Match(body) && !strings.Contains(request, area) {
			return true
		}
	}
	return false
}

// liveCall stores a live call on air by another officer to the in-scope
// or out-of-scope commune and returns its id.
func (a *authzEnv) liveCall(in bool) string {
	c := &loaxa.LiveCall{ID: loaxa.LiveCallIDPrefix + a.unique("call"), CreatedBy: "admin", Areas: []string{scopeArea[in]},
		Priority: protocol.PriorityHigh, Started: a.clock.Now()}
	if err := a.live.Store.CreateLiveCall(context.Background(), c); err != nil {
		panic(err)
	}
	return c.ID
}

// discardLive takes live messages and drops them.
type discardLive struct{}

func (discardLive) SendLive(context.Context, string, protocol.Live) error { return nil }
