package bolt_test

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

func TestUserService_CreateUser(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	s := bolt.NewUserService(db)
	ctx := context.Background()
	hash := []byte("$2a$10$not-a-real-bcrypt-hash-but-opaque-to-the-store")

	u := &loaxa.User{Username: "can-bo.le_loi", Role: loaxa.RoleCommune, Area: "hp", PasswordHash: hash}
	must(t, s.CreateUser(ctx, u))
	if !u.CreatedAt.Equal(clk.Now()) {
		t.Errorf("CreatedAt %v, want %v", u.CreatedAt, clk.Now())
	}
	got, err := s.FindUserByUsername(ctx, "can-bo.le_loi")
	must(t, err)
	if got.Username != u.Username || got.Role != u.Role || got.Area != "hp" || string(got.PasswordHash) != string(hash) {
		t.Errorf("stored %+v, want %+v with its password hash", got, u)
	}
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: hash}))

	tests := []struct {
		name string
		user loaxa.User
		code string
	}{
		{"duplicate", loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EConflict},
		{"too short", loaxa.User{Username: "ab", Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EInvalid},
		{"too long", loaxa.User{Username: strings.Repeat("a", 33), Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EInvalid},
		{"upper case", loaxa.User{Username: "Admin2", Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EInvalid},
		{"space", loaxa.User{Username: "an binh", Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EInvalid},
		{"non-ASCII", loaxa.User{Username: "đức", Role: loaxa.RoleAdmin, PasswordHash: hash}, loaxa.EInvalid},
		{"unknown role", loaxa.User{Username: "boss", Role: "root", PasswordHash: hash}, loaxa.EInvalid},
		{"non-admin without area", loaxa.User{Username: "viewer", Role: loaxa.RoleViewer, PasswordHash: hash}, loaxa.EInvalid},
		{"unknown area", loaxa.User{Username: "viewer", Role: loaxa.RoleViewer, Area: "nowhere", PasswordHash: hash}, loaxa.EInvalid},
		{"no password hash", loaxa.User{Username: "viewer", Role: loaxa.RoleViewer, Area: "hp"}, loaxa.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.user
			wantCode(t, s.CreateUser(ctx, &u), tt.code)
		})
	}

	users, err := s.FindUsers(ctx)
	must(t, err)
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if want := []string{"admin", "can-bo.le_loi"}; !slices.Equal(names, want) {
		t.Errorf("users %q, want %q", names, want)
	}
	_, err = s.FindUserByUsername(ctx, "nobody")
	wantCode(t, err, loaxa.ENotFound)
}

func TestUserService_Tokens(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewUserService(db)
	ctx := context.Background()
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: []byte("h")}))

	token, err := s.CreateToken(ctx, "admin", clk.Now().Add(time.Hour))
	must(t, err)
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of base64url: %v", token, err)
	}
	other, err := s.CreateToken(ctx, "admin", clk.Now().Add(2*time.Hour))
	must(t, err)
	if other == token {
		t.Fatal("two sessions got the same token")
	}

	u, err := s.UserByToken(ctx, token)
	must(t, err)
	if u.Username != "admin" {
		t.Fatalf("token of %q", u.Username)
	}

	_, err = s.UserByToken(ctx, token+"x")
	wantCode(t, err, loaxa.EUnauthorized)
	_, err = s.UserByToken(ctx, "")
	wantCode(t, err, loaxa.EUnauthorized)

	// At the expiry instant the session is over; the later one lives on.
	clk.Advance(time.Hour)
	_, err = s.UserByToken(ctx, token)
	wantCode(t, err, loaxa.EUnauthorized)
	if _, err := s.UserByToken(ctx, other); err != nil {
		t.Errorf("the longer session ended early: %v", err)
	}
	// The expired session was deleted when seen: turning the clock back
	// does not revive it.
	clk.Set(t0)
	_, err = s.UserByToken(ctx, token)
	wantCode(t, err, loaxa.EUnauthorized)

	_, err = s.CreateToken(ctx, "nobody", clk.Now().Add(time.Hour))
	wantCode(t, err, loaxa.ENotFound)
	_, err = s.CreateToken(ctx, "admin", clk.Now())
	wantCode(t, err, loaxa.EInvalid)
}

func TestUserService_TokensSurviveReopen(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewUserService(db)
	ctx := context.Background()
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: []byte("h")}))
	token, err := s.CreateToken(ctx, "admin", clk.Now().Add(time.Hour))
	must(t, err)
	must(t, db.Close())
	must(t, db.Open())
	if _, err := s.UserByToken(ctx, token); err != nil {
		t.Errorf("session lost across a restart: %v", err)
	}
}

func TestUserService_CreateToken_PrunesEndedSessions(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewUserService(db)
	ctx := context.Background()
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: []byte("h")}))
	for _, d := range []time.Duration{time.Minute, time.Hour, 2 * time.Hour} {
		_, err := s.CreateToken(ctx, "admin", clk.Now().Add(d))
		must(t, err)
	}
	// Two sessions end, never presented again; the next sign-in sweeps them.
	clk.Advance(time.Hour)
	_, err := s.CreateToken(ctx, "admin", clk.Now().Add(time.Hour))
	must(t, err)
	n, err := bolt.Sessions(db)
	must(t, err)
	if n != 2 {
		t.Errorf("%d sessions stored, want 2 (one live from before, one new)", n)
	}
}

func TestUserService_SetPassword(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	s := bolt.NewUserService(db)
	ctx := context.Background()
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "can-bo", Role: loaxa.RoleCommune, Area: "hp", PasswordHash: []byte("old")}))
	must(t, s.CreateUser(ctx, &loaxa.User{Username: "khac", Role: loaxa.RoleViewer, Area: "hp", PasswordHash: []byte("h")}))
	keep, err := s.CreateToken(ctx, "can-bo", clk.Now().Add(time.Hour))
	must(t, err)
	other, err := s.CreateToken(ctx, "can-bo", clk.Now().Add(time.Hour))
	must(t, err)
	stranger, err := s.CreateToken(ctx, "khac", clk.Now().Add(time.Hour))
	must(t, err)

	n, err := s.SetPassword(ctx, "can-bo", []byte("new"), keep)
	must(t, err)
	if n != 1 {
		t.Errorf("ended %d sessions, want 1", n)
	}
	u, err := s.FindUserByUsername(ctx, "can-bo")
	must(t, err)
	if string(u.PasswordHash) != "new" || u.Role != loaxa.RoleCommune || u.Area != "hp" {
		t.Errorf("after the change: %+v", u)
	}
	if _, err := s.UserByToken(ctx, other); loaxa.ErrorCode(err) != loaxa.EUnauthorized {
		t.Errorf("the other session survived: %v", err)
	}
	for _, tok := range []string{keep, stranger} {
		if _, err := s.UserByToken(ctx, tok); err != nil {
			t.Errorf("a session that should go on ended: %v", err)
		}
	}
	// No session kept: all end.
	n, err = s.SetPassword(ctx, "can-bo", []byte("newer"), "")
	must(t, err)
	if n != 1 {
		t.Errorf("ended %d sessions, want the kept one", n)
	}

	if _, err := s.SetPassword(ctx, "khong-co", []byte("x"), ""); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("unknown user: %v, want ENotFound", err)
	}
	if _, err := s.SetPassword(ctx, "can-bo", nil, ""); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("empty hash: %v, want EInvalid", err)
	}
}
