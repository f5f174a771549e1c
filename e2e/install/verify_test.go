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
