package http_test

import (
	"net/http"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

func TestAuthFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.addUser("can-bo-a", loaxa.RoleCommune, "12346")

	t.Run("wrong password and unknown user get the same answer", func(t *testing.T) {
		for _, body := range []map[string]string{
			{"username": "can-bo-a", "password": "not-the-password"},
			{"username": "nobody", "password": testPassword},
		} {
			r := e.request("POST", "/api/v1/auth/token", "", "application/json", jsonBody(t, body))
			checkError(t, r, http.StatusUnauthorized, loaxa.EUnauthorized, "Wrong username or password.")
		}
	})
	t.Run("missing fields", func(t *testing.T) {
		r := e.request("POST", "/api/v1/auth/token", "", "application/json", jsonBody(t, map[string]string{"username": "can-bo-a"}))
		checkError(t, r, http.StatusBadRequest, loaxa.EInvalid, "Send both username and password")
	})

	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-a", "password": testPassword}, http.StatusOK, &tok)
	if tok.Token == "" {
		t.Fatal("no token")
	}
	if want := e.clock.Now().Add(12 * time.Hour); !tok.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %v, want %v", tok.ExpiresAt, want)
	}

	var areas struct{ Areas []loaxa.Area }
	e.call("GET", "/api/v1/areas", tok.Token, nil, http.StatusOK, &areas)
	if len(areas.Areas) != 1 || areas.Areas[0].ID != "12346" {
		t.Errorf("commune officer sees areas %+v, want only 12346", areas.Areas)
	}

	tests := []struct {
		name   string
		header string
		msg    string
	}{
		{"no header", "", "Sign in first"},
		{"unknown token", "Bearer not-a-token", "The token is invalid, revoked or has expired"},
		{"basic instead of bearer", "Basic YWRtaW46eA==", `must be "Bearer <token>"`},
		{"bearer without token", "Bearer ", `must be "Bearer <token>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.header == "" {
				r = e.request("GET", "/api/v1/areas", "", "", nil)
			} else {
				r = e.request("GET", "/api/v1/areas", "", "", nil, "Authorization", tt.header)
			}
			checkError(t, r, http.StatusUnauthorized, loaxa.EUnauthorized, tt.msg)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("token expires after 12 hours", func(t *testing.T) {
		e.clock.Advance(12*time.Hour + time.Second)
		r := e.request("GET", "/api/v1/areas", tok.Token, "", nil)
		checkError(t, r, http.StatusUnauthorized, loaxa.EUnauthorized, "sign in again")
	})
}

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()

	var u loaxa.User
	r := e.call("POST", "/api/v1/users", e.admin, map[string]string{"username": "can-bo-a", "password": testPassword, "role": "commune", "area": "12346"},
		http.StatusCreated, &u)
	if u.Username != "can-bo-a" || u.Role != loaxa.RoleCommune || u.Area != "12346" {
		t.Errorf("created %+v", u)
	}
	if containsAny(r.body, "password", testPassword) {
		t.Errorf("answer shows the password: %s", r.body)
	}
	stored, err := e.stores.users.FindUserByUsername(t.Context(), "can-bo-a")
	if err != nil {
		t.Fatal(err)
	}
	if !loaxa.PasswordMatches(stored.PasswordHash, testPassword) {
		t.Error("stored hash does not match the password")
	}

	district := e.addUser("huyen", loaxa.RoleAdmin, "318")
	commune := e.addUser("can-bo-xa", loaxa.RoleCommune, "12346")
	tests := []struct {
		name   string
		token  string
		body   map[string]string
		status int
		code   string
		msg    string
	}{
		{"short password", e.admin, map[string]string{"username": "u1", "password": "ngan", "role": "viewer", "area": "31"},
			400, loaxa.EInvalid, "password is 4 characters long; use at least 10"},
		{"unknown role", e.admin, map[string]string{"username": "u2", "password": testPassword, "role": "chief", "area": "31"},
			400, loaxa.EInvalid, `role "chief" is not a role; use one of admin, province`},
		{"unknown area", e.admin, map[string]string{"username": "u3", "password": testPassword, "role": "viewer", "area": "99"},
			400, loaxa.EInvalid, `area: there is no area "99"`},
		{"no area for a non-admin", e.admin, map[string]string{"username": "u4", "password": testPassword, "role": "viewer"},
			400, loaxa.EInvalid, `area is required for role "viewer"`},
		{"bad username", e.admin, map[string]string{"username": "Nguyen Van A", "password": testPassword, "role": "viewer", "area": "31"},
			400, loaxa.EInvalid, "username:"},
		{"area outside the creator's", district, map[string]string{"username": "u5", "password": testPassword, "role": "viewer", "area": "31"},
			403, loaxa.EForbidden, `Area "31" is outside your area "318"`},
		{"whole tree from a scoped admin", district, map[string]string{"username": "u6", "password": testPassword, "role": "admin"},
			403, loaxa.EForbidden, "Only a user over the whole tree"},
		{"role without users.manage", commune, map[string]string{"username": "u7", "password": testPassword, "role": "viewer", "area": "12346"},
			403, loaxa.EForbidden, `Role "commune" may not users.manage`},
		{"taken username", e.admin, map[string]string{"username": "can-bo-a", "password": testPassword, "role": "viewer", "area": "31"},
			409, loaxa.EConflict, `Username "can-bo-a" is taken`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.request("POST", "/api/v1/users", tt.token, "application/json", jsonBody(t, tt.body))
			checkError(t, r, tt.status, tt.code, tt.msg)
		})
	}

	var list struct{ Users []loaxa.User }
	e.call("GET", "/api/v1/users", district, nil, http.StatusOK, &list)
	var names []string
	for _, u := range list.Users {
		names = append(names, u.Username)
	}
	if want := []string{"can-bo-a", "can-bo-xa", "huyen"}; !equalStrings(names, want) {
		t.Errorf("district admin lists users %v, want %v", names, want)
	}
}
