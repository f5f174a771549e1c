package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"loaxa.vn/protocol"
)

// maxEnrolAnswer bounds what Enrol reads of the controller's answer.
const maxEnrolAnswer = 1 << 20

// Enrol exchanges a one-time enrolment code for the node's credentials
// document (POST /api/v1/enrol on controller). The code works once: keep
// the document, it holds the node's own secret from now on.
func Enrol(ctx context.Context, client *http.Client, controller, code string) (*protocol.Credentials, error) {
	if client == nil {
		client = http.DefaultClient
	}
	body, err := json.Marshal(map[string]string{"code": code})
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	url := strings.TrimSuffix(controller, "/") + "/api/v1/enrol"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enrol at %s: %w", controller, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// A 307 or 308 would carry the one-time code to any host: redirects
	// stay on the controller (protocol.ErrRedirectAway).
	stay := *client
	stay.CheckRedirect = protocol.StayOnController(controller)
	resp, err := stay.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enrol at %s: %w", controller, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxEnrolAnswer))
	if err != nil {
		return nil, fmt.Errorf("enrol at %s: read answer: %w", controller, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		return nil, fmt.Errorf("enrol at %s: %s: %s", controller, resp.Status, msg)
	}
	var answer struct {
		Credentials *protocol.Credentials `json:"credentials"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Credentials == nil {
		return nil, fmt.Errorf("enrol at %s: the answer is not a credentials document (%v)", controller, err)
	}
	if err := answer.Credentials.Validate(); err != nil {
		return nil, fmt.Errorf("enrol at %s: unusable credentials document: %w", controller, err)
	}
	return answer.Credentials, nil
}
