package http

import (
	"fmt"
	"net/http"

	"loaxa.vn/controller/loaxa"
)

// brokerFilesResponse answers GET /api/v1/broker/mosquitto.
type brokerFilesResponse struct {
	Files   map[string]string `json:"files"`
	Missing []string          `json:"missing"`
}

// handleBrokerFiles answers GET /api/v1/broker/mosquitto: an external
// Mosquitto's password file (hashes only), ACL file and configuration
// snippet for every node with active credentials, to install and reload
// (SIGHUP) after enrolling, rotating or revoking nodes.
func (s *Server) handleBrokerFiles(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	if err := requireWholeTree(ctx); err != nil {
		return err
	}
	if s.BrokerFiles == nil {
		return loaxa.Errorf(loaxa.EConflict, "The controller runs the embedded broker, which needs no files: it checks every node against the store itself. Start it with --broker to use Mosquitto.")
	}
	files, missing, err := s.BrokerFiles(ctx)
	if err != nil {
		return fmt.Errorf("broker files: %w", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, brokerFilesResponse{Files: files, Missing: nonNil(missing)})
	return nil
}
