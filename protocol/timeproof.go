package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Signed time answers. A node judges every message's validity on its
// clock corrected by the controller's (GET /api/v1/time). Unsigned, that
// answer is the weak point: whoever answers it on the way (a network
// attacker, over plain HTTP) could set the node's clock back and have
// messages that expired long ago accepted. So the node sends a nonce and
// the controller answers with a proof: an envelope of type TypeTime for
// TimeAudience, signed with its key, whose body (TimeProof) carries the
// nonce and the time. The nonce, not the envelope's validity, makes it
// fresh: its validity cannot be judged on the clock it is there to set.

// TypeTime is the envelope type of a time proof.
const TypeTime Type = "time" // body: TimeProof

// TimeAudience is the audience of a time proof: any node asking.
const TimeAudience = "time"

// TimeProofTTL is the validity a time proof is sealed with (not checked by
// nodes: the nonce makes it fresh).
const TimeProofTTL = 10 * time.Second

// TimeProof is the body of a time proof.
type TimeProof struct {
	Nonce string    `json:"nonce"`
	Time  time.Time `json:"time"`
}

// NonceLen bounds a time request's nonce: 16 to 64 characters of
// [0-9a-zA-Z_-].
const (
	MinNonceLen = 16
	MaxNonceLen = 64
)

// ValidNonce reports whether s is acceptable as a time request's nonce.
func ValidNonce(s string) bool {
	if len(s) < MinNonceLen || len(s) > MaxNonceLen {
		return false
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// OpenTimeProof checks a time proof for nonce: signed by a known key, of
// TypeTime for TimeAudience, carrying nonce. It returns the proven time.
// Its validity in time is not judged (see above).
func (v *Verifier) OpenTimeProof(raw []byte, nonce string) (time.Time, error) {
	env, err := v.openSigned(raw, TimeAudience)
	if err != nil {
		return time.Time{}, fmt.Errorf("time proof: %w", err)
	}
	if env.Type != TypeTime {
		return time.Time{}, fmt.Errorf("time proof: %w: a %s envelope", ErrMalformed, env.Type)
	}
	var p TimeProof
	if err := json.Unmarshal(env.Body, &p); err != nil {
		return time.Time{}, fmt.Errorf("time proof: %w: %v", ErrMalformed, err)
	}
	if p.Nonce != nonce {
		return time.Time{}, fmt.Errorf("time proof: %w: for another request", ErrReplay)
	}
	if p.Time.IsZero() {
		return time.Time{}, fmt.Errorf("time proof: %w: no time", ErrMalformed)
	}
	return p.Time, nil
}
