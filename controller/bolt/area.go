package bolt

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// AreaService stores the area tree.
type AreaService struct {
	db *DB
}

var _ loaxa.AreaService = (*AreaService)(nil)

// NewAreaService returns an AreaService on db.
func NewAreaService(db *DB) *AreaService {
	return &AreaService{db: db}
}

// CreateArea adds a to the tree and sets a.CreatedAt. Its parent must exist
// (or be empty for a root) and its id must be new.
func (s *AreaService) CreateArea(ctx context.Context, a *loaxa.Area) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := checkID("Area id", a.ID); err != nil {
		return err
	}
	if strings.TrimSpace(a.Name) == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Area %q has no name: give it the name people use for it.", a.ID)
	}
	if a.TimeZone != "" {
		// "Local" loads, but means whatever zone the controller's machine has.
		if _, err := time.LoadLocation(a.TimeZone); err != nil || a.TimeZone == "Local" {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q: time zone %q is unknown: use an IANA name such as %q, or leave it empty to inherit.", a.ID, a.TimeZone, loaxa.DefaultTimeZone)
		}
	}
	rec := *a
	err := s.db.update(func(tx *bbolt.Tx) error {
		areas := tx.Bucket(bucketAreas)
		if areas.Get([]byte(a.ID)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "Area %q already exists: choose another id.", a.ID)
		}
		if a.Parent != "" {
			chain, err := areaChain(tx, a.Parent)
			if loaxa.ErrorCode(err) == loaxa.ENotFound {
				return loaxa.Errorf(loaxa.EInvalid, "Parent area %q of %q does not exist: create it first, or leave parent empty for a root area.", a.Parent, a.ID)
			} else if err != nil {
				return err
			}
			if len(chain) >= maxAreaDepth {
				return loaxa.Errorf(loaxa.EInvalid, "Area %q would be %d levels deep; the limit is %d.", a.ID, len(chain)+1, maxAreaDepth)
			}
		}
		rec.CreatedAt = s.db.now()
		if err := putJSON(areas, []byte(a.ID), &rec); err != nil {
			return err
		}
		return tx.Bucket(bucketAreaParents).Put([]byte(a.ID), []byte(a.Parent))
	})
	if err != nil {
		return fmt.Errorf("create area %s: %w", a.ID, err)
	}
	*a = rec
	return nil
}

// FindAreaByID returns the area or ENotFound.
func (s *AreaService) FindAreaByID(ctx context.Context, id string) (*loaxa.Area, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var a loaxa.Area
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketAreas), []byte(id), &a)
		if err == nil && !ok {
			return areaNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find area %s: %w", id, err)
	}
	return &a, nil
}

// FindAreas returns areas sorted by id; with f.Within, only that area and its
// descendants (ENotFound if it does not exist).
func (s *AreaService) FindAreas(ctx context.Context, f loaxa.AreaFilter) ([]*loaxa.Area, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Area
	err := s.db.view(func(tx *bbolt.Tx) error {
		areas := tx.Bucket(bucketAreas)
		if f.Within == "" {
			return areas.ForEach(func(k, v []byte) error {
				var a loaxa.Area
				if _, err := getJSON(areas, k, &a); err != nil {
					return err
				}
				out = append(out, &a)
				return nil
			})
		}
		ids, err := subtree(tx, f.Within)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var a loaxa.Area
			if _, err := getJSON(areas, []byte(id), &a); err != nil {
				return err
			}
			out = append(out, &a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find areas: %w", err)
	}
	return out, nil
}

// AreaParents returns every area's parent id ("" for a root), from
// area_parents: small values, no area decoded.
func (s *AreaService) AreaParents(ctx context.Context) (map[string]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var parents map[string]string
	err := s.db.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAreaParents)
		parents = make(map[string]string, b.Stats().KeyN)
		return b.ForEach(func(k, v []byte) error {
			parents[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("area parents: %w", err)
	}
	return parents, nil
}

// AreaChain returns id followed by its ancestors up to the root, or
// ENotFound.
func (s *AreaService) AreaChain(ctx context.Context, id string) ([]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var chain []string
	err := s.db.view(func(tx *bbolt.Tx) error {
		var err error
		chain, err = areaChain(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("area chain of %s: %w", id, err)
	}
	return chain, nil
}

// maxAreaDepth bounds the tree's depth. Real trees have four or five levels
// (province, district, commune, village, group); the bound makes a corrupted
// parent link fail instead of loop.
const maxAreaDepth = 16

func areaNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "Area %q does not exist.", id)
}

// areaChain walks the parent links from id to the root.
func areaChain(tx *bbolt.Tx, id string) ([]string, error) {
	parents := tx.Bucket(bucketAreaParents)
	p := parents.Get([]byte(id))
	if p == nil {
		return nil, areaNotFound(id)
	}
	chain := []string{id}
	for len(p) > 0 {
		parent := string(p)
		// Parents exist before children, so a chain cannot loop; the
		// bound keeps a corrupted file from hanging the controller.
		if len(chain) > maxAreaDepth {
			return nil, fmt.Errorf("area %s: parent chain loops at %s", id, parent)
		}
		chain = append(chain, parent)
		if p = parents.Get([]byte(parent)); p == nil {
			return nil, fmt.Errorf("area %s: ancestor %s is missing", id, parent)
		}
	}
	return chain, nil
}

// areaLocation returns the time zone of area id in tx: that of its nearest
// area with a time zone, else loaxa.DefaultTimeZone.
func areaLocation(tx *bbolt.Tx, id string) (*time.Location, error) {
	chain, err := areaChain(tx, id)
	if err != nil {
		return nil, err
	}
	zone := ""
	for _, a := range chain {
		var ar loaxa.Area
		if _, err := getJSON(tx.Bucket(bucketAreas), []byte(a), &ar); err != nil {
			return nil, fmt.Errorf("zone of %s: %w", id, err)
		}
		if ar.TimeZone != "" {
			zone = ar.TimeZone
			break
		}
	}
	loc, err := loaxa.Location(zone)
	if err != nil {
		return nil, fmt.Errorf("zone of %s: %w", id, err)
	}
	return loc, nil
}

// subtree returns root and all its descendants, sorted by id, or ENotFound.
// It reads every parent link: the tree is a few thousand areas, and the
// links are short values, so this costs well under a millisecond.
func subtree(tx *bbolt.Tx, root string) ([]string, error) {
	parents := tx.Bucket(bucketAreaParents)
	if parents.Get([]byte(root)) == nil {
		return nil, areaNotFound(root)
	}
	children := make(map[string][]string)
	err := parents.ForEach(func(k, v []byte) error {
		if len(v) > 0 {
			children[string(v)] = append(children[string(v)], string(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ids := []string{root}
	for i := 0; i < len(ids); i++ {
		ids = append(ids, children[ids[i]]...)
	}
	slices.Sort(ids)
	return ids, nil
}

// subtreeSet is subtree as a set, for filters.
func subtreeSet(tx *bbolt.Tx, root string) (map[string]bool, error) {
	ids, err := subtree(tx, root)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// nodesIn returns the nodes of the given areas, from the by-area index.
func nodesIn(tx *bbolt.Tx, areas map[string]bool) map[string]bool {
	nodes := make(map[string]bool)
	c := tx.Bucket(bucketNodeAreas).Cursor()
	for area := range areas {
		p := prefix(area)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			nodes[string(k[len(p):])] = true
		}
	}
	return nodes
}
