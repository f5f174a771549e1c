package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"loaxa.vn/controller/loaxa"
)

// errorResponse is the body of every error answer.
type errorResponse struct {
	Error errorBody `json:"error"`
	// Unplayable is, with reason bulletin_unplayable, the bulletin that
	// cannot be scheduled, for a client to name in its user's words.
	Unplayable *loaxa.UnplayableError `json:"unplayable,omitempty"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Reason tells refusals of one code apart for programs (loaxa
	// Reason constants); most errors have none.
	Reason string `json:"reason,omitempty"`
}

// statusCodes maps application error codes to HTTP statuses.
var statusCodes = map[string]int{
	loaxa.EInvalid:      http.StatusBadRequest,
	loaxa.EUnauthorized: http.StatusUnauthorized,
	loaxa.EForbidden:    http.StatusForbidden,
	loaxa.ENotFound:     http.StatusNotFound,
	loaxa.EConflict:     http.StatusConflict,
	loaxa.ETooLarge:     http.StatusRequestEntityTooLarge,
	loaxa.EUnsupported:  http.StatusUnsupportedMediaType,
	loaxa.EUnavailable:  http.StatusServiceUnavailable,
	loaxa.ETooMany:      http.StatusTooManyRequests,
	loaxa.EInternal:     http.StatusInternalServerError,
}

// errorStatus returns the HTTP status for an application error code.
func errorStatus(code string) int {
	if status, ok := statusCodes[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// writeError answers with err as {"error":{"code","message"}}. Internal
// errors are logged with their detail and shown only as "Internal error.".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, message, reason := loaxa.ErrorCode(err), loaxa.ErrorMessage(err), loaxa.ErrorReason(err)
	status := errorStatus(code)
	if status == http.StatusInternalServerError {
		code, message, reason = loaxa.EInternal, "Internal error; the controller log has the details.", ""
		s.logger().Error("http: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="loaxa"`)
	}
	var wait *retryAfter
	if errors.As(err, &wait) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait.after+time.Second-1)/time.Second))))
	}
	resp := errorResponse{Error: errorBody{Code: code, Message: message, Reason: reason}}
	if reason == loaxa.ReasonBulletinUnplayable {
		errors.As(err, &resp.Unplayable)
	}
	s.writeJSON(w, r, status, resp)
}

// tryAgain ends a fault's message (writeFault): what the user can do.
const tryAgain = "Try again; if it fails again, tell the controller's administrator."

// writeFault answers a failure of the controller itself (a panic among
// them) in what the user asked for with 500 and what was not done and what
// to do, where writeError says only "Internal error": notDone says what
// was not done and in which step, after what to do. The log has err under
// event, which the message names.
func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, event string, err error, notDone, after string, attrs ...any) {
	s.logger().Error(event, append(attrs, "method", r.Method, "path", r.URL.Path, "err", err)...)
	s.writeJSON(w, r, http.StatusInternalServerError, errorResponse{Error: errorBody{Code: loaxa.EInternal, Message: fmt.Sprintf(
		"%s (a fault of the controller; its log has the details, under %q). %s", notDone, event, after)}})
}

// writeJSON answers with v as JSON. <, > and & are sent as written, not
// escaped: the answer is application/json with nosniff, so no browser reads
// it as HTML, and curl users read "give from < to" as it was written.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v) // ends the body with a newline
	body := buf.Bytes()
	if err != nil {
		// Only our own response types reach here, and they all marshal; a
		// failure is a bug, and the client still gets a well-formed answer.
		s.logger().Error("http: encode response", "method", r.Method, "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"Internal error; the controller log has the details."}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(body)
}

// retryAfter is an error that tells the client when to try again: the
// answer carries a Retry-After header of that many seconds.
type retryAfter struct {
	err   error
	after time.Duration
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }
