package health_test

import (
	"context"
	"errors"
	"fmt"
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
	db, clk := communeStore(tb, dir)
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

// failingAlarms is an alarm store whose writes fail (a full disk, or the
// controller dying before it wrote).
type failingAlarms struct{ loaxa.AlarmService }

func (failingAlarms) CreateAlarm(context.Context, *loaxa.Alarm) error {
	return errors.New("write alarm: no space left on device")
}

func (failingAlarms) CreateAlarms(context.Context, []*loaxa.Alarm) error {
	return errors.New("write alarms: no space left on device")
}

func (failingAlarms) EndAlarm(context.Context, string, time.Time) (*loaxa.Alarm, error) {
	return nil, errors.New("end alarm: no space left on device")
}

// TestOfflineAlarmsNotWrittenOpenLater: the sweep decided that n1 and n2
// were offline long enough for their alarm, and the write of those alarms
// (one for the whole sweep) did not happen: it failed, or the controller
// died first. Nothing is lost: the same monitor's next sweep, or a
// restarted one's first, opens each alarm, once.
func TestOfflineAlarmsNotWrittenOpenLater(t *testing.T) {
	ctx := context.Background()
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "next sweep", true: "restart"}[restart], func(t *testing.T) {
			w := newWorld(t)
			for _, id := range []string{"n1", "n2"} {
				w.state(id, online(healthy()))
			}
			w.m.Alarms = failingAlarms{w.alarms}
			w.clock.Advance(11 * time.Minute)
			w.m.SweepNow(ctx)
			if st := w.m.Status(); st.Nodes[loaxa.NodeOffline] != 2 || st.OpenAlarms != 0 {
				t.Fatalf("after a sweep whose alarms were not written: %+v, want 2 offline, no alarm open", st)
			}
			m := w.m
			if restart {
				m = health.NewMonitor()
				m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = w.clock, w.nodes, w.alarms, w.alarms, w.msgs
				if err := m.Open(ctx); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
			} else {
				m.Alarms = w.alarms
			}
			for range 2 {
				w.clock.Advance(5 * time.Second)
				m.SweepNow(ctx)
			}
			all, err := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, a := range all {
				if a.Kind == loaxa.AlarmOffline && a.Open() {
					got[a.Node]++
				}
			}
			if len(all) != 2 || got["n1"] != 1 || got["n2"] != 1 || m.Status().OpenAlarms != 2 {
				t.Errorf("alarms %v (%d in all, %d open in the monitor), want one offline alarm open for n1 and n2", got, len(all), m.Status().OpenAlarms)
			}
		})
	}
}

// countingAlarms counts the writes of new alarms.
type countingAlarms struct {
	loaxa.AlarmService
	writes int
}

func (c *countingAlarms) CreateAlarm(ctx context.Context, a *loaxa.Alarm) error {
	c.writes++
	return c.AlarmService.CreateAlarm(ctx, a)
}

func (c *countingAlarms) CreateAlarms(ctx context.Context, as []*loaxa.Alarm) error {
	c.writes++
	return c.AlarmService.CreateAlarms(ctx, as)
}

// TestSweepStoresItsAlarmsInOneWrite: a typhoon cut off 5,000 clusters
// at once and the sweep stored each one's offline alarm in a commit of its
// own while holding the monitor's lock: 15 s in which no state or event
// was taken in (BenchmarkSweepOfAMassOutage). The alarms a sweep opens are
// stored in one write.
func TestSweepStoresItsAlarmsInOneWrite(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, id := range []string{"n1", "n2"} {
		w.state(id, online(healthy()))
	}
	c := &countingAlarms{AlarmService: w.alarms}
	w.m.Alarms = c
	w.clock.Advance(11 * time.Minute)
	w.m.SweepNow(ctx)
	if len(w.open("n1")) != 1 || len(w.open("n2")) != 1 {
		t.Fatalf("open alarms n1 %v, n2 %v; want offline for each", w.open("n1"), w.open("n2"))
	}
	if c.writes != 1 {
		t.Errorf("the sweep's 2 alarms took %d writes, want 1", c.writes)
	}
}
