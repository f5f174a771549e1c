package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// NodeService stores nodes and their last known status. The status is kept
// in memory and written in batches (nodestatus.go).
type NodeService struct {
	db *DB
}

var _ loaxa.NodeService = (*NodeService)(nil)

// NewNodeService returns a NodeService on db.
func NewNodeService(db *DB) *NodeService {
	return &NodeService{db: db}
}

// nodeRecord is a node as stored: loaxa.Node keeps its secret hashes out of
// JSON so that they never reach an API answer, and the store puts them back.
type nodeRecord struct {
	*loaxa.Node
	SecretHash []byte `json:"secret_hash"`
	BrokerHash string `json:"broker_hash,omitempty"`
}

// putNode stores n with its secret hashes.
func putNode(tx *bbolt.Tx, n *loaxa.Node) error {
	key := []byte(n.ID)
	raw, err := encodeNodeRecord(nodeRecord{n, n.SecretHash, n.BrokerHash})
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := tx.Bucket(bucketNodes).Put(key, raw); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// CreateNode adds n with state NodeNever and sets n.CreatedAt. Its area must
// exist and its id must be new. With n.SecretHash set (loaxa.NewNodeSecret)
// the node may connect at once; without, it waits for an enrolment code.
func (s *NodeService) CreateNode(ctx context.Context, n *loaxa.Node) error {
	return s.CreateNodes(ctx, []*loaxa.Node{n})
}

// CreateNodes adds nodes as CreateNode does, in one transaction: if one
// cannot be created, none is.
func (s *NodeService) CreateNodes(ctx context.Context, nodes []*loaxa.Node) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := checkNewNode(n); err != nil {
			return err
		}
	}
	recs := make([]loaxa.Node, len(nodes))
	err := s.db.updateCredentials(func(tx *bbolt.Tx) error {
		now := s.db.now()
		for i, n := range nodes {
			if tx.Bucket(bucketNodes).Get([]byte(n.ID)) != nil {
				return loaxa.Errorf(loaxa.EConflict, "Node %q exists already: choose another id.", n.ID)
			}
			if tx.Bucket(bucketAreas).Get([]byte(n.Area)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Area %q of node %q does not exist: create the area first.", n.Area, n.ID)
			}
			rec := *n
			rec.CreatedAt = now
			rec.Status = loaxa.NodeStatus{State: loaxa.NodeNever, Since: now}
			rec.Credentials, rec.SecretSetAt, rec.RevokedAt = loaxa.CredentialsPending, time.Time{}, time.Time{}
			rec.EnrolledAt = time.Time{}
			if len(rec.SecretHash) > 0 {
				rec.Credentials, rec.SecretSetAt, rec.EnrolledAt = loaxa.CredentialsActive, now, now
			}
			if err := putNode(tx, &rec); err != nil {
				return err
			}
			if err := tx.Bucket(bucketNodeAreas).Put(join(n.Area, n.ID), nil); err != nil {
				return err
			}
			recs[i] = rec
		}
		return nil
	}, func() {
		for i := range recs {
			s.db.nodes.put(&recs[i])
		}
	})
	if err != nil {
		if len(nodes) == 1 {
			return fmt.Errorf("create node %s: %w", nodes[0].ID, err)
		}
		return fmt.Errorf("create %d nodes: %w", len(nodes), err)
	}
	for i, n := range nodes {
		*n = recs[i]
	}
	return nil
}

// checkNewNode checks what CreateNodes needs of n before a transaction.
func checkNewNode(n *loaxa.Node) error {
	if err := checkID("Node id", n.ID); err != nil {
		return err
	}
	if slices.Contains(loaxa.ReservedNodeIDs, n.ID) {
		return loaxa.Errorf(loaxa.EInvalid, "Node id %q is reserved for the controller and its broker; choose another.", n.ID)
	}
	if n.Area == "" {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q has no area: give the id of the area it stands in.", n.ID)
	}
	if n.Lat < -90 || n.Lat > 90 || n.Lon < -180 || n.Lon > 180 {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q: position %g, %g is not a latitude (-90…90) and longitude (-180…180) in degrees.", n.ID, n.Lat, n.Lon)
	}
	if len(n.SecretHash) != 0 && len(n.SecretHash) != sha256.Size {
		return loaxa.Errorf(loaxa.EInvalid, "Node %q: secret hash has %d bytes; set it with loaxa.NewNodeSecret, or leave it out to enrol with a code.", n.ID, len(n.SecretHash))
	}
	return nil
}

// SetNodeSecret gives node id the secret whose hashes are sec, at once
// invalidating its old secret and any pending enrolment code, and clearing
// a revocation.
func (s *NodeService) SetNodeSecret(ctx context.Context, id string, sec loaxa.NodeSecret) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if len(sec.Hash) != sha256.Size || sec.BrokerHash == "" {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Node %q: the new secret has no hashes; make it with loaxa.NewNodeSecret.", id)
	}
	var n *loaxa.Node
	err := s.db.updateCredentials(func(tx *bbolt.Tx) error {
		var err error
		n, err = setSecret(tx, id, sec, s.db.now())
		return err
	}, func() { s.db.nodes.setCredentials(n) })
	if err != nil {
		return nil, fmt.Errorf("set secret of node %s: %w", id, err)
	}
	s.db.overlay(n)
	return n, nil
}

func setSecret(tx *bbolt.Tx, id string, sec loaxa.NodeSecret, now time.Time) (*loaxa.Node, error) {
	n, err := getNode(tx, id)
	if err != nil {
		return nil, err
	}
	n.SecretHash, n.BrokerHash = sec.Hash, sec.BrokerHash
	n.Credentials, n.SecretSetAt, n.RevokedAt = loaxa.CredentialsActive, now, time.Time{}
	if n.EnrolledAt.IsZero() {
		// Its first secret: the board is up (a new code or a rotation
		// later is the same cluster, enrolled since then).
		n.EnrolledAt = now
	}
	if err := deleteEnrolments(tx, id, now); err != nil {
		return nil, err
	}
	return n, putNode(tx, n)
}

// RevokeNode removes node id's secret and pending enrolment codes: from
// now on it cannot connect to the embedded broker or fetch audio.
func (s *NodeService) RevokeNode(ctx context.Context, id string) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var n *loaxa.Node
	err := s.db.updateCredentials(func(tx *bbolt.Tx) error {
		var err error
		if n, err = getNode(tx, id); err != nil {
			return err
		}
		now := s.db.now()
		n.SecretHash, n.BrokerHash = nil, ""
		n.Credentials, n.RevokedAt = loaxa.CredentialsRevoked, now
		if err := deleteEnrolments(tx, id, now); err != nil {
			return err
		}
		return putNode(tx, n)
	}, func() { s.db.nodes.setCredentials(n) })
	if err != nil {
		return nil, fmt.Errorf("revoke node %s: %w", id, err)
	}
	s.db.overlay(n)
	return n, nil
}

// enrolmentRecord is an enrolment as stored, under its code hash.
type enrolmentRecord struct {
	*loaxa.Enrolment
}

// CreateEnrolment stores e (its CodeHash, Node and Expires must be set),
// replacing earlier codes of the node, and sets e.CreatedAt.
func (s *NodeService) CreateEnrolment(ctx context.Context, e *loaxa.Enrolment) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if len(e.CodeHash) != sha256.Size {
		return loaxa.Errorf(loaxa.EInvalid, "Enrolment for %q has no code hash: use loaxa.HashEnrolmentCode.", e.Node)
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		now := s.db.now()
		if !e.Expires.After(now) {
			return loaxa.Errorf(loaxa.EInvalid, "Enrolment for %q would expire at %s, which is not after now.", e.Node, e.Expires.UTC().Format(time.RFC3339))
		}
		if _, err := getNode(tx, e.Node); err != nil {
			return err
		}
		if err := deleteEnrolments(tx, e.Node, now); err != nil {
			return err
		}
		e.CreatedAt = now
		return putJSON(tx.Bucket(bucketEnrolments), e.CodeHash, enrolmentRecord{e})
	})
	if err != nil {
		return fmt.Errorf("create enrolment for %s: %w", e.Node, err)
	}
	return nil
}

// RedeemEnrolment consumes the code with hash codeHash and gives its node
// the secret sec, in one transaction, so a code works once.
func (s *NodeService) RedeemEnrolment(ctx context.Context, codeHash []byte, sec loaxa.NodeSecret) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var n *loaxa.Node
	err := s.db.updateCredentials(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEnrolments)
		var e loaxa.Enrolment
		ok, err := getJSON(b, codeHash, &e)
		if err != nil {
			return err
		}
		now := s.db.now()
		if !ok || !now.Before(e.Expires) {
			return loaxa.Errorf(loaxa.EUnauthorized, "The enrolment code is unknown, used already or expired: ask for a new one.")
		}
		if err := b.Delete(codeHash); err != nil {
			return err
		}
		n, err = setSecret(tx, e.Node, sec, now)
		return err
	}, func() { s.db.nodes.setCredentials(n) })
	if err != nil {
		return nil, fmt.Errorf("redeem enrolment: %w", err)
	}
	s.db.overlay(n)
	return n, nil
}

// deleteEnrolments deletes node's codes and every expired code. Codes are
// few (one per node waiting for its board), so a scan is cheap.
func deleteEnrolments(tx *bbolt.Tx, node string, now time.Time) error {
	b := tx.Bucket(bucketEnrolments)
	var gone [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var e loaxa.Enrolment
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode enrolment: %w", err)
		}
		if e.Node == node || !now.Before(e.Expires) {
			gone = append(gone, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete enrolment: %w", err)
		}
	}
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
	s.db.overlay(n)
	return n, nil
}

// NodeCredentials returns the credential state of node id
// (loaxa.CredentialsActive, …) or ENotFound. It answers from memory and
// copies nothing: it runs for every message a node sends.
func (s *NodeService) NodeCredentials(ctx context.Context, id string) (string, error) {
	if err := checkCtx(ctx); err != nil {
		return "", err
	}
	c, err := s.db.credentials(id)
	if err != nil {
		return "", fmt.Errorf("credentials of node %s: %w", id, err)
	}
	return c, nil
}

// NodePresence returns the area, whether it is online, the creation and
// the enrolment of every node among ids that exists, from memory: no record is read.
func (s *NodeService) NodePresence(ctx context.Context, ids []string) (map[string]loaxa.NodePresence, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]loaxa.NodePresence, len(ids))
	for _, id := range ids {
		e := s.db.nodes.entry(id)
		if e == nil {
			continue
		}
		e.mu.Lock()
		p := loaxa.NodePresence{Area: e.area, Online: e.status.State == loaxa.NodeOnline, CreatedAt: e.createdAt, EnrolledAt: e.enrolledAt, MovedAt: e.movedAt}
		e.mu.Unlock()
		out[id] = p
	}
	return out, nil
}

// NodeIDsWithin returns the ids of the nodes within area's subtree, sorted,
// from the by-area index alone.
func (s *NodeService) NodeIDsWithin(ctx context.Context, area string) ([]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if area == "" {
		return nil, loaxa.Errorf(loaxa.EInvalid, "NodeIDsWithin needs an area.")
	}
	var ids []string
	err := s.db.view(func(tx *bbolt.Tx) error {
		var err error
		ids, _, err = nodeIDs(tx, loaxa.NodeFilter{Within: area})
		return err
	})
	return ids, err
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
			s.db.overlay(n)
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
	if len(hash) != sha256.Size {
		// An unknown, revoked or not yet enrolled node: the same work as
		// for a known one, so timing tells a prober nothing.
		hash = unknownNodeHash
	}
	if !loaxa.SecretMatches(hash, secret) || n == nil {
		return nil, loaxa.Errorf(loaxa.EUnauthorized, "Unknown node or wrong secret: use the id and secret from the node's credentials document.")
	}
	s.db.overlay(n)
	return n, nil
}

// unknownNodeHash stands in for the secret hash of a node that does not
// exist; no secret matches it in practice.
var unknownNodeHash = loaxa.HashSecret("no node has this secret")

// UpdateNodeStatus applies fn to node id's status in memory, at once
// visible to every reader; the store writes it to the file within
// DB.StatusInterval (nodestatus.go). It runs for every heartbeat, state
// and play of every node, so it takes no transaction. fn runs once, with
// the node's status locked: calls for one node are serialised, calls for
// different nodes run in parallel. fn must be quick and must not call the
// store; it may keep no reference to the status.
func (s *NodeService) UpdateNodeStatus(ctx context.Context, id string, fn func(*loaxa.NodeStatus)) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := s.db.updateStatus(id, fn); err != nil {
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

// decodeNode decodes a stored node, secret hash included; the same bytes
// decode from memory (nodecache.go).
func decodeNode(key, v []byte) (*loaxa.Node, error) {
	if n := cachedDecode(key, v); n != nil {
		return n, nil
	}
	n, err := unmarshalNode(key, v)
	if err != nil {
		return nil, err
	}
	remember(key, v, n)
	return n, nil
}

// unmarshalNode decodes a stored node, bypassing the node cache.
func unmarshalNode(key, v []byte) (*loaxa.Node, error) {
	rec := nodeRecord{Node: new(loaxa.Node)}
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode node %q: %w", key, err)
	}
	rec.Node.SecretHash, rec.Node.BrokerHash = rec.SecretHash, rec.BrokerHash
	if rec.Node.Credentials == "" {
		// Stored before credentials could be revoked or pending.
		rec.Node.Credentials = loaxa.CredentialsActive
	}
	if rec.Node.EnrolledAt.IsZero() && rec.Node.Credentials != loaxa.CredentialsPending {
		// Stored before enrolment was kept apart from creation: it counted
		// from its creation then. A pending one never had a secret.
		rec.Node.EnrolledAt = rec.Node.CreatedAt
	}
	return rec.Node, nil
}

// UpdateNodePlace sets node id's name, position and area (a cluster's
// name misspelt at enrolment, its pole surveyed, or moved to another
// commune) in one transaction, with the by-area index and the in-memory
// area that NodePresence and the event batches read: a move left in
// either would have the node targeted, and counted, under its old area.
// A move (a change of area) sets the node's MovedAt.
// The area must exist. It returns the node as it was and as it is.
func (s *NodeService) UpdateNodePlace(ctx context.Context, id string, p loaxa.NodePlace) (before, after *loaxa.Node, err error) {
	if err := checkCtx(ctx); err != nil {
		return nil, nil, err
	}
	if p.Area == "" {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "Node %q has no area: give the id of the area it stands in.", id)
	}
	if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 {
		return nil, nil, loaxa.Errorf(loaxa.EInvalid, "Node %q: position %g, %g is not a latitude (-90…90) and longitude (-180…180) in degrees.", id, p.Lat, p.Lon)
	}
	err = s.db.updateCredentials(func(tx *bbolt.Tx) error {
		n, err := getNode(tx, id)
		if err != nil {
			return err
		}
		if p.From != "" && p.From != n.Area {
			return loaxa.Errorf(loaxa.EConflict, "Node %q was moved to area %q meanwhile; read it again and redo the change.", id, n.Area)
		}
		if p.Area != n.Area {
			if tx.Bucket(bucketAreas).Get([]byte(p.Area)) == nil {
				return loaxa.Errorf(loaxa.EInvalid, "Area %q of node %q does not exist: create the area first.", p.Area, id)
			}
			idx := tx.Bucket(bucketNodeAreas)
			if err := idx.Delete(join(n.Area, id)); err != nil {
				return err
			}
			if err := idx.Put(join(p.Area, id), nil); err != nil {
				return err
			}
		}
		before = cloneNode(n)
		if p.Area != n.Area {
			n.MovedAt = s.db.now()
		}
		n.Name, n.Lat, n.Lon, n.Area = p.Name, p.Lat, p.Lon, p.Area
		after = n
		// The record's status is written back as read: the newer one in
		// memory stays there for the next flush.
		return putNode(tx, n)
	}, func() { s.db.nodes.setArea(after) })
	if err != nil {
		return nil, nil, fmt.Errorf("update node %s: %w", id, err)
	}
	s.db.overlay(before)
	s.db.overlay(after)
	return before, after, nil
}

// UpdateNodeSettings applies fn to node id's settings in one transaction.
func (s *NodeService) UpdateNodeSettings(ctx context.Context, id string, fn func(*loaxa.NodeSettings) error) (*loaxa.Node, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out *loaxa.Node
	err := s.db.update(func(tx *bbolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		v := nodes.Get([]byte(id))
		if v == nil {
			return nodeNotFound(id)
		}
		n, err := decodeNode([]byte(id), v)
		if err != nil {
			return err
		}
		if err := fn(&n.Settings); err != nil {
			return err
		}
		out = n
		// The record's status is written back as read: the newer one in
		// memory stays there for the next flush.
		return putJSON(nodes, []byte(id), nodeRecord{n, n.SecretHash, n.BrokerHash})
	})
	if err != nil {
		return nil, fmt.Errorf("update settings of node %s: %w", id, err)
	}
	s.db.overlay(out)
	return out, nil
}
