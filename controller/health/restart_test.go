package health_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// typhoonStore is a store in which a typhoon has cut the power of a
// province of 5,000 clusters: each of x0001…x5000 has mains-off and
// battery-low open (10,000 alarms, as many as a listing of alarms
// gives). Before the typhoon, n1's door was found open and n2 went
// offline: theirs are the oldest open alarms, returned as old["n1"] and
// old["n2"]. The store can only take alarms one commit each, so its file
// is in /dev/shm where there is one: a second for the 10,002, not a
// minute.
func typhoonStore(t *testing.T) (*bolt.DB, *clock.Fake, map[string]*loaxa.Alarm) {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("/dev/shm", "loaxa-health-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	db, clk := communeStore(t, dir)
	nodes, alarms := bolt.NewNodeService(db), bolt.NewAlarmService(db)
	var all []*loaxa.Node
	for _, id := range []string{"n1", "n2"} {
		all = append(all, &loaxa.Node{ID: id, Name: id, Area: "12346", Credentials: loaxa.CredentialsActive})
	}
	for i := 1; i <= 5000; i++ {
		id := fmt.Sprintf("x%04d", i)
		all = append(all, &loaxa.Node{ID: id, Name: id, Area: "12346", Credentials: loaxa.CredentialsActive})
	}
	if err := nodes.CreateNodes(ctx, all); err != nil {
		t.Fatal(err)
	}
	create := func(node, kind string, facts loaxa.AlarmFacts, at time.Time) *loaxa.Alarm {
		a := &loaxa.Alarm{Kind: kind, Severity: loaxa.AlarmSeverity(kind), Node: node, Area: "12346", Detail: loaxa.AlarmDetail(kind, facts), Facts: facts, Start: at}
		if err := alarms.CreateAlarm(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := map[string]*loaxa.Alarm{}
	// n1: door open, as the monitor leaves it (alarm and node fault).
	old["n1"] = create("n1", loaxa.AlarmDoorOpen, loaxa.AlarmFacts{}, t0)
	if err := nodes.UpdateNodeStatus(ctx, "n1", func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOnline, t0, 60000
		s.Faults = []loaxa.Fault{{Kind: loaxa.AlarmDoorOpen, Since: t0, Detail: old["n1"].Detail}}
	}); err != nil {
		t.Fatal(err)
	}
	// n2: offline since t0, its offline alarm open.
	old["n2"] = create("n2", loaxa.AlarmOffline, loaxa.AlarmFacts{LastContact: t0.UTC()}, t0.Add(10*time.Minute))
	if err := nodes.UpdateNodeStatus(ctx, "n2", func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOffline, t0, 60000
	}); err != nil {
		t.Fatal(err)
	}
	// The typhoon: every other cluster on its battery, then the battery low.
	at := t0.Add(time.Hour)
	for i := 1; i <= 5000; i++ {
		id := fmt.Sprintf("x%04d", i)
		create(id, loaxa.AlarmMainsOff, loaxa.AlarmFacts{}, at)
		create(id, loaxa.AlarmBatteryLow, loaxa.AlarmFacts{BatteryVolts: ptr(11.6)}, at)
	}
	clk.Set(at.Add(time.Hour))
	return db, clk, old
}

// communeStore opens a store on disk in dir, on a fake clock at t0, with
// one commune, Xã Tiên Thắng (12346).
func communeStore(tb testing.TB, dir string) (*bolt.DB, *clock.Fake) {
	tb.Helper()
	clk := clock.NewFake(t0)
	db := bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	db.Now = clk.Now
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := bolt.NewAreaService(db).CreateArea(context.Background(), &loaxa.Area{ID: "12346", Name: "Xã Tiên Thắng"}); err != nil {
		tb.Fatal(err)
	}
	return db, clk
}

// openMonitor is a monitor opened on db, as a controller starting.
func openMonitor(t *testing.T, db *bolt.DB, clk *clock.Fake) *health.Monitor {
	t.Helper()
	alarms := bolt.NewAlarmService(db)
	m := health.NewMonitor()
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = clk, bolt.NewNodeService(db), alarms, alarms, &fakeMessenger{cmds: map[string][]protocol.Command{}}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestRestartDuringATyphoonTakesBackEveryOpenAlarm: the controller
// restarts in the middle of a typhoon with 10,002 alarms open in the
// province. The monitor took back only the 10,000 newest (a listing's
// most): the door alarm of n1 never ended once the door was closed, n2
// still offline got a second offline alarm, and the area's health and the
// open alarm count stopped at 10,000. The monitor must take back every
// open alarm.
func TestRestartDuringATyphoonTakesBackEveryOpenAlarm(t *testing.T) {
	db, clk, old := typhoonStore(t)
	ctx := context.Background()
	nodes, alarms := bolt.NewNodeService(db), bolt.NewAlarmService(db)
	m := openMonitor(t, db, clk)
	if st := m.Status(); st.OpenAlarms != 10002 {
		t.Errorf("after the restart the monitor holds %d open alarms, the store has 10002", st.OpenAlarms)
	}
	// 5,000 battery-low and n2 offline; 5,000 mains-off and n1's door.
	h, err := m.AreaHealth(ctx, "12346")
	if err != nil {
		t.Fatal(err)
	}
	if h.Critical != 5001 || h.Warning != 5001 {
		t.Errorf("area health counts %d critical and %d warning alarms, want 5001 and 5001", h.Critical, h.Warning)
	}

	// n1 reconnects; the technician has closed the door.
	now := clk.Now()
	if err := nodes.UpdateNodeStatus(ctx, "n1", func(s *loaxa.NodeStatus) { s.LastSeen, s.State = now, loaxa.NodeOnline }); err != nil {
		t.Fatal(err)
	}
	st := online(healthy())
	st.DiskFreeBytes = ptr(int64(1 << 30))
	m.ObserveState(ctx, "n1", &st, now)
	if door, err := alarms.FindAlarmByID(ctx, old["n1"].ID); err != nil {
		t.Fatal(err)
	} else if door.Open() {
		t.Errorf("door of n1 closed after the restart, yet its alarm %s (%s since %v) stays open", door.ID, door.Kind, door.Start)
	}

	// n2 is still offline: it keeps the one offline alarm it had.
	m.SweepNow(ctx)
	as, err := alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n2", Kind: loaxa.AlarmOffline, Open: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != old["n2"].ID {
		var ids []string
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		t.Errorf("n2 offline: open offline alarms %v, want only %s", ids, old["n2"].ID)
	}
}

// TestRestartEndsASecondAlarmOfTheSameKind: a monitor that had not taken
// back every open alarm opened a second one for a node and kind that had
// one. The next start keeps the first and ends the second, so the node
// has one alarm per condition and the second does not stay open for good.
func TestRestartEndsASecondAlarmOfTheSameKind(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.nodes.UpdateNodeStatus(ctx, "n2", func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen, s.HeartbeatMS = loaxa.NodeOffline, t0, 60000
	}); err != nil {
		t.Fatal(err)
	}
	facts := loaxa.AlarmFacts{LastContact: t0.UTC()}
	var offline []*loaxa.Alarm
	for _, at := range []time.Time{t0.Add(10 * time.Minute), t0.Add(time.Hour)} {
		a := &loaxa.Alarm{Kind: loaxa.AlarmOffline, Severity: loaxa.AlarmSeverity(loaxa.AlarmOffline), Node: "n2", Area: "12346",
			Detail: loaxa.AlarmDetail(loaxa.AlarmOffline, facts), Facts: facts, Start: at}
		if err := w.alarms.CreateAlarm(ctx, a); err != nil {
			t.Fatal(err)
		}
		offline = append(offline, a)
	}
	w.clock.Advance(2 * time.Hour)
	m := health.NewMonitor()
	m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = w.clock, w.nodes, w.alarms, w.alarms, w.msgs
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	as, err := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n2", Open: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != offline[0].ID {
		t.Errorf("after the restart n2 has %d open alarms, want only the first offline one, %s", len(as), offline[0].ID)
	}
	if st := m.Status(); st.OpenAlarms != 1 {
		t.Errorf("the monitor holds %d open alarms, want 1", st.OpenAlarms)
	}
	m.SweepNow(ctx)
	if as, _ := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n2", Open: "open"}); len(as) != 1 {
		t.Errorf("after a sweep n2 has %d open alarms, want 1", len(as))
	}
}

// crashStore is a store at path with area 12346 and node n1 whose node
// statuses are written only when flushed (Snapshot), as if the status
// interval never passed.
func crashStore(t *testing.T, clk *clock.Fake, path string) *bolt.DB {
	t.Helper()
	db := bolt.NewDB(path)
	db.Now = clk.Now
	db.StatusInterval = -1
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "12346", Name: "Xã Tiên Thắng"}); err != nil {
		t.Fatal(err)
	}
	if err := bolt.NewNodeService(db).CreateNode(ctx, &loaxa.Node{ID: "n1", Name: "n1", Area: "12346", Credentials: loaxa.CredentialsActive}); err != nil {
		t.Fatal(err)
	}
	return db
}

// crash returns the store at path as a controller that crashed now would
// find it when it starts again: what is on disk, not what was in memory.
func crash(t *testing.T, clk *clock.Fake, path string) *bolt.DB {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(filepath.Dir(path), "after-crash.db")
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db := bolt.NewDB(crashed)
	db.Now = clk.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// observe hands n1's state to m as the ingest does: status stored first.
func observe(t *testing.T, m *health.Monitor, db *bolt.DB, clk *clock.Fake, st protocol.State) {
	t.Helper()
	now := clk.Now()
	if err := bolt.NewNodeService(db).UpdateNodeStatus(context.Background(), "n1", func(s *loaxa.NodeStatus) { s.LastSeen, s.State = now, loaxa.NodeOnline }); err != nil {
		t.Fatal(err)
	}
	m.ObserveState(context.Background(), "n1", &st, now)
}

// openAlarms returns n1's open alarms in db.
func openAlarms(t *testing.T, db *bolt.DB) []*loaxa.Alarm {
	t.Helper()
	as, err := bolt.NewAlarmService(db).FindAlarms(context.Background(), loaxa.AlarmFilter{Node: "n1", Open: "open"})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// TestAlarmOpenedBeforeACrashEnds: a controller that crashes loses the
// node statuses changed since the last flush (docs/fleet-health.md "Where
// the status is kept"), but not the alarms, which are stored at once. An
// alarm opened within that interval is open again after the restart while
// the node's faults no longer list it; the fault is taken back from the
// alarm, so the alarm ends when the technician fixes the board. It never
// ended: the monitor ends an alarm only for a fault it holds.
func TestAlarmOpenedBeforeACrashEnds(t *testing.T) {
	clk := clock.NewFake(t0)
	path := filepath.Join(t.TempDir(), "loaxa.db")
	db := crashStore(t, clk, path)
	m := openMonitor(t, db, clk)
	open := healthy()
	open.DoorOpen = ptr(true)
	observe(t, m, db, clk, online(open))
	if as := openAlarms(t, db); len(as) != 1 {
		t.Fatalf("door open: %d open alarms, want 1", len(as))
	}

	// The controller crashes before the status is flushed.
	db2 := crash(t, clk, path)
	m2 := openMonitor(t, db2, clk)
	if n, err := bolt.NewNodeService(db2).FindNodeByID(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	} else if len(n.Status.Faults) != 1 || n.Status.Faults[0].Kind != loaxa.AlarmDoorOpen {
		t.Errorf("after the restart n1's status lists faults %+v, want the open alarm's %s", n.Status.Faults, loaxa.AlarmDoorOpen)
	}
	// The node reconnects; the technician has closed the door.
	clk.Advance(10 * time.Minute)
	observe(t, m2, db2, clk, online(healthy()))
	if as := openAlarms(t, db2); len(as) != 0 {
		t.Fatalf("door closed after the restart, yet %d alarm(s) still open: %s %s since %s", len(as), as[0].ID, as[0].Kind, as[0].Start)
	}
}

// TestAlarmEndedBeforeACrashOpensAgain is the other half. During a
// typhoon the mains of n1 go off (alarm and fault; the status is
// flushed), come back (the alarm ends, stored at once; the status without
// the fault not flushed yet), and the controller crashes. After the
// restart the node reconnects with the mains off again, and no alarm
// opened: the stale fault in the stored status made the monitor take the
// condition for one it had already raised, until the mains came back and
// went off once more. A fault whose alarm has ended is dropped at start:
// the node's next state decides.
func TestAlarmEndedBeforeACrashOpensAgain(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	path := filepath.Join(t.TempDir(), "loaxa.db")
	db := crashStore(t, clk, path)
	m := openMonitor(t, db, clk)
	off := healthy()
	off.Mains, off.Charging = ptr(false), ptr(false)
	observe(t, m, db, clk, online(off))
	if as := openAlarms(t, db); len(as) != 1 {
		t.Fatalf("mains off: %d open alarms, want 1", len(as))
	}
	// The status with its mains-off fault is flushed.
	if err := db.Snapshot(ctx, func(loaxa.Snapshot) error { return nil }); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	observe(t, m, db, clk, online(healthy())) // mains back
	if as := openAlarms(t, db); len(as) != 0 {
		t.Fatalf("mains back: %d open alarms, want 0", len(as))
	}

	// The controller crashes before the next flush.
	db2 := crash(t, clk, path)
	m2 := openMonitor(t, db2, clk)
	if n, err := bolt.NewNodeService(db2).FindNodeByID(ctx, "n1"); err != nil {
		t.Fatal(err)
	} else if len(n.Status.Faults) != 0 {
		t.Errorf("after the restart n1's status lists faults %+v whose alarms had ended", n.Status.Faults)
	}
	// The node reconnects: the mains are off again.
	clk.Advance(time.Minute)
	observe(t, m2, db2, clk, online(off))
	if as := openAlarms(t, db2); len(as) != 1 || as[0].Kind != loaxa.AlarmMainsOff {
		n, _ := bolt.NewNodeService(db2).FindNodeByID(ctx, "n1")
		t.Errorf("mains off after the restart: %d open alarms, want one %s; the node's faults say %+v", len(as), loaxa.AlarmMainsOff, n.Status.Faults)
	}
}
