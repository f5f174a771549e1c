// Package health is the controller's live model of fleet health: which
// nodes are online, stale or offline, which faults are open on each, the
// alarms a technician has to see, and self-tests.
//
// The Monitor hears every node state and event batch after the MQTT
// ingest stored it (ObserveState, ObserveEvents). Most messages are
// heartbeats that change nothing, so it keeps what it needs in memory and
// writes only when something changes: a fault opens or clears, a node goes
// stale or offline, a play completes. A sweep on the injected clock finds
// nodes that went silent without a Last Will (a half-open link): a node
// that misses StaleBeats heartbeats is stale, one silent for OfflineBeats
// heartbeats is offline, and one offline for OfflineAlarmAfter raises an
// alarm.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Config holds the thresholds of the health model. DefaultConfig has the
// values docs/fleet-health.md describes.
type Config struct {
	// DefaultHeartbeat is assumed for nodes that do not report theirs.
	DefaultHeartbeat time.Duration
	// StaleBeats and OfflineBeats are how many heartbeat intervals of
	// silence make a node stale and offline.
	StaleBeats, OfflineBeats float64
	// OfflineAlarmAfter is how long a node is offline before it raises an
	// alarm (short outages of a 3G link are normal).
	OfflineAlarmAfter time.Duration
	// Sweep is how often silence is checked.
	Sweep time.Duration
	// Board thresholds.
	BatteryLowVolts float64
	OverheatC       float64
	WeakSignalDBm   int
	DiskLowBytes    int64
	// BatteryMarginVolts, WeakSignalMarginDB and OverheatMarginC are how
	// far past its threshold the battery, the signal or the enclosure's
	// temperature must come back before its alarm ends (a deadband): a
	// battery that sags under the amplifier's load and recovers when it
	// stops, a signal in rain fade, a box in the afternoon sun, hover around
	// the threshold, and would open and end the alarm at every state.
	BatteryMarginVolts float64
	WeakSignalMarginDB int
	OverheatMarginC    float64
	// ClockOffsetBound is the largest clock offset (either way) before an
	// alarm: nodes correct for it, but a board clock that far off has a
	// flat RTC battery or no time source.
	ClockOffsetBound time.Duration
	// ClockUncertaintyBound is how far the node's corrected clock may be
	// off (its clock_uncertainty_us) before an alarm. Neighbouring
	// clusters start an emergency together to within their clocks'
	// errors; the target is 20 ms, and well past it their speakers echo.
	ClockUncertaintyBound time.Duration
	// ClockUncertainFor is how long a node's clock stays over that bound
	// before the alarm opens.
	ClockUncertainFor time.Duration
	// ContentMissingFor is how long a node reports content it needs
	// missing before the alarm opens.
	ContentMissingFor time.Duration
	// AreaUnheardFor is how long a node reports areas it does not hear
	// before the alarm opens.
	AreaUnheardFor time.Duration
	// SelfTestTimeout is how long nodes have to answer a self-test.
	SelfTestTimeout time.Duration
	// DailyTest is the local time ("03:00") of the daily silent self-test
	// of every online node; "" runs none. Location is its time zone.
	DailyTest string
	Location  *time.Location
}

// DefaultConfig returns the default thresholds.
func DefaultConfig() Config {
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		loc = time.FixedZone("ICT", 7*3600)
	}
	return Config{
		DefaultHeartbeat:  60 * time.Second,
		StaleBeats:        2.5,
		OfflineBeats:      5,
		OfflineAlarmAfter: 10 * time.Minute,
		Sweep:             5 * time.Second,
		BatteryLowVolts:   11.8,
		OverheatC:         65,
		WeakSignalDBm:     -105,
		DiskLowBytes:      50 << 20,
		// A 12 V lead-acid battery sags 0.2–0.4 V under a 100 W
		// amplifier's 8 A and recovers as much when it stops; 12.2 V at
		// rest is still only half charged, so the alarm ends there or
		// once the charger runs (13 V and more).
		BatteryMarginVolts: 0.4,
		// A 4G signal fades by a few dB from one reading to the next (rain,
		// moving obstacles); −100 dBm is a usable link again.
		WeakSignalMarginDB: 5,
		// An enclosure in the sun swings a few degrees as clouds pass and
		// the amplifier plays; 60 °C is a box that cooled down.
		OverheatMarginC:  5,
		ClockOffsetBound: 2 * time.Second,
		// A node measures again while it is uncertain by more than 5 ms;
		// between measurements the drift bound adds up to 30 ms. Over 4G
		// a measurement is within 20–50 ms, so 100 ms is a time source
		// that is really failing.
		ClockUncertaintyBound: 100 * time.Millisecond,
		ClockUncertainFor:     10 * time.Minute,
		// Well past the ten minutes over which nodes spread their first
		// downloads of kept content, and a 3G link's slow hours.
		ContentMissingFor: 6 * time.Hour,
		// A refused subscription is retried after 2 s, then waits longer
		// each time up to 2 min: a broker that was slow to answer, or an
		// ACL updated a moment after the move, is heard again well within
		// this.
		AreaUnheardFor:  2 * time.Minute,
		SelfTestTimeout: 2 * time.Minute,
		DailyTest:       "03:00",
		Location:        loc,
	}
}

// Validate checks the thresholds.
func (c Config) Validate() error {
	var errs []error
	if c.DefaultHeartbeat <= 0 || c.Sweep <= 0 || c.SelfTestTimeout <= 0 {
		errs = append(errs, errors.New("heartbeat, sweep and self-test timeout must be positive"))
	}
	if !(c.StaleBeats >= 1 && c.OfflineBeats > c.StaleBeats) {
		errs = append(errs, fmt.Errorf("want 1 ≤ stale beats (%.1f) < offline beats (%.1f)", c.StaleBeats, c.OfflineBeats))
	}
	if c.BatteryMarginVolts < 0 || c.WeakSignalMarginDB < 0 || c.OverheatMarginC < 0 {
		errs = append(errs, fmt.Errorf("battery margin (%.2f V), weak signal margin (%d dB) and overheat margin (%.1f °C) must not be negative",
			c.BatteryMarginVolts, c.WeakSignalMarginDB, c.OverheatMarginC))
	}
	if c.DailyTest != "" {
		if _, err := time.Parse("15:04", c.DailyTest); err != nil {
			errs = append(errs, fmt.Errorf("daily test time %q: want a time of day from 00:00 to 23:59 (HH:MM, e.g. 03:00), or off for none", c.DailyTest))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("health config: %w", err)
	}
	return nil
}

// Monitor is the health model. Set the fields, call Open, then Run.
type Monitor struct {
	Config    Config
	Clock     clock.Clock
	Nodes     loaxa.NodeService
	Alarms    loaxa.AlarmService
	Areas     loaxa.AreaService // places the bulletin-unschedulable alarms, which have no node, for AreaHealth
	Tests     loaxa.SelfTestService
	Messenger loaxa.Messenger
	Logger    *slog.Logger

	mu             sync.Mutex
	nodes          map[string]*record
	open           map[alarmKey]*loaxa.Alarm
	subs           map[chan *loaxa.Alarm]func(area string) bool // each subscriber's areas; nil: all
	lastSweep      time.Time
	failures       storeFailures // failed alarm writes, for their log
	statusFailures storeFailures // failed node status writes, for their log
	wg             sync.WaitGroup
	ctx            context.Context // Run's, for background sends

	events     *prometheus.CounterVec
	eventsOnce sync.Once
	reload     chan struct{}
	// signingKey is the id of the key the controller signs with
	// (SetSigningKey); "" until set: not checked.
	signingKey string
}

// SetSigningKey tells the monitor which key signs the controller's
// messages now (at the start and after each activation): a node whose
// state does not list it among the keys it trusts refuses them all, a
// key-untrusted alarm. Nodes are judged again by their next state (within
// a heartbeat).
func (m *Monitor) SetSigningKey(kid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.signingKey = kid
}

// record is what the monitor keeps of one node.
type record struct {
	area        string
	state       string
	lastContact time.Time
	heartbeat   time.Duration
	faults      map[string]loaxa.Fault
	// overSince is, for a condition that must last (lasting), the first of
	// the online states in a row that had it: going offline ends the row.
	overSince map[string]time.Time
	// epoch and seq are the last event observed, so resent events are
	// not counted twice.
	epoch string
	seq   uint64
	// revoked: the node's credentials were revoked (a stolen or retired
	// board): it is offline and raises no alarm until it is enrolled
	// again.
	revoked bool
	// awaiting: the node waits for its enrolment code (no EnrolledAt), a
	// pole not put up yet: counted apart from the nodes never connected.
	awaiting bool
}

// alarmKey is what has one open alarm of a kind: a node, or a bulletin
// (ann) for a bulletin-unschedulable alarm, whose node is "".
type alarmKey struct{ node, kind, ann string }

// keyOf returns a's key.
func keyOf(a *loaxa.Alarm) alarmKey {
	return alarmKey{node: a.Node, kind: a.Kind, ann: a.Facts.Announcement}
}

var _ loaxa.HealthService = (*Monitor)(nil)

// NewMonitor returns a monitor with DefaultConfig.
func NewMonitor() *Monitor {
	return &Monitor{Config: DefaultConfig(), Clock: clock.Real{}, Logger: slog.New(slog.DiscardHandler), reload: make(chan struct{}, 1)}
}

// Changed tells the monitor that nodes may have been enrolled or removed;
// Run reloads the node list soon after (the API calls it with the
// scheduler's Changed).
func (m *Monitor) Changed() {
	select {
	case m.reload <- struct{}{}:
	default:
	}
}

// ReloadNodes adds the nodes enrolled since the last look, forgets those
// that are gone and notes which are revoked and which moved; Run calls it
// soon after Changed, tests call it themselves.
func (m *Monitor) ReloadNodes(ctx context.Context) {
	nodes, err := m.Nodes.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		m.Logger.Warn("health: reload nodes", "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.ID] = true
		if r := m.nodes[n.ID]; r == nil {
			m.nodes[n.ID] = newRecord(n)
		} else {
			r.revoked, r.awaiting = n.Credentials == loaxa.CredentialsRevoked, n.EnrolledAt.IsZero()
			if r.area != n.Area {
				// Moved to another area (PATCH /nodes/{id}): its alarms,
				// those open now and the next, are its new area's, where
				// its technicians now look.
				r.area = n.Area
				m.moveAlarms(ctx, n.ID, n.Area)
			}
		}
	}
	for id := range m.nodes {
		if !seen[id] {
			delete(m.nodes, id)
		}
	}
}

// Open loads the nodes' last known status and every open alarm.
func (m *Monitor) Open(ctx context.Context) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Config.Location == nil {
		m.Config.Location = time.UTC
	}
	nodes, err := m.Nodes.FindNodes(ctx, loaxa.NodeFilter{})
	if err != nil {
		return fmt.Errorf("health: load nodes: %w", err)
	}
	// Every one, however many: an alarm left out would never end, and its
	// node would get a second one (10,000 were the most a listing gave,
	// two per cluster in a province of 5,000 that a typhoon cut off).
	alarms, err := m.Alarms.FindOpenAlarms(ctx)
	if err != nil {
		return fmt.Errorf("health: load alarms: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodes = make(map[string]*record, len(nodes))
	m.open = make(map[alarmKey]*loaxa.Alarm, len(alarms))
	m.subs = map[chan *loaxa.Alarm]func(string) bool{}
	for _, n := range nodes {
		m.nodes[n.ID] = newRecord(n)
	}
	now := m.Clock.Now()
	for _, a := range alarms {
		key := keyOf(a)
		if first := m.open[key]; first != nil {
			// Left by a monitor that had not loaded the first: one alarm
			// per node and kind, the oldest (alarms come oldest first).
			if _, err := m.Alarms.EndAlarm(ctx, a.ID, now); err != nil {
				m.Logger.Error("health: second open alarm of a node and kind not ended", "id", a.ID, "node", a.Node, "kind", a.Kind, "err", err)
			} else {
				m.Logger.Warn("health: second open alarm of a node and kind ended", "id", a.ID, "node", a.Node, "kind", a.Kind, "first", first.ID)
			}
			continue
		}
		m.open[key] = a
	}
	// An alarm of a condition the node's state reports is ended by a state
	// without it and opened by one with it, as the record's faults say the
	// node had it or not. The alarm is stored at once, the node's faults
	// with its status every few seconds: after a crash between the two,
	// the faults are taken from the alarms, or an alarm that had opened
	// would never end, and a condition whose alarm had ended would never
	// open one again.
	changed := map[string]bool{}
	for id, r := range m.nodes {
		for kind := range r.faults {
			if stateKind(kind) && m.open[alarmKey{node: id, kind: kind}] == nil {
				delete(r.faults, kind)
				changed[id] = true
			}
		}
	}
	for key, a := range m.open {
		r := m.nodes[key.node]
		if r == nil || !stateKind(key.kind) {
			continue
		}
		if _, ok := r.faults[key.kind]; !ok {
			r.faults[key.kind] = loaxa.Fault{Kind: a.Kind, Since: a.Start, Detail: a.Detail, Facts: a.Facts}
			changed[key.node] = true
		}
	}
	for id := range changed {
		m.storeFaults(ctx, id, m.nodes[id])
	}
	return nil
}

// storeFaults writes r's faults into node's stored status. Called with
// m.mu held.
func (m *Monitor) storeFaults(ctx context.Context, node string, r *record) {
	faults := slices.SortedFunc(maps.Values(r.faults), func(a, b loaxa.Fault) int { return strings.Compare(a.Kind, b.Kind) })
	if err := m.Nodes.UpdateNodeStatus(ctx, node, func(s *loaxa.NodeStatus) { s.Faults = faults }); err != nil {
		m.storeFailed(&m.statusFailures, "health: faults not stored", "node", node, "err", err)
		return
	}
	m.storeWorks(&m.statusFailures, nodeStoreWorks)
}

// stateKind reports whether alarms of kind are of a condition the node's
// state reports (faultsOf): all but the node going silent, a play failing
// and its desired state not delivered.
func stateKind(kind string) bool {
	switch kind {
	case loaxa.AlarmOffline, loaxa.AlarmFailedToSound, loaxa.AlarmDesiredUndelivered, loaxa.AlarmBulletinUnschedulable:
		return false
	}
	return true
}

func newRecord(n *loaxa.Node) *record {
	r := &record{area: n.Area, state: n.Status.State, lastContact: n.Status.LastSeen,
		heartbeat: time.Duration(n.Status.HeartbeatMS) * time.Millisecond, faults: map[string]loaxa.Fault{},
		revoked: n.Credentials == loaxa.CredentialsRevoked, awaiting: n.EnrolledAt.IsZero()}
	if r.state == "" {
		r.state = loaxa.NodeNever
	}
	for _, f := range n.Status.Faults {
		r.faults[f.Kind] = f
	}
	return r
}

// RequestedBySchedule is the RequestedBy of the daily self-test.
const RequestedBySchedule = "schedule"

// Run sweeps for silent nodes and runs the daily self-test until ctx
// ends, then waits for the self-test commands it is sending.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	defer m.wg.Wait()
	timer := m.Clock.NewTimer(m.Config.Sweep)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C():
			// Reset before sweeping: a clock that moves while the sweep
			// runs (a fake one in tests) then fires the next sweep.
			timer.Reset(m.Config.Sweep)
			m.SweepNow(ctx)
		case <-m.reload:
			m.ReloadNodes(ctx)
		}
	}
}

// Close waits for self-test commands being sent; Run does this itself
// when it returns.
func (m *Monitor) Close() { m.wg.Wait() }

// beat returns the node's heartbeat interval.
func (m *Monitor) beat(r *record) time.Duration {
	if r.heartbeat > 0 {
		return r.heartbeat
	}
	return m.Config.DefaultHeartbeat
}

// SweepNow checks every node's silence against its heartbeat: stale,
// offline, and the offline alarm; and starts the daily self-test when it
// is due. Run calls it every Sweep; tests call it after moving a fake
// clock. What it changed is logged in one line, after it let the lock go:
// a typhoon makes thousands of nodes silent in one sweep, and a line for
// each, written under the lock, held up the ingest.
func (m *Monitor) SweepNow(ctx context.Context) {
	now := m.Clock.Now()
	m.mu.Lock()
	prev := m.lastSweep
	m.lastSweep = now
	var offline []*loaxa.Alarm
	var note sweepNote
	for id, r := range m.nodes {
		was := r.state
		if r.revoked {
			m.retire(ctx, id, r, now)
			note.silent(id, r, was)
			continue
		}
		silent := now.Sub(r.lastContact)
		hb := m.beat(r)
		want := r.state
		switch {
		case r.state == loaxa.NodeNever || r.state == loaxa.NodeOffline:
		case silent > time.Duration(m.Config.OfflineBeats*float64(hb)):
			want = loaxa.NodeOffline
		case r.state == loaxa.NodeOnline && silent > time.Duration(m.Config.StaleBeats*float64(hb)):
			want = loaxa.NodeStale
		}
		if want != r.state {
			m.setSilent(ctx, id, r, want, now)
			note.silent(id, r, was)
		}
		if r.state == loaxa.NodeOffline && now.Sub(r.lastContact) >= m.Config.OfflineAlarmAfter {
			if _, open := m.open[alarmKey{node: id, kind: loaxa.AlarmOffline}]; !open {
				offline = append(offline, m.newAlarm(id, r, loaxa.AlarmOffline, loaxa.AlarmFacts{LastContact: r.lastContact.UTC()}, now))
			}
		}
	}
	// In one write: a province-wide outage makes thousands of nodes'
	// alarms due in one sweep, and a commit each (an fsync) held the lock,
	// and so the ingest of every state and event, for 15 s at 5,000.
	if m.storeAlarms(ctx, offline) {
		note.alarms(offline)
	}
	daily := m.dailyDue(prev, now)
	m.mu.Unlock()
	note.log(m.Logger)
	if daily {
		if _, err := m.StartSelfTest(ctx, protocol.TestSilent, "", nil, RequestedBySchedule); err != nil {
			m.Logger.Error("health: daily self-test not started", "err", err)
		}
	}
}

// sweepNote is what one sweep changed, for its log line.
type sweepNote struct {
	stale, offline, offlineAlarms int
	nodes                         map[string]bool
	areas                         map[string]bool
}

// sweepNoteMax is how many node ids and areas the sweep's line names.
const sweepNoteMax = 10

// silent notes node id if the sweep changed its state from was.
func (n *sweepNote) silent(id string, r *record, was string) {
	switch {
	case r.state == was:
		return
	case r.state == loaxa.NodeStale:
		n.stale++
	case r.state == loaxa.NodeOffline:
		n.offline++
	}
	n.node(id, r.area)
}

// alarms notes the offline alarms the sweep opened.
func (n *sweepNote) alarms(as []*loaxa.Alarm) {
	n.offlineAlarms += len(as)
	for _, a := range as {
		n.node(a.Node, a.Area)
	}
}

func (n *sweepNote) node(id, area string) {
	if n.nodes == nil {
		n.nodes, n.areas = map[string]bool{}, map[string]bool{}
	}
	n.nodes[id], n.areas[area] = true, true
}

// log writes the line, if the sweep changed anything: how many nodes went
// stale or offline and how many offline alarms opened, the first few
// nodes, and the areas. A warning if an alarm opened.
func (n *sweepNote) log(l *slog.Logger) {
	if len(n.nodes) == 0 {
		return
	}
	nodes, areas := slices.Sorted(maps.Keys(n.nodes)), slices.Sorted(maps.Keys(n.areas))
	level := slog.LevelInfo
	if n.offlineAlarms > 0 {
		level = slog.LevelWarn
	}
	l.Log(context.Background(), level, "health: sweep found nodes silent",
		"stale", n.stale, "offline", n.offline, "offline_alarms", n.offlineAlarms,
		"node_count", len(nodes), "nodes", nodes[:min(len(nodes), sweepNoteMax)],
		"area_count", len(areas), "areas", areas[:min(len(areas), sweepNoteMax)])
}

// setSilent records that node id went stale or offline for silence, if no
// message arrived meanwhile (the ingest writes LastSeen first).
func (m *Monitor) setSilent(ctx context.Context, id string, r *record, state string, now time.Time) {
	applied := false
	err := m.Nodes.UpdateNodeStatus(ctx, id, func(s *loaxa.NodeStatus) {
		if s.LastSeen.After(r.lastContact) {
			return
		}
		applied = true
		s.State, s.Since = state, now
		if state == loaxa.NodeOffline {
			s.Playing = nil
		}
	})
	if err != nil {
		m.storeFailed(&m.statusFailures, "health: node state not stored", "node", id, "state", state, "err", err)
		return
	}
	m.storeWorks(&m.statusFailures, nodeStoreWorks)
	if applied { // logged by the sweep, in one line for all
		r.state = state
		if state == loaxa.NodeOffline {
			r.offline()
		}
	}
}

// retire makes a revoked node offline, without the offline alarm, ends
// its open alarms and forgets its faults: a board revoked on purpose needs
// no one, and once enrolled again its first state decides. Called with
// m.mu held.
func (m *Monitor) retire(ctx context.Context, id string, r *record, now time.Time) {
	if r.state != loaxa.NodeOffline && r.state != loaxa.NodeNever {
		m.setSilent(ctx, id, r, loaxa.NodeOffline, now)
	}
	for _, kind := range loaxa.AlarmKinds {
		if a := m.open[alarmKey{node: id, kind: kind}]; a != nil {
			m.endAlarm(ctx, a, now)
		}
	}
	if len(r.faults) > 0 {
		clear(r.faults)
		m.storeFaults(ctx, id, r)
	}
}

// offline forgets since when the node's conditions that must last have
// held. Offline, a node cannot measure its clock or download, so the time
// away does not count, and its first state back (a clock uncertain for not
// having measured meanwhile, content not downloaded yet) starts the count
// again rather than opening the alarm at once, for every node at once
// after a province-wide outage.
func (r *record) offline() { r.overSince = nil }

// dailyDue reports whether the daily self-test's time passed between the
// previous sweep and this one. A controller that was down at that time
// skips the day's test rather than testing whenever it starts.
func (m *Monitor) dailyDue(prev, now time.Time) bool {
	if m.Config.DailyTest == "" || prev.IsZero() {
		return false
	}
	hm, err := time.Parse("15:04", m.Config.DailyTest)
	if err != nil {
		return false // Validate refuses it
	}
	local := now.In(m.Config.Location)
	at := time.Date(local.Year(), local.Month(), local.Day(), hm.Hour(), hm.Minute(), 0, 0, m.Config.Location)
	if at.After(now) {
		at = at.AddDate(0, 0, -1)
	}
	return prev.Before(at) && !at.After(now)
}

// record returns node's record, loading a node enrolled since Open.
// Called with m.mu held.
func (m *Monitor) record(ctx context.Context, node string) (*record, error) {
	if r := m.nodes[node]; r != nil {
		return r, nil
	}
	n, err := m.Nodes.FindNodeByID(ctx, node)
	if err != nil {
		return nil, err
	}
	r := newRecord(n)
	m.nodes[node] = r
	return r, nil
}

// ObserveState takes a node's state as stored by the ingest at at.
func (m *Monitor) ObserveState(ctx context.Context, node string, st *protocol.State, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.record(ctx, node)
	if err != nil {
		m.Logger.Warn("health: state of an unknown node", "node", node, "err", err)
		return
	}
	// Only a node with active credentials gets this far (the ingest
	// drops the others' messages): enrolled again since it was revoked.
	r.revoked = false
	if st.Status != protocol.StatusOnline {
		// A Last Will says nothing of the hardware: faults stay as they
		// were until the node says otherwise. Nor is it contact from the
		// node (the broker sends it once the keep-alive ran out): the
		// offline alarm counts, and says "no message since", from the
		// node's last message, as when the sweep finds it silent.
		if r.lastContact.IsZero() {
			r.lastContact = at
		}
		r.state = loaxa.NodeOffline
		r.offline()
		return
	}
	r.lastContact = at
	r.state = loaxa.NodeOnline
	r.heartbeat = time.Duration(st.HeartbeatMS) * time.Millisecond
	if a := m.open[alarmKey{node: node, kind: loaxa.AlarmOffline}]; a != nil {
		m.endAlarm(ctx, a, at)
	}
	now := m.faultsOf(st, r.faults)
	for _, l := range m.lasting() {
		kind, need := l.kind, l.need
		_, over := now[kind]
		since, was := r.overSince[kind]
		switch {
		case !over:
			delete(r.overSince, kind)
		case !was:
			if r.overSince == nil {
				r.overSince = map[string]time.Time{}
			}
			r.overSince[kind], since = at, at
		}
		if _, open := r.faults[kind]; over && !open && at.Sub(since) < need {
			delete(now, kind)
		}
	}
	changed := false
	for kind, facts := range now {
		detail := loaxa.AlarmDetail(kind, facts)
		if f, open := r.faults[kind]; open {
			if f.Detail != detail {
				f.Detail, f.Facts = detail, facts
				r.faults[kind] = f
				changed = true
			}
			continue
		}
		r.faults[kind] = loaxa.Fault{Kind: kind, Since: at, Detail: detail, Facts: facts}
		changed = true
	}
	for kind := range r.faults {
		if _, still := now[kind]; !still {
			delete(r.faults, kind)
			changed = true
		}
	}
	// The node's faults first, then the alarms: whoever sees an alarm
	// open or end finds the node's faults already saying so.
	if changed {
		m.storeFaults(ctx, node, r)
	}
	// Every fault has its alarm open and no other alarm of the state's
	// conditions is, not only those that started or cleared with this
	// state: an alarm whose write failed (a full disk) is stored by the
	// next state, not when its condition clears and comes back.
	var opening []*loaxa.Alarm
	for kind, f := range r.faults {
		if _, open := m.open[alarmKey{node: node, kind: kind}]; !open {
			opening = append(opening, m.newAlarm(node, r, kind, f.Facts, f.Since))
		}
	}
	m.openAlarms(ctx, opening...)
	// An open area-unheard alarm names the areas the node does not hear
	// now: its facts say where the broker's ACL must be fixed. A cluster
	// moved under the alarm (or whose chain changed) and refused its new
	// area's topics too kept an alarm naming its old commune. The other
	// kinds keep the facts they opened with: readings that change with
	// every state (a voltage, a signal, a count) would rewrite and
	// announce the alarm at each.
	if f, ok := r.faults[loaxa.AlarmAreaUnheard]; ok {
		if a := m.open[alarmKey{node: node, kind: loaxa.AlarmAreaUnheard}]; a != nil && !slices.Equal(a.Facts.Areas, f.Facts.Areas) {
			m.updateFacts(ctx, a, f.Detail, f.Facts)
		}
	}
	for _, kind := range loaxa.AlarmKinds {
		if _, still := r.faults[kind]; still || !stateKind(kind) {
			continue
		}
		if a := m.open[alarmKey{node: node, kind: kind}]; a != nil {
			m.endAlarm(ctx, a, at)
		}
	}
}

// lasting are the conditions that are faults only once they have lasted,
// and how long.
//
// A clock is found uncertain only when it has stayed so for
// ClockUncertainFor. A node measures its clock against the controller's,
// so while the controller or the network is overloaded (thousands of
// nodes reconnecting after a power cut, a province-wide alert) every
// node's measurement is poor for a few minutes: that is not the node's
// fault, and an alarm per node would bury the ones that are. A node back
// from a long time offline, too, reports the uncertainty its clock
// gathered meanwhile until it has measured again.
//
// Content is missing for a while whenever a schedule names new content
// (nodes spread their first downloads over up to ten minutes); missing
// for ContentMissingFor, it is not coming: a full disk, a link that fails
// every download. A play that needs it fails and says so
// (failed-to-sound), but content kept for emergencies (standing content)
// has no play to fail until the emergency.
//
// An area is unheard for a moment when a node moves and the broker's ACL
// follows a little later, or a subscription is not answered: the node
// retries, and one retry that succeeds must not page a technician.
func (m *Monitor) lasting() [3]lastingCondition {
	return [...]lastingCondition{
		{loaxa.AlarmClockUncertain, m.Config.ClockUncertainFor},
		{loaxa.AlarmContentMissing, m.Config.ContentMissingFor},
		{loaxa.AlarmAreaUnheard, m.Config.AreaUnheardFor},
	}
}

// lastingCondition is an alarm kind and how long its condition must last
// (an array, not a map: ObserveState runs for every state of every node).
type lastingCondition struct {
	kind string
	need time.Duration
}

// faultsOf derives the open conditions of a state: kind → facts. open are
// the node's faults so far: a battery or signal already found low, an
// enclosure found hot, stays so until it is back past its threshold's
// margin.
func (m *Monitor) faultsOf(st *protocol.State, open map[string]loaxa.Fault) map[string]loaxa.AlarmFacts {
	out := map[string]loaxa.AlarmFacts{}
	c := m.Config
	if off := time.Duration(st.ClockOffsetMS) * time.Millisecond; off > c.ClockOffsetBound || off < -c.ClockOffsetBound {
		out[loaxa.AlarmClockOffset] = loaxa.AlarmFacts{ClockOffsetMS: new(st.ClockOffsetMS)}
	}
	if u := time.Duration(st.ClockUncertaintyUS) * time.Microsecond; u > c.ClockUncertaintyBound {
		out[loaxa.AlarmClockUncertain] = loaxa.AlarmFacts{
			UncertaintyBoundMS: c.ClockUncertaintyBound.Milliseconds(),
			UncertainForS:      int64(c.ClockUncertainFor / time.Second),
		}
	}
	if n := len(st.ContentMissing); n > 0 {
		out[loaxa.AlarmContentMissing] = loaxa.AlarmFacts{MissingContent: n, MissingForS: int64(c.ContentMissingFor / time.Second)}
	}
	if st.DiskFreeBytes != nil && *st.DiskFreeBytes < c.DiskLowBytes {
		out[loaxa.AlarmDiskLow] = loaxa.AlarmFacts{DiskFreeBytes: st.DiskFreeBytes}
	}
	if st.StorageDamaged > 0 {
		out[loaxa.AlarmStorageDamaged] = loaxa.AlarmFacts{DamagedFiles: st.StorageDamaged}
	}
	if st.LinkDeaf > 0 {
		out[loaxa.AlarmLinkDeaf] = loaxa.AlarmFacts{DeafTimes: st.LinkDeaf}
	}
	if st.NoSoundDevice != "" {
		out[loaxa.AlarmNoSoundDevice] = loaxa.AlarmFacts{Error: st.NoSoundDevice}
	}
	if st.StorageFault != "" {
		out[loaxa.AlarmStorageFailed] = loaxa.AlarmFacts{Error: st.StorageFault}
	}
	if len(st.AreasUnheard) > 0 {
		out[loaxa.AlarmAreaUnheard] = loaxa.AlarmFacts{Areas: slices.Clone(st.AreasUnheard)}
	}
	// An agent too old to list its keys says nothing here.
	if len(st.Keys) > 0 && m.signingKey != "" && !slices.Contains(st.Keys, m.signingKey) {
		out[loaxa.AlarmKeyUntrusted] = loaxa.AlarmFacts{Key: m.signingKey, Trusted: slices.Clone(st.Keys)}
	}
	b := st.Board
	if b == nil {
		return out
	}
	switch b.SpeakerLine {
	case protocol.LineOpen:
		out[loaxa.AlarmSpeakerOpen] = loaxa.AlarmFacts{}
	case protocol.LineShort:
		out[loaxa.AlarmSpeakerShort] = loaxa.AlarmFacts{SpeakerOhms: b.SpeakerOhms}
	}
	if b.AmplifierFault != nil && *b.AmplifierFault {
		out[loaxa.AlarmAmplifier] = loaxa.AlarmFacts{}
	}
	if b.AmplifierCommand != nil && *b.AmplifierCommand != b.Amplifier {
		out[loaxa.AlarmRelay] = loaxa.AlarmFacts{RelayCommanded: b.AmplifierCommand, RelayFeedback: new(b.Amplifier)}
	}
	if b.Mains != nil && !*b.Mains {
		out[loaxa.AlarmMainsOff] = loaxa.AlarmFacts{}
	}
	_, wasLow := open[loaxa.AlarmBatteryLow]
	if v := b.BatteryVolts; v != nil && (*v < c.BatteryLowVolts || wasLow && *v < c.BatteryLowVolts+c.BatteryMarginVolts) {
		out[loaxa.AlarmBatteryLow] = loaxa.AlarmFacts{BatteryVolts: b.BatteryVolts}
	}
	_, wasHot := open[loaxa.AlarmOverheat]
	if v := b.TemperatureC; v != nil && (*v > c.OverheatC || wasHot && *v > c.OverheatC-c.OverheatMarginC) {
		out[loaxa.AlarmOverheat] = loaxa.AlarmFacts{TemperatureC: b.TemperatureC}
	}
	if b.DoorOpen != nil && *b.DoorOpen {
		out[loaxa.AlarmDoorOpen] = loaxa.AlarmFacts{}
	}
	_, wasWeak := open[loaxa.AlarmWeakSignal]
	if v := b.RSSIDBm; v != nil && (*v < c.WeakSignalDBm || wasWeak && *v < c.WeakSignalDBm+c.WeakSignalMarginDB) {
		out[loaxa.AlarmWeakSignal] = loaxa.AlarmFacts{RSSIDBm: b.RSSIDBm, Link: b.Link}
	}
	return out
}

// Failure reasons that mean the cluster could not sound: the hardware or
// the content, not the schedule (preempted, removed, muted…).
var soundFailures = []string{protocol.ReasonAmplifier, protocol.ReasonAudioDevice, protocol.ReasonContentMissing}

// ObserveEvents takes a batch of a node's events after the ingest stored
// it. Events already observed (a resend) are skipped.
func (m *Monitor) ObserveEvents(ctx context.Context, node, epoch string, events []protocol.Event) {
	m.mu.Lock()
	r, err := m.record(ctx, node)
	if err != nil {
		m.mu.Unlock()
		m.Logger.Warn("health: events of an unknown node", "node", node, "err", err)
		return
	}
	fresh := make([]protocol.Event, 0, len(events))
	var lastPlay time.Time
	for _, e := range events {
		if epoch == r.epoch && e.Seq <= r.seq {
			continue
		}
		r.epoch, r.seq = epoch, e.Seq
		fresh = append(fresh, e)
		if e.Type == protocol.EventCompleted && e.At.After(lastPlay) {
			lastPlay = e.At
		}
	}
	m.mu.Unlock()
	// The last play first, then the alarms it ends (see ObserveState). It
	// is stored without the monitor's lock: the ingest workers call this
	// for every node that completed a play, and under the lock they would
	// wait for each other (a node's messages all go to one worker, so its
	// own stay in order).
	var lastPlayErr error
	if !lastPlay.IsZero() {
		lastPlayErr = m.Nodes.UpdateNodeStatus(ctx, node, func(s *loaxa.NodeStatus) {
			if lastPlay.After(s.LastPlay) {
				s.LastPlay = lastPlay
			}
		})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case lastPlay.IsZero():
	case lastPlayErr != nil:
		m.storeFailed(&m.statusFailures, "health: last play not stored", "node", node, "err", lastPlayErr)
	default:
		m.storeWorks(&m.statusFailures, nodeStoreWorks)
	}
	for _, e := range fresh {
		m.eventCounter().WithLabelValues(string(e.Type)).Inc()
		switch {
		case e.Type == protocol.EventCompleted:
			if a := m.open[alarmKey{node: node, kind: loaxa.AlarmFailedToSound}]; a != nil {
				m.endAlarm(ctx, a, e.At)
			}
		case e.Type == protocol.EventFailed && slices.Contains(soundFailures, e.Reason),
			// The sound device failed mid-play and the agent restarts to
			// open it again: silent until it does.
			e.Type == protocol.EventSuspended && e.Reason == protocol.ReasonAudioDevice:
			if _, open := m.open[alarmKey{node: node, kind: loaxa.AlarmFailedToSound}]; !open {
				m.openAlarm(ctx, node, r, loaxa.AlarmFailedToSound, loaxa.AlarmFacts{Occurrence: e.Occurrence, Reason: e.Reason}, e.At)
			}
		case e.Type == protocol.EventSelfTest && e.Test != nil:
			m.recordTest(ctx, node, r, e)
		}
	}
}

// ObserveSalvaged takes the events a node read back from its damaged
// store: a play it completed before the store was lost, and reported only
// now, is its last play if none since is later. Nothing else: they are
// not the cluster's state now (a failure then opens no alarm), and the
// node sends them again until acknowledged, so they are not counted.
func (m *Monitor) ObserveSalvaged(ctx context.Context, node string, events []protocol.Event) {
	var lastPlay time.Time
	for _, e := range events {
		if e.Type == protocol.EventCompleted && e.At.After(lastPlay) {
			lastPlay = e.At
		}
	}
	if lastPlay.IsZero() {
		return
	}
	err := m.Nodes.UpdateNodeStatus(ctx, node, func(s *loaxa.NodeStatus) {
		if lastPlay.After(s.LastPlay) {
			s.LastPlay = lastPlay
		}
	})
	if err != nil {
		m.Logger.Error("health: last play of salvaged events not stored", "node", node, "err", err)
	}
}

var _ loaxa.DesiredAlarms = (*Monitor)(nil)

// DesiredUndelivered opens the node's desired-undelivered alarm.
func (m *Monitor) DesiredUndelivered(ctx context.Context, node string, facts loaxa.AlarmFacts, since time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.record(ctx, node)
	if err != nil {
		m.Logger.Warn("health: undelivered desired state of an unknown node", "node", node, "err", err)
		return
	}
	if _, open := m.open[alarmKey{node: node, kind: loaxa.AlarmDesiredUndelivered}]; !open {
		m.openAlarm(ctx, node, r, loaxa.AlarmDesiredUndelivered, facts, since)
	}
}

// DesiredDelivered ends the node's desired-undelivered alarm, if open.
func (m *Monitor) DesiredDelivered(ctx context.Context, node string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.open[alarmKey{node: node, kind: loaxa.AlarmDesiredUndelivered}]; a != nil {
		m.endAlarm(ctx, a, at)
	}
}

// BulletinsUnschedulable opens a bulletin-unschedulable alarm for each
// bulletin of bad that has none open, in one write, updates the facts of
// the open ones whose words changed (the clusters it misses: a bulletin
// sent to more of them, clusters enrolled since, or the part now missing),
// and ends the open ones of the bulletins not in bad, but those of
// unjudged (the pass could not tell: they stay as they were).
func (m *Monitor) BulletinsUnschedulable(ctx context.Context, bad map[string]loaxa.AlarmFacts, unjudged map[string]bool, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var opened []*loaxa.Alarm
	for _, ann := range slices.Sorted(maps.Keys(bad)) {
		facts := bad[ann]
		facts.Announcement = ann
		detail := loaxa.AlarmDetail(loaxa.AlarmBulletinUnschedulable, facts)
		if a := m.open[alarmKey{kind: loaxa.AlarmBulletinUnschedulable, ann: ann}]; a != nil {
			// The same alarm, its facts told again: opened at its first
			// pass, its count was that pass's for as long as it stayed
			// open.
			if a.Detail != detail || a.Facts.Nodes != facts.Nodes {
				m.updateFacts(ctx, a, detail, facts)
			}
			continue
		}
		opened = append(opened, &loaxa.Alarm{Kind: loaxa.AlarmBulletinUnschedulable, Severity: loaxa.AlarmSeverity(loaxa.AlarmBulletinUnschedulable),
			Area: facts.FromArea, Detail: detail, Facts: facts, Start: at})
	}
	var ended []*loaxa.Alarm
	for key, a := range m.open {
		if key.kind == loaxa.AlarmBulletinUnschedulable {
			if _, still := bad[key.ann]; !still && !unjudged[key.ann] {
				ended = append(ended, a)
			}
		}
	}
	for _, a := range ended {
		m.endAlarm(ctx, a, at)
	}
	m.openAlarms(ctx, opened...)
}

// recordTest files a self-test result; a passing audible test proves the
// cluster sounds again. Called with m.mu held.
func (m *Monitor) recordTest(ctx context.Context, node string, r *record, e protocol.Event) {
	if e.Test.ID != "" {
		if err := m.Tests.RecordTestResult(ctx, e.Test.ID, node, e.Test); err != nil {
			m.Logger.Warn("health: self-test result not recorded", "node", node, "test", e.Test.ID, "err", err)
		}
	}
	if e.Test.Pass && e.Test.Kind == protocol.TestAudible {
		if a := m.open[alarmKey{node: node, kind: loaxa.AlarmFailedToSound}]; a != nil {
			m.endAlarm(ctx, a, e.At)
		}
	}
}

// openAlarm stores and announces a new alarm. Called with m.mu held.
func (m *Monitor) openAlarm(ctx context.Context, node string, r *record, kind string, facts loaxa.AlarmFacts, at time.Time) {
	m.openAlarms(ctx, m.newAlarm(node, r, kind, facts, at))
}

// newAlarm returns node's alarm of kind, not stored yet.
func (m *Monitor) newAlarm(node string, r *record, kind string, facts loaxa.AlarmFacts, at time.Time) *loaxa.Alarm {
	return &loaxa.Alarm{Kind: kind, Severity: loaxa.AlarmSeverity(kind), Node: node, Area: r.area,
		Detail: loaxa.AlarmDetail(kind, facts), Facts: facts, Start: at}
}

// openAlarms stores new alarms in one write, announces them and logs
// each; none is open if they could not be stored, and the next sweep
// (offline) or state (a fault the node still has) that finds its alarm
// missing tries again. Called with m.mu held.
func (m *Monitor) openAlarms(ctx context.Context, as ...*loaxa.Alarm) {
	if !m.storeAlarms(ctx, as) {
		return
	}
	for _, a := range as {
		m.Logger.Warn("health: alarm", "id", a.ID, "node", a.Node, "kind", a.Kind, "detail", a.Detail)
	}
}

// storeAlarms is openAlarms without a line for each alarm (the sweep logs
// one for all), and reports whether they were stored. Called with m.mu
// held.
func (m *Monitor) storeAlarms(ctx context.Context, as []*loaxa.Alarm) bool {
	if len(as) == 0 {
		return false
	}
	if err := m.Alarms.CreateAlarms(ctx, as); err != nil {
		m.storeFailed(&m.failures, "health: alarms not stored", "count", len(as), "node", as[0].Node, "kind", as[0].Kind, "err", err)
		return false
	}
	m.storeWorks(&m.failures, alarmStoreWorks)
	for _, a := range as {
		m.open[keyOf(a)] = a
		m.publish(a)
	}
	return true
}

// updateFacts stores an open alarm's new detail and facts and announces
// it. A failed write leaves the alarm as it was, and the next pass that
// counts tries again. Called with m.mu held.
func (m *Monitor) updateFacts(ctx context.Context, a *loaxa.Alarm, detail string, facts loaxa.AlarmFacts) {
	updated, err := m.Alarms.UpdateAlarmFacts(ctx, a.ID, detail, facts)
	if err != nil {
		m.storeFailed(&m.failures, "health: alarm facts not stored", "id", a.ID, "node", a.Node, "kind", a.Kind, "err", err)
		return
	}
	m.storeWorks(&m.failures, alarmStoreWorks)
	m.Logger.Info("health: alarm facts changed", "id", a.ID, "node", a.Node, "kind", a.Kind, "detail", detail)
	m.open[keyOf(updated)] = updated
	m.publish(updated)
}

// moveAlarms files node's open alarms under area, its new one, and
// announces them there. One not moved (the store failed) stays where it
// was until it ends. Called with m.mu held.
func (m *Monitor) moveAlarms(ctx context.Context, node, area string) {
	for key, a := range m.open {
		if key.node != node || a.Area == area {
			continue
		}
		moved, err := m.Alarms.MoveAlarm(ctx, a.ID, area)
		if err != nil {
			m.storeFailed(&m.failures, "health: alarm of a moved node not filed under its new area", "id", a.ID, "node", node, "area", area, "err", err)
			continue
		}
		m.storeWorks(&m.failures, alarmStoreWorks)
		m.Logger.Info("health: alarm of a moved node filed under its new area", "id", a.ID, "node", node, "kind", a.Kind, "from", a.Area, "area", area)
		m.open[key] = moved
		m.publish(moved)
	}
}

// endAlarm ends an open alarm. Called with m.mu held.
func (m *Monitor) endAlarm(ctx context.Context, a *loaxa.Alarm, at time.Time) {
	ended, err := m.Alarms.EndAlarm(ctx, a.ID, at)
	if err != nil {
		m.storeFailed(&m.failures, "health: alarm end not stored", "id", a.ID, "node", a.Node, "kind", a.Kind, "err", err)
		return
	}
	m.storeWorks(&m.failures, alarmStoreWorks)
	m.Logger.Info("health: alarm ended", "id", a.ID, "node", a.Node, "kind", a.Kind)
	delete(m.open, keyOf(a))
	m.publish(ended)
}

// storeFailures counts the failed writes to one store (the alarms', or
// the nodes' statuses) since the last one logged. While the store fails
// (a full disk), every state of every faulty node and every sweep tries
// its alarms again, every sweep each silent node's state, and every batch
// with a completed play its node's last play: a line for each failure was
// thousands a minute in a typhoon.
type storeFailures struct {
	logged   time.Time // when a failure was last logged; zero: none since the store last worked
	unlogged int       // failures since, not logged
}

// storeFailureLogEvery is how often a failing store is logged.
const storeFailureLogEvery = time.Minute

// alarmStoreWorks and nodeStoreWorks are the lines of the first write
// that works after failures, to the alarms and to the nodes' statuses.
const (
	alarmStoreWorks = "health: the alarm store takes writes again"
	nodeStoreWorks  = "health: the node store takes writes again"
)

// storeFailed logs a failed write counted in f, at most once every
// storeFailureLogEvery, with how many failed since the last line and were
// not logged. Called with m.mu held.
func (m *Monitor) storeFailed(f *storeFailures, msg string, args ...any) {
	now := m.Clock.Now()
	if !f.logged.IsZero() && now.Sub(f.logged) < storeFailureLogEvery {
		f.unlogged++
		return
	}
	m.Logger.Error(msg, append(args, "unlogged_failures", f.unlogged)...)
	f.logged, f.unlogged = now, 0
}

// storeWorks notes a write counted in f that worked; the first after
// failures says so with msg and the failures not logged yet. Called with
// m.mu held.
func (m *Monitor) storeWorks(f *storeFailures, msg string) {
	if !f.logged.IsZero() {
		m.Logger.Info(msg, "unlogged_failures", f.unlogged)
		*f = storeFailures{}
	}
}

// publish hands a copy of a to every subscriber of its area. One that has
// no room left fell behind (a sweep that opened thousands of alarms at
// once) and loses the change: its channel is closed, after the changes it
// holds, so that it knows to read the alarms again rather than show part
// of them; nothing waits for it. A change outside a subscriber's areas
// takes no room: an outage in another district neither fills a commune
// console's stream nor makes it read every alarm again. Called with m.mu
// held.
func (m *Monitor) publish(a *loaxa.Alarm) {
	for ch, in := range m.subs {
		if in != nil && !in(a.Area) {
			continue
		}
		cp := *a
		select {
		case ch <- &cp:
		default:
			close(ch)
			delete(m.subs, ch)
			m.Logger.Warn("health: an alarm subscriber fell behind and lost changes; its channel is closed")
		}
	}
}

// SubscribeAlarms returns the alarm changes whose area in accepts (all if
// in is nil) until cancel is called, or until the channel is closed
// because the reader fell behind and lost changes (loaxa.HealthService).
func (m *Monitor) SubscribeAlarms(in func(area string) bool) (<-chan *loaxa.Alarm, func()) {
	ch := make(chan *loaxa.Alarm, 256)
	m.mu.Lock()
	m.subs[ch] = in
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, ch)
			m.mu.Unlock()
		})
	}
}

// AckAlarm records that by has seen alarm id.
func (m *Monitor) AckAlarm(ctx context.Context, id, by string) (*loaxa.Alarm, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.Alarms.AckAlarm(ctx, id, by, m.Clock.Now())
	if err != nil {
		return nil, err
	}
	if open := m.open[keyOf(a)]; open != nil && open.ID == a.ID {
		m.open[keyOf(a)] = a
	}
	m.publish(a)
	return a, nil
}

// AreaHealth sums up the nodes of area's subtree and their open alarms,
// with the bulletin-unschedulable alarms of the bulletins sent from it.
func (m *Monitor) AreaHealth(ctx context.Context, area string) (*loaxa.AreaHealth, error) {
	nodes, err := m.Nodes.FindNodes(ctx, loaxa.NodeFilter{Within: area})
	if err != nil {
		return nil, fmt.Errorf("area health: %w", err)
	}
	h := &loaxa.AreaHealth{Area: area, Nodes: len(nodes)}
	within := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		within[n.ID] = true
		switch n.Status.State {
		case loaxa.NodeOnline:
			h.Online++
		case loaxa.NodeStale:
			h.Stale++
		case loaxa.NodeOffline:
			h.Offline++
		default:
			// A pole not put up yet is not a board that never came up.
			if n.EnrolledAt.IsZero() {
				h.AwaitingEnrolment++
			} else {
				h.Never++
			}
		}
		if len(n.Status.Faults) > 0 {
			h.Faulty++
		} else if n.Status.State == loaxa.NodeOnline {
			h.Healthy++
		}
	}
	// The open alarms in memory, every one (a listing from the store
	// stops at 10,000), and without reading the alarms of years.
	m.mu.Lock()
	bulletins := false
	for key, a := range m.open {
		switch {
		case key.node == "" && key.kind == loaxa.AlarmBulletinUnschedulable:
			bulletins = true
		case !within[key.node]:
		case a.Severity == loaxa.SeverityCritical:
			h.Critical++
		default:
			h.Warning++
		}
	}
	m.mu.Unlock()
	if bulletins {
		n, err := m.bulletinAlarmsWithin(ctx, area)
		if err != nil {
			return nil, fmt.Errorf("area health: %w", err)
		}
		h.Critical += n
	}
	// A pole not put up yet would sound nothing, and is no fault: 200
	// codes issued ahead of the installers took a commune's score to a
	// tenth of its clusters.
	h.Score = 100
	if up := h.Nodes - h.AwaitingEnrolment; up > 0 {
		h.Score = 100 * h.Healthy / up
	}
	return h, nil
}

// bulletinAlarmsWithin counts the open bulletin-unschedulable alarms
// whose area (the bulletin's sender's) is area or below it: those the
// officers of area and above see in their alarm list and can act on (the
// sender cancels the bulletin or restores its audio). The areas the
// bulletin targets below its sender do not count it: their officers
// neither see it listed nor can cancel it, and a commune whose score
// fell for a district's missing chime would be sent looking for a fault
// in its own clusters (docs/fleet-health.md). Such alarms are few (one
// per bulletin), so each one's area chain is read; reading the store's
// open alarms instead, to select them by area, doubled the time of a
// commune's health in a typhoon's 5,000 open alarms (BENCHMARKS.md).
func (m *Monitor) bulletinAlarmsWithin(ctx context.Context, area string) (int, error) {
	m.mu.Lock()
	var as []*loaxa.Alarm
	for key, a := range m.open {
		if key.node == "" && key.kind == loaxa.AlarmBulletinUnschedulable && a.Severity == loaxa.SeverityCritical {
			as = append(as, a)
		}
	}
	m.mu.Unlock()
	if area == "" {
		return len(as), nil
	}
	if m.Areas == nil {
		return 0, errors.New("bulletin alarms: no area service to place them in the area tree")
	}
	n := 0
	for _, a := range as {
		chain, err := m.Areas.AreaChain(ctx, a.Area)
		switch {
		case loaxa.ErrorCode(err) == loaxa.ENotFound:
			// The sender's area is gone: the alarm is counted where the
			// listing can show it, in the whole fleet's health.
		case err != nil:
			return 0, fmt.Errorf("bulletin alarm %s: %w", a.ID, err)
		case slices.Contains(chain, area):
			n++
		}
	}
	return n, nil
}

// Status reports the monitor's own health.
func (m *Monitor) Status() loaxa.MonitorStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := loaxa.MonitorStatus{LastSweep: m.lastSweep, Nodes: map[string]int{}, OpenAlarms: len(m.open)}
	for _, s := range loaxa.NodeStates {
		st.Nodes[s] = 0
	}
	st.Nodes[loaxa.MonitorAwaitingEnrolment] = 0
	for _, r := range m.nodes {
		if r.awaiting && r.state == loaxa.NodeNever {
			st.Nodes[loaxa.MonitorAwaitingEnrolment]++
			continue
		}
		st.Nodes[r.state]++
	}
	return st
}
