package loaxa

import (
	"context"
	"time"

	"loaxa.vn/protocol"
)

// ProgrammeItem is one compiled occurrence: what a node (or the nodes of an
// area) will play, when, and for how long.
type ProgrammeItem struct {
	protocol.Occurrence
	// End is Start plus the planned length (chimes, repeats and gaps).
	End time.Time `json:"end"`
	// Nodes are the nodes it plays on (in an area's programme).
	Nodes []string `json:"nodes,omitempty"`
	// CancelledAt is when its announcement was cancelled, after this
	// play began (End is then when it was taken off the air, if sooner);
	// zero for one not cancelled. A past day's programme keeps what was
	// planned that day.
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
}

// Conflict kinds.
const (
	// ConflictSessionOverflow: the items of a session instance run past its
	// maximum length.
	ConflictSessionOverflow = "session-overflow"
	// ConflictOverlap: two items of the same level at fixed times overlap on
	// a node, so the later one would start late or not at all.
	ConflictOverlap = "overlap"
	// ConflictNoSession: the session named does not run on that day.
	ConflictNoSession = "no-session"
)

// Conflict is a problem found when scheduling, with a message for the
// officer. The officer may still force the announcement in.
type Conflict struct {
	Kind        string   `json:"kind"`
	Node        string   `json:"node,omitempty"`
	Session     string   `json:"session,omitempty"`
	Occurrences []string `json:"occurrences"`
	Message     string   `json:"message"`
}

// ProgrammeService shows the effective programme the scheduler compiles.
type ProgrammeService interface {
	// NodeProgramme returns the node's occurrences starting in [from, to),
	// in start order: for a past day, as planned that day, with the plays
	// of announcements cancelled since that had begun (CancelledAt).
	NodeProgramme(ctx context.Context, node string, from, to time.Time) ([]ProgrammeItem, error)
	// AreaProgramme returns the occurrences on the area's nodes starting in
	// [from, to), one item per occurrence with the nodes it plays on.
	AreaProgramme(ctx context.Context, area string, from, to time.Time) ([]ProgrammeItem, error)
	// CheckAnnouncement compiles the programme as it would be with a added
	// (a.ID may be empty) and returns the conflicts that a causes.
	CheckAnnouncement(ctx context.Context, a *Announcement) ([]Conflict, error)
	// CheckProposal compiles the programme as it would be with p decided
	// as given (accepted into p.Session, or at the announcement's own
	// times) and returns the conflicts its announcement then causes on the
	// nodes that play it through p.
	CheckProposal(ctx context.Context, p *Proposal) ([]Conflict, error)
	// CheckSessionDeletion compiles the programme of the nodes that
	// follow session id with and without it and returns the plays of
	// bulletins from above placed in it, each with where it would play
	// without it, or Lost: the store cannot tell which bulletins wait for
	// a session without the scheduler's rules.
	CheckSessionDeletion(ctx context.Context, id string) ([]SessionBulletin, error)
}
