package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestAlarmService(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	alarms := []loaxa.Alarm{
		{Kind: loaxa.AlarmSpeakerOpen, Node: "n1", Area: "hp.an-duong.le-loi"},
		{Kind: loaxa.AlarmDoorOpen, Node: "n2", Area: "hp.thuy-nguyen"},
		{Kind: loaxa.AlarmOffline, Node: "n1", Area: "hp.an-duong.le-loi"},
		{Kind: loaxa.AlarmMainsOff, Node: "n3", Area: "hn"},
	}
	for i := range alarms {
		clk.Advance(time.Minute)
		alarms[i].Start = clk.Now()
		must(t, s.CreateAlarm(ctx, &alarms[i]))
	}
	if alarms[0].ID != "al000001" || alarms[3].ID != "al000004" {
		t.Fatalf("ids %s … %s", alarms[0].ID, alarms[3].ID)
	}
	ended, err := s.EndAlarm(ctx, alarms[0].ID, clk.Now())
	must(t, err)
	if ended.Open() || !ended.End.Equal(clk.Now().UTC()) {
		t.Errorf("ended alarm: %+v", ended)
	}
	// A second end keeps the first.
	clk.Advance(time.Hour)
	again, err := s.EndAlarm(ctx, alarms[0].ID, clk.Now())
	must(t, err)
	if !again.End.Equal(ended.End) {
		t.Errorf("ending twice moved the end from %v to %v", ended.End, again.End)
	}
	acked, err := s.AckAlarm(ctx, alarms[1].ID, "ky-thuat", clk.Now())
	must(t, err)
	if acked.AckBy != "ky-thuat" || acked.AckAt.IsZero() || !acked.Open() {
		t.Errorf("acked alarm: %+v", acked)
	}
	// A second acknowledgement, by anyone, keeps the first: it replaced
	// it, and who took the alarm was lost.
	clk.Advance(time.Minute)
	again, err = s.AckAlarm(ctx, alarms[1].ID, "ky-thuat-2", clk.Now())
	must(t, err)
	if again.AckBy != "ky-thuat" || !again.AckAt.Equal(acked.AckAt) {
		t.Errorf("acknowledged twice: by %q at %v, want the first, ky-thuat at %v", again.AckBy, again.AckAt, acked.AckAt)
	}
	_, err = s.AckAlarm(ctx, "al000099", "x", clk.Now())
	wantCode(t, err, loaxa.ENotFound)
	_, err = s.FindAlarmByID(ctx, "nonsense")
	wantCode(t, err, loaxa.ENotFound)

	ids := func(as []*loaxa.Alarm) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		f    loaxa.AlarmFilter
		want []string
	}{
		{"all, newest first", loaxa.AlarmFilter{}, []string{"al000004", "al000003", "al000002", "al000001"}},
		{"open", loaxa.AlarmFilter{Open: "open"}, []string{"al000004", "al000003", "al000002"}},
		{"closed", loaxa.AlarmFilter{Open: "closed"}, []string{"al000001"}},
		{"within hp", loaxa.AlarmFilter{Within: "hp"}, []string{"al000003", "al000002", "al000001"}},
		{"node", loaxa.AlarmFilter{Node: "n1"}, []string{"al000003", "al000001"}},
		{"kind", loaxa.AlarmFilter{Kind: loaxa.AlarmDoorOpen}, []string{"al000002"}},
		{"from", loaxa.AlarmFilter{From: alarms[2].Start}, []string{"al000004", "al000003"}},
		{"to", loaxa.AlarmFilter{To: alarms[1].Start}, []string{"al000001"}},
		{"limit", loaxa.AlarmFilter{Limit: 1}, []string{"al000004"}},
	} {
		got, err := s.FindAlarms(ctx, tt.f)
		must(t, err)
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, ids(got), tt.want)
		}
	}
	// What the health monitor takes back at start: every open alarm,
	// oldest first, with no limit (TestRestartDuringATyphoonTakesBackEveryOpenAlarm
	// in controller/health goes past MaxAlarmLimit).
	open, err := s.FindOpenAlarms(ctx)
	must(t, err)
	if got, want := ids(open), []string{"al000002", "al000003", "al000004"}; !slices.Equal(got, want) {
		t.Errorf("FindOpenAlarms: %v, want %v", got, want)
	}
}

func TestSelfTestService(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	run := &loaxa.SelfTest{Kind: protocol.TestSilent, Nodes: []string{"n1", "n2"}, RequestedBy: "admin", Started: clk.Now(), Deadline: clk.Now().Add(time.Minute)}
	must(t, s.CreateSelfTest(ctx, run))
	if run.ID != "st000001" {
		t.Fatalf("id %s", run.ID)
	}
	must(t, s.RecordTestResult(ctx, run.ID, "n1", &protocol.TestResult{ID: run.ID, Kind: protocol.TestSilent, Problems: []string{protocol.ProblemLineOpen}}))
	// The first result stands.
	must(t, s.RecordTestResult(ctx, run.ID, "n1", &protocol.TestResult{ID: run.ID, Kind: protocol.TestSilent, Pass: true}))
	wantCode(t, s.RecordTestResult(ctx, run.ID, "n9", &protocol.TestResult{}), loaxa.ENotFound)
	wantCode(t, s.RecordTestResult(ctx, "st000009", "n1", &protocol.TestResult{}), loaxa.ENotFound)
	got, err := s.FindSelfTestByID(ctx, run.ID)
	must(t, err)
	if r := got.Results["n1"]; r == nil || r.Pass || len(got.Results) != 1 {
		t.Errorf("results: %+v", got.Results)
	}
	list, err := s.FindSelfTests(ctx, 10)
	must(t, err)
	if len(list) != 1 || list[0].ID != run.ID {
		t.Errorf("FindSelfTests: %v", list)
	}
}

// TestCreateAlarmsInOneWrite: the health sweep stores the offline alarms
// of thousands of nodes at once, in one commit (one commit each held the
// monitor for seconds, BENCHMARKS.md). Each gets its ID, in order; an
// alarm that cannot be stored stores none of them.
func TestCreateAlarmsInOneWrite(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	as := []*loaxa.Alarm{
		{Kind: loaxa.AlarmOffline, Node: "n1", Area: "hn", Start: clk.Now()},
		{Kind: loaxa.AlarmOffline, Node: "n2", Area: "hn", Start: clk.Now()},
	}
	must(t, s.CreateAlarms(ctx, as))
	if as[0].ID != "al000001" || as[1].ID != "al000002" || !as[1].Start.Equal(clk.Now().UTC()) {
		t.Fatalf("created %+v, %+v", as[0], as[1])
	}
	bad := []*loaxa.Alarm{
		{Kind: loaxa.AlarmOffline, Node: "n3", Area: "hn", Start: clk.Now()},
		{Kind: loaxa.AlarmOffline, Area: "hn", Start: clk.Now()},
	}
	wantCode(t, s.CreateAlarms(ctx, bad), loaxa.EInvalid)
	open, err := s.FindOpenAlarms(ctx)
	must(t, err)
	if len(open) != 2 || bad[0].ID != "" {
		t.Errorf("after a batch with an invalid alarm: %d open, first of it given id %q; want 2 and none", len(open), bad[0].ID)
	}
}

// TestFindAlarmsOpenDuring: the broadcast report reads each play against
// the faults open while it played, over days: every alarm of the kinds
// asked for, in the area's subtree, open at some time in the range (one
// that began before it and ended within or after it, or is open still),
// oldest first, past MaxAlarmLimit; not one that ended before the range
// or began after it.
func TestFindAlarmsOpenDuring(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	from := clk.Now().Add(time.Hour)
	to := from.Add(time.Hour)
	for _, a := range []struct {
		kind, node, area string
		start, end       time.Duration // from from; end 0: open
	}{
		{loaxa.AlarmSpeakerOpen, "n1", "hp.an-duong.le-loi", -2 * time.Hour, -time.Hour},  // ended before
		{loaxa.AlarmSpeakerOpen, "n1", "hp.an-duong.le-loi", -time.Minute, time.Minute},   // began before, ended within
		{loaxa.AlarmAmplifier, "n2", "hp.thuy-nguyen", 30 * time.Minute, 0},               // began within, open
		{loaxa.AlarmDoorOpen, "n2", "hp.thuy-nguyen", 0, 0},                               // another kind
		{loaxa.AlarmSpeakerShort, "n3", "hn", 0, 0},                                       // another area
		{loaxa.AlarmSpeakerShort, "n2", "hp.thuy-nguyen", time.Hour, 0},                   // began at to
		{loaxa.AlarmNoSoundDevice, "n1", "hp.an-duong.le-loi", -time.Hour, 2 * time.Hour}, // through it
	} {
		al := &loaxa.Alarm{Kind: a.kind, Node: a.node, Area: a.area, Start: from.Add(a.start)}
		must(t, s.CreateAlarm(ctx, al))
		if a.end != 0 {
			_, err := s.EndAlarm(ctx, al.ID, from.Add(a.end))
			must(t, err)
		}
	}
	got, err := s.FindAlarmsOpenDuring(ctx, "hp", loaxa.SilencingFaults, from, to)
	must(t, err)
	var ids []string
	for _, a := range got {
		ids = append(ids, a.ID)
	}
	if want := []string{"al000002", "al000003", "al000007"}; !slices.Equal(ids, want) {
		t.Errorf("FindAlarmsOpenDuring = %v, want %v", ids, want)
	}
	if all, err := s.FindAlarmsOpenDuring(ctx, "", nil, from, to); err != nil || len(all) != 5 {
		t.Errorf("every kind and area: %d alarms, %v; want 5", len(all), err)
	}
}

// BenchmarkFindAlarmsOpenDuring: what a report pays for the alarm
// history with 5,000 clusters and 20 alarms each stored (100,000: a bad
// year), read once per report: a province's month (the broadcast
// report), and the last 10 minutes (an alert's report, which the console
// polls and the stream builds again as the clusters report).
func BenchmarkFindAlarmsOpenDuring(b *testing.B) {
	db, clk := MustOpenDB(b)
	mustTree(b, db)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	kinds := []string{loaxa.AlarmSpeakerOpen, loaxa.AlarmOffline, loaxa.AlarmDoorOpen, loaxa.AlarmMainsOff, loaxa.AlarmAmplifier}
	start := clk.Now()
	const nodes, each = 5000, 20
	for batch := range each {
		as := make([]*loaxa.Alarm, 0, nodes)
		for n := range nodes {
			at := start.Add(time.Duration(batch*nodes+n) * time.Minute)
			as = append(as, &loaxa.Alarm{Kind: kinds[(batch+n)%len(kinds)], Severity: loaxa.SeverityCritical, Node: fmt.Sprintf("n%04d", n),
				Area: "hp.an-duong.le-loi", Detail: "no load on the speaker line", Start: at, End: at.Add(time.Hour)})
		}
		must(b, s.CreateAlarms(ctx, as))
	}
	to := start.Add(each * nodes * time.Minute)
	for _, r := range []struct {
		name     string
		area     string
		from, to time.Time
	}{
		{"month", "hp", to.AddDate(0, -1, 0), to},
		{"alert", "", to.Add(-10 * time.Minute), to},
		// The history's first day, asked at its end: a report of January
		// asked in December.
		{"first-day", "hp", start, start.Add(24 * time.Hour)},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.FindAlarmsOpenDuring(ctx, r.area, loaxa.SilencingFaults, r.from, r.to); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFindOpenAlarms: the day of a typhoon, 5,000 clusters offline
// (5,000 open alarms) in a store that holds a year of ended alarms
// (100,000): what the alarm list of the console (GET /api/v1/alarms?state=open)
// and the health monitor's start (FindOpenAlarms) pay.
func BenchmarkFindOpenAlarms(b *testing.B) {
	db, clk := MustOpenDB(b)
	mustTree(b, db)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	start := clk.Now()
	const nodes, each = 5000, 20
	for batch := range each {
		as := make([]*loaxa.Alarm, 0, nodes)
		for n := range nodes {
			at := start.Add(time.Duration(batch*nodes+n) * time.Minute)
			as = append(as, &loaxa.Alarm{Kind: loaxa.AlarmOffline, Severity: loaxa.SeverityCritical, Node: fmt.Sprintf("n%04d", n),
				Area: "hp.an-duong.le-loi", Detail: "no state for 10 min", Start: at, End: at.Add(time.Hour)})
		}
		must(b, s.CreateAlarms(ctx, as))
	}
	typhoon := start.Add(each * nodes * time.Minute)
	as := make([]*loaxa.Alarm, 0, nodes)
	for n := range nodes {
		as = append(as, &loaxa.Alarm{Kind: loaxa.AlarmOffline, Severity: loaxa.SeverityCritical, Node: fmt.Sprintf("n%04d", n),
			Area: "hp.an-duong.le-loi", Detail: "no state for 10 min", Start: typhoon})
	}
	must(b, s.CreateAlarms(ctx, as))
	for _, r := range []struct {
		name string
		f    loaxa.AlarmFilter
		want int
	}{
		// The emergency page's list of the clusters that cannot sound.
		{"emergency", loaxa.AlarmFilter{Open: "open", Limit: bolt.MaxAlarmLimit}, nodes},
		// The overview of a commune with none open.
		{"quiet-commune", loaxa.AlarmFilter{Within: "hp.thuy-nguyen", Open: "open", Limit: 100}, 0},
		// The overview of the province: the newest 100.
		{"province", loaxa.AlarmFilter{Within: "hp", Open: "open", Limit: 100}, 100},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindAlarms(ctx, r.f)
				if err != nil || len(got) != r.want {
					b.Fatalf("%d open alarms listed, %v; want %d", len(got), err, r.want)
				}
			}
		})
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			got, err := s.FindOpenAlarms(ctx)
			if err != nil || len(got) != nodes {
				b.Fatalf("%d open alarms, %v; want %d", len(got), err, nodes)
			}
		}
	})
}

// typhoonYear is the store of BenchmarkFindAlarmsByPlace: a typhoon year
// in a province of 5,000 clusters in 200 communes (10 districts, 211
// areas): 20 ended alarms a cluster (100,000), one a minute, of five
// kinds in turn, lasting an hour each; then, on the typhoon's day, 5,000
// open on every commune but commune 0 (its clusters' fall on commune 1's,
// mains off as well as offline).
func typhoonYear(b *testing.B) (*bolt.DB, *bolt.AlarmService, typhoonStore) {
	db, clk := MustOpenDB(b)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	const nodes, communes, each = typhoonNodes, typhoonCommunes, typhoonEach
	y := typhoonStore{start: clk.Now(), commune: func(c int) string { return fmt.Sprintf("hp.d%d.c%03d", c%10, c) }}
	mustArea(b, db, "hp", "")
	for d := range 10 {
		mustArea(b, db, fmt.Sprintf("hp.d%d", d), "hp")
	}
	for c := range communes {
		mustArea(b, db, y.commune(c), fmt.Sprintf("hp.d%d", c%10))
	}
	kinds := []string{loaxa.AlarmSpeakerOpen, loaxa.AlarmOffline, loaxa.AlarmDoorOpen, loaxa.AlarmMainsOff, loaxa.AlarmAmplifier}
	for batch := range each {
		as := make([]*loaxa.Alarm, 0, nodes)
		for n := range nodes {
			at := y.start.Add(time.Duration(batch*nodes+n) * time.Minute)
			as = append(as, &loaxa.Alarm{Kind: kinds[(batch+n)%len(kinds)], Severity: loaxa.SeverityCritical, Node: fmt.Sprintf("n%04d", n),
				Area: y.commune(n % communes), Detail: "no state for 10 min", Start: at, End: at.Add(time.Hour)})
		}
		must(b, s.CreateAlarms(ctx, as))
	}
	y.typhoon = y.start.Add(each * nodes * time.Minute)
	as := make([]*loaxa.Alarm, 0, nodes)
	for n := range nodes {
		kind := loaxa.AlarmOffline
		if n%communes == 0 {
			n, kind = n+1, loaxa.AlarmMainsOff
		}
		as = append(as, &loaxa.Alarm{Kind: kind, Severity: loaxa.SeverityCritical, Node: fmt.Sprintf("n%04d", n),
			Area: y.commune(n % communes), Detail: "no state for 10 min", Start: y.typhoon})
	}
	must(b, s.CreateAlarms(ctx, as))
	return db, s, y
}

const typhoonNodes, typhoonCommunes, typhoonEach = 5000, 200, 20

// typhoonStore says what typhoonYear stored: its first alarm's start,
// the typhoon's (the open alarms'), and commune c's area.
type typhoonStore struct {
	start, typhoon time.Time
	commune        func(c int) string
}

// BenchmarkFindAlarmsByPlace: a typhoon year in a province of 5,000
// clusters in 200 communes (10 districts): 100,000 ended alarms and, on
// the typhoon's day, 5,000 open on every commune but one. What a list
// filtered by cluster or by area pays (GET /api/v1/alarms?node=,
// ?area=&state=closed, the overview's ?area=&state=open), and the
// province-wide lists for comparison.
func BenchmarkFindAlarmsByPlace(b *testing.B) {
	_, s, y := typhoonYear(b)
	ctx := context.Background()
	commune := y.commune
	const nodes, communes, each = typhoonNodes, typhoonCommunes, typhoonEach
	for _, r := range []struct {
		name string
		f    loaxa.AlarmFilter
		want int
	}{
		// A technician's look at one cluster's history.
		{"cluster", loaxa.AlarmFilter{Node: "n0123"}, each + 1},
		// A commune's closed alarms, and a quiet commune's history.
		{"commune-closed", loaxa.AlarmFilter{Within: commune(7), Open: "closed"}, each * nodes / communes},
		{"quiet-commune-all", loaxa.AlarmFilter{Within: commune(0)}, each * nodes / communes},
		// The overview of a commune with none of its own open.
		{"quiet-commune-open", loaxa.AlarmFilter{Within: commune(0), Open: "open", Limit: 100}, 0},
		// A district's (21 areas): the overview's and the alarm page's.
		{"district-open", loaxa.AlarmFilter{Within: "hp.d3", Open: "open", Limit: 100}, 100},
		{"district-all", loaxa.AlarmFilter{Within: "hp.d3"}, bolt.DefaultAlarmLimit},
		// The province's lists: the overview's newest open, the alarm
		// page's newest of both.
		{"province-open", loaxa.AlarmFilter{Within: "hp", Open: "open", Limit: 100}, 100},
		{"province-all", loaxa.AlarmFilter{Within: "hp"}, bolt.DefaultAlarmLimit},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindAlarms(ctx, r.f)
				if err != nil || len(got) != r.want {
					b.Fatalf("%d alarms listed, %v; want %d", len(got), err, r.want)
				}
			}
		})
	}
}

// BenchmarkFindAlarmsNarrow: the typhoon year of BenchmarkFindAlarmsByPlace
// (211 areas: more than FindAlarms merges), listed by a province officer
// with a narrow filter: one kind (none stored, one only ended, one open on
// 25 clusters, one of every fifth alarm), or one state.
func BenchmarkFindAlarmsNarrow(b *testing.B) {
	_, s, _ := typhoonYear(b)
	ctx := context.Background()
	for _, r := range []struct {
		name string
		f    loaxa.AlarmFilter
		want int
	}{
		{"kind-none", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmSpeakerShort}, 0},
		{"kind-closed", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmAmplifier, Open: "closed"}, bolt.DefaultAlarmLimit},
		{"kind-open-none", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmDoorOpen, Open: "open", Limit: 100}, 0},
		{"kind-open-some", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmMainsOff, Open: "open", Limit: 100}, 25},
		{"kind-all", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmDoorOpen}, bolt.DefaultAlarmLimit},
		{"closed", loaxa.AlarmFilter{Within: "hp", Open: "closed"}, bolt.DefaultAlarmLimit},
		// The emergency board's read of every open alarm of a silencing
		// kind (none open in the typhoon: they are offline and mains off).
		{"open-speaker-line", loaxa.AlarmFilter{Within: "hp", Kind: loaxa.AlarmSpeakerOpen, Open: "open", Limit: bolt.MaxAlarmLimit}, 0},
		// The emergency board's read: every open alarm as it was (the
		// newest 10,000), the silencing kinds as it is.
		{"board-all-kinds", loaxa.AlarmFilter{Within: "hp", Open: "open", Limit: bolt.MaxAlarmLimit}, typhoonNodes},
		{"board-silencing", loaxa.AlarmFilter{Within: "hp", Kinds: loaxa.SilencingFaults, Open: "open", Limit: bolt.MaxAlarmLimit}, 0},
	} {
		b.Run(r.name, func(b *testing.B) {
			var got []*loaxa.Alarm
			for b.Loop() {
				var err error
				got, err = s.FindAlarms(ctx, r.f)
				if err != nil || len(got) != r.want {
					b.Fatalf("%d alarms listed, %v; want %d", len(got), err, r.want)
				}
			}
			// What the answer weighs on the wire (GET /alarms's JSON).
			body, err := json.Marshal(map[string]any{"alarms": got})
			must(b, err)
			b.ReportMetric(float64(len(body)), "json-bytes")
		})
	}
}

// BenchmarkFindAlarmsFromTo: the typhoon year's alarms listed over a time
// range (GET /api/v1/alarms?from=&to=): a day a month into the year (1,440
// started, the newest 1,000 listed), an hour of it, a commune's day (8), the
// whole store's day (an admin's), the year's first day asked at its end,
// the alarms since the typhoon (the open 5,000) and everything since the
// year's second day.
func BenchmarkFindAlarmsFromTo(b *testing.B) {
	_, s, y := typhoonYear(b)
	ctx := context.Background()
	day := y.start.Add(30 * 24 * time.Hour)
	for _, r := range []struct {
		name string
		f    loaxa.AlarmFilter
		want int
	}{
		{"province-day", loaxa.AlarmFilter{Within: "hp", From: day, To: day.Add(24 * time.Hour)}, bolt.DefaultAlarmLimit},
		{"province-hour", loaxa.AlarmFilter{Within: "hp", From: day, To: day.Add(time.Hour)}, 60},
		{"commune-day", loaxa.AlarmFilter{Within: y.commune(7), From: day, To: day.Add(24 * time.Hour)}, 8},
		{"all-day", loaxa.AlarmFilter{From: day, To: day.Add(24 * time.Hour)}, bolt.DefaultAlarmLimit},
		{"first-day", loaxa.AlarmFilter{Within: "hp", To: y.start.Add(24 * time.Hour)}, bolt.DefaultAlarmLimit},
		{"since-typhoon", loaxa.AlarmFilter{Within: "hp", From: y.typhoon}, bolt.DefaultAlarmLimit},
		{"since-second-day", loaxa.AlarmFilter{Within: "hp", From: y.start.Add(24 * time.Hour)}, bolt.DefaultAlarmLimit},
		// The same with a to past the newest: every alarm a candidate.
		{"second-day-to-now", loaxa.AlarmFilter{Within: "hp", From: y.start.Add(24 * time.Hour), To: y.typhoon.Add(time.Hour)}, bolt.DefaultAlarmLimit},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindAlarms(ctx, r.f)
				if err != nil || len(got) != r.want {
					b.Fatalf("%d alarms listed, %v; want %d", len(got), err, r.want)
				}
			}
		})
	}
}

// BenchmarkFindAlarmsOpenDuringByArea: the reports' read of the alarms open
// during a range (FindAlarmsOpenDuring) in the typhoon year of
// BenchmarkFindAlarmsByPlace, whose alarms are spread over 200 communes: a
// commune's and a district's month before the typhoon and their last 10
// minutes (an alert's report), and the province's month.
func BenchmarkFindAlarmsOpenDuringByArea(b *testing.B) {
	_, s, y := typhoonYear(b)
	ctx := context.Background()
	end := y.typhoon.Add(10 * time.Minute)
	for _, r := range []struct {
		name     string
		area     string
		from, to time.Time
		want     int
	}{
		{"commune-month", y.commune(7), end.AddDate(0, -1, 0), end, 100},
		{"district-month", "hp.d3", end.AddDate(0, -1, 0), end, 1825},
		{"commune-alert", y.commune(7), end.Add(-10 * time.Minute), end, 0},
		{"district-alert", "hp.d3", end.Add(-10 * time.Minute), end, 0},
		{"province-month", "hp", end.AddDate(0, -1, 0), end, 17300},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindAlarmsOpenDuring(ctx, r.area, loaxa.SilencingFaults, r.from, r.to)
				if err != nil || len(got) != r.want {
					b.Fatalf("%d alarms, %v; want %d", len(got), err, r.want)
				}
			}
		})
	}
}

// BenchmarkPurgeAlarms: the retention purge of the typhoon year's first
// 35 days of alarms (50,400 ended), on a store built again for each run
// (-benchtime=Nx): what the alarms' part of a purge costs, apart from the
// deliveries and events that make most of BenchmarkPurge.
func BenchmarkPurgeAlarms(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, _, y := typhoonYear(b)
		b.StartTimer()
		p, err := db.Purge(context.Background(), y.start.Add(35*24*time.Hour), 0)
		must(b, err)
		if p.Alarms != 35*24*60-60 {
			b.Fatalf("purged %d alarms, want %d", p.Alarms, 35*24*60-60)
		}
		b.ReportMetric(float64(p.LongestTx.Microseconds())/1000, "longest-tx-ms")
		b.ReportMetric(float64(p.Transactions), "transactions")
	}
}

// TestAlarmIndexesAnswerAsAScan: the reads that go by the indexes of
// alarms (the open ones for the lists and the health monitor, the spans
// for the reports over a time range, the nodes' and areas' for the lists
// of a cluster or an area, open, closed or both) answer exactly what a plain scan of
// every stored alarm answers, over randomized alarm sets: alarms opened,
// ended (at once, later, at their start, before their start by a skewed
// clock), raised again on the same node, lasting from nothing to most of
// a year, at times that are not whole milliseconds, of clusters and of
// bulletins (no node), in areas of a subtree of more areas than FindAlarms
// merges (read by the scan); lists narrowed by kind, state and a time
// range (from, to or both: the span index); after a store of schema 8 (no nodes' and areas'
// index) and one of schema 7 (no spans either) are brought up to date; and after the retention
// purge removed ended alarms, the indexes holding exactly the alarms
// stored each time.
func TestAlarmIndexesAnswerAsAScan(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 31))
			db, _ := MustOpenDB(t)
			mustTree(t, db)
			// A subtree of more areas than FindAlarms merges (hn's, a
			// province's 200 communes), read by the scan.
			for i := range 130 {
				mustArea(t, db, fmt.Sprintf("hn.x%03d", i), "hn")
			}
			s := bolt.NewAlarmService(db)
			ctx := context.Background()
			areas := []string{"hp.an-duong.le-loi", "hp.an-duong.le-loi.t1", "hp.an-duong.an-hoa", "hp.thuy-nguyen", "hn", "hn.x000", "hn.x077", "hn.x129"}
			kinds := []string{loaxa.AlarmSpeakerOpen, loaxa.AlarmOffline, loaxa.AlarmDoorOpen, loaxa.AlarmAmplifier}
			year := 365 * 24 * time.Hour
			// length is an alarm's length: nothing, or from a fraction of
			// a millisecond to most of a year, log-uniform, so that every
			// class of alarm_spans has some.
			length := func() time.Duration {
				if rnd.IntN(10) == 0 {
					return 0
				}
				return time.Duration(float64(time.Microsecond) * float64(int64(1)<<rnd.IntN(45)) * (1 + rnd.Float64()))
			}
			var open []*loaxa.Alarm
			raise := func(n int) {
				var as []*loaxa.Alarm
				for range n {
					a := &loaxa.Alarm{Kind: kinds[rnd.IntN(len(kinds))], Node: fmt.Sprintf("n%d", rnd.IntN(20)), Area: areas[rnd.IntN(len(areas))],
						Start: t0.Add(time.Duration(rnd.Int64N(int64(year))))}
					if rnd.IntN(20) == 0 {
						// A bulletin's alarm: of no node.
						a.Kind, a.Node, a.Facts.Announcement = loaxa.AlarmBulletinUnschedulable, "", fmt.Sprintf("an%d", rnd.IntN(3))
					}
					if rnd.IntN(3) == 0 {
						a.End = a.Start.Add(length()) // stored ended
					}
					as = append(as, a)
				}
				must(t, s.CreateAlarms(ctx, as))
				for _, a := range as {
					if a.Open() {
						open = append(open, a)
					}
				}
			}
			end := func(n int) {
				for range min(n, len(open)) {
					i := rnd.IntN(len(open))
					a := open[i]
					open = slices.Delete(open, i, i+1)
					at := a.Start.Add(length())
					if rnd.IntN(20) == 0 {
						at = a.Start.Add(-length()) // a clock that went back
					}
					ended, err := s.EndAlarm(ctx, a.ID, at)
					must(t, err)
					if rnd.IntN(4) == 0 {
						// Raised again on the same node.
						again := &loaxa.Alarm{Kind: a.Kind, Node: a.Node, Area: a.Area, Facts: a.Facts, Start: ended.End.Add(length())}
						must(t, s.CreateAlarm(ctx, again))
						open = append(open, again)
					}
				}
			}
			compare := func(when string) {
				t.Helper()
				if err := bolt.CheckAlarmIndexes(db); err != nil {
					t.Fatalf("%s: alarm indexes: %v", when, err)
				}
				all, err := s.FindAlarms(ctx, loaxa.AlarmFilter{Limit: bolt.MaxAlarmLimit}) // every alarm, newest first: the plain scan
				must(t, err)
				oldest := slices.Clone(all)
				slices.Reverse(oldest)
				var wantOpen []*loaxa.Alarm
				for _, a := range oldest {
					if a.Open() {
						wantOpen = append(wantOpen, a)
					}
				}
				gotOpen, err := s.FindOpenAlarms(ctx)
				must(t, err)
				sameAlarms(t, when+": FindOpenAlarms", gotOpen, wantOpen)
				for range 60 {
					// The lists: open (the overviews, the emergency page),
					// closed or both (a cluster's or an area's history).
					f := loaxa.AlarmFilter{Open: []string{"open", "closed", ""}[rnd.IntN(3)], Limit: 1 + rnd.IntN(len(all)+1)}
					if rnd.IntN(2) == 0 {
						f.Within = []string{"hp", "hp.an-duong", "hp.an-duong.le-loi", "hp.thuy-nguyen", "hn", "hn.x077"}[rnd.IntN(6)]
					}
					switch rnd.IntN(6) {
					case 0, 1:
						f.Kind = kinds[rnd.IntN(len(kinds))]
					case 2:
						// Several, as the emergency board reads them.
						f.Kinds = kinds[rnd.IntN(len(kinds)):]
						if rnd.IntN(2) == 0 {
							f.Kind = kinds[rnd.IntN(len(kinds))]
						}
					}
					if rnd.IntN(3) == 0 {
						f.Node = fmt.Sprintf("n%d", rnd.IntN(20))
					}
					switch rnd.IntN(6) {
					case 0, 1:
						f.From = t0.Add(time.Duration(rnd.Int64N(int64(year))))
						f.To = f.From.Add(length())
					case 2:
						f.From = t0.Add(time.Duration(rnd.Int64N(int64(year))))
					case 3:
						f.To = t0.Add(time.Duration(rnd.Int64N(int64(year))))
					case 4:
						if len(all) > 0 {
							// At an alarm's very start, where a
							// nanosecond decides.
							a := all[rnd.IntN(len(all))]
							f.From, f.To = a.Start, a.Start.Add(time.Nanosecond)
							if rnd.IntN(2) == 0 {
								f.From, f.To = a.Start.Add(-length()), a.Start
							}
						}
					}
					var want []*loaxa.Alarm
					for _, a := range all {
						switch {
						case len(want) == f.Limit:
						case f.Open == "open" && !a.Open(), f.Open == "closed" && a.Open(), !inSubtree(a.Area, f.Within), (f.Kind != "" || f.Kinds != nil) && a.Kind != f.Kind && !slices.Contains(f.Kinds, a.Kind), f.Node != "" && a.Node != f.Node:
						case !f.From.IsZero() && a.Start.Before(f.From), !f.To.IsZero() && !a.Start.Before(f.To):
						default:
							want = append(want, a)
						}
					}
					got, err := s.FindAlarms(ctx, f)
					must(t, err)
					sameAlarms(t, fmt.Sprintf("%s: FindAlarms(%+v)", when, f), got, want)
				}
				for i := range 40 {
					from := t0.Add(time.Duration(rnd.Int64N(int64(year + year/4))))
					to := from.Add(length())
					if i%4 == 0 && len(all) > 0 {
						// At an alarm's very end or start, where one
						// millisecond or nanosecond decides.
						a := all[rnd.IntN(len(all))]
						from, to = a.Start, a.Start.Add(time.Nanosecond)
						if !a.End.IsZero() {
							from, to = a.End.Add(-time.Nanosecond), a.End
						}
					}
					area := []string{"", "hp", "hp.an-duong.le-loi", "hn", "hn.x129"}[rnd.IntN(5)]
					var ks []string
					if rnd.IntN(2) == 0 {
						ks = kinds[:1+rnd.IntN(len(kinds))]
					}
					var want []*loaxa.Alarm
					for _, a := range oldest {
						if inSubtree(a.Area, area) && (len(ks) == 0 || slices.Contains(ks, a.Kind)) && a.Start.Before(to) && (a.Open() || a.End.After(from)) {
							want = append(want, a)
						}
					}
					got, err := s.FindAlarmsOpenDuring(ctx, area, ks, from, to)
					must(t, err)
					sameAlarms(t, fmt.Sprintf("%s: FindAlarmsOpenDuring(%q, %q, %s, %s)", when, area, ks, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)), got, want)
				}
			}
			raise(300)
			end(150)
			raise(100)
			end(100)
			compare("opened and ended")

			must(t, bolt.AsSchema8(db))
			must(t, db.Close())
			must(t, db.Open())
			compare("after the upgrade from schema 8")

			must(t, bolt.AsSchema7(db))
			must(t, db.Close())
			must(t, db.Open())
			compare("after the upgrade from schema 7")

			p, err := db.Purge(ctx, t0.Add(time.Duration(rnd.Int64N(int64(year)))), 1+rnd.IntN(50))
			must(t, err)
			if p.Alarms == 0 {
				t.Errorf("the purge deleted no alarm; the test wants some gone")
			}
			compare("after the purge")
			raise(100)
			end(100)
			compare("opened and ended after the purge")
		})
	}
}

// inSubtree reports whether area lies in root's subtree of mustTree's
// areas (every area if root is "").
func inSubtree(area, root string) bool {
	return root == "" || area == root || len(area) > len(root) && area[:len(root)] == root && area[len(root)] == '.'
}

// sameAlarms fails unless got and want hold the same alarms in the same
// order.
func sameAlarms(t *testing.T, what string, got, want []*loaxa.Alarm) {
	t.Helper()
	ids := func(as []*loaxa.Alarm) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = a.ID
		}
		return out
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("%s = %d alarms %v,\nthe plain scan %d alarms %v", what, len(g), g, len(w), w)
	}
}

// TestMoveAlarm: the open alarm of a cluster moved to another commune is
// filed under the new one, found by its technicians' listing and no
// longer by the old commune's, its index kept in step (the store's check
// on cleanup); an ended one stays where it happened.
func TestMoveAlarm(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustTree(t, db)
	s := bolt.NewAlarmService(db)
	ctx := context.Background()
	open := loaxa.Alarm{Kind: loaxa.AlarmDoorOpen, Node: "n1", Area: "hp.an-duong.le-loi", Start: clk.Now()}
	ended := loaxa.Alarm{Kind: loaxa.AlarmOffline, Node: "n1", Area: "hp.an-duong.le-loi", Start: clk.Now()}
	must(t, s.CreateAlarm(ctx, &open))
	must(t, s.CreateAlarm(ctx, &ended))
	clk.Advance(time.Minute)
	_, err := s.EndAlarm(ctx, ended.ID, clk.Now())
	must(t, err)
	for _, id := range []string{open.ID, ended.ID} {
		_, err := s.MoveAlarm(ctx, id, "hp.thuy-nguyen")
		must(t, err)
	}
	for area, want := range map[string][]string{"hp.thuy-nguyen": {open.ID}, "hp.an-duong": {ended.ID}} {
		as, err := s.FindAlarms(ctx, loaxa.AlarmFilter{Within: area})
		must(t, err)
		var ids []string
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("alarms within %s: %v, want %v", area, ids, want)
		}
	}
	if _, err := s.MoveAlarm(ctx, "al999999", "hn"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("an unknown alarm: %v, want ENotFound", err)
	}
}
