package protocol_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
	"loaxa.vn/protocol/prototest"
)

// frame is a live audio frame as the controller sends it: 60 ms of
// narrowband audio (nodeaudio.NarrowFrameBytes).
func frame() protocol.Live {
	audio := make([]byte, 244)
	for i := range audio {
		audio[i] = byte(i * 7)
	}
	return protocol.Live{Call: "l0000123", Kind: protocol.LiveAudio, Seq: 4242, Audio: audio, Drill: true}
}

var areaTo = protocol.Topic{Scope: protocol.ScopeArea, ID: prototest.Area}.Audience()

func sealCompact(t testing.TB, at time.Time, l protocol.Live) []byte {
	t.Helper()
	raw, err := prototest.Signer(prototest.At(at)).SealCompact(protocol.TypeLive, areaTo, l, protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCompactLiveFrameRoundTrip(t *testing.T) {
	want := frame()
	raw := sealCompact(t, prototest.Now(), want)
	// The point of the form: a 60 ms frame of 244 bytes of audio in at
	// most 400 bytes, where JSON takes about 650.
	if len(raw) > 400 {
		t.Errorf("compact frame of %d bytes, want at most 400", len(raw))
	}
	env, err := prototest.Verifier(prototest.Now).Open(raw, areaTo)
	if err != nil {
		t.Fatal(err)
	}
	if !env.Compact() || env.Type != protocol.TypeLive || env.From != prototest.Controller || env.To != areaTo ||
		env.Expires-env.Issued != protocol.LiveTTL.Milliseconds() {
		t.Fatalf("opened %+v", env)
	}
	var got protocol.Live
	if err := env.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	again, err := env.MarshalCompact()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoded differs (%v)", err)
	}
	// The same envelope in JSON would be a different message: a compact
	// body does not decode as JSON and the other way round.
	var m map[string]any
	if err := env.Decode(&m); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("compact body decoded into a map: %v", err)
	}
	// The replay guard knows it like any envelope.
	g := protocol.NewReplayGuard(nil)
	if _, err := g.Check(env, prototest.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Check(env, prototest.Now()); !errors.Is(err, protocol.ErrReplay) {
		t.Errorf("second copy: %v, want replay", err)
	}

	// Every kind and field survives.
	for _, l := range []protocol.Live{
		{Call: "l1", Kind: protocol.LiveStart, Priority: protocol.PriorityEmergency, Title: "Bão số 3 — khẩn cấp"},
		{Call: "l1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "[DIỄN TẬP] Sơ tán", Drill: true, Volume: 3},
		{Call: "l1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Volume: protocol.MaxVolume},
		{Call: "l1", Kind: protocol.LiveEnd, Reason: protocol.LiveCut, Seq: 9},
		{Call: "l1", Kind: protocol.LiveEnd},
	} {
		env, err := prototest.Verifier(prototest.Now).Open(sealCompact(t, prototest.Now(), l), areaTo)
		var got protocol.Live
		if err != nil || env.Decode(&got) != nil || !reflect.DeepEqual(got, l) {
			t.Errorf("%+v came back as %+v (%v)", l, got, err)
		}
	}
}

func TestCompactRefusals(t *testing.T) {
	now := prototest.Now()
	v := prototest.Verifier(prototest.Now)
	good := sealCompact(t, now, frame())
	untrusted, err := protocol.NewSigner(prototest.Controller, prototest.UntrustedKey(), 0, prototest.Now).
		SealCompact(protocol.TypeLive, areaTo, frame(), protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name     string
		raw      []byte
		audience string
		want     error
	}{
		{"expired", sealCompact(t, now.Add(-protocol.LiveTTL), frame()), areaTo, protocol.ErrExpired},
		{"from the future", sealCompact(t, now.Add(protocol.DefaultSkew+time.Second), frame()), areaTo, protocol.ErrNotYetValid},
		{"other area", good, protocol.Topic{Scope: protocol.ScopeArea, ID: "303"}.Audience(), protocol.ErrAudience},
		{"untrusted key", untrusted, areaTo, protocol.ErrUnknownKey},
		{"audio changed", flip(len(good) - 64 - 10), areaTo, protocol.ErrSignature},
		{"signature changed", flip(len(good) - 1), areaTo, protocol.ErrSignature},
		{"truncated", good[:len(good)-1], areaTo, protocol.ErrMalformed},
		{"only the magic", good[:1], areaTo, protocol.ErrMalformed},
		{"garbage after the body", append(bytes.Clone(good[:len(good)-64]), append([]byte{0}, good[len(good)-64:]...)...), areaTo, protocol.ErrMalformed},
		{"newer version", flip(1), areaTo, protocol.ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := v.Open(tc.raw, tc.audience)
			if !errors.Is(err, tc.want) || env != nil {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	// Parse, the path of node messages, reads JSON only.
	if _, err := protocol.Parse(good); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("Parse of a compact envelope: %v, want malformed", err)
	}
}

func TestLiveBinaryRefusals(t *testing.T) {
	good, err := frame().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	set := func(i int, b byte) []byte {
		out := bytes.Clone(good)
		out[i] = b
		return out
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"newer version":     set(0, 2),
		"unknown kind":      set(1, 4),
		"kind zero":         set(1, 0),
		"unknown flag":      set(2, 0x82),
		"call too long":     append(good[:3:3], 0xFF, 0x01),
		"truncated number":  good[:3+1+8],
		"long number":       append(good[:3:3], 0x81, 0x00),
		"volume flag, none": {1, 1, 0x02},
		"volume zero":       append([]byte{1, 1, 0x02, 0}, good[3:]...),
		"volume too loud":   append([]byte{1, 1, 0x02, byte(protocol.MaxVolume + 1)}, good[3:]...),
	} {
		var l protocol.Live
		if err := l.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, l)
		}
	}
	if _, err := (protocol.Live{Kind: "shout"}).MarshalBinary(); err == nil {
		t.Error("unknown kind encoded")
	}
	if _, err := (protocol.Live{Kind: protocol.LiveStart, Volume: protocol.MaxVolume + 1}).MarshalBinary(); err == nil {
		t.Error("volume out of range encoded")
	}
}

// FuzzLiveBinary: UnmarshalBinary never panics, and what it accepts
// encodes and decodes to the same message.
func FuzzLiveBinary(f *testing.F) {
	for _, l := range []protocol.Live{frame(), {Call: "l1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp"},
		{Call: "l1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Drill: true, Volume: 3}} {
		b, err := l.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l protocol.Live
		if err := l.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := l.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", l, err)
		}
		var back protocol.Live
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(back, l) {
			t.Fatalf("%+v came back as %+v (%v)", l, back, err)
		}
	})
}

// TestLiveStreamRate: a live call's frames, as the controller sends them
// (a call id of the controller's form, a commune's audience and topic),
// take at most 64 kbit/s as MQTT messages: the bound per stream.
// The figures are in docs/live.md.
func TestLiveStreamRate(t *testing.T) {
	const call = "live-abcdefghijklmnop"
	to := protocol.Topic{Scope: protocol.ScopeArea, ID: "12346"}.Audience()
	topic := protocol.NewTopics("").Area("12346", protocol.ChanLive)
	s := prototest.Signer(prototest.Now)
	frameDur := float64(nodeaudio.NarrowFrameWide) / nodeaudio.SampleRate
	l := protocol.Live{Call: call, Kind: protocol.LiveAudio, Seq: 1 << 20, Audio: make([]byte, nodeaudio.NarrowFrameBytes)}
	raw, err := s.SealCompact(protocol.TypeLive, to, l, protocol.LiveTTL)
	if err != nil {
		t.Fatal(err)
	}
	// A QoS 0 PUBLISH: fixed header, 2 bytes of remaining length, the
	// topic with its length, the payload.
	mqtt := 1 + 2 + 2 + len(topic) + len(raw)
	kbps := func(n int) float64 { return float64(n) * 8 / frameDur / 1000 }
	t.Logf("audio %d B %.1f kbit/s; signed frame %d B %.1f kbit/s; MQTT message %d B %.1f kbit/s",
		len(l.Audio), kbps(len(l.Audio)), len(raw), kbps(len(raw)), mqtt, kbps(mqtt))
	if kbps(mqtt) > 64 {
		t.Errorf("a live stream takes %.1f kbit/s as MQTT messages, want ≤ 64", kbps(mqtt))
	}
}
