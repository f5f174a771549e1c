package update

import (
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
