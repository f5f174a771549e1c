package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// DeliveryState is the fate of one occurrence on one node.
type DeliveryState string

// Delivery states: pending → received → started → completed, or one of the
// other terminal states. A started play that was cut off and will play
// again (a higher level on air, the agent stopping, its content that stopped
// coming) is suspended, not sounding, until it starts again or ends.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryReceived  DeliveryState = "received"
	DeliveryStarted   DeliveryState = "started"
	DeliverySuspended DeliveryState = "suspended"
	DeliveryCompleted DeliveryState = "completed"
	DeliveryFailed    DeliveryState = "failed"
	DeliveryPreempted DeliveryState = "preempted"
	DeliveryMissed    DeliveryState = "missed"
)

// Terminal reports whether no event moves the delivery further.
func (s DeliveryState) Terminal() bool {
	switch s {
	case DeliveryCompleted, DeliveryFailed, DeliveryPreempted, DeliveryMissed:
		return true
	}
	return false
}

// Advance returns the state after a node event of type t, and whether the
// event changes anything. States only move forward, except that a started
// play may be suspended and start again; a terminal state is final, so a
// late or repeated event cannot undo a completed play.
func (s DeliveryState) Advance(t protocol.EventType) (DeliveryState, bool) {
	if s.Terminal() {
		return s, false
	}
	var next DeliveryState
	switch t {
	case protocol.EventReceived:
		next = DeliveryReceived
	case protocol.EventStarted:
		next = DeliveryStarted
	case protocol.EventSuspended:
		next = DeliverySuspended
	case protocol.EventCompleted:
		next = DeliveryCompleted
	case protocol.EventFailed:
		next = DeliveryFailed
	case protocol.EventPreempted:
		next = DeliveryPreempted
	case protocol.EventMissed:
		next = DeliveryMissed
	default:
		return s, false
	}
	if next == s || rank(next) < rank(s) {
		return s, false
	}
	return next, true
}

// rank orders the states; started and suspended share a rank, so that a
// play moves between them as it is cut off and resumes.
func rank(s DeliveryState) int {
	switch s {
	case DeliveryPending:
		return 0
	case DeliveryReceived:
		return 1
	case DeliveryStarted, DeliverySuspended:
		return 2
	}
	return 3
}

// Delivery is one occurrence on one node.
type Delivery struct {
	Announcement string        `json:"announcement"`
	Occurrence   string        `json:"occurrence"`
	Node         string        `json:"node"`
	Start        time.Time     `json:"start"`
	State        DeliveryState `json:"state"`
	Reason       string        `json:"reason,omitempty"`
	LateMS       int64         `json:"late_ms,omitempty"`
	PlayedMS     int64         `json:"played_ms,omitempty"`
	// ChimeSkippedMS is how much of its opening chime's beginning an
	// emergency that began late left out to play on its area's timeline
	// (protocol.Event.ChimeSkippedMS).
	ChimeSkippedMS int64 `json:"chime_skipped_ms,omitempty"`
	// Began says the node began the play at least once (a started
	// event): LateMS and ChimeSkippedMS are that first start's. A play
	// held back before it began (a muted node, no sound device) is
	// suspended without it, and takes its lateness from the start that
	// follows.
	Began bool `json:"began,omitempty"`
	// MessageMS is when the play's content began, after its start, for a
	// play that began with its chime before the content could play
	// (protocol.Event.MessageMS).
	MessageMS int64 `json:"message_ms,omitempty"`
	// ContentReady says the node has the occurrence's audio (its
	// content-ready event, or it started playing), since ContentReadyAt.
	ContentReady   bool      `json:"content_ready"`
	ContentReadyAt time.Time `json:"content_ready_at,omitzero"`
	// ReceivedAt is when the node had the occurrence (its received event,
	// or the first event about it; the node's clock, corrected to the
	// controller's).
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Epoch is the outbox epoch of the node's last report of it: a node
	// that comes online with another no longer holds it (a new store).
	Epoch string `json:"epoch,omitempty"`
	// Resends is how often the controller sent the occurrence again to
	// this node because it had not acknowledged it (emergencies only), the
	// last time at ResentAt.
	Resends  int       `json:"resends,omitempty"`
	ResentAt time.Time `json:"resent_at,omitzero"`
	// CancelResends and CancelResentAt count the same for the cancel of an
	// emergency, resent to a node that had the alert and has not reported
	// it over.
	CancelResends  int       `json:"cancel_resends,omitempty"`
	CancelResentAt time.Time `json:"cancel_resent_at,omitzero"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Priority and PlannedMS (chimes, repeats and gaps included) are what
	// reports count; zero in deliveries stored before they existed.
	Priority  protocol.Priority `json:"priority,omitempty"`
	PlannedMS int64             `json:"planned_ms,omitempty"`
	// FramesPlayed, FramesLost and FramesLate are a live call's frame
	// counts from the node's final event (protocol.Event).
	FramesPlayed int64 `json:"frames_played,omitempty"`
	FramesLost   int64 `json:"frames_lost,omitempty"`
	FramesLate   int64 `json:"frames_late,omitempty"`
	// HeldBy is the play on air on the node that held a live call back
	// when the node received it (protocol.Event.HeldBy): an emergency's
	// id, or a call's. It stays once the call began (its LateMS says
	// when) or was missed.
	HeldBy string `json:"held_by,omitempty"`
	// Drill marks the delivery of an exercise: set on the deliveries of
	// an emergency drill and of a drill live call when they are made.
	Drill bool `json:"drill,omitempty"`
	// Unplanned marks a delivery made from the node's report of an
	// occurrence whose plan the controller had not stored (yet): its Start
	// is the occurrence's own time, it has no Priority or PlannedMS, and
	// its Drill is what the node's event said. An emergency publishes while it stores its deliveries, so its
	// fastest nodes can report first; EnsureDeliveries then puts the plan
	// into such a delivery and clears the mark. An announcement's delivery
	// is made so only from a report of a play: its plan is stored before
	// it is sent, so one missing was dropped.
	Unplanned bool `json:"unplanned,omitempty"`
	// FailedToSound is computed when read, never stored: the delivery is
	// not final and the node has not reported the start (or the end) it
	// owed by now, more than SilenceBound after it was due. The node was
	// off, cut off from the broker, or broken; it may still report later.
	FailedToSound bool `json:"failed_to_sound,omitempty"`
}

// SilenceBound is how long after an occurrence was due to start (or to
// end) the controller waits for the node's event before it flags the
// delivery as failed to sound.
const SilenceBound = 2 * time.Minute

// CheckSilence sets FailedToSound for the time now. A suspended play owes
// its end by the same time as a started one: the controller does not know
// how long what cut it off lasts. One the node's mute holds back (Muted)
// is silent by the officer's choice, with the node's word for it: not
// failed to sound.
func (d *Delivery) CheckSilence(now time.Time, bound time.Duration) {
	if d.Muted() {
		d.FailedToSound = false
		return
	}
	due := d.Start
	if d.State == DeliveryStarted || d.State == DeliverySuspended {
		planned := time.Duration(d.PlannedMS) * time.Millisecond
		if IsLiveCallID(d.Announcement) {
			planned = protocol.MaxLiveDuration // a call's length is not known ahead
		}
		due = due.Add(planned)
	}
	d.FailedToSound = !d.State.Terminal() && now.After(due.Add(bound))
}

// Muted reports whether the node's mute holds the play back: suspended
// with reason muted, it plays once the node is unmuted within its
// deadline, else ends failed muted.
func (d *Delivery) Muted() bool {
	return d.State == DeliverySuspended && d.Reason == protocol.ReasonMuted
}

// DeliveryFilter selects deliveries. Zero fields do not filter.
type DeliveryFilter struct {
	Announcement string
	Node         string
	// From and To select starts in [From, To).
	From time.Time
	To   time.Time
}

// DeliveryService stores deliveries. Events move them (EventService).
type DeliveryService interface {
	// EnsureDeliveries stores the given pending deliveries unless a
	// delivery for the same (occurrence, node) exists. An existing one
	// that is Unplanned takes the given one's Start, Priority, PlannedMS
	// and Drill and keeps what the node reported.
	EnsureDeliveries(ctx context.Context, ds []*Delivery) error
	// FindDeliveries returns deliveries sorted by start, then node.
	FindDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)
	// DropDeliveries deletes, for each node in keep, its pending and
	// received deliveries whose occurrence keep[node] does not hold and
	// that could still play at now: they start after now, or started
	// within their planned length plus grace before it (due, waiting
	// their turn). The scheduler no longer plans them (cancelled,
	// declined, moved). Those older are history: missed, or failed to
	// sound. An emergency's and a live call's stay: they are sent, not
	// scheduled. All the nodes' are dropped in one transaction, or none.
	DropDeliveries(ctx context.Context, keep map[string]map[string]bool, now time.Time, grace time.Duration) error
	// NoteResends counts one more resend of occurrence, at at, to each of
	// nodes (Delivery.Resends); nodes without a delivery of it are skipped.
	NoteResends(ctx context.Context, occurrence string, nodes []string, at time.Time) error
	// NoteCancelResends counts one more resend of the cancel of
	// occurrence, at at, to each of nodes (Delivery.CancelResends); nodes
	// without a delivery of it are skipped.
	NoteCancelResends(ctx context.Context, occurrence string, nodes []string, at time.Time) error
	// NoteLost notes, at at, that node no longer holds occurrence (it came
	// online from a new store): a play of it that had started is
	// suspended, reason interrupted, until the node starts it again.
	NoteLost(ctx context.Context, occurrence, node string, at time.Time) error
}
