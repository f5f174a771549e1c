package loaxa

import (
	"context"
	"time"
)

// UpstreamOutbox keeps export documents until the upstream system has
// taken them: nothing is lost while it is down, however long.
type UpstreamOutbox interface {
	// AppendExport queues doc, the export of a period ending at periodEnd,
	// and records periodEnd as where the next period starts; a nil doc
	// only records periodEnd (the first start).
	AppendExport(ctx context.Context, doc []byte, periodEnd time.Time) error
	// NextExport returns the oldest queued document; ok is false when
	// none is queued.
	NextExport(ctx context.Context) (seq uint64, doc []byte, ok bool, err error)
	// RemoveExport drops a delivered document.
	RemoveExport(ctx context.Context, seq uint64) error
	// ExportQueue returns how many documents wait and where the last
	// queued period ended (zero: none yet).
	ExportQueue(ctx context.Context) (pending int, periodEnd time.Time, err error)
}

// UpstreamSystem is an outside system allowed to send bulletins in
// (POST /api/v1/inbound/bulletins): the province's information-source
// system. Its key is shown once; only its hash is kept.
type UpstreamSystem struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Area      string    `json:"area"` // its bulletins may target this subtree
	KeyHash   []byte    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// UpstreamSystemService stores upstream systems and the bulletins they
// sent (for idempotency: a resent bulletin is not scheduled twice).
type UpstreamSystemService interface {
	CreateUpstreamSystem(ctx context.Context, s *UpstreamSystem) error
	FindUpstreamSystemByID(ctx context.Context, id string) (*UpstreamSystem, error)
	FindUpstreamSystems(ctx context.Context) ([]*UpstreamSystem, error)
	// InboundAnnouncement returns the announcement made for a system's
	// bulletin id, or "".
	InboundAnnouncement(ctx context.Context, system, bulletin string) (string, error)
	SetInboundAnnouncement(ctx context.Context, system, bulletin, announcement string) error
}
