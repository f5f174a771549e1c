package update

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
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
	board := clock.NewFake(now.Add(-time.Hour)) // the board's clock need not agree with the controller's
	r := NewRequests(board)
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
		board.Advance(5 * time.Minute)
		now = now.Add(5 * time.Minute)
		ask(releaseOf("3.0.0"))
	}
	board.Advance(9 * time.Minute)
	if !r.Wanted(got) {
		t.Error("3.0.0 lapsed within its command's lifetime after it expired")
	}
	// The rollout halted: no renewal.
	board.Advance(2 * time.Minute)
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
	board := clock.NewFake(start)
	r := NewRequests(board)
	r.Ask(protocol.Update{Version: "2.0.0", Archives: []protocol.UpdateArchive{a}}, start, start.Add(5*time.Minute), start)
	if err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", a, dst, nil); err == nil {
		t.Fatal("a cut download succeeded")
	}
	if len(parts()) != 1 {
		t.Fatalf("partial downloads %q, want the one kept to resume", parts())
	}
	board.Set(start.Add(9 * time.Minute))
	if n := r.Sweep(dst); n != 0 || len(parts()) != 1 {
		t.Errorf("swept %d while the request is live; left %q", n, parts())
	}
	board.Set(start.Add(10 * time.Minute)) // the rollout halted: not renewed
	if n := r.Sweep(dst); n != 1 || len(parts()) != 0 {
		t.Errorf("swept %d once the request lapsed; left %q", n, parts())
	}

	// After a restart, nothing asked for within StartGrace.
	if err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", a, dst, nil); err == nil || len(parts()) != 1 {
		t.Fatalf("a cut download: %v, parts %q", err, parts())
	}
	r = NewRequests(board)
	start = board.Now()
	board.Advance(StartGrace - time.Second)
	if n := r.Sweep(dst); n != 0 {
		t.Errorf("swept %d within the grace after a start", n)
	}
	board.Set(start.Add(StartGrace))
	if n := r.Sweep(dst); n != 1 || len(parts()) != 0 {
		t.Errorf("swept %d after the grace, none asked for; left %q", n, parts())
	}
}

// TestWithdrawnUpdateStopsItsDownload: an officer halted a rollout because
// the release was bad, and every board went on downloading its ~15 MB
// over 4G to the end before noticing the controller no longer asked for
// it. A fetch held for a request (Hold) stops as soon as a request for
// another release replaces it, or it lapses; a renewal of the same
// release lets it go on.
func TestWithdrawnUpdateStopsItsDownload(t *testing.T) {
	raw := archive(t, map[string][]byte{"loaxa-node-2.0.0-linux-arm64/node": bytes.Repeat([]byte("new agent "), 10000)})
	streaming, gone, quit := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Half the archive, then a link so thin the rest never comes.
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.Write(raw[:len(raw)/2])
		w.(http.Flusher).Flush()
		streaming <- struct{}{}
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-quit:
		}
	}))
	defer ts.Close()
	defer close(quit)
	a := describe(raw, "/a")
	v2 := protocol.Update{Version: "2.0.0", Archives: []protocol.UpdateArchive{a}}
	now := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name     string
		withdraw func(t *testing.T, r *Requests, board *clock.Fake, hctx context.Context)
	}{
		{"replaced by another release", func(t *testing.T, r *Requests, board *clock.Fake, hctx context.Context) {
			r.Ask(releaseOf("3.0.0"), now, now.Add(5*time.Minute), now)
		}},
		{"not renewed (the rollout halted)", func(t *testing.T, r *Requests, board *clock.Fake, hctx context.Context) {
			board.Advance(10 * time.Minute)
		}},
		{"not renewed after a renewal", func(t *testing.T, r *Requests, board *clock.Fake, hctx context.Context) {
			board.Advance(4 * time.Minute)
			r.Ask(v2, now.Add(4*time.Minute), now.Add(9*time.Minute), now.Add(4*time.Minute))
			board.Advance(6 * time.Minute) // the first command's lapse, renewed since
			// The hold looks again and waits for the renewal's lapse.
			for deadline := time.Now().Add(10 * time.Second); board.Timers() == 0 && hctx.Err() == nil; runtime.Gosched() {
				if time.Now().After(deadline) {
					t.Fatal("the hold neither waits for the renewal's lapse nor ended")
				}
			}
			if hctx.Err() != nil {
				t.Fatalf("the fetch of a renewed release ended: %v", context.Cause(hctx))
			}
			board.Advance(4 * time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			board := clock.NewFake(now)
			r := NewRequests(board)
			r.Ask(v2, now, now.Add(5*time.Minute), now)
			hctx, release := r.Hold(context.Background(), v2)
			defer release()
			fetched := make(chan error, 1)
			go func() {
				fetched <- Fetch(hctx, ts.Client(), ts.URL, "n1", "secret", a, filepath.Join(t.TempDir(), ".loaxa-node.new"), nil)
			}()
			<-streaming
			r.Ask(v2, now, now.Add(5*time.Minute), now) // the same request again
			if err := hctx.Err(); err != nil {
				t.Fatalf("the fetch ended when its release was asked again: %v", context.Cause(hctx))
			}
			tc.withdraw(t, r, board, hctx)
			select {
			case err := <-fetched:
				if err == nil {
					t.Fatal("the download of a withdrawn release completed")
				}
			case <-time.After(time.Minute): // only if it is broken: the link never brings the rest
				t.Fatal("the download of a withdrawn release went on")
			}
			<-gone
			if cause := context.Cause(hctx); !errors.Is(cause, ErrWithdrawn) {
				t.Errorf("the fetch ended with %v, want ErrWithdrawn", cause)
			}
		})
	}
	ts.Client().CloseIdleConnections()
}
