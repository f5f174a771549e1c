package protocol

import (
	"errors"
	"fmt"
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
