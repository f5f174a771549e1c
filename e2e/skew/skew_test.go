// Package skew measures how closely in time the nodes of one area start
// the same bulletin when their system clocks are minutes apart: each agent
// corrects its clock with the offset it measures against the controller
// (GET /api/v1/time), so all should start on the controller's time.
//
// It holds only a benchmark; scripts/bench-skew.sh runs it and
// BENCHMARKS.md records the results.
package skew

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/audio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// skewed is a board's system clock, off by d from real time.
type skewed struct{ d time.Duration }

func (s skewed) Now() time.Time                       { return time.Now().Add(s.d) }
func (s skewed) NewTimer(d time.Duration) clock.Timer { return clock.Real{}.NewTimer(d) }

// BenchmarkStartSkew runs a real controller (embedded broker, real clock)
// and LOAXA_BENCH_SKEW_NODES agents (default 8) in this process, each on a
// system clock 1 to 5 minutes fast or slow. Every iteration schedules one
// bulletin for all of them 1.5 s ahead and takes, per node, the real time
// its output began: |start − intended| over all plays, and the spread
// (latest − earliest start) of each round. Agents also report their own
// lateness (late_ms) on the corrected clock.
func BenchmarkStartSkew(b *testing.B) {
	n := 8
	if v := os.Getenv("LOAXA_BENCH_SKEW_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			b.Fatalf("LOAXA_BENCH_SKEW_NODES=%q: want a number of nodes, at least 2", v)
		}
	}
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	outs := make([]*rig.StampOutput, n)
	agents := make([]*rig.Node, n)
	for i := range n {
		sign := 1 - 2*(i%2)
		off := time.Duration(sign*(1+i%5)) * time.Minute
		outs[i] = &rig.StampOutput{Output: audio.NewNone(clock.Real{})}
		agents[i] = rig.StartNode(b, c.CreateNode(fmt.Sprintf("sk-%02d", i), "12346"),
			rig.NodeOptions{Clock: skewed{off}, Output: outs[i]})
	}
	for i, a := range agents {
		rig.Eventually(b, 30*time.Second, a.ID+" online with its clock corrected", func() bool {
			want := -time.Duration(1-2*(i%2)) * time.Duration(1+i%5) * time.Minute
			return c.Node(a.ID).Status.State == loaxa.NodeOnline && (a.Agent.Clock().Get()-want).Abs() < time.Second
		})
	}
	ct := c.Upload("tin.wav", rig.ToneWAV(440, 200*time.Millisecond, 16000, 1))

	var errs []time.Duration    // |start − intended|, every play
	var spreads []time.Duration // latest − earliest start, every round
	var late []int64            // late_ms as the agents report it
	var drift []time.Duration   // |(start − intended) − late_ms|: the error of the corrected clock
	round := func(k int) {
		start := time.Now().Add(1500 * time.Millisecond).Truncate(time.Millisecond)
		ann := c.Announce(ct.ID, []string{"12346"}, nil, start)
		var first, last time.Time
		began := map[string]time.Time{}
		for i, o := range outs {
			rig.Eventually(b, 30*time.Second, fmt.Sprintf("round %d played on node %d", k, i), func() bool { return len(o.Plays()) > k })
			at := o.Plays()[k]
			began[agents[i].ID] = at
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
			if b.N > 0 && k > 0 {
				errs = append(errs, at.Sub(start).Abs())
			}
		}
		if k > 0 {
			spreads = append(spreads, last.Sub(first))
			rig.Eventually(b, 30*time.Second, "deliveries completed", func() bool {
				ds := c.Deliveries(ann.ID)
				for _, d := range ds {
					if d.State != loaxa.DeliveryCompleted {
						return false
					}
				}
				if len(ds) != n {
					return false
				}
				for _, d := range ds {
					late = append(late, d.LateMS)
					measured := began[d.Node].Sub(start)
					drift = append(drift, (measured - time.Duration(d.LateMS)*time.Millisecond).Abs())
				}
				return true
			})
		}
	}
	round(0) // warm-up: every node fetches the content
	b.ResetTimer()
	for k := 1; k <= b.N; k++ {
		round(k)
	}
	b.StopTimer()

	slices.Sort(errs)
	slices.Sort(spreads)
	slices.Sort(late)
	slices.Sort(drift)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(errs, 50)), "p50-err-ms")
	b.ReportMetric(ms(pct(errs, 99)), "p99-err-ms")
	b.ReportMetric(ms(errs[len(errs)-1]), "max-err-ms")
	b.ReportMetric(ms(pct(spreads, 50)), "p50-spread-ms")
	b.ReportMetric(ms(pct(spreads, 99)), "p99-spread-ms")
	b.ReportMetric(ms(spreads[len(spreads)-1]), "max-spread-ms")
	b.ReportMetric(float64(pct(late, 50)), "p50-late_ms")
	b.ReportMetric(float64(late[len(late)-1]), "max-late_ms")
	b.ReportMetric(ms(drift[len(drift)-1]), "max-clock-err-ms")
	b.Logf("%d nodes, %d rounds: |start-intended| p50 %.2f p99 %.2f max %.2f ms; spread p50 %.2f p99 %.2f max %.2f ms; "+
		"agents' late_ms p50 %d max %d; corrected-clock error (measured lateness − late_ms) p50 %.2f max %.2f ms",
		n, len(spreads), ms(pct(errs, 50)), ms(pct(errs, 99)), ms(errs[len(errs)-1]),
		ms(pct(spreads, 50)), ms(pct(spreads, 99)), ms(spreads[len(spreads)-1]), pct(late, 50), late[len(late)-1],
		ms(pct(drift, 50)), ms(drift[len(drift)-1]))
}

// pct returns the p-th percentile of sorted values (nearest rank).
func pct[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
