package bolt_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestOpenMarksOldDrillDeliveries: a store of schema 1 kept the
// deliveries of drill emergencies without the drill mark, so reports
// counted those exercises as emergencies. Open brings it to the current
// schema: the drill's deliveries are marked, a real emergency's are not,
// and a second Open changes nothing.
func TestOpenMarksOldDrillDeliveries(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustNode(t, db, "n1", "31")
	mustNode(t, db, "n2", "31")
	ems, ds := bolt.NewEmergencyService(db), bolt.NewDeliveryService(db)
	var ids []string
	for _, drill := range []bool{true, false} {
		em := &loaxa.Emergency{Title: "Bão số 3", Drill: drill, Targets: []string{"31"}}
		must(t, ems.CreateEmergency(ctx, em))
		ids = append(ids, em.ID)
		occ := loaxa.OccurrenceID(em.ID, t0.Add(time.Minute))
		must(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{
			{Announcement: em.ID, Occurrence: occ, Node: "n1", Start: t0.Add(time.Minute), Drill: drill},
			{Announcement: em.ID, Occurrence: occ, Node: "n2", Start: t0.Add(time.Minute), Drill: drill},
		}))
	}
	must(t, bolt.AsSchema1(db))
	drills := func() map[string]int {
		out := map[string]int{}
		for _, id := range ids {
			got, err := ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
			must(t, err)
			for _, d := range got {
				if d.Drill {
					out[id]++
				}
			}
		}
		return out
	}
	if got := drills(); len(got) != 0 {
		t.Fatalf("set-up: drill marks %v before the migration", got)
	}

	for range 2 {
		must(t, db.Close())
		must(t, db.Open())
		if got := drills(); got[ids[0]] != 2 || got[ids[1]] != 0 {
			t.Errorf("after Open: drill marks per emergency %v, want 2 on the drill %s and none on %s", got, ids[0], ids[1])
		}
	}
}

// TestOpenIndexesCapReferences: a store of schema 2 kept CAP alerts
// without the by-reference index. Open brings it up to date: a Cancel
// stored before is found by the alert it references, and an alert stored
// after is indexed as it is created.
func TestOpenIndexesCapReferences(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	caps := bolt.NewCapService(db)
	cancel := &loaxa.CapAlert{Key: "nchmf.gov.vn,c1", MsgType: "Cancel", References: []string{"nchmf.gov.vn,p1"}, Action: "cancel"}
	must(t, caps.CreateCapAlert(ctx, cancel))
	must(t, bolt.AsSchema2(db))
	refs := func(key string) []string {
		got, err := caps.FindCapAlertsReferencing(ctx, key)
		must(t, err)
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		return ids
	}
	if got := refs("nchmf.gov.vn,p1"); len(got) != 0 {
		t.Fatalf("set-up: %v found by reference before the migration", got)
	}
	must(t, db.Close())
	must(t, db.Open())
	update := &loaxa.CapAlert{Key: "nchmf.gov.vn,u1", MsgType: "Update", References: []string{"nchmf.gov.vn,p1", "nchmf.gov.vn,p0"}, Action: "pending"}
	must(t, caps.CreateCapAlert(ctx, update))
	if got := refs("nchmf.gov.vn,p1"); !slices.Equal(got, []string{cancel.ID, update.ID}) {
		t.Errorf("alerts referencing p1: %v, want the Cancel %s and the Update %s, oldest first", got, cancel.ID, update.ID)
	}
	// A key that begins another is not that key.
	if got := refs("nchmf.gov.vn,p"); len(got) != 0 {
		t.Errorf("alerts referencing p: %v, want none", got)
	}
}

// TestOpenIndexesOpenDeliveries: a store of schema 3 had no index of the
// open deliveries, which DropDeliveries reads instead of a node's whole
// history. Open builds it: a pending delivery stored before is dropped
// when its occurrence is no longer planned, and a completed one, or one
// already over, stays.
func TestOpenIndexesOpenDeliveries(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustNode(t, db, "n1", "31")
	ds := bolt.NewDeliveryService(db)
	at := func(d time.Duration) *loaxa.Delivery {
		start := t0.Add(d)
		return &loaxa.Delivery{Announcement: "a000001", Occurrence: loaxa.OccurrenceID("a000001", start), Node: "n1", Start: start, PlannedMS: 60_000}
	}
	past, played, cancelled := at(-24*time.Hour), at(-time.Hour), at(time.Hour)
	played.State = loaxa.DeliveryCompleted
	must(t, ds.EnsureDeliveries(ctx, []*loaxa.Delivery{past, played, cancelled}))
	must(t, bolt.AsSchema3(db))
	must(t, db.Close())
	must(t, db.Open())
	must(t, ds.DropDeliveries(ctx, map[string]map[string]bool{"n1": {}}, clk.Now(), 10*time.Minute))
	got, err := ds.FindDeliveries(ctx, loaxa.DeliveryFilter{Node: "n1"})
	must(t, err)
	want := []string{past.Occurrence + "/n1 pending", played.Occurrence + "/n1 completed"}
	if ids := deliveryIDs(got); !slices.Equal(ids, want) {
		t.Errorf("deliveries after the drop %q, want %q (the cancelled %s dropped)", ids, want, cancelled.Occurrence)
	}
}

// TestOpenIndexesLiveCallsOnAir: a store written before the calls on air
// were indexed (schema 4) has Open index them, so that a call a crashed
// controller left on air is found, and closed, after the upgrade.
func TestOpenIndexesLiveCallsOnAir(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	s := bolt.NewLiveCallService(db)
	for i, id := range []string{"live-left", "live-over"} {
		must(t, s.CreateLiveCall(ctx, &loaxa.LiveCall{ID: id, CreatedBy: "an", Areas: []string{"31"}, Priority: protocol.PriorityHigh,
			Started: t0.Add(time.Duration(i) * time.Minute)}))
	}
	_, err := s.UpdateLiveCall(ctx, "live-over", func(c *loaxa.LiveCall) error {
		c.Ended, c.EndReason = t0.Add(time.Hour), loaxa.LiveEndSpeakerStopped
		return nil
	})
	must(t, err)
	must(t, bolt.AsSchema4(db))
	if cs, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{Active: true}); err != nil || len(cs) != 0 {
		t.Fatalf("calls on air in the schema-4 store before Open: %v, %v; want none indexed", liveCallIDs(cs), err)
	}
	must(t, db.Close())
	must(t, db.Open())
	cs, err := s.FindLiveCalls(ctx, loaxa.LiveCallFilter{Active: true})
	must(t, err)
	if got := liveCallIDs(cs); !slices.Equal(got, []string{"live-left"}) {
		t.Errorf("calls on air after Open brought the store up to date: %q, want the one left on air", got)
	}
}

// TestOpenIndexesRunningRollouts: a store written before the running
// rollouts were indexed (schema 5) has Open index them, so that the
// runner goes on driving a rollout in progress, and asking the nodes a
// done one did not reach, after the upgrade.
func TestOpenIndexesRunningRollouts(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	s := bolt.NewReleaseService(db)
	mustRollout(t, s, loaxa.RolloutDone, 0)
	rolling := mustRollout(t, s, loaxa.RolloutRolling, 0)
	mustRollout(t, s, loaxa.RolloutHalted, 0)
	waiting := mustRollout(t, s, loaxa.RolloutDone, 1)
	must(t, bolt.AsSchema5(db))
	if ros, err := s.FindRollouts(ctx, loaxa.RolloutFilter{Running: true}); err != nil || len(ros) != 0 {
		t.Fatalf("running rollouts in the schema-5 store before Open: %v, %v; want none indexed", rolloutIDs(ros), err)
	}
	must(t, db.Close())
	must(t, db.Open())
	ros, err := s.FindRollouts(ctx, loaxa.RolloutFilter{Running: true})
	must(t, err)
	if got, want := rolloutIDs(ros), []string{rolling, waiting}; !slices.Equal(got, want) {
		t.Errorf("running rollouts after Open %q, want %q", got, want)
	}
}

// TestOpenWithoutRolloutsIndexesNone: a schema-5 store that never held a
// rollout (its bucket is made on the first) opens.
func TestOpenWithoutRolloutsIndexesNone(t *testing.T) {
	db, _ := MustOpenDB(t)
	must(t, bolt.AsSchema5(db))
	must(t, db.Close())
	must(t, db.Open())
	ros, err := bolt.NewReleaseService(db).FindRollouts(context.Background(), loaxa.RolloutFilter{Running: true})
	if err != nil || len(ros) != 0 {
		t.Errorf("running rollouts %v, %v; want none", rolloutIDs(ros), err)
	}
}

// TestOpenIndexesAlarmEnds: a store written before the alarms were
// indexed by their end (schema 6) has Open index them, so that the
// reports that read the alarm history over a range (an alert's silenced_by,
// the broadcast report's silenced) still find the faults raised before
// the upgrade.
func TestOpenIndexesAlarmEnds(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	s := bolt.NewAlarmService(db)
	ended := &loaxa.Alarm{Kind: loaxa.AlarmSpeakerOpen, Node: "n1", Area: "hp", Start: t0}
	open := &loaxa.Alarm{Kind: loaxa.AlarmAmplifier, Node: "n2", Area: "hp", Start: t0.Add(time.Minute)}
	must(t, s.CreateAlarms(ctx, []*loaxa.Alarm{ended, open}))
	_, err := s.EndAlarm(ctx, ended.ID, t0.Add(time.Hour))
	must(t, err)
	must(t, bolt.AsSchema6(db))
	if as, err := s.FindAlarmsOpenDuring(ctx, "", nil, t0, t0.Add(2*time.Hour)); err != nil || len(as) != 0 {
		t.Fatalf("alarms in the schema-6 store before Open: %d, %v; want none indexed", len(as), err)
	}
	must(t, db.Close())
	must(t, db.Open())
	as, err := s.FindAlarmsOpenDuring(ctx, "", nil, t0, t0.Add(2*time.Hour))
	must(t, err)
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	if want := []string{ended.ID, open.ID}; !slices.Equal(ids, want) {
		t.Errorf("alarms open during the range after Open brought the store up to date: %q, want %q", ids, want)
	}
}

// BenchmarkOpenIndexesAlarmSpans: the start that brings a store of schema
// 7 with a bad year's alarms (100,000 ended, 5,000 open) up to date: the
// index of spans built from every alarm (and, since schema 9, that of
// their nodes and areas: BenchmarkOpenIndexesAlarmPlaces alone).
func BenchmarkOpenIndexesAlarmSpans(b *testing.B) { benchmarkAlarmUpgrade(b, bolt.AsSchema7) }

// BenchmarkOpenIndexesAlarmPlaces: the start that brings a store of
// schema 8 with a bad year's alarms up to date: the index of their nodes
// and areas built from every alarm.
func BenchmarkOpenIndexesAlarmPlaces(b *testing.B) { benchmarkAlarmUpgrade(b, bolt.AsSchema8) }

func benchmarkAlarmUpgrade(b *testing.B, asOld func(*bolt.DB) error) {
	ctx := context.Background()
	db, _ := MustOpenDB(b)
	s := bolt.NewAlarmService(db)
	for batch := range 21 {
		as := make([]*loaxa.Alarm, 0, 5000)
		for n := range 5000 {
			at := t0.Add(time.Duration(batch*5000+n) * time.Minute)
			a := &loaxa.Alarm{Kind: loaxa.AlarmOffline, Node: fmt.Sprintf("n%04d", n), Area: "hp", Detail: "no state for 10 min", Start: at}
			if batch < 20 {
				a.End = at.Add(time.Hour)
			}
			as = append(as, a)
		}
		must(b, s.CreateAlarms(ctx, as))
	}
	for b.Loop() {
		b.StopTimer()
		must(b, asOld(db))
		must(b, db.Close())
		b.StartTimer()
		must(b, db.Open())
	}
}

// TestOpenMarksWithdrawnCapAlerts: a store of schema 10 kept CAP alerts
// that a later Cancel or Update withdrew as they were when they came, so
// GET /api/v1/cap listed a typhoon warning the service called off as
// "play", as if it still sounded. Open marks each with the alert that
// withdrew it and when, as the controller does now when it withdraws one;
// what was not withdrawn (an Update still waiting, or withdrawn while it
// waited, a Cancel of the other status, an alert that came after its
// Cancel and played) stays unmarked, and one marked already keeps its
// mark. An alert that did not sound is withdrawn by a waiting Update, and
// an Update that came after its own Cancel withdrew what it references.
func TestOpenMarksWithdrawnCapAlerts(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	caps := bolt.NewCapService(db)
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	seq := 0
	store := func(key, status, msgType, action string, refs ...string) *loaxa.CapAlert {
		t.Helper()
		seq++
		a := &loaxa.CapAlert{Key: "nchmf.gov.vn," + key, Status: status, MsgType: msgType, Action: action,
			ReceivedAt: at(seq), Targets: []string{"12346"}}
		if action == "play" || action == "drill" || action == "approved" {
			a.Emergency = "e-" + key // it sounds
		}
		for _, r := range refs {
			a.References = append(a.References, "nchmf.gov.vn,"+r)
		}
		must(t, caps.CreateCapAlert(ctx, a))
		return a
	}
	p1 := store("p1", "Actual", "Alert", "play")
	c1 := store("c1", "Actual", "Cancel", "cancel", "p1")
	p2 := store("p2", "Actual", "Alert", "play")
	u2 := store("u2", "Actual", "Update", "play", "p2")
	p3 := store("p3", "Actual", "Alert", "approved")
	u3 := store("u3", "Actual", "Update", "approved", "p3")
	_, err := caps.UpdateCapAlert(ctx, u3.ID, func(a *loaxa.CapAlert) error { a.ApprovedAt = at(90); return nil })
	must(t, err)
	store("p4", "Actual", "Alert", "play")
	store("u4", "Actual", "Update", "pending", "p4") // waits: p4 sounds on
	p5 := store("p5", "Actual", "Alert", "cancelled")
	c5 := store("c5", "Actual", "Cancel", "cancel", "p5")
	c6 := store("c6", "Actual", "Cancel", "cancel", "p6")
	p6 := store("p6", "Actual", "Alert", "cancelled") // came after its Cancel
	store("p7", "Actual", "Alert", "play")
	store("c7", "Exercise", "Cancel", "cancel", "p7") // a drill's Cancel does not stop a real warning
	p8 := store("p8", "Actual", "Alert", "play")
	u8 := store("u8", "Actual", "Update", "play", "p8")
	c8 := store("c8", "Actual", "Cancel", "cancel", "p8", "u8") // p8's first withdrawal stays
	store("c9", "Actual", "Cancel", "cancel", "p9")
	store("p9", "Actual", "Alert", "play") // came after, under a controller that played it
	p10 := store("p10", "Actual", "Alert", "play")
	kept := &loaxa.CapWithdrawal{By: "c000099", Key: "nchmf.gov.vn,elsewhere", MsgType: "Cancel", At: at(120)}
	_, err = caps.UpdateCapAlert(ctx, p10.ID, func(a *loaxa.CapAlert) error { a.Withdrawn = kept; return nil })
	must(t, err)
	store("c10", "Actual", "Cancel", "cancel", "p10")
	store("p11", "Actual", "Alert", "pending")
	// An alert that did not sound is withdrawn by an Update as it came,
	// even one that waits (nothing is left sounding).
	p12 := store("p12", "Actual", "Alert", "no-target")
	u12 := store("u12", "Actual", "Update", "pending", "p12")
	// An Update that came after its own Cancel was withdrawn as it came,
	// and withdrew what it references then; one withdrawn while it waited
	// left what it references sounding.
	p13 := store("p13", "Actual", "Alert", "play")
	c13 := store("c13", "Actual", "Cancel", "cancel", "u13")
	u13 := store("u13", "Actual", "Update", "cancelled", "p13")
	store("p14", "Actual", "Alert", "play")
	u14 := store("u14", "Actual", "Update", "cancelled", "p14")
	c14 := store("c14", "Actual", "Cancel", "cancel", "u14")

	must(t, bolt.AsSchema10(db))
	must(t, db.Close())
	must(t, db.Open())

	want := map[string]*loaxa.CapWithdrawal{
		p1.ID:  {By: c1.ID, Key: c1.Key, MsgType: "Cancel", At: c1.ReceivedAt},
		p2.ID:  {By: u2.ID, Key: u2.Key, MsgType: "Update", At: u2.ReceivedAt},
		p3.ID:  {By: u3.ID, Key: u3.Key, MsgType: "Update", At: at(90)},
		p5.ID:  {By: c5.ID, Key: c5.Key, MsgType: "Cancel", At: c5.ReceivedAt},
		p6.ID:  {By: c6.ID, Key: c6.Key, MsgType: "Cancel", At: p6.ReceivedAt},
		p8.ID:  {By: u8.ID, Key: u8.Key, MsgType: "Update", At: u8.ReceivedAt},
		u8.ID:  {By: c8.ID, Key: c8.Key, MsgType: "Cancel", At: c8.ReceivedAt},
		p10.ID: kept,
		p12.ID: {By: u12.ID, Key: u12.Key, MsgType: "Update", At: u12.ReceivedAt},
		p13.ID: {By: u13.ID, Key: u13.Key, MsgType: "Update", At: u13.ReceivedAt},
		u13.ID: {By: c13.ID, Key: c13.Key, MsgType: "Cancel", At: u13.ReceivedAt},
		u14.ID: {By: c14.ID, Key: c14.Key, MsgType: "Cancel", At: c14.ReceivedAt},
	}
	all, err := caps.FindCapAlerts(ctx, 0)
	must(t, err)
	if len(all) != seq {
		t.Fatalf("%d CAP alerts after the upgrade, want %d", len(all), seq)
	}
	for _, a := range all {
		w, ok := want[a.ID]
		switch {
		case !ok && a.Withdrawn != nil:
			t.Errorf("%s (%s, %s) marked withdrawn %+v; it was not", a.ID, a.Key, a.Action, a.Withdrawn)
		case ok && (a.Withdrawn == nil || a.Withdrawn.By != w.By || a.Withdrawn.Key != w.Key || a.Withdrawn.MsgType != w.MsgType || !a.Withdrawn.At.Equal(w.At)):
			t.Errorf("%s (%s, %s) withdrawn %+v, want %+v", a.ID, a.Key, a.Action, a.Withdrawn, w)
		}
	}
}

// TestOpenIndexesHolidays: a store of schema 9 has its holidays indexed
// by Open, so that an add still finds the twin on the calendar, a deleted
// one frees its date, and the deleted ones that never stood on their day
// are still purged after loaxa.HolidayDeletedKept (those that stood kept).
func TestOpenIndexesHolidays(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpenDB(t) // 1 March 2025
	mustArea(t, db, "hp", "")
	s := bolt.NewHolidayService(db)
	standing := &loaxa.Holiday{Area: "hp", Date: "2025-04-30", Name: "Giải phóng miền Nam"}
	must(t, s.CreateHoliday(ctx, standing))
	never := &loaxa.Holiday{Area: "hp", Date: "2025-05-01", Name: "Quốc tế Lao động"}
	must(t, s.CreateHoliday(ctx, never))
	stood := &loaxa.Holiday{Area: "hp", Date: "2025-03-01", Name: "Nghỉ bù"}
	must(t, s.CreateHoliday(ctx, stood))
	clk.Advance(time.Hour)
	must(t, s.DeleteHoliday(ctx, never.ID))
	must(t, s.DeleteHoliday(ctx, stood.ID))
	must(t, bolt.AsSchema9(db))
	must(t, db.Close())
	must(t, db.Open())

	twin := &loaxa.Holiday{Area: "hp", Date: "2025-04-30", Name: "Giải phóng miền Nam"}
	if err := s.CreateHoliday(ctx, twin); loaxa.ErrorCode(err) != loaxa.EConflict {
		t.Errorf("twin of %s after the upgrade: %v, want a conflict", standing.ID, err)
	}
	must(t, s.CreateHoliday(ctx, &loaxa.Holiday{Area: "hp", Date: "2025-05-01", Name: "Quốc tế Lao động"}))
	clk.Advance(loaxa.HolidayDeletedKept + time.Hour)
	must(t, s.DeleteHoliday(ctx, standing.ID)) // purges as it goes
	hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: t0.AddDate(-1, 0, 0)})
	must(t, err)
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	if want := []string{stood.ID, standing.ID, "h000004"}; !slices.Equal(ids, want) {
		t.Errorf("holidays kept after the purge: %v, want %v (%s, deleted before its day, purged)", ids, want, never.ID)
	}
}

// BenchmarkOpenMarksWithdrawnCapAlerts: the start that brings a store of
// schema 10 holding a busy year's CAP alerts up to date: 10,000 alerts,
// each with 4 KB of XML as received, half of them played and then
// withdrawn by the other half (Cancels and Updates), all marked.
func BenchmarkOpenMarksWithdrawnCapAlerts(b *testing.B) {
	ctx := context.Background()
	db, _ := MustOpenDB(b)
	caps := bolt.NewCapService(db)
	xml := strings.Repeat("<alert/>", 512)
	const n = 10_000
	for i := range n / 2 {
		key := fmt.Sprintf("nchmf.gov.vn,p%d", i)
		must(b, caps.CreateCapAlert(ctx, &loaxa.CapAlert{Key: key, Status: "Actual", MsgType: "Alert", Action: "play",
			Targets: []string{"12346"}, ReceivedAt: t0, XML: xml}))
		w := &loaxa.CapAlert{Key: fmt.Sprintf("nchmf.gov.vn,w%d", i), Status: "Actual", MsgType: "Cancel", Action: "cancel",
			References: []string{key}, ReceivedAt: t0.Add(time.Minute), XML: xml}
		if i%2 == 1 {
			w.MsgType, w.Action, w.Targets = "Update", "play", []string{"12346"}
		}
		must(b, caps.CreateCapAlert(ctx, w))
	}
	for b.Loop() {
		b.StopTimer()
		must(b, bolt.UnmarkCapWithdrawals(db))
		must(b, bolt.AsSchema10(db))
		must(b, db.Close())
		b.StartTimer()
		must(b, db.Open())
	}
	b.StopTimer()
	all, err := caps.FindCapAlerts(ctx, 0)
	must(b, err)
	marked := 0
	for _, a := range all {
		if a.Withdrawn != nil {
			marked++
		}
	}
	if marked != n/2 {
		b.Fatalf("%d of %d alerts marked withdrawn, want %d", marked, n, n/2)
	}
}
