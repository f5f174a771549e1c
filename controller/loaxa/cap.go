package loaxa

import (
	"context"
	"time"
)

// CapAlert is a CAP 1.2 alert the controller received (POST /api/v1/cap)
// and what it did with it.
type CapAlert struct {
	ID         string    `json:"id"`
	Key        string    `json:"key"` // sender,identifier: alerts are de-duplicated by it
	Identifier string    `json:"identifier"`
	Sender     string    `json:"sender"`
	Sent       time.Time `json:"sent"`
	Status     string    `json:"status"`
	MsgType    string    `json:"msg_type"`
	References []string  `json:"references,omitempty"`
	Event      string    `json:"event,omitempty"`
	Language   string    `json:"language,omitempty"`
	Headline   string    `json:"headline,omitempty"`
	// Text is what is (or would be) read out, unless Recording is set.
	Text string `json:"text,omitempty"`
	// Recording is the content played instead of reading Text: the
	// recording the operators keep for the alert's event type
	// (CapStore.CapRecordings), set when it is played.
	Recording string    `json:"recording,omitempty"`
	Targets   []string  `json:"targets,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	// Blocks are the info blocks played when the alert has more than one
	// in its language (CAP 1.2 treats each as its own, for its areas):
	// each is an emergency of its own to its areas. Event, Headline, Text,
	// Recording, Expires and Emergency above are then the first's, and
	// Targets are all of theirs. Empty for an alert with one block.
	Blocks []CapBlock `json:"blocks,omitempty"`
	// Action is what the controller did: play, drill, pending (waits for
	// approval), approved, cancel, log, expired, no-target, or cancelled
	// (a pending alert a later Cancel or Update withdrew).
	Action     string    `json:"action"`
	Reason     string    `json:"reason,omitempty"`
	Emergency  string    `json:"emergency,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	ReceivedBy string    `json:"received_by"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	// ApprovedAt is when it was approved. Approval is what was decided
	// then that Reason, kept as it was, does not say: the info blocks left
	// out because they expired while it waited.
	ApprovedAt time.Time `json:"approved_at,omitzero"`
	Approval   string    `json:"approval,omitempty"`
	// Withdrawn, if set, says which later CAP alert withdrew this one and
	// when: Action still says what was done with it on arrival (play,
	// approved, ...), so that an officer reading the list also sees that
	// it no longer sounds, and why.
	Withdrawn *CapWithdrawal `json:"withdrawn,omitempty"`
	// XML is the alert as received.
	XML string `json:"xml"`
}

// CapWithdrawal says which CAP alert withdrew another, and when: a Cancel
// withdraws it, an Update replaces it (CAP 1.2 references).
type CapWithdrawal struct {
	// By is the withdrawing alert's id here (c000004).
	By string `json:"by"`
	// Key is its sender,identifier, as the warning service names it.
	Key string `json:"key"`
	// MsgType is Cancel (withdrawn) or Update (replaced by By).
	MsgType string `json:"msg_type"`
	// At is when it was withdrawn: when its emergencies were stopped, or
	// its approval given up.
	At time.Time `json:"at"`
}

// CapBlock is one info block of a CapAlert that plays several: its words
// to its areas (those an earlier block of the alert does not name).
type CapBlock struct {
	// Position is the block's place among the alert's info elements,
	// from 1 (0 in records stored before it was kept).
	Position  int       `json:"position,omitempty"`
	Event     string    `json:"event,omitempty"`
	Headline  string    `json:"headline,omitempty"`
	Text      string    `json:"text,omitempty"`
	Targets   []string  `json:"targets"`
	Expires   time.Time `json:"expires,omitzero"`
	Recording string    `json:"recording,omitempty"`
	Emergency string    `json:"emergency,omitempty"`
}

// CapStore keeps received CAP alerts and the auto-start list.
type CapStore interface {
	// CreateCapAlert assigns a.ID and stores a; EConflict if an alert
	// with the same Key is stored.
	CreateCapAlert(ctx context.Context, a *CapAlert) error
	// FindCapAlertByKey and FindCapAlertByID return the alert or ENotFound.
	FindCapAlertByKey(ctx context.Context, key string) (*CapAlert, error)
	FindCapAlertByID(ctx context.Context, id string) (*CapAlert, error)
	// UpdateCapAlert changes alert id with fn in one transaction.
	UpdateCapAlert(ctx context.Context, id string, fn func(a *CapAlert) error) (*CapAlert, error)
	// FindCapAlerts returns alerts newest first, at most limit (0: all).
	FindCapAlerts(ctx context.Context, limit int) ([]*CapAlert, error)
	// FindCapAlertsReferencing returns the alerts whose References name
	// key (sender,identifier), oldest first: the Updates and Cancels of
	// an alert that may have come before it.
	FindCapAlertsReferencing(ctx context.Context, key string) ([]*CapAlert, error)
	// CapAutoStart returns the CAP event types that play without
	// approval; SetCapAutoStart replaces them.
	CapAutoStart(ctx context.Context) ([]string, error)
	SetCapAutoStart(ctx context.Context, events []string) error
	// CapRecordings returns the recordings played for CAP event types
	// instead of reading the alert's text (event type → content id);
	// SetCapRecordings replaces them.
	CapRecordings(ctx context.Context) (map[string]string, error)
	SetCapRecordings(ctx context.Context, recordings map[string]string) error
}
