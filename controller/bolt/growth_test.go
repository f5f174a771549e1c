package bolt_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// BenchmarkStoreGrowth measures what a day of a province adds to the
// store, by bucket, in bytes per cluster per day: the disk plan of
// docs/deploy.md. Each cluster's day: 20 bulletin plays (its commune's
// 20 daily bulletins, one per 25 clusters), each a delivery moved by the
// node's received, started and completed events, sent in one batch a day
// as a node back online would (one batch per play only changes the
// number of commits, not what is stored); the daily silent self-test (its
// run's result and its self-test event); 10 alarms a year (offline, raised
// and ended); and 5 audit entries a day per commune. Node states are not
// stored as history (a node's status is one record kept up to date), so
// they do not grow the store. LOAXA_BENCH_NODES (default 100) and
// LOAXA_BENCH_DAYS (default 14) set the size; per op: the whole build.
func BenchmarkStoreGrowth(b *testing.B) {
	nodes, days := envInt(b, "LOAXA_BENCH_NODES", 100, 25), envInt(b, "LOAXA_BENCH_DAYS", 14, 1)
	const (
		playsADay     = 20
		commune       = 25
		alarmsAYear   = 10
		auditADayComm = 5
	)
	for b.Loop() {
		db, ids := seededDB(b, nodes)
		db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx := context.Background()
		base, err := bolt.BucketBytes(db)
		must(b, err)
		baseSize, err := db.Size()
		must(b, err)
		ds, es, as, au := bolt.NewDeliveryService(db), bolt.NewEventService(db), bolt.NewAlarmService(db), bolt.NewAuditService(db)
		seqs := make([]uint64, nodes)
		var alarmsDue float64
		for d := range days {
			day := t0.Add(time.Duration(d) * 24 * time.Hour)
			var dels []*loaxa.Delivery
			batches := make([]protocol.EventBatch, nodes)
			for c := 0; c < nodes; c += commune {
				for p := range playsADay {
					ann := fmt.Sprintf("a%06d", c/commune*playsADay+p+1)
					start := day.Add(time.Duration(p) * 3 * time.Minute)
					occ := loaxa.OccurrenceID(ann, start)
					for i := c; i < min(c+commune, nodes); i++ {
						dels = append(dels, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: ids[i], Start: start, Priority: protocol.PriorityNormal,
							PlannedMS: 180_000, UpdatedAt: day.Add(-24 * time.Hour)})
						for _, ev := range []struct {
							t  protocol.EventType
							at time.Time
						}{{protocol.EventReceived, day.Add(-20 * time.Hour)}, {protocol.EventStarted, start.Add(120 * time.Millisecond)}, {protocol.EventCompleted, start.Add(180 * time.Second)}} {
							seqs[i]++
							e := protocol.Event{Seq: seqs[i], Type: ev.t, At: ev.at, Occurrence: occ, Announcement: ann,
								Content: "3f2a9c4e8b7d6a5f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f"}
							if ev.t == protocol.EventStarted {
								e.LateMS = 120
							}
							if ev.t == protocol.EventCompleted {
								e.PlayedMS = 180_000
							}
							batches[i].Events = append(batches[i].Events, e)
						}
					}
				}
				for range auditADayComm {
					must(b, au.RecordAudit(ctx, &loaxa.AuditEntry{Actor: fmt.Sprintf("xa%03d", c/commune), Action: "announcement.update",
						Target: fmt.Sprintf("a%06d", c/commune*playsADay+1), Area: "hp", At: day.Add(3 * time.Hour)}))
				}
			}
			must(b, ds.EnsureDeliveries(ctx, dels))
			st := &loaxa.SelfTest{Kind: protocol.TestSilent, Started: day.Add(-3 * time.Hour), Nodes: ids, RequestedBy: "schedule", Deadline: day.Add(-2 * time.Hour)}
			must(b, as.CreateSelfTest(ctx, st))
			for i, id := range ids {
				seqs[i]++
				r := &protocol.TestResult{ID: st.ID, Kind: protocol.TestSilent, Pass: true, Line: protocol.LineOK}
				batches[i].Events = append(batches[i].Events, protocol.Event{Seq: seqs[i], Type: protocol.EventSelfTest, At: day.Add(-3 * time.Hour), Test: r})
				must(b, as.RecordTestResult(ctx, st.ID, id, r))
				batches[i].Epoch = "9f8e7d6c5b4a3210"
				slices.SortFunc(batches[i].Events, func(x, y protocol.Event) int { return int(x.Seq) - int(y.Seq) })
				if _, _, err := es.RecordEvents(ctx, id, batches[i], day.Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			alarmsDue += float64(nodes*alarmsAYear) / 365
			var alarms []*loaxa.Alarm
			for ; alarmsDue >= 1; alarmsDue-- {
				alarms = append(alarms, &loaxa.Alarm{Kind: "offline", Node: ids[len(alarms)%nodes], Start: day.Add(2 * time.Hour)})
			}
			if len(alarms) > 0 {
				must(b, as.CreateAlarms(ctx, alarms))
				for _, a := range alarms {
					if _, err := as.EndAlarm(ctx, a.ID, day.Add(4*time.Hour)); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		end, err := bolt.BucketBytes(db)
		must(b, err)
		size, err := db.Size()
		must(b, err)
		per := func(n int64) float64 { return float64(n) / float64(nodes*days) }
		var names []string
		for name := range end {
			if end[name] != base[name] {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		var sum int64
		for _, name := range names {
			grew := end[name] - base[name]
			sum += grew
			b.ReportMetric(per(grew), name+"-B/cluster-day")
		}
		b.ReportMetric(per(sum), "buckets-B/cluster-day")
		b.ReportMetric(per(size-baseSize), "file-B/cluster-day")
		b.Logf("%d clusters, %d days: file %d → %d MiB; %.0f B a cluster a day in buckets, %.0f in the file; a year of 1,000 clusters: %.1f GB",
			nodes, days, baseSize>>20, size>>20, per(sum), per(size-baseSize), per(size-baseSize)*1000*365/1e9)
	}
}

// envInt reads a positive number from the environment, or def.
func envInt(b *testing.B, name string, def, least int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		b.Fatalf("%s=%q: want a number, at least %d", name, s, least)
	}
	return n
}
