package protocol

import (
	"bytes"
	"encoding/json"
)

// The controller takes tens of thousands of node messages in an alert's
// round, and Parse followed by Envelope.Decode reads each body four times
// (the envelope's scan, its skip as raw JSON, the body decoder's scan, its
// decode) and copies it twice: about half of a message's decoding was the
// first pass. ParseBody decodes envelope and body together, in the one
// decoder that Parse uses, and takes that path only where it accepts and
// refuses exactly what the two passes do (FuzzParseBody compares them):
//
//   - The envelope's unknown fields are refused (Parse's DisallowUnknownFields,
//     which tells a newer envelope from a malformed one), and a newer node's
//     unknown body fields are accepted (Decode ignores them). One decoder
//     cannot do both, so the one pass refuses unknown fields in the body
//     too, and a message that has any is read again by the two passes.
//   - A body key given twice is taken whole from its last copy by the two
//     passes, but merged into one value by a single decode; a body key that
//     is missing or null must be refused as "no body". The one pass is taken
//     only when the message holds the string "body" once, as a key, and no
//     backslash (so no key can spell it with escapes).
//
// Whatever the one pass does not accept, the two passes read from the
// start, so every refusal is theirs, word for word.

// bodyEnvelope is Envelope with its body decoded in place.
// TestBodyEnvelopeIsEnvelope keeps its fields those of Envelope.
type bodyEnvelope struct {
	V       int    `json:"v"`
	Type    Type   `json:"type"`
	From    string `json:"from"`
	KeyID   string `json:"kid,omitempty"`
	To      string `json:"to"`
	Seq     uint64 `json:"seq"`
	Issued  int64  `json:"iat"`
	Expires int64  `json:"exp"`
	Body    any    `json:"body"` // a *T: decoded into what it points to; null sets it nil
	Sig     []byte `json:"sig,omitempty"`
}

// ParseBody parses raw as Parse does and, when it is an envelope of type
// typ, decodes its body into a new T as Envelope.Decode does, in one pass
// over raw. It is for node messages, which receivers decode at once.
//
// body is nil when the one pass does not apply (a message that is refused,
// of another type, with fields this build does not know, or written
// unusually); env and err are then Parse's, and the caller decodes the body
// with env.Decode, as after Parse. When body is not nil, env.Body is nil:
// the body is in body.
func ParseBody[T any](raw []byte, typ Type) (env *Envelope, body *T, err error) {
	if env, body := parseOnePass[T](raw, typ); body != nil {
		return env, body, nil
	}
	env, err = Parse(raw)
	return env, nil, err
}

// parseOnePass decodes raw with its body in one pass, or returns nil body
// where that might not accept or decode what Parse and Decode do.
func parseOnePass[T any](raw []byte, typ Type) (*Envelope, *T) {
	if len(raw) > MaxMessageSize || bytes.IndexByte(raw, '\\') >= 0 || !bodyKeyOnce(raw) {
		return nil, nil
	}
	if trimmed := bytes.TrimLeft(raw, jsonSpace); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil
	}
	body := new(T)
	e := bodyEnvelope{Body: body}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&e) != nil {
		return nil, nil
	}
	if rest := bytes.TrimLeft(raw[dec.InputOffset():], jsonSpace); len(rest) > 0 {
		return nil, nil
	}
	if b, ok := e.Body.(*T); !ok || b != body {
		return nil, nil // "body": null
	}
	env := &Envelope{V: e.V, Type: e.Type, From: e.From, KeyID: e.KeyID, To: e.To, Seq: e.Seq, Issued: e.Issued, Expires: e.Expires, Sig: e.Sig}
	if env.V != Version || env.Type != typ || env.Type == "" || env.From == "" || env.To == "" {
		return nil, nil
	}
	return env, body
}

// bodyKeyOnce reports whether raw, which holds no backslash, holds the
// string "body" (in any case, as Unmarshal matches keys) exactly once, and
// as a key: followed by a colon. Without escapes no other string can match
// the body field, and a quote in raw always opens or closes a string.
func bodyKeyOnce(raw []byte) bool {
	const key = `"body"`
	found := false
	for i := 0; i+len(key) <= len(raw); i++ {
		if raw[i] != '"' || !bytes.EqualFold(raw[i:i+len(key)], []byte(key)) {
			continue
		}
		if found {
			return false
		}
		rest := bytes.TrimLeft(raw[i+len(key):], jsonSpace)
		if len(rest) == 0 || rest[0] != ':' {
			return false
		}
		found = true
		i += len(key) - 1
	}
	return found
}
