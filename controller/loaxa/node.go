package loaxa

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"time"

	"loaxa.vn/protocol"
)

// ReservedNodeIDs are ids no node may have: the embedded broker's own
// client ("inline": mochi's inline client, through which the controller
// reaches its embedded broker) and the controller's broker accounts, its
// own and its publishing one on an external broker. A node enrolled under
// the first two could never connect (the broker refuses it); one under the
// publishing account's name would share that account in the exported
// Mosquitto files and so get its right to write every topic. They are
// refused when the node is created. controller/mqtt's tests keep this
// list in step with the broker and the exported files.
var ReservedNodeIDs = []string{"inline", "loaxa-controller", "loaxa-controller-pub"}

// Node (cụm loa) is one speaker box.
type Node struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Area      string    `json:"area"`
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	CreatedAt time.Time `json:"created_at"`
	// EnrolledAt is when the node first had a secret: at its creation with
	// a credentials document, or when its board redeemed its enrolment
	// code (or it was first rotated); zero while it waits for its code. It
	// plays, and is counted for, what starts from then on: codes issued a
	// week before the poles went up made a week of missed plays.
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	// MovedAt is when the node was last moved to another area (PATCH
	// /nodes/{id}); zero if it never was (and for a node moved before
	// moves were kept). A restarted controller tells by it a cluster
	// moved into an alert's area during the alert, which the running one
	// sent the alert (NodeMoved), from one put up after the alert, which
	// it did not.
	MovedAt time.Time `json:"moved_at,omitzero"`
	// SecretHash is SHA-256 of the node's broker and HTTP secret. The secret
	// is 256 random bits, so a fast hash is enough; the secret itself is
	// shown once, in the credentials document.
	SecretHash []byte `json:"-"`
	// BrokerHash is the same secret hashed for external brokers, in the
	// format of Mosquitto's password_file (HashBrokerSecret), so that the
	// broker's files can be generated without keeping the secret.
	BrokerHash string `json:"-"`
	// Credentials says whether the node can sign in: CredentialsActive,
	// CredentialsPending (waiting for an enrolment code), CredentialsRevoked.
	Credentials string `json:"credentials"`
	// SecretSetAt is when the current secret was issued (enrolment or
	// rotation); RevokedAt when it was revoked.
	SecretSetAt time.Time `json:"credentials_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// Settings are set remotely (volume, mute, amplifier policy) and sent
	// in the node's desired state.
	Settings NodeSettings `json:"settings"`
	Status   NodeStatus   `json:"status"`
}

// EnrolledBy reports whether n was enrolled at t: a node plays, and is
// counted for, what starts from its enrolment on.
func (n *Node) EnrolledBy(t time.Time) bool {
	return !n.EnrolledAt.IsZero() && !t.Before(n.EnrolledAt)
}

// AnswersFor reports whether delivery d of n counts in n's figures
// (reports, the upstream export): a play from its enrolment on, or one
// from before it that the node reported. A node reports only what it had,
// and it has nothing before its code: a board put up while an alert was
// in force is sent it with its area's start, before its enrolment.
func (n *Node) AnswersFor(d *Delivery) bool {
	return n.EnrolledBy(d.Start) || !d.ReceivedAt.IsZero()
}

// Node credential states.
const (
	CredentialsActive  = "active"  // the node has a secret and may connect
	CredentialsPending = "pending" // created for an enrolment code, not redeemed yet
	CredentialsRevoked = "revoked" // the secret was revoked; re-enrol or rotate to bring it back
)

// Node connectivity states as the controller sees them.
const (
	NodeNever   = "never"   // enrolled, never connected
	NodeOnline  = "online"  // connected
	NodeOffline = "offline" // Last Will, clean disconnect, or silent past the heartbeat timeout
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
	// ClockUncertaintyUS is how far the node's corrected clock may be off
	// the controller's (protocol.State); 0 before it reports one.
	ClockUncertaintyUS int64    `json:"clock_uncertainty_us,omitempty"`
	ContentMissing     []string `json:"content_missing,omitempty"`
	// CacheBytes and CacheLimit are the node's content cache use and size
	// limit, as it reports them.
	CacheBytes int64           `json:"cache_bytes,omitempty"`
	CacheLimit int64           `json:"cache_limit,omitempty"`
	Board      *protocol.Board `json:"board,omitempty"`
	Rejected   uint64          `json:"rejected"`
	Outbox     int             `json:"outbox"`
	// Keys are the ids of the controller keys the node trusts.
	Keys []string `json:"keys,omitempty"`

	// Fleet health (controller/health). HeartbeatMS, UptimeS,
	// DiskFreeBytes, StorageDamaged, LinkDeaf, NoSoundDevice, StorageFault, Volume,
	// Muted and AmplifierPolicy are as the node reports them.
	HeartbeatMS     int64  `json:"heartbeat_ms,omitempty"`
	UptimeS         int64  `json:"uptime_s,omitempty"`
	DiskFreeBytes   *int64 `json:"disk_free_bytes,omitempty"`
	StorageDamaged  int    `json:"storage_damaged,omitempty"`
	LinkDeaf        int    `json:"link_deaf,omitempty"`
	NoSoundDevice   string `json:"no_sound_device,omitempty"`
	StorageFault    string `json:"storage_fault,omitempty"`
	Volume          *int   `json:"volume,omitempty"`
	Muted           bool   `json:"muted,omitempty"`
	AmplifierPolicy string `json:"amplifier_policy,omitempty"`

	// AreasUnheard are the areas of its chain the node does not hear
	// (its subscription refused or failed; it keeps trying), as it
	// reports them.
	AreasUnheard []string `json:"areas_unheard,omitempty"`
	// LastPlay is when the node last completed a play.
	LastPlay time.Time `json:"last_play,omitzero"`
	// Faults are the node's open board faults, each since when.
	Faults []Fault `json:"faults,omitempty"`
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
	// NodePresence returns the area, online state, enrolment and
	// silencing faults of each node among ids that exists, cheaply: an emergency's report asks it for every
	// targeted node each time it is built.
	NodePresence(ctx context.Context, ids []string) (map[string]NodePresence, error)
	// NodeIDsWithin returns the ids of the nodes within area's subtree,
	// sorted, without reading their records: an emergency finds its
	// targets with it between the officer's call and the alert, where
	// decoding 10,000 records took 150–200 ms. The area must exist.
	NodeIDsWithin(ctx context.Context, area string) ([]string, error)
	// AuthenticateNode returns the node if secret is its secret, else
	// EUnauthorized.
	AuthenticateNode(ctx context.Context, id, secret string) (*Node, error)
	// NodeCredentials returns node id's credential state
	// (CredentialsActive, …) or ENotFound, without reading the whole node:
	// it is asked for every message a node sends.
	NodeCredentials(ctx context.Context, id string) (string, error)
	// UpdateNodeStatus applies fn to the node's status; every reader sees
	// the result at once. fn runs once, with the node's status locked, so
	// it must be quick and must not call the store. The store may write
	// the status to disk later (the bolt store: within seconds), so a crash
	// can lose the last changes, which nodes report again.
	UpdateNodeStatus(ctx context.Context, id string, fn func(*NodeStatus)) error
	// UpdateNodePlace sets the node's name, position and area in one
	// transaction, its by-area index with it, and returns the node as it
	// was and as it is; the area must exist.
	UpdateNodePlace(ctx context.Context, id string, p NodePlace) (before, after *Node, err error)
	// UpdateNodeSettings applies fn to the node's settings in one
	// transaction and returns the node; fn's error aborts it.
	UpdateNodeSettings(ctx context.Context, id string, fn func(*NodeSettings) error) (*Node, error)

	// CreateNodes adds nodes in one transaction: all or none.
	CreateNodes(ctx context.Context, nodes []*Node) error
	// SetNodeSecret gives node id a new secret (its hashes), at once
	// invalidating the old one and any pending enrolment code.
	SetNodeSecret(ctx context.Context, id string, s NodeSecret) (*Node, error)
	// RevokeNode removes node id's secret and pending enrolment codes.
	RevokeNode(ctx context.Context, id string) (*Node, error)
	// CreateEnrolment stores a one-time enrolment code for e.Node,
	// replacing any earlier code of the node.
	CreateEnrolment(ctx context.Context, e *Enrolment) error
	// RedeemEnrolment consumes the code with hash codeHash and gives its
	// node secret s, in one transaction. An unknown, used or expired code
	// is EUnauthorized.
	RedeemEnrolment(ctx context.Context, codeHash []byte, s NodeSecret) (*Node, error)
}

// NodePlace is what may be corrected of a node after its enrolment: its
// name, its position and the area it stands in.
type NodePlace struct {
	Name     string
	Lat, Lon float64
	Area     string
	// From, if set, is the area the caller found the node in (and was
	// allowed to change it in): a node moved elsewhere meanwhile is
	// EConflict, not changed on a right checked against the wrong area.
	From string
}

// NodePresence is where a node is, whether it is online, when it was
// created, since when it is enrolled (its EnrolledAt: zero while it
// waits for its code) and when it was last moved (its MovedAt).
type NodePresence struct {
	Area       string
	Online     bool
	CreatedAt  time.Time
	EnrolledAt time.Time
	MovedAt    time.Time
}

// NodeSecret is the stored form of a node secret: never the secret itself.
type NodeSecret struct {
	Hash       []byte // HashSecret
	BrokerHash string // HashBrokerSecret
}

// NewNodeSecret returns a fresh secret and its stored form.
func NewNodeSecret() (string, NodeSecret) {
	secret := NewSecret()
	return secret, NodeSecret{Hash: HashSecret(secret), BrokerHash: HashBrokerSecret(secret)}
}

// Parameters of HashBrokerSecret: those of mosquitto_passwd (Mosquitto 2).
// The secret is 256 random bits, so the iteration count adds nothing to
// its strength; it only has to be what Mosquitto accepts.
const (
	brokerHashIterations = 101
	brokerSaltBytes      = 12
)

// HashBrokerSecret hashes a node secret as a Mosquitto password_file entry
// does: "$7$" PBKDF2-SHA512, iterations, base64 salt and hash.
func HashBrokerSecret(secret string) string {
	salt := make([]byte, brokerSaltBytes)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha512.New, secret, salt, brokerHashIterations, sha512.Size)
	if err != nil {
		panic("pbkdf2 with valid parameters: " + err.Error())
	}
	return fmt.Sprintf("$7$%d$%s$%s", brokerHashIterations, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
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
