package http

import (
	"net/http"
	"time"
)

// handleHealth answers GET /api/v1/health: the API is up.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleTime answers GET /api/v1/time with the controller's clock. Nodes
// measure their offset against it over several round trips and keep the
// fastest, so the handler does as little as it can between reading the
// clock and writing the answer.
func (s *Server) handleTime(w http.ResponseWriter, r *http.Request) error {
	buf := make([]byte, 0, 64)
	buf = append(buf, `{"time":"`...)
	buf = s.now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, "\"}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write(buf)
	return nil
}
