package update

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// ErrWithdrawn: the controller no longer asks for the release being
// fetched or waiting to be tried (a newer release replaced it, or the
// rollout stopped asking).
var ErrWithdrawn = errors.New("update withdrawn by the controller")

// StartGrace is how long after a start the partial download of a release
// is kept for a request to come and resume it (three of the controller's
// default update command lifetimes).
const StartGrace = 15 * time.Minute

// Requests keeps the release the controller asks this node to install.
//
// A rollout sends its update command again within each command's lifetime
// for as long as it wants the node updated (controller/release Resend),
// and never withdraws one otherwise. So the latest request wins — a newer
// release, or the previous one again, replaces a request not yet tried —
// and a request not renewed within a lifetime after its command expired
// is withdrawn: the rollout halted or ended, or took the node off. A
// fetch of a withdrawn release stops at once (Hold).
type Requests struct {
	// Clock is the board's clock (monotonic); tests set a fake one.
	Clock clock.Clock

	mu      sync.Mutex
	req     protocol.Update
	asked   bool      // req is set
	until   time.Time // when req lapses; after a start, when StartGrace ends
	pending bool      // asked since last taken
	wake    chan struct{}
	held    map[*hold]struct{} // fetches and tries of req under way
}

// hold is a fetch or try of a release under way (Hold).
type hold struct {
	u      protocol.Update
	cancel context.CancelCauseFunc
}

// NewRequests returns Requests with nothing asked yet, at the board's
// start.
func NewRequests(c clock.Clock) *Requests {
	return &Requests{Clock: c, until: c.Now().Add(StartGrace), wake: make(chan struct{}, 1), held: map[*hold]struct{}{}}
}

// Ask records that the controller asks for u in a command signed at
// issued and valid until expires, judged at now on the clock the node
// judges commands on (corrected to the controller's). It returns at once.
func (r *Requests) Ask(u protocol.Update, issued, expires, now time.Time) {
	r.mu.Lock()
	if !r.asked || !sameRelease(r.req, u) {
		r.req = u
		// Another release replaces the one being fetched: its ~15 MB
		// are not downloaded over the board's 4G for nothing.
		for h := range r.held {
			if !sameRelease(h.u, u) {
				h.cancel(ErrWithdrawn)
			}
		}
	}
	r.asked, r.pending = true, true
	// A renewal comes within the command's lifetime after it expires.
	r.until = r.Clock.Now().Add(expires.Sub(now) + expires.Sub(issued))
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Wake is signalled after Ask.
func (r *Requests) Wake() <-chan struct{} { return r.wake }

// Take returns the request asked since the last Take, if the controller
// still asks for it.
func (r *Requests) Take() (protocol.Update, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pending || !r.liveLocked() {
		return protocol.Update{}, false
	}
	r.pending = false
	return r.req, true
}

// Settle forgets that u was asked again while it was being fetched or
// tried, after that failed and was reported: the controller asks again if
// it wants another try.
func (r *Requests) Settle(u protocol.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.asked && sameRelease(r.req, u) {
		r.pending = false
	}
}

// Wanted reports whether the controller still asks for u: no other
// release replaced it and it did not lapse.
func (r *Requests) Wanted(u protocol.Update) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.liveLocked() && sameRelease(r.req, u)
}

// Hold returns a context, from ctx, in which to fetch and try u: it
// ends, with cause ErrWithdrawn, as soon as the controller no longer asks
// for u — a request for another release replaces it, or it lapses (the
// rollout was halted because the release is bad) — so that a download
// stops then rather than when it is done. A renewal of u keeps it. The
// returned function ends the hold; call it once the fetch or try is over.
func (r *Requests) Hold(ctx context.Context, u protocol.Update) (context.Context, func()) {
	hctx, cancel := context.WithCancelCause(ctx)
	h := &hold{u: u, cancel: cancel}
	r.mu.Lock()
	if !r.liveLocked() || !sameRelease(r.req, u) {
		cancel(ErrWithdrawn)
	}
	r.held[h] = struct{}{}
	lapse := r.Clock.NewTimer(r.until.Sub(r.Clock.Now()))
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer lapse.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-lapse.C():
			}
			r.mu.Lock()
			wanted := r.liveLocked() && sameRelease(r.req, u)
			left := r.until.Sub(r.Clock.Now()) // renewed meanwhile
			r.mu.Unlock()
			if !wanted {
				cancel(ErrWithdrawn)
				return
			}
			lapse.Reset(left)
		}
	}()
	return hctx, func() {
		cancel(context.Canceled)
		<-done
		r.mu.Lock()
		delete(r.held, h)
		r.mu.Unlock()
	}
}

// Lapse returns when the request asked last lapses, or, before any, when
// the grace after the start ends.
func (r *Requests) Lapse() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.until
}

// Sweep removes the partial downloads beside dst (Fetch) once nothing is
// asked for: the last request lapsed, or none came within StartGrace of
// the start. A release is about 15 MB, much of a small SD card. It
// returns how many it removed.
func (r *Requests) Sweep(dst string) int {
	r.mu.Lock()
	lapsed := !r.Clock.Now().Before(r.until)
	r.mu.Unlock()
	if !lapsed {
		return 0
	}
	parts, _ := filepath.Glob(dst + ".*.part")
	n := 0
	for _, p := range parts {
		if os.Remove(p) == nil {
			n++
		}
	}
	return n
}

func (r *Requests) liveLocked() bool { return r.asked && r.Clock.Now().Before(r.until) }

// sameRelease reports whether a and b ask for the same archives.
func sameRelease(a, b protocol.Update) bool {
	return a.Version == b.Version && slices.Equal(a.Archives, b.Archives)
}
