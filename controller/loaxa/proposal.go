package loaxa

import (
	"context"
	"fmt"
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
	// announcement's own times. One declined because that session was
	// deleted (Reason) keeps it, and when it was accepted (AcceptedAt),
	// for the programme of the days it played there.
	Session   string    `json:"session,omitempty"`
	Note      string    `json:"note,omitempty"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	// Reason says why a proposal accepted into a session was declined
	// after all: CancelSessionDeleted when that session was deleted.
	Reason string `json:"reason,omitempty"`
	// AcceptedAt is when a proposal declined with its session's delete
	// had been accepted into it.
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// ProposalDecidedError is the EConflict of deciding a proposal that is no
// longer pending: another officer decided it first, or it was withdrawn as
// its announcement was cancelled. Proposal is the proposal as stored, its
// State withdrawn in the second case, so that a client can say who decided
// what and when.
type ProposalDecidedError struct {
	Proposal *Proposal
	err      *Error
}

func (e *ProposalDecidedError) Error() string { return e.err.Error() }

// Unwrap returns the EConflict *Error with the message for the officer.
func (e *ProposalDecidedError) Unwrap() error { return e.err }

// NewProposalDecidedError returns the *ProposalDecidedError refusing to
// decide p again (p.State withdrawn, accepted or declined).
func NewProposalDecidedError(p *Proposal) *ProposalDecidedError {
	msg := fmt.Sprintf("Proposal %s was already %s by %s.", p.ID, p.State, p.DecidedBy)
	if p.State == ProposalWithdrawn {
		msg = fmt.Sprintf("Proposal %s is withdrawn: announcement %s was cancelled, so there is nothing to accept or decline.", p.ID, p.Announcement)
	}
	return &ProposalDecidedError{Proposal: p, err: Errorf(EConflict, "%s", msg)}
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
	// was cancelled, is a *ProposalDecidedError (EConflict).
	DecideProposal(ctx context.Context, p *Proposal) error
}
