// Package emergencybench measures emergency alerts end to end: a real
// controller (embedded broker) and LOAXA_BENCH_EMERGENCY_NODES real agents
// (firmware-sim fleet, memory stores, silent real-time outputs) in one
// process, and in the same run the raw fan-out of one QoS 1 message to as
// many plain MQTT subscribers, the floor any alert rides on.
//
// It holds only a benchmark; scripts/bench-emergency.sh runs it and
// BENCHMARKS.md records the results.
package emergencybench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/fleet"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkAlertToSound sends one emergency per iteration to an area of
// N nodes and takes, per node, the real time from the API call to the
// first sample handed to its output (alert-to-sound), and |that − the
// area's start instant| (start skew). Every node must sound every round.
// Then it measures the raw broker fan-out to N subscribers.
func BenchmarkAlertToSound(b *testing.B) {
	n := 100
	if v := os.Getenv("LOAXA_BENCH_EMERGENCY_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LOAXA_BENCH_EMERGENCY_NODES=%q: want a number of nodes", v)
		}
	}
	quiet := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	c := rig.StartControllerWith(b, rig.ControllerOptions{Logger: quiet})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	outs := map[string]*rig.StampOutput{}
	var outsMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := fleet.Start(ctx, fleet.Config{
		Controller: c.URL, Token: c.Token, Nodes: n, Area: "12346", Prefix: "bench", Logger: quiet, AgentLogger: quiet,
		EnrolWorkers: 16,
		Tune: func(ac *agent.Config) {
			o := &rig.StampOutput{Output: ac.Output}
			outsMu.Lock()
			outs[ac.Credentials.Node] = o
			outsMu.Unlock()
			ac.Output = o
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if got := f.WaitConnected(ctx, 2*time.Minute); got != n {
		b.Fatalf("%d of %d agents connected", got, n)
	}
	rig.Eventually(b, 2*time.Minute, "every node online at the controller", func() bool {
		var resp struct{ Nodes []*loaxa.Node }
		c.MustDo("GET", "/api/v1/nodes?area=12346", nil, &resp)
		on := 0
		for _, nd := range resp.Nodes {
			if nd.Status.State == loaxa.NodeOnline {
				on++
			}
		}
		return on == n
	})
	ct := c.Upload("bao-dong.wav", rig.ToneWAV(880, 200*time.Millisecond, 16000, 1))

	var toSound, skew, received []time.Duration
	var leads []int64
	late := 0
	round := func(k int, measure bool) {
		t0 := time.Now()
		var em loaxa.Emergency
		c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
		start := em.Areas[0].Start
		for id, o := range outs {
			rig.Eventually(b, 2*time.Minute, fmt.Sprintf("round %d sounded on %s", k, id), func() bool { return len(o.Plays()) > k })
			if measure {
				at := o.Plays()[k]
				toSound = append(toSound, at.Sub(t0))
				skew = append(skew, at.Sub(start).Abs())
				if at.Sub(start) > 20*time.Millisecond {
					late++
				}
			}
		}
		var rep loaxa.EmergencyReport
		rig.Eventually(b, 2*time.Minute, fmt.Sprintf("round %d completed everywhere", k), func() bool {
			c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
			return rep.Summary.Completed == n
		})
		if measure {
			leads = append(leads, em.Areas[0].LeadMS)
			for _, nd := range rep.Nodes {
				if nd.ReceivedMS != nil {
					received = append(received, time.Duration(*nd.ReceivedMS)*time.Millisecond)
				}
			}
		}
	}
	round(0, false) // warm-up: every node fetches the content and chimes; the area's fan-out is measured
	b.ResetTimer()
	for k := 1; k <= b.N; k++ {
		round(k, true)
	}
	b.StopTimer()
	f.Close()

	floor := rawFanout(b, n)

	slices.Sort(toSound)
	slices.Sort(skew)
	slices.Sort(received)
	slices.Sort(floor)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(toSound, 50)), "p50-sound-ms")
	b.ReportMetric(ms(pct(toSound, 99)), "p99-sound-ms")
	b.ReportMetric(ms(pct(skew, 99)), "p99-skew-ms")
	b.ReportMetric(ms(pct(received, 99)), "p99-received-ms")
	b.ReportMetric(ms(pct(floor, 50)), "p50-floor-ms")
	b.ReportMetric(ms(pct(floor, 99)), "p99-floor-ms")
	b.ReportMetric(ms(pct(toSound, 99))/math.Max(ms(pct(floor, 99)), 0.001), "sound/floor-p99")
	b.Logf("%d nodes, %d rounds: alert-to-sound p50 %.1f p99 %.1f max %.1f ms (leads %v ms); start skew p50 %.2f p99 %.2f max %.2f ms, %d plays >20 ms late; "+
		"received after issue (node clock) p50 %.0f p99 %.0f ms; raw QoS 1 fan-out to %d subscribers p50 %.1f p99 %.1f max %.1f ms",
		n, b.N, ms(pct(toSound, 50)), ms(pct(toSound, 99)), ms(toSound[len(toSound)-1]), leads,
		ms(pct(skew, 50)), ms(pct(skew, 99)), ms(skew[len(skew)-1]), late,
		ms(pct(received, 50)), ms(pct(received, 99)), n, ms(pct(floor, 50)), ms(pct(floor, 99)), ms(floor[len(floor)-1]))
}

// rawFanout connects n plain paho subscribers to an embedded mochi broker
// (the controller's broker software, without its node authentication) and
// returns, for five messages of an alert's size published with QoS 1, the
// time from publish to each subscriber's receipt.
func rawFanout(b *testing.B, n int) []time.Duration {
	addr := nodetest.StartBroker(b)
	const topic = "loa/v1/area/12346/cmd"
	var mu sync.Mutex
	got := map[int][]time.Time{}
	clients := make([]paho.Client, n)
	for i := range clients {
		opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("floor-%d", i)).
			SetCleanSession(true).SetOrderMatters(false)
		cl := paho.NewClient(opts)
		if tok := cl.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			b.Fatalf("floor subscriber %d: %v", i, tok.Error())
		}
		tok := cl.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
			at := time.Now()
			seq := int(m.Payload()[0])
			mu.Lock()
			got[seq] = append(got[seq], at)
			mu.Unlock()
		})
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			b.Fatalf("floor subscribe %d: %v", i, tok.Error())
		}
		clients[i] = cl
	}
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(50)
		}
	}()
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("floor-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		b.Fatalf("floor publisher: %v", tok.Error())
	}
	defer pub.Disconnect(50)
	payload := make([]byte, 1500) // about a signed alert's size
	var out []time.Duration
	for seq := range 5 {
		payload[0] = byte(seq)
		t0 := time.Now()
		if tok := pub.Publish(topic, 1, false, payload); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			b.Fatalf("floor publish: %v", tok.Error())
		}
		rig.Eventually(b, time.Minute, "every subscriber has the message", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got[seq]) == n
		})
		mu.Lock()
		for _, at := range got[seq] {
			out = append(out, at.Sub(t0))
		}
		mu.Unlock()
	}
	return out
}

// pct returns the p-th percentile of sorted values (nearest rank).
func pct[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
