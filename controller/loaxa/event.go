package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// Event (nhật ký phát) is what a node reported it did: the play log and the
// source of proof of broadcast.
type Event struct {
	Node  string `json:"node"`
	Area  string `json:"area"`
	Epoch string `json:"epoch"`
	// Salvaged marks an event the node read back from its damaged store,
	// or copied from a card that takes no writes, and sent late under
	// that store's epoch (protocol.EventBatch.Salvaged).
	Salvaged bool `json:"salvaged,omitempty"`
	protocol.Event
	ReceivedAt time.Time `json:"received_at"`
	// Refused, if set, says why the event the node sent under this
	// sequence could not be taken (protocol.Event.Validate): what is
	// stored in its place holds only its sequence, at ReceivedAt.
	Refused string `json:"refused,omitempty"`
}

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	Node   string
	Within string // area subtree
	From   time.Time
	To     time.Time
	// Types, if any, keeps the events of these types only (before Limit).
	Types []protocol.EventType
	Limit int // 0: a default cap
	// Newest returns the events newest first, so that Limit keeps the
	// latest ones (a cluster's last plays) rather than the earliest.
	Newest bool
}

// EventService stores node events.
type EventService interface {
	// RecordEvents stores a batch from node and advances the deliveries the
	// events name, in one transaction. Events are accepted in sequence
	// order only: an already stored sequence is skipped (a resend), and a
	// gap stops the batch (the node will resend from there). It returns the
	// highest sequence stored for the batch's epoch, which is what to
	// acknowledge. An event protocol.Event.Validate refuses takes its
	// sequence all the same, so that the node's outbox moves past it: what
	// is stored in its place says why (Event.Refused), moves no delivery
	// and is not returned. A new epoch starts the node's sequence over. A salvaged
	// batch of an epoch whose earlier events are not held starts where it
	// starts, and moves only deliveries no other epoch has reported on.
	//
	// It also returns the events it stored now, in order: not those it
	// held already (a resend, a late copy of an earlier epoch's batch), so
	// that what follows the store (the emergency's tracking, the health
	// monitor) hears each event once, as stored: an event the node sent
	// without a time (At zero) at receivedAt.
	RecordEvents(ctx context.Context, node string, b protocol.EventBatch, receivedAt time.Time) (ack uint64, stored []protocol.Event, err error)
	// FindEvents returns events sorted by time (At), oldest first, or
	// newest first with Newest.
	FindEvents(ctx context.Context, f EventFilter) ([]*Event, error)
}
