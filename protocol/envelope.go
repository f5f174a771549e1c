package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Version is the envelope version this package writes and reads.
const Version = 1

// MaxMessageSize bounds every message on the wire. A week of a busy
// station's desired state is well under 100 KiB.
const MaxMessageSize = 1 << 20

// MaxTTL bounds how long any signed message may stay valid, so that no
// captured message can be replayed forever.
const MaxTTL = 45 * 24 * time.Hour

// DefaultSkew is how far a message's issue time may lie in the receiver's
// future before it is refused as not yet valid.
const DefaultSkew = 2 * time.Minute

// Type is the kind of message inside an envelope.
type Type string

// Message types of the wire contract.
const (
	TypeDesired Type = "desired" // body: DesiredState
	TypeCommand Type = "cmd"     // body: Command
	TypeState   Type = "state"   // body: State
	TypeEvents  Type = "events"  // body: EventBatch
)

// Envelope wraps every message on the wire. Controller messages are signed;
// node messages are not (the broker authenticates nodes and restricts them
// to their own topics).
type Envelope struct {
	V    int    `json:"v"`
	Type Type   `json:"type"`
	From string `json:"from"`
	// KeyID names the signing key: the first 8 bytes of SHA-256 of the
	// public key, in hex. Empty when unsigned.
	KeyID string `json:"kid,omitempty"`
	// To is the audience, "node/{id}" or "area/{id}"; see Topic.Audience.
	To string `json:"to"`
	// Seq increases with every message from one signer; it makes each
	// signed message unique so a receiver can refuse a second copy.
	Seq uint64 `json:"seq"`
	// Issued and Expires are Unix milliseconds.
	Issued  int64           `json:"iat"`
	Expires int64           `json:"exp"`
	Body    json.RawMessage `json:"body"`
	Sig     []byte          `json:"sig,omitempty"`

	// compact: the envelope came in the compact form (compact.go), its
	// body is the binary encoding of the message.
	compact bool
}

// IssuedAt returns Issued as a time.
func (e *Envelope) IssuedAt() time.Time { return time.UnixMilli(e.Issued) }

// ExpiresAt returns Expires as a time.
func (e *Envelope) ExpiresAt() time.Time { return time.UnixMilli(e.Expires) }

// Decode parses a message into v after opening env. It is a convenience for
// the common "open, then decode the body" sequence.
func (e *Envelope) Decode(v any) error {
	if e.compact {
		u, ok := v.(encoding.BinaryUnmarshaler)
		if !ok {
			return fmt.Errorf("%w: %s body is binary (compact envelope) and %T does not read it", ErrMalformed, e.Type, v)
		}
		if err := u.UnmarshalBinary(e.Body); err != nil {
			return fmt.Errorf("%w: %s body: %v", ErrMalformed, e.Type, err)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(e.Body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, e.Type, err)
	}
	return nil
}

// signingBytes is what the signature covers: every envelope field but the
// signature itself, each length-prefixed after a domain-separation tag, so
// no two different envelopes produce the same bytes and a loaxa signature
// can never be mistaken for a signature over anything else.
func (e *Envelope) signingBytes() []byte {
	var b bytes.Buffer
	b.WriteString("loaxa envelope signature v1\x00")
	field := func(p []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		b.Write(n[:])
		b.Write(p)
	}
	num := func(v uint64) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], v)
		b.Write(n[:])
	}
	num(uint64(e.V))
	field([]byte(e.Type))
	field([]byte(e.From))
	field([]byte(e.KeyID))
	field([]byte(e.To))
	num(e.Seq)
	num(uint64(e.Issued))
	num(uint64(e.Expires))
	field(e.Body)
	return b.Bytes()
}

// KeyID returns the key id of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicKey is a trusted controller signing key as written in credentials
// documents and configuration.
type PublicKey struct {
	ID  string `json:"kid"`
	Key string `json:"key"` // base64 (standard, padded) of the 32-byte key
}

// NewPublicKey describes pub.
func NewPublicKey(pub ed25519.PublicKey) PublicKey {
	return PublicKey{ID: KeyID(pub), Key: base64.StdEncoding.EncodeToString(pub)}
}

// Parse decodes the key and checks that its id matches.
func (k PublicKey) Parse() (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(k.Key)
	if err != nil {
		return nil, fmt.Errorf("public key %s: not base64: %w", k.ID, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %s: %d bytes, want %d", k.ID, len(raw), ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(raw)
	if id := KeyID(pub); id != k.ID {
		return nil, fmt.Errorf("public key %s: key id does not match the key (computed %s)", k.ID, id)
	}
	return pub, nil
}

// Signer seals messages from one sender with one Ed25519 key at a time
// (SetKey changes it). It is safe for concurrent use.
type Signer struct {
	from string
	now  func() time.Time

	mu  sync.Mutex
	key ed25519.PrivateKey
	kid string
	seq uint64
	// With Reserve: the numbers up to ceiling are stored as used, and
	// save stores the next block of them before they are.
	save    func(ceiling uint64) error
	block   uint64
	ceiling uint64
}

// NewSigner returns a signer for messages from sender from. Sequence numbers
// start above both floor and the current time in microseconds, so a restarted
// signer keeps counting upwards without persisting every number. The clock
// alone is not enough: a signer restarted on a clock set back (a server
// without an RTC battery booting at the same time again) would sign the
// numbers it signed before, which receivers refuse as replays. Callers that
// can store a floor should Reserve, and pass the stored ceiling back as floor.
func NewSigner(from string, key ed25519.PrivateKey, floor uint64, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	seq := max(floor, uint64(now().UnixMicro()))
	return &Signer{from: from, key: key, kid: KeyID(key.Public().(ed25519.PublicKey)), now: now, seq: seq}
}

// KeyID returns the id of the signing key.
func (s *Signer) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kid
}

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() ed25519.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key.Public().(ed25519.PublicKey)
}

// SetKey makes key the signing key from the next Seal on, after a key
// rotation. The sequence carries on: (key id, sequence) stays unique.
func (s *Signer) SetKey(key ed25519.PrivateKey) {
	kid := KeyID(key.Public().(ed25519.PublicKey))
	s.mu.Lock()
	s.key, s.kid = key, kid
	s.mu.Unlock()
}

// Seq returns the last sequence number used.
func (s *Signer) Seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Reserve makes the signer store how far it has counted before it counts
// there: save must store ceiling durably (a synced write) before it
// returns, and a signer started again must be given the stored ceiling as
// its floor. Reserve stores the first block, the block numbers after the
// last one used, at once; each time the signer reaches the stored ceiling,
// it stores the next block before it signs. So no number is signed twice
// across a crash, whatever the clock did, at the cost of one save every
// block messages and at most block numbers skipped at each restart. A
// message whose block cannot be stored is not signed (Seal's error); the
// next Seal tries again.
func (s *Signer) Reserve(block uint64, save func(ceiling uint64) error) error {
	if block == 0 {
		return fmt.Errorf("reserve sequence numbers of %s: a block of 0", s.from)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.save, s.block = save, block
	return s.reserve()
}

// reserve stores the next block of sequence numbers. Called with s.mu held:
// no number of the block is signed before it is stored.
func (s *Signer) reserve() error {
	ceiling := s.seq + s.block
	if err := s.save(ceiling); err != nil {
		return fmt.Errorf("reserve sequence numbers of %s up to %d: %w", s.from, ceiling, err)
	}
	s.ceiling = ceiling
	return nil
}

// Seal encodes body, wraps it in a signed envelope of type typ for audience
// to, valid for ttl from now, and returns the wire bytes.
func (s *Signer) Seal(typ Type, to string, body any, ttl time.Duration) ([]byte, error) {
	// Times travel in milliseconds: a shorter ttl could give exp == iat,
	// which every receiver refuses.
	if ttl < time.Millisecond || ttl > MaxTTL {
		return nil, fmt.Errorf("seal %s for %s: ttl %v outside [1ms, %v]", typ, to, ttl, MaxTTL)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: encode body: %w", typ, to, err)
	}
	env, err := s.sign(typ, to, raw, ttl, false)
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: %w", typ, to, err)
	}
	out, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("seal %s for %s: %w", typ, to, err)
	}
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("seal %s for %s: %w: %d bytes, limit %d", typ, to, ErrTooLarge, len(out), MaxMessageSize)
	}
	return out, nil
}

// sign builds the envelope of body with the next sequence number, valid
// for ttl from now, and signs it. It fails only when the next block of
// sequence numbers cannot be reserved (see Reserve).
func (s *Signer) sign(typ Type, to string, body []byte, ttl time.Duration, compact bool) (Envelope, error) {
	s.mu.Lock()
	if s.save != nil && s.seq >= s.ceiling {
		if err := s.reserve(); err != nil {
			s.mu.Unlock()
			return Envelope{}, err
		}
	}
	s.seq++
	seq, key, kid := s.seq, s.key, s.kid
	s.mu.Unlock()
	now := s.now()
	env := Envelope{
		V: Version, Type: typ, From: s.from, KeyID: kid, To: to, Seq: seq,
		Issued: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli(), Body: body, compact: compact,
	}
	env.Sig = ed25519.Sign(key, env.signingBytes())
	return env, nil
}

// openSigned parses raw and checks its signature by a known key and its
// audience; not its validity in time.
func (v *Verifier) openSigned(raw []byte, audience string) (*Envelope, error) {
	parse := Parse
	if len(raw) > 0 && raw[0] == compactMagic {
		parse = parseCompact
	}
	env, err := parse(raw)
	if err != nil {
		return nil, err
	}
	if len(env.Sig) == 0 || env.KeyID == "" {
		return nil, fmt.Errorf("%w: %s from %s", ErrUnsigned, env.Type, env.From)
	}
	v.mu.RLock()
	pub, ok := v.keys[env.KeyID]
	v.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, env.KeyID)
	}
	if !ed25519.Verify(pub, env.signingBytes(), env.Sig) {
		return nil, fmt.Errorf("%w: %s seq %d from %s", ErrSignature, env.Type, env.Seq, env.From)
	}
	// Only a verified envelope's fields are worth reporting in detail.
	if env.To != audience {
		return nil, fmt.Errorf("%w: addressed to %q, arrived for %q", ErrAudience, env.To, audience)
	}
	return env, nil
}

// Encode wraps body in an unsigned envelope, as nodes send. seq is the
// sender's own sequence (the event sequence for event batches, 0 otherwise).
func Encode(typ Type, from, to string, seq uint64, now time.Time, body any) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s from %s: %w", typ, from, err)
	}
	env := Envelope{V: Version, Type: typ, From: from, To: to, Seq: seq, Issued: now.UnixMilli(), Body: raw}
	out, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("encode %s from %s: %w", typ, from, err)
	}
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("encode %s from %s: %w: %d bytes, limit %d", typ, from, ErrTooLarge, len(out), MaxMessageSize)
	}
	return out, nil
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// Parse decodes the envelope structure of raw without checking any
// signature: size, JSON shape, version and required fields. Receivers of
// controller messages use Verifier.Open instead.
func Parse(raw []byte) (*Envelope, error) {
	if len(raw) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxMessageSize)
	}
	// Decoding null into a struct would succeed and leave it empty.
	if trimmed := bytes.TrimLeft(raw, jsonSpace); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		// A newer envelope may have fields this build does not know: call
		// it a newer version, not malformed, so that a mixed fleet during
		// an upgrade is reported as such.
		var probe struct {
			V int `json:"v"`
		}
		if json.Unmarshal(raw, &probe) == nil && probe.V > Version {
			return nil, fmt.Errorf("%w: v=%d, this build speaks v=%d", ErrVersion, probe.V, Version)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// dec.More would miss a stray '}' or ']' after the object; anything but
	// JSON whitespace after the envelope is refused.
	if rest := bytes.TrimLeft(raw[dec.InputOffset():], jsonSpace); len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of trailing data after the envelope", ErrMalformed, len(rest))
	}
	if env.V != Version {
		return nil, fmt.Errorf("%w: v=%d, this build speaks v=%d", ErrVersion, env.V, Version)
	}
	if string(env.Body) == "null" {
		// A null body would decode into a zero value without error.
		return nil, fmt.Errorf("%w: no body", ErrMalformed)
	}
	if err := env.checkRequired(); err != nil {
		return nil, err
	}
	return &env, nil
}

// checkRequired refuses an envelope without a type, sender, audience or
// body, whichever form it came in.
func (e *Envelope) checkRequired() error {
	switch {
	case e.Type == "":
		return fmt.Errorf("%w: no type", ErrMalformed)
	case e.From == "":
		return fmt.Errorf("%w: no sender", ErrMalformed)
	case e.To == "":
		return fmt.Errorf("%w: no audience", ErrMalformed)
	case len(e.Body) == 0:
		return fmt.Errorf("%w: no body", ErrMalformed)
	}
	return nil
}

// Verifier opens signed envelopes from trusted keys. It is safe for
// concurrent use.
type Verifier struct {
	now  func() time.Time
	skew time.Duration

	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey
}

// NewVerifier trusts the given keys. now supplies the receiver's best idea of
// the controller's time (nil: time.Now); skew is the tolerated clock
// difference for issue times (0: DefaultSkew).
func NewVerifier(keys []ed25519.PublicKey, now func() time.Time, skew time.Duration) *Verifier {
	if now == nil {
		now = time.Now
	}
	if skew == 0 {
		skew = DefaultSkew
	}
	v := &Verifier{now: now, skew: skew}
	v.SetKeys(keys)
	return v
}

// SetKeys replaces the trusted keys, after the controller announced a new
// key or retired an old one. What only a dropped key signed is refused from
// now on (ErrUnknownKey).
func (v *Verifier) SetKeys(keys []ed25519.PublicKey) {
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		m[KeyID(k)] = k
	}
	v.mu.Lock()
	v.keys = m
	v.mu.Unlock()
}

// KeyIDs returns the ids of the trusted keys, sorted.
func (v *Verifier) KeyIDs() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Open parses raw (JSON or the compact form, compact.go), checks the
// signature against the trusted keys, that the envelope is addressed to
// audience, and that it is valid now. Replay is
// checked separately (ReplayGuard) because what counts as a replay depends
// on the message type: desired states are versioned, commands are not.
func (v *Verifier) Open(raw []byte, audience string) (*Envelope, error) {
	env, err := v.openSigned(raw, audience)
	if err != nil {
		return nil, err
	}
	// The difference is taken unsigned: once Expires > Issued it is exact,
	// where a signed difference of extreme times could wrap negative and
	// pass the MaxTTL bound.
	if env.Expires <= env.Issued || uint64(env.Expires)-uint64(env.Issued) > uint64(MaxTTL.Milliseconds()) {
		return nil, fmt.Errorf("%w: validity from %d to %d ms is not within (0, %v]", ErrMalformed, env.Issued, env.Expires, MaxTTL)
	}
	now := v.now()
	if now.UnixMilli() >= env.Expires {
		return nil, fmt.Errorf("%w: %s seq %d expired %v ago", ErrExpired, env.Type, env.Seq, now.Sub(env.ExpiresAt()).Round(time.Millisecond))
	}
	if env.IssuedAt().After(now.Add(v.skew)) {
		return nil, fmt.Errorf("%w: %s seq %d issued %v in the future", ErrNotYetValid, env.Type, env.Seq, env.IssuedAt().Sub(now).Round(time.Millisecond))
	}
	return env, nil
}
