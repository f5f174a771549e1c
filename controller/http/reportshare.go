package http

import (
	"context"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
)

// reportShare shares the emergency reports that live streams rebuild.
// Each stream rebuilt the whole report after every burst of node events
// (streamCoalesce): at 10,000 nodes a report takes ~120 ms of CPU to
// build, the reports of a large area trickle in for the whole report
// window, and so each officer watching the board cost most of a core on
// the controller that is taking in those reports (BENCHMARKS.md). Now the
// streams of one emergency share one report, rebuilt at most once per
// reportReuse × the time the last build took (and never more often than
// streamCoalesce): the report is at most that old, a watcher's share of
// the CPU stays below about a fifth of a core however many watch, and a
// small area's report (a few ms) is as fresh as before.
type reportShare struct {
	// now is the pacing's clock: real time (Server.Now is the domain's,
	// which tests stop); tests of the share replace it.
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*sharedReport
}

// reportReuse is how many times its own build time a shared report is
// reused.
const reportReuse = 4

type sharedReport struct {
	watchers int
	rep      *loaxa.EmergencyReport
	built    time.Time     // when rep was built
	cost     time.Duration // how long building it took
	building chan struct{} // closed when the build under way ends
	err      error         // of the last build
}

func (r *reportShare) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// watch registers a stream of emergency id; release ends it, and the last
// release forgets the shared report.
func (r *reportShare) watch(id string) (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string]*sharedReport{}
	}
	e := r.entries[id]
	if e == nil {
		e = &sharedReport{}
		r.entries[id] = e
	}
	e.watchers++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if e.watchers--; e.watchers == 0 && r.entries[id] == e {
			delete(r.entries, id)
		}
	}
}

// get returns the shared report of emergency id (watched), built by build
// when the last one is older than its reuse age; concurrent callers wait
// for one build. The build does not end when the caller that started it
// leaves: others wait for it.
func (r *reportShare) get(ctx context.Context, id string, build func(context.Context) (*loaxa.EmergencyReport, error)) (*loaxa.EmergencyReport, error) {
	r.mu.Lock()
	e := r.entries[id]
	if e == nil { // not watched: nothing to share
		r.mu.Unlock()
		return build(ctx)
	}
	for e.building != nil {
		ch := e.building
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		r.mu.Lock()
		if e.err == nil && e.rep != nil {
			rep := e.rep
			r.mu.Unlock()
			return rep, nil
		}
	}
	if e.rep != nil && r.clock().Sub(e.built) < max(streamCoalesce, reportReuse*e.cost) {
		rep := e.rep
		r.mu.Unlock()
		return rep, nil
	}
	ch := make(chan struct{})
	e.building = ch
	r.mu.Unlock()

	start := r.clock()
	rep, err := build(context.WithoutCancel(ctx))
	end := r.clock()

	r.mu.Lock()
	e.building, e.err = nil, err
	if err == nil {
		e.rep, e.built, e.cost = rep, end, end.Sub(start)
	}
	r.mu.Unlock()
	close(ch)
	return rep, err
}
