package protocol_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// seedSizeLimit keeps the megabyte-sized fixture out of the fuzz corpus; its
// refusal is covered by TestCatalogue.
const seedSizeLimit = 64 << 10

// bodyTypes maps message types to the body they carry.
var bodyTypes = map[protocol.Type]reflect.Type{
	protocol.TypeDesired: reflect.TypeFor[protocol.DesiredState](),
	protocol.TypeCommand: reflect.TypeFor[protocol.Command](),
	protocol.TypeState:   reflect.TypeFor[protocol.State](),
	protocol.TypeEvents:  reflect.TypeFor[protocol.EventBatch](),
}

// FuzzOpen feeds arbitrary bytes and audiences to Verifier.Open: it must
// never panic, every refusal must carry one of the documented reasons, and
// whatever it accepts must open again, survive re-encoding, and decode.
func FuzzOpen(f *testing.F) {
	for _, fx := range prototest.Catalogue() {
		if len(fx.Raw) > seedSizeLimit {
			continue
		}
		tp, err := protocol.NewTopics("").Parse(fx.Topic)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fx.Raw, tp.Audience())
	}
	f.Add(sealCompact(f, prototest.Now(), frame()), areaTo)
	v := prototest.Verifier(prototest.Now)
	f.Fuzz(func(t *testing.T, raw []byte, audience string) {
		env, err := v.Open(raw, audience)
		if err != nil {
			if env != nil {
				t.Fatalf("Open returned an envelope with %v", err)
			}
			if protocol.Reason(err) == "other" {
				t.Fatalf("Open refused %q with an unlabelled error: %v", raw, err)
			}
			return
		}
		again, err := v.Open(raw, audience)
		if err != nil || !reflect.DeepEqual(again, env) {
			t.Fatalf("second Open of the same bytes: %+v, %v", again, err)
		}
		if env.Compact() {
			// Compact envelopes re-encode to the same bytes, and their
			// body is binary.
			canon, err := env.MarshalCompact()
			if err != nil || !bytes.Equal(canon, raw) {
				t.Fatalf("accepted compact envelope re-encodes differently (%v)", err)
			}
			var l protocol.Live
			if err := env.Decode(&l); env.Type == protocol.TypeLive && err != nil {
				t.Fatalf("accepted compact live body does not decode: %v", err)
			}
			return
		}
		// The canonical encoding of what was accepted must be accepted as
		// the same envelope.
		canon, err := v.Open(prototest.Marshal(*env), audience)
		if err != nil {
			t.Fatalf("re-encoded envelope refused: %v", err)
		}
		if !sameEnvelope(canon, env) {
			t.Fatalf("re-encoded envelope differs:\n%+v\n%+v", canon, env)
		}
		var anyBody any
		if err := env.Decode(&anyBody); err != nil {
			t.Fatalf("accepted body does not decode: %v", err)
		}
		if typ, ok := bodyTypes[env.Type]; ok {
			if err := env.Decode(reflect.New(typ).Interface()); err != nil {
				t.Fatalf("accepted %s body does not decode: %v", env.Type, err)
			}
		}
	})
}

// FuzzParse feeds arbitrary bytes to Parse, the node-message path: it must
// never panic, refuse only with documented reasons, and what it accepts must
// survive re-encoding.
func FuzzParse(f *testing.F) {
	for _, fx := range prototest.Catalogue() {
		if len(fx.Raw) <= seedSizeLimit {
			f.Add(fx.Raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := protocol.Parse(raw)
		if err != nil {
			if env != nil {
				t.Fatalf("Parse returned an envelope with %v", err)
			}
			if protocol.Reason(err) == "other" {
				t.Fatalf("Parse refused %q with an unlabelled error: %v", raw, err)
			}
			return
		}
		if env.V != protocol.Version || env.Type == "" || env.From == "" || env.To == "" || len(env.Body) == 0 {
			t.Fatalf("Parse accepted an incomplete envelope %+v", env)
		}
		again, err := protocol.Parse(prototest.Marshal(*env))
		if err != nil {
			t.Fatalf("re-encoded envelope refused: %v", err)
		}
		if !sameEnvelope(again, env) {
			t.Fatalf("re-encoded envelope differs:\n%+v\n%+v", again, env)
		}
	})
}

// sameEnvelope compares two envelopes field by field, the body as JSON
// values: re-encoding may change its spelling (escapes, spaces) but not its
// meaning. For a signed envelope a changed body could not verify anyway.
func sameEnvelope(a, b *protocol.Envelope) bool {
	if a.V != b.V || a.Type != b.Type || a.From != b.From || a.KeyID != b.KeyID || a.To != b.To ||
		a.Seq != b.Seq || a.Issued != b.Issued || a.Expires != b.Expires || !bytes.Equal(a.Sig, b.Sig) {
		return false
	}
	va, errA := jsonValue(a.Body)
	vb, errB := jsonValue(b.Body)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func jsonValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// FuzzDesiredState decodes arbitrary desired-state bodies as a node does
// once the signature holds, and validates them: it must never panic, and a
// desired state it accepts must survive re-encoding, be accepted again and
// encode to the same bytes (what the node stores is what it ran).
func FuzzDesiredState(f *testing.F) {
	seed, err := json.Marshal(prototest.Desired())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"node":"n1","version":1,"occurrences":[{"id":"o1","stream":"x","priority":"normal"}]}`))
	f.Add([]byte(`{"node":"n1","version":1,"keys":["AAAA"],"config":{"volume":99,"late_grace_ms":-1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d protocol.DesiredState
		if json.Unmarshal(raw, &d) != nil || d.Validate() != nil {
			return
		}
		again, err := json.Marshal(&d)
		if err != nil {
			t.Fatalf("accepted desired state does not encode: %v", err)
		}
		var e protocol.DesiredState
		if err := json.Unmarshal(again, &e); err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted desired state refused after re-encoding: %v\n%s", err, again)
		}
		if third, err := json.Marshal(&e); err != nil || !bytes.Equal(third, again) {
			t.Fatalf("re-encoded desired state changes:\n%s\n%s (%v)", again, third, err)
		}
	})
}
