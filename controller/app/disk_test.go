package app

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

// TestDiskCheck: GET /health's disk check reports the free space on the
// store's volume, and fails, saying what is at stake, when it is under
// StoreMinFree.
func TestDiskCheck(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("free space is not measured on this system")
	}
	a := New(testConfig(t), slog.New(slog.DiscardHandler))
	disk := func() (string, error) {
		t.Helper()
		for _, c := range a.healthChecks() {
			if c.Name == "disk" {
				return c.Check(t.Context())
			}
		}
		t.Fatal("no disk check")
		return "", nil
	}
	a.Config.StoreMinFree = 0
	if detail, err := disk(); err != nil || !strings.HasSuffix(detail, "MiB free on the store's volume") {
		t.Errorf("with room: %q, %v", detail, err)
	}
	a.Config.StoreMinFree = 1 << 62
	if _, err := disk(); err == nil || !strings.Contains(err.Error(), "the controller can neither store reports nor send alerts") {
		t.Errorf("with too little room: %v", err)
	}
}
