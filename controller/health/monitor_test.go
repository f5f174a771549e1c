package health_test

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is 02:00 in Hải Phòng.
var t0 = time.Date(2026, 3, 2, 2, 0, 0, 0, time.FixedZone("+07", 7*3600))

type fakeMessenger struct {
	mu   sync.Mutex
	cmds map[string][]protocol.Command
}

func (f *fakeMessenger) PublishDesired(context.Context, *protocol.DesiredState) error { return nil }

func (f *fakeMessenger) SendNodeCommand(_ context.Context, node string, cmd protocol.Command, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds[node] = append(f.cmds[node], cmd)
	return nil
}

type world struct {
	t      *testing.T
	clock  *clock.Fake
	nodes  *bolt.NodeService
	areas  *bolt.AreaService
	alarms *bolt.AlarmService
	m      *health.Monitor
	msgs   *fakeMessenger
}

// newWorld is a monitor over a real store with area 12346 and nodes n1, n2.
func newWorld(t *testing.T, configure ...func(*health.Config)) *world {
	t.Helper()
	clk := clock.NewFake(t0)
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Now = clk.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	areas := bolt.NewAreaService(db)
	if err := areas.CreateArea(ctx, &loaxa.Area{ID: "12346", Name: "Xã Tiên Thắng"}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, clock: clk, nodes: bolt.NewNodeService(db), areas: areas, alarms: bolt.NewAlarmService(db), msgs: &fakeMessenger{cmds: map[string][]protocol.Command{}}}
	for _, id := range []string{"n1", "n2"} {
		if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "12346", Credentials: loaxa.CredentialsActive}); err != nil {
			t.Fatal(err)
		}
	}
	w.m = health.NewMonitor()
	for _, f := range configure {
		f(&w.m.Config)
	}
	w.m.Clock, w.m.Nodes, w.m.Alarms, w.m.Tests, w.m.Messenger, w.m.Areas = clk, w.nodes, w.alarms, w.alarms, w.msgs, areas
	if err := w.m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.m.Close)
	return w
}

// state delivers a state of node as the ingest does: status stored first.
func (w *world) state(node string, st protocol.State) {
	w.t.Helper()
	now := w.clock.Now()
	err := w.nodes.UpdateNodeStatus(context.Background(), node, func(s *loaxa.NodeStatus) {
		s.State = loaxa.NodeOffline
		if st.Status == protocol.StatusOnline || s.LastSeen.IsZero() {
			s.LastSeen = now // a Last Will is no contact from the node
		}
		if st.Status == protocol.StatusOnline {
			s.State = loaxa.NodeOnline
		}
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.m.ObserveState(context.Background(), node, &st, now)
}

func online(b protocol.Board) protocol.State {
	return protocol.State{Status: protocol.StatusOnline, HeartbeatMS: 60000, Board: &b}
}

// open returns the kinds of node's open alarms.
func (w *world) open(node string) map[string]*loaxa.Alarm {
	w.t.Helper()
	as, err := w.alarms.FindAlarms(context.Background(), loaxa.AlarmFilter{Node: node, Open: "open"})
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]*loaxa.Alarm{}
	for _, a := range as {
		out[a.Kind] = a
	}
	return out
}

func (w *world) node(id string) *loaxa.Node {
	w.t.Helper()
	n, err := w.nodes.FindNodeByID(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// healthy is a board with every sensor in range.
func healthy() protocol.Board {
	return protocol.Board{
		Amplifier: false, AmplifierCommand: ptr(false), AmplifierFault: ptr(false), SpeakerLine: protocol.LineOK, SpeakerOhms: ptr(50.0),
		Mains: ptr(true), BatteryVolts: ptr(13.4), Charging: ptr(true), TemperatureC: ptr(35.0), DoorOpen: ptr(false), RSSIDBm: ptr(-75), Link: "4g",
	}
}

// TestClockUncertainMustLast: a clock uncertain for minutes at a time,
// with a good measurement between (an overloaded controller at busy
// moments), opens no alarm; the 10 minutes count from the first
// uncertain state after the last good one.
func TestClockUncertainMustLast(t *testing.T) {
	w := newWorld(t)
	st := online(healthy())
	st.DiskFreeBytes = ptr(int64(1 << 30))
	for i, us := range []int64{250_000, 250_000, 20_000, 250_000, 250_000, 250_000} {
		st.ClockUncertaintyUS = us
		w.state("n1", st)
		if open := w.open("n1"); len(open) != 0 {
			t.Fatalf("state %d (±%d ms): alarms %v, want none", i, us/1000, open)
		}
		w.clock.Advance(4 * time.Minute)
	}
	// 12 minutes since the first uncertain state after the good one.
	w.state("n1", st)
	if open := w.open("n1"); open[loaxa.AlarmClockUncertain] == nil {
		t.Errorf("uncertain for 12 min: alarms %v, want %s", open, loaxa.AlarmClockUncertain)
	}
}

// TestLastingConditionsDoNotLastWhileOffline: a node reported its clock
// uncertain (or content missing) once, then dropped off, by its Last Will
// or silent until the sweep found it offline. It came back hours later,
// its first state still saying so (a clock not measured meanwhile,
// content not downloaded yet), and the alarm opened at once: the hours
// offline counted as hours over the bound, for every node at once after a
// province-wide outage. Going offline ends the run of states: the count
// starts again at the first state back.
func TestLastingConditionsDoNotLastWhileOffline(t *testing.T) {
	conditions := []struct {
		kind  string
		fault func(*protocol.State)
		need  time.Duration
		away  time.Duration
	}{
		{loaxa.AlarmClockUncertain, func(s *protocol.State) { s.ClockUncertaintyUS = 900_000 }, 10 * time.Minute, 5 * time.Hour},
		{loaxa.AlarmContentMissing, func(s *protocol.State) { s.ContentMissing = []string{strings.Repeat("ab", 32)} }, 6 * time.Hour, 7 * time.Hour},
	}
	ways := []struct {
		name    string
		dropOff func(w *world)
	}{
		{"last will", func(w *world) { w.state("n1", protocol.State{Status: protocol.StatusOffline}) }},
		{"sweep", func(w *world) {
			w.clock.Advance(6 * time.Minute) // over 5 heartbeats of silence
			w.m.SweepNow(context.Background())
			if got := w.m.Status().Nodes[loaxa.NodeOffline]; got != 1 {
				w.t.Fatalf("silent for 6 heartbeats: %d nodes offline, want 1", got)
			}
		}},
	}
	for _, c := range conditions {
		for _, way := range ways {
			t.Run(c.kind+"/"+way.name, func(t *testing.T) {
				w := newWorld(t)
				good := online(healthy())
				good.DiskFreeBytes = ptr(int64(1 << 30))
				good.ClockUncertaintyUS = 40_000
				broken := good
				c.fault(&broken)
				w.state("n1", good)
				w.clock.Advance(time.Minute)
				w.state("n1", broken) // the run starts
				w.clock.Advance(time.Minute)
				way.dropOff(w)
				w.clock.Advance(c.away)
				w.state("n1", broken) // back
				if a := w.open("n1")[c.kind]; a != nil {
					t.Fatalf("first state after %v offline: %s opened at once (since %v), want none before %v of online states", c.away, a.Kind, a.Start, c.need)
				}
				// The count starts again from that state.
				w.clock.Advance(c.need / 2)
				w.state("n1", broken)
				if a := w.open("n1")[c.kind]; a != nil {
					t.Fatalf("%v after coming back: %s open, want none before %v", c.need/2, a.Kind, c.need)
				}
				w.clock.Advance(c.need / 2)
				w.state("n1", broken)
				if w.open("n1")[c.kind] == nil {
					t.Errorf("%v of online states over the bound after coming back: no %s alarm", c.need, c.kind)
				}
			})
		}
	}
}

// TestFaultsRaiseAndClearAlarms: each condition of the board (and of the
// node) opens its alarm and a node fault with since-when; once it is fixed
// both end.
func TestFaultsRaiseAndClearAlarms(t *testing.T) {
	// detail is the English wording; facts what it is made of, for a
	// console to word in its own language.
	tests := []struct {
		kind   string
		fault  func(*protocol.State)
		detail string
		facts  loaxa.AlarmFacts
	}{
		{loaxa.AlarmSpeakerOpen, func(s *protocol.State) { s.Board.SpeakerLine, s.Board.SpeakerOhms = protocol.LineOpen, nil },
			"no load on the speaker line", loaxa.AlarmFacts{}},
		{loaxa.AlarmSpeakerShort, func(s *protocol.State) { s.Board.SpeakerLine, s.Board.SpeakerOhms = protocol.LineShort, ptr(0.4) },
			"speaker line shorted (0.4 Ω)", loaxa.AlarmFacts{SpeakerOhms: ptr(0.4)}},
		{loaxa.AlarmAmplifier, func(s *protocol.State) { s.Board.AmplifierFault = ptr(true) },
			"amplifier reports a fault", loaxa.AlarmFacts{}},
		{loaxa.AlarmRelay, func(s *protocol.State) { s.Board.AmplifierCommand = ptr(true) },
			"relay commanded on, feedback off", loaxa.AlarmFacts{RelayCommanded: ptr(true), RelayFeedback: ptr(false)}},
		{loaxa.AlarmMainsOff, func(s *protocol.State) { s.Board.Mains, s.Board.Charging = ptr(false), ptr(false) },
			"running on the battery", loaxa.AlarmFacts{}},
		{loaxa.AlarmBatteryLow, func(s *protocol.State) { s.Board.BatteryVolts = ptr(11.6) },
			"battery 11.60 V", loaxa.AlarmFacts{BatteryVolts: ptr(11.6)}},
		{loaxa.AlarmOverheat, func(s *protocol.State) { s.Board.TemperatureC = ptr(75.0) },
			"enclosure 75.0 °C", loaxa.AlarmFacts{TemperatureC: ptr(75.0)}},
		{loaxa.AlarmDoorOpen, func(s *protocol.State) { s.Board.DoorOpen = ptr(true) },
			"enclosure door open", loaxa.AlarmFacts{}},
		{loaxa.AlarmWeakSignal, func(s *protocol.State) { s.Board.RSSIDBm, s.Board.Link = ptr(-110), "2g" },
			"signal -110 dBm on 2g", loaxa.AlarmFacts{RSSIDBm: ptr(-110), Link: "2g"}},
		{loaxa.AlarmDiskLow, func(s *protocol.State) { s.DiskFreeBytes = ptr(int64(10 << 20)) },
			"10 MiB free", loaxa.AlarmFacts{DiskFreeBytes: ptr(int64(10 << 20))}},
		{loaxa.AlarmStorageDamaged, func(s *protocol.State) { s.StorageDamaged = 2 },
			"2 files damaged on the board's storage in 24 h", loaxa.AlarmFacts{DamagedFiles: 2}},
		{loaxa.AlarmLinkDeaf, func(s *protocol.State) { s.LinkDeaf = 1 },
			"the broker stopped delivering to the node while connected (1× in 24 h); it reconnected", loaxa.AlarmFacts{DeafTimes: 1}},
		{loaxa.AlarmNoSoundDevice, func(s *protocol.State) { s.NoSoundDevice = `open sound device: ALSA error: cannot find card "0"` },
			`no sound device: open sound device: ALSA error: cannot find card "0"`, loaxa.AlarmFacts{Error: `open sound device: ALSA error: cannot find card "0"`}},
		{loaxa.AlarmStorageFailed, func(s *protocol.State) { s.StorageFault = "open node store: read-only file system" },
			"store in memory: open node store: read-only file system", loaxa.AlarmFacts{Error: "open node store: read-only file system"}},
		{loaxa.AlarmClockOffset, func(s *protocol.State) { s.ClockOffsetMS = -5000 },
			"clock -5000 ms off", loaxa.AlarmFacts{ClockOffsetMS: ptr(int64(-5000))}},
		{loaxa.AlarmClockUncertain, func(s *protocol.State) { s.ClockUncertaintyUS = 180_000 },
			"corrected clock may be more than 100 ms off for 10m0s", loaxa.AlarmFacts{UncertaintyBoundMS: 100, UncertainForS: 600}},
		{loaxa.AlarmContentMissing, func(s *protocol.State) {
			s.ContentMissing = []string{strings.Repeat("ab", 32), strings.Repeat("cd", 32)}
		},
			"2 contents missing for 6h0m0s", loaxa.AlarmFacts{MissingContent: 2, MissingForS: 6 * 3600}},
	}
	// The kinds that open only once the fault has lasted a while.
	lasting := map[string]time.Duration{loaxa.AlarmClockUncertain: 10 * time.Minute, loaxa.AlarmContentMissing: 6 * time.Hour}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			w := newWorld(t)
			changes, cancel := w.m.SubscribeAlarms(nil)
			defer cancel()
			good := online(healthy())
			good.DiskFreeBytes = ptr(int64(1 << 30))
			good.ClockUncertaintyUS = 40_000 // a clock measured over 4G
			w.state("n1", good)
			if open := w.open("n1"); len(open) != 0 {
				t.Fatalf("healthy node has alarms: %v", open)
			}
			w.clock.Advance(time.Minute)
			broken := online(healthy())
			broken.DiskFreeBytes = ptr(int64(1 << 30))
			broken.ClockUncertaintyUS = 40_000
			tt.fault(&broken)
			if need := lasting[tt.kind]; need > 0 {
				// An overloaded controller or network makes every clock
				// uncertain for a few minutes, new content is missing
				// while nodes spread their downloads: no alarm before
				// the condition has lasted.
				for range 2 {
					w.state("n1", broken)
					if open := w.open("n1"); len(open) != 0 {
						t.Fatalf("alarms while the fault is under %v old: %v", need, open)
					}
					w.clock.Advance(need / 2)
				}
			}
			w.state("n1", broken)
			start := w.clock.Now()
			open := w.open("n1")
			a := open[tt.kind]
			if len(open) != 1 || a == nil || !a.Start.Equal(start) || a.Area != "12346" || a.Severity != loaxa.AlarmSeverity(tt.kind) {
				t.Fatalf("open alarms %v, want one %s from %v", open, tt.kind, start)
			}
			if a.Detail != tt.detail || !reflect.DeepEqual(a.Facts, tt.facts) {
				t.Errorf("alarm says %q with facts %s, want %q with %s", a.Detail, jsonOf(a.Facts), tt.detail, jsonOf(tt.facts))
			}
			if f := w.node("n1").Status.Faults; len(f) != 1 || f[0].Kind != tt.kind || !f[0].Since.Equal(start) ||
				f[0].Detail != tt.detail || !reflect.DeepEqual(f[0].Facts, tt.facts) {
				t.Errorf("node faults %+v", f)
			}
			// The same fault again (a heartbeat) opens nothing new.
			w.clock.Advance(time.Minute)
			w.state("n1", broken)
			if all, _ := w.alarms.FindAlarms(context.Background(), loaxa.AlarmFilter{}); len(all) != 1 {
				t.Errorf("a repeated fault made %d alarms", len(all))
			}
			w.clock.Advance(time.Minute)
			w.state("n1", good)
			if open := w.open("n1"); len(open) != 0 {
				t.Errorf("alarms still open after the fix: %v", open)
			}
			ended, err := w.alarms.FindAlarmByID(context.Background(), a.ID)
			if err != nil || !ended.End.Equal(w.clock.Now().UTC()) {
				t.Errorf("ended alarm %+v, %v", ended, err)
			}
			if f := w.node("n1").Status.Faults; len(f) != 0 {
				t.Errorf("node faults after the fix: %+v", f)
			}
			// The stream saw it open and end.
			var seen []bool
			for len(seen) < 2 {
				select {
				case c := <-changes:
					seen = append(seen, c.Open())
				default:
					t.Fatalf("stream saw %v, want open then ended", seen)
				}
			}
			if !seen[0] || seen[1] {
				t.Errorf("stream saw %v, want [true false]", seen)
			}
		})
	}
}

// TestSensorsNearTheThresholdDoNotFlap: during a typhoon a 4G cluster's
// signal hovered around −105 dBm (rain fade), and a battery sagged under the
// amplifier's load below 11.8 V and recovered when it stopped; on a sunny
// afternoon a box's enclosure hovered around 65 °C: every state report
// opened or ended the alarm, and the officers' alarm list and stream filled
// with open/end pairs of the same cluster. An alarm opens past the threshold
// and ends only once the value is back past the threshold by a margin
// (0.4 V, 5 dB, 5 °C); a value in that band opens nothing.
func TestSensorsNearTheThresholdDoNotFlap(t *testing.T) {
	tests := []struct {
		kind string
		set  func(*protocol.Board, float64)
		// fault is just past the threshold, near just short of it, in
		// inside the margin, clear past the margin.
		fault, near, in, clear float64
	}{
		{loaxa.AlarmBatteryLow, func(b *protocol.Board, v float64) { b.BatteryVolts = ptr(v) }, 11.75, 11.85, 12.1, 12.25},
		{loaxa.AlarmWeakSignal, func(b *protocol.Board, v float64) { b.RSSIDBm = ptr(int(v)) }, -106, -104, -101, -99},
		{loaxa.AlarmOverheat, func(b *protocol.Board, v float64) { b.TemperatureC = ptr(v) }, 65.5, 64.5, 61, 59.5},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			state := func(v float64) {
				b := healthy()
				tt.set(&b, v)
				st := online(b)
				st.DiskFreeBytes = ptr(int64(1 << 30))
				w.state("n1", st)
				w.clock.Advance(30 * time.Second)
			}
			// Inside the band from a healthy start: no alarm.
			state(tt.in)
			if open := w.open("n1"); len(open) != 0 {
				t.Fatalf("%v, short of the threshold: alarms %v, want none", tt.in, open)
			}
			for range 10 {
				state(tt.fault)
				state(tt.near)
			}
			all, err := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n1", Kind: tt.kind})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 || !all[0].Open() {
				t.Fatalf("20 states alternating %v and %v opened %d alarms (open: %v), want one that stays open", tt.fault, tt.near, len(all), w.open("n1"))
			}
			state(tt.in)
			if w.open("n1")[tt.kind] == nil {
				t.Fatalf("%v, inside the margin, ended the alarm", tt.in)
			}
			state(tt.clear)
			if open := w.open("n1"); len(open) != 0 {
				t.Errorf("%v, past the margin: alarms %v, want none", tt.clear, open)
			}
			if f := w.node("n1").Status.Faults; len(f) != 0 {
				t.Errorf("node faults after the value came back: %+v", f)
			}
		})
	}
}

// TestStateAlarmsNotWrittenAreWrittenAtTheNextState: a cluster's door was
// found open while the alarm store failed (a full disk): the node's fault
// was recorded, its alarm not, and the later states with the door still
// open opened nothing, so no technician heard of the open door until it
// closed and opened again. The other way, an alarm whose end was not
// written stayed open after the door closed. The next state stores what
// could not be: one alarm, from when the door was found open, that ends
// once the door is closed.
func TestStateAlarmsNotWrittenAreWrittenAtTheNextState(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	closed := online(healthy())
	opened := online(healthy())
	opened.Board.DoorOpen = ptr(true)
	w.state("n1", closed)
	w.clock.Advance(time.Minute)

	w.m.Alarms = failingAlarms{w.alarms}
	start := w.clock.Now()
	w.state("n1", opened)
	if open := w.open("n1"); len(open) != 0 {
		t.Fatalf("alarms stored while the store fails: %v", open)
	}
	w.m.Alarms = w.alarms
	for range 2 {
		w.clock.Advance(time.Minute)
		w.state("n1", opened)
	}
	all, err := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Kind != loaxa.AlarmDoorOpen || !all[0].Open() || !all[0].Start.Equal(start) {
		t.Fatalf("after two more states with the door open: alarms %+v, want one door-open alarm open since %v", all, start)
	}

	w.m.Alarms = failingAlarms{w.alarms}
	w.clock.Advance(time.Minute)
	w.state("n1", closed)
	if w.open("n1")[loaxa.AlarmDoorOpen] == nil {
		t.Fatal("the alarm ended while the store fails")
	}
	w.m.Alarms = w.alarms
	w.clock.Advance(time.Minute)
	w.state("n1", closed)
	if open := w.open("n1"); len(open) != 0 || w.m.Status().OpenAlarms != 0 {
		t.Errorf("after the next state with the door closed: alarms %v (%d open in the monitor), want none", open, w.m.Status().OpenAlarms)
	}
	if all, _ := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "n1"}); len(all) != 1 {
		t.Errorf("%d alarms in all, want 1", len(all))
	}
}

// TestSubscriberSeesOnlyItsAreas: a commune console's subscription took
// every area's changes, so an outage in another district filled it and
// closed it (read every alarm again) although none of its own changed. A
// subscriber of some areas gets their changes only; the others take no
// room in its channel.
func TestSubscriberSeesOnlyItsAreas(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.areas.CreateArea(ctx, &loaxa.Area{ID: "12347", Name: "Xã Tiên Minh"}); err != nil {
		t.Fatal(err)
	}
	if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: "n3", Name: "n3", Area: "12347", Credentials: loaxa.CredentialsActive}); err != nil {
		t.Fatal(err)
	}
	changes, cancel := w.m.SubscribeAlarms(func(area string) bool { return area == "12346" })
	defer cancel()
	st := online(healthy())
	st.Board.DoorOpen = ptr(true)
	w.state("n3", st)
	door := w.open("n3")[loaxa.AlarmDoorOpen]
	if door == nil {
		t.Fatal("no door-open alarm on n3")
	}
	for range 300 {
		if _, err := w.m.AckAlarm(ctx, door.ID, "ky-thuat"); err != nil {
			t.Fatal(err)
		}
	}
	w.state("n1", st)
	select {
	case a, ok := <-changes:
		if !ok || a.Node != "n1" || a.Kind != loaxa.AlarmDoorOpen {
			t.Errorf("first change %+v (open %v), want n1's door-open alarm", a, ok)
		}
	default:
		t.Fatal("n1's door-open alarm did not reach the subscriber of 12346")
	}
	select {
	case a, ok := <-changes:
		t.Errorf("a second change %+v (open %v), want none", a, ok)
	default:
	}
}

// TestSubscriberThatFellBehindIsTold: a typhoon cut off thousands of
// clusters and one sweep opened their alarms at once; the console's stream
// holds 256 changes and lost the rest without a word, so it showed part of
// the outage until its re-read 30 s later. A subscriber that falls behind
// gets the changes it holds, then its channel closes, so it knows to read
// the alarms again; one that keeps up is not affected, and nothing waits
// for the slow one.
func TestSubscriberThatFellBehindIsTold(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	slow, cancelSlow := w.m.SubscribeAlarms(nil)
	defer cancelSlow()
	st := online(healthy())
	st.Board.DoorOpen = ptr(true)
	w.state("n1", st)
	door := w.open("n1")[loaxa.AlarmDoorOpen]
	if door == nil {
		t.Fatal("no door-open alarm")
	}
	fast, cancelFast := w.m.SubscribeAlarms(nil)
	defer cancelFast()
	const changes = 300 // the door-open alarm and its acknowledgements
	for range changes {
		if _, err := w.m.AckAlarm(ctx, door.ID, "ky-thuat"); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-fast:
			if a.ID != door.ID || a.AckBy != "ky-thuat" {
				t.Fatalf("fast reader got %+v, want the acknowledged door-open alarm", a)
			}
		default:
			t.Fatal("a reader that keeps up lost a change")
		}
	}
	held := 0
	for {
		select {
		case _, ok := <-slow:
			if ok {
				held++
				continue
			}
			if held == 0 || held >= changes+1 {
				t.Errorf("the slow reader got %d of %d changes before its channel closed", held, changes+1)
			}
			return
		default:
			t.Fatalf("the slow reader got %d of %d changes and its channel is still open: it cannot know it lost the rest", held, changes+1)
		}
	}
}

// TestConfigRefusesNegativeMargins: a negative margin would end an alarm
// before its value is even back at the threshold.
func TestConfigRefusesNegativeMargins(t *testing.T) {
	for name, set := range map[string]func(*health.Config){
		"battery":  func(c *health.Config) { c.BatteryMarginVolts = -0.1 },
		"signal":   func(c *health.Config) { c.WeakSignalMarginDB = -1 },
		"overheat": func(c *health.Config) { c.OverheatMarginC = -5 },
	} {
		c := health.DefaultConfig()
		set(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "margin") {
			t.Errorf("%s: negative margin: %v, want an error about the margin", name, err)
		}
	}
	if err := health.DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// TestOfflineByHeartbeatTimeout: a half-open link sends no Last Will; the
// node goes stale after 2.5 missed heartbeats, offline after 5, raises the
// offline alarm after the threshold, and recovers with its next state.
func TestOfflineByHeartbeatTimeout(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.state("n1", online(healthy()))
	last := w.clock.Now()
	step := func(d time.Duration, want string) {
		t.Helper()
		w.clock.Advance(d)
		w.m.SweepNow(ctx)
		if got := w.node("n1").Status.State; got != want {
			t.Fatalf("at +%v: state %s, want %s", w.clock.Now().Sub(last), got, want)
		}
	}
	step(140*time.Second, loaxa.NodeOnline) // 2 beats missed: still online
	step(20*time.Second, loaxa.NodeStale)   // 160 s > 150 s
	step(150*time.Second, loaxa.NodeOffline)
	if len(w.open("n1")) != 0 {
		t.Fatal("offline alarm before the threshold")
	}
	step(5*time.Minute, loaxa.NodeOffline)
	a := w.open("n1")[loaxa.AlarmOffline]
	if a == nil || a.Severity != loaxa.SeverityCritical {
		t.Fatalf("no offline alarm 10 min after the last message: %v", w.open("n1"))
	}
	if !a.Facts.LastContact.Equal(last) || a.Detail != "no message since "+last.UTC().Format(time.RFC3339) {
		t.Errorf("offline alarm says %q, facts %s; last contact %v", a.Detail, jsonOf(a.Facts), last)
	}
	if st := w.m.Status(); st.Nodes[loaxa.NodeOffline] != 1 || st.OpenAlarms != 1 {
		t.Errorf("monitor status %+v", st)
	}
	w.clock.Advance(time.Minute)
	w.state("n1", online(healthy()))
	if got := w.node("n1").Status.State; got != loaxa.NodeOnline {
		t.Errorf("state after a message: %s", got)
	}
	if len(w.open("n1")) != 0 {
		t.Errorf("offline alarm still open: %v", w.open("n1"))
	}
	// n2 never connected: it stays "never", with no alarm.
	if got := w.node("n2").Status.State; got != loaxa.NodeNever && got != "" {
		t.Errorf("n2: %s", got)
	}
}

// TestOfflineByLastWill: the broker's Last Will makes the node offline at
// once; the alarm follows after the threshold.
func TestOfflineByLastWill(t *testing.T) {
	w := newWorld(t, func(c *health.Config) { c.OfflineAlarmAfter = 2 * time.Minute })
	ctx := context.Background()
	w.state("n1", online(healthy()))
	w.clock.Advance(time.Second)
	w.state("n1", protocol.State{Status: protocol.StatusOffline})
	if got := w.node("n1").Status.State; got != loaxa.NodeOffline {
		t.Fatalf("state after the Last Will: %s", got)
	}
	w.clock.Advance(time.Minute)
	w.m.SweepNow(ctx)
	if len(w.open("n1")) != 0 {
		t.Fatal("offline alarm before the threshold")
	}
	w.clock.Advance(time.Minute)
	w.m.SweepNow(ctx)
	if w.open("n1")[loaxa.AlarmOffline] == nil {
		t.Fatal("no offline alarm after the threshold")
	}
}

// TestOfflineAlarmCountsFromTheLastMessageBeforeTheWill: a board cut off
// says nothing; its Last Will comes once the broker's keep-alive ran out,
// 45 s later. The offline alarm said "no message since" the Will's arrival
// and opened the threshold after it, as if the board had spoken then; it
// now counts from the board's last message, as when the sweep finds a
// board silent.
func TestOfflineAlarmCountsFromTheLastMessageBeforeTheWill(t *testing.T) {
	w := newWorld(t, func(c *health.Config) { c.OfflineAlarmAfter = 2 * time.Minute })
	w.state("n1", online(healthy()))
	last := w.clock.Now()
	w.clock.Advance(45 * time.Second) // the keep-alive runs out
	w.state("n1", protocol.State{Status: protocol.StatusOffline})
	w.clock.Advance(2*time.Minute - 45*time.Second)
	w.m.SweepNow(context.Background())
	a := w.open("n1")[loaxa.AlarmOffline]
	if a == nil {
		t.Fatal("no offline alarm 2 min after the board's last message")
	}
	if !a.Facts.LastContact.Equal(last) || a.Detail != "no message since "+last.UTC().Format(time.RFC3339) {
		t.Errorf("offline alarm says %q, facts %s; the board's last message was at %v", a.Detail, jsonOf(a.Facts), last)
	}
}

// TestFailedToSound: a play failing for a hardware reason opens the alarm
// (once, even if the events come again); the next completed play ends it
// and is the node's last play.
func TestFailedToSound(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.state("n1", online(healthy()))
	at := w.clock.Now()
	failed := []protocol.Event{
		{Seq: 1, Type: protocol.EventFailed, At: at, Occurrence: "a1@x", Reason: protocol.ReasonAmplifier},
		{Seq: 2, Type: protocol.EventFailed, At: at, Occurrence: "a2@x", Reason: protocol.ReasonPreempted},
	}
	w.m.ObserveEvents(ctx, "n1", "e1", failed)
	a := w.open("n1")[loaxa.AlarmFailedToSound]
	if a == nil {
		t.Fatal("no failed-to-sound alarm")
	}
	if a.Facts.Occurrence != "a1@x" || a.Facts.Reason != protocol.ReasonAmplifier || a.Detail != "occurrence a1@x failed: amplifier" {
		t.Errorf("failed-to-sound alarm says %q, facts %s", a.Detail, jsonOf(a.Facts))
	}
	w.m.ObserveEvents(ctx, "n1", "e1", failed) // resent
	if all, _ := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{}); len(all) != 1 {
		t.Errorf("%d alarms", len(all))
	}
	done := at.Add(time.Hour)
	w.m.ObserveEvents(ctx, "n1", "e1", []protocol.Event{{Seq: 3, Type: protocol.EventCompleted, At: done, Occurrence: "a3@x"}})
	if len(w.open("n1")) != 0 {
		t.Errorf("alarm still open after a completed play")
	}
	if lp := w.node("n1").Status.LastPlay; !lp.Equal(done) {
		t.Errorf("last play %v, want %v", lp, done)
	}
	// A play cut off because the sound device was lost (the agent
	// restarts to open it again) opens it too; one cut off by another
	// play does not.
	w.m.ObserveEvents(ctx, "n1", "e1", []protocol.Event{{Seq: 4, Type: protocol.EventSuspended, At: done, Occurrence: "a4@x", Reason: protocol.ReasonPreempted}})
	if len(w.open("n1")) != 0 {
		t.Errorf("alarm open after a play was preempted")
	}
	w.m.ObserveEvents(ctx, "n1", "e1", []protocol.Event{{Seq: 5, Type: protocol.EventSuspended, At: done, Occurrence: "e1@x", Reason: protocol.ReasonAudioDevice}})
	if a := w.open("n1")[loaxa.AlarmFailedToSound]; a == nil || a.Facts.Reason != protocol.ReasonAudioDevice {
		t.Errorf("after a play cut off by the lost sound device: alarm %+v, want failed-to-sound for audio-device", a)
	}
}

// TestDailySelfTest: at the configured local time the monitor sends a
// silent self-test to every online node, once a day.
func TestDailySelfTest(t *testing.T) {
	w := newWorld(t, func(c *health.Config) { c.DailyTest = "03:00" })
	ctx := context.Background()
	w.state("n1", online(healthy()))
	w.clock.Set(t0.Add(59 * time.Minute)) // 02:59
	w.state("n1", online(healthy()))
	w.m.SweepNow(ctx)
	if runs, _ := w.alarms.FindSelfTests(ctx, 10); len(runs) != 0 {
		t.Fatalf("self-test before 03:00: %+v", runs)
	}
	w.clock.Advance(time.Minute)
	w.state("n1", online(healthy()))
	w.m.SweepNow(ctx)
	w.m.SweepNow(ctx)
	runs, _ := w.alarms.FindSelfTests(ctx, 10)
	if len(runs) != 1 || runs[0].Kind != protocol.TestSilent || runs[0].RequestedBy != health.RequestedBySchedule || len(runs[0].Nodes) != 1 || runs[0].Nodes[0] != "n1" {
		t.Fatalf("runs %+v", runs)
	}
	w.m.Close()
	w.msgs.mu.Lock()
	cmds := w.msgs.cmds["n1"]
	w.msgs.mu.Unlock()
	if len(cmds) != 1 || cmds[0].Name != protocol.CmdSelfTest || cmds[0].TestID != runs[0].ID {
		t.Errorf("commands %+v", cmds)
	}
}

// TestDailySelfTestNotAtStart: a controller started after the test time
// does not test the fleet the moment it starts.
func TestDailySelfTestNotAtStart(t *testing.T) {
	w := newWorld(t, func(c *health.Config) { c.DailyTest = "01:00" }) // t0 is 02:00
	ctx := context.Background()
	w.state("n1", online(healthy()))
	w.m.SweepNow(ctx)
	w.clock.Advance(5 * time.Second)
	w.m.SweepNow(ctx)
	if runs, _ := w.alarms.FindSelfTests(ctx, 10); len(runs) != 0 {
		t.Fatalf("self-test at start: %+v", runs)
	}
	w.clock.Set(t0.Add(23 * time.Hour)) // 01:00 the next day
	w.state("n1", online(healthy()))
	w.m.SweepNow(ctx)
	if runs, _ := w.alarms.FindSelfTests(ctx, 10); len(runs) != 1 {
		t.Fatalf("runs the next day at 01:00: %+v", runs)
	}
}

// gateNodes is a node store whose UpdateNodeStatus waits at a gate, and
// says how many calls are inside it at once.
type gateNodes struct {
	loaxa.NodeService
	entered chan string   // a call arrived (its node)
	gate    chan struct{} // closed: calls go on
}

func (g *gateNodes) UpdateNodeStatus(ctx context.Context, id string, fn func(*loaxa.NodeStatus)) error {
	g.entered <- id
	<-g.gate
	return g.NodeService.UpdateNodeStatus(ctx, id, fn)
}

// TestLastPlaysStoredTogether: the last play of two nodes' completed
// events is stored by both ingest workers at once (so their updates can
// share a commit), not one after the other under the monitor's lock; both
// are stored.
func TestLastPlaysStoredTogether(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	g := &gateNodes{NodeService: w.nodes, entered: make(chan string, 2), gate: make(chan struct{})}
	w.m.Nodes = g
	done := w.clock.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for _, id := range []string{"n1", "n2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.m.ObserveEvents(ctx, id, "e1", []protocol.Event{{Seq: 1, Type: protocol.EventCompleted, At: done, Occurrence: "a1@x"}})
		}()
	}
	inside := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(inside) < 2 {
		select {
		case id := <-g.entered:
			inside[id] = true
		case <-timeout:
			close(g.gate)
			wg.Wait()
			t.Fatalf("only %v stored its last play while the other waited", inside)
		}
	}
	close(g.gate)
	wg.Wait()
	for _, id := range []string{"n1", "n2"} {
		if lp := w.node(id).Status.LastPlay; !lp.Equal(done) {
			t.Errorf("%s last play %v, want %v", id, lp, done)
		}
	}
}

// TestSalvagedPlays: a play a node completed before its store was
// damaged, reported only now, is its last play unless it has played
// since; an old failure read back opens no alarm.
func TestSalvagedPlays(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.state("n1", online(healthy()))
	at := w.clock.Now()
	old := []protocol.Event{
		{Seq: 7, Type: protocol.EventCompleted, At: at.Add(-2 * time.Hour), Occurrence: "a1@x"},
		{Seq: 8, Type: protocol.EventCompleted, At: at.Add(-time.Hour), Occurrence: "a2@x"},
		{Seq: 9, Type: protocol.EventFailed, At: at.Add(-time.Hour), Occurrence: "a3@x", Reason: protocol.ReasonAmplifier},
	}
	w.m.ObserveSalvaged(ctx, "n1", old)
	if lp := w.node("n1").Status.LastPlay; !lp.Equal(at.Add(-time.Hour)) {
		t.Errorf("last play %v after the salvaged plays, want %v", lp, at.Add(-time.Hour))
	}
	if open := w.open("n1"); len(open) != 0 {
		t.Errorf("salvaged events opened alarms: %v", slices.Collect(maps.Keys(open)))
	}
	// A play since, then the same salvaged batch again: the later stays.
	w.m.ObserveEvents(ctx, "n1", "e2", []protocol.Event{{Seq: 1, Type: protocol.EventCompleted, At: at, Occurrence: "a4@x"}})
	w.m.ObserveSalvaged(ctx, "n1", old)
	if lp := w.node("n1").Status.LastPlay; !lp.Equal(at) {
		t.Errorf("last play %v after a salvaged batch older than a play since, want %v", lp, at)
	}
}

// TestRevokedNodeRaisesNoAlarm: a board revoked on purpose (stolen,
// retired) is cut off the broker; it stayed "online" until the sweep and
// then raised an offline alarm, and its open alarms stayed open, for no
// one to act on. It is offline without an alarm and its alarms end; once
// enrolled again, its state is taken as any node's.
func TestRevokedNodeRaisesNoAlarm(t *testing.T) {
	w := newWorld(t, func(c *health.Config) { c.OfflineAlarmAfter = 2 * time.Minute })
	ctx := context.Background()
	door := healthy()
	open := true
	door.DoorOpen = &open
	w.state("n1", online(door))
	if w.open("n1")[loaxa.AlarmDoorOpen] == nil {
		t.Fatal("no door-open alarm")
	}
	if _, err := w.nodes.RevokeNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	w.m.ReloadNodes(ctx)
	w.clock.Advance(10 * time.Minute)
	w.m.SweepNow(ctx)
	if got := w.open("n1"); len(got) != 0 {
		t.Errorf("alarms of the revoked node: %v, want none", slices.Collect(maps.Keys(got)))
	}
	if got := w.node("n1").Status.State; got != loaxa.NodeOffline {
		t.Errorf("revoked node's state %s, want offline", got)
	}
	// n2, silent as long, is alarmed as before.
	w.state("n2", online(healthy()))
	w.clock.Advance(10 * time.Minute)
	w.m.SweepNow(ctx)
	if w.open("n2")[loaxa.AlarmOffline] == nil {
		t.Error("no offline alarm for the node that was not revoked")
	}
	// Enrolled again: its state counts, and its door opens an alarm again.
	_, sec := loaxa.NewNodeSecret()
	if _, err := w.nodes.SetNodeSecret(ctx, "n1", sec); err != nil {
		t.Fatal(err)
	}
	w.state("n1", online(door))
	w.m.SweepNow(ctx)
	if w.open("n1")[loaxa.AlarmDoorOpen] == nil {
		t.Error("no door-open alarm once the node is enrolled again")
	}
}

// TestAreaUnheardOpensAnAlarm: a cluster moved to another commune whose
// broker ACL was not updated reported areas_unheard for hours, and no
// alarm opened: it heard no live broadcast of its area and had alerts
// only late, by the controller's resends to it alone, and no technician
// knew. The alarm opens once the list has lasted AreaUnheardFor (a
// refusal the node's next retry overcomes raises none), names the areas,
// and ends when the node hears every area again.
func TestAreaUnheardOpensAnAlarm(t *testing.T) {
	const kind = "area-unheard"
	w := newWorld(t)
	good := online(healthy())
	good.DiskFreeBytes = ptr(int64(1 << 30))
	deaf := good
	deaf.AreasUnheard = []string{"12346"}

	// A refusal the retry overcomes within a minute raises nothing.
	w.state("n1", deaf)
	w.clock.Advance(time.Minute)
	w.state("n1", good)
	w.clock.Advance(2 * time.Minute)
	w.state("n1", deaf) // the count starts again
	if a := w.open("n1")[kind]; a != nil {
		t.Fatalf("areas unheard for a minute at a time: %s opened (%s), want none", kind, a.Detail)
	}
	w.clock.Advance(time.Minute)
	w.state("n1", deaf)
	if a := w.open("n1")[kind]; a != nil {
		t.Fatalf("areas unheard for 1 min: %s opened (%s), want none before 2 min", kind, a.Detail)
	}
	w.clock.Advance(time.Minute)
	w.state("n1", deaf)
	a := w.open("n1")[kind]
	if a == nil {
		t.Fatalf("areas unheard for 2 min: open alarms %v, want %s", slices.Collect(maps.Keys(w.open("n1"))), kind)
	}
	if a.Severity != loaxa.SeverityCritical || jsonOf(a.Facts) != `{"areas":["12346"]}` || !strings.Contains(a.Detail, "12346") {
		t.Errorf("alarm %s, want critical with the area 12346 in its facts and detail", jsonOf(a))
	}
	if fs := w.node("n1").Status.Faults; len(fs) != 1 || fs[0].Kind != kind {
		t.Errorf("node faults %s, want %s", jsonOf(fs), kind)
	}
	// It hears its area again.
	w.clock.Advance(time.Minute)
	w.state("n1", good)
	if open := w.open("n1"); len(open) != 0 {
		t.Errorf("areas heard again: open alarms %v, want none", slices.Collect(maps.Keys(open)))
	}
}

// TestKeyUntrustedOpensAnAlarm: a cluster offline through a key rotation
// that was forced came back online trusting only the retired key. It was
// "online", with no alarm, and refused every schedule, command and alert
// (each refused "unknown_key"); nobody knew until the typhoon's warning
// did not sound there. A state whose keys lack the one the controller
// signs with opens a critical alarm at once (it cannot clear by itself),
// naming both; a node enrolled again, trusting it, ends the alarm. A node
// listing no keys (an older agent) raises none, nor does any node before
// the monitor knows the signing key.
func TestKeyUntrustedOpensAnAlarm(t *testing.T) {
	const kind = "key-untrusted"
	w := newWorld(t)
	good := online(healthy())
	good.DiskFreeBytes = ptr(int64(1 << 30))
	good.Keys = []string{"5eb2f178addb70f1"}
	w.state("n1", good)
	if open := w.open("n1"); len(open) != 0 {
		t.Fatalf("signing key unknown to the monitor: open alarms %v, want none", slices.Collect(maps.Keys(open)))
	}
	w.m.SetSigningKey("5eb2f178addb70f1")
	w.state("n1", good)
	// The key rotated while the node was away.
	w.m.SetSigningKey("aaaf8fe47fdb90e3")
	old := good
	old.Keys = nil
	w.state("n1", old)
	if open := w.open("n1"); len(open) != 0 {
		t.Fatalf("a node that lists no keys: open alarms %v, want none", slices.Collect(maps.Keys(open)))
	}
	w.state("n1", good)
	a := w.open("n1")[kind]
	if a == nil {
		t.Fatalf("node trusting only the retired key: open alarms %v, want %s", slices.Collect(maps.Keys(w.open("n1"))), kind)
	}
	if a.Severity != loaxa.SeverityCritical || jsonOf(a.Facts) != `{"key":"aaaf8fe47fdb90e3","trusted":["5eb2f178addb70f1"]}` ||
		!strings.Contains(a.Detail, "enrol it again") {
		t.Errorf("alarm %s, want critical naming the signing key and the one trusted, saying to enrol it again", jsonOf(a))
	}
	// Enrolled again: its new credentials carry the signing key.
	w.clock.Advance(time.Minute)
	renewed := good
	renewed.Keys = []string{"aaaf8fe47fdb90e3"}
	w.state("n1", renewed)
	if open := w.open("n1"); len(open) != 0 {
		t.Errorf("node trusting the signing key again: open alarms %v, want none", slices.Collect(maps.Keys(open)))
	}
}
