package main

import (
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/bolt"
)

// TestExportMosquittoSaysHowToInstall: "controller export-mosquitto-acl"
// told a technician only to "reload Mosquitto", but on a first install
// loaxa.conf must go into /etc/mosquitto/conf.d and Mosquitto be
// restarted (a reload does not open the listener the snippet configures),
// as docs/deploy.md says. The message must name both cases.
func TestExportMosquittoSaysHowToInstall(t *testing.T) {
	said := exportFromAnEmptyStore(t, "tcp://loaxa-controller:mat-khau@broker:1883")
	for _, want := range []string{"/etc/mosquitto/conf.d", "systemctl restart mosquitto", "systemctl reload mosquitto", "docs/deploy.md"} {
		if !strings.Contains(said, want) {
			t.Errorf("export-mosquitto-acl said\n%s\nwant it to name %q", said, want)
		}
	}
	first, later, ok := strings.Cut(said, "Later")
	if !ok || !strings.Contains(first, "restart") || strings.Contains(later, "restart") {
		t.Errorf("export-mosquitto-acl said\n%s\nwant the first install to restart Mosquitto and later exports to reload it", said)
	}
}

// TestExportMosquittoSaysToReloadAfterRenewal: a province serving TLS
// from Mosquitto with the controller's certificate renewed it, and
// Mosquitto (2.0.11) kept serving the old one, which it reads only at
// start and on a reload: when that expired, no board could connect and no
// alert reached a speaker. The export must say to reload Mosquitto after
// every renewal, with both files readable by user mosquitto: a reload
// that cannot read the new key serves no certificate at all
// (internal/mosquittotest TestUnreadableKeyOnReload).
func TestExportMosquittoSaysToReloadAfterRenewal(t *testing.T) {
	said := exportFromAnEmptyStore(t, "ssl://loaxa-controller:mat-khau@loa.example.vn:8883")
	for line := range strings.Lines(said) {
		if strings.Contains(line, "renewal") && strings.Contains(line, "systemctl reload mosquitto") &&
			strings.Contains(line, "readable by user mosquitto") && strings.Contains(line, "serves no certificate at all") {
			return
		}
	}
	t.Errorf("export-mosquitto-acl said\n%s\nwant a line saying to reload Mosquitto (systemctl reload mosquitto) after each renewal of the certificate, with both files readable by user mosquitto", said)
}

// exportFromAnEmptyStore runs export-mosquitto-acl with --broker broker
// on a new store and returns what it printed.
func exportFromAnEmptyStore(t *testing.T, broker string) string {
	t.Helper()
	data := t.TempDir()
	db := bolt.NewDB(filepath.Join(data, "loaxa.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	args := []string{"--data", data, "--broker", broker, "--out", t.TempDir()}
	if code := exportMosquitto(args, &stdout, &stderr); code != 0 {
		t.Fatalf("export-mosquitto-acl: exit %d, %s", code, stderr.String())
	}
	return stdout.String()
}
