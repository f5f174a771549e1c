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

// TestNodeEnrolledAtIsWhenItFirstHadASecret: a node enrolled with a code
// counted from when the code was issued (its creation), and a province
// that issued codes a week before the poles went up had a week of missed
// plays on each. enrolled_at is when the node first had a secret: at its
// creation with one, at the redemption of its code; a later rotation or
// code (the same cluster, a new board) keeps it. Records stored before it
// was kept read as enrolled at their creation, but for those still
// waiting for their code.
func TestNodeEnrolledAtIsWhenItFirstHadASecret(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	s := bolt.NewNodeService(db)
	ctx := context.Background()
	created := clk.Now()
	mustNode(t, db, "doc", "hp")
	must(t, s.CreateNodes(ctx, []*loaxa.Node{{ID: "code", Area: "hp"}, {ID: "waits", Area: "hp"}}))
	enrolledAt := func(id string) time.Time {
		t.Helper()
		n, err := s.FindNodeByID(ctx, id)
		must(t, err)
		return n.EnrolledAt
	}
	if got := enrolledAt("doc"); !got.Equal(created) {
		t.Errorf("a node created with its credentials document: enrolled_at %v, want its creation %v", got, created)
	}
	if got := enrolledAt("code"); !got.IsZero() {
		t.Errorf("a node waiting for its code: enrolled_at %v, want none", got)
	}

	redeem := func(id string) {
		t.Helper()
		code := loaxa.HashEnrolmentCode("CODE-" + id)
		must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code, Node: id, Expires: clk.Now().Add(time.Hour)}))
		_, sec := loaxa.NewNodeSecret()
		_, err := s.RedeemEnrolment(ctx, code, sec)
		must(t, err)
	}
	clk.Advance(7 * 24 * time.Hour)
	redeemed := clk.Now()
	redeem("code")
	if got := enrolledAt("code"); !got.Equal(redeemed) {
		t.Errorf("a node whose board redeemed its code a week later: enrolled_at %v, want %v", got, redeemed)
	}
	clk.Advance(time.Hour)
	_, sec := loaxa.NewNodeSecret()
	_, err := s.SetNodeSecret(ctx, "code", sec)
	must(t, err)
	_, err = s.RevokeNode(ctx, "doc")
	must(t, err)
	redeem("doc")
	if got := enrolledAt("code"); !got.Equal(redeemed) {
		t.Errorf("after a rotation: enrolled_at %v, want still %v", got, redeemed)
	}
	if got := enrolledAt("doc"); !got.Equal(created) {
		t.Errorf("a revoked node given a new code: enrolled_at %v, want still %v", got, created)
	}

	for _, id := range []string{"doc", "waits"} {
		must(t, bolt.AsStoredBeforeEnrolledAt(db, id))
	}
	if got := enrolledAt("doc"); !got.Equal(created) {
		t.Errorf("an enrolled node stored before enrolled_at: %v, want its creation %v", got, created)
	}
	if got := enrolledAt("waits"); !got.IsZero() {
		t.Errorf("a node waiting for its code stored before enrolled_at: %v, want none", got)
	}
}
