package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// Desired is the last desired state compiled for a node.
type Desired struct {
	Node  string                 `json:"node"`
	State *protocol.DesiredState `json:"state"`
	// Hash covers everything in State except Version and Generated, so an
	// unchanged schedule keeps its version.
	Hash      string    `json:"hash"`
	Published time.Time `json:"published,omitzero"`
}

// DesiredHead is what the scheduler compares a recompiled state with: the
// stored state's Hash, Version and Published, without its occurrences.
type DesiredHead struct {
	Hash      string
	Version   uint64
	Published time.Time
}

// DesiredService stores compiled desired states.
type DesiredService interface {
	// FindDesired returns the node's last desired state or ENotFound.
	FindDesired(ctx context.Context, node string) (*Desired, error)
	// FindDesiredHead returns the head of the node's last desired state,
	// or ENotFound: what a pass over a province's unchanged schedules
	// reads for every node.
	FindDesiredHead(ctx context.Context, node string) (DesiredHead, error)
	// SaveDesired stores d, replacing the node's previous one.
	SaveDesired(ctx context.Context, d *Desired) error
	// SaveDesiredBatch stores each of ds as SaveDesired would, all in
	// one transaction (one commit, where a scheduler pass that changed
	// thousands of nodes made thousands). It returns one error per state,
	// nil for each stored: a state that cannot be stored (its node was
	// removed) fails alone; a transaction that fails fails them all and
	// stores none.
	SaveDesiredBatch(ctx context.Context, ds []*Desired) []error
	// RecordPublished records each of ps in one transaction, writing only
	// the head of the node's stored state (what FindDesired and
	// FindDesiredHead take Published from), not its occurrences. A record
	// for a version the node's stored state no longer has is left out
	// (nil). It returns one error per record, as SaveDesiredBatch does.
	RecordPublished(ctx context.Context, ps []DesiredPublished) []error
}

// DesiredPublished says the broker accepted Version of Node's desired
// state at At.
type DesiredPublished struct {
	Node    string
	Version uint64
	At      time.Time
}

// Scheduler compiles announcements into desired states.
type Scheduler interface {
	// Changed tells the scheduler that announcements, areas or nodes
	// changed; it recompiles soon after, coalescing bursts.
	Changed()
}

// DesiredAlarms hears when a node's newest desired state has not been
// accepted by the broker for a while (the scheduler retries it) and each
// time one is; controller/health turns that into an alarm.
type DesiredAlarms interface {
	// DesiredUndelivered says node's desired state is undelivered since
	// since; facts say which version and why.
	DesiredUndelivered(ctx context.Context, node string, facts AlarmFacts, since time.Time)
	// DesiredDelivered says the broker accepted node's newest desired
	// state at at. It is called for every such publish, whether or not
	// an alarm is open (a restarted scheduler cannot know), so it must be
	// cheap when none is.
	DesiredDelivered(ctx context.Context, node string, at time.Time)
	// BulletinsUnschedulable says which active bulletins a full pass of
	// the scheduler could not place (UnplayableError), by announcement,
	// with the facts of their alarm: each gets a bulletin-unschedulable
	// alarm if it has none open, and the open ones of bulletins not among
	// them end at at (the pass placed them, or they were cancelled), but
	// those of unjudged: the pass could not tell (its store failed), and
	// they stay as they were.
	BulletinsUnschedulable(ctx context.Context, bad map[string]AlarmFacts, unjudged map[string]bool, at time.Time)
}

// Messenger sends to nodes. Implementations sign every message.
type Messenger interface {
	// PublishDesired publishes d retained on the node's desired topic.
	PublishDesired(ctx context.Context, d *protocol.DesiredState) error
	// SendNodeCommand publishes cmd on the node's cmd topic, valid for ttl.
	SendNodeCommand(ctx context.Context, node string, cmd protocol.Command, ttl time.Duration) error
}
