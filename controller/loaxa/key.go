package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// Signing key states. A key is announced (nodes learn to trust it) before
// it signs, and retired (nodes forget it) once its successor signs, so the
// controller's key changes without re-enrolling a single node.
const (
	KeyNext    = "next"    // announced to nodes, not signing yet
	KeyCurrent = "current" // signs everything the controller sends
	KeyRetired = "retired" // no longer trusted; nodes refuse what it signed
)

// SigningKey describes one of the controller's Ed25519 signing keys; the
// private half never leaves the store.
type SigningKey struct {
	ID          string             `json:"kid"`
	Public      protocol.PublicKey `json:"public_key"`
	State       string             `json:"state"`
	CreatedAt   time.Time          `json:"created_at"`
	ActivatedAt time.Time          `json:"activated_at,omitzero"`
	RetiredAt   time.Time          `json:"retired_at,omitzero"`
}

// KeyService keeps the controller's signing keys and rotates them in two
// steps: AnnounceKey, then, once nodes trust the new key, ActivateKey.
type KeyService interface {
	// SigningKeys returns every key, oldest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
	// TrustedKeys returns what nodes should trust now: the current key and
	// an announced next one.
	TrustedKeys(ctx context.Context) ([]protocol.PublicKey, error)
	// AnnounceKey makes a new next key, or EConflict if one is announced.
	AnnounceKey(ctx context.Context) (*SigningKey, error)
	// ActivateKey makes the next key current and retires the current one,
	// or EConflict if no key is announced.
	ActivateKey(ctx context.Context) (*SigningKey, error)
}
