package update

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/protocol"
)

func releaseOf(version string) protocol.Update {
	sha := strings.Repeat(version[:1], 64)
	return protocol.Update{Version: version, Archives: []protocol.UpdateArchive{{Arch: "arm64", SHA256: sha, Size: 15 << 20, Path: "/api/v1/releases/archives/" + sha}}}
}

// TestStaleUpdateRequestIsDropped: a node retried an update request the
// controller had since replaced by a newer release or stopped asking for
// (a halted rollout), and installed an outdated agent. The request asked
// last wins, a request not renewed within its command's lifetime after it
// expired is withdrawn, and one taken is not taken again unless asked
// again.
func TestStaleUpdateRequestIsDropped(t *testing.T) {
	now := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)
	board := now.Add(-time.Hour) // the board's clock need not agree with the controller's
	r := NewRequests(func() time.Time { return board })
	ask := func(u protocol.Update) {
		r.Ask(u, now, now.Add(5*time.Minute), now) // a rollout's command: 5 minutes
	}
	if _, ok := r.Take(); ok {
		t.Fatal("a request taken before any was asked")
	}

	ask(releaseOf("2.0.0"))
	ask(releaseOf("3.0.0"))
	<-r.Wake()
	got, ok := r.Take()
	if !ok || got.Version != "3.0.0" {
		t.Fatalf("took %q (%v), want the newer 3.0.0", got.Version, ok)
	}
	if r.Wanted(releaseOf("2.0.0")) || !r.Wanted(got) {
		t.Error("2.0.0 still wanted, or 3.0.0 not, after 3.0.0 replaced it")
	}
	if _, ok := r.Take(); ok {
		t.Error("3.0.0 taken twice without being asked again")
	}

	// Renewed every 5 minutes while the rollout wants it.
	for range 4 {
		board, now = board.Add(5*time.Minute), now.Add(5*time.Minute)
		ask(releaseOf("3.0.0"))
	}
	board = board.Add(9 * time.Minute)
	if !r.Wanted(got) {
		t.Error("3.0.0 lapsed within its command's lifetime after it expired")
	}
	// The rollout halted: no renewal.
	board = board.Add(2 * time.Minute)
	if r.Wanted(got) {
		t.Error("3.0.0 still wanted 11 minutes after its last 5-minute command")
	}
	if _, ok := r.Take(); ok {
		t.Error("a withdrawn request taken")
	}

	// The previous release asked again (a rollback) replaces the newer.
	ask(releaseOf("3.0.0"))
	ask(releaseOf("2.0.0"))
	if got, ok := r.Take(); !ok || got.Version != "2.0.0" {
		t.Errorf("took %q (%v) after a rollback to 2.0.0", got.Version, ok)
	}

	// A failed try is not tried again on a renewal that came meanwhile.
	ask(releaseOf("2.0.0"))
	r.Settle(releaseOf("2.0.0"))
	if _, ok := r.Take(); ok {
		t.Error("a failed request taken again without a new ask")
	}
}

// TestAbandonedReleaseDownloadIsRemoved: a board whose download of a
// release was cut kept the ~15 MB it had (<dst>.<sha256>.part) after the
// rollout that asked for it was halted, until the next release's
// download, on a small SD card. Once no request is renewed in time, or
// none comes within StartGrace of a start, the partial download goes;
// while the controller still asks, it stays for the download to resume.
func TestAbandonedReleaseDownloadIsRemoved(t *testing.T) {
	raw := archive(t, map[string][]byte{"loaxa-node-2.0.0-linux-arm64/node": bytes.Repeat([]byte("new agent "), 10000)})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The link drops halfway.
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.Write(raw[:len(raw)/2])
	}))
	defer ts.Close()
	dst := filepath.Join(t.TempDir(), ".loaxa-node.new")
	a := describe(raw, "/a")
	parts := func() []string {
		t.Helper()
		got, err := filepath.Glob(dst + ".*.part")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	start := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)
	board := start
	r := NewRequests(func() time.Time { return board })
	r.Ask(protocol.Update{Version: "2.0.0", Archives: []protocol.UpdateArchive{a}}, start, start.Add(5*time.Minute), start)
	if err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", a, dst, nil); err == nil {
		t.Fatal("a cut download succeeded")
	}
	if len(parts()) != 1 {
		t.Fatalf("partial downloads %q, want the one kept to resume", parts())
	}
	board = start.Add(9 * time.Minute)
	if n := r.Sweep(dst); n != 0 || len(parts()) != 1 {
		t.Errorf("swept %d while the request is live; left %q", n, parts())
	}
	board = start.Add(10 * time.Minute) // the rollout halted: not renewed
	if n := r.Sweep(dst); n != 1 || len(parts()) != 0 {
		t.Errorf("swept %d once the request lapsed; left %q", n, parts())
	}

	// After a restart, nothing asked for within StartGrace.
	if err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", a, dst, nil); err == nil || len(parts()) != 1 {
		t.Fatalf("a cut download: %v, parts %q", err, parts())
	}
	r = NewRequests(func() time.Time { return board })
	start, board = board, board.Add(StartGrace-time.Second)
	if n := r.Sweep(dst); n != 0 {
		t.Errorf("swept %d within the grace after a start", n)
	}
	board = start.Add(StartGrace)
	if n := r.Sweep(dst); n != 1 || len(parts()) != 0 {
		t.Errorf("swept %d after the grace, none asked for; left %q", n, parts())
	}
}
