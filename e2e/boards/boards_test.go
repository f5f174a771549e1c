// Package boards tests the release build for the boards in the field:
// scripts/build-boards.sh cross-compiles the node agent with cgo and ALSA,
// and the arm64 binary, run under qemu-user, prints its version and refuses
// a bad credentials document with a clear error.
//
// Cross-compiling takes a while on a cold build cache, so scripts/test.sh
// runs this package in a step of its own. LOAXA_BOARD_TARGETS (space
// separated, default node-linux-arm64) chooses what to build.
package boards

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const version = "1.2.3-test"

// machines maps an archive's architecture to its ELF machine and the
// qemu-user emulator that runs it.
var machines = map[string]struct {
	machine elf.Machine
	qemu    string
	sysroot string // the cross libc, for qemu -L when the multi-arch loader is missing
	loader  string
}{
	"arm64": {elf.EM_AARCH64, "qemu-aarch64-static", "/usr/aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1"},
	"arm":   {elf.EM_ARM, "qemu-arm-static", "/usr/arm-linux-gnueabihf", "/lib/ld-linux-armhf.so.3"},
}

func TestBuildBoards(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("build-boards.sh runs on a Debian linux/amd64 machine; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	targets := strings.Fields(os.Getenv("LOAXA_BOARD_TARGETS"))
	if len(targets) == 0 {
		targets = []string{"node-linux-arm64"}
	}
	out := t.TempDir()
	script, err := filepath.Abs("../../scripts/build-boards.sh")
	if err != nil {
		t.Fatal(err)
	}
	// --out as a technician types it, relative to where they are: it
	// once landed under the repository, where the script works from.
	cmd := exec.Command(script, append([]string{"--out", filepath.Base(out), "--version", version}, targets...)...)
	cmd.Dir = filepath.Dir(out)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Run(); err != nil {
		t.Fatalf("build-boards.sh: %v", err)
	}

	sums := readSums(t, filepath.Join(out, "SHA256SUMS"))
	if len(sums) != len(targets) {
		t.Fatalf("SHA256SUMS lists %d archives, want %d: %v", len(sums), len(targets), sums)
	}
	for _, target := range targets {
		program, arch, _ := strings.Cut(target, "-linux-")
		name := fmt.Sprintf("loaxa-%s-%s-linux-%s", program, version, arch)
		t.Run(target, func(t *testing.T) {
			archive := filepath.Join(out, name+".tar.gz")
			raw, err := os.ReadFile(archive)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(raw)
			if got := sums[name+".tar.gz"]; got != hex.EncodeToString(sum[:]) {
				t.Fatalf("SHA256SUMS says %q for %s, the file's sum is %x", got, name, sum)
			}
			bin := filepath.Join(t.TempDir(), program)
			extract(t, raw, name+"/"+program, bin)
			if program == "node" {
				// What a technician needs on the board comes with it.
				extract(t, raw, name+"/install-node.sh", filepath.Join(t.TempDir(), "install-node.sh"))
				extract(t, raw, name+"/loaxa-node.service", filepath.Join(t.TempDir(), "loaxa-node.service"))
				extract(t, raw, name+"/README", filepath.Join(t.TempDir(), "README"))
			} else {
				// docs/deploy.md installs the unit from the archive, and
				// the README its Documentation= names.
				extract(t, raw, name+"/loaxa-controller.service", filepath.Join(t.TempDir(), "loaxa-controller.service"))
				extract(t, raw, name+"/README", filepath.Join(t.TempDir(), "README"))
			}

			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			m := f.Machine
			f.Close()
			want := elf.EM_X86_64
			if arch != "amd64" {
				want = machines[arch].machine
			}
			if m != want {
				t.Fatalf("%s is built for %v, want %v", program, m, want)
			}

			run := func(args ...string) (string, int) {
				t.Helper()
				var c *exec.Cmd
				if arch == "amd64" {
					c = exec.Command(bin, args...)
				} else {
					emu := machines[arch]
					qemu, err := exec.LookPath(emu.qemu)
					if err != nil {
						t.Skipf("%s not found: install Debian's qemu-user-static to run %s binaries (scripts/test.sh does)", emu.qemu, arch)
					}
					pre := []string{}
					if _, err := os.Stat(emu.loader); err != nil {
						pre = []string{"-L", emu.sysroot}
					}
					c = exec.Command(qemu, append(append(pre, bin), args...)...)
				}
				outb, err := c.CombinedOutput()
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatalf("run %s: %v", program, err)
				}
				return string(outb), c.ProcessState.ExitCode()
			}

			got, code := run("--version")
			if code != 0 || strings.TrimSpace(got) != "loaxa "+program+" "+version {
				t.Fatalf("%s --version: exit %d, %q; want 0 and %q", program, code, got, "loaxa "+program+" "+version)
			}
			if program != "node" {
				return
			}
			bad := filepath.Join(t.TempDir(), "node.json")
			if err := os.WriteFile(bad, []byte(`{"node":"pole 7","area":"12346"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			got, code = run("--credentials", bad, "--audio", "none", "--data", t.TempDir())
			for _, want := range []string{"credentials " + bad, `node: id "pole 7"`, "secret: required"} {
				if code != 2 || !strings.Contains(got, want) {
					t.Fatalf("node with a bad credentials file: exit %d, %q; want exit 2 and %q", code, got, want)
				}
			}
			got, code = run("--credentials", filepath.Join(t.TempDir(), "missing.json"), "--audio", "none")
			if code != 2 || !strings.Contains(got, "no such file") {
				t.Fatalf("node with a missing credentials file: exit %d, %q", code, got)
			}
		})
	}
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q: want \"<sum>  <file>\"", sc.Text())
		}
		sums[name] = sum
	}
	return sums
}

// extract writes the archive member named member to dst.
func extract(t *testing.T, archive []byte, member, dst string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("archive has no %s, only %v", member, names)
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name != member {
			continue
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
}

// testWriter sends the script's output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
