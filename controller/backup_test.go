package main

import (
	"strings"
	"testing"
)

// TestBackupAndRestoreHelp: "controller backup --help" and "controller
// restore --help", as a technician checks the flags docs/deploy.md names,
// answered "give the backup FILE" (as if the help had been a mistake)
// and exited 2. They print the usage and the flags, and exit 0.
func TestBackupAndRestoreHelp(t *testing.T) {
	for name, run := range map[string]func(args []string, stdout, stderr *strings.Builder) int{
		"backup": func(args []string, stdout, stderr *strings.Builder) int { return runBackup(args, stdout, stderr) },
		"restore": func(args []string, stdout, stderr *strings.Builder) int {
			return runRestore(args, stdout, stderr)
		},
	} {
		for _, help := range []string{"--help", "-h"} {
			var stdout, stderr strings.Builder
			code := run([]string{help}, &stdout, &stderr)
			if code != 0 || strings.Contains(stderr.String(), "give the backup FILE") ||
				!strings.Contains(stderr.String(), "usage: controller "+name) || !strings.Contains(stderr.String(), "-data") {
				t.Errorf("controller %s %s: exit %d, stderr %q; want 0, the usage and the flags", name, help, code, stderr.String())
			}
		}
	}
}
