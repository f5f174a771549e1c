package bolt_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestKeyService_Rotation(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	first, err := db.SigningKey()
	must(t, err)
	s := bolt.NewKeyService(db)
	var changed []string
	s.Changed = func(k ed25519.PrivateKey) { changed = append(changed, protocol.KeyID(k.Public().(ed25519.PublicKey))) }
	kid1 := protocol.KeyID(first.Public().(ed25519.PublicKey))

	// The ring starts from the key the store had.
	trusted, err := s.TrustedKeys(ctx)
	must(t, err)
	if len(trusted) != 1 || trusted[0].ID != kid1 {
		t.Fatalf("trusted %v, want only %s", trusted, kid1)
	}
	_, err = s.ActivateKey(ctx)
	wantCode(t, err, loaxa.EConflict)

	next, err := s.AnnounceKey(ctx)
	must(t, err)
	if next.State != loaxa.KeyNext || next.ID == kid1 {
		t.Errorf("announced %+v", next)
	}
	_, err = s.AnnounceKey(ctx)
	wantCode(t, err, loaxa.EConflict)
	trusted, err = s.TrustedKeys(ctx)
	must(t, err)
	if len(trusted) != 2 || trusted[0].ID != kid1 || trusted[1].ID != next.ID {
		t.Errorf("trusted after announce %v", trusted)
	}
	cur, err := s.CurrentKey()
	must(t, err)
	if !cur.Equal(first) {
		t.Error("announcing changed the signing key")
	}

	active, err := s.ActivateKey(ctx)
	must(t, err)
	if active.ID != next.ID || active.State != loaxa.KeyCurrent {
		t.Errorf("activated %+v", active)
	}
	trusted, err = s.TrustedKeys(ctx)
	must(t, err)
	if len(trusted) != 1 || trusted[0].ID != next.ID {
		t.Errorf("trusted after activation %v, want only %s", trusted, next.ID)
	}
	cur, err = s.CurrentKey()
	must(t, err)
	stored, err := db.SigningKey()
	must(t, err)
	if protocol.KeyID(cur.Public().(ed25519.PublicKey)) != next.ID || !stored.Equal(cur) {
		t.Error("the new key does not sign")
	}
	keys, err := s.SigningKeys(ctx)
	must(t, err)
	if len(keys) != 2 || keys[0].State != loaxa.KeyRetired || keys[0].RetiredAt.IsZero() || keys[1].State != loaxa.KeyCurrent {
		t.Errorf("keys %+v", keys)
	}
	if len(changed) != 2 || changed[0] != kid1 || changed[1] != next.ID {
		t.Errorf("Changed called with %v", changed)
	}
}
