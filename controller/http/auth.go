package http

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
)

// tokenRequest is the body of POST /api/v1/auth/token.
type tokenRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// tokenResponse answers POST /api/v1/auth/token.
type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// errBadLogin is the one answer for a wrong username or a wrong password,
// so the API does not tell which usernames exist.
func errBadLogin() error {
	return loaxa.Errorf(loaxa.EUnauthorized, "Wrong username or password.")
}

// decoyHash is checked against when the username does not exist, so a
// failed sign-in takes as long (one bcrypt) whether or not the user exists.
var decoyHash = sync.OnceValues(func() ([]byte, error) {
	return loaxa.HashPassword(loaxa.NewSecret())
})

// handleCreateToken answers POST /api/v1/auth/token: signs a user in.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Send both username and password, e.g. {\"username\":\"admin\",\"password\":\"…\"}.")
	}
	ctx := r.Context()
	u, err := s.UserService.FindUserByUsername(ctx, req.Username)
	switch {
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		hash, herr := decoyHash()
		if herr != nil {
			return fmt.Errorf("sign in: %w", herr)
		}
		loaxa.PasswordMatches(hash, req.Password)
		return errBadLogin()
	case err != nil:
		return fmt.Errorf("sign in %q: %w", req.Username, err)
	case !loaxa.PasswordMatches(u.PasswordHash, req.Password):
		s.logger().Info("sign-in refused: wrong password", "username", u.Username)
		return errBadLogin()
	}
	expires := s.now().Add(TokenLifetime)
	token, err := s.UserService.CreateToken(ctx, u.Username, expires)
	if err != nil {
		return fmt.Errorf("sign in %q: create token: %w", u.Username, err)
	}
	s.logger().Info("user signed in", "username", u.Username, "expires", expires)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, tokenResponse{Token: token, ExpiresAt: expires.UTC()})
	return nil
}
