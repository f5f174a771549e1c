package app

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
)

// TestBackupIntoAMissingDirectorySaysWhich: the documented
// "controller backup /var/backups/loaxa/loaxa-DATE.tar.gz" on a machine
// without /var/backups/loaxa failed with "open
// /var/backups/loaxa/.loaxa-DATE.tar.gz.4219284726: no such file or
// directory", naming a file the operator never gave. The error must name
// the backup file and its missing directory, and leave nothing behind.
func TestBackupIntoAMissingDirectorySaysWhich(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	db := bolt.NewDB(filepath.Join(cfg.DataDir, "loaxa.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backups", "loaxa")
	file := filepath.Join(dir, "loaxa-2026-12-01.tar.gz")
	_, err := BackupOffline(context.Background(), cfg, file)
	if err == nil {
		t.Fatal("backup into a missing directory succeeded")
	}
	msg := err.Error()
	for _, want := range []string{file, "directory " + dir + " does not exist"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "/.loaxa-") {
		t.Errorf("error %q names the temporary file, not the backup", msg)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the backup made or left %s: %v", dir, err)
	}

	// Given the directory, the same command writes the backup.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := BackupOffline(context.Background(), cfg, file); err != nil {
		t.Fatal(err)
	}
}

// TestBackupOfAControllerOnAnUntrustedCertificateSaysToGiveTheCA: "controller
// backup --url https://…" without --ca, at a controller whose certificate
// comes from the province's own CA, said only "x509: certificate signed by
// unknown authority". It must say to give the controller's certificate
// with --ca.
func TestBackupOfAControllerOnAnUntrustedCertificateSaysToGiveTheCA(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	file := filepath.Join(t.TempDir(), "loaxa.tar.gz")
	_, err := (&BackupClient{URL: ts.URL, Token: "token"}).Fetch(context.Background(), file)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), "--ca") {
		t.Errorf("backup of a controller on an untrusted certificate: %v; want it to say to give --ca", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a failed backup left %s: %v", file, err)
	}
}
