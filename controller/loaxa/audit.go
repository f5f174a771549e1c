package loaxa

import (
	"context"
	"time"
)

// AuditEntry records one state-changing action: who did what to which
// target, when and from where. The audit log is append-only.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`  // username, or "node:<id>" / "system"
	Action string    `json:"action"` // e.g. "announcement.create", "node.volume"
	Target string    `json:"target"` // the id acted on
	// Area is the area the action is filed under; for one on several
	// areas, the lowest one they all lie in.
	Area string `json:"area,omitempty"`
	// Areas are the areas an action on several touches (an
	// announcement's targets and its target nodes' areas): a reader whose
	// subtree holds any of them sees the entry, not only one above Area.
	Areas  []string `json:"areas,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Remote string   `json:"remote,omitempty"` // client address
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Actor  string
	Within string // area subtree: entries whose Area, or one of whose Areas, lies in it
	From   time.Time
	To     time.Time
	Limit  int
	// Newest returns the entries newest first, so that Limit keeps the
	// latest ones rather than the earliest.
	Newest bool
}

// AuditService keeps the audit log.
type AuditService interface {
	// RecordAudit appends e, assigning Seq (and At if zero).
	RecordAudit(ctx context.Context, e *AuditEntry) error
	// FindAudit returns entries oldest first, or newest first with
	// Newest.
	FindAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}
