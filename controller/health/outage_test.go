package health_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	m.Areas = bolt.NewAreaService(db)
	if err := m.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	clk.Set(sweep)
	return m, alarms, sig, clk
}

// BenchmarkSweepOfAMassOutage measures the sweep that finds 5,000 nodes
// offline at once and opens their offline alarms, logging to a file as the
// controller logs to stderr (sweep_s, nearly all of it under the monitor's
// lock), and how long a state of a node still online,
// arriving as the sweep begins, waits for that lock
// (state_wait_s): the ingest waits as long for every state and event.
// One sweep an iteration; run with -benchtime=1x.
func BenchmarkSweepOfAMassOutage(b *testing.B) {
	ctx := context.Background()
	var sweepTotal, waitTotal time.Duration
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		m, alarms, sig, clk := massOutage(b, dir)
		// Logged as the controller logs (text, one write a line), to a
		// file rather than stderr.
		logs, err := os.Create(filepath.Join(dir, "controller.log"))
		if err != nil {
			b.Fatal(err)
		}
		m.Logger = slog.New(slog.NewTextHandler(logs, nil))
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
		logs.Close()
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

// logLine is one line a logLines handler kept.
type logLine struct {
	level  slog.Level
	msg    string
	attrs  map[string]slog.Value
	locked bool // the monitor's lock was held as it was logged
}

// logLines is a slog handler that keeps every line, and whether the
// monitor's lock was held as it was logged.
type logLines struct {
	m     *health.Monitor
	mu    sync.Mutex
	lines []logLine
}

func (h *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *logLines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logLines) WithGroup(string) slog.Handler            { return h }

func (h *logLines) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}, locked: h.m.LockHeld()}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, l)
	h.mu.Unlock()
	return nil
}

// int returns the line's integer attribute key, 0 if it has none.
func (l logLine) int(key string) int {
	if v, ok := l.attrs[key]; ok && v.Kind() == slog.KindInt64 {
		return int(v.Int64())
	}
	return 0
}

// take returns the lines kept since the last take.
func (h *logLines) take() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.lines
	h.lines = nil
	return out
}

// captureLogs has m log into the returned handler.
func captureLogs(m *health.Monitor) *logLines {
	h := &logLines{m: m}
	m.Logger = slog.New(h)
	return h
}

// TestMassOutageSweepLogsOneLine: a typhoon cut off 400 clusters of two
// communes at once, and the sweep that found them logged two lines for
// each (silent, then its offline alarm), written while it held the
// monitor's lock, which every state and event the ingest hands on waits
// for. The sweep logs one line that sums it up (how many, a few of the
// nodes, the areas), once it has let the lock go.
func TestMassOutageSweepLogsOneLine(t *testing.T) {
	ctx := context.Background()
	db, clk := communeStore(t, t.TempDir())
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "12347", Name: "Xã Tiên Cường"}); err != nil {
		t.Fatal(err)
	}
	nodes, alarms := bolt.NewNodeService(db), bolt.NewAlarmService(db)
	var all []*loaxa.Node
	for i := range 400 {
		id := fmt.Sprintf("x%04d", i)
		all = append(all, &loaxa.Node{ID: id, Name: id, Area: []string{"12346", "12347"}[i%2], Credentials: loaxa.CredentialsActive})
	}
	if err := nodes.CreateNodes(ctx, all); err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if err := nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) {
			s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOnline, t0, 60000
		}); err != nil {
			t.Fatal(err)
		}
	}
	m := health.NewMonitor()
	m.Config.DailyTest = ""
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = clk, nodes, alarms, alarms, &fakeMessenger{cmds: map[string][]protocol.Command{}}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	logs := captureLogs(m)
	clk.Set(t0.Add(11 * time.Minute))
	m.SweepNow(ctx)
	if st := m.Status(); st.Nodes[loaxa.NodeOffline] != 400 || st.OpenAlarms != 400 {
		t.Fatalf("after the sweep: %+v, want 400 offline, 400 alarms open", st)
	}
	lines := logs.take()
	if len(lines) != 1 {
		t.Fatalf("the sweep logged %d lines, want 1; the first: %+v", len(lines), lines[0])
	}
	l := lines[0]
	if l.locked {
		t.Error("the sweep's line was logged while it held the monitor's lock")
	}
	if l.level != slog.LevelWarn || l.int("offline") != 400 || l.int("offline_alarms") != 400 {
		t.Errorf("line %s %q %v, want a warning of 400 offline and 400 offline alarms", l.level, l.msg, l.attrs)
	}
	if got := fmt.Sprint(l.attrs["areas"]); got != "[12346 12347]" {
		t.Errorf("areas %s, want [12346 12347]", got)
	}
	if got, want := fmt.Sprint(l.attrs["nodes"]), "[x0000 x0001 x0002 x0003 x0004 x0005 x0006 x0007 x0008 x0009]"; got != want {
		t.Errorf("nodes %s, want the first ten: %s", got, want)
	}
}

// TestFailingAlarmStoreLogsOnceAMinute: with the alarm store failing (a
// full disk), every state of a cluster with a fault tried its alarm again
// and logged the failure: a line per faulty node and state, thousands a
// minute in a typhoon. The failure is logged at most once a minute, with
// how many were not; once a write works again, one line says so, with the
// rest of the count, so every failure is accounted for.
func TestFailingAlarmStoreLogsOnceAMinute(t *testing.T) {
	w := newWorld(t)
	logs := captureLogs(w.m)
	w.m.Alarms = failingAlarms{w.alarms}
	board := healthy()
	board.DoorOpen = ptr(true)
	failures := 0
	for range 30 { // 5 minutes, a state of each node every 10 s
		for _, id := range []string{"n1", "n2"} {
			w.state(id, online(board))
			failures++
		}
		w.clock.Advance(10 * time.Second)
	}
	w.m.Alarms = w.alarms
	w.state("n1", online(board))
	w.state("n2", online(board))
	if len(w.open("n1")) != 1 || len(w.open("n2")) != 1 {
		t.Fatalf("open alarms n1 %v, n2 %v once the store takes writes; want door-open each", w.open("n1"), w.open("n2"))
	}
	errorLines, counted, recovered := failureAccount(logs.take(), "takes writes again")
	if errorLines > 6 {
		t.Errorf("%d failed alarm writes in 5 minutes logged %d error lines, want one a minute at most", failures, errorLines)
	}
	if !recovered || counted != failures {
		t.Errorf("the lines account for %d failed writes (recovery logged: %v), want all %d", counted, recovered, failures)
	}
}

// failureAccount reads the lines a failing store left: how many error
// lines, how many failed writes they and the line saying the store works
// again (its message contains recovery) account for (each error line its
// own and its unlogged_failures), and whether that line came.
func failureAccount(lines []logLine, recovery string) (errorLines, counted int, recovered bool) {
	for _, l := range lines {
		switch {
		case l.level == slog.LevelError:
			errorLines++
			counted += 1 + l.int("unlogged_failures")
		case strings.Contains(l.msg, recovery):
			recovered = true
			counted += l.int("unlogged_failures")
		}
	}
	return errorLines, counted, recovered
}

// failingNodes is a node store whose status writes fail (a full disk),
// counting them.
type failingNodes struct {
	loaxa.NodeService
	failed *atomic.Int64
}

func (f failingNodes) UpdateNodeStatus(context.Context, string, func(*loaxa.NodeStatus)) error {
	f.failed.Add(1)
	return errors.New("write node status: no space left on device")
}

// TestFailingNodeStoreLogsOnceAMinute: with the node store failing (a full
// disk), every sweep tried again to store each silent node's state and
// logged "node state not stored" for each, under the monitor's lock: a
// line per silent node every 5 s, tens of thousands a minute when a
// typhoon cuts off a province. It is logged at most once a minute, with
// how many were not, as a failing alarm store is; once a write works
// again, one line says so with the rest of the count.
func TestFailingNodeStoreLogsOnceAMinute(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.state("n1", online(healthy()))
	w.state("n2", online(healthy()))
	logs := captureLogs(w.m)
	var failed atomic.Int64
	w.m.Nodes = failingNodes{w.nodes, &failed}
	for range 60 { // 5 minutes from the last state, a sweep every 5 s
		w.clock.Advance(5 * time.Second)
		w.m.SweepNow(ctx)
	}
	w.m.Nodes = w.nodes
	w.clock.Advance(5 * time.Second)
	w.m.SweepNow(ctx)
	if st := w.m.Status(); st.Nodes[loaxa.NodeOffline] != 2 {
		t.Fatalf("nodes by state %v once the store takes writes; want both offline", st.Nodes)
	}
	errorLines, counted, recovered := failureAccount(logs.take(), "node store takes writes again")
	failures := int(failed.Load())
	if failures < 60 {
		t.Fatalf("set-up: %d failed status writes, want a failing write of each silent node in every sweep", failures)
	}
	if errorLines > 6 {
		t.Errorf("%d failed node status writes in 5 minutes logged %d error lines, want one a minute at most", failures, errorLines)
	}
	if !recovered || counted != failures {
		t.Errorf("the lines account for %d failed writes (recovery logged: %v), want all %d", counted, recovered, failures)
	}
}

// TestFailingLastPlayStoreLogsOnceAMinute: with the node store failing (a
// full disk), every batch of events with a completed play logged "health:
// last play not stored": after each morning session, a line per node, ten
// thousand at once in a province. It is logged at most once a minute, with
// how many were not, counted with the node store's other failures; once a
// write works again, one line says so with the rest of the count.
func TestFailingLastPlayStoreLogsOnceAMinute(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	logs := captureLogs(w.m)
	var failed atomic.Int64
	w.m.Nodes = failingNodes{w.nodes, &failed}
	seq := uint64(0)
	play := func(node string) {
		seq++
		w.m.ObserveEvents(ctx, node, "e1", []protocol.Event{{Seq: seq, Type: protocol.EventCompleted, At: w.clock.Now(), Occurrence: fmt.Sprintf("a%d@x", seq)}})
	}
	for range 30 { // 5 minutes, a play of each node every 10 s
		play("n1")
		play("n2")
		w.clock.Advance(10 * time.Second)
	}
	w.m.Nodes = w.nodes
	play("n1")
	if lp := w.node("n1").Status.LastPlay; !lp.Equal(w.clock.Now()) {
		t.Fatalf("n1's last play %v once the store takes writes, want %v", lp, w.clock.Now())
	}
	errorLines, counted, recovered := failureAccount(logs.take(), "node store takes writes again")
	failures := int(failed.Load())
	if failures != 60 {
		t.Fatalf("set-up: %d failed status writes, want one for each of the 60 plays", failures)
	}
	if errorLines > 6 {
		t.Errorf("%d failed last play writes in 5 minutes logged %d error lines, want one a minute at most", failures, errorLines)
	}
	if !recovered || counted != failures {
		t.Errorf("the lines account for %d failed writes (recovery logged: %v), want all %d", counted, recovered, failures)
	}
}
