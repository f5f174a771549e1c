package bolt

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// keyRing is the key under which the bucket keys holds every signing key.
var keyRing = []byte("ring")

// KeyService keeps the controller's signing keys (loaxa.KeyService). The
// current private key is also kept under "signing" (DB.SigningKey), where
// stores from before key rotation have it; the ring starts from it.
type KeyService struct {
	db *DB
	// Changed, if set, is called after a key was announced or activated,
	// with the key that signs from now on.
	Changed func(current ed25519.PrivateKey)
}

var _ loaxa.KeyService = (*KeyService)(nil)

// NewKeyService returns a KeyService on db.
func NewKeyService(db *DB) *KeyService {
	return &KeyService{db: db}
}

// ringKey is a key as stored: its description and its private half.
type ringKey struct {
	loaxa.SigningKey
	Private []byte `json:"private"`
}

// ring reads the key ring, creating it from the signing key if missing.
func (s *KeyService) ring(tx *bbolt.Tx) ([]*ringKey, error) {
	var ring []*ringKey
	ok, err := getJSON(tx.Bucket(bucketKeys), keyRing, &ring)
	if err != nil || ok {
		return ring, err
	}
	priv, err := signingKey(tx, s.db)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	now := s.db.now()
	ring = []*ringKey{{SigningKey: loaxa.SigningKey{ID: protocol.KeyID(pub), Public: protocol.NewPublicKey(pub),
		State: loaxa.KeyCurrent, CreatedAt: now, ActivatedAt: now}, Private: priv}}
	return ring, putJSON(tx.Bucket(bucketKeys), keyRing, ring)
}

// CurrentKey returns the key that signs now.
func (s *KeyService) CurrentKey() (ed25519.PrivateKey, error) {
	var key ed25519.PrivateKey
	err := s.db.update(func(tx *bbolt.Tx) error {
		ring, err := s.ring(tx)
		if err != nil {
			return err
		}
		for _, k := range ring {
			if k.State == loaxa.KeyCurrent {
				key = ed25519.PrivateKey(k.Private)
			}
		}
		if len(key) != ed25519.PrivateKeySize {
			return fmt.Errorf("key ring has no current key")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("current signing key: %w", err)
	}
	return key, nil
}

// SigningKeys returns every key, oldest first, without private halves.
func (s *KeyService) SigningKeys(ctx context.Context) ([]*loaxa.SigningKey, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.SigningKey
	err := s.db.update(func(tx *bbolt.Tx) error {
		ring, err := s.ring(tx)
		for _, k := range ring {
			sk := k.SigningKey
			out = append(out, &sk)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return out, nil
}

// TrustedKeys returns the current key and an announced next one.
func (s *KeyService) TrustedKeys(ctx context.Context) ([]protocol.PublicKey, error) {
	keys, err := s.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []protocol.PublicKey
	for _, k := range keys {
		if k.State == loaxa.KeyCurrent || k.State == loaxa.KeyNext {
			out = append(out, k.Public)
		}
	}
	return out, nil
}

// AnnounceKey generates the next key, or EConflict if one is announced.
func (s *KeyService) AnnounceKey(ctx context.Context) (*loaxa.SigningKey, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var (
		out     loaxa.SigningKey
		current ed25519.PrivateKey
	)
	err := s.db.update(func(tx *bbolt.Tx) error {
		ring, err := s.ring(tx)
		if err != nil {
			return err
		}
		for _, k := range ring {
			switch k.State {
			case loaxa.KeyNext:
				return loaxa.Errorf(loaxa.EConflict, "Key %s is announced already; activate it (POST /api/v1/keys/activate) before announcing another.", k.ID)
			case loaxa.KeyCurrent:
				current = ed25519.PrivateKey(k.Private)
			}
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("generate key: %w", err)
		}
		next := &ringKey{SigningKey: loaxa.SigningKey{ID: protocol.KeyID(pub), Public: protocol.NewPublicKey(pub),
			State: loaxa.KeyNext, CreatedAt: s.db.now()}, Private: priv}
		out = next.SigningKey
		return putJSON(tx.Bucket(bucketKeys), keyRing, append(ring, next))
	})
	if err != nil {
		return nil, fmt.Errorf("announce key: %w", err)
	}
	s.db.Logger.Info("announced a new controller signing key", "kid", out.ID)
	if s.Changed != nil {
		s.Changed(current)
	}
	return &out, nil
}

// ActivateKey makes the next key current and retires the current one, or
// EConflict if no key is announced.
func (s *KeyService) ActivateKey(ctx context.Context) (*loaxa.SigningKey, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var (
		out     loaxa.SigningKey
		current ed25519.PrivateKey
	)
	err := s.db.update(func(tx *bbolt.Tx) error {
		ring, err := s.ring(tx)
		if err != nil {
			return err
		}
		now := s.db.now()
		var next *ringKey
		for _, k := range ring {
			if k.State == loaxa.KeyNext {
				next = k
			}
		}
		if next == nil {
			return loaxa.Errorf(loaxa.EConflict, "No key is announced; announce one with POST /api/v1/keys and wait until the nodes trust it.")
		}
		for _, k := range ring {
			if k.State == loaxa.KeyCurrent {
				k.State, k.RetiredAt = loaxa.KeyRetired, now
				// A retired key signs nothing again: forget its secret.
				k.Private = nil
			}
		}
		next.State, next.ActivatedAt = loaxa.KeyCurrent, now
		current, out = ed25519.PrivateKey(next.Private), next.SigningKey
		if err := tx.Bucket(bucketKeys).Put(keySigning, next.Private); err != nil {
			return fmt.Errorf("store signing key: %w", err)
		}
		return putJSON(tx.Bucket(bucketKeys), keyRing, ring)
	})
	if err != nil {
		return nil, fmt.Errorf("activate key: %w", err)
	}
	s.db.Logger.Info("controller signing key activated", "kid", out.ID)
	if s.Changed != nil {
		s.Changed(current)
	}
	return &out, nil
}
