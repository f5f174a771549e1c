package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// TypeLive is the envelope type of messages on an area's live topic.
const TypeLive Type = "live" // body: Live

// Kinds of Live message.
const (
	LiveStart = "start" // a call begins: the node preempts and switches the amplifier on
	LiveAudio = "audio" // one frame of audio
	LiveEnd   = "end"   // the speaker stopped: play what is buffered, then release
)

// LiveCut is the Reason of an end that cuts the call off: an officer
// ended it from the controller. The node drops what it has buffered and
// releases the amplifier at once, and reports the play with ReasonCut.
const LiveCut = "cut"

// LiveTTL is how long a live message stays valid: a frame older than
// this is useless, and the replay guard forgets it soon.
const LiveTTL = 10 * time.Second

// MaxLiveDuration bounds one live call; a node ends a call at this length
// whatever it receives.
const MaxLiveDuration = 2 * time.Hour

// Live is the body of a live message: one of a call's start, frames and
// end, all carrying the call's id. Seq numbers the frames from 0 so that
// the node puts a late frame in its place and fills a lost one with
// silence. Every message is signed on its own (expiry and replay
// protection as for any controller message).
type Live struct {
	Call     string   `json:"call"`
	Kind     string   `json:"kind"`
	Seq      uint64   `json:"seq,omitempty"`
	Priority Priority `json:"priority,omitempty"` // start only: priority or emergency
	Title    string   `json:"title,omitempty"`    // start only
	Audio    []byte   `json:"audio,omitempty"`    // audio only: one nodeaudio frame
	// Reason is set on an end that is not the speaker's: LiveCut.
	Reason string `json:"reason,omitempty"`
	// Drill marks every message of an exercise call (diễn tập): the node
	// logs it and marks every event of the call's play (Event.Drill), and
	// refuses a message whose mark differs from its call's start.
	Drill bool `json:"drill,omitempty"`
	// Volume, 1–15 (start only), is the level the call plays at whatever
	// the node's own volume, e.g. low for a drill; 0 means the node's
	// volume (full for an emergency call).
	Volume int `json:"volume,omitempty"`
}

// The binary encoding of Live, the body of a compact envelope (compact.go):
// the controller sends audio frames that way, 60 ms of audio in about 390
// bytes. Layout (str: uvarint length, then the bytes):
//
//	version (1) | kind (1 start, 2 audio, 3 end) | flags (bit 0: drill,
//	bit 1: volume) | [volume (1), if bit 1] | call str | seq uvarint |
//	priority str | title str | reason str | audio
//
// The audio is the rest of the body.
const liveBinaryVersion = 1

var liveKinds = []string{1: LiveStart, 2: LiveAudio, 3: LiveEnd}

const (
	liveFlagDrill  = 1
	liveFlagVolume = 2 // a volume byte, 1–MaxVolume, follows the flags
)

// MarshalBinary encodes l for a compact envelope.
func (l Live) MarshalBinary() ([]byte, error) {
	kind := slices.Index(liveKinds, l.Kind)
	if kind <= 0 {
		return nil, fmt.Errorf("live message kind %q: want start, audio or end", l.Kind)
	}
	if l.Volume < 0 || l.Volume > MaxVolume {
		return nil, fmt.Errorf("live message volume %d: want 0 (the node's) to %d", l.Volume, MaxVolume)
	}
	var flags byte
	if l.Drill {
		flags |= liveFlagDrill
	}
	if l.Volume > 0 {
		flags |= liveFlagVolume
	}
	b := make([]byte, 0, 16+len(l.Call)+len(l.Priority)+len(l.Title)+len(l.Reason)+len(l.Audio))
	b = append(b, liveBinaryVersion, byte(kind), flags)
	if l.Volume > 0 {
		b = append(b, byte(l.Volume))
	}
	b = appendStr(b, l.Call)
	b = binary.AppendUvarint(b, l.Seq)
	b = appendStr(b, string(l.Priority))
	b = appendStr(b, l.Title)
	b = appendStr(b, l.Reason)
	return append(b, l.Audio...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote; unknown versions,
// kinds and flags are refused rather than half understood.
func (l *Live) UnmarshalBinary(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("live message of %d bytes: too short", len(b))
	}
	if b[0] != liveBinaryVersion {
		return fmt.Errorf("live message encoding version %d: this build reads %d", b[0], liveBinaryVersion)
	}
	if int(b[1]) >= len(liveKinds) || b[1] == 0 {
		return fmt.Errorf("live message kind code %d: want 1 (start), 2 (audio) or 3 (end)", b[1])
	}
	if b[2]&^(liveFlagDrill|liveFlagVolume) != 0 {
		return fmt.Errorf("live message flags %#x: unknown bits", b[2])
	}
	r := reader{b: b[3:]}
	m := Live{Kind: liveKinds[b[1]], Drill: b[2]&liveFlagDrill != 0}
	if b[2]&liveFlagVolume != 0 {
		if len(r.b) == 0 {
			return errors.New("live message: volume flag without a volume")
		}
		if m.Volume = int(r.b[0]); m.Volume < 1 || m.Volume > MaxVolume {
			return fmt.Errorf("live message volume %d: want 1 to %d", m.Volume, MaxVolume)
		}
		r.b = r.b[1:]
	}
	m.Call = r.str(maxCompactName)
	m.Seq = r.uvarint()
	m.Priority = Priority(r.str(maxCompactName))
	m.Title = r.str(MaxMessageSize)
	m.Reason = r.str(maxCompactName)
	if r.err != nil {
		return fmt.Errorf("live message: %w", r.err)
	}
	if len(r.b) > 0 {
		m.Audio = append([]byte(nil), r.b...)
	}
	*l = m
	return nil
}

// Validate checks a live message's fields; it does not decode the audio.
func (l *Live) Validate() error {
	if err := CheckID(l.Call); err != nil {
		return fmt.Errorf("live call: %w", err)
	}
	switch l.Kind {
	case LiveStart:
		if l.Priority != PriorityHigh && l.Priority != PriorityEmergency {
			return fmt.Errorf("live start priority %q: want %q or %q", l.Priority, PriorityHigh, PriorityEmergency)
		}
		if l.Volume < 0 || l.Volume > MaxVolume {
			return fmt.Errorf("live start volume %d: want 0 (the node's) to %d", l.Volume, MaxVolume)
		}
	case LiveAudio:
		if len(l.Audio) == 0 {
			return errors.New("live audio frame without audio")
		}
	case LiveEnd:
		if l.Reason != "" && l.Reason != LiveCut {
			return fmt.Errorf("live end reason %q: want %q or none", l.Reason, LiveCut)
		}
	default:
		return fmt.Errorf("live message kind %q: want start, audio or end", l.Kind)
	}
	return nil
}
