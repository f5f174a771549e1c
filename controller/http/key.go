package http

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// trustedKeys are the controller keys written into credentials documents.
func (s *Server) trustedKeys(ctx context.Context) ([]protocol.PublicKey, error) {
	if s.KeyService == nil {
		return s.ControllerKeys, nil
	}
	keys, err := s.KeyService.TrustedKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	return keys, nil
}

// keysResponse answers GET /api/v1/keys.
type keysResponse struct {
	Keys []*keyStatus `json:"keys"`
}

// keyStatus is a signing key and how many nodes with active credentials
// report trusting it.
type keyStatus struct {
	*loaxa.SigningKey
	TrustedBy int `json:"trusted_by"`
	Nodes     int `json:"nodes"`
}

// activateRequest is the body of POST /api/v1/keys/activate.
type activateRequest struct {
	// Force activates even though some nodes do not trust the key yet;
	// they will refuse everything until re-enrolled.
	Force bool `json:"force"`
}

// requireWholeTree refuses a user limited to a subtree: keys sign for
// every node, and broker files, backups, releases and rollouts concern
// every node too. A node calling with its own credentials passes.
func requireWholeTree(ctx context.Context) error {
	if u := userFrom(ctx); u != nil && u.Area != "" {
		return loaxa.Errorf(loaxa.EForbidden, "Controller keys, broker credentials, backups and agent releases concern every node; only a user over the whole tree may manage or read them, not one limited to %q.", u.Area)
	}
	return nil
}

// handleListKeys answers GET /api/v1/keys: the signing keys and how many
// nodes trust each, to see when an announced key may be activated.
func (s *Server) handleListKeys(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	keys, err := s.KeyService.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	out := make([]*keyStatus, len(keys))
	for i, k := range keys {
		out[i] = &keyStatus{SigningKey: k}
		for _, n := range nodes {
			if n.Credentials == loaxa.CredentialsActive {
				out[i].Nodes++
				if slices.Contains(n.Status.Keys, k.ID) {
					out[i].TrustedBy++
				}
			}
		}
	}
	s.writeJSON(w, r, http.StatusOK, keysResponse{Keys: out})
	return nil
}

// handleAnnounceKey answers POST /api/v1/keys: generates the next signing
// key and announces it to every node in its desired state, signed by the
// current key. Nothing is signed with it until it is activated.
func (s *Server) handleAnnounceKey(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	k, err := s.KeyService.AnnounceKey(ctx)
	if loaxa.ErrorCode(err) == loaxa.EConflict {
		return err
	} else if err != nil {
		return fmt.Errorf("announce key: %w", err)
	}
	s.changed()
	s.audit(r, "key.announce", k.ID, "", "")
	s.writeJSON(w, r, http.StatusCreated, k)
	return nil
}

// handleActivateKey answers POST /api/v1/keys/activate: the announced key
// signs from now on and the current one is retired, so nodes refuse what
// it signed. Refused while nodes with active credentials do not report
// trusting the new key, unless forced.
func (s *Server) handleActivateKey(w http.ResponseWriter, r *http.Request) error {
	var req activateRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	keys, err := s.KeyService.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("activate key: %w", err)
	}
	var next string
	for _, k := range keys {
		if k.State == loaxa.KeyNext {
			next = k.ID
		}
	}
	if next == "" {
		return loaxa.Errorf(loaxa.EConflict, "No key is announced; announce one with POST /api/v1/keys and wait until the nodes trust it.")
	}
	nodes, err := s.NodeService.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return fmt.Errorf("activate key: %w", err)
	}
	var behind []string
	for _, n := range nodes {
		if n.Credentials == loaxa.CredentialsActive && !slices.Contains(n.Status.Keys, next) {
			behind = append(behind, n.ID)
		}
	}
	if len(behind) > 0 && !req.Force {
		shown := behind[:min(len(behind), 20)]
		do, they, are, their, them := "do", "they", "are", "their", "them"
		if len(behind) == 1 {
			do, they, are, their, them = "does", "it", "is", "its", "it"
		}
		return loaxa.Errorf(loaxa.EConflict,
			"%s %s not trust key %s yet (%s%s); wait until %s %s online and running %s latest desired state, or send {\"force\": true} and re-enrol %s afterwards.",
			loaxa.Count(len(behind), "node", "nodes"), do, next, strings.Join(shown, ", "), map[bool]string{true: ", …"}[len(behind) > len(shown)],
			they, are, their, them)
	}
	k, err := s.KeyService.ActivateKey(ctx)
	if err != nil {
		return fmt.Errorf("activate key: %w", err)
	}
	s.changed()
	s.audit(r, "key.activate", k.ID, "", fmt.Sprintf("force=%t behind=%d", req.Force, len(behind)))
	s.writeJSON(w, r, http.StatusOK, k)
	return nil
}
