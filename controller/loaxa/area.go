package loaxa

import (
	"context"
	"fmt"
	"slices"
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
	// AreaParents returns every area's parent id ("" for a root): the
	// tree's shape without the areas themselves, for what needs only
	// that.
	AreaParents(ctx context.Context) (map[string]string, error)
}

// FoldAreas returns ids without those inside another of them (sorted,
// without repeats), so that no node below two of them is reached twice:
// an emergency or a live call to a district and one of its communes goes
// to the district. An unknown area is ENotFound (its message "area <id>").
func FoldAreas(ctx context.Context, areas AreaService, ids []string) ([]string, error) {
	chains := map[string][]string{}
	for _, id := range ids {
		chain, err := areas.AreaChain(ctx, id)
		if ErrorCode(err) == ENotFound {
			return nil, Errorf(ENotFound, "area %q", id)
		} else if err != nil {
			return nil, fmt.Errorf("area %s: %w", id, err)
		}
		chains[id] = chain
	}
	var out []string
	for id, chain := range chains {
		inside := slices.ContainsFunc(chain[1:], func(a string) bool { _, ok := chains[a]; return ok })
		if !inside {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}
