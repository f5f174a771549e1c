package prototest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"loaxa.vn/protocol"
)

// Fixture is one raw payload as it arrives on a topic, and what a receiver
// must make of it. Payloads on controller → node channels (desired, cmd)
// are opened with a Verifier on Now for the topic's audience; payloads on
// node → controller channels (state, event) with protocol.Parse.
type Fixture struct {
	// Name says what the payload is, "cmd/ack" or "refused/expired".
	Name  string
	Topic string
	Raw   []byte
	// Want is the sentinel error the receiver's check must wrap, or nil.
	Want error
	// Decoded is the body an accepted payload decodes to, as a value
	// (protocol.Command, protocol.DesiredState, …); nil for refusals.
	Decoded any
}

// ContentID is the content every catalogue occurrence plays: the hex
// SHA-256 of a fixed phrase.
var ContentID = func() string {
	sum := sha256.Sum256([]byte("loaxa prototest bulletin"))
	return hex.EncodeToString(sum[:])
}()

// Catalogue returns every fixture, in a fixed order. The bytes are the same
// on every call and every machine: keys, times and sequence numbers are all
// fixed, and sequence numbers are unique across the catalogue, so a receiver
// may see every accepted fixture without any being a replay. Each call
// returns fresh copies that the caller may change.
func Catalogue() []Fixture {
	var g generator
	return g.catalogue()
}

// ByName returns the fixture called name. It panics if there is none,
// which is a typo in a test.
func ByName(name string) Fixture {
	for _, f := range Catalogue() {
		if f.Name == name {
			return f
		}
	}
	panic(fmt.Sprintf("prototest: no fixture %q", name))
}

// Bodies of the accepted fixtures, one function each so every fixture gets
// its own copy.

// Desired returns the desired state of the "desired" fixture: this
// morning's and this evening's session of one bulletin.
func Desired() protocol.DesiredState {
	return protocol.DesiredState{
		Node:      Node,
		Version:   7,
		Areas:     append([]string(nil), Areas...),
		Generated: now.Add(-time.Minute),
		Horizon:   now.Add(72 * time.Hour),
		Occurrences: []protocol.Occurrence{{
			ID:           "a-0042@20250309T223000.000Z",
			Announcement: "a-0042",
			Title:        "Bản tin sáng",
			Content:      ContentID,
			Priority:     protocol.PriorityNormal,
			Start:        time.Date(2025, time.March, 9, 22, 30, 0, 0, time.UTC),
			DurationMS:   900_000,
		}, {
			ID:           "a-0042@20250310T100000.000Z",
			Announcement: "a-0042",
			Title:        "Bản tin chiều",
			Content:      ContentID,
			Priority:     protocol.PriorityHigh,
			Start:        time.Date(2025, time.March, 10, 10, 0, 0, 0, time.UTC),
			DurationMS:   900_000,
		}},
		Content: []protocol.ContentRef{{
			ID:         ContentID,
			Size:       28_800_044,
			DurationMS: 900_000,
			Path:       "/api/v1/content/" + ContentID + "/audio",
		}},
		Config: protocol.NodeConfig{Volume: 10, LateGraceMS: 60_000},
	}
}

// Ack returns the command of the "cmd/ack" fixture.
func Ack() protocol.Command {
	return protocol.Command{Name: protocol.CmdAck, Epoch: "e-7d1c", Seq: 43}
}

// Online returns the state of the "state/online" fixture.
func Online() protocol.State {
	mains, volts, temp := true, 12.6, 41.5
	return protocol.State{
		Status:         protocol.StatusOnline,
		At:             now,
		Agent:          "loaxa-node/0.1.0",
		DesiredVersion: 7,
		Playing: &protocol.Playing{
			Occurrence: "a-0041@20250309T222000.000Z",
			Content:    ContentID,
			Priority:   protocol.PriorityNormal,
			Since:      now.Add(-5 * time.Minute),
		},
		ClockOffsetMS:      -120,
		ClockUncertaintyUS: 1800,
		ContentMissing:     []string{ContentID},
		Board:              &protocol.Board{Amplifier: true, Mains: &mains, BatteryVolts: &volts, TemperatureC: &temp},
		Rejected:           2,
		Outbox:             3,
	}
}

// Will returns the state of the "state/offline-will" fixture: the Last
// Will a node registers when it connects, published by the broker when it
// vanishes. It carries the connect time and nothing live.
func Will() protocol.State {
	return protocol.State{Status: protocol.StatusOffline, At: now.Add(-time.Hour), Agent: "loaxa-node/0.1.0", DesiredVersion: 7}
}

// Events returns the batch of the "events/batch" fixture: the morning
// bulletin received, started two seconds late and completed.
func Events() protocol.EventBatch {
	start := time.Date(2025, time.March, 9, 22, 30, 2, 0, time.UTC)
	occ := "a-0042@20250309T223000.000Z"
	return protocol.EventBatch{Epoch: "e-7d1c", Events: []protocol.Event{
		{Seq: 41, Type: protocol.EventReceived, At: now, Occurrence: occ, Announcement: "a-0042", Content: ContentID},
		{Seq: 42, Type: protocol.EventStarted, At: start, Occurrence: occ, Announcement: "a-0042", Content: ContentID, LateMS: 2000},
		{Seq: 43, Type: protocol.EventCompleted, At: start.Add(15 * time.Minute), Occurrence: occ, Announcement: "a-0042", Content: ContentID, PlayedMS: 900_000},
	}}
}

// TTLs the controller uses, here so fixtures look like the real thing.
const (
	desiredTTL = 30 * 24 * time.Hour
	cmdTTL     = 10 * time.Minute
)

// generator seals fixtures with one running sequence number, so every
// fixture's (key, sequence) pair is unique and the bytes are stable.
type generator struct {
	seq uint64
}

// seal seals body as the controller would at instant at.
func (g *generator) seal(at time.Time, typ protocol.Type, to string, body any, ttl time.Duration) []byte {
	s := protocol.NewSigner(Controller, Key(), g.seq, At(at))
	raw, err := s.Seal(typ, to, body, ttl)
	if err != nil {
		panic(fmt.Sprintf("prototest: seal %s for %s: %v", typ, to, err))
	}
	g.seq = s.Seq()
	return raw
}

// envelope returns a signed-to-be envelope as Seal would build it at now,
// with the next sequence number; callers break one thing and Reseal it.
func (g *generator) envelope(typ protocol.Type, to string, body any, ttl time.Duration) protocol.Envelope {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("prototest: encode %s body: %v", typ, err))
	}
	return protocol.Envelope{
		V: protocol.Version, Type: typ, From: Controller, To: to, Seq: g.next(),
		Issued: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli(), Body: raw,
	}
}

func (g *generator) next() uint64 {
	g.seq++
	return g.seq
}

// encode builds an unsigned envelope, as a node sends to the controller.
func encode(typ protocol.Type, from, to string, seq uint64, at time.Time, body any) []byte {
	raw, err := protocol.Encode(typ, from, to, seq, at, body)
	if err != nil {
		panic(fmt.Sprintf("prototest: encode %s: %v", typ, err))
	}
	return raw
}

// without returns raw with the top-level key removed, re-encoded with the
// keys in sorted order; the signature is untouched.
func without(raw []byte, key string) []byte {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		panic(fmt.Sprintf("prototest: decode envelope fields: %v", err))
	}
	delete(fields, key)
	out, err := json.Marshal(fields)
	if err != nil {
		panic(fmt.Sprintf("prototest: encode envelope fields: %v", err))
	}
	return out
}

// edit decodes raw, lets change alter the envelope, and encodes it again
// without re-signing.
func edit(raw []byte, change func(*protocol.Envelope)) []byte {
	env := Unmarshal(raw)
	change(&env)
	return Marshal(env)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func (g *generator) catalogue() []Fixture {
	tp := protocol.NewTopics("")
	nodeCmd := tp.Node(Node, protocol.ChanCmd)
	nodeTo := protocol.Topic{Scope: protocol.ScopeNode, ID: Node}.Audience()
	otherTo := protocol.Topic{Scope: protocol.ScopeNode, ID: OtherNode}.Audience()

	g.seq = uint64(now.UnixMicro())
	desired := g.seal(now, protocol.TypeDesired, nodeTo, Desired(), desiredTTL)
	ack := g.seal(now, protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	withinSkew := g.seal(now.Add(protocol.DefaultSkew), protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	expired := g.seal(now.Add(-time.Hour), protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	expiresNow := g.seal(now.Add(-cmdTTL), protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	early := g.seal(now.Add(protocol.DefaultSkew+time.Millisecond), protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	forOther := g.seal(now, protocol.TypeCommand, otherTo, Ack(), cmdTTL)
	desiredForOther := g.seal(now, protocol.TypeDesired, otherTo, Desired(), desiredTTL)

	untrusted := protocol.NewSigner(Controller, UntrustedKey(), g.seq, At(now))
	byStranger, err := untrusted.Seal(protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
	if err != nil {
		panic(fmt.Sprintf("prototest: seal with the untrusted key: %v", err))
	}
	g.seq = untrusted.Seq()

	// Validly signed envelopes with one defect each.
	signedWith := func(change func(*protocol.Envelope)) []byte {
		env := g.envelope(protocol.TypeCommand, nodeTo, Ack(), cmdTTL)
		change(&env)
		return Reseal(env, Key())
	}
	// A huge body, so only the size is wrong; the signature is never read.
	huge := edit(ack, func(e *protocol.Envelope) {
		e.Body = json.RawMessage(`"` + string(bytes.Repeat([]byte("a"), protocol.MaxMessageSize)) + `"`)
	})

	ok := func(name, topic string, raw []byte, body any) Fixture {
		return Fixture{Name: name, Topic: topic, Raw: raw, Decoded: body}
	}
	bad := func(name, topic string, raw []byte, want error) Fixture {
		return Fixture{Name: name, Topic: topic, Raw: raw, Want: want}
	}
	return []Fixture{
		// Accepted, one of each message type.
		ok("desired", tp.Node(Node, protocol.ChanDesired), desired, Desired()),
		ok("cmd/ack", nodeCmd, ack, Ack()),
		ok("cmd/within-skew", nodeCmd, withinSkew, Ack()),
		ok("state/online", tp.Node(Node, protocol.ChanState), encode(protocol.TypeState, Node, Controller, 0, now, Online()), Online()),
		ok("state/offline-will", tp.Node(Node, protocol.ChanState), encode(protocol.TypeState, Node, Controller, 0, now.Add(-time.Hour), Will()), Will()),
		ok("events/batch", tp.Node(Node, protocol.ChanEvent), encode(protocol.TypeEvents, Node, Controller, 41, now.Add(16*time.Minute), Events()), Events()),

		// Not an envelope.
		bad("refused/empty", nodeCmd, []byte{}, protocol.ErrMalformed),
		bad("refused/not-json", nodeCmd, []byte("play alarm"), protocol.ErrMalformed),
		bad("refused/json-array", nodeCmd, []byte(`[1,2]`), protocol.ErrMalformed),
		bad("refused/json-null", nodeCmd, []byte(`null`), protocol.ErrMalformed),
		bad("refused/truncated", nodeCmd, ack[:len(ack)/2], protocol.ErrMalformed),
		bad("refused/trailing-garbage", nodeCmd, cat(ack, []byte("x")), protocol.ErrMalformed),
		bad("refused/trailing-brace", nodeCmd, cat(ack, []byte("}")), protocol.ErrMalformed),
		bad("refused/two-envelopes", nodeCmd, cat(ack, []byte("\n"), ack), protocol.ErrMalformed),
		bad("refused/unknown-field", nodeCmd, cat([]byte(`{"extra":1,`), ack[1:]), protocol.ErrMalformed),
		bad("refused/newer-version-with-new-field", nodeCmd,
			bytes.Replace(bytes.Replace(ack, []byte(`"v":1`), []byte(`"v":2`), 1), []byte(`"to":`), []byte(`"prio":"emergency","to":`), 1), protocol.ErrVersion),
		bad("refused/wrong-field-type", nodeCmd, bytes.Replace(ack, []byte(`"v":1`), []byte(`"v":"1"`), 1), protocol.ErrMalformed),
		bad("refused/too-large", nodeCmd, huge, protocol.ErrTooLarge),

		// Envelope fields missing or wrong, though validly signed.
		bad("refused/version-0", nodeCmd, signedWith(func(e *protocol.Envelope) { e.V = 0 }), protocol.ErrVersion),
		bad("refused/version-2", nodeCmd, signedWith(func(e *protocol.Envelope) { e.V = 2 }), protocol.ErrVersion),
		bad("refused/no-type", nodeCmd, signedWith(func(e *protocol.Envelope) { e.Type = "" }), protocol.ErrMalformed),
		bad("refused/no-from", nodeCmd, signedWith(func(e *protocol.Envelope) { e.From = "" }), protocol.ErrMalformed),
		bad("refused/no-to", nodeCmd, signedWith(func(e *protocol.Envelope) { e.To = "" }), protocol.ErrMalformed),
		bad("refused/no-body", nodeCmd, without(signedWith(func(e *protocol.Envelope) { e.Body = nil }), "body"), protocol.ErrMalformed),
		bad("refused/null-body", nodeCmd, signedWith(func(e *protocol.Envelope) { e.Body = json.RawMessage("null") }), protocol.ErrMalformed),
		bad("refused/validity-beyond-max-ttl", nodeCmd, signedWith(func(e *protocol.Envelope) {
			e.Expires = e.Issued + protocol.MaxTTL.Milliseconds() + 1
		}), protocol.ErrMalformed),
		bad("refused/expires-at-issue", nodeCmd, signedWith(func(e *protocol.Envelope) { e.Expires = e.Issued }), protocol.ErrMalformed),

		// Signature.
		bad("refused/unsigned", nodeCmd, encode(protocol.TypeCommand, Controller, nodeTo, g.next(), now, Ack()), protocol.ErrUnsigned),
		bad("refused/sig-without-kid", nodeCmd, edit(ack, func(e *protocol.Envelope) { e.KeyID = "" }), protocol.ErrUnsigned),
		bad("refused/unknown-key", nodeCmd, byStranger, protocol.ErrUnknownKey),
		bad("refused/forged-kid", nodeCmd, edit(byStranger, func(e *protocol.Envelope) { e.KeyID = protocol.KeyID(PublicKey()) }), protocol.ErrSignature),
		bad("refused/tampered-body", nodeCmd, edit(ack, func(e *protocol.Envelope) {
			e.Body = bytes.Replace(e.Body, []byte(`"seq":43`), []byte(`"seq":4300`), 1)
		}), protocol.ErrSignature),
		bad("refused/tampered-expiry", nodeCmd, edit(ack, func(e *protocol.Envelope) { e.Expires += int64(time.Hour / time.Millisecond) }), protocol.ErrSignature),
		bad("refused/readdressed", tp.Node(OtherNode, protocol.ChanCmd), edit(ack, func(e *protocol.Envelope) { e.To = otherTo }), protocol.ErrSignature),
		bad("refused/short-sig", nodeCmd, edit(ack, func(e *protocol.Envelope) { e.Sig = e.Sig[:10] }), protocol.ErrSignature),

		// Audience: validly signed, but not for where it arrived.
		bad("refused/cmd-for-other-node", nodeCmd, forOther, protocol.ErrAudience),
		bad("refused/desired-for-other-node", tp.Node(Node, protocol.ChanDesired), desiredForOther, protocol.ErrAudience),
		bad("refused/node-cmd-on-area-topic", tp.Area(Area, protocol.ChanCmd), ack, protocol.ErrAudience),

		// Time.
		bad("refused/expired", nodeCmd, expired, protocol.ErrExpired),
		bad("refused/expires-now", nodeCmd, expiresNow, protocol.ErrExpired),
		bad("refused/not-yet-valid", nodeCmd, early, protocol.ErrNotYetValid),

		// Node messages are parsed, not verified, but must be well formed.
		bad("state/refused-version-2", tp.Node(Node, protocol.ChanState),
			edit(encode(protocol.TypeState, Node, Controller, 0, now, Online()), func(e *protocol.Envelope) { e.V = 2 }), protocol.ErrVersion),
		bad("events/refused-no-body", tp.Node(Node, protocol.ChanEvent),
			without(encode(protocol.TypeEvents, Node, Controller, 41, now, Events()), "body"), protocol.ErrMalformed),
		bad("events/refused-trailing-data", tp.Node(Node, protocol.ChanEvent),
			cat(encode(protocol.TypeEvents, Node, Controller, 41, now, Events()), []byte("]")), protocol.ErrMalformed),
	}
}
