package protocol

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Priority is the national level of a broadcast. Higher levels preempt lower
// ones at once on the node; equal levels queue in order.
type Priority string

// Priority levels, lowest first.
const (
	PriorityBackground Priority = "background" // relayed programmes, music
	PriorityNormal     Priority = "normal"     // thông thường
	PriorityHigh       Priority = "priority"   // ưu tiên
	PriorityEmergency  Priority = "emergency"  // khẩn cấp
)

// Rank orders priorities: background 0 … emergency 3, unknown -1.
func (p Priority) Rank() int {
	switch p {
	case PriorityBackground:
		return 0
	case PriorityNormal:
		return 1
	case PriorityHigh:
		return 2
	case PriorityEmergency:
		return 3
	}
	return -1
}

// Valid reports whether p is a known level.
func (p Priority) Valid() bool { return p.Rank() >= 0 }

// DesiredState is everything the controller wants one node to run: the
// concrete occurrences for the coming days and the content they need. It is
// published retained on the node's desired topic; the node stores it and
// runs it, offline if need be, until a higher Version replaces it.
type DesiredState struct {
	Node    string `json:"node"`
	Version uint64 `json:"version"`
	// Areas is the node's area followed by its ancestors up to the root. The
	// node subscribes to the cmd topic of each.
	Areas     []string  `json:"areas"`
	Generated time.Time `json:"generated"`
	// Horizon is the end of the window the occurrences cover.
	Horizon     time.Time    `json:"horizon"`
	Occurrences []Occurrence `json:"occurrences"`
	Content     []ContentRef `json:"content"`
	Config      NodeConfig   `json:"config"`
	// Keys, when present, is the set of controller keys the node trusts
	// from now on: the controller announces a new key here (signed by the
	// current one) before it signs with it, and retires the old one by
	// leaving it out. It must contain the key that signed this message.
	Keys []PublicKey `json:"keys,omitempty"`
}

// Occurrence is one scheduled play of content at an instant.
type Occurrence struct {
	// ID is unique per announcement occurrence; the same on every node.
	ID           string    `json:"id"`
	Announcement string    `json:"announcement"`
	Title        string    `json:"title,omitempty"`
	Content      string    `json:"content"`
	Priority     Priority  `json:"priority"`
	Start        time.Time `json:"start"`
	DurationMS   int64     `json:"duration_ms"`

	// The fields below were added after the first version of the contract;
	// a node that does not know them plays the content once at Start, and a
	// zero value means exactly that.

	// Repeat is how many times Content plays, with GapMS of silence between
	// plays (0 and 1 both mean once).
	Repeat int   `json:"repeat,omitempty"`
	GapMS  int64 `json:"gap_ms,omitempty"`
	// OpeningChime and ClosingChime are content ids (listed in Content)
	// played before the first and after the last repeat; a chime that is
	// not cached is skipped rather than holding up the bulletin.
	OpeningChime string `json:"opening_chime,omitempty"`
	ClosingChime string `json:"closing_chime,omitempty"`
	// Intro is a content id (listed in Content) played once after the
	// opening chime and before the first repeat: a recording kept on the
	// node (a CAP event type's) that sounds at once while Content, the
	// alert's own words, may still be downloading. A node that does not
	// know the field plays Content alone.
	Intro string `json:"intro,omitempty"`
	// OnPreempt says what happens when a higher level cuts the occurrence
	// off: PreemptResume (the default, also for "") plays it again from the
	// beginning once the higher one is over, if that is no later than
	// PlayBy; PreemptDrop ends it as preempted.
	OnPreempt string `json:"on_preempt,omitempty"`
	// PlayBy is the latest instant the occurrence may start, or start again
	// after being cut off: the end of its session for an item in a session.
	// Zero, or earlier than Start plus the late grace, means Start plus the
	// late grace (NodeConfig.LateGraceMS).
	PlayBy time.Time `json:"play_by,omitzero"`
	// Session names the session instance the occurrence belongs to, e.g.
	// "s000001@20250301", for display and reports.
	Session string `json:"session,omitempty"`
	// Stream is a live HTTP MP3 stream (a station's Icecast URL) that a
	// background occurrence relays for DurationMS instead of playing
	// Content, which is then empty (programme relay, tiếp sóng).
	Stream string `json:"stream,omitempty"`
	// Live names the live call (Live.Call) whose frames the occurrence
	// plays instead of Content; nodes make such occurrences themselves
	// from a live start message (docs/live.md), never from a desired state.
	Live string `json:"live,omitempty"`

	// The fields below are set on emergency alerts (see Alert).

	// Volume, 1–15, is the level to play at whatever the node's own volume
	// or mute; 0 means the node's default.
	Volume int `json:"volume,omitempty"`
	// Expires, when set, is the exact deadline: the occurrence never
	// starts, or starts again, after it, whatever the late grace.
	Expires time.Time `json:"expires,omitzero"`
	// Drill marks an exercise (diễn tập): the node says so in its log and
	// every event it reports about the occurrence.
	Drill bool `json:"drill,omitempty"`
}

// Preemption policies of an Occurrence.
const (
	PreemptResume = "resume"
	PreemptDrop   = "drop"
)

// Plays returns how many times the content plays (at least 1).
func (o *Occurrence) Plays() int { return max(o.Repeat, 1) }

// Deadline returns the latest instant o may start or start again, given
// the node's late grace.
func (o *Occurrence) Deadline(grace time.Duration) time.Time {
	if !o.Expires.IsZero() {
		return o.Expires
	}
	d := o.Start.Add(grace)
	if o.Stream != "" {
		// A relay may start or resume until its window ends.
		if end := o.Start.Add(time.Duration(o.DurationMS) * time.Millisecond); end.After(d) {
			d = end
		}
	}
	if o.PlayBy.After(d) {
		return o.PlayBy
	}
	return d
}

// Resumes reports whether o plays again after being cut off.
func (o *Occurrence) Resumes() bool { return o.OnPreempt != PreemptDrop }

// ContentRef tells a node where to fetch content and how to check it. The
// content id is the hex SHA-256 of the bytes served.
type ContentRef struct {
	ID         string `json:"id"`
	Size       int64  `json:"size"`
	DurationMS int64  `json:"duration_ms"`
	// Path is the HTTP path on the controller, e.g. /api/v1/content/{id}/audio.
	Path string `json:"path"`
	// Chunks is the ChunkRoot of the content's chunk list (GET
	// /api/v1/content/{id}/chunks): with it a node checks each 16 KiB
	// (ChunkSize) as it arrives and may play the content as it downloads.
	// Without it a node plays only the whole verified file.
	Chunks string `json:"chunks,omitempty"`
}

// NodeConfig carries settings the node applies.
type NodeConfig struct {
	// Volume is the default level 0–15 for non-emergency plays: 15 plays
	// the content as it is, each step below is 2 dB quieter, 0 is silent.
	// Emergencies always play at 15.
	Volume int `json:"volume"`
	// Muted holds non-emergency plays back: each is suspended with
	// ReasonMuted (stopped, if on air) and plays from the beginning if the
	// node is unmuted before its deadline, else ends failed with
	// ReasonMuted, so reports show it was not heard. Emergencies are never
	// muted.
	Muted bool `json:"muted,omitempty"`
	// AmplifierPolicy is AmpAuto (""; on only around plays) or AmpAlwaysOn
	// (kept on, for amplifiers that take long to warm up).
	AmplifierPolicy string `json:"amplifier_policy,omitempty"`
	// LateGraceMS is how late after its start an occurrence may still begin
	// (after a reboot or a late desired state); later than that it is missed.
	LateGraceMS int64 `json:"late_grace_ms"`
}

// Validate checks a desired state a node is about to run.
func (d *DesiredState) Validate() error {
	if err := CheckID(d.Node); err != nil {
		return fmt.Errorf("desired state: node: %w", err)
	}
	if d.Version == 0 {
		return fmt.Errorf("desired state for %s: version 0", d.Node)
	}
	refs := make(map[string]bool, len(d.Content))
	for _, c := range d.Content {
		if !ValidContentID(c.ID) {
			return fmt.Errorf("desired state for %s: content id %q is not a hex SHA-256", d.Node, c.ID)
		}
		refs[c.ID] = true
	}
	for _, k := range d.Keys {
		if _, err := k.Parse(); err != nil {
			return fmt.Errorf("desired state for %s: keys: %w", d.Node, err)
		}
	}
	seen := make(map[string]bool, len(d.Occurrences))
	for _, o := range d.Occurrences {
		switch {
		case o.ID == "" || seen[o.ID]:
			return fmt.Errorf("desired state for %s: occurrence id %q empty or repeated", d.Node, o.ID)
		case o.Stream != "":
			if err := checkStream(o); err != nil {
				return fmt.Errorf("desired state for %s: occurrence %s: %w", d.Node, o.ID, err)
			}
		case !refs[o.Content]:
			return fmt.Errorf("desired state for %s: occurrence %s needs content %s that is not listed", d.Node, o.ID, o.Content)
		case !o.Priority.Valid():
			return fmt.Errorf("desired state for %s: occurrence %s: unknown priority %q", d.Node, o.ID, o.Priority)
		case o.Start.IsZero():
			return fmt.Errorf("desired state for %s: occurrence %s has no start", d.Node, o.ID)
		case o.OpeningChime != "" && !refs[o.OpeningChime] || o.ClosingChime != "" && !refs[o.ClosingChime]:
			return fmt.Errorf("desired state for %s: occurrence %s needs a chime that is not listed", d.Node, o.ID)
		case o.Intro != "" && !refs[o.Intro]:
			return fmt.Errorf("desired state for %s: occurrence %s needs an intro %s that is not listed", d.Node, o.ID, o.Intro)
		case o.Repeat < 0 || o.Repeat > MaxRepeat || o.GapMS < 0 || o.GapMS > MaxGapMS:
			return fmt.Errorf("desired state for %s: occurrence %s: repeat %d with gap %d ms is out of range", d.Node, o.ID, o.Repeat, o.GapMS)
		case o.OnPreempt != "" && o.OnPreempt != PreemptResume && o.OnPreempt != PreemptDrop:
			return fmt.Errorf("desired state for %s: occurrence %s: unknown preemption policy %q", d.Node, o.ID, o.OnPreempt)
		}
		seen[o.ID] = true
	}
	return nil
}

// Bounds on repeats, so that a bad desired state cannot keep a speaker
// busy for hours.
const (
	MaxRepeat = 10
	MaxGapMS  = 10 * 60 * 1000
)

// ValidContentID reports whether s is a lower-case hex SHA-256.
func ValidContentID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Amplifier power policies of NodeConfig.
const (
	AmpAuto     = "auto"
	AmpAlwaysOn = "always-on"
)

// Volume levels of NodeConfig.
const (
	MinVolume = 0
	MaxVolume = 15
)

// Command names. A command is for the moment: it carries a short expiry and
// is never retained.
const (
	// CmdAck acknowledges the node's events up to and including Seq of Epoch;
	// the node may drop them from its outbox.
	CmdAck = "ack"
	// CmdStateNow asks the node to publish its state at once.
	CmdStateNow = "state-now"
	// CmdReboot asks the node to restart its agent (or its board, where
	// the board file says how).
	CmdReboot = "reboot"
	// CmdSelfTest runs a self-test (Test: TestSilent or TestAudible); the
	// node reports an EventSelfTest with the result.
	CmdSelfTest = "self-test"
)

// Self-test kinds.
const (
	// TestSilent switches the amplifier on and checks the relay feedback,
	// the amplifier's fault output and the speaker line; nothing is heard.
	TestSilent = "silent"
	// TestAudible does the same while a test tone plays at TestVolume.
	TestAudible = "audible"
)

// TestVolume is the level of the audible test tone: heard close to the
// speaker, not across the village.
const TestVolume = 3

// Command is the body of a cmd message.
type Command struct {
	Name string `json:"name"`
	// Ack fields.
	Epoch string `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	// Gap, on an ack, is the first sequence of a batch the controller
	// took after a gap: it holds the events up to Seq and none of those
	// after, so the node sends again from Seq+1 at once, not after its
	// AckTimeout. A node ignores it for a batch sent before it last went
	// back (its copies past the same gap say nothing new).
	Gap uint64 `json:"gap,omitempty"`
	// Alert is the emergency of an alert command.
	Alert *Alert `json:"alert,omitempty"`
	// Occurrence names the alert an alert-cancel command stops.
	Occurrence string `json:"occurrence,omitempty"`
	// Self-test fields: the kind and the controller's id of the run, which
	// the result carries back.
	Test   string `json:"test,omitempty"`
	TestID string `json:"test_id,omitempty"`
	// Probe names a CmdProbe, which the node's ProbeReceipts carry back.
	Probe string `json:"probe,omitempty"`
	// Update is the release to install, for CmdUpdate.
	Update *Update `json:"update,omitempty"`
}

// Status is a node's connectivity as published on its state topic.
type Status string

// Node statuses.
const (
	StatusOnline  Status = "online"
	StatusOffline Status = "offline"
)

// State is the body of a node's retained state message. The Last Will the
// node registers is a State with Status offline.
type State struct {
	Status         Status    `json:"status"`
	At             time.Time `json:"at"`
	Agent          string    `json:"agent,omitempty"`
	DesiredVersion uint64    `json:"desired_version"`
	// Playing is the occurrence on air, if any.
	Playing *Playing `json:"playing,omitempty"`
	// ClockOffsetMS is controller time minus node system time, as measured.
	ClockOffsetMS int64 `json:"clock_offset_ms"`
	// ClockUncertaintyUS is how far the node's corrected clock may be off
	// the controller's, in microseconds: half the round trip of the
	// measurement in use plus 100 ppm of drift since it. Absent before the
	// first measurement. A node whose clock is uncertain by more than ten
	// milliseconds may start out of step with its neighbours.
	ClockUncertaintyUS int64 `json:"clock_uncertainty_us,omitempty"`
	// ContentMissing lists content the desired state needs and the node
	// does not have yet.
	ContentMissing []string `json:"content_missing,omitempty"`
	// CacheBytes is what the node's content cache holds, CacheLimit its
	// size limit; CacheBytes is over the limit only when the content the
	// desired state needs is.
	CacheBytes int64  `json:"cache_bytes,omitempty"`
	CacheLimit int64  `json:"cache_limit,omitempty"`
	Board      *Board `json:"board,omitempty"`
	Rejected   uint64 `json:"rejected"` // controller messages refused since start
	Outbox     int    `json:"outbox"`   // events not yet acknowledged
	// Keys are the ids of the controller keys the node trusts, so the
	// controller knows when every node has learnt an announced key.
	Keys []string `json:"keys,omitempty"`
	// Epoch is the node's outbox epoch (EventBatch.Epoch), made with its
	// store: a node whose epoch changed started on a new store (its old
	// one damaged, or the board replaced) and no longer holds what it was
	// sent, such as an alert it had reported received. Absent from older
	// nodes.
	Epoch string `json:"epoch,omitempty"`

	// The fields below were added for fleet health; an older node leaves
	// them out.

	// HeartbeatMS is the node's heartbeat interval: it publishes its state
	// at least this often, so the controller can tell a half-open link
	// (no Last Will, no messages) from a quiet node.
	HeartbeatMS int64 `json:"heartbeat_ms,omitempty"`
	// UptimeS is how long the agent has been running.
	UptimeS int64 `json:"uptime_s,omitempty"`
	// DiskFreeBytes is the free space on the node's data volume; absent
	// when it cannot be measured.
	DiskFreeBytes *int64 `json:"disk_free_bytes,omitempty"`
	// StorageDamaged is how many files the node found damaged in the last
	// 24 hours on the board's storage (a failing SD card): cached files,
	// verified when stored and their bytes changed since, each fetched
	// again; and its store, set aside and started anew.
	StorageDamaged int `json:"storage_damaged,omitempty"`
	// LinkDeaf is how many times in the last 24 hours (since the agent
	// started, if later) the node found the broker no longer delivering to
	// it while connected (its own state did not come back) and reconnected
	// (node/mqtt).
	LinkDeaf int `json:"link_deaf,omitempty"`
	// AreasUnheard are the areas of the node's chain whose cmd or live
	// topic the broker has not granted it while connected (an ACL not yet
	// updated after the node moved): it would miss their alerts. The node
	// keeps subscribing until it hears them (node/mqtt).
	AreasUnheard []string `json:"areas_unheard,omitempty"`
	// Volume, Muted and AmplifierPolicy are the settings the node applies
	// (from its desired state's NodeConfig); Volume is absent in a Last
	// Will and from older nodes.
	Volume          *int   `json:"volume,omitempty"`
	Muted           bool   `json:"muted,omitempty"`
	AmplifierPolicy string `json:"amplifier_policy,omitempty"`
	// ProbeReceipts are when the node had the controller's latest probes
	// (CmdProbe), newest last, at most MaxProbeReceipts, none older than
	// ProbeReceiptAge.
	ProbeReceipts []ProbeReceipt `json:"probe_receipts,omitempty"`
	// NoSoundDevice is why the node has no sound device: the error
	// opening it when the agent started (a USB sound card unplugged, or
	// not yet there at boot). The agent runs on without it, begins no
	// play, and restarts once the device can be opened. Empty when the
	// node has its device.
	NoSoundDevice string `json:"no_sound_device,omitempty"`
	// StorageFault is why the node could not open its store on its
	// storage (the SD card gone read-only, full, or failing with I/O
	// errors): the error. The node runs on a store in memory meanwhile:
	// it plays what the card holds, downloads what is new into memory, and
	// forgets its state and those downloads at its next restart. Absent
	// when the store is on the card.
	StorageFault string `json:"storage_fault,omitempty"`
}

// Playing describes what a node has on air.
type Playing struct {
	Occurrence string    `json:"occurrence"`
	Content    string    `json:"content"`
	Priority   Priority  `json:"priority"`
	Since      time.Time `json:"since"`
	// Drill says the node plays an exercise (Occurrence.Drill).
	Drill bool `json:"drill,omitempty"`
}

// Board is the hardware snapshot a node reports. A sensor the board does
// not have is absent (nil or ""), never zero: "no battery voltage" and
// "0 V" mean different things to a technician.
type Board struct {
	// Amplifier is the relay's feedback contact: the amplifier is powered.
	Amplifier bool `json:"amplifier"`
	// AmplifierCommand is where the relay was last told to go; a feedback
	// that disagrees with it is a stuck or welded relay.
	AmplifierCommand *bool `json:"amplifier_command,omitempty"`
	// AmplifierFault is the amplifier module's fault output (protection,
	// overload, overtemperature).
	AmplifierFault *bool `json:"amplifier_fault,omitempty"`
	// SpeakerLine is the last speaker-line check: LineOK (a load is
	// present), LineOpen or LineShort; SpeakerOhms the impedance measured.
	SpeakerLine SpeakerLine `json:"speaker_line,omitempty"`
	SpeakerOhms *float64    `json:"speaker_ohms,omitempty"`
	Mains       *bool       `json:"mains,omitempty"`
	// BatteryVolts is the backup battery's voltage; Charging whether the
	// charger is putting charge into it.
	BatteryVolts *float64 `json:"battery_volts,omitempty"`
	Charging     *bool    `json:"charging,omitempty"`
	TemperatureC *float64 `json:"temperature_c,omitempty"`
	// DoorOpen is the enclosure's tamper switch.
	DoorOpen *bool `json:"door_open,omitempty"`
	// RSSIDBm is the modem's received signal strength; Link the link type
	// in use: "4g", "3g", "2g", "ethernet", "wifi".
	RSSIDBm *int   `json:"rssi_dbm,omitempty"`
	Link    string `json:"link,omitempty"`
}

// SpeakerLine is the result of a speaker-line check.
type SpeakerLine string

// Speaker-line check results.
const (
	LineOK    SpeakerLine = "ok"    // the impedance is in the load's range
	LineOpen  SpeakerLine = "open"  // no load: a cut cable or a disconnected speaker
	LineShort SpeakerLine = "short" // far below the load: a short in the cable or a speaker
)

// EventType is what a node reports it did.
type EventType string

// Event types.
const (
	EventReceived  EventType = "received"  // the occurrence is in the node's stored desired state
	EventStarted   EventType = "started"   // audio began; LateMS says how late
	EventCompleted EventType = "completed" // audio played to the end
	EventFailed    EventType = "failed"    // could not play; Reason says why
	EventMissed    EventType = "missed"    // the node could not start in time (was off, or too late)
	EventPreempted EventType = "preempted" // cut off by a higher priority and not resumed
	// EventSuspended is not final: the occurrence was cut off (by a higher
	// priority, or the agent stopping) and will start again from the
	// beginning; Reason says what cut it off. A later started event follows,
	// or a final one if it cannot start again in time.
	EventSuspended EventType = "suspended"
	// EventContentReady: the node has the occurrence's content cached and
	// verified, or downloading fast enough to play as it arrives: ready to
	// play. Sent once per occurrence, after received, as soon as both the
	// occurrence and its content are on the node.
	EventContentReady EventType = "content-ready"
	// EventSelfTest carries the result of a self-test (Test), not of an
	// occurrence.
	EventSelfTest EventType = "self-test"
)

// TestResult is what a self-test found.
type TestResult struct {
	// ID is the Command's TestID; Kind TestSilent or TestAudible.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Pass is true when every check passed; Problems names those that did
	// not (e.g. "speaker-line-open", "relay-feedback", "amplifier-fault",
	// "busy").
	Pass     bool        `json:"pass"`
	Problems []string    `json:"problems,omitempty"`
	Line     SpeakerLine `json:"speaker_line,omitempty"`
	Ohms     *float64    `json:"speaker_ohms,omitempty"`
}

// Self-test problems.
const (
	ProblemRelay     = "relay-feedback"    // the relay did not follow the command
	ProblemAmplifier = "amplifier-fault"   // the amplifier's fault output is on
	ProblemLineOpen  = "speaker-line-open" // no load on the speaker line
	ProblemLineShort = "speaker-line-short"
	ProblemNoLine    = "no-line-check" // the board cannot check its line
	ProblemAudio     = "audio-device"  // the test tone could not be played
	ProblemBusy      = "busy"          // something was playing or due; try again
)

// Failure reasons reported in Event.Reason.
const (
	ReasonContentMissing = "content-missing"
	ReasonAudioDevice    = "audio-device"
	ReasonAmplifier      = "amplifier"
	ReasonInterrupted    = "interrupted" // the agent stopped while playing
	ReasonRemoved        = "removed"     // a newer desired state dropped the occurrence
	ReasonTooLate        = "too-late"
	ReasonPreempted      = "preempted" // a higher priority took the speaker
	ReasonCancelled      = "cancelled" // the controller cancelled the alert
	ReasonMuted          = "muted"     // the node is muted (never for emergencies)
	// ReasonCorrected: the occurrence was corrected while it played (the
	// same id with other audio, a wrong recording replaced); the node
	// stopped it to play the correction from the beginning.
	ReasonCorrected = "corrected"
	// ReasonExpired: an alert expired while the node was stopped, before
	// it could play it (again).
	ReasonExpired = "expired"
	ReasonCut     = "cut" // a live call cut off by an officer (Live.Reason LiveCut)
)

// Event is one thing a node did. Seq is per node and epoch, without gaps.
type Event struct {
	Seq          uint64    `json:"seq"`
	Type         EventType `json:"type"`
	At           time.Time `json:"at"`
	Occurrence   string    `json:"occurrence,omitempty"`
	Announcement string    `json:"announcement,omitempty"`
	Content      string    `json:"content,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	LateMS       int64     `json:"late_ms,omitempty"`
	PlayedMS     int64     `json:"played_ms,omitempty"`
	// ContentPending, on a started event, says the play began with its
	// opening chime while its content could not play yet (an emergency
	// does not wait for the link); its content-ready event follows when
	// it can. Without it a start proves the node has the content.
	ContentPending bool `json:"content_pending,omitempty"`
	// ChimeSkippedMS, on a started event of an emergency that began late
	// (LateMS) by less than its opening chime's length, is how much of
	// the chime's beginning it left out, so that the rest of the alert
	// plays on its area's timeline, in step with the nodes that began on
	// time: it is LateMS - ChimeSkippedMS off that timeline, not LateMS.
	ChimeSkippedMS int64 `json:"chime_skipped_ms,omitempty"`
	// MessageMS, on the final (or suspended) event of a play that began
	// before its content could play (ContentPending) and reached the
	// content's place before it could (the content came after the chime's
	// end), is when the content's first repeat began, in ms of play after
	// the start: the chime, any intro, the silence while the content was
	// awaited and any chime again. The nodes of an area that began together play their
	// first repeat at the end of the chime and intro and each next one a
	// repeat (content and GapMS) later; a node whose MessageMS falls on one
	// of those instants played its message in step with them. The
	// play's content-ready event carries it too, as the node places the
	// content once it came (it may wait to begin on such an instant).
	MessageMS int64 `json:"message_ms,omitempty"`
	// Drill marks events about an exercise (Occurrence.Drill).
	Drill bool `json:"drill,omitempty"`
	// FramesPlayed, FramesLost and FramesLate count a live call's frames
	// on the final event of its play: played as sent, played as silence
	// because they never came in time, and come after their place was
	// played (dropped).
	FramesPlayed int64 `json:"frames_played,omitempty"`
	FramesLost   int64 `json:"frames_lost,omitempty"`
	FramesLate   int64 `json:"frames_late,omitempty"`
	// HeldBy, on a live call's received event, is the announcement of the
	// play on air that holds the call back on the node (an emergency's id,
	// or a live call's): an alert or a call of the call's level or above,
	// which it does not preempt. The call
	// begins once that is over, within its start window (its started event
	// says how late), or is missed. Empty: nothing held it. Older
	// controllers ignore it.
	HeldBy string `json:"held_by,omitempty"`
	// Test is the result of a self-test, on EventSelfTest.
	Test *TestResult `json:"test,omitempty"`
	// Version is the agent version an update event is about.
	Version string `json:"version,omitempty"`
}

// Limits on what one event may carry (Event.Validate). The controller keeps
// ids of events in its store's keys, which bbolt limits to 32 KiB, and times
// derived from them in JSON, which holds the years 0 to 9999 only.
const (
	// MaxEventTypeLen bounds Event.Type.
	MaxEventTypeLen = 32
	// MaxEventIDLen bounds each id an event names: its occurrence,
	// announcement and content, the agent version and a self-test's id
	// and kind.
	MaxEventIDLen = 256
	// MaxEventTextLen bounds an event's reason and each self-test
	// problem: free text, which may carry an error's chain (a failed
	// update's download).
	MaxEventTextLen = 4096
	// MaxEventProblems bounds TestResult.Problems.
	MaxEventProblems = 32
	// MaxEventSpanMS bounds the durations an event reports (LateMS,
	// PlayedMS, MessageMS, ChimeSkippedMS), either way: ten years of 365
	// days, far beyond a node that was off for a season.
	MaxEventSpanMS = 10 * 365 * 24 * 3600 * 1000
)

// Times an event may carry (At): a board whose clock was never set reads
// 1970, and nothing a node reports happens after 3000.
var (
	minEventTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEventTime = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate reports what makes e an event the controller cannot take: a
// type that is not a short token of a-z, 0-9 and '-', an id longer than
// MaxEventIDLen or with control characters or invalid UTF-8, a reason or
// problem longer than MaxEventTextLen,
// a time outside the years 1900 to 2999, or a duration beyond
// MaxEventSpanMS. Types it does not know are valid: a newer node may
// report more. It does not look at Seq, which the batch orders.
func (e *Event) Validate() error {
	if err := checkEventType(e.Type); err != nil {
		return fmt.Errorf("event %d: %w", e.Seq, err)
	}
	if !e.At.IsZero() && (e.At.Before(minEventTime) || !e.At.Before(maxEventTime)) {
		return fmt.Errorf("event %d: time %s is outside the years 1900 to 2999", e.Seq, e.At.Format(time.RFC3339))
	}
	for _, f := range []struct {
		name string
		ms   int64
	}{{"late_ms", e.LateMS}, {"played_ms", e.PlayedMS}, {"message_ms", e.MessageMS}, {"chime_skipped_ms", e.ChimeSkippedMS}} {
		if f.ms > MaxEventSpanMS || f.ms < -MaxEventSpanMS {
			return fmt.Errorf("event %d: %s %d is beyond ten years either way", e.Seq, f.name, f.ms)
		}
	}
	ids := []struct{ name, s string }{
		{"occurrence", e.Occurrence}, {"announcement", e.Announcement}, {"content", e.Content}, {"version", e.Version},
		{"held_by", e.HeldBy},
	}
	texts := []struct{ name, s string }{{"reason", e.Reason}}
	if t := e.Test; t != nil {
		if len(t.Problems) > MaxEventProblems {
			return fmt.Errorf("event %d: %d self-test problems, the limit is %d", e.Seq, len(t.Problems), MaxEventProblems)
		}
		ids = append(ids, struct{ name, s string }{"test id", t.ID}, struct{ name, s string }{"test kind", t.Kind})
		for _, p := range t.Problems {
			texts = append(texts, struct{ name, s string }{"test problem", p})
		}
	}
	for _, f := range texts {
		if len(f.s) > MaxEventTextLen {
			return fmt.Errorf("event %d: %s %.20q… is %d bytes long, the limit is %d", e.Seq, f.name, f.s, len(f.s), MaxEventTextLen)
		}
	}
	for _, f := range ids {
		if len(f.s) > MaxEventIDLen {
			return fmt.Errorf("event %d: %s %.20q… is %d bytes long, the limit is %d", e.Seq, f.name, f.s, len(f.s), MaxEventIDLen)
		}
		if err := checkEventID(f.s); err != nil {
			return fmt.Errorf("event %d: %s %w", e.Seq, f.name, err)
		}
	}
	return nil
}

// checkEventType explains why t cannot be an event type, or returns nil.
func checkEventType(t EventType) error {
	if t == "" {
		return fmt.Errorf("no type")
	}
	if len(t) > MaxEventTypeLen {
		return fmt.Errorf("type %.20q… is %d bytes long, the limit is %d", t, len(t), MaxEventTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("type %q has %q at position %d: use a-z, 0-9 and '-'", t, string(rune(c)), i)
		}
	}
	return nil
}

// checkEventID explains why s cannot be an id an event names (the
// controller keys its records with them, its parts separated by NUL), or
// returns nil.
func checkEventID(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%.20q is not valid UTF-8", s)
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%.20q has the control character %U at byte %d", s, r, i)
		}
	}
	return nil
}

// EventBatch is the body of an events message: consecutive events from the
// node's outbox. Epoch identifies the outbox; it changes only if the node's
// store is wiped, which restarts Seq at 1.
type EventBatch struct {
	Epoch  string  `json:"epoch"`
	Events []Event `json:"events"`
	// Salvaged marks events of an earlier outbox (Epoch is that outbox's,
	// not the node's own) that the node read back from a damaged store,
	// or copied from a card that takes no writes, and sends under their
	// old numbers, so that those the controller already stored are
	// dropped as resends. They happened before anything of the node's
	// own epoch: the controller stores them and acknowledges them at
	// once, and they do not move what it tracks of the node now.
	Salvaged bool `json:"salvaged,omitempty"`
	// Acked is the highest sequence of Epoch the node holds acknowledged
	// (0: none, or an older node): the events up to it are no longer in
	// its outbox. A controller that holds fewer of them stored them once
	// and lost them since (a store restored from a backup) and takes the
	// batch from there rather than wait for events the node cannot send.
	Acked uint64 `json:"acked,omitempty"`
}
