package emergencybench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/promtest"
	"loaxa.vn/protocol"
)

const envRoundProfile = "LOAXA_BENCH_ROUND_PROFILE" // a file: CPU profile of the measured rounds only

// envAllocsProfile names files for this process's allocation profile
// (the controller, its broker and the benchmark) just before the measured
// rounds (<name>.before) and just after them (<name>.after): what the
// rounds allocated is `go tool pprof -sample_index=alloc_space
// -diff_base <name>.before <name>.after`, what is live at the end the
// inuse_space of <name>.after. Each is written after a collection, so the
// first measured round begins on a freshly collected heap: a run with the
// profiles meets the collector less in its first round than one without.
const envAllocsProfile = "LOAXA_BENCH_ALLOCS_PROFILE"

// envFanoutProfile names files for CPU profiles of each measured round's
// fan-out alone: from just before the API call until every thin node has
// the alert, written to <name>.<round> (this process: the controller and
// its broker) and <name>.<round>.nodes<i> (each thin nodes' process).
const envFanoutProfile = "LOAXA_BENCH_FANOUT_PROFILE"

// envWatchers is how many officers watch each round's board: live
// streams (GET /api/v1/emergency/{id}/stream) open from the call to the
// round's end, read to the end; their cost is in the round's CPU.
const envWatchers = "LOAXA_BENCH_WATCHERS"

// BenchmarkControllerRound measures the controller's own cost of one
// emergency round at N nodes (LOAXA_BENCH_EMERGENCY_NODES, default 100;
// LOAXA_BENCH_EMERGENCY_ROUNDS rounds, default 5, after a warm-up one):
// the real controller (embedded broker, bbolt on disk, HTTP API) in this
// process, and N thin nodes (thin_test.go: plain MQTT clients with the
// nodes' own credentials that publish for an alert exactly what an agent
// publishes, and nothing costlier) in processes of PerFleet. Per round:
// this process's CPU time (getrusage: the controller, and the benchmark's
// own API calls and reading of the thin nodes' lines) from the API call
// until every node's reports of the round were ingested (the counters of
// the ingest still for 1.5 s); the wall time until the report (polled
// every 250 ms to 1 s, five times as long as the last poll took) shows every
// node received and completed; the alert's fan-out (the thin node's
// receipt − the alert's issue); the node messages the ingest dropped
// because its queues were full; the thin nodes' alert-to-start (their
// start − the instant before the API call) and start skew (|start − the
// area's start instant|). At the end it measures the raw fan-out floor as
// BenchmarkAlertToSound does, once the thin nodes are gone, and reports
// the ratio of the alert-to-start p99 to it. Run it with -benchtime 1x.
//
// LOAXA_BENCH_BROKER=mosquitto runs the same rounds through a real
// Mosquitto (mosquitto_test.go) that the benchmark starts with the
// configuration and files the controller exports (every node's account
// and the controller's two, the ACL, no anonymous access), and adds its
// process's CPU per round and the times it logged that it began dropping
// a client's messages.
func BenchmarkControllerRound(b *testing.B) {
	n := envInt(b, envNodes, 100)
	rounds := envInt(b, envRounds, 5)
	if os.Getenv(envRoundProfile) != "" && os.Getenv(envFanoutProfile) != "" {
		b.Fatalf("%s and %s: one CPU profile at a time", envRoundProfile, envFanoutProfile)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05.000 ")+format+"\n", args...)
	}
	dir := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	bb := startBenchBroker(b, n)
	runAsController(b)
	c := rig.StartControllerWith(b, rig.ControllerOptions{Broker: bb.url, Logger: quiet})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")

	t0 := time.Now()
	var creds []*protocol.Credentials
	for len(creds) < n {
		k := min(1000, n-len(creds))
		reqs := make([]map[string]any, k)
		for i := range reqs {
			id := fmt.Sprintf("thin-%05d", len(creds)+i+1)
			reqs[i] = map[string]any{"id": id, "name": "Bench " + id, "area": "12346", "lat": 20.8, "lon": 106.7}
		}
		var batch struct {
			Nodes []struct{ Credentials *protocol.Credentials }
		}
		c.MustDo("POST", "/api/v1/nodes/batch", map[string]any{"credentials": "document", "nodes": reqs}, &batch)
		for _, nd := range batch.Nodes {
			creds = append(creds, nd.Credentials)
		}
	}
	credFile := filepath.Join(dir, "credentials.json")
	raw, err := json.Marshal(creds)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(credFile, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	logf("%d nodes enrolled in %v", n, time.Since(t0).Round(time.Millisecond))
	bb.install(b, c, creds[n-1])

	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]time.Time{}    // occurrence → receipts
	starts := map[string][]time.Time{} // occurrence → starts
	var procs []*helper
	defer func() {
		for _, p := range procs {
			p.stop(b)
		}
	}()
	for from := 0; from < n; from += PerFleet {
		count := min(PerFleet, n-from)
		cmd := exec.Command(self)
		cmd.Env = simulationEnv(append(os.Environ(), envRole+"=thin-nodes", envThinCreds+"="+credFile,
			envThinFrom+"="+strconv.Itoa(from), envThinCount+"="+strconv.Itoa(count)))
		p := &helper{name: fmt.Sprintf("thin nodes %d", from/PerFleet), cmd: cmd, more: make(chan struct{}, 1), ended: make(chan struct{})}
		ready := make(chan struct{})
		p.onOut = func(line string) {
			if line == "ready" {
				close(ready)
				return
			}
			into := got
			if rest, ok := strings.CutPrefix(line, "start "); ok {
				into, line = starts, rest
			}
			occ, ns, ok := strings.Cut(line, " ")
			v, err := strconv.ParseInt(ns, 10, 64)
			if !ok || err != nil {
				return
			}
			mu.Lock()
			into[occ] = append(into[occ], time.Unix(0, v))
			mu.Unlock()
		}
		p.start(b)
		procs = append(procs, p)
		select {
		case <-ready:
		case <-p.ended:
			b.Fatalf("%s ended before it was ready", p.name)
		case <-time.After(10 * time.Minute):
			b.Fatalf("%s not ready within 10 min", p.name)
		}
	}
	rig.Eventually(b, 5*time.Minute, "every node online at the controller", func() bool {
		var resp struct{ Nodes []*loaxa.Node }
		c.MustDo("GET", "/api/v1/nodes?area=12346", nil, &resp)
		on := 0
		for _, nd := range resp.Nodes {
			if nd.Status.State == loaxa.NodeOnline {
				on++
			}
		}
		if on != n {
			time.Sleep(time.Second) // polling a big list
		}
		return on == n
	})
	logf("%d thin nodes in %d processes connected and online in %v", n, len(procs), time.Since(t0).Round(time.Second))
	settle(b, c.URL, 5*time.Minute)
	ct := c.Upload("bao-dong.wav", rig.ToneWAV(880, 200*time.Millisecond, 16000, 1))

	// The controller at rest with N nodes connected (heartbeats, sweeps).
	cpu0, bcpu0, at0 := cpuTime(), bb.cpu(b), time.Now()
	time.Sleep(5 * time.Second)
	idle := float64(cpuTime()-cpu0) / float64(time.Since(at0))
	brokerIdle := float64(bb.cpu(b)-bcpu0) / float64(time.Since(at0))
	if bb.mosq != nil {
		logf("at rest: %.1f %% of a core (Mosquitto %.1f %%)", 100*idle, 100*brokerIdle)
	} else {
		logf("at rest: %.1f %% of a core", 100*idle)
	}

	type result struct {
		cpu, received, completed, ingested time.Duration
		fanout                             []time.Duration
		window                             fanoutWindow
		toStart, skew                      []time.Duration
		lateReceipts                       int // received after the start instant
		events, states, dropped, lost      float64
		inflight                           float64
		nodesCPU                           time.Duration // the thin nodes' processes
		brokerCPU                          time.Duration // Mosquitto's process
		brokerDrops                        int           // Mosquitto's "being dropped" lines
		polls                              int
		lead                               int64
	}
	var results []result
	var lastID string
	watchers := 0
	if v := os.Getenv(envWatchers); v != "" {
		var err error
		if watchers, err = strconv.Atoi(v); err != nil || watchers < 0 {
			b.Fatalf("%s=%q: want a number of watchers", envWatchers, v)
		}
	}
	lastCycles, _ := gcState() // this process's collection cycles at the last call (or now)
	round := func(k int) result {
		m0 := promtest.Scrape(b, c.URL+"/metrics")
		nodes0 := procsCPU(b, procs)
		broker0, drops0 := bb.cpu(b), bb.drops()
		stopProfile := func() {}
		if path := os.Getenv(envFanoutProfile); path != "" && k > 0 {
			stopSelf := startProfile(b, fmt.Sprintf("%s.%d", path, k))
			for i, p := range procs {
				fmt.Fprintf(p.stdin, "profile %s.%d.nodes%d\n", path, k, i)
			}
			stopProfile = func() {
				stopSelf()
				for _, p := range procs {
					fmt.Fprintln(p.stdin, "stop")
				}
			}
		}
		cpu0 := cpuTime()
		cycles0, live0 := gcState()
		t0 := time.Now()
		var em loaxa.Emergency
		c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
		answered := time.Since(t0) // the officer's call returned
		lastID = em.ID
		// The fan-out's end, watched beside the report's polls: the
		// instant the thin nodes' last receipt line is read.
		fannedOut := make(chan fanoutWindow, 1)
		roundOver := make(chan struct{})
		defer close(roundOver)
		go func() {
			defer stopProfile()
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-roundOver:
					fannedOut <- fanoutWindow{}
					return
				case <-tick.C:
				}
				mu.Lock()
				all := len(got[em.Occurrence]) >= n
				mu.Unlock()
				if all {
					w := fanoutWindow{took: time.Since(t0), self: cpuTime() - cpu0}
					cycles, _ := gcState()
					w.cycles = cycles - cycles0
					nodes, err := sumCPU(procs)
					if err != nil {
						logf("round %d: %v", k, err)
					}
					w.nodes = nodes - nodes0
					fannedOut <- w
					return
				}
			}
		}()
		stopWatching := watch(b, c, em.ID, watchers)
		defer func() {
			if n := stopWatching(); watchers > 0 {
				logf("round %d: the %d watchers' streams carried %.1f MB", k, watchers, float64(n)/1e6)
			}
		}()
		var r result
		r.lead = em.Areas[0].LeadMS
		deadline := time.Now().Add(5 * time.Minute)
		progress := time.Now().Add(10 * time.Second)
		var rep loaxa.EmergencyReport
		var pollTook time.Duration
		for r.completed == 0 {
			if time.Now().After(progress) {
				m := promtest.Scrape(b, c.URL+"/metrics")
				in, _ := m.Value("loaxa_mqtt_messages_in_total", "channel", "event")
				dropped, _ := m.Value("loaxa_mqtt_messages_dropped_total")
				logf("round %d after %v: %+v; event batches in %.0f, ingested %.0f (refused %.0f), dropped %.0f", k, time.Since(t0).Round(time.Second), rep.Summary,
					in, m.Sum("loaxa_mqtt_messages_ingested_total", "channel", "event"), m.Sum("loaxa_mqtt_messages_ingested_total", "result", "refused"), dropped)
				progress = time.Now().Add(10 * time.Second)
			}
			if time.Now().After(deadline) {
				b.Fatalf("round %d: not every node completed within 5 min: %+v", k, rep.Summary)
			}
			// Polling the report: it is real work at 10,000 nodes
			// (~0.1 s), so not more than a fifth of the time, and at
			// least once a second, for the times it measures.
			time.Sleep(min(max(250*time.Millisecond, 5*pollTook), time.Second))
			began := time.Now()
			c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
			pollTook = time.Since(began)
			r.polls++
			if r.received == 0 {
				had := 0
				for _, nd := range rep.Nodes {
					if nd.ReceivedMS != nil {
						had++
					}
				}
				if had == n {
					r.received = time.Since(t0)
				}
			}
			if rep.Summary.Completed == n {
				r.completed = time.Since(t0)
			}
		}
		// Then until the round's last reports (the states a second after
		// the plays end) are ingested: nothing ingested for 1.5 s.
		last, lastAt := -1.0, time.Now()
		for time.Since(lastAt) < 1500*time.Millisecond {
			m := promtest.Scrape(b, c.URL+"/metrics")
			v := m.Sum("loaxa_mqtt_messages_ingested_total") + m.Sum("loaxa_mqtt_states_coalesced_total")
			if v != last {
				last, lastAt = v, time.Now()
				r.ingested = time.Since(t0)
				r.cpu = cpuTime() - cpu0
				r.nodesCPU = procsCPU(b, procs) - nodes0
				r.brokerCPU = bb.cpu(b) - broker0
			}
			time.Sleep(100 * time.Millisecond)
		}
		m1 := promtest.Scrape(b, c.URL+"/metrics")
		in := func(m promtest.Metrics, ch string) float64 {
			v, _ := m.Value("loaxa_mqtt_messages_in_total", "channel", ch)
			return v
		}
		r.events, r.states = in(m1, "event")-in(m0, "event"), in(m1, "state")-in(m0, "state")
		dropped := func(m promtest.Metrics) float64 { v, _ := m.Value("loaxa_mqtt_messages_dropped_total"); return v }
		r.dropped = dropped(m1) - dropped(m0)
		r.lost = m1.Sum("loaxa_broker_messages_dropped_total") - m0.Sum("loaxa_broker_messages_dropped_total")
		r.inflight = m1.Sum("loaxa_broker_inflight_dropped_total") - m0.Sum("loaxa_broker_inflight_dropped_total")
		r.brokerDrops = bb.drops() - drops0
		select {
		case r.window = <-fannedOut:
		case <-time.After(time.Minute): // a receipt line missing: the check below says so
		}
		mu.Lock()
		for _, at := range got[em.Occurrence] {
			r.fanout = append(r.fanout, at.Sub(em.Issued))
			if at.After(em.Areas[0].Start) {
				r.lateReceipts++
			}
		}
		for _, at := range starts[em.Occurrence] {
			r.toStart = append(r.toStart, at.Sub(t0))
			r.skew = append(r.skew, at.Sub(em.Areas[0].Start).Abs())
		}
		mu.Unlock()
		slices.Sort(r.fanout)
		slices.Sort(r.toStart)
		slices.Sort(r.skew)
		logf("round %d: issued %v, published %v and answered %v after the call; lead %d ms; every node received by %v and completed by %v (report), reports ingested by %v; CPU %.2f s (thin nodes %.2f s); %.0f event batches and %.0f states in, %.0f dropped from full ingest queues, %.0f + %.0f messages dropped by the broker (pending writes full + too many in flight); %d report polls; fan-out p50 %v p99 %v of %d; alert-to-start p50 %v p99 %v, skew p50 %v p99 %v of %d",
			k, em.Issued.Sub(t0).Round(time.Millisecond), em.Areas[0].PublishedAt.Sub(t0).Round(time.Millisecond), answered.Round(time.Millisecond), r.lead, r.received.Round(time.Millisecond), r.completed.Round(time.Millisecond), r.ingested.Round(time.Millisecond),
			r.cpu.Seconds(), r.nodesCPU.Seconds(), r.events, r.states, r.dropped, r.lost, r.inflight, r.polls, pct(r.fanout, 50).Round(time.Millisecond), pct(r.fanout, 99).Round(time.Millisecond), len(r.fanout),
			pct(r.toStart, 50).Round(time.Millisecond), pct(r.toStart, 99).Round(time.Millisecond), pct(r.skew, 50).Round(100*time.Microsecond), pct(r.skew, 99).Round(100*time.Microsecond), len(r.skew))
		logf("round %d: every thin node had the alert %v after the call (%d after the start instant); CPU meanwhile: this process (controller, broker) %v, thin nodes %v; this process's collection cycles: %d ended meanwhile, %d since the last round's call (round 0: since the time at rest was measured); heap live at the call %.0f MB",
			k, r.window.took.Round(time.Millisecond), r.lateReceipts, r.window.self.Round(time.Millisecond), r.window.nodes.Round(time.Millisecond),
			r.window.cycles, cycles0-lastCycles, float64(live0)/1e6)
		lastCycles = cycles0
		if bb.mosq != nil {
			logf("round %d: Mosquitto CPU %.2f s; it began dropping a client's messages %d times", k, r.brokerCPU.Seconds(), r.brokerDrops)
		}
		if len(r.fanout) != n || len(r.toStart) != n {
			b.Errorf("round %d: %d of %d thin nodes had the alert, %d started it", k, len(r.fanout), n, len(r.toStart))
		}
		return r
	}
	round(0) // warm-up: the area's fan-out is measured, the lead follows it
	if path := os.Getenv(envRoundProfile); path != "" {
		defer startProfile(b, path)()
	}
	allocs := os.Getenv(envAllocsProfile)
	if allocs != "" {
		writeAllocs(b, allocs+".before")
	}
	b.ResetTimer()
	for k := 1; k <= rounds; k++ {
		results = append(results, round(k))
	}
	b.StopTimer()
	if allocs != "" {
		writeAllocs(b, allocs+".after")
	}

	// What polling the report costs, to tell it apart (the rounds above
	// poll it every 250 ms).
	var rep loaxa.EmergencyReport
	cpu1 := cpuTime()
	for range 5 {
		c.MustDo("GET", "/api/v1/emergency/"+lastID, nil, &rep)
	}
	poll := (cpuTime() - cpu1) / 5

	var cpus, recv, comp, ingd, nodeCPUs, brokerCPUs []time.Duration
	var fan, toStart, skew []time.Duration
	var events, states, drops, lost float64
	polls := 0
	for _, r := range results {
		cpus, recv, comp, ingd = append(cpus, r.cpu), append(recv, r.received), append(comp, r.completed), append(ingd, r.ingested)
		nodeCPUs = append(nodeCPUs, r.nodesCPU)
		brokerCPUs = append(brokerCPUs, r.brokerCPU)
		fan = append(fan, r.fanout...)
		toStart, skew = append(toStart, r.toStart...), append(skew, r.skew...)
		events += r.events
		states += r.states
		drops += r.dropped
		lost += r.lost + r.inflight
		polls += r.polls
	}
	for _, s := range [][]time.Duration{cpus, recv, comp, ingd, fan, nodeCPUs, brokerCPUs, toStart, skew} {
		slices.Sort(s)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(pct(cpus, 50).Seconds(), "cpu-s/round")
	b.ReportMetric(ms(pct(comp, 50)), "completed-ms")
	b.ReportMetric(ms(pct(fan, 99)), "p99-fanout-ms")
	if bb.mosq != nil {
		b.ReportMetric(pct(brokerCPUs, 50).Seconds(), "mosquitto-cpu-s/round")
		logf("Mosquitto: CPU per round median %.2f s (min %.2f, max %.2f), at rest %.1f %% of a core; began dropping a client's messages %d times over the run: %s",
			pct(brokerCPUs, 50).Seconds(), brokerCPUs[0].Seconds(), brokerCPUs[len(brokerCPUs)-1].Seconds(), 100*brokerIdle, bb.drops(), bb.dropLines())
		if bb.drops() > 0 {
			b.Errorf("Mosquitto dropped messages for a client: %s", bb.dropLines())
		}
	}
	logf("%d nodes, %d rounds: controller process CPU per round median %.2f s (min %.2f, max %.2f), of which report polls ≈ %.0f × %.1f ms; thin nodes' processes %.2f s; "+
		"at rest %.1f %% of a core; every node received (report) median %v, completed median %v, reports ingested median %v; "+
		"fan-out (receipt − issue) p50 %.1f p99 %.1f ms; per round and node %.2f event batches, %.2f states; %.0f messages dropped from full ingest queues, %.0f by the broker",
		n, rounds, pct(cpus, 50).Seconds(), cpus[0].Seconds(), cpus[len(cpus)-1].Seconds(), float64(polls)/float64(rounds), ms(poll), pct(nodeCPUs, 50).Seconds(),
		100*idle, pct(recv, 50).Round(time.Millisecond), pct(comp, 50).Round(time.Millisecond), pct(ingd, 50).Round(time.Millisecond),
		ms(pct(fan, 50)), ms(pct(fan, 99)), events/float64(rounds*n), states/float64(rounds*n), drops, lost)

	// What the thin nodes' starts say about alert-to-sound with the
	// board's own work (the store, opening and playing the audio) off
	// this machine, against the raw fan-out measured as the fleet
	// benchmark does, once the thin nodes are gone.
	for _, p := range procs {
		p.stop(b)
	}
	procs = nil
	floor := rawFanout(b, n)
	slices.Sort(floor)
	late := 0
	for _, d := range skew {
		if d > 20*time.Millisecond {
			late++
		}
	}
	b.ReportMetric(ms(pct(toStart, 99)), "p99-start-ms")
	b.ReportMetric(ms(pct(skew, 99)), "p99-skew-ms")
	b.ReportMetric(ms(pct(floor, 99)), "p99-floor-ms")
	b.ReportMetric(ms(pct(toStart, 99))/max(ms(pct(floor, 99)), 0.001), "start/floor-p99")
	logf("%d thin nodes, %d rounds: alert-to-start p50 %.1f p99 %.1f max %.1f ms; start skew p50 %.2f p99 %.2f max %.2f ms, %d starts >20 ms off; "+
		"raw QoS 1 fan-out to %d subscribers p50 %.1f p99 %.1f max %.1f ms; start p99 / floor p99 %.2f",
		n, rounds, ms(pct(toStart, 50)), ms(pct(toStart, 99)), ms(toStart[len(toStart)-1]),
		ms(pct(skew, 50)), ms(pct(skew, 99)), ms(skew[len(skew)-1]), late,
		n, ms(pct(floor, 50)), ms(pct(floor, 99)), ms(floor[len(floor)-1]), ms(pct(toStart, 99))/max(ms(pct(floor, 99)), 0.001))
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// fanoutWindow is a round's fan-out: how long after the call every thin
// node had the alert, and the CPU this process (the controller and its
// broker) and the thin nodes' processes used meanwhile.
type fanoutWindow struct {
	took, self, nodes time.Duration
	cycles            uint64 // this process's collection cycles that ended in it
}

// gcState returns how many collection cycles this process completed and
// the heap the last one found live (runtime/metrics). With the controller
// holding new cycles off during an alert's fan-out (internal/gcpause), a
// cycle that ends in the fan-out's window was under way at the call, or
// began in the moment before the hold took hold.
func gcState() (cycles, live uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// startProfile starts a CPU profile of this process into path and returns
// what stops it.
func startProfile(b *testing.B, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "CPU profile %s: %v\n", path, err)
		}
	}
}

// writeAllocs writes this process's allocation profile to path, after a
// collection so that its in-use figures are the heap live now.
func writeAllocs(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatalf("allocation profile %s: %v", path, err)
	}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU is the user and system CPU time of the helper processes so far.
func procsCPU(b *testing.B, procs []*helper) time.Duration {
	total, err := sumCPU(procs)
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// sumCPU is procsCPU for a goroutine other than the benchmark's.
func sumCPU(procs []*helper) (time.Duration, error) {
	var total time.Duration
	for _, p := range procs {
		d, err := pidCPU(p.cmd.Process.Pid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		total += d
	}
	return total, nil
}

// settle waits until the controller has published every desired state
// the enrolment caused and ingested the nodes' first states: its message
// counters still for 3 s.
func settle(b *testing.B, url string, within time.Duration) {
	deadline := time.Now().Add(within)
	last, since := -1.0, time.Now()
	for time.Since(since) < 3*time.Second {
		if time.Now().After(deadline) {
			b.Fatalf("the controller did not settle within %v", within)
		}
		m := promtest.Scrape(b, url+"/metrics")
		v := m.Sum("loaxa_mqtt_messages_out_total") + m.Sum("loaxa_mqtt_messages_ingested_total")
		if v != last {
			last, since = v, time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// watch opens k live streams of emergency id, as k officers watching its
// board, read in the background until stop, which returns how many bytes
// they carried together.
func watch(b *testing.B, c *rig.Controller, id string, k int) (stop func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var read atomic.Int64
	for range k {
		req, err := http.NewRequestWithContext(ctx, "GET", c.URL+"/api/v1/emergency/"+id+"/stream", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		wg.Go(func() {
			resp, err := c.Client.Do(req)
			if err != nil {
				return // stopped before it answered
			}
			defer resp.Body.Close()
			n, _ := io.Copy(io.Discard, resp.Body)
			read.Add(n)
		})
	}
	return func() int64 {
		cancel()
		wg.Wait()
		return read.Load()
	}
}
