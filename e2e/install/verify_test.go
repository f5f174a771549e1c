package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"loaxa.vn/controller/app"
)

// unitSettings reads a unit file's Key=Value lines, each key's values in
// order, by "Section.Key".
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not Key=Value", path, line)
			}
			settings[section+"."+k] = append(settings[section+"."+k], v)
		}
	}
	return settings
}

// TestUnitsVerify: the units in scripts/systemd had never been loaded by
// systemd itself, only rated for their sandboxing (TestUnitsHardening),
// which reads no more than it needs: a misspelt key, a value systemd
// ignores or a command it cannot run would have been met first by a
// technician on a board. systemd-analyze verify loads each unit as
// installed (--root: a directory holding systemd's own units, the unit at
// /etc/systemd/system and the real binaries at the unit's ExecStart paths;
// no systemd needs to run as PID 1) and must say nothing at all: it prints
// warnings such as "Unknown key" but still exits 0 for them.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd; scripts/test.sh installs it)")
	}
	system := "/usr/lib/systemd/system" // sysinit.target, multi-user.target, …
	if _, err := os.Stat(filepath.Join(system, "multi-user.target")); err != nil {
		t.Skipf("systemd's own units are not in %s: %v", system, err)
	}
	root := t.TempDir()
	copyDir(t, system, filepath.Join(root, system))
	for _, tc := range []struct{ unit, pkg string }{
		{"loaxa-controller.service", "loaxa.vn/controller"},
		{"loaxa-node.service", "loaxa.vn/node"},
	} {
		src := filepath.Join("../../scripts/systemd", tc.unit)
		unit := unitSettings(t, src)
		exe := strings.Fields(unit["Service.ExecStart"][0])[0]
		build := exec.Command("go", "build", "-o", filepath.Join(root, exe), tc.pkg)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", tc.pkg, err, out)
		}
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		installed := filepath.Join(root, "etc/systemd/system", tc.unit)
		if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(installed, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--root="+root, tc.unit).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", tc.unit, err, out)
		}
	}
}

// copyDir copies the regular files and symbolic links of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, raw, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnitsAgreeWithThePrograms: the units run the programs with flags the
// programs take (the node's: node TestUnitAgreesWithTheAgent), keep the
// store where systemd makes the state directory, wait for the readiness
// both programs send from their main process, and never stop restarting.
func TestUnitsAgreeWithThePrograms(t *testing.T) {
	for _, tc := range []struct {
		unit, state string
		parse       func(args []string) error
	}{
		{"loaxa-controller.service", "loaxa-controller", func(args []string) error {
			cfg := app.DefaultConfig()
			return cfg.Parse(args, func(string) string { return "" })
		}},
		{"loaxa-node.service", "loaxa-node", nil},
	} {
		unit := unitSettings(t, filepath.Join("../../scripts/systemd", tc.unit))
		for key, want := range map[string]string{
			// Both programs say READY=1 from their main process
			// (controller/main.go, node/main.go runSupervised).
			"Service.Type":               "notify",
			"Service.NotifyAccess":       "main",
			"Service.StateDirectory":     tc.state,
			"Service.Restart":            "always",
			"Unit.StartLimitIntervalSec": "0",
		} {
			if got := unit[key]; !slices.Equal(got, []string{want}) {
				t.Errorf("%s: %s=%q, want %q", tc.unit, key, got, want)
			}
		}
		start := unit["Service.ExecStart"]
		if len(start) != 1 {
			t.Fatalf("%s: ExecStart=%q, want one command", tc.unit, start)
		}
		args := strings.Fields(start[0])[1:]
		if i := slices.Index(args, "--data"); i < 0 || i+1 >= len(args) || args[i+1] != "/var/lib/"+tc.state {
			t.Errorf("%s: ExecStart=%s: want --data /var/lib/%s, the unit's StateDirectory=", tc.unit, start[0], tc.state)
		}
		if tc.parse != nil {
			if err := tc.parse(args); err != nil {
				t.Errorf("%s: the controller refuses ExecStart's arguments %q: %v", tc.unit, args, err)
			}
		}
	}
}

// TestControllerStepsAgreeWithTheUnit: docs/deploy.md's steps for the
// controller ("The controller") install what loaxa-controller.service
// runs, where it looks for it: the binary at ExecStart's path, the user
// and group it runs as (whose home is the StateDirectory=), the settings
// file of EnvironmentFile= (root's, 0600: it holds LOAXA_ADMIN_PASSWORD),
// and the unit under its own name. A path changed in one and not the other
// is met by an admin as a service that does not start.
func TestControllerStepsAgreeWithTheUnit(t *testing.T) {
	raw, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n### The controller\n")
	if !ok {
		t.Fatal(`docs/deploy.md has no "### The controller"`)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal(`docs/deploy.md's "The controller" has no sh block`)
	}
	var steps [][]string
	for line := range strings.Lines(block) {
		line, _, _ = strings.Cut(line, "#")
		for cmd := range strings.SplitSeq(line, "&&") {
			if f := strings.Fields(cmd); len(f) > 0 {
				steps = append(steps, f)
			}
		}
	}
	// step returns the first step that starts with prefix.
	step := func(prefix ...string) []string {
		t.Helper()
		for _, s := range steps {
			if len(s) >= len(prefix) && slices.Equal(s[:len(prefix)], prefix) {
				return s
			}
		}
		t.Fatalf("docs/deploy.md's controller steps have no %q in\n%s", strings.Join(prefix, " "), block)
		return nil
	}

	unit := unitSettings(t, "../../scripts/systemd/loaxa-controller.service")
	one := func(key string) string {
		t.Helper()
		if len(unit[key]) != 1 {
			t.Fatalf("loaxa-controller.service: %s=%q, want one", key, unit[key])
		}
		return unit[key][0]
	}
	exe := strings.Fields(one("Service.ExecStart"))[0]
	if got := step("install", "-m", "0755", "controller"); got[len(got)-1] != exe {
		t.Errorf("docs install the controller as %s; the unit runs %s", got[len(got)-1], exe)
	}
	useradd := step("useradd")
	user := useradd[len(useradd)-1]
	if one("Service.User") != user || one("Service.Group") != user || !slices.Contains(useradd, "--user-group") {
		t.Errorf("docs make user and group %s (%q); the unit runs as User=%s Group=%s", user, useradd, one("Service.User"), one("Service.Group"))
	}
	if i := slices.Index(useradd, "--home-dir"); i < 0 || useradd[i+1] != "/var/lib/"+one("Service.StateDirectory") {
		t.Errorf("docs give %s the home %q; the unit's StateDirectory= is /var/lib/%s", user, useradd, one("Service.StateDirectory"))
	}
	env := strings.TrimPrefix(one("Service.EnvironmentFile"), "-")
	if got := step("install", "-m", "0600", "/dev/null"); got[len(got)-1] != env {
		t.Errorf("docs make the settings file %s; the unit reads EnvironmentFile=%s", got[len(got)-1], one("Service.EnvironmentFile"))
	}
	if got := step("install", "-d", "-m", "0755"); got[len(got)-1] != filepath.Dir(env) {
		t.Errorf("docs make the directory %s; the settings file is %s", got[len(got)-1], env)
	}
	if got := step("install", "-m", "0644"); got[len(got)-2] != "loaxa-controller.service" || got[len(got)-1] != "/etc/systemd/system/" {
		t.Errorf("docs install the unit with %q", got)
	}
	if got := step("systemctl", "daemon-reload"); len(got) != 2 {
		t.Errorf("docs reload systemd with %q", got)
	}
	if got := step("systemctl", "enable", "--now"); got[len(got)-1] != "loaxa-controller" {
		t.Errorf("docs start %q", got)
	}

	// The unit's Documentation= is the README of the release archive, which
	// the steps install where it points: the unit had none, so `systemctl
	// status loaxa-controller` showed no "Docs:" line and nothing on the
	// server said where its files, logs and backups are (the node's unit
	// names its README: TestInstallNode).
	doc, ok := strings.CutPrefix(one("Unit.Documentation"), "file://")
	if !ok {
		t.Fatalf("loaxa-controller.service: Documentation=%s, want file:// the README the steps install", one("Unit.Documentation"))
	}
	if got := step("install", "-D", "-m", "0644", "README"); got[len(got)-1] != doc {
		t.Errorf("docs install the README as %s; the unit's Documentation= is file://%s", got[len(got)-1], doc)
	}
	readme, err := os.ReadFile("../../scripts/loaxa-controller-README")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{exe, env, "/var/lib/" + one("Service.StateDirectory"), doc,
		"systemctl status loaxa-controller", "journalctl -u loaxa-controller", "Created user",
		"loaxa-controller backup", "loaxa-controller restore", "espeak-ng", "docs/deploy.md"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("scripts/loaxa-controller-README does not mention %q", want)
		}
	}
}

// TestScriptsHelpPrintsTheirHeader: the scripts an admin or a technician
// runs print their header comment for --help, cut at a fixed line number
// (sed -n '2,N'). build-boards.sh's had grown past it, and its --help
// stopped mid-sentence at "DIR/SHA256SUMS", before saying how to check
// the sums.
func TestScriptsHelpPrintsTheirHeader(t *testing.T) {
	for _, name := range []string{"build-boards.sh", "install-node.sh", "test-systemd.sh"} {
		script := filepath.Join("../../scripts", name)
		raw, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		// The header: the comment lines after the #! line, up to the first
		// line that is not a comment.
		var want []string
		for i, line := range strings.Split(string(raw), "\n") {
			if i == 0 {
				continue
			}
			rest, ok := strings.CutPrefix(line, "#")
			if !ok {
				break
			}
			want = append(want, strings.TrimPrefix(rest, " "))
		}
		out, err := exec.Command(script, "--help").Output()
		if err != nil {
			t.Errorf("%s --help: %v", name, err)
			continue
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != strings.Join(want, "\n") {
			t.Errorf("%s --help printed\n%s\nwant its whole header\n%s", name, got, strings.Join(want, "\n"))
		}
	}
}
