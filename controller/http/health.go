package http

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// HealthCheck is one part of the controller that GET /api/v1/health
// reports on. Check returns a short detail ("connected", "12 MiB") or an
// error saying what is wrong.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) (string, error)
}

// checkResult is one check in the answer of GET /api/v1/health.
type checkResult struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// healthResponse answers GET /api/v1/health.
type healthResponse struct {
	Status string                 `json:"status"` // "ok" or "degraded"
	Checks map[string]checkResult `json:"checks,omitempty"`
}

// healthTimeout bounds all checks together.
const healthTimeout = 5 * time.Second

// handleHealth answers GET /api/v1/health: 200 {"status":"ok"} when every
// check passes, else 503 {"status":"degraded"}, with each check's result.
// It is public (load balancers and monitoring call it), so the details say
// how a part is, never what the fleet holds.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	resp := healthResponse{Status: "ok", Checks: map[string]checkResult{}}
	for _, c := range s.Checks {
		detail, err := c.Check(ctx)
		res := checkResult{OK: err == nil, Detail: detail}
		if err != nil {
			res.Error = err.Error()
			resp.Status = "degraded"
		}
		resp.Checks[c.Name] = res
	}
	status := http.StatusOK
	if resp.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	s.writeJSON(w, r, status, resp)
	return nil
}

// handleTime answers GET /api/v1/time with the controller's clock. Nodes
// measure their offset against it over several round trips and keep the
// fastest, so the handler does as little as it can between reading the
// clock and writing the answer.
//
// With ?nonce= (protocol.ValidNonce) the answer also carries "proof": the
// time and the nonce in an envelope signed with the controller's key, so
// that no one on the way can set a node's clock (protocol/timeproof.go).
func (s *Server) handleTime(w http.ResponseWriter, r *http.Request) error {
	nonce := r.URL.Query().Get("nonce")
	if nonce != "" && !protocol.ValidNonce(nonce) {
		return loaxa.Errorf(loaxa.EInvalid, "nonce: give %d to %d letters, digits, - or _.", protocol.MinNonceLen, protocol.MaxNonceLen)
	}
	now := s.now().UTC()
	buf := make([]byte, 0, 64)
	buf = append(buf, `{"time":"`...)
	buf = now.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if nonce != "" && s.TimeSigner != nil {
		proof, err := s.TimeSigner.Seal(protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: now}, protocol.TimeProofTTL)
		if err != nil {
			return fmt.Errorf("time proof: %w", err)
		}
		buf = append(buf, `,"proof":`...)
		buf = append(buf, proof...)
	}
	buf = append(buf, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.Write(buf)
	return nil
}
