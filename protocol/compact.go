package protocol

import (
	"crypto/ed25519"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The compact form of an envelope carries the same fields and the same
// signature as the JSON form, in binary: what matters for the one kind of
// message sent 25 times a second to every node of an area, a live call's
// audio frame, whose JSON form (body and signature in base64, field names)
// doubled its size. The signature covers Envelope.signingBytes, the same
// bytes whichever form carries the envelope; the body is the message's own
// binary encoding (encoding.BinaryMarshaler), and Decode hands it to the
// body's UnmarshalBinary. Only signed controller messages travel compact,
// and only Verifier.Open reads them: Parse, the path of node messages,
// stays JSON.
//
// Layout (uvarint: encoding/binary's unsigned varint; str: uvarint length,
// then the bytes):
//
//	0xB1 | v uvarint | type str | from str | key id (8 bytes) | to str |
//	seq uvarint | issued uvarint (Unix ms) | ttl uvarint (ms) | body str |
//	signature (the last 64 bytes)
//
// A JSON envelope starts with '{' (or white space), so the first byte tells
// the forms apart.

// compactMagic starts a compact envelope.
const compactMagic = 0xB1

// maxCompactName bounds the type, sender and audience of a compact
// envelope; the JSON form has no such fields longer than this either.
const maxCompactName = 255

// keyIDBytes is the length of a key id in the compact form: KeyID's 16 hex
// digits as bytes.
const keyIDBytes = 8

// Compact reports whether the envelope came in the compact form, whose
// body is binary.
func (e *Envelope) Compact() bool { return e.compact }

// SealCompact is Seal in the compact form: body is encoded with its
// MarshalBinary.
func (s *Signer) SealCompact(typ Type, to string, body encoding.BinaryMarshaler, ttl time.Duration) ([]byte, error) {
	if ttl < time.Millisecond || ttl > MaxTTL {
		return nil, fmt.Errorf("seal %s for %s: ttl %v outside [1ms, %v]", typ, to, ttl, MaxTTL)
	}
	raw, err := body.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: encode body: %w", typ, to, err)
	}
	env, err := s.sign(typ, to, raw, ttl, true)
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: %w", typ, to, err)
	}
	out, err := env.MarshalCompact()
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: %w", typ, to, err)
	}
	return out, nil
}

// MarshalCompact returns the compact form of a signed envelope.
func (e *Envelope) MarshalCompact() ([]byte, error) {
	kid, err := hex.DecodeString(e.KeyID)
	switch {
	case err != nil || len(kid) != keyIDBytes:
		return nil, fmt.Errorf("compact envelope: key id %q is not %d bytes in hex", e.KeyID, keyIDBytes)
	case len(e.Sig) != ed25519.SignatureSize:
		return nil, fmt.Errorf("compact envelope: %w: a compact envelope is always signed", ErrUnsigned)
	case len(e.Type) > maxCompactName || len(e.From) > maxCompactName || len(e.To) > maxCompactName:
		return nil, fmt.Errorf("compact envelope: type, sender or audience longer than %d bytes", maxCompactName)
	case e.V < 0 || e.Issued < 0 || e.Expires < e.Issued:
		return nil, fmt.Errorf("compact envelope: version %d, validity %d to %d ms: out of range", e.V, e.Issued, e.Expires)
	}
	b := make([]byte, 0, 64+len(e.Type)+len(e.From)+len(e.To)+len(e.Body)+ed25519.SignatureSize)
	b = append(b, compactMagic)
	b = binary.AppendUvarint(b, uint64(e.V))
	b = appendStr(b, string(e.Type))
	b = appendStr(b, e.From)
	b = append(b, kid...)
	b = appendStr(b, e.To)
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendUvarint(b, uint64(e.Issued))
	b = binary.AppendUvarint(b, uint64(e.Expires-e.Issued))
	b = appendStr(b, string(e.Body))
	b = append(b, e.Sig...)
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	return b, nil
}

// parseCompact decodes the structure of a compact envelope without
// checking its signature (Verifier.Open does).
func parseCompact(raw []byte) (*Envelope, error) {
	if len(raw) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxMessageSize)
	}
	if len(raw) < 1+ed25519.SignatureSize || raw[0] != compactMagic {
		return nil, fmt.Errorf("%w: not a compact envelope", ErrMalformed)
	}
	env := Envelope{compact: true, Sig: raw[len(raw)-ed25519.SignatureSize:]}
	r := reader{b: raw[1 : len(raw)-ed25519.SignatureSize]}
	v := r.uvarint()
	if r.err == nil && v != Version {
		return nil, fmt.Errorf("%w: v=%d, this build speaks v=%d", ErrVersion, v, Version)
	}
	env.V = int(v)
	env.Type = Type(r.str(maxCompactName))
	env.From = r.str(maxCompactName)
	env.KeyID = hex.EncodeToString(r.bytes(keyIDBytes))
	env.To = r.str(maxCompactName)
	env.Seq = r.uvarint()
	issued, ttl := r.uvarint(), r.uvarint()
	env.Body = []byte(r.str(MaxMessageSize))
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes between the body and the signature", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: compact envelope: %v", ErrMalformed, r.err)
	}
	// Issued and the validity are bounded before they become int64s: an
	// issue time past year 2^63 ms or a ttl beyond MaxTTL is refused here.
	if issued > 1<<62 || ttl == 0 || ttl > uint64(MaxTTL.Milliseconds()) {
		return nil, fmt.Errorf("%w: validity of %d ms from %d ms is not within (0, %v]", ErrMalformed, ttl, issued, MaxTTL)
	}
	env.Issued, env.Expires = int64(issued), int64(issued+ttl)
	env.Sig = append([]byte(nil), env.Sig...) // not aliasing the caller's buffer
	if err := env.checkRequired(); err != nil {
		return nil, err
	}
	return &env, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader reads the fields of a binary encoding; the first error sticks and
// later reads return zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated or overlong number")
		return 0
	}
	if n > 1 && r.b[n-1] == 0 {
		// A longer spelling of a smaller number: one message, one
		// encoding.
		r.err = errors.New("number not in its shortest form")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%d bytes left where %d are needed", len(r.b), n)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) str(limit int) string {
	n := r.uvarint()
	if r.err == nil && n > uint64(limit) {
		r.err = fmt.Errorf("a field of %d bytes, limit %d", n, limit)
	}
	return string(r.bytes(int(n)))
}
