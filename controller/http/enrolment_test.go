package http_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// disconnects records the nodes the server asked the broker to cut off.
type disconnects struct {
	mu  sync.Mutex
	ids []string
}

func (d *disconnects) add(id string) {
	d.mu.Lock()
	d.ids = append(d.ids, id)
	d.mu.Unlock()
}

func (d *disconnects) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ids)
}

// audio fetches content id's audio as node id with secret.
func (e *env) audioAs(id, secret, content string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/content/"+content+"/audio", nil)
	req.SetBasicAuth(id, secret)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	readAll(e.t, resp)
	return resp.StatusCode
}

func TestEnrolmentRotationRevocation(t *testing.T) {
	t.Parallel()
	var cut disconnects
	e := newEnv(t, func(s *lhttp.Server) {
		s.Disconnect = cut.add
		s.LoginLimits = lhttp.LoginLimits{UserFailures: 5, AddrFailures: 3, Window: time.Hour, LockFor: time.Minute, MaxLock: time.Hour}
	})
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "318")
	content := e.upload(e.admin, "b.wav", wav(16000, 1, 800), "", http.StatusCreated).ID

	// A technician creates a batch of boards with enrolment codes.
	var batch struct {
		Nodes []struct {
			Node        loaxa.Node
			Credentials *protocol.Credentials
			Enrolment   struct {
				Code      string
				ExpiresAt time.Time `json:"expires_at"`
				Command   string
			}
		}
	}
	e.call("POST", "/api/v1/nodes/batch", tech, map[string]any{"credentials": "code", "nodes": []map[string]any{
		{"id": "tt-01", "name": "Cụm loa 1", "area": "12346"}, {"id": "tt-02", "name": "Cụm loa 2", "area": "12346"},
	}}, http.StatusCreated, &batch)
	if len(batch.Nodes) != 2 {
		t.Fatalf("batch answered %d nodes", len(batch.Nodes))
	}
	first := batch.Nodes[0]
	if first.Credentials != nil || first.Node.Credentials != loaxa.CredentialsPending || first.Enrolment.Code == "" ||
		!first.Enrolment.ExpiresAt.Equal(e.clock.Now().Add(lhttp.DefaultEnrolmentTTL)) || !strings.Contains(first.Enrolment.Command, "--enrol "+first.Enrolment.Code) ||
		!strings.Contains(first.Enrolment.Command, " --credentials /etc/loaxa/node.json --data /var/lib/loaxa-node") {
		t.Errorf("batch node %+v", first)
	}
	// The command runs the agent where a fresh board has it: ./node in the
	// unpacked release archive (scripts/build-boards.sh). As "node --enrol"
	// it was not on the PATH of a fresh board ("node: command not found"),
	// or ran Node.js where that is installed ("node: bad option: --enrol").
	if !strings.HasPrefix(first.Enrolment.Command, "./node --enrol ") {
		t.Errorf("enrolment command %q: want it to run ./node, the agent in the release archive", first.Enrolment.Command)
	}
	// All or none: one bad entry creates nothing.
	r := e.request("POST", "/api/v1/nodes/batch", tech, "application/json", jsonBody(t, map[string]any{"nodes": []map[string]any{
		{"id": "tt-03", "name": "Cụm loa 3", "area": "12346"}, {"id": "tt-01", "name": "again", "area": "12346"}}}))
	checkError(t, r, http.StatusConflict, loaxa.EConflict, `Node "tt-01" exists already`)
	checkError(t, e.request("GET", "/api/v1/nodes/tt-03", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound, "no node")

	// The board presents its code once, typed in lower case.
	enrol := func(code string) response {
		return e.request("POST", "/api/v1/enrol", "", "application/json", jsonBody(t, map[string]string{"code": code}))
	}
	var got struct{ Credentials protocol.Credentials }
	r = enrol(strings.ToLower(first.Enrolment.Code))
	if r.status != http.StatusOK || jsonUnmarshal(r.body, &got) != nil {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	creds := got.Credentials
	if creds.Node != "tt-01" || creds.Secret == "" || creds.Validate() != nil {
		t.Fatalf("enrolled credentials %+v", creds)
	}
	if code := e.audioAs("tt-01", creds.Secret, content); code != http.StatusOK {
		t.Errorf("enrolled node fetches audio: %d", code)
	}
	checkError(t, enrol(first.Enrolment.Code), http.StatusUnauthorized, loaxa.EUnauthorized, "unknown, used already or expired")

	// Rotation: a new document; the old secret stops at once; the broker
	// drops the node.
	var rotated struct {
		Node        loaxa.Node
		Credentials protocol.Credentials
	}
	e.call("POST", "/api/v1/nodes/tt-01/rotate", tech, nil, http.StatusOK, &rotated)
	if rotated.Credentials.Secret == "" || rotated.Credentials.Secret == creds.Secret {
		t.Errorf("rotation gave secret %q", rotated.Credentials.Secret)
	}
	if code := e.audioAs("tt-01", creds.Secret, content); code != http.StatusUnauthorized {
		t.Errorf("old secret after rotation: %d, want 401", code)
	}
	if code := e.audioAs("tt-01", rotated.Credentials.Secret, content); code != http.StatusOK {
		t.Errorf("new secret after rotation: %d", code)
	}

	// Revocation: no secret works, the node shows as revoked.
	var revoked loaxa.Node
	e.call("POST", "/api/v1/nodes/tt-01/revoke", tech, nil, http.StatusOK, &revoked)
	if revoked.Credentials != loaxa.CredentialsRevoked || revoked.RevokedAt.IsZero() {
		t.Errorf("revoked node %+v", revoked)
	}
	if code := e.audioAs("tt-01", rotated.Credentials.Secret, content); code != http.StatusUnauthorized {
		t.Errorf("secret after revocation: %d, want 401", code)
	}
	// Enrolment, rotation and revocation each drop a connected board.
	if want := []string{"tt-01", "tt-01", "tt-01"}; !slices.Equal(cut.list(), want) {
		t.Errorf("disconnected %v, want %v", cut.list(), want)
	}

	// A new code brings the board back (a replaced board, say).
	var again struct{ Enrolment struct{ Code string } }
	e.call("POST", "/api/v1/nodes/tt-01/enrolment", tech, nil, http.StatusCreated, &again)
	r = enrol(again.Enrolment.Code)
	if r.status != http.StatusOK || jsonUnmarshal(r.body, &got) != nil {
		t.Fatalf("re-enrol: %d %s", r.status, r.body)
	}
	if code := e.audioAs("tt-01", got.Credentials.Secret, content); code != http.StatusOK {
		t.Errorf("re-enrolled node: %d", code)
	}

	// Guessing codes locks the address out.
	checkError(t, enrol("7KQ2M-XH9DP-03RTW-VN5CU"), http.StatusBadRequest, loaxa.EInvalid, "not in a code")
	checkError(t, enrol("00000-00000-00000-00000"), http.StatusUnauthorized, loaxa.EUnauthorized, "unknown")
	checkError(t, enrol("00000-00000-00000-00001"), http.StatusTooManyRequests, loaxa.ETooMany, "Too many failed attempts from your address")
	checkError(t, enrol(batch.Nodes[1].Enrolment.Code), http.StatusTooManyRequests, loaxa.ETooMany, "wait 1 minute")

	// Each step is in the audit log.
	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		if strings.HasPrefix(a.Action, "node.") {
			actions = append(actions, a.Actor+" "+a.Action+" "+a.Target)
		}
	}
	want := []string{
		"admin node.create n-a", "admin node.create n-b", "ky-thuat node.create tt-01", "ky-thuat node.create tt-02",
		"node:tt-01 node.enrol tt-01", "anonymous node.enrol_failed ", "ky-thuat node.rotate tt-01", "ky-thuat node.revoke tt-01",
		"ky-thuat node.enrolment_code tt-01", "node:tt-01 node.enrol tt-01", "anonymous node.enrol_failed ",
	}
	if !slices.Equal(actions, want) {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
	for _, a := range entries {
		if strings.Contains(a.Detail+a.Target, creds.Secret) || strings.Contains(a.Detail, first.Enrolment.Code) {
			t.Errorf("audit entry holds a secret: %+v", a)
		}
	}
}

// TestEnrolmentCommandReadsTheCertificateToTrust: behind a certificate
// the boards' system roots do not verify, the printed command without --ca
// failed on the board with "certificate signed by unknown authority". With
// EnrolCA set, every enrolment answer (a node, a batch, a new code) carries
// it as ca_pem and its command reads it with --ca; without, neither.
func TestEnrolmentCommandReadsTheCertificateToTrust(t *testing.T) {
	t.Parallel()
	const pin = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	type answer struct {
		Command string
		CAPEM   *string `json:"ca_pem"`
	}
	for _, enrolCA := range []string{pin, ""} {
		e := newEnv(t, func(s *lhttp.Server) { s.EnrolCA = enrolCA })
		e.tree()
		var one struct{ Enrolment answer }
		e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "tt-01", "name": "Cụm loa 1", "area": "12346", "credentials": "code"}, http.StatusCreated, &one)
		var batch struct{ Nodes []struct{ Enrolment answer } }
		e.call("POST", "/api/v1/nodes/batch", e.admin, map[string]any{"credentials": "code", "nodes": []map[string]any{{"id": "tt-02", "name": "Cụm loa 2", "area": "12346"}}}, http.StatusCreated, &batch)
		var again struct{ Enrolment answer }
		e.call("POST", "/api/v1/nodes/tt-01/enrolment", e.admin, nil, http.StatusCreated, &again)
		for name, a := range map[string]answer{"POST /nodes": one.Enrolment, "POST /nodes/batch": batch.Nodes[0].Enrolment, "POST /nodes/{id}/enrolment": again.Enrolment} {
			withCA := strings.HasSuffix(a.Command, " --ca "+lhttp.EnrolCAFile)
			switch {
			case enrolCA != "" && (!withCA || a.CAPEM == nil || *a.CAPEM != pin):
				t.Errorf("%s with EnrolCA: command %q, ca_pem %v; want --ca %s and the certificate", name, a.Command, a.CAPEM, lhttp.EnrolCAFile)
			case enrolCA == "" && (withCA || a.CAPEM != nil):
				t.Errorf("%s without EnrolCA: command %q, ca_pem %v; want neither --ca nor ca_pem", name, a.Command, a.CAPEM)
			}
		}
	}
}
