package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// retentionStore is a store with, on each side of cutoff, final and open
// deliveries, events, audit entries and ended and open alarms.
type retentionStore struct {
	db     *bolt.DB
	cutoff time.Time
	now    time.Time
	// oldFinal are the records Purge(cutoff) must delete, by kind.
	oldFinal map[string]int
}

func seedRetention(t *testing.T) *retentionStore {
	t.Helper()
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "p", "")
	mustNode(t, db, "n1", "p")
	mustNode(t, db, "n2", "p")
	now := t0.Add(500 * 24 * time.Hour)
	cutoff := now.Add(-400 * 24 * time.Hour)
	clk.Set(now)
	r := &retentionStore{db: db, cutoff: cutoff, now: now, oldFinal: map[string]int{}}

	var ds []*loaxa.Delivery
	add := func(ann string, start time.Time, node string, state loaxa.DeliveryState) {
		ds = append(ds, &loaxa.Delivery{Announcement: ann, Occurrence: loaxa.OccurrenceID(ann, start), Node: node,
			Start: start, State: state, PlannedMS: 60_000, UpdatedAt: start.Add(time.Minute)})
	}
	for i := range 10 {
		// Ten days of plays on both sides of the cutoff, and one a
		// minute before it (still a day that ends after it).
		for _, n := range []string{"n1", "n2"} {
			add(fmt.Sprintf("old%d", i), cutoff.Add(-time.Duration(i+1)*24*time.Hour), n, loaxa.DeliveryCompleted)
			add(fmt.Sprintf("new%d", i), cutoff.Add(time.Duration(i)*24*time.Hour), n, loaxa.DeliveryCompleted)
			r.oldFinal["deliveries"]++
		}
	}
	add("edge", cutoff.Add(-time.Millisecond), "n1", loaxa.DeliveryFailed)
	r.oldFinal["deliveries"]++
	// Open whatever their age: the node may still report them.
	add("oldopen", cutoff.Add(-30*24*time.Hour), "n1", loaxa.DeliveryPending)
	add("oldopen", cutoff.Add(-30*24*time.Hour), "n2", loaxa.DeliveryReceived)
	add("oldstarted", cutoff.Add(-20*24*time.Hour), "n1", loaxa.DeliveryStarted)
	add("atcut", cutoff, "n2", loaxa.DeliveryCompleted)
	must(t, bolt.NewDeliveryService(db).EnsureDeliveries(ctx, ds))

	es := bolt.NewEventService(db)
	for i, n := range []string{"n1", "n2"} {
		b := protocol.EventBatch{Epoch: "e" + n}
		for s := range 12 {
			at := cutoff.Add(time.Duration(s-6)*time.Hour + time.Duration(i)*time.Second)
			b.Events = append(b.Events, protocol.Event{Seq: uint64(s + 1), Type: protocol.EventReceived, At: at})
			if at.Before(cutoff) {
				r.oldFinal["events"]++
			}
		}
		if _, _, err := es.RecordEvents(ctx, n, b, now); err != nil {
			t.Fatal(err)
		}
	}

	as := bolt.NewAuditService(db)
	for i := range 8 {
		at := cutoff.Add(time.Duration(i-4) * time.Hour)
		must(t, as.RecordAudit(ctx, &loaxa.AuditEntry{Actor: "admin", Action: "test", At: at}))
		if at.Before(cutoff) {
			r.oldFinal["audit"]++
		}
	}

	al := bolt.NewAlarmService(db)
	alarms := []*loaxa.Alarm{
		{Kind: "offline", Node: "n1", Start: cutoff.Add(-50 * time.Hour)},      // ends before: goes
		{Kind: "offline", Node: "n1", Start: cutoff.Add(-40 * time.Hour)},      // ends after: open in the span
		{Kind: "offline", Node: "n2", Start: cutoff.Add(-90 * 24 * time.Hour)}, // open
		{Kind: "offline", Node: "n2", Start: cutoff.Add(time.Hour)},            // young, ended
	}
	must(t, al.CreateAlarms(ctx, alarms))
	for i, end := range map[int]time.Time{0: cutoff.Add(-time.Hour), 1: cutoff.Add(time.Hour), 3: cutoff.Add(2 * time.Hour)} {
		if _, err := al.EndAlarm(ctx, alarms[i].ID, end); err != nil {
			t.Fatal(err)
		}
	}
	r.oldFinal["alarms"] = 1
	return r
}

// reports is what the reports of the span from cutoff read, and what is
// open, as JSON to compare.
func (r *retentionStore) reports(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ds, err := bolt.NewDeliveryService(r.db).FindDeliveries(ctx, loaxa.DeliveryFilter{From: r.cutoff})
	must(t, err)
	evs, err := bolt.NewEventService(r.db).FindEvents(ctx, loaxa.EventFilter{From: r.cutoff, Limit: bolt.MaxEventLimit})
	must(t, err)
	audit, err := bolt.NewAuditService(r.db).FindAudit(ctx, loaxa.AuditFilter{From: r.cutoff, Limit: bolt.MaxAuditLimit})
	must(t, err)
	al := bolt.NewAlarmService(r.db)
	during, err := al.FindAlarmsOpenDuring(ctx, "p", nil, r.cutoff, r.now)
	must(t, err)
	open, err := al.FindOpenAlarms(ctx)
	must(t, err)
	var openDs []*loaxa.Delivery
	all, err := bolt.NewDeliveryService(r.db).FindDeliveries(ctx, loaxa.DeliveryFilter{})
	must(t, err)
	for _, d := range all {
		if !d.State.Terminal() {
			openDs = append(openDs, d)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		// The by-node index answers as the primary bucket does.
		byNode, err := bolt.NewDeliveryService(r.db).FindDeliveries(ctx, loaxa.DeliveryFilter{Node: n, From: r.cutoff})
		must(t, err)
		ds = append(ds, byNode...)
	}
	b, err := json.Marshal([]any{ds, evs, audit, during, open, openDs})
	must(t, err)
	return string(b)
}

// counts returns how many records of each kind the store holds.
func (r *retentionStore) counts(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	ds, err := bolt.NewDeliveryService(r.db).FindDeliveries(ctx, loaxa.DeliveryFilter{})
	must(t, err)
	evs, err := bolt.NewEventService(r.db).FindEvents(ctx, loaxa.EventFilter{Limit: bolt.MaxEventLimit})
	must(t, err)
	audit, err := bolt.NewAuditService(r.db).FindAudit(ctx, loaxa.AuditFilter{Limit: bolt.MaxAuditLimit})
	must(t, err)
	alarms, err := bolt.NewAlarmService(r.db).FindAlarms(ctx, loaxa.AlarmFilter{Limit: bolt.MaxAlarmLimit})
	must(t, err)
	return map[string]int{"deliveries": len(ds), "events": len(evs), "audit": len(audit), "alarms": len(alarms)}
}

func TestPurge(t *testing.T) {
	for _, batch := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			r := seedRetention(t)
			before, kept := r.counts(t), r.reports(t)
			p, err := r.db.Purge(context.Background(), r.cutoff, batch)
			must(t, err)
			got := map[string]int{"deliveries": p.Deliveries, "events": p.Events, "audit": p.Audit, "alarms": p.Alarms}
			after := r.counts(t)
			for kind, want := range r.oldFinal {
				if got[kind] != want {
					t.Errorf("purged %d %s, want %d", got[kind], kind, want)
				}
				if after[kind] != before[kind]-want {
					t.Errorf("%d %s left of %d, want %d", after[kind], kind, before[kind], before[kind]-want)
				}
			}
			if r.reports(t) != kept {
				t.Errorf("the span from the cutoff or what is open changed:\nbefore %s\nafter  %s", kept, r.reports(t))
			}
			// A second purge finds nothing more.
			again, err := r.db.Purge(context.Background(), r.cutoff, batch)
			must(t, err)
			if again.Total() != 0 {
				t.Errorf("a second purge deleted %+v", again)
			}
		})
	}
}

// stopAfter is a context whose Err turns to Canceled after n calls: Purge
// asks it before each step (a read of deliveries and the deletion of
// what it found, or one write transaction), so it stops a purge between
// two of them as a crash or a shutdown would.
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// A purge stopped part-way, the store closed and opened again (a restart),
// has deleted only old records, and the next purge finishes the work.
func TestPurge_Restart(t *testing.T) {
	for _, stop := range []int{1, 3, 8, 15} {
		t.Run(fmt.Sprintf("after %d steps", stop), func(t *testing.T) {
			r := seedRetention(t)
			before, kept := r.counts(t), r.reports(t)
			p, err := r.db.Purge(&stopAfter{Context: context.Background(), n: stop}, r.cutoff, 2)
			if err == nil {
				t.Fatalf("purge stopped after %d steps returned no error (%+v)", stop, p)
			}
			if p.Transactions == 0 || p.Transactions > stop {
				t.Errorf("%d write transactions before the stop, want 1 to %d", p.Transactions, stop)
			}
			must(t, r.db.Close())
			must(t, r.db.Open())
			if r.reports(t) != kept {
				t.Errorf("a purge cut short changed the retained span or what is open")
			}
			mid := r.counts(t)
			rest, err := r.db.Purge(context.Background(), r.cutoff, 2)
			must(t, err)
			after := r.counts(t)
			for kind, want := range r.oldFinal {
				if after[kind] != before[kind]-want {
					t.Errorf("%d %s left of %d (%d after the stop), want %d", after[kind], kind, before[kind], mid[kind], before[kind]-want)
				}
			}
			if p.Total()+rest.Total() != before["deliveries"]+before["events"]+before["audit"]+before["alarms"]-
				(after["deliveries"]+after["events"]+after["audit"]+after["alarms"]) {
				t.Errorf("the purges counted %d+%d deleted, the store lost %v → %v", p.Total(), rest.Total(), before, after)
			}
			if r.reports(t) != kept {
				t.Errorf("the purge after the restart changed the retained span or what is open")
			}
		})
	}
}

// BenchmarkPurge times the retention on a province's store a year on:
// "first" the purge that deletes the oldest 265 days of the year (an
// administrator setting --retain-days on a store older than it), "daily"
// the next day's purge, which deletes one day but walks every delivery's
// key (they have no index by time). The store holds a year of nodes
// clusters (default 100; LOAXA_BENCH_NODES): 20 plays a day each, the
// last week pending, with their received, started and completed events
// and a self-test event a day (LOAXA_BENCH_EVENTS=0 leaves the events
// out: a year of them at 1,000 clusters is 18 GB), and 10 ended alarms a
// cluster. Audit entries (0.02 GB a year per 1,000 clusters) are not
// seeded. It reports the whole purge (s), its longest transaction (ms),
// its transactions and what it deleted.
func BenchmarkPurge(b *testing.B) {
	nodes := envInt(b, "LOAXA_BENCH_NODES", 100, 25)
	withEvents := os.Getenv("LOAXA_BENCH_EVENTS") != "0"
	const (
		days       = 365
		playsADay  = 20
		commune    = 25
		alarmsEach = 10
		pendingFor = 7
	)
	db, ids := seededDB(b, nodes)
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	s := bolt.NewDeliveryService(db)
	for d := range days {
		day := make([]*loaxa.Delivery, 0, nodes*playsADay)
		events := make(map[string][]protocol.Event, nodes)
		for c := 0; c < nodes; c += commune {
			for p := range playsADay {
				ann := fmt.Sprintf("a%06d", c/commune*playsADay+p+1)
				start := t0.Add(time.Duration(d)*24*time.Hour + time.Duration(p)*3*time.Minute)
				occ := loaxa.OccurrenceID(ann, start)
				state := loaxa.DeliveryCompleted
				if d >= days-pendingFor {
					state = loaxa.DeliveryPending
				}
				for _, id := range ids[c:min(c+commune, nodes)] {
					day = append(day, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: start, State: state,
						Priority: protocol.PriorityNormal, PlannedMS: 180_000, PlayedMS: 180_000, ContentReady: true, UpdatedAt: start.Add(3 * time.Minute)})
					if withEvents {
						for i, t := range []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted} {
							events[id] = append(events[id], protocol.Event{Type: t, At: start.Add(time.Duration(i) * 90 * time.Second), Announcement: ann,
								Content: "3f2a9c4e8b7d6a5f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f", PlayedMS: int64(i/2) * 180_000})
						}
					}
				}
			}
		}
		must(b, s.EnsureDeliveries(ctx, day))
		if withEvents {
			for _, id := range ids {
				events[id] = append(events[id], protocol.Event{Type: protocol.EventSelfTest, At: t0.Add(time.Duration(d)*24*time.Hour - 3*time.Hour),
					Test: &protocol.TestResult{ID: "st000001", Kind: protocol.TestSilent, Pass: true, Line: protocol.LineOK}})
			}
			must(b, bolt.SeedEvents(db, "9f8e7d6c5b4a3210", events, t0.Add(time.Duration(d)*24*time.Hour)))
		}
	}
	as := bolt.NewAlarmService(db)
	alarms := make([]*loaxa.Alarm, 0, nodes*alarmsEach)
	for i := range nodes * alarmsEach {
		start := t0.Add(time.Duration(i) * (days * 24 * time.Hour / time.Duration(nodes*alarmsEach)))
		alarms = append(alarms, &loaxa.Alarm{Kind: "offline", Node: ids[i%nodes], Start: start, End: start.Add(2 * time.Hour)})
	}
	must(b, as.CreateAlarms(ctx, alarms))
	size, err := db.Size()
	must(b, err)
	b.Logf("store of %d clusters, a year: %d MiB (events: %v)", nodes, size>>20, withEvents)

	cutoff := t0.Add((days - 100) * 24 * time.Hour)
	for _, name := range []string{"first", "daily"} {
		b.Run(fmt.Sprintf("%s/nodes=%d", name, nodes), func(b *testing.B) {
			var p bolt.Purged
			for b.Loop() {
				var err error
				p, err = db.Purge(ctx, cutoff, 0)
				must(b, err)
			}
			b.ReportMetric(float64(p.LongestTx.Microseconds())/1000, "longest-tx-ms")
			b.ReportMetric(float64(p.Transactions), "transactions")
			b.ReportMetric(float64(p.Deliveries), "deliveries")
			b.ReportMetric(float64(p.Events), "events")
			b.ReportMetric(float64(p.Alarms), "alarms")
		})
		cutoff = cutoff.Add(24 * time.Hour)
	}
}
