package bolt

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// group commits concurrent hot-path writes (event batches; node statuses
// are kept in memory instead, nodestatus.go) in one transaction, so they
// share one commit and its two fsyncs. An idle store commits a lone write
// at once, and writes that arrive while a commit is in flight join the
// next one. There is no goroutine of its own: the first waiting caller
// leads the next commit.
//
// Under a steady trickle (the reports of 10,000 nodes spread over ten
// seconds, BENCHMARKS.md) that alone puts two or three writes in a commit,
// and the commits' page writes and fsyncs cost more than the writes: so a
// leader that starts within groupBusy of the last commit's end waits
// groupLinger first, for more writes to join (PostgreSQL's commit_delay,
// only when busy). One write waits at most groupLinger longer; an idle
// store waits never.
type group struct {
	mu      sync.Mutex
	queue   []*groupCall
	leading bool      // some caller is committing; new calls wait to be led
	lastEnd time.Time // when the last commit ended
	// linger waits d before a busy commit (time.Sleep; tests replace it).
	linger func(d time.Duration)
}

// The group's linger (see group).
const (
	groupBusy   = 20 * time.Millisecond
	groupLinger = 5 * time.Millisecond
	// groupFull is how many queued writes make a leader commit at once.
	groupFull = 256
)

type groupCall struct {
	fn   func(*bbolt.Tx) error
	err  error
	lead bool          // set before wake: this caller leads the next commit
	wake chan struct{} // signalled once the call is done or must lead
}

// errGroupFailed aborts a shared transaction when one of its writes fails.
var errGroupFailed = errors.New("a write in the group failed")

// recovering turns a panic in fn into its error. A caller's panic must not
// unwind through the leader of a shared commit: the group would stay led
// by no one, and every later event batch would wait forever.
func recovering(fn func(*bbolt.Tx) error) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("store write panicked: %v", r)
			}
		}()
		return fn(tx)
	}
}

// groupUpdate runs fn in a write transaction that may be shared with other
// concurrent groupUpdate calls, and returns once that transaction is
// committed. If any write of a shared transaction fails, every write of it
// is retried in a transaction of its own, so one caller's error never
// reaches another; fn must therefore tolerate being run again (set, not
// accumulate, what it reports to its caller).
func (db *DB) groupUpdate(fn func(*bbolt.Tx) error) error {
	if db.db == nil {
		return errClosed
	}
	g := &db.group
	c := &groupCall{fn: recovering(fn), wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		<-c.wake
		if !c.lead {
			return c.err
		}
	}

	// c leads: it is in the queue, so the commit below includes it.
	g.mu.Lock()
	busy := time.Since(g.lastEnd) < groupBusy && len(g.queue) < groupFull
	g.mu.Unlock()
	if busy {
		if g.linger != nil {
			g.linger(groupLinger)
		} else {
			time.Sleep(groupLinger)
		}
	}
	g.mu.Lock()
	calls := g.queue
	g.queue = nil
	g.mu.Unlock()
	db.commitGroup(calls)
	g.mu.Lock()
	g.lastEnd = time.Now()
	g.mu.Unlock()
	for _, o := range calls {
		if o != c {
			o.wake <- struct{}{}
		}
	}
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.leading = false
	} else {
		next := g.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	}
	g.mu.Unlock()
	return c.err
}

// commitGroup runs calls in one transaction and sets each call's error.
func (db *DB) commitGroup(calls []*groupCall) {
	err := db.db.Update(func(tx *bbolt.Tx) error {
		for _, c := range calls {
			if c.err = c.fn(tx); c.err != nil {
				return errGroupFailed
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	if len(calls) == 1 {
		if !errors.Is(err, errGroupFailed) {
			calls[0].err = err // the commit itself failed
		}
		return
	}
	for _, c := range calls {
		c.err = db.db.Update(c.fn)
	}
}
