package http

import (
	"fmt"
	"net/http"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// DefaultEnrolmentTTL is how long an enrolment code stays valid: long
// enough to carry a labelled board to its pole.
const DefaultEnrolmentTTL = 14 * 24 * time.Hour

// MaxBatch is the most nodes one POST /api/v1/nodes/batch creates.
const MaxBatch = 1000

// EnrolCAFile is where the enrolment command has the board read the
// certificate it must trust (Server.EnrolCA) from: the technician saves the
// answer's ca_pem there first.
const EnrolCAFile = "/etc/loaxa/controller-ca.pem"

// Ways a new node gets its secret.
const (
	modeDocument = "document" // the credentials document, in the answer
	modeCode     = "code"     // a one-time enrolment code the board redeems
)

// credentialsMode reads the "credentials" field of a node request.
func credentialsMode(s string) (string, error) {
	switch s {
	case "", modeDocument:
		return modeDocument, nil
	case modeCode:
		return modeCode, nil
	}
	return "", loaxa.Errorf(loaxa.EInvalid, "credentials %q is not a way to deliver credentials; use \"document\" (the default: the credentials document in the answer) or \"code\" (a one-time enrolment code).", s)
}

// enrolmentCode is shown once, when it is made: the code and how a board
// uses it.
type enrolmentCode struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
	// Command is what to run on the board.
	Command string `json:"command"`
	// CAPEM is the certificate the board must trust to enrol, when its
	// system's roots do not verify the controller's: saved on the board as
	// EnrolCAFile, which Command then names with --ca.
	CAPEM string `json:"ca_pem,omitempty"`
}

// newEnrolment makes a one-time code for node n, replacing older ones.
func (s *Server) newEnrolment(r *http.Request, n *loaxa.Node) (*enrolmentCode, error) {
	ttl := s.EnrolmentTTL
	if ttl <= 0 {
		ttl = DefaultEnrolmentTTL
	}
	code := loaxa.NewEnrolmentCode()
	norm, err := loaxa.NormalizeEnrolmentCode(code)
	if err != nil {
		return nil, fmt.Errorf("enrolment code for %s: %w", n.ID, err)
	}
	e := &loaxa.Enrolment{CodeHash: loaxa.HashEnrolmentCode(norm), Node: n.ID, Expires: s.now().Add(ttl), CreatedBy: userFrom(r.Context()).Username}
	if err := s.NodeService.CreateEnrolment(r.Context(), e); err != nil {
		return nil, fmt.Errorf("enrolment code for %s: %w", n.ID, err)
	}
	ec := &enrolmentCode{
		Code:      code,
		ExpiresAt: e.Expires.UTC(),
		// ./node is the agent in the unpacked release archive, where a
		// fresh board has it (no "node" on its PATH, or Node.js). The
		// credentials and data paths are the installed service's
		// (scripts/systemd/loaxa-node.service): a board enrolled again
		// keeps its store, whose clock floor the enrolment reads.
		Command: fmt.Sprintf("./node --enrol %s --controller %s --credentials /etc/loaxa/node.json --data /var/lib/loaxa-node", code, s.controllerURL(r)),
	}
	if s.EnrolCA != "" {
		// Without it the board refuses the controller's certificate.
		ec.Command += " --ca " + EnrolCAFile
		ec.CAPEM = s.EnrolCA
	}
	return ec, nil
}

// batchRequest is the body of POST /api/v1/nodes/batch.
type batchRequest struct {
	Nodes       []nodeRequest `json:"nodes"`
	Credentials string        `json:"credentials"`
}

// batchResponse answers POST /api/v1/nodes/batch.
type batchResponse struct {
	Nodes []nodeCreated `json:"nodes"`
}

// handleCreateNodes answers POST /api/v1/nodes/batch: creates many nodes in
// one go, all or none, each with its credentials document or (the point of
// a batch: labels for boards a technician carries out) an enrolment code.
func (s *Server) handleCreateNodes(w http.ResponseWriter, r *http.Request) error {
	var req batchRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	mode, err := credentialsMode(req.Credentials)
	if err != nil {
		return err
	}
	if len(req.Nodes) == 0 || len(req.Nodes) > MaxBatch {
		return loaxa.Errorf(loaxa.EInvalid, "nodes has %d entries; send 1 to %d nodes per batch.", len(req.Nodes), MaxBatch)
	}
	nodes := make([]*loaxa.Node, len(req.Nodes))
	seen := make(map[string]bool, len(req.Nodes))
	for i, nr := range req.Nodes {
		if nr.Credentials != "" {
			return loaxa.Errorf(loaxa.EInvalid, "nodes[%d].credentials: give credentials once for the whole batch, not per node.", i)
		}
		n, err := s.checkNodeRequest(r.Context(), fmt.Sprintf("nodes[%d].", i), nr)
		if err != nil {
			return err
		}
		if seen[n.ID] {
			return loaxa.Errorf(loaxa.EInvalid, "nodes[%d].id %q appears twice in the batch.", i, n.ID)
		}
		seen[n.ID] = true
		nodes[i] = n
	}
	out, err := s.createNodes(r, nodes, mode)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, batchResponse{Nodes: out})
	return nil
}

// findManagedNode returns the node named by the path, if the user may
// manage nodes in its area.
func (s *Server) findManagedNode(r *http.Request) (*loaxa.Node, error) {
	ctx, id := r.Context(), r.PathValue("id")
	n, err := s.requireNode(ctx, "node", id)
	if loaxa.ErrorCode(err) == loaxa.EInvalid {
		return nil, loaxa.Errorf(loaxa.ENotFound, "There is no node %q; list nodes with GET /api/v1/nodes.", id)
	} else if err != nil {
		return nil, err
	}
	if err := s.authorizeOn(ctx, loaxa.ActionManageNodes, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
		return nil, err
	}
	return n, nil
}

// handleCreateEnrolment answers POST /api/v1/nodes/{id}/enrolment: a new
// one-time code for a node, e.g. for a replacement board. Earlier codes of
// the node stop working; its current secret works until the code is used.
func (s *Server) handleCreateEnrolment(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	n, err := s.findManagedNode(r)
	if err != nil {
		return err
	}
	e, err := s.newEnrolment(r, n)
	if err != nil {
		return err
	}
	s.audit(r, "node.enrolment_code", n.ID, n.Area, "expires="+e.ExpiresAt.Format(time.RFC3339))
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, nodeCreated{Node: n, Enrolment: e})
	return nil
}

// handleRotateNode answers POST /api/v1/nodes/{id}/rotate: a new secret,
// in a new credentials document shown once. The old secret stops working
// at once, and the node's broker connection is cut.
func (s *Server) handleRotateNode(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	n, err := s.findManagedNode(r)
	if err != nil {
		return err
	}
	secret, sec := loaxa.NewNodeSecret()
	creds, err := s.credentials(r, n, secret)
	if err != nil {
		return err
	}
	if n, err = s.NodeService.SetNodeSecret(r.Context(), n.ID, sec); err != nil {
		return fmt.Errorf("rotate node %s: %w", n.ID, err)
	}
	s.disconnect(n.ID)
	s.audit(r, "node.rotate", n.ID, n.Area, "")
	s.logger().Info("node credentials rotated", "node", n.ID, "by", userFrom(r.Context()).Username)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, nodeCreated{Node: n, Credentials: creds})
	return nil
}

// handleRevokeNode answers POST /api/v1/nodes/{id}/revoke: the node's
// secret and enrolment codes stop working at once and its broker
// connection is cut. A new enrolment code or a rotation brings it back.
func (s *Server) handleRevokeNode(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	n, err := s.findManagedNode(r)
	if err != nil {
		return err
	}
	if n, err = s.NodeService.RevokeNode(r.Context(), n.ID); err != nil {
		return fmt.Errorf("revoke node %s: %w", n.ID, err)
	}
	s.disconnect(n.ID)
	s.changed() // the health model retires it: offline, no alarm
	s.audit(r, "node.revoke", n.ID, n.Area, "")
	s.logger().Warn("node credentials revoked", "node", n.ID, "by", userFrom(r.Context()).Username)
	s.writeJSON(w, r, http.StatusOK, n)
	return nil
}

// disconnect cuts node id's broker connection, if the broker is embedded.
func (s *Server) disconnect(id string) {
	if s.Disconnect != nil {
		s.Disconnect(id)
	}
}

// enrolRequest is the body of POST /api/v1/enrol.
type enrolRequest struct {
	Code string `json:"code"`
}

// enrolResponse answers POST /api/v1/enrol.
type enrolResponse struct {
	Credentials *protocol.Credentials `json:"credentials"`
}

// handleEnrol answers POST /api/v1/enrol: a board exchanges its one-time
// code for its credentials document with a fresh secret. Public, and
// limited per client address like sign-in, so codes cannot be guessed.
func (s *Server) handleEnrol(w http.ResponseWriter, r *http.Request) error {
	var req enrolRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.checkLocked(r, ""); err != nil {
		return err
	}
	code, err := loaxa.NormalizeEnrolmentCode(req.Code)
	if err != nil {
		s.failed(r, "")
		return err
	}
	ctx := r.Context()
	secret, sec := loaxa.NewNodeSecret()
	n, err := s.NodeService.RedeemEnrolment(ctx, loaxa.HashEnrolmentCode(code), sec)
	if loaxa.ErrorCode(err) == loaxa.EUnauthorized {
		s.failed(r, "")
		s.auditAs(r, "anonymous", "node.enrol_failed", "", "", "unknown, used or expired code")
		return loaxa.Errorf(loaxa.EUnauthorized, "The enrolment code is unknown, used already or expired; ask the technician for a new one (POST /api/v1/nodes/{id}/enrolment).")
	} else if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	creds, err := s.credentials(r, n, secret)
	if err != nil {
		// The code is spent and the node has a secret nobody saw: the
		// technician issues a new code once the setup fault is fixed.
		return err
	}
	s.disconnect(n.ID) // a previous board of this node
	s.changed()
	s.auditAs(r, "node:"+n.ID, "node.enrol", n.ID, n.Area, "")
	s.logger().Info("node enrolled with a code", "node", n.ID, "remote", clientAddr(r))
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, enrolResponse{Credentials: creds})
	return nil
}
