package http

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
)

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "loaxa_session"

// CSRFHeader carries the CSRF token on state-changing requests that are
// authenticated by the session cookie.
const CSRFHeader = "X-CSRF-Token"

// tokenRequest is the body of POST /api/v1/auth/token and
// POST /api/v1/auth/session.
type tokenRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// tokenResponse answers POST /api/v1/auth/token.
type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessionResponse answers POST and GET /api/v1/auth/session: who is signed
// in, and the CSRF token to send with state-changing requests.
type sessionResponse struct {
	Username  string     `json:"username"`
	Role      loaxa.Role `json:"role"`
	Area      string     `json:"area,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Actions are what the role grants (within Area), so a page shows only
	// what the user may do; the API enforces it all the same.
	Actions []loaxa.Action `json:"actions"`
	// CSRFToken is set when the session is the cookie's.
	CSRFToken string `json:"csrf_token,omitempty"`
}

// actionsOf lists the actions u's role grants.
func actionsOf(u *loaxa.User) []loaxa.Action {
	out := []loaxa.Action{}
	for _, a := range loaxa.Actions {
		if u.May(a) {
			out = append(out, a)
		}
	}
	return out
}

// errBadLogin is the one answer for a wrong username or a wrong password,
// so the API does not tell which usernames exist.
func errBadLogin() error {
	return loaxa.Errorf(loaxa.EUnauthorized, "Wrong username or password.")
}

// decoyHash is checked against when the username does not exist, so a
// failed sign-in takes as long (one bcrypt at the server's PasswordCost)
// whether or not the user exists.
type decoyHash struct {
	once sync.Once
	hash []byte
	err  error
}

// get returns the decoy, hashed at cost the first time.
func (d *decoyHash) get(cost int) ([]byte, error) {
	d.once.Do(func() { d.hash, d.err = loaxa.HashPassword(loaxa.NewSecret(), cost) })
	return d.hash, d.err
}

// signIn checks a username and password against the lockout limits and the
// store, records the attempt in the audit log, and starts a session.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) (*loaxa.User, string, time.Time, error) {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, "", time.Time{}, err
	}
	if req.Username == "" || req.Password == "" {
		return nil, "", time.Time{}, loaxa.Errorf(loaxa.EInvalid, "Send both username and password, e.g. {\"username\":\"admin\",\"password\":\"…\"}.")
	}
	// Usernames are short (bolt.CheckUsername); a longer one is not worth a
	// lockout entry or an audit line of its length.
	name := req.Username
	if len(name) > 64 {
		name = name[:64]
	}
	if err := s.checkLocked(r, name); err != nil {
		s.auditAs(r, name, auditLoginFailed, name, "", "locked")
		return nil, "", time.Time{}, err
	}
	ctx := r.Context()
	u, err := s.UserService.FindUserByUsername(ctx, req.Username)
	switch {
	case loaxa.ErrorCode(err) == loaxa.ENotFound:
		hash, herr := s.decoy.get(s.PasswordCost)
		if herr != nil {
			return nil, "", time.Time{}, fmt.Errorf("sign in: %w", herr)
		}
		loaxa.PasswordMatches(hash, req.Password)
		s.failed(r, name)
		s.auditAs(r, name, auditLoginFailed, name, "", "unknown user")
		return nil, "", time.Time{}, errBadLogin()
	case err != nil:
		return nil, "", time.Time{}, fmt.Errorf("sign in %q: %w", req.Username, err)
	case !loaxa.PasswordMatches(u.PasswordHash, req.Password):
		s.failed(r, name)
		s.auditAs(r, u.Username, auditLoginFailed, u.Username, u.Area, "wrong password")
		s.logger().Info("sign-in refused: wrong password", "username", u.Username, "remote", clientAddr(r))
		return nil, "", time.Time{}, errBadLogin()
	}
	s.limits.forget("user:" + u.Username)
	expires := s.now().Add(TokenLifetime)
	token, err := s.UserService.CreateToken(ctx, u.Username, expires)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("sign in %q: create token: %w", u.Username, err)
	}
	s.auditAs(r, u.Username, auditLogin, u.Username, u.Area, "")
	s.logger().Info("user signed in", "username", u.Username, "expires", expires)
	return u, token, expires, nil
}

// handleCreateToken answers POST /api/v1/auth/token: signs a user in and
// answers with a bearer token, for scripts and other systems.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) error {
	_, token, expires, err := s.signIn(w, r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, tokenResponse{Token: token, ExpiresAt: expires.UTC()})
	return nil
}

// handleSignInBrowser answers POST /api/v1/auth/session: signs a user in
// for a browser. The token goes into an HttpOnly, SameSite=Strict cookie
// (Secure over TLS) that scripts on the page cannot read; the answer
// carries the CSRF token the page sends back in X-CSRF-Token.
func (s *Server) handleSignInBrowser(w http.ResponseWriter, r *http.Request) error {
	// A page on another site must not sign the browser in to an account
	// of the attacker's choosing (login CSRF).
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	u, token, expires, err := s.signIn(w, r)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/",
		Expires: expires, MaxAge: int(TokenLifetime / time.Second),
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	exp := expires.UTC()
	s.writeJSON(w, r, http.StatusOK, sessionResponse{Username: u.Username, Role: u.Role, Area: u.Area, ExpiresAt: &exp, Actions: actionsOf(u), CSRFToken: csrfToken(token)})
	return nil
}

// handleWhoAmI answers GET /api/v1/auth/session: who the caller is,
// and for a cookie session the CSRF token again (after a page reload).
func (s *Server) handleWhoAmI(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	u := userFrom(r.Context())
	resp := sessionResponse{Username: u.Username, Role: u.Role, Area: u.Area, Actions: actionsOf(u)}
	if c := callerFrom(r.Context()); c.cookie {
		resp.CSRFToken = csrfToken(c.token)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// handleLogout answers POST /api/v1/auth/logout: ends the caller's session
// (bearer token or cookie) at once and clears the cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	c := callerFrom(ctx)
	if err := s.UserService.RevokeToken(ctx, c.token); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	if c.cookie {
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	}
	s.audit(r, auditLogout, userFrom(ctx).Username, "", "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokedResponse answers DELETE /api/v1/users/{username}/sessions.
type revokedResponse struct {
	Username string `json:"username"`
	Revoked  int    `json:"revoked"`
}

// handleRevokeSessions answers DELETE /api/v1/users/{username}/sessions:
// signs a user out everywhere, e.g. after a lost phone or a departure.
func (s *Server) handleRevokeSessions(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := s.managedUser(r)
	if err != nil {
		return err
	}
	n, err := s.UserService.RevokeSessions(ctx, u.Username)
	if err != nil {
		return fmt.Errorf("revoke sessions of %s: %w", u.Username, err)
	}
	s.audit(r, auditSessionsRevoke, u.Username, u.Area, fmt.Sprintf("revoked=%d", n))
	s.logger().Info("sessions revoked", "username", u.Username, "revoked", n, "by", userFrom(ctx).Username)
	s.writeJSON(w, r, http.StatusOK, revokedResponse{Username: u.Username, Revoked: n})
	return nil
}

// csrfToken derives the CSRF token of a session: an HMAC keyed by the
// session token, so it needs no storage, is useless without the cookie,
// and does not reveal the token.
func csrfToken(session string) string {
	m := hmac.New(sha256.New, []byte(session))
	m.Write([]byte("loaxa csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF guards a state-changing request that the session cookie
// authenticated: it must carry the session's CSRF token, and any Origin
// it names must be this controller's.
func (s *Server) checkCSRF(r *http.Request, session string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(session))) != 1 {
		return loaxa.Errorf(loaxa.EForbidden,
			"This request is signed in by the session cookie but has no valid %s header; send the csrf_token from POST or GET /api/v1/auth/session in it.", CSRFHeader)
	}
	return nil
}

// checkOrigin refuses a request whose Origin header names another site.
// Browsers send Origin with every cross-site POST; scripts usually send
// none, which is fine: they cannot ride on a browser's cookie.
func (s *Server) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && (u.Host == r.Host || s.PublicURL != "" && sameHost(u.Host, s.PublicURL)) {
		return nil
	}
	return loaxa.Errorf(loaxa.EForbidden, "Requests from the page at %q are not accepted; use the controller's own web pages or an API token.", origin)
}

func sameHost(host, base string) bool {
	u, err := url.Parse(base)
	return err == nil && u.Host == host
}

// secure reports whether cookies should be marked Secure: the request came
// over TLS, or the controller's public URL is https (TLS ends at a proxy).
func (s *Server) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	u, err := url.Parse(s.PublicURL)
	return err == nil && u.Scheme == "https"
}

// managedUser returns the user named by the request's {username} once the
// caller may manage them (users.manage on their area).
func (s *Server) managedUser(r *http.Request) (*loaxa.User, error) {
	ctx, name := r.Context(), r.PathValue("username")
	u, err := s.UserService.FindUserByUsername(ctx, name)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.ENotFound, "There is no user %q; list users with GET /api/v1/users.", name)
	} else if err != nil {
		return nil, fmt.Errorf("find user %s: %w", name, err)
	}
	if err := s.authorizeUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// authorizeUser checks that the caller may manage user u: u's area lies in
// the caller's subtree, and a whole-tree user only by a whole-tree caller.
// A refusal does not say where u is (authorizeOn).
func (s *Server) authorizeUser(ctx context.Context, u *loaxa.User) error {
	caller := userFrom(ctx)
	if u.Area == "" {
		if caller.Area != "" {
			return loaxa.Errorf(loaxa.EForbidden, "User %q has the whole tree; only a user over the whole tree may manage them.", u.Username)
		}
		return s.authorize(ctx, loaxa.ActionManageUsers, "")
	}
	return s.authorizeOn(ctx, loaxa.ActionManageUsers, u.Area, fmt.Sprintf("User %q", u.Username))
}
