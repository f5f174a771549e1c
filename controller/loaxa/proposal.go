package loaxa

import (
	"context"
	"time"
)

// Proposal states.
const (
	ProposalPending  = "pending"
	ProposalAccepted = "accepted"
	ProposalDeclined = "declined"
	// ProposalWithdrawn is a proposal whose announcement was cancelled
	// before the station decided: there is nothing left to accept.
	ProposalWithdrawn = "withdrawn"
)

// Proposal is a normal-level bulletin sent down from a district or province
// as it reaches one station (an area with sessions): the station's officer
// accepts it into one of the station's sessions, or at the time it was sent
// for, or declines it. Until accepted, the station's nodes do not play it.
type Proposal struct {
	ID           string `json:"id"`
	Announcement string `json:"announcement"`
	// Area is the station the proposal is for.
	Area  string `json:"area"`
	State string `json:"state"`
	// Session is where an accepted proposal plays; "" plays it at the
	// announcement's own times.
	Session   string    `json:"session,omitempty"`
	Note      string    `json:"note,omitempty"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	// Reason says why a proposal accepted into a session was declined
	// after all: CancelSessionDeleted when that session was deleted.
	Reason string `json:"reason,omitempty"`
}

// ProposalFilter selects proposals. Zero fields do not filter.
type ProposalFilter struct {
	Announcement string
	Areas        []string
	State        string
}

// ProposalService stores proposals.
type ProposalService interface {
	// CreateProposals stores ps, assigning ids.
	CreateProposals(ctx context.Context, ps []*Proposal) error
	// FindProposalByID returns the proposal or ENotFound.
	FindProposalByID(ctx context.Context, id string) (*Proposal, error)
	// FindProposals returns proposals sorted by id.
	FindProposals(ctx context.Context, f ProposalFilter) ([]*Proposal, error)
	// DecideProposal moves a pending proposal to accepted or declined;
	// deciding one already decided or withdrawn, or one whose announcement
	// was cancelled, is EConflict.
	DecideProposal(ctx context.Context, p *Proposal) error
}
