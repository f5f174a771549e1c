package http_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
)

// signIn posts a username and password to the token route.
func (e *env) signIn(username, password string) response {
	e.t.Helper()
	return e.request("POST", "/api/v1/auth/token", "", "application/json",
		jsonBody(e.t, map[string]string{"username": username, "password": password}))
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	limits := lhttp.LoginLimits{UserFailures: 3, AddrFailures: 5, Window: 15 * time.Minute, LockFor: 5 * time.Minute, MaxLock: time.Hour}
	e := newEnv(t, func(s *lhttp.Server) { s.LoginLimits = limits })
	e.tree()
	e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	e.addUser("can-bo-b", loaxa.RoleCommune, "12347")

	for range limits.UserFailures {
		checkError(t, e.signIn("can-bo-a", "wrong-password"), http.StatusUnauthorized, loaxa.EUnauthorized, "Wrong username or password.")
	}
	// Locked: even the right password is refused, with when to come back.
	r := e.signIn("can-bo-a", testPassword)
	checkError(t, r, http.StatusTooManyRequests, loaxa.ETooMany, `Too many failed sign-ins for "can-bo-a"; wait 5 minutes`)
	if got := r.header.Get("Retry-After"); got != "300" {
		t.Errorf("Retry-After %q, want 300", got)
	}
	// Another user from the same address is not locked yet.
	e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-b", "password": testPassword}, http.StatusOK, nil)

	e.clock.Advance(5*time.Minute + time.Second)
	e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-a", "password": testPassword}, http.StatusOK, nil)

	t.Run("a second lock in a row lasts twice as long", func(t *testing.T) {
		for range limits.UserFailures {
			e.signIn("can-bo-a", "wrong-password")
		}
		e.clock.Advance(time.Second)
		// 3 wrong ones earlier in the window count towards the address too.
		r := e.signIn("can-bo-a", testPassword)
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		e.clock.Advance(11 * time.Minute)
	})

	t.Run("unknown usernames lock the address", func(t *testing.T) {
		for i := range limits.AddrFailures {
			e.signIn("ai-do-"+strconv.Itoa(i), "wrong-password")
		}
		r := e.signIn("can-bo-b", testPassword)
		checkError(t, r, http.StatusTooManyRequests, loaxa.ETooMany, "Too many failed attempts from your address")
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	})

	var failed, locked int
	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range entries {
		if a.Action == "auth.login_failed" {
			failed++
			if a.Detail == "locked" {
				locked++
			}
			if a.Remote == "" {
				t.Errorf("failed sign-in without a client address: %+v", a)
			}
		}
	}
	if failed < 2*limits.UserFailures+limits.AddrFailures || locked < 2 {
		t.Errorf("audit has %d failed sign-ins (%d locked)", failed, locked)
	}
}

func TestLogoutAndRevokeSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	second := e.token("can-bo-a")
	district := e.addUser("huyen", loaxa.RoleAdmin, "318")
	other := e.addUser("khac", loaxa.RoleAdmin, "12347")

	var who struct {
		Role    loaxa.Role
		Area    string
		Actions []loaxa.Action
	}
	e.call("GET", "/api/v1/auth/session", officer, nil, http.StatusOK, &who)
	// The page shows what the role grants: a commune officer schedules and
	// sends emergencies but manages no users and reads no audit log.
	if who.Role != loaxa.RoleCommune || who.Area != "12346" ||
		!slices.Contains(who.Actions, loaxa.ActionSchedule) || !slices.Contains(who.Actions, loaxa.ActionEmergency) ||
		slices.Contains(who.Actions, loaxa.ActionManageUsers) || slices.Contains(who.Actions, loaxa.ActionReadAudit) {
		t.Errorf("GET /auth/session for a commune officer: %+v", who)
	}
	e.call("POST", "/api/v1/auth/logout", officer, nil, http.StatusNoContent, nil)
	checkError(t, e.request("GET", "/api/v1/areas", officer, "", nil), http.StatusUnauthorized, loaxa.EUnauthorized, "revoked")
	// The user's other session lives on.
	e.call("GET", "/api/v1/areas", second, nil, http.StatusOK, nil)

	checkError(t, e.request("DELETE", "/api/v1/users/can-bo-a/sessions", other, "", nil), http.StatusForbidden, loaxa.EForbidden, "outside your area")
	checkError(t, e.request("DELETE", "/api/v1/users/admin/sessions", district, "", nil), http.StatusForbidden, loaxa.EForbidden, "whole tree")
	checkError(t, e.request("DELETE", "/api/v1/users/nobody/sessions", district, "", nil), http.StatusNotFound, loaxa.ENotFound, `no user "nobody"`)
	var got struct {
		Username string
		Revoked  int
	}
	e.call("DELETE", "/api/v1/users/can-bo-a/sessions", district, nil, http.StatusOK, &got)
	if got.Username != "can-bo-a" || got.Revoked != 1 {
		t.Errorf("revoke answered %+v, want 1 live session", got)
	}
	checkError(t, e.request("GET", "/api/v1/areas", second, "", nil), http.StatusUnauthorized, loaxa.EUnauthorized, "revoked")

	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{Within: "12346"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Actor+" "+a.Action+" "+a.Target)
	}
	want := "admin area.create 12346|admin node.create n-a|can-bo-a auth.logout can-bo-a|huyen user.sessions_revoke can-bo-a"
	if strings.Join(actions, "|") != want {
		t.Errorf("audit in 12346: %q, want %q", strings.Join(actions, "|"), want)
	}
}

func TestCookieSessionAndCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.addUser("can-bo-a", loaxa.RoleAdmin, "12346")

	login := func(header ...string) response {
		return e.request("POST", "/api/v1/auth/session", "", "application/json",
			jsonBody(t, map[string]string{"username": "can-bo-a", "password": testPassword}), header...)
	}
	checkError(t, login("Origin", "https://evil.example"), http.StatusForbidden, loaxa.EForbidden, `page at "https://evil.example"`)

	r := login("Origin", e.ts.URL)
	if r.status != http.StatusOK {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	var sess struct {
		Username  string
		Role      loaxa.Role
		CSRFToken string `json:"csrf_token"`
	}
	if err := jsonUnmarshal(r.body, &sess); err != nil {
		t.Fatal(err)
	}
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	ck := cookies[0]
	if ck.Name != lhttp.SessionCookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 12*3600 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, 12 h", ck)
	}
	if ck.Secure {
		t.Error("cookie is Secure over plain HTTP; the browser would never send it back")
	}
	if sess.Username != "can-bo-a" || sess.CSRFToken == "" || strings.Contains(string(r.body), ck.Value) {
		t.Errorf("session answer %s: want the user and a CSRF token, never the session token", r.body)
	}
	cookie := ck.Name + "=" + ck.Value

	area := func(id string) *strings.Reader {
		return strings.NewReader(`{"id":"` + id + `","name":"Thôn ` + id + `","parent":"12346"}`)
	}

	// Reads need only the cookie.
	if r := e.request("GET", "/api/v1/areas", "", "", nil, "Cookie", cookie); r.status != http.StatusOK {
		t.Errorf("GET with the cookie: %d %s", r.status, r.body)
	}
	var again struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := jsonUnmarshal(e.request("GET", "/api/v1/auth/session", "", "", nil, "Cookie", cookie).body, &again); err != nil || again.CSRFToken != sess.CSRFToken {
		t.Errorf("GET /auth/session gives CSRF token %q, want the one from sign-in (%v)", again.CSRFToken, err)
	}
	tests := []struct {
		name   string
		header []string
		status int
		msg    string
	}{
		{"no CSRF token", []string{"Cookie", cookie}, http.StatusForbidden, "no valid X-CSRF-Token header"},
		{"wrong CSRF token", []string{"Cookie", cookie, "X-CSRF-Token", "x" + sess.CSRFToken}, http.StatusForbidden, "no valid X-CSRF-Token header"},
		{"foreign Origin", []string{"Cookie", cookie, "X-CSRF-Token", sess.CSRFToken, "Origin", "http://evil.example"}, http.StatusForbidden, "page at"},
		{"token and own Origin", []string{"Cookie", cookie, "X-CSRF-Token", sess.CSRFToken, "Origin", e.ts.URL}, http.StatusCreated, ""},
		{"token without Origin", []string{"Cookie", cookie, "X-CSRF-Token", sess.CSRFToken}, http.StatusCreated, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.request("POST", "/api/v1/areas", "", "application/json", area("t"+strconv.Itoa(i)), tt.header...)
			if tt.msg == "" {
				if r.status != tt.status {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			checkError(t, r, tt.status, loaxa.EForbidden, tt.msg)
		})
	}
	// A bearer client needs no CSRF token, even with a cookie around.
	if r := e.request("POST", "/api/v1/areas", e.admin, "application/json", area("t9"), "Cookie", cookie); r.status != http.StatusCreated {
		t.Errorf("bearer POST: %d %s", r.status, r.body)
	}

	// Signing out needs the CSRF token too, ends the session and clears
	// the cookie.
	checkError(t, e.request("POST", "/api/v1/auth/logout", "", "", nil, "Cookie", cookie), http.StatusForbidden, loaxa.EForbidden, "X-CSRF-Token")
	r = e.request("POST", "/api/v1/auth/logout", "", "", nil, "Cookie", cookie, "X-CSRF-Token", sess.CSRFToken)
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if cs := (&http.Response{Header: r.header}).Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies %v, want the session cookie cleared", cs)
	}
	checkError(t, e.request("GET", "/api/v1/areas", "", "", nil, "Cookie", cookie), http.StatusUnauthorized, loaxa.EUnauthorized, "revoked")
}

// Over TLS, or with an https public URL, the cookie is Secure.
func TestCookieSecure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *lhttp.Server) { s.PublicURL = "https://loa.example.vn" })
	r := e.request("POST", "/api/v1/auth/session", "", "application/json",
		jsonBody(t, map[string]string{"username": "admin", "password": testPassword}), "Origin", "https://loa.example.vn")
	cs := (&http.Response{Header: r.header}).Cookies()
	if r.status != http.StatusOK || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("status %d, cookies %+v: want one Secure cookie", r.status, cs)
	}
}

// BenchmarkSignIn compares a wrong password (one bcrypt) with a sign-in
// refused because the username is locked (no bcrypt at all): a locked
// attacker costs the controller next to nothing.
func BenchmarkSignIn(b *testing.B) {
	for _, locked := range []bool{false, true} {
		b.Run(map[bool]string{false: "wrong-password", true: "locked"}[locked], func(b *testing.B) {
			limit := 1 << 30
			if locked {
				limit = 1
			}
			e := newEnv(b, func(s *lhttp.Server) {
				s.LoginLimits = lhttp.LoginLimits{UserFailures: limit, AddrFailures: 1 << 30, Window: time.Hour, LockFor: time.Hour, MaxLock: time.Hour}
			})
			e.signIn("admin", "wrong-password")
			for b.Loop() {
				e.signIn("admin", "wrong-password")
			}
		})
	}
}
