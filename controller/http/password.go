package http

import (
	"fmt"
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// passwordChange is the body of POST /api/v1/auth/password.
type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// passwordReset is the body of PUT /api/v1/users/{username}/password.
// Both password routes answer with a revokedResponse: whose password
// changed and how many of their sessions it ended.
type passwordReset struct {
	Password string `json:"password"`
}

// handleChangePassword answers POST /api/v1/auth/password: a user changes
// their own password, proving the current one. Wrong current passwords
// count towards the sign-in lockout, so a stolen session cannot be used to
// guess it. Every other session of the user ends; the caller's goes on.
func (s *Server) handleChangePassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordChange
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.CurrentPassword == "" || req.NewPassword == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Send current_password and new_password.")
	}
	ctx := r.Context()
	caller := userFrom(ctx)
	if err := s.checkLocked(r, caller.Username); err != nil {
		return err
	}
	u, err := s.UserService.FindUserByUsername(ctx, caller.Username)
	if err != nil {
		return fmt.Errorf("change password of %s: %w", caller.Username, err)
	}
	if !loaxa.PasswordMatches(u.PasswordHash, req.CurrentPassword) {
		s.failed(r, u.Username)
		s.audit(r, auditPasswordChangeFailed, u.Username, u.Area, "wrong current password")
		return loaxa.Errorf(loaxa.EForbidden, "The current password is wrong; the password was not changed.")
	}
	if err := loaxa.CheckPassword("new_password", req.NewPassword); err != nil {
		return err
	}
	if req.NewPassword == req.CurrentPassword {
		return loaxa.Errorf(loaxa.EInvalid, "new_password is the current password; choose a different one.")
	}
	s.limits.forget("user:" + u.Username)
	hash, err := loaxa.HashPassword(req.NewPassword, s.PasswordCost)
	if err != nil {
		return fmt.Errorf("change password of %s: %w", u.Username, err)
	}
	n, err := s.UserService.SetPassword(ctx, u.Username, hash, callerFrom(ctx).token)
	if err != nil {
		return fmt.Errorf("change password of %s: %w", u.Username, err)
	}
	s.audit(r, auditPasswordChange, u.Username, u.Area, fmt.Sprintf("revoked=%d", n))
	s.logger().Info("password changed", "username", u.Username, "sessions_ended", n)
	s.writeJSON(w, r, http.StatusOK, revokedResponse{Username: u.Username, Revoked: n})
	return nil
}

// handleResetPassword answers PUT /api/v1/users/{username}/password: a
// user manager sets another user's password (a forgotten one, a leaver's
// shared account). All of that user's sessions end.
func (s *Server) handleResetPassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordReset
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := s.managedUser(r)
	if err != nil {
		return err
	}
	if err := loaxa.CheckPassword("password", req.Password); err != nil {
		return err
	}
	hash, err := loaxa.HashPassword(req.Password, s.PasswordCost)
	if err != nil {
		return fmt.Errorf("reset password of %s: %w", u.Username, err)
	}
	n, err := s.UserService.SetPassword(ctx, u.Username, hash, "")
	if err != nil {
		return fmt.Errorf("reset password of %s: %w", u.Username, err)
	}
	s.limits.forget("user:" + u.Username)
	s.audit(r, auditPasswordReset, u.Username, u.Area, fmt.Sprintf("revoked=%d", n))
	s.logger().Info("password reset", "username", u.Username, "sessions_ended", n, "by", userFrom(ctx).Username)
	s.writeJSON(w, r, http.StatusOK, revokedResponse{Username: u.Username, Revoked: n})
	return nil
}
