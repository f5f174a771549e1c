package loaxa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"time"

	"loaxa.vn/protocol"
)

// Node (cụm loa) is one speaker box.
type Node struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Area      string    `json:"area"`
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	CreatedAt time.Time `json:"created_at"`
	// SecretHash is SHA-256 of the node's broker and HTTP secret. The secret
	// is 256 random bits, so a fast hash is enough; the secret itself is
	// shown once, in the credentials document.
	SecretHash []byte     `json:"-"`
	Status     NodeStatus `json:"status"`
}

// Node connectivity states as the controller sees them.
const (
	NodeNever   = "never"   // enrolled, never connected
	NodeOnline  = "online"  // connected
	NodeOffline = "offline" // Last Will or clean disconnect
)

// NodeStatus is what the controller last heard from a node.
type NodeStatus struct {
	State    string    `json:"state"`
	Since    time.Time `json:"since,omitzero"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// DesiredVersion is the version the controller published; RunningVersion
	// the one the node reports running.
	DesiredVersion uint64            `json:"desired_version"`
	RunningVersion uint64            `json:"running_version"`
	Agent          string            `json:"agent,omitempty"`
	Playing        *protocol.Playing `json:"playing,omitempty"`
	ClockOffsetMS  int64             `json:"clock_offset_ms"`
	ContentMissing []string          `json:"content_missing,omitempty"`
	// CacheBytes and CacheLimit are the node's content cache use and size
	// limit, as it reports them.
	CacheBytes int64           `json:"cache_bytes,omitempty"`
	CacheLimit int64           `json:"cache_limit,omitempty"`
	Board      *protocol.Board `json:"board,omitempty"`
	Rejected   uint64          `json:"rejected"`
	Outbox     int             `json:"outbox"`
}

// NodeFilter selects nodes. Zero fields do not filter.
type NodeFilter struct {
	Within string   // area subtree
	IDs    []string // exactly these
	State  string   // NodeOnline, NodeOffline, NodeNever
}

// NodeService stores nodes and their last known status.
type NodeService interface {
	// CreateNode adds n; its area must exist and its id must be new.
	CreateNode(ctx context.Context, n *Node) error
	// FindNodeByID returns the node or ENotFound.
	FindNodeByID(ctx context.Context, id string) (*Node, error)
	// FindNodes returns nodes sorted by id.
	FindNodes(ctx context.Context, f NodeFilter) ([]*Node, error)
	// AuthenticateNode returns the node if secret is its secret, else
	// EUnauthorized.
	AuthenticateNode(ctx context.Context, id, secret string) (*Node, error)
	// UpdateNodeStatus applies fn to the stored status in one transaction.
	UpdateNodeStatus(ctx context.Context, id string, fn func(*NodeStatus)) error
}

// NewSecret returns a fresh random secret for a node.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret returns the stored form of a node secret.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches compares a presented secret with a stored hash in constant
// time.
func SecretMatches(hash []byte, secret string) bool {
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(hash, HashSecret(secret)) == 1
}
