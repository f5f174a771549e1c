package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// NodeService stores nodes and their last known status.
type NodeService struct {
	db *DB
}

var _ loaxa.NodeService = (*NodeService)(nil)

// NewNodeService returns a NodeService on db.
func NewNodeService(db *DB) *NodeService {
	return &NodeService{db: db}
}

// nodeRecord is a node as stored: loaxa.Node keeps its secret hash out of
// JSON so that it never reaches an API answer, and the store puts it back.
type nodeRecord struct {
	*loaxa.Node
	SecretHash []byte `json:"secret_hash"`
}

// CreateNode adds n with state NodeNever and sets n.CreatedAt. Its area must
// exist, its id must be new, and n.SecretHash must be set (loaxa.HashSecret).
func (s *NodeService) CreateNode(ctx context.Context, n *loaxa.Node) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := checkID("Node id", n.ID); err != nil {
		return err
	}
	if n.Area == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q has no area: give the id of the area it stands in.", n.ID)
	}
	if n.Lat < -90 || n.Lat > 90 || n.Lon < -180 || n.Lon > 180 {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q: position %g, %g is not a latitude (-90…90) and longitude (-180…180) in degrees.", n.ID, n.Lat, n.Lon)
	}
	if len(n.SecretHash) != sha256.Size {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q has no secret hash: set it with loaxa.HashSecret(loaxa.NewSecret()).", n.ID)
	}
	rec := *n
	err := s.db.update(func(tx *bbolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		if nodes.Get([]byte(n.ID)) != nil {
			return loaxa.Errorf(loaxa.EConflict, "Node %q already exists: choose another id.", n.ID)
		}
		if tx.Bucket(bucketAreas).Get([]byte(n.Area)) == nil {
			return loaxa.Errorf(loaxa.EInvalid, "Area %q of node %q does not exist: create the area first.", n.Area, n.ID)
		}
		rec.CreatedAt = s.db.now()
		rec.Status = loaxa.NodeStatus{State: loaxa.NodeNever, Since: rec.CreatedAt}
		if err := putJSON(nodes, []byte(n.ID), nodeRecord{&rec, rec.SecretHash}); err != nil {
			return err
		}
		return tx.Bucket(bucketNodeAreas).Put(join(n.Area, n.ID), nil)
	})
	if err != nil {
		return fmt.Errorf("create node %s: %w", n.ID, err)
	}
	*n = rec
	return nil
}

// FindNodeByID returns the node or ENotFound.
func (s *NodeService) FindNodeByID(ctx context.Context, id string) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var n *loaxa.Node
	err := s.db.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = getNode(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find node %s: %w", id, err)
	}
	return n, nil
}

// FindNodes returns nodes sorted by id. Filters combine: a node must pass
// every one that is set. f.Within must name an existing area.
func (s *NodeService) FindNodes(ctx context.Context, f loaxa.NodeFilter) ([]*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Node
	err := s.db.view(func(tx *bbolt.Tx) error {
		ids, filtered, err := nodeIDs(tx, f)
		if err != nil {
			return err
		}
		nodes := tx.Bucket(bucketNodes)
		keep := func(n *loaxa.Node) {
			if f.State == "" || n.Status.State == f.State {
				out = append(out, n)
			}
		}
		if !filtered {
			return nodes.ForEach(func(k, v []byte) error {
				n, err := decodeNode(k, v)
				if err == nil {
					keep(n)
				}
				return err
			})
		}
		for _, id := range ids {
			v := nodes.Get([]byte(id))
			if v == nil {
				continue
			}
			n, err := decodeNode([]byte(id), v)
			if err != nil {
				return err
			}
			keep(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find nodes: %w", err)
	}
	return out, nil
}

// nodeIDs returns the sorted candidate ids that f.IDs and f.Within allow,
// and false if neither is set (every node is a candidate).
func nodeIDs(tx *bbolt.Tx, f loaxa.NodeFilter) ([]string, bool, error) {
	if f.Within == "" && f.IDs == nil {
		return nil, false, nil
	}
	var within map[string]bool
	if f.Within != "" {
		areas, err := subtreeSet(tx, f.Within)
		if err != nil {
			return nil, false, err
		}
		within = nodesIn(tx, areas)
	}
	var ids []string
	if f.IDs == nil {
		ids = slices.Collect(maps.Keys(within))
	} else {
		for _, id := range f.IDs {
			if within == nil || within[id] {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), true, nil
}

// AuthenticateNode returns the node if secret is its secret, else
// EUnauthorized. An unknown node and a wrong secret get the same answer, so
// the error tells a prober nothing about which ids exist.
func (s *NodeService) AuthenticateNode(ctx context.Context, id, secret string) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var (
		n    *loaxa.Node
		hash []byte
	)
	err := s.db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		if n, err = decodeNode([]byte(id), v); err == nil {
			hash = n.SecretHash
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("authenticate node %s: %w", id, err)
	}
	if n == nil {
		hash = unknownNodeHash // same work as for a known node: no timing oracle
	}
	if !loaxa.SecretMatches(hash, secret) || n == nil {
		return nil, loaxa.Errorf(loaxa.EUnauthorized, "Unknown node or wrong secret: use the id and secret from the node's credentials document.")
	}
	return n, nil
}

// unknownNodeHash stands in for the secret hash of a node that does not
// exist; no secret matches it in practice.
var unknownNodeHash = loaxa.HashSecret("no node has this secret")

// UpdateNodeStatus applies fn to the stored status in one transaction. It
// runs for every heartbeat of every node, so it touches one key only, and
// concurrent calls share a commit. fn may run more than once, each time on
// the status as stored (see DB.groupUpdate); only one result is kept.
func (s *NodeService) UpdateNodeStatus(ctx context.Context, id string, fn func(*loaxa.NodeStatus)) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.groupUpdate(func(tx *bbolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		v := nodes.Get([]byte(id))
		if v == nil {
			return nodeNotFound(id)
		}
		n, err := decodeNode([]byte(id), v)
		if err != nil {
			return err
		}
		fn(&n.Status)
		return putJSON(nodes, []byte(id), nodeRecord{n, n.SecretHash})
	})
	if err != nil {
		return fmt.Errorf("update status of node %s: %w", id, err)
	}
	return nil
}

func nodeNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "Node %q does not exist.", id)
}

// getNode returns the stored node or ENotFound.
func getNode(tx *bbolt.Tx, id string) (*loaxa.Node, error) {
	v := tx.Bucket(bucketNodes).Get([]byte(id))
	if v == nil {
		return nil, nodeNotFound(id)
	}
	return decodeNode([]byte(id), v)
}

// decodeNode decodes a stored node, secret hash included.
func decodeNode(key, v []byte) (*loaxa.Node, error) {
	rec := nodeRecord{Node: new(loaxa.Node)}
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode node %q: %w", key, err)
	}
	rec.Node.SecretHash = rec.SecretHash
	return rec.Node, nil
}
