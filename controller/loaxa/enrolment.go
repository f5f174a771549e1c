package loaxa

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"time"
)

// Enrolment is a one-time code that lets a board fetch its credentials
// document once: a technician creates it with the node (or later), types
// or scans it into the board, and the board exchanges it for its own
// secret. Only a hash of the code is stored.
type Enrolment struct {
	CodeHash  []byte    `json:"-"`
	Node      string    `json:"node"`
	Expires   time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// EnrolmentCodeChars is Crockford's base32 alphabet: no I, L, O or U, so a
// code read aloud or off a label is not misread.
const EnrolmentCodeChars = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// enrolmentCodeLen is 20 characters of 5 bits: 100 bits, far beyond online
// guessing, which the API also rate-limits.
const enrolmentCodeLen = 20

// NewEnrolmentCode returns a fresh code, written in groups of five:
// "7KQ2M-XH9DP-03RTW-VN5CE".
func NewEnrolmentCode() string {
	var b strings.Builder
	raw := make([]byte, enrolmentCodeLen)
	rand.Read(raw)
	for i, c := range raw {
		if i > 0 && i%5 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(EnrolmentCodeChars[c&31])
	}
	return b.String()
}

// NormalizeEnrolmentCode reads a code as people type it: any case, with or
// without dashes and spaces, O for 0 and I or L for 1. It returns the 20
// characters, or EInvalid saying what is wrong.
func NormalizeEnrolmentCode(s string) (string, error) {
	if len(s) > 4*enrolmentCodeLen {
		return "", Errorf(EInvalid, "The enrolment code is %d characters long; it has %d letters and digits, e.g. 7KQ2M-XH9DP-03RTW-VN5CE.", len(s), enrolmentCodeLen)
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(EnrolmentCodeChars, r) {
			return "", Errorf(EInvalid, "The enrolment code has %q, which is not in a code; codes use the digits and the letters %s.", r, EnrolmentCodeChars[10:])
		}
		b.WriteRune(r)
	}
	if b.Len() != enrolmentCodeLen {
		return "", Errorf(EInvalid, "The enrolment code has %d letters and digits, not %d; check it against the label, e.g. 7KQ2M-XH9DP-03RTW-VN5CE.", b.Len(), enrolmentCodeLen)
	}
	return b.String(), nil
}

// HashEnrolmentCode returns the stored form of a normalized code. Codes
// carry 100 random bits, so a fast hash is enough.
func HashEnrolmentCode(code string) []byte {
	sum := sha256.Sum256([]byte("loaxa enrolment " + code))
	return sum[:]
}
