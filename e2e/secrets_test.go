package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// No secret — a password, a bearer token, a node secret, an enrolment
// code, a private key — appears in any log line (controller and node, at
// debug level) or in any API answer after the one that created it.
func TestNoSecretInLogsOrAnswers(t *testing.T) {
	t.Parallel()
	logs := &nodeLog{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := rig.StartControllerWith(t, rig.ControllerOptions{Logger: logger.With("part", "controller")})
	secrets := map[string]string{"admin token": c.Token, "admin password": "e2e-admin-password"}

	c.CreateArea("31", "Thành phố Hải Phòng", "")
	const officerPassword = "mat-khau-can-bo-31"
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo", "password": officerPassword, "role": "province", "area": "31"}, nil)
	secrets["officer password"] = officerPassword
	var tok struct{ Token string }
	c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": "can-bo", "password": officerPassword}, &tok)
	secrets["officer token"] = tok.Token
	// A failed sign-in with a password that is almost right.
	c.Do("POST", "/api/v1/auth/token", map[string]string{"username": "can-bo", "password": officerPassword + "!"}, nil)
	secrets["mistyped password"] = officerPassword + "!"

	secrets["first node secret"] = c.CreateNode("bi-mat-01", "31").Secret
	var created struct{ Enrolment struct{ Code string } }
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "bi-mat-02", "name": "Cụm loa", "area": "31", "credentials": "code"}, &created)
	code := created.Enrolment.Code
	secrets["enrolment code"] = code
	secrets["enrolment code, bare"] = strings.ReplaceAll(code, "-", "")
	var enrolled struct{ Credentials protocol.Credentials }
	c.MustDo("POST", "/api/v1/enrol", map[string]string{"code": code}, &enrolled)
	secrets["enrolled secret"] = enrolled.Credentials.Secret
	var rotated struct{ Credentials protocol.Credentials }
	c.MustDo("POST", "/api/v1/nodes/bi-mat-02/rotate", nil, &rotated)
	secrets["rotated secret"] = rotated.Credentials.Secret

	key, err := c.App.Keys.CurrentKey()
	if err != nil {
		t.Fatal(err)
	}
	secrets["signing key (base64)"] = base64.StdEncoding.EncodeToString(key.Seed())
	secrets["signing key (hex)"] = hex.EncodeToString(key.Seed())
	secrets["signing key (raw base64)"] = base64.StdEncoding.EncodeToString(key)[:40]
	secrets["broker controller secret"] = c.App.Broker.ControllerSecret

	// The node runs with its rotated secret: it connects, fetches audio
	// with HTTP Basic, and reports.
	n := rig.StartNode(t, &rotated.Credentials, rig.NodeOptions{Logger: logger.With("part", "node")})
	ct := c.Upload("bi-mat.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
	ann := c.Announce(ct.ID, []string{"31"}, nil, time.Now().Add(time.Hour))
	rig.Eventually(t, 20*time.Second, "node received the schedule and fetched its audio", func() bool {
		for _, d := range c.Deliveries(ann.ID) {
			if d.Node == "bi-mat-02" && d.State == loaxa.DeliveryReceived {
				return len(n.Agent.Status().ContentMissing) == 0
			}
		}
		return false
	})
	c.MustDo("POST", "/api/v1/keys", nil, nil)

	var answers []string
	for _, path := range []string{
		"/api/v1/users", "/api/v1/nodes", "/api/v1/nodes/bi-mat-01", "/api/v1/nodes/bi-mat-02", "/api/v1/nodes/bi-mat-02/desired",
		"/api/v1/audit", "/api/v1/keys", "/api/v1/auth/session", "/api/v1/events?" + url.Values{"node": {"bi-mat-02"}}.Encode(),
		"/api/v1/announcements", "/api/v1/areas",
	} {
		status, body := c.Do("GET", path, nil, nil)
		if status != 200 {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
		answers = append(answers, "GET "+path+": "+string(body))
	}
	c.MustDo("POST", "/api/v1/auth/logout", nil, nil)

	text := logs.String()
	if !strings.Contains(text, "bi-mat-02") || !strings.Contains(text, "http request") {
		t.Fatalf("the log capture missed the run:\n%.2000s", text)
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("secret %q is empty: the test would prove nothing", name)
		}
		if strings.Contains(text, s) {
			t.Errorf("the %s appears in the log", name)
		}
		for _, a := range answers {
			if strings.Contains(a, s) {
				t.Errorf("the %s appears in the answer to %.60s", name, a)
			}
		}
	}
}
