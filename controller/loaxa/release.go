package loaxa

import (
	"context"
	"time"
)

// Release is a version of the node agent the controller hosts for
// over-the-air updates: one archive per board architecture, as
// scripts/build-boards.sh writes them.
type Release struct {
	Version   string           `json:"version"`
	Archives  []ReleaseArchive `json:"archives"`
	CreatedBy string           `json:"created_by"`
	CreatedAt time.Time        `json:"created_at"`
}

// ReleaseArchive is one architecture's archive, stored by its SHA-256.
type ReleaseArchive struct {
	Arch     string `json:"arch"` // GOARCH: arm64, arm, amd64
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Filename string `json:"filename"`
}

// Rollout states.
const (
	RolloutCanary  = "canary"  // the canaries are updating
	RolloutRolling = "rolling" // canaries are healthy; the rest are updating
	RolloutDone    = "done"    // every target answered (updated or failed) or is counted unreached
	RolloutHalted  = "halted"  // a canary failed; nobody else was asked
)

// Per-node rollout states.
const (
	RolloutNodePending = "pending" // not asked yet
	RolloutNodeSent    = "sent"    // asked; not answered yet
	RolloutNodeUpdated = "updated" // runs the version
	RolloutNodeFailed  = "failed"  // refused or rolled back; Detail says why
	// RolloutNodeUnreached: asked, and no answer within the wait (a board
	// switched off, stolen, without power or link); still asked once it
	// is online, and its answer replaces this.
	RolloutNodeUnreached = "unreached"
	// RolloutNodeReplaced: a newer rollout names the node and asks it
	// now; this one no longer does.
	RolloutNodeReplaced = "replaced"
)

// Rollout moves a set of nodes to a release: canaries first, the rest once
// every canary runs the new version, and none at all if a canary fails.
type Rollout struct {
	ID      string  `json:"id"`
	Version string  `json:"version"`
	Targets Targets `json:"targets"`
	// Percent of the targeted nodes take part (1-100).
	Percent int `json:"percent"`
	// Canaries is how many of them update first.
	Canaries int           `json:"canaries"`
	State    string        `json:"state"`
	Reason   string        `json:"reason,omitempty"`
	Nodes    []RolloutNode `json:"nodes"`
	// Unreached counts the nodes in state unreached: a done rollout with
	// some is "done, N not reached", and still asks them when they are
	// back.
	Unreached int       `json:"unreached,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LateUntil, on a halted rollout, is until when it still hears the
	// nodes it asked before the halt, asking nobody: one that installs
	// the release after the halt (it had the request, or was trying it)
	// is marked updated, one that fails it failed. Zero once past.
	LateUntil time.Time `json:"late_until,omitzero"`
}

// RolloutNode is one node's progress in a rollout.
type RolloutNode struct {
	Node   string    `json:"node"`
	Canary bool      `json:"canary"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
	SentAt time.Time `json:"sent_at,omitzero"`
	// FirstSentAt starts the bound on a canary's answer.
	FirstSentAt time.Time `json:"first_sent_at,omitzero"`
	At          time.Time `json:"at,omitzero"`
}

// Active reports whether the rollout still has work to do.
func (r *Rollout) Active() bool { return r.State == RolloutCanary || r.State == RolloutRolling }

// Waiting reports whether a done rollout still waits for nodes it
// counted unreached, to ask them again when they are back.
func (r *Rollout) Waiting() bool { return r.State == RolloutDone && r.Unreached > 0 }

// Hearing reports whether a halted rollout still hears the nodes it
// asked before the halt (LateUntil).
func (r *Rollout) Hearing() bool { return r.State == RolloutHalted && !r.LateUntil.IsZero() }

// Running reports whether the runner still steps the rollout: active,
// done and waiting for nodes it counted unreached, or halted and hearing
// the nodes it asked before (it asks nobody then).
func (r *Rollout) Running() bool { return r.Active() || r.Waiting() || r.Hearing() }

// RolloutFilter selects rollouts. Zero fields do not filter.
type RolloutFilter struct {
	// Running keeps the rollouts the runner steps (Rollout.Running);
	// the store reads no other record.
	Running bool
}

// ReleaseService stores releases and rollouts.
type ReleaseService interface {
	// PutReleaseArchive adds an architecture's archive to the release
	// version, creating the release; an archive for that architecture
	// already there is an EConflict.
	PutReleaseArchive(ctx context.Context, version string, a ReleaseArchive, by string) (*Release, error)
	FindReleaseByVersion(ctx context.Context, version string) (*Release, error)
	FindReleases(ctx context.Context) ([]*Release, error)
	// ReleaseArchiveKnown reports whether some release has the archive.
	ReleaseArchiveKnown(ctx context.Context, sha256 string) (bool, error)

	// CreateRollout stores r with a new ID.
	CreateRollout(ctx context.Context, r *Rollout) error
	// UpdateRollout changes a rollout in one transaction.
	UpdateRollout(ctx context.Context, id string, fn func(*Rollout) error) (*Rollout, error)
	FindRolloutByID(ctx context.Context, id string) (*Rollout, error)
	// FindRollouts returns the rollouts f selects, oldest first.
	FindRollouts(ctx context.Context, f RolloutFilter) ([]*Rollout, error)
}
