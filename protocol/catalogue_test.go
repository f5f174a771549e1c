package protocol_test

import (
	"errors"
	"reflect"
	"testing"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// receive does with a fixture what a receiver does with a payload on its
// topic: controller messages (desired, cmd) are opened with the verifier for
// the topic's audience, node messages (state, event) are parsed.
func receive(t *testing.T, v *protocol.Verifier, f prototest.Fixture) (protocol.Topic, *protocol.Envelope, error) {
	t.Helper()
	tp, err := protocol.NewTopics("").Parse(f.Topic)
	if err != nil {
		t.Fatalf("fixture topic: %v", err)
	}
	switch tp.Channel {
	case protocol.ChanDesired, protocol.ChanCmd:
		env, err := v.Open(f.Raw, tp.Audience())
		return tp, env, err
	case protocol.ChanState, protocol.ChanEvent:
		env, err := protocol.Parse(f.Raw)
		return tp, env, err
	}
	t.Fatalf("no fixture should arrive on %s", f.Topic)
	return tp, nil, nil
}

// channelType is the message type each channel carries.
var channelType = map[protocol.Channel]protocol.Type{
	protocol.ChanDesired: protocol.TypeDesired,
	protocol.ChanCmd:     protocol.TypeCommand,
	protocol.ChanState:   protocol.TypeState,
	protocol.ChanEvent:   protocol.TypeEvents,
}

// TestCatalogue walks every fixture through the receiving side and checks
// the outcome the catalogue promises: the sentinel for refusals, the body
// for accepted messages.
func TestCatalogue(t *testing.T) {
	v := prototest.Verifier(prototest.Now)
	for _, f := range prototest.Catalogue() {
		t.Run(f.Name, func(t *testing.T) {
			tp, env, err := receive(t, v, f)
			if f.Want != nil {
				wantRefusal(t, f.Name, env, err, f.Want)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if env.Type != channelType[tp.Channel] {
				t.Errorf("type %q on the %s channel", env.Type, tp.Channel)
			}
			if tp.Scope == protocol.ScopeNode && (tp.Channel == protocol.ChanState || tp.Channel == protocol.ChanEvent) && env.From != tp.ID {
				t.Errorf("node message from %q on the topic of %q", env.From, tp.ID)
			}
			got := reflect.New(reflect.TypeOf(f.Decoded))
			if err := env.Decode(got.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), f.Decoded) {
				t.Errorf("body = %+v\nwant   %+v", got.Elem().Interface(), f.Decoded)
			}
			if d, ok := got.Interface().(*protocol.DesiredState); ok {
				if err := d.Validate(); err != nil {
					t.Errorf("desired state does not validate: %v", err)
				}
			}
		})
	}
}

// TestCatalogueReplay passes every accepted controller message through one
// guard twice: the first pass is accepted (the catalogue has no two
// messages with the same sequence), the second is all replays.
func TestCatalogueReplay(t *testing.T) {
	v := prototest.Verifier(prototest.Now)
	g := protocol.NewReplayGuard(nil)
	var signed []*protocol.Envelope
	for _, f := range prototest.Catalogue() {
		if f.Want != nil {
			continue
		}
		tp, env, err := receive(t, v, f)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if tp.Channel == protocol.ChanCmd || tp.Channel == protocol.ChanDesired {
			signed = append(signed, env)
		}
	}
	if len(signed) < 2 {
		t.Fatalf("only %d signed fixtures", len(signed))
	}
	for _, env := range signed {
		if _, err := g.Check(env, prototest.Now()); err != nil {
			t.Errorf("first pass, seq %d: %v", env.Seq, err)
		}
	}
	for _, env := range signed {
		if _, err := g.Check(env, prototest.Now()); !errors.Is(err, protocol.ErrReplay) {
			t.Errorf("second pass, seq %d: err = %v, want ErrReplay", env.Seq, err)
		}
	}
}
