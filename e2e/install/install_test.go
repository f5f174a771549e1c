// Package install tests scripts/install-node.sh and the systemd units in
// scripts/systemd: the files land where the unit expects them with the
// right modes, the service user is in the audio group, systemd loads both
// units without a warning and rates their hardening as good, and the units
// agree with the programs they run.
package install

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nodeToInstall builds the node agent into a temporary directory and
// writes a credentials document beside it, as a technician has them before
// running scripts/install-node.sh.
func nodeToInstall(t *testing.T) (dir, bin, cred, credText string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "node")
	build := exec.Command("go", "build", "-o", bin, "loaxa.vn/node")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cred = filepath.Join(dir, "node.json")
	credText = `{"node":"tt-01","area":"12346"}`
	if err := os.WriteFile(cred, []byte(credText), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, bin, cred, credText
}

func TestInstallNode(t *testing.T) {
	dir, bin, cred, credText := nodeToInstall(t)
	root := filepath.Join(dir, "root")
	script := "../../scripts/install-node.sh"

	out, err := exec.Command(script, "--root", root, "--credentials", cred, "--binary", bin, "--audio", "none").CombinedOutput()
	if err != nil {
		t.Fatalf("install-node.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"would run: useradd --system --user-group --no-create-home --home-dir /var/lib/loaxa-node --shell /usr/sbin/nologin --groups audio loaxa-node",
		"would run: systemctl enable loaxa-node.service",
		"would run: systemctl restart loaxa-node.service",
		"Installed loaxa-node (loaxa node dev)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("install-node.sh said\n%s\nwant %q", out, want)
		}
	}
	for path, mode := range map[string]os.FileMode{
		"opt/loaxa-node/bin/loaxa-node":         0o755,
		"etc/loaxa/node.json":                   0o640,
		"etc/loaxa/node.env":                    0o644,
		"etc/systemd/system/loaxa-node.service": 0o644,
		"opt/loaxa-node/README":                 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/loaxa/node.json")); string(got) != credText {
		t.Errorf("installed credentials %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/loaxa/node.env")); !strings.Contains(string(got), "LOAXA_AUDIO=none") {
		t.Errorf("node.env:\n%s", got)
	}
	a, _ := os.ReadFile(bin)
	b, _ := os.ReadFile(filepath.Join(root, "opt/loaxa-node/bin/loaxa-node"))
	if !bytes.Equal(a, b) {
		t.Error("installed binary differs from the given one")
	}

	// The unit runs what was installed, where it was installed.
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/loaxa-node.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/opt/loaxa-node/bin/loaxa-node --credentials /etc/loaxa/node.json --data /var/lib/loaxa-node\n",
		"EnvironmentFile=-/etc/loaxa/node.env\n", "User=loaxa-node\n", "SupplementaryGroups=audio\n",
		"Type=notify\n", "WatchdogSec=", "Restart=always\n", "StateDirectory=loaxa-node\n",
		"ProtectSystem=strict\n", "ReadWritePaths=/opt/loaxa-node\n", "DeviceAllow=char-alsa rw\n",
		"StandardOutput=journal\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// The unit's documentation is a file the install put there: it named
	// /opt/loaxa-node/README, which nothing installed, so a technician
	// following `systemctl status`'s "Docs:" line found nothing. The README
	// says where things are, how to check the service and read its logs, and
	// how to roll back by hand.
	for line := range strings.Lines(string(unit)) {
		doc, ok := strings.CutPrefix(strings.TrimSpace(line), "Documentation=file://")
		if !ok {
			continue
		}
		readme, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Errorf("the unit's Documentation=file://%s is not installed: %v", doc, err)
			continue
		}
		for _, want := range []string{"/opt/loaxa-node/bin/loaxa-node", "/etc/loaxa/node.json", "systemctl status loaxa-node", "journalctl -u loaxa-node", "loaxa-node.previous", "docs/deploy.md"} {
			if !strings.Contains(string(readme), want) {
				t.Errorf("%s does not mention %q", doc, want)
			}
		}
	}

	// Bad input: a clear refusal.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", root, "--binary", bin}, "give --credentials FILE"},
		{[]string{"--root", root, "--binary", bin, "--credentials", filepath.Join(dir, "none.json")}, "cannot read the credentials file"},
		{[]string{"--root", root, "--binary", bin, "--credentials", cred, "--audio", "alsa"}, "--audio alsa: want oto"},
		{[]string{"--root", root, "--credentials", cred}, "no node binary beside this script"},
	} {
		out, err := exec.Command(script, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("install-node.sh %v: %v, %q; want a failure saying %q", tc.args, err, out, tc.want)
		}
	}
}

// Running the script again with the installed document, as the board's
// README says to roll back by hand ("run its install-node.sh with
// --credentials /etc/loaxa/node.json") and as an upgrade in place reads,
// installs the new binary and keeps the document: install(1) refused to
// copy the file onto itself ("are the same file") after the binary had
// been replaced, so the script stopped with the unit not written and the
// service not restarted.
func TestReinstallWithTheInstalledCredentials(t *testing.T) {
	dir, bin, cred, credText := nodeToInstall(t)
	root := filepath.Join(dir, "root")
	script := "../../scripts/install-node.sh"
	if out, err := exec.Command(script, "--root", root, "--credentials", cred, "--binary", bin).CombinedOutput(); err != nil {
		t.Fatalf("first install: %v\n%s", err, out)
	}

	// The release to go back to: another binary, here the same program
	// with a byte appended (the script only copies it).
	previous := filepath.Join(dir, "previous-node")
	a, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(previous, append(a, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(root, "etc/loaxa/node.json")
	out, err := exec.Command(script, "--root", root, "--credentials", installed, "--binary", previous).CombinedOutput()
	if err != nil {
		t.Fatalf("install-node.sh --credentials %s (the installed document): %v\n%s", installed, err, out)
	}
	if !strings.Contains(string(out), "would run: systemctl restart loaxa-node.service") {
		t.Errorf("install-node.sh said\n%s\nwant the service restarted", out)
	}
	b, _ := os.ReadFile(filepath.Join(root, "opt/loaxa-node/bin/loaxa-node"))
	if !bytes.Equal(b, append(a, 0)) {
		t.Error("the binary given to the second install is not the one installed")
	}
	got, err := os.ReadFile(installed)
	if err != nil || string(got) != credText {
		t.Errorf("installed credentials after the second install: %q, %v; want %q", got, err, credText)
	}
	if fi, err := os.Stat(installed); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("installed credentials have mode %v, want 0640", fi.Mode().Perm())
	}
}

// systemd's own review of the units' sandboxing: exposure at most 2.5 of
// 10 ("OK").
func TestUnitsHardening(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd)")
	}
	for _, unit := range []string{"loaxa-node.service", "loaxa-controller.service"} {
		out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=25", filepath.Join("../../scripts/systemd", unit)).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", unit, err, out)
		}
	}
}

// TestReinstallWithAnotherAudio: a board installed with the sound card
// (the default) and found to have none is installed again with
// --audio none, as docs/deploy.md says for such a board. node.env is kept
// on a re-install, and so was its LOAXA_AUDIO=oto: the script said
// nothing and the agent went on looking for a sound card. The --audio
// given now replaces that line; the file's other settings are kept, and
// a re-install without --audio changes nothing.
func TestReinstallWithAnotherAudio(t *testing.T) {
	dir, bin, cred, _ := nodeToInstall(t)
	root := filepath.Join(dir, "root")
	script := "../../scripts/install-node.sh"
	env := filepath.Join(root, "etc/loaxa/node.env")
	install := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(script, append([]string{"--root", root, "--credentials", cred, "--binary", bin}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("install-node.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	audio := func() []string {
		t.Helper()
		raw, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for line := range strings.Lines(string(raw)) {
			if strings.HasPrefix(line, "LOAXA_AUDIO=") {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		return lines
	}

	install()
	if got := audio(); !slices.Equal(got, []string{"LOAXA_AUDIO=oto"}) {
		t.Fatalf("first install wrote %q", got)
	}
	// A setting of the technician's own, kept through every re-install.
	f, err := os.OpenFile(env, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("LOAXA_CACHE_SIZE=1024\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out := install("--audio", "none")
	if got := audio(); !slices.Equal(got, []string{"LOAXA_AUDIO=none"}) {
		t.Errorf("re-install with --audio none left %q in node.env", got)
	}
	if !strings.Contains(out, "Set LOAXA_AUDIO=none in /etc/loaxa/node.env") {
		t.Errorf("install-node.sh said\n%s\nwant it to say it set LOAXA_AUDIO=none", out)
	}
	install()
	if got := audio(); !slices.Equal(got, []string{"LOAXA_AUDIO=none"}) {
		t.Errorf("re-install without --audio left %q in node.env, want it unchanged", got)
	}
	// A node.env of the technician's own without the line gains it.
	if err := os.WriteFile(env, []byte("LOAXA_CACHE_SIZE=1024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install("--audio", "oto")
	if got := audio(); !slices.Equal(got, []string{"LOAXA_AUDIO=oto"}) {
		t.Errorf("re-install with --audio oto into a node.env without the line left %q", got)
	}
	if raw, _ := os.ReadFile(env); !strings.Contains(string(raw), "LOAXA_CACHE_SIZE=1024\n") {
		t.Errorf("node.env lost the technician's setting:\n%s", raw)
	}
}
