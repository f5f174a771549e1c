package mqtt

import (
	"context"
	"fmt"
	"strings"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// MosquittoFiles are the files that make an external Mosquitto enforce what
// the embedded broker enforces: a password_file with the controller's and
// every node's secret (hashed), an acl_file that lets each node publish only
// its own state and events and read only its own and its areas' topics, and
// a mosquitto.conf snippet that turns both on, anonymous access off, and
// pins every client id to its username.
type MosquittoFiles struct {
	Passwd string `json:"passwd"`
	ACL    string `json:"acl"`
	Conf   string `json:"conf"`
	// Missing lists nodes with active credentials but no broker hash
	// (enrolled before hashes were kept): rotate their credentials.
	Missing []string `json:"missing,omitempty"`
}

// MosquittoConf is the configuration snippet, for files installed as
// /etc/mosquitto/loaxa.passwd and /etc/mosquitto/loaxa.acl.
const MosquittoConf = `# loaxa: include from mosquitto.conf (Mosquitto 2), or copy into it.
# Nobody connects without a password; each client id is its username, so
# no client can take over another's session; the ACL file limits topics.
# use_username_as_clientid holds only for the listener above it in this
# file, and Mosquitto reads an included file from its default listener
# (1883, every address): put a listener of your own (another port, TLS)
# at the top of this file, not in another one (docs/deploy.md).
allow_anonymous false
use_username_as_clientid true
password_file /etc/mosquitto/loaxa.passwd
acl_file /etc/mosquitto/loaxa.acl
# Every node reporting at once (all reconnecting after a restart, or their
# retained states when the controller subscribes again) is a burst on the
# controller's one subscription. Past max_queued_messages (1000 by
# default) Mosquitto drops a client's messages: room for 20,000 nodes
# with 5 messages each, at most ~100 MB for a client that stops reading.
max_queued_messages 100000
`

// ExportMosquitto builds the Mosquitto files for every node with active
// credentials. controllerUser and controllerHash are the controller's own
// account (hash with loaxa.HashBrokerSecret); the controller may use every
// topic under the prefix. A second account, controllerUser +
// PublishUsernameSuffix with the same password, may only publish under
// the prefix: the controller's publishing connection (Client.PublishUsername),
// whose acknowledgements do not wait behind the node messages the broker
// writes to the first. A node with active credentials under either
// account's name is refused (EConflict, naming it): Mosquitto would merge
// its entries with the controller's and give the node the controller's
// rights.
func ExportMosquitto(ctx context.Context, nodes loaxa.NodeService, areas loaxa.AreaService, topics protocol.Topics, controllerUser, controllerHash string) (*MosquittoFiles, error) {
	if controllerUser == "" || strings.ContainsAny(controllerUser, ":\n ") || controllerHash == "" {
		return nil, fmt.Errorf("export mosquitto files: the controller's broker account %q needs a username without ':', spaces or newlines, and a password", controllerUser)
	}
	all, err := nodes.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return nil, fmt.Errorf("export mosquitto files: %w", err)
	}
	var passwd, acl strings.Builder
	out := &MosquittoFiles{Conf: MosquittoConf}
	pubUser := controllerUser + PublishUsernameSuffix
	passwd.WriteString(controllerUser + ":" + controllerHash + "\n")
	passwd.WriteString(pubUser + ":" + controllerHash + "\n")
	fmt.Fprintf(&acl, "# loaxa broker ACL, generated; regenerate after enrolling, rotating or revoking nodes.\n")
	fmt.Fprintf(&acl, "\n# The controller publishes signed messages and reads every node's state and events.\nuser %s\ntopic readwrite %s/#\n", controllerUser, topics.Prefix)
	fmt.Fprintf(&acl, "\n# The controller's publishing connection: it never reads.\nuser %s\ntopic write %s/#\n", pubUser, topics.Prefix)
	for _, n := range all {
		if n.Credentials != loaxa.CredentialsActive {
			continue // pending or revoked: no password, no access
		}
		if n.ID == controllerUser || n.ID == pubUser {
			return nil, loaxa.Errorf(loaxa.EConflict, "Node %q has the name of one of the controller's broker accounts (%s, %s): Mosquitto would give the node the controller's rights. Revoke the node and enrol the board again under another id.", n.ID, controllerUser, pubUser)
		}
		if n.BrokerHash == "" {
			out.Missing = append(out.Missing, n.ID)
			continue
		}
		chain, err := areas.AreaChain(ctx, n.Area)
		if err != nil {
			return nil, fmt.Errorf("export mosquitto files: node %s: %w", n.ID, err)
		}
		// Ids are protocol.CheckID codes: no ':', '#', '+', '/' or spaces.
		passwd.WriteString(n.ID + ":" + n.BrokerHash + "\n")
		fmt.Fprintf(&acl, "\nuser %s\n", n.ID)
		// readwrite state: the node reads its own state back to know the
		// broker still delivers to it (node/mqtt).
		fmt.Fprintf(&acl, "topic readwrite %s\ntopic write %s\n", topics.Node(n.ID, protocol.ChanState), topics.Node(n.ID, protocol.ChanEvent))
		fmt.Fprintf(&acl, "topic read %s\ntopic read %s\n", topics.Node(n.ID, protocol.ChanDesired), topics.Node(n.ID, protocol.ChanCmd))
		for _, a := range chain {
			fmt.Fprintf(&acl, "topic read %s\ntopic read %s\n", topics.Area(a, protocol.ChanCmd), topics.Area(a, protocol.ChanLive))
		}
	}
	out.Passwd, out.ACL = passwd.String(), acl.String()
	return out, nil
}
