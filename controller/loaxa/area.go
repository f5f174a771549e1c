package loaxa

import (
	"context"
	"time"
)

// DefaultTimeZone is where every area's schedule is kept unless an area (or
// an ancestor) says otherwise.
const DefaultTimeZone = "Asia/Ho_Chi_Minh"

// Area (địa bàn) is a node of the administrative tree: province → district →
// commune/ward → village. Ids are short codes, official where known.
type Area struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	// TimeZone is an IANA zone; empty inherits from the parent, and the root
	// defaults to DefaultTimeZone.
	TimeZone  string    `json:"time_zone,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AreaFilter selects areas.
type AreaFilter struct {
	// Within limits the result to this area and its descendants.
	Within string
}

// AreaService stores the area tree.
type AreaService interface {
	// CreateArea adds a to the tree. Its parent must exist and its id must
	// be new.
	CreateArea(ctx context.Context, a *Area) error
	// FindAreaByID returns the area or ENotFound.
	FindAreaByID(ctx context.Context, id string) (*Area, error)
	// FindAreas returns areas sorted by id.
	FindAreas(ctx context.Context, f AreaFilter) ([]*Area, error)
	// AreaChain returns id followed by its ancestors up to the root, or
	// ENotFound.
	AreaChain(ctx context.Context, id string) ([]string, error)
}
