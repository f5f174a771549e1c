package bolt_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestOpenReportsUpgradeProgress: Open upgraded an old store in silence,
// however long it took (a province's year of deliveries), so that neither
// systemd nor a technician could tell it from a hang. Each step now
// reports what it does, its count of the records as it counts them, and
// how many of them it has read, to DB.Upgrading and to the log.
func TestOpenReportsUpgradeProgress(t *testing.T) {
	const deliveries = 3000 // more than one report's worth
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustNode(t, db, "n1", "31")
	ds := make([]*loaxa.Delivery, deliveries)
	for i := range ds {
		start := t0.Add(time.Duration(i-deliveries/2) * time.Hour)
		ds[i] = &loaxa.Delivery{Announcement: "a000001", Occurrence: loaxa.OccurrenceID("a000001", start), Node: "n1", Start: start, PlannedMS: 60_000}
		if i < deliveries/2 {
			ds[i].State = loaxa.DeliveryCompleted
		}
	}
	must(t, bolt.NewDeliveryService(db).EnsureDeliveries(ctx, ds))
	must(t, bolt.AsSchema3(db))
	must(t, db.Close())

	var heard []bolt.Upgrade
	db.Upgrading = func(u bolt.Upgrade) { heard = append(heard, u) }
	var log strings.Builder
	db.Logger = slog.New(slog.NewTextHandler(&log, nil))
	must(t, db.Open())

	steps := map[uint64][]bolt.Upgrade{}
	for _, u := range heard {
		if u.To != 11 {
			t.Errorf("report %+v: To %d, want 11", u, u.To)
		}
		steps[u.From] = append(steps[u.From], u)
	}
	for from := uint64(3); from < 11; from++ {
		if len(steps[from]) < 2 {
			t.Errorf("step %d → %d: reports %+v, want at least its start and end", from, from+1, steps[from])
		}
	}
	del := steps[3]
	if len(del) == 0 {
		t.Fatal("no report of the step that indexes the deliveries")
	}
	last := del[len(del)-1]
	if last.What != "index of open deliveries" || last.Read != deliveries || last.Total != deliveries {
		t.Errorf("last report of the deliveries' step %+v, want %d of %d records read", last, deliveries, deliveries)
	}
	var between, counting int
	for i, u := range del {
		if u.Counting {
			counting++
			if u.Read != 0 || u.Total > deliveries {
				t.Errorf("report while counting %+v: want none read yet, at most %d counted", u, deliveries)
			}
			continue
		}
		if i > 0 && u.Read < del[i-1].Read {
			t.Errorf("reports went back: %d records read, then %d", del[i-1].Read, u.Read)
		}
		if u.Read > 0 && u.Read < deliveries {
			between++
			if u.Total != deliveries || !strings.Contains(u.String(), fmt.Sprintf("%d of %d records", u.Read, deliveries)) {
				t.Errorf("report under way %+v says %q, want %d of %d records", u, u, u.Read, deliveries)
			}
		}
	}
	if counting == 0 {
		t.Errorf("reports of the deliveries' step %+v: none while it counted them (a count of a store larger than the memory can take minutes)", del)
	}
	if between == 0 {
		t.Errorf("reports of the deliveries' step %+v: none while it was under way", del)
	}
	for _, want := range []string{"store: upgrading the schema", `step="schema 3 → 4 of 11"`, `what="index of open deliveries"`, "total=3000", "store: brought up to date"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log\n%s\nwant %q", log.String(), want)
		}
	}

	heard = nil
	must(t, db.Close())
	must(t, db.Open())
	if len(heard) != 0 {
		t.Errorf("an Open of an up-to-date store reported %+v, want nothing", heard)
	}
}

func TestUpgradeLeft(t *testing.T) {
	for _, tc := range []struct {
		u    bolt.Upgrade
		want time.Duration
		says string
	}{
		{bolt.Upgrade{From: 3, To: 7, What: "index of open deliveries", Counting: true, Total: 2048, Elapsed: time.Second}, 0, "store upgrade: schema 3 → 4 of 7 (index of open deliveries): counting records, 2048 so far"},
		{bolt.Upgrade{From: 3, To: 7, What: "x", Total: 4_000_000, Elapsed: time.Second}, 0, "store upgrade: schema 3 → 4 of 7 (x): 4000000 records to read"},
		{bolt.Upgrade{From: 3, To: 7, What: "x", Read: 1_000_000, Total: 4_000_000, Elapsed: 10 * time.Second}, 30 * time.Second, "store upgrade: schema 3 → 4 of 7 (x): 1000000 of 4000000 records, about 30s left"},
		{bolt.Upgrade{From: 6, To: 7, What: "x", Read: 5, Total: 5, Elapsed: time.Second}, 0, "store upgrade: schema 6 → 7 of 7 (x): 5 of 5 records"},
	} {
		if got := tc.u.Left(); got != tc.want {
			t.Errorf("%+v: Left %v, want %v", tc.u, got, tc.want)
		}
		if got := tc.u.String(); got != tc.says {
			t.Errorf("%+v says %q, want %q", tc.u, got, tc.says)
		}
	}
}

// BenchmarkOpenUpgrade times Open on a province's store a year on, as a
// controller's start does (per op: one Open): "from schema 3" brings a
// store written before the index of open deliveries (the upgrade that
// reads every delivery), "from schema 6" one written by the release before
// this one (the alarms indexed by their end), "up to date" opens it
// without an upgrade. The store holds a year of deliveries of nodes
// clusters, 20 plays a day each (one commune's 20 daily bulletins per 25
// clusters; the last week pending, the rest completed), and 10 alarms a
// cluster. LOAXA_BENCH_NODES sets nodes (default 100; the seeding of a
// few hundred takes minutes and gigabytes).
func BenchmarkOpenUpgrade(b *testing.B) {
	nodes := 100
	if s := os.Getenv("LOAXA_BENCH_NODES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 25 {
			b.Fatalf("LOAXA_BENCH_NODES=%q: want a number of nodes, at least 25", s)
		}
		nodes = n
	}
	const (
		days       = 365
		playsADay  = 20
		commune    = 25 // clusters sharing one set of daily bulletins
		alarmsEach = 10
		pendingFor = 7 // days of pending deliveries at the end
	)
	db, ids := seededDB(b, nodes)
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	s := bolt.NewDeliveryService(db)
	day := make([]*loaxa.Delivery, 0, nodes*playsADay)
	for d := range days {
		day = day[:0]
		for c := 0; c < nodes; c += commune {
			for p := range playsADay {
				ann := fmt.Sprintf("a%03d%02d", c/commune, p)
				start := t0.Add(time.Duration(d)*24*time.Hour + time.Duration(p)*3*time.Minute)
				occ := loaxa.OccurrenceID(ann, start)
				state := loaxa.DeliveryCompleted
				if d >= days-pendingFor {
					state = loaxa.DeliveryPending
				}
				for _, id := range ids[c:min(c+commune, nodes)] {
					day = append(day, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: start, State: state,
						PlannedMS: 180_000, PlayedMS: 180_000, ContentReady: true, UpdatedAt: start.Add(3 * time.Minute)})
				}
			}
		}
		must(b, s.EnsureDeliveries(ctx, day))
	}
	as := bolt.NewAlarmService(db)
	alarms := make([]*loaxa.Alarm, 0, nodes*alarmsEach)
	for i := range nodes * alarmsEach {
		alarms = append(alarms, &loaxa.Alarm{Kind: "offline", Node: ids[i%nodes], Start: t0.Add(time.Duration(i) * time.Minute)})
	}
	must(b, as.CreateAlarms(ctx, alarms))
	size, err := db.Size()
	must(b, err)
	b.Logf("store of %d nodes: %d deliveries, %d alarms, %d MiB", nodes, nodes*playsADay*days, len(alarms), size>>20)

	var (
		reports  int
		counting time.Duration // of the deliveries, before the step reads them
	)
	db.Upgrading = func(u bolt.Upgrade) {
		reports++
		if u.From == 3 && !u.Counting && u.Read == 0 && u.Total > 0 {
			counting += u.Elapsed
		}
	}
	for _, tc := range []struct {
		name string
		old  func(*bolt.DB) error
	}{
		{"from schema 3", bolt.AsSchema3},
		{"from schema 6", bolt.AsSchema6},
		{"up to date", func(*bolt.DB) error { return nil }},
	} {
		b.Run(fmt.Sprintf("%s/nodes=%d", tc.name, nodes), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				must(b, tc.old(db))
				must(b, db.Close())
				reports = 0
				b.StartTimer()
				must(b, db.Open())
				if tc.name == "up to date" && reports != 0 {
					b.Fatalf("an up-to-date store reported %d upgrade steps", reports)
				}
			}
			if counting > 0 {
				b.ReportMetric(float64(counting.Nanoseconds())/float64(b.N), "count-ns/op")
				counting = 0
			}
		})
	}
}
