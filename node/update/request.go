package update

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

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
// is withdrawn: the rollout halted or ended, or took the node off.
type Requests struct {
	// Now is the board's clock (monotonic); tests set a fake one.
	Now func() time.Time

	mu      sync.Mutex
	req     protocol.Update
	asked   bool      // req is set
	until   time.Time // when req lapses; after a start, when StartGrace ends
	pending bool      // asked since last taken
	wake    chan struct{}
}

// NewRequests returns Requests with nothing asked yet, at the board's
// start.
func NewRequests(now func() time.Time) *Requests {
	return &Requests{Now: now, until: now().Add(StartGrace), wake: make(chan struct{}, 1)}
}

// Ask records that the controller asks for u in a command signed at
// issued and valid until expires, judged at now on the clock the node
// judges commands on (corrected to the controller's). It returns at once.
func (r *Requests) Ask(u protocol.Update, issued, expires, now time.Time) {
	r.mu.Lock()
	if !r.asked || !sameRelease(r.req, u) {
		r.req = u
	}
	r.asked, r.pending = true, true
	// A renewal comes within the command's lifetime after it expires.
	r.until = r.Now().Add(expires.Sub(now) + expires.Sub(issued))
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
	lapsed := !r.Now().Before(r.until)
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

func (r *Requests) liveLocked() bool { return r.asked && r.Now().Before(r.until) }

// sameRelease reports whether a and b ask for the same archives.
func sameRelease(a, b protocol.Update) bool {
	return a.Version == b.Version && slices.Equal(a.Archives, b.Archives)
}
