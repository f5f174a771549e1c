package http_test

import (
	"net/http"
	"slices"
	"testing"

	"loaxa.vn/controller/loaxa"
)

const newPassword = "mật khẩu mới 2026"

func TestChangeOwnPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	phone := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	office := e.token("can-bo-a")
	change := func(token string, body map[string]string) response {
		t.Helper()
		return e.request("POST", "/api/v1/auth/password", token, "application/json", jsonBody(t, body))
	}

	t.Run("bad requests change nothing", func(t *testing.T) {
		checkError(t, change(office, map[string]string{"current_password": testPassword}), http.StatusBadRequest, loaxa.EInvalid, "Send current_password and new_password")
		checkError(t, change(office, map[string]string{"current_password": "sai mật khẩu", "new_password": newPassword}), http.StatusForbidden, loaxa.EForbidden, "The current password is wrong")
		checkError(t, change(office, map[string]string{"current_password": testPassword, "new_password": "ngắn"}), http.StatusBadRequest, loaxa.EInvalid, "new_password is 4 characters long; use at least 10")
		checkError(t, change(office, map[string]string{"current_password": testPassword, "new_password": testPassword}), http.StatusBadRequest, loaxa.EInvalid, "new_password is the current password")
		checkError(t, change("", map[string]string{"current_password": testPassword, "new_password": newPassword}), http.StatusUnauthorized, loaxa.EUnauthorized, "Sign in first")
		// Both sessions still work, and the old password still signs in.
		e.call("GET", "/api/v1/auth/session", phone, nil, http.StatusOK, nil)
		e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-a", "password": testPassword}, http.StatusOK, nil)
	})

	var got struct {
		Username string
		Revoked  int
	}
	e.call("POST", "/api/v1/auth/password", office, map[string]string{"current_password": testPassword, "new_password": newPassword}, http.StatusOK, &got)
	// The phone's session and the one the sign-in check above made end;
	// the office's goes on.
	if got.Username != "can-bo-a" || got.Revoked != 2 {
		t.Errorf("answer %+v, want can-bo-a with 2 sessions ended", got)
	}
	checkError(t, e.request("GET", "/api/v1/auth/session", phone, "", nil), http.StatusUnauthorized, loaxa.EUnauthorized, "")
	e.call("GET", "/api/v1/auth/session", office, nil, http.StatusOK, nil)
	checkError(t, e.request("POST", "/api/v1/auth/token", "", "application/json",
		jsonBody(t, map[string]string{"username": "can-bo-a", "password": testPassword})), http.StatusUnauthorized, loaxa.EUnauthorized, "Wrong username or password.")
	e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-a", "password": newPassword}, http.StatusOK, nil)

	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{Actor: "can-bo-a"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Action)
	}
	if !slices.Contains(actions, "auth.password_change_failed") || !slices.Contains(actions, "auth.password_change") {
		t.Errorf("audit actions %q lack the failed and the successful change", actions)
	}
}

// TestChangePasswordLocksOut: a stolen session cannot be used to guess the
// password, wrong current passwords count like failed sign-ins.
func TestChangePasswordLocksOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	tok := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	wrong := map[string]string{"current_password": "đoán thử mật khẩu", "new_password": newPassword}
	for i := range loaxa.MinPasswordLen {
		r := e.request("POST", "/api/v1/auth/password", tok, "application/json", jsonBody(t, wrong))
		if r.status == http.StatusTooManyRequests {
			checkError(t, r, http.StatusTooManyRequests, loaxa.ETooMany, "Too many failed sign-ins")
			// Locked: even the right password is refused now.
			right := map[string]string{"current_password": testPassword, "new_password": newPassword}
			checkError(t, e.request("POST", "/api/v1/auth/password", tok, "application/json", jsonBody(t, right)), http.StatusTooManyRequests, loaxa.ETooMany, "")
			return
		}
		if r.status != http.StatusForbidden {
			t.Fatalf("attempt %d: status %d: %s", i+1, r.status, r.body)
		}
	}
	t.Fatalf("%d wrong current passwords did not lock the account", loaxa.MinPasswordLen)
}

func TestResetPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	reset := func(token, user string, body any) response {
		t.Helper()
		return e.request("PUT", "/api/v1/users/"+user+"/password", token, "application/json", jsonBody(t, body))
	}
	checkError(t, reset(officer, "can-bo-a", map[string]string{"password": newPassword}), http.StatusForbidden, loaxa.EForbidden, "")
	checkError(t, reset(e.admin, "khong-co", map[string]string{"password": newPassword}), http.StatusNotFound, loaxa.ENotFound, `There is no user "khong-co"`)
	checkError(t, reset(e.admin, "can-bo-a", map[string]string{"password": "ngắn"}), http.StatusBadRequest, loaxa.EInvalid, "password is 4 characters long")
	checkError(t, reset(e.admin, "can-bo-a", map[string]int{"password": 1}), http.StatusBadRequest, loaxa.EInvalid, "")

	var got struct {
		Username string
		Revoked  int
	}
	e.call("PUT", "/api/v1/users/can-bo-a/password", e.admin, map[string]string{"password": newPassword}, http.StatusOK, &got)
	if got.Username != "can-bo-a" || got.Revoked != 1 {
		t.Errorf("answer %+v, want can-bo-a with its 1 session ended", got)
	}
	checkError(t, e.request("GET", "/api/v1/auth/session", officer, "", nil), http.StatusUnauthorized, loaxa.EUnauthorized, "")
	e.call("POST", "/api/v1/auth/token", "", map[string]string{"username": "can-bo-a", "password": newPassword}, http.StatusOK, nil)
}
