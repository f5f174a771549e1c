package health_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// outageNodes is how many clusters a province-wide outage cuts off at once.
const outageNodes = 5000

// sweepStarts tells, once, that a node's status is being stored: the
// sweep has begun (it holds the monitor's lock).
type sweepStarts struct {
	loaxa.NodeService
	once    sync.Once
	started chan struct{}
}

func (s *sweepStarts) UpdateNodeStatus(ctx context.Context, id string, fn func(*loaxa.NodeStatus)) error {
	s.once.Do(func() { close(s.started) })
	return s.NodeService.UpdateNodeStatus(ctx, id, fn)
}

// massOutage is a monitor over a real store in dir (on disk: its commits
// fsync) with n1 and x0001…x5000 online, every one last heard at t0, and
// the clock at t0 + 11 min: the next sweep finds x0001…x5000 silent for
// over 5 heartbeats and the offline alarm due, as after a typhoon cut the
// province's power and 4G at once; n1 was heard just now.
func massOutage(tb testing.TB, dir string) (*health.Monitor, *bolt.AlarmService, *sweepStarts, *clock.Fake) {
	tb.Helper()
	ctx := context.Background()
	clk := clock.NewFake(t0)
	db := bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	db.Now = clk.Now
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "12346", Name: "Xã Tiên Thắng"}); err != nil {
		tb.Fatal(err)
	}
	nodes, alarms := bolt.NewNodeService(db), bolt.NewAlarmService(db)
	all := []*loaxa.Node{{ID: "n1", Name: "n1", Area: "12346", Credentials: loaxa.CredentialsActive}}
	for i := 1; i <= outageNodes; i++ {
		id := fmt.Sprintf("x%04d", i)
		all = append(all, &loaxa.Node{ID: id, Name: id, Area: "12346", Credentials: loaxa.CredentialsActive})
	}
	if err := nodes.CreateNodes(ctx, all); err != nil {
		tb.Fatal(err)
	}
	sweep := t0.Add(11 * time.Minute)
	for _, n := range all {
		seen := t0
		if n.ID == "n1" {
			seen = sweep
		}
		if err := nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) {
			s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOnline, seen, 60000
		}); err != nil {
			tb.Fatal(err)
		}
	}
	sig := &sweepStarts{NodeService: nodes, started: make(chan struct{})}
	m := health.NewMonitor()
	m.Config.DailyTest = ""
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = clk, sig, alarms, alarms, &fakeMessenger{cmds: map[string][]protocol.Command{}}
	if err := m.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	clk.Set(sweep)
	return m, alarms, sig, clk
}

// BenchmarkSweepOfAMassOutage measures the sweep that finds 5,000 nodes
// offline at once and opens their offline alarms (sweep_s, all of it
// under the monitor's lock), and how long a state of a node still online,
// arriving as the sweep begins, waits for that lock
// (state_wait_s): the ingest waits as long for every state and event.
// One sweep an iteration; run with -benchtime=1x.
func BenchmarkSweepOfAMassOutage(b *testing.B) {
	ctx := context.Background()
	var sweepTotal, waitTotal time.Duration
	for range b.N {
		b.StopTimer()
		m, alarms, sig, clk := massOutage(b, b.TempDir())
		var wait time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-sig.started
			st := online(healthy())
			start := time.Now()
			m.ObserveState(ctx, "n1", &st, clk.Now())
			wait = time.Since(start)
		}()
		b.StartTimer()
		start := time.Now()
		m.SweepNow(ctx)
		sweep := time.Since(start)
		b.StopTimer()
		wg.Wait()
		open, err := alarms.FindOpenAlarms(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(open) != outageNodes {
			b.Fatalf("%d alarms open after the sweep, want %d", len(open), outageNodes)
		}
		sweepTotal += sweep
		waitTotal += wait
		b.StartTimer()
	}
	b.ReportMetric(sweepTotal.Seconds()/float64(b.N), "sweep_s")
	b.ReportMetric(waitTotal.Seconds()/float64(b.N), "state_wait_s")
}
