package app

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/protocol"
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

// TestBackupFollowsNoRedirectAwayFromTheController: "controller backup
// --url" followed a redirect to any server: Go's client keeps the
// Authorization header when only the port differs (and on a subdomain,
// and from https to http), and a 307 or 308 of the sign-in sends the
// password again in its body to wherever it leads. Another server on the
// controller's host got the whole-tree admin's token, or password. Now
// redirects stay on the controller's scheme, host and port; the other
// server is not asked, and the error says where the redirect led and
// what to give --url.
func TestBackupFollowsNoRedirectAwayFromTheController(t *testing.T) {
	type seen struct{ auth, body string }
	asked := make(chan seen, 10)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		asked <- seen{r.Header.Get("Authorization"), string(b)}
		http.Error(w, "not the controller", http.StatusTeapot)
	}))
	defer other.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()

	for name, c := range map[string]*BackupClient{
		"token":    {URL: front.URL, Token: "admin-token"},
		"password": {URL: front.URL, Username: "admin", Password: "admin-password"},
	} {
		file := filepath.Join(t.TempDir(), "loaxa.tar.gz")
		_, err := c.Fetch(context.Background(), file)
		if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), other.URL) || !strings.Contains(err.Error(), "--url") {
			t.Errorf("%s: backup through a redirect to another server: %v; want ErrRedirectAway naming %s and saying what to give --url", name, err, other.URL)
		}
		select {
		case s := <-asked:
			t.Errorf("%s: the other server was asked, with Authorization %q and body %q", name, s.auth, s.body)
		default:
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("%s: a failed backup left %s: %v", name, file, err)
		}
	}
}
