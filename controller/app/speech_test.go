package app

import (
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"loaxa.vn/internal/syncbuf"
)

// TestStartSaysTextToSpeechIsMissing: a controller set up by
// docs/deploy.md's steps on a fresh Debian had no espeak-ng (nothing said
// to install it) and started saying nothing of it; the first to find out
// was an officer whose typed emergency alert was refused with 503. The
// start now warns, naming the package; with espeak-ng it says nothing.
func TestStartSaysTextToSpeechIsMissing(t *testing.T) {
	start := func(t *testing.T) string {
		t.Helper()
		var logs syncbuf.Buffer
		a := New(testConfig(t), slog.New(slog.NewTextHandler(&logs, nil)))
		if err := a.Open(); err != nil {
			t.Fatal(err)
		}
		a.Close()
		return logs.String()
	}
	t.Run("missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir()) // a server without espeak-ng
		logs := start(t)
		for _, want := range []string{"level=WARN", "text-to-speech: espeak-ng is not installed, or not visible to the controller", "typed emergency alerts", "apt-get install espeak-ng"} {
			if !strings.Contains(logs, want) {
				t.Errorf("start log lacks %q:\n%s", want, logs)
			}
		}
	})
	t.Run("installed", func(t *testing.T) {
		if _, err := exec.LookPath("espeak-ng"); err != nil {
			t.Skip("espeak-ng is not installed here (scripts/test.sh installs it)")
		}
		if logs := start(t); strings.Contains(logs, "text-to-speech") {
			t.Errorf("start with espeak-ng installed said:\n%s", logs)
		}
	})
}
