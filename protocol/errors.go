package protocol

import "errors"

// Errors returned when opening an envelope. Each names one reason a message
// is refused; callers match them with errors.Is and count them per reason.
// The returned error wraps the sentinel with detail for the log.
var (
	// ErrTooLarge: the raw message exceeds MaxMessageSize.
	ErrTooLarge = errors.New("message too large")
	// ErrMalformed: not a JSON envelope, or a field is missing or invalid.
	ErrMalformed = errors.New("malformed message")
	// ErrVersion: the envelope version is not one this code speaks.
	ErrVersion = errors.New("unsupported protocol version")
	// ErrUnsigned: a message that must be signed carries no signature.
	ErrUnsigned = errors.New("message not signed")
	// ErrUnknownKey: signed with a key id the receiver does not trust.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrExpired: the message's expiry has passed.
	ErrExpired = errors.New("message expired")
	// ErrNotYetValid: issued further in the future than the allowed clock skew.
	ErrNotYetValid = errors.New("message not yet valid")
	// ErrAudience: the message is addressed to another node or area than
	// the topic it arrived on.
	ErrAudience = errors.New("message for another audience")
	// ErrReplay: a message with this signer and sequence was already accepted.
	ErrReplay = errors.New("replayed message")
)

// Reason returns a short stable label for a refusal error, for logs and
// metrics: "too_large", "malformed", … or "other".
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

var reasons = []struct {
	err   error
	label string
}{
	{ErrTooLarge, "too_large"},
	{ErrMalformed, "malformed"},
	{ErrVersion, "version"},
	{ErrUnsigned, "unsigned"},
	{ErrUnknownKey, "unknown_key"},
	{ErrSignature, "bad_signature"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrAudience, "wrong_audience"},
	{ErrReplay, "replay"},
}
