package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// TestBodyEnvelopeIsEnvelope: ParseBody's one pass decodes the envelope
// into a copy of Envelope whose body is decoded in place; a field added to
// Envelope and not to the copy would be refused as unknown by the one pass
// only, and its value lost.
func TestBodyEnvelopeIsEnvelope(t *testing.T) {
	env, one := reflect.TypeFor[protocol.Envelope](), protocol.BodyEnvelopeType
	var exported []reflect.StructField
	for f := range env.Fields() {
		if f.IsExported() {
			exported = append(exported, f)
		}
	}
	if len(exported) != one.NumField() {
		t.Fatalf("Envelope has %d exported fields, bodyEnvelope %d", len(exported), one.NumField())
	}
	for i, f := range exported {
		g := one.Field(i)
		if g.Name != f.Name || g.Tag != f.Tag {
			t.Errorf("field %d: Envelope's %s %q, bodyEnvelope's %s %q", i, f.Name, f.Tag, g.Name, g.Tag)
		}
		if f.Name != "Body" && g.Type != f.Type {
			t.Errorf("field %s: Envelope's %v, bodyEnvelope's %v", f.Name, f.Type, g.Type)
		}
	}
}

// opened is what the ingest takes from a node message: the envelope's
// fields but the raw body, the decoded body, or the refusal.
type opened[T any] struct {
	header protocol.Envelope
	body   *T
	err    string
	reason string
}

func header(env *protocol.Envelope) protocol.Envelope {
	h := *env
	h.Body = nil
	return h
}

// twoPass opens raw as the ingest did before ParseBody: Parse, the type
// check, Envelope.Decode.
func twoPass[T any](raw []byte, typ protocol.Type) opened[T] {
	env, err := protocol.Parse(raw)
	if err == nil && env.Type != typ {
		err = errors.New("wrong type")
	}
	if err != nil {
		return opened[T]{err: err.Error(), reason: protocol.Reason(err)}
	}
	body := new(T)
	if err := env.Decode(body); err != nil {
		return opened[T]{err: err.Error(), reason: protocol.Reason(err)}
	}
	return opened[T]{header: header(env), body: body}
}

// onePass opens raw as the ingest does now (controller/mqtt's
// openNodeMessage); onePassTaken says whether ParseBody decoded the body.
func onePass[T any](raw []byte, typ protocol.Type) (o opened[T], onePassTaken bool) {
	env, body, err := protocol.ParseBody[T](raw, typ)
	if err == nil && env.Type != typ {
		err = errors.New("wrong type")
	}
	if err != nil {
		if body != nil {
			return opened[T]{err: "ParseBody returned a body with " + err.Error()}, true
		}
		return opened[T]{err: err.Error(), reason: protocol.Reason(err)}, false
	}
	if body != nil {
		if env.Body != nil {
			return opened[T]{err: "ParseBody returned a body and a raw body"}, true
		}
		return opened[T]{header: *env, body: body}, true
	}
	body = new(T)
	if err := env.Decode(body); err != nil {
		return opened[T]{err: err.Error(), reason: protocol.Reason(err)}, false
	}
	return opened[T]{header: header(env), body: body}, false
}

// sameOpening fails t unless raw opens the same both ways, refusals word
// for word, and returns whether the one pass was taken.
func sameOpening[T any](t *testing.T, raw []byte, typ protocol.Type) bool {
	t.Helper()
	want := twoPass[T](raw, typ)
	got, taken := onePass[T](raw, typ)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q as %s:\none pass (taken %v): %+v\ntwo passes: %+v", raw, typ, taken, got, want)
	}
	return taken
}

func TestParseBody(t *testing.T) {
	state := prototest.ByName("state/online").Raw
	events := prototest.ByName("events/batch").Raw
	replace := func(raw []byte, old, new string) []byte {
		t.Helper()
		if !bytes.Contains(raw, []byte(old)) {
			t.Fatalf("%q not in %s", old, raw)
		}
		return bytes.Replace(raw, []byte(old), []byte(new), 1)
	}
	stateBody := func() string {
		var env protocol.Envelope
		if err := json.Unmarshal(state, &env); err != nil {
			t.Fatal(err)
		}
		return string(env.Body)
	}()
	for _, c := range []struct {
		name   string
		raw    []byte
		events bool
		// onePass: the one pass decodes it; otherwise Parse and Decode do.
		onePass bool
		// refused: the reason both give, "" if accepted.
		refused string
	}{
		{name: "state", raw: state, onePass: true},
		{name: "last will", raw: prototest.ByName("state/offline-will").Raw, onePass: true},
		{name: "events", raw: events, events: true, onePass: true},
		{name: "spaces and upper-case keys", raw: replace(replace(state, `"body":`, "\n \"BODY\" :\t"), `"from":`, `"From":`), onePass: true},
		{name: "body first", raw: []byte(`{"body":` + stateBody + `,"v":1,"type":"state","from":"n1","to":"controller","seq":0,"iat":5}`), onePass: true},
		// A newer node's state field: accepted and ignored, as before.
		{name: "unknown body field", raw: replace(state, `"status":`, `"solar_volts":13.1,"status":`)},
		// A newer envelope: refused as such, as before.
		{name: "unknown envelope field of v2", raw: replace(replace(state, `"v":1`, `"v":2`), `"to":`, `"prio":1,"to":`), refused: "version"},
		{name: "unknown envelope field", raw: replace(state, `"to":`, `"prio":1,"to":`), refused: "malformed"},
		{name: "version 2", raw: replace(state, `"v":1`, `"v":2`), refused: "version"},
		{name: "events on the state topic", raw: events, refused: "other"},
		{name: "wrong body type", raw: replace(state, `"status":"online"`, `"status":5`), refused: "malformed"},
		{name: "body not an object", raw: replace(state, `"body":`, `"body":"x","old":`), refused: "malformed"},
		{name: "null body", raw: replace(state, `"body":`, `"body":null,"old":`), refused: "malformed"},
		{name: "no body, the word as a value", raw: []byte(`{"v":1,"type":"state","from":"body","to":"controller","seq":0,"iat":5}`), refused: "malformed"},
		// The last copy of a key counts, whole: a single decode would merge the two.
		{name: "body twice", raw: replace(state, `"body":`, `"body":{"agent":"first","epoch":"e1"},"Body":`)},
		{name: "body spelt with an escape", raw: replace(state, `"body":`, `"b\u006fdy":`)},
		{name: "body twice, once with an escape", raw: replace(state, `"body":`, `"b\u006fdy":{"agent":"first","epoch":"e1"},"body":`)},
		{name: "null body alone", raw: []byte(`{"v":1,"type":"state","from":"n1","to":"controller","seq":0,"iat":5,"body":null}`), refused: "malformed"},
		{name: "escape elsewhere", raw: replace(state, `"agent":"`, `"agent":"\u00e9`)},
		{name: "trailing data", raw: append(bytes.Clone(state), '}'), refused: "malformed"},
		{name: "trailing space", raw: append(bytes.Clone(state), " \n"...), onePass: true},
		{name: "not an object", raw: []byte(`[` + string(state) + `]`), refused: "malformed"},
		{name: "empty", raw: nil, refused: "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var taken bool
			if c.events {
				taken = sameOpening[protocol.EventBatch](t, c.raw, protocol.TypeEvents)
			} else {
				taken = sameOpening[protocol.State](t, c.raw, protocol.TypeState)
			}
			if taken != c.onePass {
				t.Errorf("one pass taken: %v, want %v", taken, c.onePass)
			}
			var o opened[protocol.State]
			if !c.events {
				o = twoPass[protocol.State](c.raw, protocol.TypeState)
			} else if e := twoPass[protocol.EventBatch](c.raw, protocol.TypeEvents); e.err != "" {
				o.err, o.reason = e.err, e.reason
			}
			switch {
			case c.refused == "" && o.err != "":
				t.Errorf("refused (%s): %s", o.reason, o.err)
			case c.refused != "" && (o.err == "" || o.reason != c.refused):
				t.Errorf("refused %q (%s), want %s", o.err, o.reason, c.refused)
			}
		})
	}
	// The body's last copy, whole: not merged with the first.
	twice := replace(state, `"body":`, `"body":{"agent":"first","epoch":"e1"},"Body":`)
	if o, _ := onePass[protocol.State](twice, protocol.TypeState); o.body == nil || o.body.Epoch != "" || o.body.Agent != prototest.Online().Agent {
		t.Errorf("a body given twice opened as %+v", o.body)
	}
	if o, _ := onePass[protocol.State](replace(state, `"status":`, `"solar_volts":13.1,"status":`), protocol.TypeState); o.body == nil || !strings.Contains(string(o.body.Status), "online") {
		t.Errorf("a state with a newer field opened as %+v", o.body)
	}
}

// FuzzParseBody: ParseBody and the ingest around it accept and refuse
// exactly what Parse followed by Envelope.Decode do, with the same words,
// and decode the same values.
func FuzzParseBody(f *testing.F) {
	for _, fx := range prototest.Catalogue() {
		if len(fx.Raw) <= seedSizeLimit {
			f.Add(fx.Raw, strings.HasPrefix(fx.Name, "events/"))
		}
	}
	state := string(prototest.ByName("state/online").Raw)
	for _, s := range []string{
		strings.Replace(state, `"body":`, `"body":{"agent":"first","epoch":"e1"},"Body":`, 1),
		strings.Replace(state, `"body":`, `"body":null,"old":`, 1),
		strings.Replace(state, `"body":`, `"b\u006fdy":`, 1),
		strings.Replace(state, `"body":`, `"b\u006fdy":{"agent":"first","epoch":"e1"},"body":`, 1),
		`{"v":1,"type":"state","from":"n1","to":"controller","seq":0,"iat":5,"body":null}`,
		strings.Replace(state, `"status":`, `"solar_volts":13.1,"status":`, 1),
		`{"v":1,"type":"state","from":"body","to":"controller","seq":0,"iat":5}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, events bool) {
		if events {
			sameOpening[protocol.EventBatch](t, raw, protocol.TypeEvents)
		} else {
			sameOpening[protocol.State](t, raw, protocol.TypeState)
		}
	})
}
