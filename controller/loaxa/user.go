package loaxa

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do; every role is limited to the subtree of the
// user's area.
type Role string

// Roles.
const (
	RoleAdmin      Role = "admin"
	RoleProvince   Role = "province"
	RoleDistrict   Role = "district"
	RoleCommune    Role = "commune"
	RoleTechnician Role = "technician"
	RoleViewer     Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleProvince, RoleDistrict, RoleCommune, RoleTechnician, RoleViewer:
		return true
	}
	return false
}

// User is a person who signs in to the controller.
type User struct {
	Username string `json:"username"`
	Role     Role   `json:"role"`
	// Area roots the subtree the user may see and act on; empty means the
	// whole tree (only for admin).
	Area         string    `json:"area,omitempty"`
	PasswordHash []byte    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// UserService stores users and their sessions.
type UserService interface {
	// CreateUser stores u; the username must be new.
	CreateUser(ctx context.Context, u *User) error
	// FindUserByUsername returns the user or ENotFound.
	FindUserByUsername(ctx context.Context, username string) (*User, error)
	// FindUsers returns users sorted by username.
	FindUsers(ctx context.Context) ([]*User, error)
	// CreateToken starts a session for username and returns its bearer
	// token; only a hash of the token is stored.
	CreateToken(ctx context.Context, username string, expires time.Time) (string, error)
	// UserByToken returns the user of a live session, or EUnauthorized.
	UserByToken(ctx context.Context, token string) (*User, error)
	// RevokeToken ends the session of token at once; an unknown or ended
	// session is not an error.
	RevokeToken(ctx context.Context, token string) error
	// RevokeSessions ends every session of username and returns how many
	// were live.
	RevokeSessions(ctx context.Context, username string) (int, error)
	// SetPassword replaces username's password hash and ends every session
	// of the user but keepToken's (all of them when it is empty); it
	// returns how many live sessions ended.
	SetPassword(ctx context.Context, username string, hash []byte, keepToken string) (int, error)
}

// HashPassword returns the bcrypt hash of a password at cost, bcrypt's
// work factor (0: bcrypt.DefaultCost). A hash carries its cost, so
// PasswordMatches checks any.
func HashPassword(password string, cost int) ([]byte, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// PasswordMatches reports whether password matches a bcrypt hash.
func PasswordMatches(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// MinPasswordLen is the shortest password accepted for a user, in
// characters; MaxPasswordBytes, bcrypt's limit, the longest, in bytes.
const (
	MinPasswordLen   = 10
	MaxPasswordBytes = 72
)

// CheckPassword explains, naming field (what the user filled in), why a
// password cannot be a user's, or returns nil.
func CheckPassword(field, password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		return Errorf(EInvalid, "%s is %d characters long; use at least %d.", field, n, MinPasswordLen)
	}
	if len(password) > MaxPasswordBytes {
		return Errorf(EInvalid, "%s is %d bytes long; use at most %d bytes.", field, len(password), MaxPasswordBytes)
	}
	return nil
}
