package http

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
)

// A watched report is rebuilt only when it is older than reportReuse ×
// its build time (at least streamCoalesce); streams that ask meanwhile
// get the same report.
func TestReportShareReusesByCost(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	r := &reportShare{now: clk.Now}
	var builds atomic.Int32
	build := func(context.Context) (*loaxa.EmergencyReport, error) {
		builds.Add(1)
		clk.Advance(100 * time.Millisecond) // a 10,000-node report's cost
		return &loaxa.EmergencyReport{Generated: clk.Now()}, nil
	}
	defer r.watch("e1")()
	ctx := context.Background()
	first, err := r.get(ctx, "e1", build)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(399 * time.Millisecond)
	again, _ := r.get(ctx, "e1", build)
	if builds.Load() != 1 || again != first {
		t.Fatalf("%d builds within 4 × the cost; want the first report again", builds.Load())
	}
	clk.Advance(time.Millisecond)
	if fresh, _ := r.get(ctx, "e1", build); builds.Load() != 2 || fresh == first {
		t.Fatalf("%d builds once 4 × the cost passed, want 2", builds.Load())
	}

	// A cheap report is reused for streamCoalesce only.
	cheap := func(context.Context) (*loaxa.EmergencyReport, error) {
		builds.Add(1)
		return &loaxa.EmergencyReport{}, nil
	}
	defer r.watch("e2")()
	r.get(ctx, "e2", cheap)
	clk.Advance(streamCoalesce)
	r.get(ctx, "e2", cheap)
	if builds.Load() != 4 {
		t.Errorf("%d builds, want a cheap report rebuilt after %v", builds.Load()-2, streamCoalesce)
	}
}

// Streams asking while a report is being built wait for that build; the
// one that started it leaving does not fail the others; the last watcher
// leaving forgets the report.
func TestReportShareOneBuildForAll(t *testing.T) {
	r := &reportShare{}
	var builds atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	build := func(ctx context.Context) (*loaxa.EmergencyReport, error) {
		builds.Add(1)
		close(started)
		<-release
		return &loaxa.EmergencyReport{}, ctx.Err()
	}
	stop1, stop2 := r.watch("e1"), r.watch("e1")
	ctx1, cancel1 := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var got [2]*loaxa.EmergencyReport
	var errs [2]error
	wg.Go(func() { got[0], errs[0] = r.get(ctx1, "e1", build) })
	<-started
	wg.Go(func() { got[1], errs[1] = r.get(context.Background(), "e1", build) })
	// The second waits for the build under way (it cannot build: the
	// build would close started twice and panic).
	cancel1()
	close(release)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || got[0] == nil || got[0] != got[1] {
		t.Fatalf("reports %p %p, errors %v %v: want one report for both, no error", got[0], got[1], errs[0], errs[1])
	}
	if builds.Load() != 1 {
		t.Errorf("%d builds, want 1", builds.Load())
	}
	stop1()
	stop2()
	if len(r.entries) != 0 {
		t.Errorf("%d reports kept after the last watcher left", len(r.entries))
	}
}
