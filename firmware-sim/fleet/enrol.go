package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"loaxa.vn/protocol"
)

// ErrNodeExists means the controller already has a node with the id the
// fleet wanted to enrol, and no saved credentials for it were found.
var ErrNodeExists = errors.New("node exists on the controller")

// credentialsFile is the name of a node's saved credentials document in
// DataDir/<id>/.
const credentialsFile = "credentials.json"

// maxResponse bounds what the fleet reads of a controller answer.
const maxResponse = 1 << 20

// enrolRequest is the body of POST /api/v1/nodes.
type enrolRequest struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Area string  `json:"area"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
}

// enrolResponse is the controller's 201 answer.
type enrolResponse struct {
	Credentials *protocol.Credentials `json:"credentials"`
}

// errorResponse is the controller's error answer.
type errorResponse struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// enroller creates nodes through the controller's public API.
type enroller struct {
	controller string // base URL without a trailing slash
	token      string
	client     *http.Client
}

// enrol creates node req.ID and returns its credentials document.
func (e *enroller) enrol(ctx context.Context, req enrolRequest) (*protocol.Credentials, error) {
	if e.token == "" {
		return nil, fmt.Errorf("enrol node %s: no token: pass --token (get one with POST %s/api/v1/auth/token)", req.ID, e.controller)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", req.ID, err)
	}
	url := e.controller + "/api/v1/nodes"
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", req.ID, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("Authorization", "Bearer "+e.token)
	// A 307 or 308 would carry the officer's token (Go keeps it when only
	// the port differs) and the node's details to another server: as the
	// node agent does, redirects stay on the controller
	// (protocol.ErrRedirectAway).
	stay := *e.client
	stay.CheckRedirect = protocol.StayOnController(e.controller)
	resp, err := stay.Do(hr)
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return nil, fmt.Errorf("enrol node %s: %w; the fleet does not trust the controller's certificate: give the certificate it pins with --ca PEM (its --tls-ca, or the last certificate of its --tls-cert)", req.ID, err)
	}
	if errors.Is(err, protocol.ErrRedirectAway) {
		return nil, fmt.Errorf("enrol node %s: %w; give --controller the address the controller itself answers at (the fleet sends its token to no other server)", req.ID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", req.ID, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("enrol node %s: read answer: %w", req.ID, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, answerError(req.ID, url, resp.StatusCode, raw)
	}
	var created enrolResponse
	if err := json.Unmarshal(raw, &created); err != nil {
		return nil, fmt.Errorf("enrol node %s: POST %s answered 201 with a body that is not JSON: %w", req.ID, url, err)
	}
	if created.Credentials == nil {
		return nil, fmt.Errorf("enrol node %s: POST %s answered 201 without a credentials document", req.ID, url)
	}
	if err := created.Credentials.Validate(); err != nil {
		return nil, fmt.Errorf("enrol node %s: the controller's credentials document is unusable: %w", req.ID, err)
	}
	if created.Credentials.Node != req.ID {
		return nil, fmt.Errorf("enrol node %s: the controller sent credentials for node %q", req.ID, created.Credentials.Node)
	}
	return created.Credentials, nil
}

// answerError explains a non-201 answer, with the controller's own message
// when it sent one.
func answerError(id, url string, status int, raw []byte) error {
	var e errorResponse
	detail := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		detail = e.Error.Code + ": " + e.Error.Message
	}
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	switch status {
	case http.StatusConflict:
		return fmt.Errorf("enrol node %s: %w (%s); its credentials were shown only when it was created, so run the fleet with a new --prefix, or with --data pointing at the directory of the run that created it", id, ErrNodeExists, detail)
	case http.StatusUnauthorized:
		return fmt.Errorf("enrol node %s: the controller refused the token (401 %s); get a fresh one with POST /api/v1/auth/token", id, detail)
	case http.StatusForbidden:
		return fmt.Errorf("enrol node %s: the token's user may not enrol nodes in this area (403 %s)", id, detail)
	}
	return fmt.Errorf("enrol node %s: POST %s answered %d %s: %s", id, url, status, http.StatusText(status), detail)
}

// loadCredentials returns the credentials saved in dir, or nil if there
// are none.
func loadCredentials(dir string) (*protocol.Credentials, error) {
	path := filepath.Join(dir, credentialsFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return protocol.ReadCredentials(path)
}

// saveCredentials writes c into dir, readable by the owner only (it holds
// the node's secret), replacing the file in one step so a crash leaves
// either the old document or the new one.
func saveCredentials(dir string, c *protocol.Credentials) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save credentials of %s: %w", c.Node, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save credentials of %s: %w", c.Node, err)
	}
	tmp, err := os.CreateTemp(dir, credentialsFile+".*")
	if err != nil {
		return fmt.Errorf("save credentials of %s: %w", c.Node, err)
	}
	_, werr := tmp.Write(append(raw, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save credentials of %s: %w", c.Node, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, credentialsFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save credentials of %s: %w", c.Node, err)
	}
	return nil
}
