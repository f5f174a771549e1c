package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// TestRunEnrols: a board given a code fetches its credentials document
// from a real controller once, and will not overwrite it.
func TestRunEnrols(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	var created struct {
		Enrolment struct{ Code string }
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tt-01", "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)
	path := filepath.Join(t.TempDir(), "node.json")
	runEnrol := func(code string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		exit := run(context.Background(), []string{"--enrol", code, "--controller", c.URL, "--credentials", path}, env(nil), &stdout, &stderr)
		return exit, stdout.String(), stderr.String()
	}

	if exit, _, stderr := runEnrol("00000-00000-00000-00000"); exit != exitFailure || !strings.Contains(stderr, "unknown, used already or expired") {
		t.Errorf("wrong code: exit %d, %q", exit, stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a failed enrolment left %s: %v", path, err)
	}
	exit, stdout, stderr := runEnrol(created.Enrolment.Code)
	if exit != 0 || !strings.Contains(stdout, "Enrolled as node tt-01") {
		t.Fatalf("enrol: exit %d, %q %q", exit, stdout, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %v, %v: want mode 0600", fi, err)
	}
	cred, err := protocol.ReadCredentials(path)
	if err != nil || cred.Node != "tt-01" || cred.Secret == "" {
		t.Fatalf("written credentials %+v, %v", cred, err)
	}
	if exit, _, stderr := runEnrol(created.Enrolment.Code); exit != exitUsage || !strings.Contains(stderr, "exists already") {
		t.Errorf("second enrolment: exit %d, %q", exit, stderr)
	}
	var stderrBuf bytes.Buffer
	if exit := run(context.Background(), []string{"--enrol", "x", "--credentials", path + "2"}, env(nil), &bytes.Buffer{}, &stderrBuf); exit != exitUsage || !strings.Contains(stderrBuf.String(), "--enrol needs --controller") {
		t.Errorf("no controller: exit %d, %q", exit, stderrBuf.String())
	}
}

// TestEnrolSaysHowToStartTheAgent: the enrolment's last words are the
// technician's next step. They said "--data DIR" even when --data was
// given (the controller's printed command gives the service's
// /var/lib/loaxa-node), and nothing of the installed service, which runs
// as user loaxa-node and could not read the document the enrolment wrote
// as root, mode 0600 ("node: read credentials: open /etc/loaxa/node.json:
// permission denied" at its next start).
func TestEnrolSaysHowToStartTheAgent(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	var created struct {
		Enrolment struct{ Code string }
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tt-01", "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)
	dir := t.TempDir()
	path, data := filepath.Join(dir, "node.json"), filepath.Join(dir, "data")
	var stdout, stderr bytes.Buffer
	exit := run(context.Background(), []string{"--enrol", created.Enrolment.Code, "--controller", c.URL, "--credentials", path, "--data", data}, env(nil), &stdout, &stderr)
	if exit != 0 {
		t.Fatalf("enrol: exit %d, %q %q", exit, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		// The agent as it was run (./node in a release archive), not
		// "node", which a board's shell does not find or runs Node.js as.
		"Start the agent with: " + os.Args[0] + " --credentials " + path + " --data " + data + "\n",
		"chown root:loaxa-node " + path + " && chmod 0640 " + path + " && systemctl restart loaxa-node",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("enrolment said\n%s\nwant %q", stdout.String(), want)
		}
	}
	if strings.Contains(stdout.String(), "install-node.sh") {
		t.Errorf("enrolment run with no install-node.sh beside it said\n%s", stdout.String())
	}
}

// TestEnrolSaysToInstallTheService: a fresh board enrolled from the
// unpacked release archive (./node --enrol …, as the controller prints it)
// was told only to start the agent by hand or to restart a loaxa-node
// service not installed yet; what it needs next is install-node.sh, beside
// the agent in the archive, which docs/deploy.md gives as the second step.
// The enrolment now says that first, as the technician runs it.
func TestEnrolSaysToInstallTheService(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	archive := t.TempDir() // loaxa-node-1.4.0-linux-arm64/
	if err := os.WriteFile(filepath.Join(archive, "install-node.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(p func() string) { program = p }(program)
	for i, tc := range []struct{ name, self, script string }{
		{"in the archive's directory", "./node", "./install-node.sh"}, // as docs/deploy.md says
		{"by its path", archive + "/node", archive + "/install-node.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.self == "./node" {
				t.Chdir(archive)
			}
			program = func() string { return tc.self }
			var created struct {
				Enrolment struct{ Code string }
			}
			id := fmt.Sprintf("tt-%02d", i+1)
			c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": id, "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)
			path := filepath.Join(t.TempDir(), "node.json")
			var stdout, stderr bytes.Buffer
			exit := run(context.Background(), []string{"--enrol", created.Enrolment.Code, "--controller", c.URL, "--credentials", path, "--data", filepath.Join(t.TempDir(), "data")}, env(nil), &stdout, &stderr)
			if exit != 0 {
				t.Fatalf("enrol: exit %d, %q %q", exit, stdout.String(), stderr.String())
			}
			lines := strings.Split(stdout.String(), "\n")
			want := "Install the agent on this board as the loaxa-node service: " + tc.script + " --credentials " + path
			if len(lines) < 2 || lines[1] != want {
				t.Errorf("enrolment said\n%s\nwant its second line %q", stdout.String(), want)
			}
			if !strings.Contains(stdout.String(), "Start the agent with: "+tc.self+" --credentials "+path) {
				t.Errorf("enrolment said\n%s\nwant it to say how to start %s by hand too", stdout.String(), tc.self)
			}
		})
	}
	// A script that cannot be run is not offered.
	if err := os.Chmod(filepath.Join(archive, "install-node.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := besideProgram(archive+"/node", "install-node.sh"); ok {
		t.Error("a non-executable install-node.sh was offered")
	}
	if _, ok := besideProgram("node", "install-node.sh"); ok {
		t.Error("an agent found on the PATH was given a script beside it")
	}
}

// TestEnrolKeepsTheCodeWhenTheCredentialsCannotBeWritten: on a fresh
// board /etc/loaxa does not exist yet (install-node.sh makes it later),
// or the technician runs the enrolment without root. The node redeemed
// the one-time code and only then failed to write the document: the new
// secret was lost, and the same code was refused as used, so the board
// on the pole could not enrol until someone issued a new code. A missing
// directory is now made (0700, the document is a secret), and a path that
// cannot be written is refused, naming it, before the code is redeemed:
// the same code then enrols the board.
func TestEnrolKeepsTheCodeWhenTheCredentialsCannotBeWritten(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	code := func(id string) string {
		var created struct {
			Enrolment struct{ Code string }
		}
		c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": id, "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)
		return created.Enrolment.Code
	}
	runEnrol := func(code, path string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		exit := run(context.Background(), []string{"--enrol", code, "--controller", c.URL, "--credentials", path}, env(nil), &stdout, &stderr)
		return exit, stdout.String(), stderr.String()
	}
	enrolled := func(t *testing.T, path, node string) {
		t.Helper()
		cred, err := protocol.ReadCredentials(path)
		if err != nil || cred.Node != node || cred.Secret == "" {
			t.Fatalf("written credentials %+v, %v", cred, err)
		}
	}

	t.Run("missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "etc", "loaxa")
		path := filepath.Join(dir, "node.json")
		if exit, stdout, stderr := runEnrol(code("tt-01"), path); exit != 0 {
			t.Fatalf("enrol into a missing directory: exit %d, %q %q", exit, stdout, stderr)
		}
		enrolled(t, path, "tt-01")
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("directory made for the credentials: %v, %v; want mode 0700", fi, err)
		}
	})

	t.Run("path that cannot be written", func(t *testing.T) {
		tt02 := code("tt-02")
		notDir := filepath.Join(t.TempDir(), "etc")
		if err := os.WriteFile(notDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// A file where the directory should be; and, unless the test runs
		// as root (who writes anywhere), a directory the user may not write.
		bad := []string{filepath.Join(notDir, "loaxa", "node.json")}
		if os.Geteuid() != 0 {
			readOnly := t.TempDir()
			if err := os.Chmod(readOnly, 0o500); err != nil {
				t.Fatal(err)
			}
			bad = append(bad, filepath.Join(readOnly, "node.json"))
		}
		for _, path := range bad {
			exit, _, stderr := runEnrol(tt02, path)
			if exit != exitUsage || !strings.Contains(stderr, path) || !strings.Contains(stderr, "not used") {
				t.Errorf("enrol into %s: exit %d, %q; want %d naming the path and saying the code was not used", path, exit, stderr, exitUsage)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
				t.Errorf("a refused enrolment left %v in %s", entries, filepath.Dir(path))
			}
		}
		path := filepath.Join(t.TempDir(), "node.json")
		if exit, stdout, stderr := runEnrol(tt02, path); exit != 0 {
			t.Fatalf("the same code on a writable path: exit %d, %q %q: a refused enrolment spent the code", exit, stdout, stderr)
		}
		enrolled(t, path, "tt-02")
	})
}

// TestEnrolWithoutTheControllerCASaysToGiveIt: a technician enrolling a
// board at a controller whose certificate comes from the province's own CA
// ran the command the controller printed, without --ca, and got only "x509:
// certificate signed by unknown authority". The board's answer must say to
// give the certificate the controller pins with --ca, and that the code was
// not used (the TLS handshake failed before it was sent).
func TestEnrolWithoutTheControllerCASaysToGiveIt(t *testing.T) {
	var used atomic.Bool
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { used.Store(true) }))
	defer ts.Close()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	path := filepath.Join(t.TempDir(), "node.json")
	var stdout, stderr bytes.Buffer
	exit := run(context.Background(), []string{"--enrol", "7KQ2M-XH9DP-03RTW-VN5CE", "--controller", ts.URL, "--credentials", path}, env(nil), &stdout, &stderr)
	if exit != exitFailure {
		t.Errorf("exit %d, want %d", exit, exitFailure)
	}
	for _, want := range []string{"unknown authority", "--ca", "The code was not used"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not say %q", stderr.String(), want)
		}
	}
	if used.Load() {
		t.Error("the code reached the server")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a failed enrolment left %s: %v", path, err)
	}
}

// TestEnrolOnABoardClockBehindTheCertificate: a technician on the pole
// enrolled a fresh board right after power-on, its clock still at its
// image's date (no RTC battery, NTP not synced yet), and got "x509:
// certificate has expired or is not yet valid": the controller's
// certificate was issued after that clock, and the board could not enrol
// until its date was set. Enrolment must verify the certificate as the
// agent does before it has measured the controller's time: a chain to the
// pinned CA for the controller's host, valid but for not being valid yet
// on the board's clock, is taken; one of another CA or for another host
// is still refused, and so is one expired on the board's clock, without
// using the code.
func TestEnrolOnABoardClockBehindTheCertificate(t *testing.T) {
	// The board's clock is the real one; the controller's, 30 days ahead.
	const behind = 30 * 24 * time.Hour
	ctlNow := time.Now().Add(behind)
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	var created struct {
		Enrolment struct{ Code string }
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tt-01", "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)
	code := created.Enrolment.Code

	ca := nodetest.NewCA(t, "loaxa test CA", ctlNow.Add(-365*24*time.Hour), ctlNow.Add(10*365*24*time.Hour))
	other := nodetest.NewCA(t, "someone else's CA", ctlNow.Add(-365*24*time.Hour), ctlNow.Add(10*365*24*time.Hour))
	caFile := filepath.Join(t.TempDir(), "controller-ca.PEM")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	// The controller as the board reaches it: over TLS, with cert.
	backend, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.json")
	enrolThrough := func(cert tls.Certificate, args ...string) (int, string) {
		return enrolBehindTLS(backend, cert, append([]string{"--enrol", code, "--credentials", path}, args...))
	}

	for _, r := range []struct {
		name string
		cert tls.Certificate
		ca   bool   // --ca the pinned CA; without it, the system's roots
		want string // the refusal
	}{
		{name: "another CA, not valid yet", cert: other.Issue(t, "127.0.0.1", ctlNow.Add(-time.Hour), ctlNow.Add(90*24*time.Hour)), ca: true, want: "unknown authority"},
		{name: "the system's roots, not valid yet", cert: ca.Issue(t, "127.0.0.1", ctlNow.Add(-time.Hour), ctlNow.Add(90*24*time.Hour)), want: "unknown authority"},
		{name: "another host, not valid yet", cert: ca.Issue(t, "10.9.9.9", ctlNow.Add(-time.Hour), ctlNow.Add(90*24*time.Hour)), ca: true, want: "valid for 10.9.9.9"},
		{name: "expired on the board's clock", cert: ca.Issue(t, "127.0.0.1", time.Now().Add(-60*24*time.Hour), time.Now().Add(-24*time.Hour)), ca: true, want: "expired"},
	} {
		var args []string
		if r.ca {
			args = []string{"--ca", caFile}
		}
		if exit, out := enrolThrough(r.cert, args...); exit != exitFailure || !strings.Contains(out, r.want) {
			t.Errorf("%s: exit %d, %q; want %d, refused (%q)", r.name, exit, out, exitFailure, r.want)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s: a refused enrolment left %s: %v", r.name, path, err)
		}
	}

	// Issued an hour ago by the controller's clock, 30 days after the
	// board's: the same code, not used by the refusals, enrols the board.
	exit, out := enrolThrough(ca.Issue(t, "127.0.0.1", ctlNow.Add(-time.Hour), ctlNow.Add(90*24*time.Hour)), "--ca", caFile)
	if exit != 0 || !strings.Contains(out, "Enrolled as node tt-01") {
		t.Fatalf("enrol through a certificate of the pinned CA not valid yet on the board's clock: exit %d, %q", exit, out)
	}
	if !strings.Contains(out, "valid only from") {
		t.Errorf("taking a certificate not valid yet on the board's clock was not said: %q", out)
	}
	cred, err := protocol.ReadCredentials(path)
	if err != nil || cred.Node != "tt-01" || cred.ControllerCA != ca.PEM {
		t.Fatalf("written credentials %+v, %v; want node tt-01 pinning the --ca", cred, err)
	}
}

// TestEnrolJudgesTheCertificateOnTheStoredClockFloor: a board that had
// run (its store, with its clock floor, in --data) lost its credentials
// file and was enrolled again after a power cut, its clock behind (no RTC
// battery). Enrolment judged the controller's certificate on that raw
// clock, not on the floor the agent would have moved it up to, and handed
// the code to a certificate that had expired before the last time the
// controller proved (a retired one, its key perhaps leaked). Enrolment
// must judge on the board's clock moved up to the stored floor: that
// certificate is refused as expired without using the code, and one valid
// at the floor enrols the board, not reported as valid only from a time
// after the board's clock. The store is only read.
func TestEnrolJudgesTheCertificateOnTheStoredClockFloor(t *testing.T) {
	// The board's clock is the real one; the floor and the controller's
	// clock, 60 days ahead.
	floor := time.Now().Add(60 * 24 * time.Hour).Truncate(time.Second)
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	var created struct {
		Enrolment struct{ Code string }
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tt-01", "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)

	data := t.TempDir()
	db := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetClockFloor(floor); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	ca := nodetest.NewCA(t, "loaxa test CA", floor.Add(-365*24*time.Hour), floor.Add(10*365*24*time.Hour))
	caFile := filepath.Join(t.TempDir(), "controller-ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	backend, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.json")
	enrolThrough := func(cert tls.Certificate) (int, string) {
		return enrolBehindTLS(backend, cert, []string{"--enrol", created.Enrolment.Code, "--credentials", path, "--data", data, "--ca", caFile})
	}

	// Valid on the board's clock, expired 30 days before the floor.
	exit, out := enrolThrough(ca.Issue(t, "127.0.0.1", time.Now().Add(-30*24*time.Hour), floor.Add(-30*24*time.Hour)))
	if exit != exitFailure || !strings.Contains(out, "expired") {
		t.Errorf("a certificate expired before the stored floor: exit %d, %q; want %d, refused as expired", exit, out, exitFailure)
	}
	if !strings.Contains(out, "moved up to the last time the controller proved") || !strings.Contains(out, "renew the controller's certificate") {
		t.Errorf("the refusal %q does not say the clock was moved up to the floor and to renew the certificate", out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a refused enrolment left %s: %v", path, err)
	}

	// Issued an hour before the floor: the same code enrols the board.
	exit, out = enrolThrough(ca.Issue(t, "127.0.0.1", floor.Add(-time.Hour), floor.Add(90*24*time.Hour)))
	if exit != 0 || !strings.Contains(out, "Enrolled as node tt-01") {
		t.Fatalf("a certificate valid at the stored floor: exit %d, %q; want enrolled", exit, out)
	}
	if strings.Contains(out, "valid only from") {
		t.Errorf("a certificate valid at the stored floor was reported as valid only from a later time: %q", out)
	}
	if now, err := os.ReadFile(db); err != nil || !bytes.Equal(now, stored) {
		t.Errorf("the enrolment changed the store in --data (%v)", err)
	}
}

// TestEnrolRefusingAnExpiredCertificateSaysWhatToSet: a technician
// enrolling a board whose clock was ahead (an RTC set wrong) got only
// "x509: certificate has expired or is not yet valid", with nothing about
// the board's clock, though the fix is to set the board's date (or, if it
// is right, to renew the controller's certificate). The refusal must name
// the clock time the certificate was judged at and the certificate's
// validity, say to set the board's date or renew the certificate, and
// that the code was not used.
func TestEnrolRefusingAnExpiredCertificateSaysWhatToSet(t *testing.T) {
	var used atomic.Bool
	from := time.Now().Add(-90 * 24 * time.Hour).UTC().Truncate(time.Second)
	to := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	ca := nodetest.NewCA(t, "loaxa test CA", from.Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	caFile := filepath.Join(t.TempDir(), "controller-ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { used.Store(true) }))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1", from, to)}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	ts.StartTLS()
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "node.json")
	var stdout, stderr bytes.Buffer
	before := time.Now().Truncate(time.Second)
	exit := run(context.Background(), []string{"--enrol", "7KQ2M-XH9DP-03RTW-VN5CE", "--controller", ts.URL, "--credentials", path, "--ca", caFile,
		"--data", t.TempDir()}, env(nil), &stdout, &stderr)
	after := time.Now()
	out := stderr.String()
	if exit != exitFailure {
		t.Errorf("exit %d, want %d", exit, exitFailure)
	}
	for _, want := range []string{
		"valid from " + from.Format(time.RFC3339) + " to " + to.Format(time.RFC3339),
		"set the board's date", "renew the controller's certificate", "The code was not used",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr %q does not say %q", out, want)
		}
	}
	m := regexp.MustCompile(`this board's clock reads ([^\s,]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("stderr %q does not name the board's clock", out)
	}
	if clock, err := time.Parse(time.RFC3339, m[1]); err != nil || clock.Before(before) || clock.After(after) {
		t.Errorf("the board's clock named %q (%v), want the time of the enrolment, %v to %v", m[1], err, before, after)
	}
	if used.Load() {
		t.Error("the code reached the server")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a refused enrolment left %s: %v", path, err)
	}
}

// enrolBehindTLS runs the node with args and --controller the controller
// at backend as a board reaches it: over TLS, serving cert. It returns the
// exit status and what the node printed.
func enrolBehindTLS(backend *url.URL, cert tls.Certificate, args []string) (int, string) {
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(backend))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	front.StartTLS()
	defer front.Close()
	var stdout, stderr bytes.Buffer
	exit := run(context.Background(), append(args, "--controller", front.URL), env(nil), &stdout, &stderr)
	return exit, stdout.String() + stderr.String()
}

// TestEnrolWithALoopingStore: node --enrol read the clock floor from the
// store in --data in its own process with no limit, and a store whose page
// tree loops (as a garbled page can: TestRunWithALoopingStore) kept it
// going round for ever, its stack growing, so the board could not be
// enrolled while the agent's own start (which checks the store in a
// time-limited process of its own) would have set the store aside. The
// store is now checked the same way first: the enrolment says on stderr
// that the floor was not read and why, and enrols on the board's clock.
func TestEnrolWithALoopingStore(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	var created struct {
		Enrolment struct{ Code string }
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tt-01", "name": "Cụm loa chợ", "area": "31", "credentials": "code"}, &created)

	data := t.TempDir()
	db := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetClockFloor(time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// The loop is in the bucket that holds the floor: reading it descends
	// for ever.
	loopingStore(t, db, "meta")
	stored, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "node.json")
	type result struct {
		exit           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		exit := run(context.Background(), []string{"--enrol", created.Enrolment.Code, "--controller", c.URL, "--credentials", path, "--data", data}, env(nil), &stdout, &stderr)
		done <- result{exit, stdout.String(), stderr.String()}
	}()
	// Far beyond the check's own limit (storeCheckTimeout): only an
	// enrolment that never ends gets here.
	const deadline = 5 * time.Minute
	var r result
	select {
	case r = <-done:
	case <-time.After(deadline):
		t.Fatalf("node --enrol with a store whose page tree loops was still running after %v", deadline)
	}
	t.Logf("stderr: %s", r.stderr)
	if r.exit != 0 || !strings.Contains(r.stdout, "Enrolled as node tt-01") {
		t.Fatalf("enrol: exit %d, %q %q; want enrolled on the board's clock", r.exit, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "enrol: clock floor not read") || !strings.Contains(r.stderr, "a garbled page tree that loops") {
		t.Errorf("stderr %q does not say the clock floor was not read because the store loops", r.stderr)
	}
	if now, err := os.ReadFile(db); err != nil || !bytes.Equal(now, stored) {
		t.Errorf("the enrolment changed the store in --data (%v)", err)
	}
}

// TestEnrolFloorOfAHeldStore: with the agent still running (it holds the
// store), the check in a process of its own cannot open the store either;
// the enrolment still says to stop the agent, and judges on the board's
// clock.
func TestEnrolFloorOfAHeldStore(t *testing.T) {
	data := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(data, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetClockFloor(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	if floor := enrolFloor(context.Background(), data, slog.New(slog.NewTextHandler(&logged, nil))); !floor.IsZero() {
		t.Errorf("floor of a held store %v, want zero", floor)
	}
	if !strings.Contains(logged.String(), "an agent holds the store in --data (stop it first: systemctl stop loaxa-node)") {
		t.Errorf("log %q does not say to stop the agent", logged.String())
	}
}

// BenchmarkEnrolFloor: what node --enrol spends reading the clock floor
// of a board enrolled again, now that the store is checked in a process of
// its own first, on a store of 20,000 unsent plays (a board offline for
// weeks), against store.ReadClockFloor alone as before.
func BenchmarkEnrolFloor(b *testing.B) {
	data := b.TempDir()
	path := filepath.Join(data, "node.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 9, 14, 3, 20, 0, 0, time.UTC)
	for batch := range 100 {
		var events []protocol.Event
		var marks []agent.Progress
		for i := range 200 {
			occ := fmt.Sprintf("a1@%d", batch*200+i)
			events = append(events, protocol.Event{Type: protocol.EventCompleted, Occurrence: occ, At: at, Content: "c-0123456789abcdef"})
			marks = append(marks, agent.Progress{Occurrence: occ, Phase: agent.PhaseDone, Start: at})
		}
		if _, err := st.Append(events, marks); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.SetClockFloor(at); err != nil {
		b.Fatal(err)
	}
	st.Close()
	log := slog.New(slog.DiscardHandler)
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			if floor := enrolFloor(context.Background(), data, log); !floor.Equal(at) {
				b.Fatalf("floor %v, want %v", floor, at)
			}
		}
	})
	b.Run("read-only", func(b *testing.B) {
		for b.Loop() {
			if floor, err := store.ReadClockFloor(path); err != nil || !floor.Equal(at) {
				b.Fatalf("floor %v, %v; want %v", floor, err, at)
			}
		}
	})
}
