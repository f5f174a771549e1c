package agent

import (
	"errors"
	"time"

	"loaxa.vn/protocol"
)

// Store is the node's durable memory: what it was told to run, what it did
// with each occurrence, the events not yet acknowledged, and the commands it
// has already accepted. node/store has two implementations with the same
// behaviour: bbolt (one file per board) and memory (simulated fleets).
//
// The agent calls it from one goroutine at a time except for the reads of
// the outbox, so implementations must be safe for concurrent use.
type Store interface {
	// AlertStore keeps the emergency alerts held (alertstore.go).
	AlertStore

	// Epoch identifies this store's outbox; it is random, made once when
	// the store is created, and never changes afterwards.
	Epoch() string

	// Desired returns the desired state the node runs, or nil if it has
	// never received one.
	Desired() (*protocol.DesiredState, error)
	// SetDesired replaces the desired state.
	SetDesired(d *protocol.DesiredState) error

	// Progress returns the progress mark of every occurrence the node has
	// reported anything about, keyed by occurrence id.
	Progress() (map[string]Progress, error)
	// Append adds events to the outbox and records marks in one atomic
	// step, so that after a crash either both are there or neither: an
	// event can be neither lost nor emitted twice. It assigns each event
	// the next sequence number of the epoch (1, 2, 3, … without gaps) and
	// returns the events as stored.
	Append(events []protocol.Event, marks []Progress) ([]protocol.Event, error)
	// PruneProgress forgets the marks of occurrences that keep does not
	// hold and that started before before; they can no longer be played.
	PruneProgress(keep map[string]bool, before time.Time) error

	// Outbox reports the sequence range of the outbox: events Acked+1 …
	// Last are waiting for acknowledgement.
	Outbox() (Outbox, error)
	// Events returns up to limit outbox events with a sequence above
	// after, in sequence order.
	Events(after uint64, limit int) ([]protocol.Event, error)
	// Ack drops the events of epoch up to and including seq, of the
	// store's own outbox or of an earlier one it keeps (Salvaged). An ack
	// for any other epoch returns ErrEpoch and changes nothing; one beyond
	// the last event drops everything.
	Ack(epoch string, seq uint64) error
	// Salvaged returns up to limit events, in sequence order, of one
	// earlier outbox the store keeps to send, and that outbox's epoch:
	// events read back from a store that was damaged, or copied from a
	// card that takes no writes (protocol.EventBatch.Salvaged). It returns
	// none when it keeps none. They leave the store as Ack acknowledges
	// them.
	Salvaged(limit int) (epoch string, events []protocol.Event, err error)

	// ReplayEntries returns the accepted-command entries that have not
	// expired by now.
	ReplayEntries(now time.Time) ([]protocol.ReplayEntry, error)
	// AddReplay remembers an accepted command until it expires and forgets
	// entries that expired by now.
	AddReplay(e protocol.ReplayEntry, now time.Time) error

	// Keys returns the controller keys the node learnt from a desired
	// state (protocol.DesiredState.Keys), or nil if it learnt none and
	// trusts the keys of its credentials.
	Keys() ([]protocol.PublicKey, error)
	// SetKeys replaces the learnt controller keys.
	SetKeys(keys []protocol.PublicKey) error

	// ClockFloor returns the time SetClockFloor stored last (zero if
	// never): a time the controller's clock was known to have reached
	// (clockfloor.go).
	ClockFloor() (time.Time, error)
	// SetClockFloor replaces the clock floor.
	SetClockFloor(t time.Time) error
}

// ErrEpoch is returned by Store.Ack for an acknowledgement of another
// outbox epoch (one from before the store was recreated).
var ErrEpoch = errors.New("acknowledgement for another outbox epoch")

// Outbox is the sequence range of a store's event outbox.
type Outbox struct {
	Acked uint64 // highest acknowledged sequence (0: none)
	Last  uint64 // highest sequence appended (0: none)
}

// Len returns how many events wait for acknowledgement.
func (o Outbox) Len() int { return int(o.Last - o.Acked) }

// Phase is how far the node got with one occurrence.
type Phase string

// Phases of an occurrence on the node, in order.
const (
	PhaseReceived Phase = "received" // the received event is in the outbox
	PhaseStarted  Phase = "started"  // the started event is in the outbox; audio may be playing
	// PhaseSuspended: cut off (by a higher level, or the agent stopping)
	// and waiting to start again from the beginning; the suspended event
	// is in the outbox.
	PhaseSuspended Phase = "suspended"
	PhaseDone      Phase = "done" // a final event (completed, failed, missed, preempted) is in the outbox
)

// Progress is the durable mark of one occurrence: the last phase whose event
// has been written. It carries what a final event needs even after the
// occurrence left the desired state (e.g. to report an interrupted play).
type Progress struct {
	Occurrence   string    `json:"occurrence"`
	Announcement string    `json:"announcement,omitempty"`
	Content      string    `json:"content,omitempty"`
	Start        time.Time `json:"start"`
	Phase        Phase     `json:"phase"`
	// ReceivedAt is when the node first had the occurrence.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// StartedAt is when audio began, for a started occurrence.
	StartedAt time.Time `json:"started_at,omitzero"`
	// ContentReady records that content-ready was reported.
	ContentReady bool `json:"content_ready,omitempty"`
	// CutBy is why a suspended occurrence was cut off
	// (protocol.ReasonPreempted or ReasonInterrupted).
	CutBy string `json:"cut_by,omitempty"`
	// Drill marks an exercise (protocol.Occurrence.Drill).
	Drill bool `json:"drill,omitempty"`
}
