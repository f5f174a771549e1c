package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// TestOpenTimeProof: a time proof opens for its nonce only, signed by a
// known key, of type time for the time audience, its body untouched; its
// validity in time is not judged (the clock it sets may be far off).
func TestOpenTimeProof(t *testing.T) {
	const nonce = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	when := prototest.Now()
	seal := func(s *protocol.Signer, typ protocol.Type, to string, p protocol.TimeProof) []byte {
		t.Helper()
		raw, err := s.Seal(typ, to, p, protocol.TimeProofTTL)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	signer := prototest.Signer(prototest.Now)
	good := seal(signer, protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: when})
	// A board a day behind, and one a day ahead: the proof still opens.
	for _, off := range []time.Duration{-24 * time.Hour, 24 * time.Hour} {
		v := prototest.Verifier(func() time.Time { return when.Add(off) })
		if got, err := v.OpenTimeProof(good, nonce); err != nil || !got.Equal(when) {
			t.Errorf("on a clock %v off: %v, %v; want %v", off, got, err, when)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	v := prototest.Verifier(prototest.Now)
	for name, tc := range map[string]struct {
		raw   []byte
		nonce string
		want  error
	}{
		"another request's": {good, "ANOTHERREQUESTSNONCE12345", protocol.ErrReplay},
		"an unknown key":    {seal(protocol.NewSigner("controller", other, 0, prototest.Now), protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: when}), nonce, protocol.ErrUnknownKey},
		"another audience":  {seal(signer, protocol.TypeTime, "node/n1", protocol.TimeProof{Nonce: nonce, Time: when}), nonce, protocol.ErrAudience},
		"a command":         {seal(signer, protocol.TypeCommand, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: when}), nonce, protocol.ErrMalformed},
		"no time":           {seal(signer, protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce}), nonce, protocol.ErrMalformed},
		"a changed time":    {bytes.Replace(good, []byte(when.Format("2006")), []byte("1999"), 1), nonce, protocol.ErrSignature},
	} {
		if _, err := v.OpenTimeProof(tc.raw, tc.nonce); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	for nonce, ok := range map[string]bool{"ABCDEFGHIJKLMNOP": true, "short": false, "with space in it!!": false, string(make([]byte, 65)): false} {
		if protocol.ValidNonce(nonce) != ok {
			t.Errorf("ValidNonce(%q) = %t", nonce, !ok)
		}
	}
}

// FuzzOpenTimeProof: no input makes OpenTimeProof panic, and only the
// genuine proof opens (for its nonce, as its time): a changed byte breaks
// the signature or the form.
func FuzzOpenTimeProof(f *testing.F) {
	const nonce = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	when := prototest.Now()
	good, err := prototest.Signer(prototest.Now).Seal(protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: when}, protocol.TimeProofTTL)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1,"type":"time","to":"time","body":{}}`))
	f.Add([]byte{})
	v := prototest.Verifier(prototest.Now)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := v.OpenTimeProof(raw, nonce)
		if err == nil && !got.Equal(when) {
			t.Fatalf("opened %q as %v, not the genuine proof's time %v", raw, got, when)
		}
	})
}
