package bolt_test

import (
	"context"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// A node's credentials through their life: created waiting for a code,
// enrolled with it once, rotated, revoked, and enrolled again.
func TestNodeService_CredentialsLifecycle(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	s := bolt.NewNodeService(db)
	ctx := context.Background()

	// A batch is all or nothing.
	batch := []*loaxa.Node{{ID: "n1", Area: "hp"}, {ID: "n2", Area: "hp"}, {ID: "n3", Area: "nowhere"}}
	wantCode(t, s.CreateNodes(ctx, batch), loaxa.EInvalid)
	if _, err := s.FindNodeByID(ctx, "n1"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Fatalf("a failed batch left n1 behind: %v", err)
	}
	must(t, s.CreateNodes(ctx, batch[:2]))
	if batch[0].Credentials != loaxa.CredentialsPending || !batch[0].CreatedAt.Equal(clk.Now()) {
		t.Errorf("batch node %+v: want pending credentials", batch[0])
	}
	// Without a secret, nothing authenticates.
	wantCode(t, authenticate(s, "n1", ""), loaxa.EUnauthorized)

	code := loaxa.NewEnrolmentCode()
	norm, err := loaxa.NormalizeEnrolmentCode(code)
	must(t, err)
	enrol := &loaxa.Enrolment{CodeHash: loaxa.HashEnrolmentCode(norm), Node: "n1", Expires: clk.Now().Add(time.Hour), CreatedBy: "ky-thuat"}
	must(t, s.CreateEnrolment(ctx, enrol))

	secret, sec := loaxa.NewNodeSecret()
	clk.Advance(time.Minute)
	n, err := s.RedeemEnrolment(ctx, enrol.CodeHash, sec)
	must(t, err)
	if n.ID != "n1" || n.Credentials != loaxa.CredentialsActive || !n.SecretSetAt.Equal(clk.Now()) || n.BrokerHash != sec.BrokerHash {
		t.Errorf("enrolled node %+v", n)
	}
	must(t, authenticate(s, "n1", secret))
	// The code works once.
	_, err = s.RedeemEnrolment(ctx, enrol.CodeHash, sec)
	wantCode(t, err, loaxa.EUnauthorized)

	// Rotation: the old secret stops at once.
	newSecret, newSec := loaxa.NewNodeSecret()
	_, err = s.SetNodeSecret(ctx, "n1", newSec)
	must(t, err)
	wantCode(t, authenticate(s, "n1", secret), loaxa.EUnauthorized)
	must(t, authenticate(s, "n1", newSecret))

	// Revocation: no secret works, and a pending code is gone too.
	code2 := loaxa.HashEnrolmentCode("SECOND")
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code2, Node: "n1", Expires: clk.Now().Add(time.Hour)}))
	n, err = s.RevokeNode(ctx, "n1")
	must(t, err)
	if n.Credentials != loaxa.CredentialsRevoked || !n.RevokedAt.Equal(clk.Now()) || len(n.SecretHash) != 0 || n.BrokerHash != "" {
		t.Errorf("revoked node %+v", n)
	}
	wantCode(t, authenticate(s, "n1", newSecret), loaxa.EUnauthorized)
	_, err = s.RedeemEnrolment(ctx, code2, sec)
	wantCode(t, err, loaxa.EUnauthorized)

	// A new code brings a revoked node back; a newer code replaces an
	// older one; an expired code does not work.
	old, newer := loaxa.HashEnrolmentCode("OLD"), loaxa.HashEnrolmentCode("NEWER")
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: old, Node: "n1", Expires: clk.Now().Add(time.Hour)}))
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: newer, Node: "n1", Expires: clk.Now().Add(time.Hour)}))
	_, err = s.RedeemEnrolment(ctx, old, sec)
	wantCode(t, err, loaxa.EUnauthorized)
	clk.Advance(time.Hour)
	_, err = s.RedeemEnrolment(ctx, newer, sec)
	wantCode(t, err, loaxa.EUnauthorized)
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: newer, Node: "n1", Expires: clk.Now().Add(time.Hour)}))
	n, err = s.RedeemEnrolment(ctx, newer, sec)
	must(t, err)
	if n.Credentials != loaxa.CredentialsActive || !n.RevokedAt.IsZero() {
		t.Errorf("re-enrolled node %+v", n)
	}
	must(t, authenticate(s, "n1", secret))

	wantCode(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: old, Node: "nobody", Expires: clk.Now().Add(time.Hour)}), loaxa.ENotFound)
	wantCode(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: old, Node: "n2", Expires: clk.Now()}), loaxa.EInvalid)
	_, err = s.RevokeNode(ctx, "nobody")
	wantCode(t, err, loaxa.ENotFound)
	_, err = s.SetNodeSecret(ctx, "n2", loaxa.NodeSecret{})
	wantCode(t, err, loaxa.EInvalid)
}

func authenticate(s *bolt.NodeService, id, secret string) error {
	_, err := s.AuthenticateNode(context.Background(), id, secret)
	return err
}
