package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// UserService stores users and their sessions.
type UserService struct {
	db *DB
}

var _ loaxa.UserService = (*UserService)(nil)

// NewUserService returns a UserService on db.
func NewUserService(db *DB) *UserService {
	return &UserService{db: db}
}

// userRecord is a user as stored: loaxa.User keeps its password hash out of
// JSON so that it never reaches an API answer, and the store puts it back.
type userRecord struct {
	*loaxa.User
	PasswordHash []byte `json:"password_hash"`
}

// session is a token as stored, under the SHA-256 of the token.
type session struct {
	Username string    `json:"username"`
	Expires  time.Time `json:"expires"`
	Created  time.Time `json:"created"`
}

// Username length limits.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
)

// CheckUsername explains why name cannot be a username, or returns nil.
func CheckUsername(name string) error {
	if len(name) < MinUsernameLen || len(name) > MaxUsernameLen {
		return loaxa.Errorf(loaxa.EInvalid, "Username %q must be %d to %d characters long.", name, MinUsernameLen, MaxUsernameLen)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return loaxa.Errorf(loaxa.EInvalid, "Username %q has %q at position %d: use lower-case letters a-z, digits, '.', '_' and '-'.", name, string(rune(c)), i)
		}
	}
	return nil
}

// CreateUser stores u and sets u.CreatedAt; the username must be new. The
// role must be known, a non-admin user must have an area, the area must
// exist, and u.PasswordHash must be set (loaxa.HashPassword).
func (s *UserService) CreateUser(ctx context.Context, u *loaxa.User) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := CheckUsername(u.Username); err != nil {
		return err
	}
	if !u.Role.Valid() {
		return loaxa.Errorf(loaxa.EInvalid, "Role %q is unknown: use admin, province, district, commune, technician or viewer.", u.Role)
	}
	if u.Area == "" && u.Role != loaxa.RoleAdmin {
		return loaxa.Errorf(loaxa.EInvalid, "User %q has no area: only an admin may have the whole tree; give the area the user works in.", u.Username)
	}
	if len(u.PasswordHash) == 0 {
		return loaxa.Errorf(loaxa.EInvalid, "User %q has no password hash: set it with loaxa.HashPassword.", u.Username)
	}
	rec := *u
	err := s.db.update(func(tx *bbolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(u.Username)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "User %q already exists: choose another username.", u.Username)
		}
		if u.Area != "" && tx.Bucket(bucketAreas).Get([]byte(u.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q of user %q does not exist: create the area first.", u.Area, u.Username)
		}
		rec.CreatedAt = s.db.now()
		return putJSON(users, []byte(u.Username), userRecord{&rec, rec.PasswordHash})
	})
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Username, err)
	}
	*u = rec
	return nil
}

// FindUserByUsername returns the user, password hash included, or ENotFound.
func (s *UserService) FindUserByUsername(ctx context.Context, username string) (*loaxa.User, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var u *loaxa.User
	err := s.db.view(func(tx *bbolt.Tx) error {
		var err error
		u, err = getUser(tx, username)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find user %s: %w", username, err)
	}
	return u, nil
}

// FindUsers returns users sorted by username.
func (s *UserService) FindUsers(ctx context.Context) ([]*loaxa.User, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.User
	err := s.db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			u, err := decodeUser(k, v)
			if err == nil {
				out = append(out, u)
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	return out, nil
}

// tokenBytes is the entropy of a bearer token.
const tokenBytes = 32

// CreateToken starts a session for username that ends at expires and
// returns its bearer token (base64url). Only the token's SHA-256 is stored,
// so a copy of the file does not hand out sessions.
func (s *UserService) CreateToken(ctx context.Context, username string, expires time.Time) (string, error) {
	if err := checkCtx(ctx); err != nil {
		return "", err
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("create token for %s: %w", username, err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	err := s.db.update(func(tx *bbolt.Tx) error {
		now := s.db.now()
		if !expires.After(now) {
			return loaxa.Errorf(loaxa.EInvalid, "A session for %q would expire at %s, which is not after now.", username, expires.UTC().Format(time.RFC3339))
		}
		if tx.Bucket(bucketUsers).Get([]byte(username)) == nil {
			return userNotFound(username)
		}
		if err := pruneSessions(tx, now); err != nil {
			return err
		}
		sess := session{Username: username, Expires: expires.UTC(), Created: now}
		return putJSON(tx.Bucket(bucketTokens), tokenKey(token), &sess)
	})
	if err != nil {
		return "", fmt.Errorf("create token for %s: %w", username, err)
	}
	return token, nil
}

// UserByToken returns the user of a live session, or EUnauthorized for an
// unknown or expired token. An expired session is deleted when it is seen
// (and otherwise at the next CreateToken).
func (s *UserService) UserByToken(ctx context.Context, token string) (*loaxa.User, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	key := tokenKey(token)
	var (
		u       *loaxa.User
		expired bool
	)
	err := s.db.view(func(tx *bbolt.Tx) error {
		var sess session
		ok, err := getJSON(tx.Bucket(bucketTokens), key, &sess)
		if err != nil || !ok {
			return err
		}
		if !s.db.Now().Before(sess.Expires) {
			expired = true
			return nil
		}
		u, err = getUser(tx, sess.Username)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return nil // the session outlived its user
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("user by token: %w", err)
	}
	if expired {
		// Lazily, in a write only when needed: most lookups are live
		// sessions and stay read-only.
		err := s.db.update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketTokens).Delete(key)
		})
		if err != nil {
			return nil, fmt.Errorf("delete expired session: %w", err)
		}
	}
	if u == nil {
		return nil, loaxa.Errorf(loaxa.EUnauthorized, "Your session is unknown or has expired: sign in again at POST /api/v1/auth/token.")
	}
	return u, nil
}

// RevokeToken ends the session of token at once. An unknown or ended
// session is not an error: signing out twice is harmless.
func (s *UserService) RevokeToken(ctx context.Context, token string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).Delete(tokenKey(token))
	})
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// RevokeSessions ends every session of username and returns how many were
// still live.
func (s *UserService) RevokeSessions(ctx context.Context, username string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return 0, err
	}
	var live int
	err := s.db.update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(username)) == nil {
			return userNotFound(username)
		}
		var err error
		live, err = endSessions(tx, username, nil, s.db.Now())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %s: %w", username, err)
	}
	return live, nil
}

// SetPassword replaces the password hash of username and, in the same
// transaction, ends every session of the user but keepToken's (none when
// keepToken is empty): whoever signed in with the old password is out. It
// returns how many live sessions ended.
func (s *UserService) SetPassword(ctx context.Context, username string, hash []byte, keepToken string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return 0, err
	}
	if len(hash) == 0 {
		return 0, loaxa.Errorf(loaxa.EInvalid, "No password hash for user %q: set it with loaxa.HashPassword.", username)
	}
	var keep []byte
	if keepToken != "" {
		keep = tokenKey(keepToken)
	}
	var live int
	err := s.db.update(func(tx *bbolt.Tx) error {
		u, err := getUser(tx, username)
		if err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketUsers), []byte(username), userRecord{u, hash}); err != nil {
			return err
		}
		live, err = endSessions(tx, username, keep, s.db.Now())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set password of %s: %w", username, err)
	}
	return live, nil
}

// endSessions deletes the sessions of username but the one stored under
// keep, and returns how many of them were live at now. Sessions are few
// (pruneSessions), so it scans them all.
func endSessions(tx *bbolt.Tx, username string, keep []byte, now time.Time) (int, error) {
	b := tx.Bucket(bucketTokens)
	var (
		ended [][]byte
		live  int
	)
	err := b.ForEach(func(k, v []byte) error {
		if keep != nil && bytes.Equal(k, keep) {
			return nil
		}
		var sess session
		if err := json.Unmarshal(v, &sess); err != nil {
			return fmt.Errorf("decode session: %w", err)
		}
		if sess.Username == username {
			ended = append(ended, k)
			if now.Before(sess.Expires) {
				live++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("delete session: %w", err)
		}
	}
	return live, nil
}

// pruneSessions deletes sessions that ended by now. Signing in is rare next
// to requests, and sessions are few (one per officer and day), so each
// sign-in sweeps them all: tokens that are never presented again do not
// pile up.
func pruneSessions(tx *bbolt.Tx, now time.Time) error {
	b := tx.Bucket(bucketTokens)
	var ended [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var sess session
		if err := json.Unmarshal(v, &sess); err != nil {
			return fmt.Errorf("decode session: %w", err)
		}
		if !now.Before(sess.Expires) {
			ended = append(ended, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete ended session: %w", err)
		}
	}
	return nil
}

// tokenKey is the stored form of a bearer token.
func tokenKey(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

func userNotFound(username string) error {
	return loaxa.Errorf(loaxa.ENotFound, "User %q does not exist.", username)
}

// getUser returns the stored user or ENotFound.
func getUser(tx *bbolt.Tx, username string) (*loaxa.User, error) {
	v := tx.Bucket(bucketUsers).Get([]byte(username))
	if v == nil {
		return nil, userNotFound(username)
	}
	return decodeUser([]byte(username), v)
}

// decodeUser decodes a stored user, password hash included.
func decodeUser(key, v []byte) (*loaxa.User, error) {
	rec := userRecord{User: new(loaxa.User)}
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode user %q: %w", key, err)
	}
	rec.User.PasswordHash = rec.PasswordHash
	return rec.User, nil
}
