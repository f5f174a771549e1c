package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

const nodeTo = "node/" + prototest.Node

// sealAck seals the catalogue's ack command at prototest.Now.
func sealAck(t testing.TB, ttl time.Duration) []byte {
	t.Helper()
	raw, err := prototest.Signer(prototest.Now).Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// wantRefusal fails unless err wraps want and is labelled like it.
func wantRefusal(t *testing.T, what string, env *protocol.Envelope, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
		return
	}
	if got := protocol.Reason(err); got != protocol.Reason(want) || got == "other" {
		t.Errorf("%s: Reason = %q, want %q", what, got, protocol.Reason(want))
	}
	if env != nil {
		t.Errorf("%s: an envelope came back with the error", what)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	now := prototest.Now()
	s := prototest.Signer(prototest.Now)
	v := prototest.Verifier(prototest.Now)
	tests := []struct {
		typ  protocol.Type
		to   string
		body any
		ttl  time.Duration
	}{
		{protocol.TypeCommand, nodeTo, prototest.Ack(), 10 * time.Minute},
		{protocol.TypeCommand, "area/31", protocol.Command{Name: "stop"}, time.Millisecond},
		{protocol.TypeDesired, nodeTo, prototest.Desired(), protocol.MaxTTL},
	}
	for i, tt := range tests {
		raw, err := s.Seal(tt.typ, tt.to, tt.body, tt.ttl)
		if err != nil {
			t.Fatal(err)
		}
		env, err := v.Open(raw, tt.to)
		if err != nil {
			t.Fatalf("Open(%s for %s) = %v", tt.typ, tt.to, err)
		}
		want := protocol.Envelope{
			V: protocol.Version, Type: tt.typ, From: prototest.Controller, KeyID: s.KeyID(), To: tt.to,
			Seq: uint64(now.UnixMicro()) + uint64(i) + 1, Issued: now.UnixMilli(), Expires: now.Add(tt.ttl).UnixMilli(),
		}
		got := *env
		got.Body, got.Sig = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("envelope = %+v\nwant       %+v", got, want)
		}
		if !env.IssuedAt().Equal(now) || !env.ExpiresAt().Equal(now.Add(tt.ttl)) {
			t.Errorf("IssuedAt %v, ExpiresAt %v", env.IssuedAt(), env.ExpiresAt())
		}
		decoded := reflect.New(reflect.TypeOf(tt.body))
		if err := env.Decode(decoded.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(decoded.Elem().Interface(), tt.body) {
			t.Errorf("body = %+v, want %+v", decoded.Elem().Interface(), tt.body)
		}
	}
	if got, want := s.Seq(), uint64(now.UnixMicro())+uint64(len(tests)); got != want {
		t.Errorf("Seq() = %d, want %d", got, want)
	}
	if !s.PublicKey().Equal(prototest.PublicKey()) || s.KeyID() != protocol.KeyID(prototest.PublicKey()) {
		t.Error("signer reports another key")
	}
}

func TestSealRefuses(t *testing.T) {
	s := prototest.Signer(prototest.Now)
	for _, ttl := range []time.Duration{0, -time.Minute, time.Millisecond - 1, protocol.MaxTTL + time.Millisecond} {
		if _, err := s.Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), ttl); err == nil || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("Seal with ttl %v: err = %v, want a ttl error", ttl, err)
		}
	}
	if _, err := s.Seal(protocol.TypeCommand, nodeTo, make(chan int), time.Minute); err == nil {
		t.Error("Seal encoded a channel")
	}
	big := strings.Repeat("a", protocol.MaxMessageSize)
	if _, err := s.Seal(protocol.TypeCommand, nodeTo, big, time.Minute); !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("Seal of a huge body: err = %v, want ErrTooLarge", err)
	}
}

// TestSealMillisecondTTL is the shortest ttl Seal takes, at the worst
// sub-millisecond instant: it must still give exp > iat.
func TestSealMillisecondTTL(t *testing.T) {
	at := prototest.Now().Add(time.Millisecond - time.Nanosecond)
	raw, err := prototest.Signer(prototest.At(at)).Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prototest.Verifier(prototest.At(at)).Open(raw, nodeTo); err != nil {
		t.Errorf("Open = %v", err)
	}
}

func TestEncodeParse(t *testing.T) {
	now := prototest.Now()
	raw, err := protocol.Encode(protocol.TypeEvents, prototest.Node, prototest.Controller, 41, now, prototest.Events())
	if err != nil {
		t.Fatal(err)
	}
	env, err := protocol.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != protocol.TypeEvents || env.From != prototest.Node || env.To != prototest.Controller ||
		env.Seq != 41 || env.Issued != now.UnixMilli() || env.Expires != 0 || env.KeyID != "" || env.Sig != nil {
		t.Errorf("envelope = %+v", env)
	}
	var b protocol.EventBatch
	if err := env.Decode(&b); err != nil || !reflect.DeepEqual(b, prototest.Events()) {
		t.Errorf("Decode = %+v, %v", b, err)
	}
	// A node's message must not pass for a controller's.
	_, err = prototest.Verifier(prototest.Now).Open(raw, prototest.Controller)
	wantRefusal(t, "Open of an unsigned node message", nil, err, protocol.ErrUnsigned)

	if _, err := protocol.Encode(protocol.TypeState, "n", "c", 0, now, make(chan int)); err == nil {
		t.Error("Encode encoded a channel")
	}
	if _, err := protocol.Encode(protocol.TypeState, "n", "c", 0, now, strings.Repeat("a", protocol.MaxMessageSize)); !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("Encode of a huge body: err = %v, want ErrTooLarge", err)
	}
}

func TestDecodeRefusesWrongBody(t *testing.T) {
	env := &protocol.Envelope{Type: protocol.TypeCommand, Body: json.RawMessage(`"ack"`)}
	var c protocol.Command
	err := env.Decode(&c)
	wantRefusal(t, "Decode of a string into a Command", nil, err, protocol.ErrMalformed)
	if err != nil && !strings.Contains(err.Error(), "cmd body") {
		t.Errorf("err = %v, want it to name the message type", err)
	}
}

// TestOpenTruncated opens every prefix of a valid message: a message cut
// short by the network must be refused as malformed, never panic or pass.
func TestOpenTruncated(t *testing.T) {
	raw := sealAck(t, time.Minute)
	v := prototest.Verifier(prototest.Now)
	for n := range len(raw) {
		env, err := v.Open(raw[:n], nodeTo)
		wantRefusal(t, fmt.Sprintf("prefix %q", raw[:n]), env, err, protocol.ErrMalformed)
	}
}

func TestOpenTrailingData(t *testing.T) {
	raw := sealAck(t, time.Minute)
	v := prototest.Verifier(prototest.Now)
	for _, tail := range []string{" ", "\n", "\r\n\t "} {
		if _, err := v.Open(append(bytes.Clone(raw), tail...), nodeTo); err != nil {
			t.Errorf("trailing whitespace %q: %v", tail, err)
		}
	}
	for _, tail := range []string{"x", "}", "]", " }", "{}", "null", "0", string(raw), "\x00"} {
		env, err := v.Open(append(bytes.Clone(raw), tail...), nodeTo)
		wantRefusal(t, "trailing "+tail, env, err, protocol.ErrMalformed)
	}
}

func TestOpenSizeLimit(t *testing.T) {
	raw := sealAck(t, time.Minute)
	v := prototest.Verifier(prototest.Now)
	// Padding with whitespace keeps the message valid, so only its size
	// decides.
	pad := func(n int) []byte { return append(bytes.Clone(raw), bytes.Repeat([]byte(" "), n-len(raw))...) }
	if _, err := v.Open(pad(protocol.MaxMessageSize), nodeTo); err != nil {
		t.Errorf("a message of exactly MaxMessageSize: %v", err)
	}
	env, err := v.Open(pad(protocol.MaxMessageSize+1), nodeTo)
	wantRefusal(t, "MaxMessageSize+1 bytes", env, err, protocol.ErrTooLarge)
	_, err = protocol.Parse(pad(protocol.MaxMessageSize + 1))
	wantRefusal(t, "Parse of MaxMessageSize+1 bytes", nil, err, protocol.ErrTooLarge)
}

// TestOpenTampered changes one bit of one field of a signed message at a
// time, re-encodes it, and expects the signature (or, for the key id, the
// key lookup) to catch it. The signature is checked before the audience and
// the times, so a changed "to" or "exp" is a bad signature, not a wrong
// audience or an expiry.
func TestOpenTampered(t *testing.T) {
	raw := sealAck(t, time.Minute)
	other := protocol.NewSigner(prototest.Controller, prototest.UntrustedKey(), 0, prototest.Now)
	// Trusting a second key turns a swapped key id into a signature failure.
	v := protocol.NewVerifier([]ed25519.PublicKey{prototest.PublicKey(), other.PublicKey()}, prototest.Now, 0)
	flipLast := func(s string) string { b := []byte(s); b[len(b)-1] ^= 1; return string(b) }
	tests := []struct {
		field  string
		change func(e *protocol.Envelope)
		want   error
	}{
		{"body", func(e *protocol.Envelope) {
			i := bytes.LastIndexAny(e.Body, "0123456789")
			e.Body = bytes.Clone(e.Body)
			e.Body[i] ^= 1
		}, protocol.ErrSignature},
		{"seq", func(e *protocol.Envelope) { e.Seq ^= 1 }, protocol.ErrSignature},
		{"to", func(e *protocol.Envelope) { e.To = flipLast(e.To) }, protocol.ErrSignature},
		{"exp", func(e *protocol.Envelope) { e.Expires ^= 1 }, protocol.ErrSignature},
		{"iat", func(e *protocol.Envelope) { e.Issued ^= 1 }, protocol.ErrSignature},
		{"type", func(e *protocol.Envelope) { e.Type = protocol.Type(flipLast(string(e.Type))) }, protocol.ErrSignature},
		{"from", func(e *protocol.Envelope) { e.From = flipLast(e.From) }, protocol.ErrSignature},
		{"kid", func(e *protocol.Envelope) { e.KeyID = flipLast(e.KeyID) }, protocol.ErrUnknownKey},
		{"kid swapped to another trusted key", func(e *protocol.Envelope) { e.KeyID = other.KeyID() }, protocol.ErrSignature},
		{"sig", func(e *protocol.Envelope) { e.Sig = bytes.Clone(e.Sig); e.Sig[0] ^= 1 }, protocol.ErrSignature},
		{"sig truncated", func(e *protocol.Envelope) { e.Sig = e.Sig[:63] }, protocol.ErrSignature},
		{"sig dropped", func(e *protocol.Envelope) { e.Sig = nil }, protocol.ErrUnsigned},
		{"kid dropped", func(e *protocol.Envelope) { e.KeyID = "" }, protocol.ErrUnsigned},
		{"v", func(e *protocol.Envelope) { e.V ^= 1 }, protocol.ErrVersion},
	}
	for _, tt := range tests {
		env := prototest.Unmarshal(raw)
		tt.change(&env)
		got, err := v.Open(prototest.Marshal(env), nodeTo)
		wantRefusal(t, tt.field, got, err, tt.want)
	}
	// Every bit of the signature matters.
	for i := range 64 * 8 {
		env := prototest.Unmarshal(raw)
		env.Sig[i/8] ^= 1 << (i % 8)
		got, err := v.Open(prototest.Marshal(env), nodeTo)
		if !errors.Is(err, protocol.ErrSignature) || got != nil {
			t.Fatalf("signature bit %d flipped: %v", i, err)
		}
	}
}

// TestOpenWireBitFlips flips every bit of the wire bytes. JSON and base64
// have equivalent spellings (field names match case-insensitively, base64
// ignores the spare bits of its last character), so a flip may leave the
// very same signed envelope; anything else must be refused with a reason.
func TestOpenWireBitFlips(t *testing.T) {
	raw := sealAck(t, time.Minute)
	v := prototest.Verifier(prototest.Now)
	want, err := v.Open(raw, nodeTo)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := range len(raw) * 8 {
		flipped := bytes.Clone(raw)
		flipped[i/8] ^= 1 << (i % 8)
		env, err := v.Open(flipped, nodeTo)
		if err != nil {
			if protocol.Reason(err) == "other" || env != nil {
				t.Fatalf("bit %d: %q: %v", i, flipped, err)
			}
			continue
		}
		accepted++
		if !reflect.DeepEqual(env, want) {
			t.Fatalf("bit %d: %q accepted as a different envelope %+v", i, flipped, env)
		}
	}
	t.Logf("%d of %d flips were another spelling of the same envelope", accepted, len(raw)*8)
}

func TestOpenFieldChecks(t *testing.T) {
	v := prototest.Verifier(prototest.Now)
	good := sealAck(t, time.Minute)
	resigned := func(change func(e *protocol.Envelope)) []byte {
		env := prototest.Unmarshal(good)
		change(&env)
		return prototest.Reseal(env, prototest.Key())
	}
	unknownField := bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":1,"prio":"emergency",`), 1)
	tests := []struct {
		name     string
		raw      []byte
		audience string
		want     error
	}{
		{"empty", nil, nodeTo, protocol.ErrMalformed},
		{"not JSON", []byte("ack 43"), nodeTo, protocol.ErrMalformed},
		{"JSON string", []byte(`"ack"`), nodeTo, protocol.ErrMalformed},
		{"unknown envelope field", unknownField, nodeTo, protocol.ErrMalformed},
		{"unknown field of a newer version", bytes.Replace(unknownField, []byte(`"v":1`), []byte(`"v":2`), 1), nodeTo, protocol.ErrVersion},
		{"JSON null", []byte(" null"), nodeTo, protocol.ErrMalformed},
		{"empty object", []byte("{}"), nodeTo, protocol.ErrVersion},
		{"version 2", resigned(func(e *protocol.Envelope) { e.V = 2 }), nodeTo, protocol.ErrVersion},
		{"version missing", resigned(func(e *protocol.Envelope) { e.V = 0 }), nodeTo, protocol.ErrVersion},
		{"no type", resigned(func(e *protocol.Envelope) { e.Type = "" }), nodeTo, protocol.ErrMalformed},
		{"no from", resigned(func(e *protocol.Envelope) { e.From = "" }), nodeTo, protocol.ErrMalformed},
		{"no to", resigned(func(e *protocol.Envelope) { e.To = "" }), "", protocol.ErrMalformed},
		{"null body", resigned(func(e *protocol.Envelope) { e.Body = json.RawMessage("null") }), nodeTo, protocol.ErrMalformed},
		{"unsigned", prototest.ByName("refused/unsigned").Raw, nodeTo, protocol.ErrUnsigned},
		{"unknown kid", prototest.ByName("refused/unknown-key").Raw, nodeTo, protocol.ErrUnknownKey},
		{"wrong audience", good, "node/" + prototest.OtherNode, protocol.ErrAudience},
		{"area audience", good, "area/" + prototest.Area, protocol.ErrAudience},
		{"no audience", good, "", protocol.ErrAudience},
		{"exp == iat", resigned(func(e *protocol.Envelope) { e.Expires = e.Issued }), nodeTo, protocol.ErrMalformed},
		{"exp < iat", resigned(func(e *protocol.Envelope) { e.Expires = e.Issued - 1 }), nodeTo, protocol.ErrMalformed},
		{"validity MaxTTL+1ms", resigned(func(e *protocol.Envelope) { e.Expires = e.Issued + protocol.MaxTTL.Milliseconds() + 1 }), nodeTo, protocol.ErrMalformed},
		// A signed difference of these wraps negative; it must not pass
		// for a short validity.
		{"validity wraps int64", resigned(func(e *protocol.Envelope) { e.Issued, e.Expires = math.MinInt64+1, math.MaxInt64 }), nodeTo, protocol.ErrMalformed},
		{"validity wraps int64 near now", resigned(func(e *protocol.Envelope) { e.Issued = -(1 << 62); e.Expires = 1 << 62 }), nodeTo, protocol.ErrMalformed},
	}
	for _, tt := range tests {
		env, err := v.Open(tt.raw, tt.audience)
		wantRefusal(t, tt.name, env, err, tt.want)
	}
	// Exactly MaxTTL is allowed.
	maxTTL := resigned(func(e *protocol.Envelope) { e.Expires = e.Issued + protocol.MaxTTL.Milliseconds() })
	if _, err := v.Open(maxTTL, nodeTo); err != nil {
		t.Errorf("validity of exactly MaxTTL: %v", err)
	}
}

// TestOpenTimes opens a message issued at t0, valid for ten minutes, on
// receiver clocks around its edges.
func TestOpenTimes(t *testing.T) {
	t0 := prototest.Now()
	const ttl = 10 * time.Minute
	raw := sealAck(t, ttl)
	tests := []struct {
		name string
		now  time.Time
		skew time.Duration
		want error
	}{
		{"at issue", t0, 0, nil},
		{"last millisecond", t0.Add(ttl - time.Millisecond), 0, nil},
		{"last nanosecond", t0.Add(ttl - time.Nanosecond), 0, nil},
		{"at expiry", t0.Add(ttl), 0, protocol.ErrExpired},
		{"an hour late", t0.Add(ttl + time.Hour), 0, protocol.ErrExpired},
		{"issued DefaultSkew ahead", t0.Add(-protocol.DefaultSkew), 0, nil},
		{"issued beyond DefaultSkew", t0.Add(-protocol.DefaultSkew - time.Millisecond), 0, protocol.ErrNotYetValid},
		{"issued a day ahead", t0.Add(-24 * time.Hour), 0, protocol.ErrNotYetValid},
		{"within a 5s skew", t0.Add(-5 * time.Second), 5 * time.Second, nil},
		{"beyond a 5s skew", t0.Add(-5*time.Second - time.Millisecond), 5 * time.Second, protocol.ErrNotYetValid},
	}
	for _, tt := range tests {
		v := protocol.NewVerifier([]ed25519.PublicKey{prototest.PublicKey()}, prototest.At(tt.now), tt.skew)
		env, err := v.Open(raw, nodeTo)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		wantRefusal(t, tt.name, env, err, tt.want)
	}
}

func TestNewSignerFloor(t *testing.T) {
	now := prototest.Now()
	micros := uint64(now.UnixMicro())
	tests := []struct {
		name    string
		floor   uint64
		wantSeq uint64 // of the first message
	}{
		{"no floor", 0, micros + 1},
		{"floor below now", micros - 1000, micros + 1},
		{"floor above now", micros + 1e9, micros + 1e9 + 1},
	}
	for _, tt := range tests {
		s := protocol.NewSigner(prototest.Controller, prototest.Key(), tt.floor, prototest.Now)
		raw, err := s.Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		env, err := protocol.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if env.Seq != tt.wantSeq || s.Seq() != tt.wantSeq {
			t.Errorf("%s: first seq %d, Seq() %d, want %d", tt.name, env.Seq, s.Seq(), tt.wantSeq)
		}
	}
}

// TestNewSignerRealClock covers the nil clock: the signer falls back to the
// system time, and what it seals opens on the system time too.
func TestNewSignerRealClock(t *testing.T) {
	s := protocol.NewSigner(prototest.Controller, prototest.Key(), 0, nil)
	raw, err := s.Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{prototest.PublicKey()}, nil, 0)
	if _, err := v.Open(raw, nodeTo); err != nil {
		t.Errorf("Open = %v", err)
	}
}

// TestSealConcurrentSeq seals from many goroutines at once (run with -race):
// every number is used once, each goroutine sees its own numbers grow, and
// together they fill the range without a gap.
func TestSealConcurrentSeq(t *testing.T) {
	const workers, each = 8, 100
	s := prototest.Signer(prototest.Now)
	start := s.Seq()
	seqs := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				raw, err := s.Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				env, err := protocol.Parse(raw)
				if err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], env.Seq)
			}
		})
	}
	wg.Wait()
	var all []uint64
	for w, ss := range seqs {
		for i := 1; i < len(ss); i++ {
			if ss[i] <= ss[i-1] {
				t.Fatalf("worker %d: seq %d after %d", w, ss[i], ss[i-1])
			}
		}
		all = append(all, ss...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, seq := range all {
		if seq != start+uint64(i)+1 {
			t.Fatalf("seq %d at position %d, want %d: repeated or skipped", seq, i, start+uint64(i)+1)
		}
	}
	if got := s.Seq(); got != start+workers*each {
		t.Errorf("Seq() = %d, want %d", got, start+workers*each)
	}
}

// TestSignerReservesBeforeItSigns: a signer restarted after a crash on a
// clock set back signed the numbers it had signed before, and receivers
// refused them as replays. With Reserve, every number is signed only once
// a ceiling at or above it is stored; a signer started again on the stored
// ceiling goes on above everything signed, whatever the clock says; and a
// message whose block cannot be stored is not signed, the next Seal trying
// again.
func TestSignerReservesBeforeItSigns(t *testing.T) {
	var stored uint64
	var fail error
	save := func(ceiling uint64) error {
		if fail != nil {
			return fail
		}
		stored = ceiling
		return nil
	}
	seal := func(s *protocol.Signer) (uint64, error) {
		t.Helper()
		raw, err := s.Seal(protocol.TypeCommand, nodeTo, prototest.Ack(), time.Minute)
		if err != nil {
			return 0, err
		}
		env, err := protocol.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return env.Seq, nil
	}
	s := protocol.NewSigner(prototest.Controller, prototest.Key(), 0, prototest.Now)
	start := s.Seq()
	if err := s.Reserve(4, save); err != nil {
		t.Fatal(err)
	}
	if stored != start+4 {
		t.Fatalf("Reserve stored %d, want the first block's ceiling %d", stored, start+4)
	}
	var last uint64
	for i := range 10 {
		seq, err := seal(s)
		if err != nil {
			t.Fatal(err)
		}
		if seq > stored {
			t.Fatalf("message %d signed with %d above the stored ceiling %d", i, seq, stored)
		}
		last = seq
	}

	// The store fails as the block runs out: no message, and no number
	// used; once it works, the next message is signed.
	for seq := last; seq < stored; seq++ {
		if _, err := seal(s); err != nil {
			t.Fatal(err)
		}
	}
	fail = errors.New("no space left on device")
	before := s.Seq()
	if _, err := seal(s); err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "reserve sequence numbers") {
		t.Fatalf("Seal with the store failing = %v, want the reservation's error", err)
	}
	if s.Seq() != before {
		t.Fatalf("a refused Seal used sequence %d", s.Seq())
	}
	fail = nil
	if seq, err := seal(s); err != nil || seq != before+1 || stored < seq {
		t.Fatalf("Seal once the store works = %d, %v (stored %d); want %d", seq, err, stored, before+1)
	}

	// A crash, and the clock back where it was at the first start.
	used := s.Seq()
	restarted := protocol.NewSigner(prototest.Controller, prototest.Key(), stored, prototest.Now)
	if err := restarted.Reserve(4, save); err != nil {
		t.Fatal(err)
	}
	if seq, err := seal(restarted); err != nil || seq <= used {
		t.Fatalf("first message after the restart = %d, %v; want above %d, the last signed before", seq, err, used)
	}
	if err := restarted.Reserve(0, save); err == nil {
		t.Error("Reserve took a block of 0")
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{protocol.ErrTooLarge, "too_large"},
		{protocol.ErrMalformed, "malformed"},
		{protocol.ErrVersion, "version"},
		{protocol.ErrUnsigned, "unsigned"},
		{protocol.ErrUnknownKey, "unknown_key"},
		{protocol.ErrSignature, "bad_signature"},
		{protocol.ErrExpired, "expired"},
		{protocol.ErrNotYetValid, "not_yet_valid"},
		{protocol.ErrAudience, "wrong_audience"},
		{protocol.ErrReplay, "replay"},
		{errors.Join(errors.New("x"), protocol.ErrReplay), "replay"},
		{nil, "other"},
		{errors.New("message expired"), "other"},
	}
	for _, tt := range tests {
		if got := protocol.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
