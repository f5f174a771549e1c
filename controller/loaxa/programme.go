package loaxa

import (
	"context"
	"fmt"
	"strings"
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
	// ConflictNoSession: the session named does not run on that day, or
	// (SessionEnd set) its instance that day ends before a one-off's own
	// start.
	ConflictNoSession = "no-session"
)

// Conflict is a problem found when scheduling, with a message for the
// officer. The officer may still force the announcement in. The message
// names bulletins by their titles and says times in the area's time zone;
// Items carries the same for programs, beside the occurrence ids.
type Conflict struct {
	Kind        string         `json:"kind"`
	Node        string         `json:"node,omitempty"`
	Session     string         `json:"session,omitempty"`
	Occurrences []string       `json:"occurrences"`
	Items       []ConflictItem `json:"items,omitempty"`
	// SessionEnd is, for a ConflictNoSession of a one-off that starts
	// after the session's instance that day is over, when that instance
	// ends, in the area's time zone; zero when the session does not run.
	SessionEnd time.Time `json:"session_end,omitzero"`
	Message    string    `json:"message"`
}

// ConflictItem is one play a Conflict is about, in the order of its
// Occurrences: the announcement ("new" for one being checked, not stored
// yet), its title, and when it would play, in the area's time zone.
type ConflictItem struct {
	Occurrence   string    `json:"occurrence"`
	Announcement string    `json:"announcement"`
	Title        string    `json:"title,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
}

// The parts of an announcement that can keep it from being scheduled
// (UnplayableError.Part).
const (
	UnplayableContent      = "content"       // its content is not in the store
	UnplayableOpeningChime = "opening_chime" // its opening chime is not in the store
	UnplayableClosingChime = "closing_chime" // its closing chime is not in the store
	UnplayableRule         = "rule"          // its rrule or exdates are refused by this version
)

// UnplayableError is an active announcement the scheduler cannot place:
// content it names is not in the store (stored by an older version,
// which did not check chimes, or a damaged or hand-mended store), or a
// rule of it that this version refuses. Every programme of the nodes it targets fails with
// it until it is cancelled, so every answer that compiles one says which
// bulletin, what of it, and what to do (a 409 with ReasonBulletinUnplayable),
// not what the store said of a content id the caller never gave.
type UnplayableError struct {
	Announcement string `json:"announcement"`
	Title        string `json:"title"`
	// FromArea is the area that sent it, FromAreaName its name ("" if
	// unknown).
	FromArea     string `json:"from_area,omitempty"`
	FromAreaName string `json:"from_area_name,omitempty"`
	// Part is what of it is wrong (Unplayable constants); Content is the
	// content id not found, for a content or chime part.
	Part    string `json:"part"`
	Content string `json:"content,omitempty"`
	// Err is the cause.
	Err error `json:"-"`
}

func (e *UnplayableError) Error() string {
	if e.Content != "" {
		return fmt.Sprintf("announcement %s: %s %s: %v", e.Announcement, strings.ReplaceAll(e.Part, "_", " "), e.Content, e.Err)
	}
	return fmt.Sprintf("announcement %s: %v", e.Announcement, e.Err)
}

// Unwrap gives the coded error (EConflict, ReasonBulletinUnplayable) with
// Problem's words first, then the cause.
func (e *UnplayableError) Unwrap() []error {
	return []error{&Error{Code: EConflict, Reason: ReasonBulletinUnplayable, Message: e.Problem() + " " + e.Remedy()}, e.Err}
}

// Facts are e's fields as the facts of its bulletin-unschedulable alarm,
// nodes the clusters it targets.
func (e *UnplayableError) Facts(nodes int) AlarmFacts {
	return AlarmFacts{Announcement: e.Announcement, Title: e.Title, FromArea: e.FromArea, FromAreaName: e.FromAreaName,
		Part: e.Part, Content: e.Content, Error: ErrorMessage(e.Err), Nodes: nodes}
}

// Unplayable is the UnplayableError of a bulletin-unschedulable alarm's
// facts, its cause only in the words ErrorMessage gave of it.
func (f AlarmFacts) Unplayable() *UnplayableError {
	return &UnplayableError{Announcement: f.Announcement, Title: f.Title, FromArea: f.FromArea, FromAreaName: f.FromAreaName,
		Part: f.Part, Content: f.Content, Err: &Error{Code: EInvalid, Message: f.Error}}
}

// Sender names the area that sent it, e.g. "Huyện Tiên Lãng (318)".
func (e *UnplayableError) Sender() string {
	switch {
	case e.FromArea == "":
		return ""
	case e.FromAreaName == "":
		return e.FromArea
	}
	return fmt.Sprintf("%s (%s)", e.FromAreaName, e.FromArea)
}

// Problem says which bulletin cannot be scheduled and why, in a sentence.
func (e *UnplayableError) Problem() string {
	return fmt.Sprintf("%s, so the programme of the clusters it targets cannot be compiled with it, and the schedules sent to them leave it out until it is cancelled.", e.Cause())
}

// Cause says which bulletin cannot be scheduled and why.
func (e *UnplayableError) Cause() string {
	who := fmt.Sprintf("Bulletin %s (%s)", e.Announcement, e.Title)
	if s := e.Sender(); s != "" {
		who += " from " + s
	}
	var what string
	switch e.Part {
	case UnplayableContent:
		what = fmt.Sprintf("its audio (content %s) is not in the controller's content library", e.Content)
	case UnplayableOpeningChime:
		what = fmt.Sprintf("its opening chime (content %s) is not in the controller's content library", e.Content)
	case UnplayableClosingChime:
		what = fmt.Sprintf("its closing chime (content %s) is not in the controller's content library", e.Content)
	default:
		what = fmt.Sprintf("this controller refuses its schedule (%s)", ErrorMessage(e.Err))
	}
	return fmt.Sprintf("%s cannot be scheduled: %s", who, what)
}

// Remedy says what to do about it.
func (e *UnplayableError) Remedy() string {
	by := "an officer of its area or above"
	if s := e.Sender(); s != "" {
		by = "an officer of " + s + " or above"
	}
	return fmt.Sprintf("It has to be cancelled (POST /api/v1/announcements/%s/cancel, by %s) and sent again with audio from the library.", e.Announcement, by)
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
