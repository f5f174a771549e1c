package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"loaxa.vn/e2e/rig"
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
