package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
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
