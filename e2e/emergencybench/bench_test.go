// Package emergencybench measures emergency alerts end to end: a real
// controller (embedded broker, bbolt) in the benchmark's process and
// LOAXA_BENCH_EMERGENCY_NODES real agents in firmware-sim fleet processes
// of at most PerFleet nodes each (memory stores, silent real-time
// outputs), and in the same run the raw fan-out of one QoS 1 message to as
// many plain MQTT subscribers, the floor any alert rides on, with the
// floor's broker and subscribers in processes of their own.
//
// It holds only a benchmark; scripts/bench-emergency.sh runs it and
// BENCHMARKS.md records the results.
package emergencybench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/gcpause"
	"loaxa.vn/internal/promtest"
)

// PerFleet is the most agents one fleet process runs: one open file per
// agent, and a fleet process's CPU is one scheduler's to share.
const PerFleet = 2500

// Environment of the benchmark.
const (
	envNodes      = "LOAXA_BENCH_EMERGENCY_NODES"
	envRounds     = "LOAXA_BENCH_EMERGENCY_ROUNDS"
	envFleetPprof = "LOAXA_BENCH_FLEET_PPROF" // first port of the fleets' pprof servers (one each)
	// With envFleetPprof: a directory for a CPU profile of each fleet over
	// the first envFleetProfileSec seconds (default 3) of each measured
	// round, the alert's fan-out and receipt.
	envFleetProfile    = "LOAXA_BENCH_FLEET_PROFILE"
	envFleetProfileSec = "LOAXA_BENCH_FLEET_PROFILE_SECONDS"
	// The Go runtime settings of the simulated nodes' processes (GOMAXPROCS,
	// GOGC: the fleets, the thin nodes and the floor's subscribers), when
	// set: the simulation's own overhead, not the system under test.
	envFleetProcs = "LOAXA_BENCH_FLEET_GOMAXPROCS"
	envFleetGOGC  = "LOAXA_BENCH_FLEET_GOGC"
	envPrepare    = "LOAXA_BENCH_ALERT_PREPARE" // the fleets' --alert-prepare (e.g. -1s: alerts prepared at the warm-up only)
	// envFresh, a number of seconds, has every round send a new message of
	// that length, which no node has: each must download it.
	envFresh       = "LOAXA_BENCH_FRESH_SECONDS"
	envRepeat      = "LOAXA_BENCH_REPEAT" // how many times each alert plays its message (default 1)
	envRole        = "LOAXA_BENCH_ROLE"   // set when the test binary runs as a helper process
	envFloorBroker = "LOAXA_BENCH_FLOOR_BROKER"
	envFloorFrom   = "LOAXA_BENCH_FLOOR_FROM"
	envFloorCount  = "LOAXA_BENCH_FLOOR_COUNT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "floor-broker":
		os.Exit(floorBroker())
	case "floor-subscribers":
		os.Exit(floorSubscribers())
	case "thin-nodes":
		os.Exit(thinNodes())
	}
	goleak.VerifyTestMain(m)
}

// BenchmarkAlertToSound sends LOAXA_BENCH_EMERGENCY_ROUNDS emergencies
// (default 5) to an area of N nodes, after a warm-up one, and takes, per
// node, the real time from the API call to the first sample handed to its output (alert-to-sound, from the fleets'
// sound logs), and |that − the area's start instant| (start skew). Every
// node must sound every round; each round starts once the controller's
// traffic is back to the nodes' heartbeats (quiesce). Then, with the fleets stopped, it measures
// the raw broker fan-out to N subscribers. Run it with -benchtime 1x: it
// ignores b.N, and the setup takes minutes at 10,000 nodes.
func BenchmarkAlertToSound(b *testing.B) {
	n := 100
	if v := os.Getenv(envNodes); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("%s=%q: want a number of nodes", envNodes, v)
		}
	}
	rounds := 5
	if v := os.Getenv(envRounds); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			b.Fatalf("%s=%q: want a number of rounds", envRounds, v)
		}
	}
	// Progress goes straight to stderr: a benchmark's log is printed at
	// its end, and truncated.
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05.000 ")+format+"\n", args...)
	}
	dir := b.TempDir()
	sim := filepath.Join(dir, "firmware-sim")
	t0 := time.Now()
	if out, err := exec.Command("go", "build", "-o", sim, "loaxa.vn/firmware-sim").CombinedOutput(); err != nil {
		b.Fatalf("go build firmware-sim: %v\n%s", err, out)
	}
	logf("built firmware-sim in %v", time.Since(t0).Round(time.Millisecond))

	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	runAsController(b)
	c := rig.StartControllerWith(b, rig.ControllerOptions{Logger: quiet})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")

	// The fleets: enrolment and connection.
	t0 = time.Now()
	k := (n + PerFleet - 1) / PerFleet
	var fleets []*helper
	defer func() {
		for _, f := range fleets {
			f.stop(b)
		}
	}()
	var logs []*soundReader
	pprofPort := 0
	if v := os.Getenv(envFleetPprof); v != "" {
		var err error
		if pprofPort, err = strconv.Atoi(v); err != nil {
			b.Fatalf("%s=%q: want a port", envFleetPprof, v)
		}
	}
	profileDir, profileSec := os.Getenv(envFleetProfile), 3
	if profileDir != "" && pprofPort == 0 {
		b.Fatalf("%s needs %s", envFleetProfile, envFleetPprof)
	}
	if v := os.Getenv(envFleetProfileSec); v != "" {
		var err error
		if profileSec, err = strconv.Atoi(v); err != nil || profileSec < 1 {
			b.Fatalf("%s=%q: want whole seconds", envFleetProfileSec, v)
		}
	}
	for i := range k {
		m := n / k
		if i < n%k {
			m++
		}
		log := filepath.Join(dir, fmt.Sprintf("sound-%d.log", i))
		args := []string{"fleet", "--controller", c.URL, "--nodes", strconv.Itoa(m), "--area", "12346",
			"--prefix", fmt.Sprintf("bench%d", i), "--sound-log", log, "--enrol-workers", "4",
			"--wait", "10m", "--log-level", "warn", "--agent-log-level", "error"}
		if v := os.Getenv(envPrepare); v != "" {
			args = append(args, "--alert-prepare", v)
		}
		if pprofPort != 0 {
			args = append(args, "--pprof", fmt.Sprintf("127.0.0.1:%d", pprofPort+i))
		}
		cmd := exec.Command(sim, args...)
		cmd.Env = simulationEnv(append(os.Environ(), "LOAXA_TOKEN="+c.Token))
		f := startHelper(b, fmt.Sprintf("fleet %d", i), cmd)
		fleets = append(fleets, f)
		logs = append(logs, &soundReader{path: log})
	}
	for _, f := range fleets {
		line := f.await(b, 10*time.Minute, func(l string) bool { return strings.Contains(l, "connected to the broker") })
		logf("%s: %s", f.name, line)
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
	logf("%d nodes in %d fleet processes enrolled and online in %v", n, k, time.Since(t0).Round(time.Second))
	ct := c.Upload("bao-dong.wav", rig.ToneWAV(880, 200*time.Millisecond, 16000, 1))
	fresh := 0 // seconds of a new message each round; 0: the same short one
	if v := os.Getenv(envFresh); v != "" {
		var err error
		if fresh, err = strconv.Atoi(v); err != nil || fresh < 1 {
			b.Fatalf("%s=%q: want a number of seconds", envFresh, v)
		}
	}
	repeat := 1
	if v := os.Getenv(envRepeat); v != "" {
		var err error
		if repeat, err = strconv.Atoi(v); err != nil || repeat < 1 || repeat > 10 {
			b.Fatalf("%s=%q: want 1 to 10 repeats", envRepeat, v)
		}
	}
	// With a new message each round: when each node could play it, after
	// the issue, and how many could by the end of the opening chime (their
	// message followed the chime at once, in step).
	var ready []time.Duration
	inStep, fetched, lateMsgs, joined := 0, 0, 0, 0

	sounds := map[string]map[string]time.Time{} // occurrence → node → sound instant
	// occurrence → node → how far into its stream it began (a late node
	// skips into its chime to play on the area's timeline); absent: 0.
	offsets := map[string]map[string]time.Duration{}
	read := func() {
		for _, l := range logs {
			if err := l.read(sounds, offsets); err != nil {
				b.Fatal(err)
			}
		}
	}
	var toSound, skew, skewInTime, received []time.Duration
	// timeline: |sound instant − offset − start|, how far from the area's
	// timeline each play sounded; skipped counts the plays that began
	// into their chime.
	var timeline []time.Duration
	offStart, offTimeline, skipped := 0, 0, 0
	var leads []int64
	var resends []int
	late := 0
	round := func(k int, measure bool) {
		// Each alert comes to a quiet controller: the previous round's
		// last states and acknowledgements are ingested and sent. Back to
		// back, their tail fell into the next alert's fan-out, and the lead
		// measured on it grew round after round.
		quiesce(b, c.URL, n, 2*time.Minute)
		m0 := promtest.Scrape(b, c.URL+"/metrics")
		cpu0 := procsCPU(b, fleets)
		var profiles sync.WaitGroup
		if measure && profileDir != "" {
			for i := range fleets {
				profiles.Go(func() {
					path := filepath.Join(profileDir, fmt.Sprintf("fleet%d-round%d.pprof", i, k))
					if err := fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", pprofPort+i, profileSec), path); err != nil {
						logf("round %d: fleet %d profile: %v", k, i, err)
					}
				})
			}
		}
		msg := ct
		if fresh > 0 {
			msg = c.Upload(fmt.Sprintf("canh-bao-%d.wav", k), rig.ToneWAV(440+10*float64(k), time.Duration(fresh)*time.Second, 16000, 1))
		}
		t0 := time.Now()
		var em loaxa.Emergency
		c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": msg.ID, "targets": []string{"12346"}, "repeat": repeat}, &em)
		start := em.Areas[0].Start
		deadline := time.Now().Add(5 * time.Minute)
		for read(); len(sounds[em.Occurrence]) < n; read() {
			if time.Now().After(deadline) {
				silent(c, em, sounds[em.Occurrence], logf)
				b.Fatalf("round %d: %d of %d nodes sounded within 5 min", k, len(sounds[em.Occurrence]), n)
			}
			time.Sleep(50 * time.Millisecond) // polling the sound logs
		}
		if measure {
			for node, at := range sounds[em.Occurrence] {
				toSound = append(toSound, at.Sub(t0))
				skew = append(skew, at.Sub(start).Abs())
				if at.Sub(start) > 20*time.Millisecond {
					late++
				}
				if at.Sub(start).Abs() > 20*time.Millisecond {
					offStart++
				}
				off := offsets[em.Occurrence][node]
				timeline = append(timeline, at.Add(-off).Sub(start).Abs())
				if at.Add(-off).Sub(start).Abs() > 20*time.Millisecond {
					offTimeline++
				}
				if off > 0 {
					skipped++
				}
			}
		}
		var rep loaxa.EmergencyReport
		rig.Eventually(b, 5*time.Minute, fmt.Sprintf("round %d completed everywhere", k), func() bool {
			c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
			if rep.Summary.Completed != n {
				time.Sleep(2 * time.Second) // polling a big report: not to load the controller
			}
			return rep.Summary.Completed == n
		})
		// Resends to nodes that had the alert before the first resend was
		// due (2 s or 2 × the lead after the issue, plus the report window:
		// the resend bound) were made because their receipt had not reached
		// the controller yet.
		r, resentTo, hadIt := 0, 0, 0
		bound := max(2000, 2*em.Areas[0].LeadMS) + em.Areas[0].ReportWindowMS
		for _, nd := range rep.Nodes {
			r += nd.Resends
			if nd.Resends > 0 {
				resentTo++
				if nd.ReceivedMS != nil && *nd.ReceivedMS < bound {
					hadIt++
				}
			}
		}
		profiles.Wait()
		// What the round cost the fleets and what it carried: a node's
		// reports and the controller's commands (acknowledgements and
		// resends) to it, until every node reported the alert completed.
		m1 := promtest.Scrape(b, c.URL+"/metrics")
		delta := func(name, label, value string) float64 {
			return m1.Sum(name, label, value) - m0.Sum(name, label, value)
		}
		cpu := procsCPU(b, fleets) - cpu0
		logf("round %d: fleets' CPU %.1f s (%.2f ms a node); per node %.2f event batches and %.2f states in, %.2f commands out",
			k, cpu.Seconds(), float64(cpu.Microseconds())/1000/float64(n),
			delta("loaxa_mqtt_messages_in_total", "channel", "event")/float64(n), delta("loaxa_mqtt_messages_in_total", "channel", "state")/float64(n),
			delta("loaxa_mqtt_messages_out_total", "kind", "command")/float64(n))
		if resentTo > 0 {
			logf("round %d: resent to %d nodes, %d of which had the alert before %d ms (the resend bound)", k, resentTo, hadIt, bound)
		}
		drops := func(name string) float64 { return m1.Sum(name) - m0.Sum(name) }
		if d, f := drops("loaxa_broker_messages_dropped_total"), drops("loaxa_broker_inflight_dropped_total"); d+f > 0 {
			logf("round %d: the broker dropped %.0f messages to subscribers whose pending writes were full and %.0f to ones with too many unacknowledged", k, d, f)
		}
		logf("round %d: issued %v and published %v after the call, lead %d ms (%s), report window %d ms, every node sounded by %v, reported completed by %v, %d resends", k,
			em.Issued.Sub(t0).Round(time.Millisecond), em.Areas[0].PublishedAt.Sub(t0).Round(time.Millisecond), em.Areas[0].LeadMS, em.Areas[0].LeadFrom,
			em.Areas[0].ReportWindowMS, maxOf(sounds[em.Occurrence]).Sub(t0).Round(time.Millisecond), time.Since(t0).Round(100*time.Millisecond), r)
		// The report's timing (the nodes' own started events, what a
		// province reads after a drill on its boards) against the sound
		// logs (the instant each output took its first sample).
		var logged, loggedSkew []int64
		for _, at := range sounds[em.Occurrence] {
			logged = append(logged, at.Sub(em.Issued).Milliseconds())
			loggedSkew = append(loggedSkew, at.Sub(start).Abs().Milliseconds())
		}
		if tm, lp, ls := rep.Timing, loaxa.PercentilesOf(logged), loaxa.PercentilesOf(loggedSkew); tm.SoundMS != nil && tm.SkewMS != nil && lp != nil {
			logf("round %d: after the issue, the report's sound_ms p50 / p99 / max %d / %d / %d ms (%d nodes), the sound logs' %d / %d / %d ms; skew p99 %d ms and %d ms; %d nodes off the start",
				k, tm.SoundMS.P50, tm.SoundMS.P99, tm.SoundMS.Max, tm.Started, lp.P50, lp.P99, lp.Max, tm.SkewMS.P99, ls.P99, tm.OffStart)
		}
		if fresh > 0 {
			var chime loaxa.Content
			c.MustDo("GET", "/api/v1/content/"+em.OpeningChime, nil, &chime)
			chimeEnd := start.Add(time.Duration(chime.DurationMS) * time.Millisecond).Sub(em.Issued)
			var rr []time.Duration
			follow := 0
			for _, nd := range rep.Nodes {
				if nd.ContentReadyMS == nil {
					continue
				}
				d := time.Duration(*nd.ContentReadyMS) * time.Millisecond
				rr = append(rr, d)
				if d <= chimeEnd {
					follow++
				}
			}
			slices.Sort(rr)
			if len(rr) > 0 {
				logf("round %d: a new %d s message: %d nodes could play it after the issue p50 %v p99 %v max %v; %d by the chime's end (%v)",
					k, fresh, len(rr), pct(rr, 50).Round(time.Millisecond), pct(rr, 99).Round(time.Millisecond), rr[len(rr)-1].Round(time.Millisecond), follow, chimeEnd.Round(time.Millisecond))
			}
			// The nodes' own word on when they began it (message_ms): in
			// step with a repeat of those that had it in time, or not.
			logf("round %d: the message came after the chime's end on %d nodes (report): %d began it in step with a repeat of the others, %d out of step",
				k, rep.Timing.MessageLate, rep.Timing.MessageInStep, rep.Timing.MessageLate-rep.Timing.MessageInStep)
			if measure {
				ready = append(ready, rr...)
				inStep += follow
				fetched += len(rr)
				lateMsgs += rep.Timing.MessageLate
				joined += rep.Timing.MessageInStep
			}
		}
		if measure {
			// The skew of the nodes that had the alert with time to
			// spare (received before the start less the margin the lead
			// leaves to open the audio) is the start's own; the others
			// began late because the alert reached them late.
			for _, nd := range rep.Nodes {
				at, ok := sounds[em.Occurrence][nd.Node]
				if ok && nd.ReceivedMS != nil && *nd.ReceivedMS < em.Areas[0].LeadMS-100 {
					skewInTime = append(skewInTime, at.Sub(start).Abs())
				}
			}
			leads = append(leads, em.Areas[0].LeadMS)
			resends = append(resends, r)
			for _, nd := range rep.Nodes {
				if nd.ReceivedMS != nil {
					received = append(received, time.Duration(*nd.ReceivedMS)*time.Millisecond)
				}
			}
		}
	}
	round(0, false) // warm-up: every node fetches the content and chimes; the area's fan-out is measured
	b.ResetTimer()
	for k := 1; k <= rounds; k++ {
		round(k, true)
	}
	b.StopTimer()
	// The alarms the run opened (a saturated fleet may, for instance, find
	// its clocks uncertain), by kind: open and ended.
	var alarms struct {
		Alarms []struct {
			Kind string    `json:"kind"`
			End  time.Time `json:"end"`
		} `json:"alarms"`
	}
	c.MustDo("GET", "/api/v1/alarms?limit=10000", nil, &alarms)
	byKind := map[string][2]int{}
	for _, a := range alarms.Alarms {
		k := byKind[a.Kind]
		if a.End.IsZero() {
			k[0]++
		} else {
			k[1]++
		}
		byKind[a.Kind] = k
	}
	logf("alarms of the run (open, ended) by kind: %v", byKind)
	m := promtest.Scrape(b, c.URL+"/metrics")
	logf("the broker dropped, over the run, %.0f messages to subscribers whose pending writes were full and %.0f to ones with too many unacknowledged",
		m.Sum("loaxa_broker_messages_dropped_total"), m.Sum("loaxa_broker_inflight_dropped_total"))
	logf("the broker disconnected %.0f connected clients it no longer routed to", m.Sum("loaxa_broker_unrouted_clients_total"))
	for _, f := range fleets {
		f.stop(b)
	}
	fleets = nil

	floor := rawFanout(b, n)

	slices.Sort(toSound)
	slices.Sort(skew)
	slices.Sort(received)
	slices.Sort(skewInTime)
	slices.Sort(timeline)
	slices.Sort(floor)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(toSound, 50)), "p50-sound-ms")
	b.ReportMetric(ms(pct(toSound, 99)), "p99-sound-ms")
	b.ReportMetric(ms(pct(skew, 99)), "p99-skew-ms")
	b.ReportMetric(ms(pct(timeline, 99)), "p99-timeline-skew-ms")
	b.ReportMetric(ms(pct(received, 50)), "p50-received-ms")
	b.ReportMetric(ms(pct(received, 99)), "p99-received-ms")
	b.ReportMetric(ms(pct(floor, 50)), "p50-floor-ms")
	b.ReportMetric(ms(pct(floor, 99)), "p99-floor-ms")
	b.ReportMetric(ms(pct(toSound, 99))/math.Max(ms(pct(floor, 99)), 0.001), "sound/floor-p99")
	logf("%d nodes, %d rounds: alert-to-sound p50 %.1f p99 %.1f max %.1f ms (leads %v ms, resends %v); start skew p50 %.2f p99 %.2f max %.2f ms, %d plays >20 ms late; "+
		"received after issue (node clock) p50 %.0f p99 %.0f ms; raw QoS 1 fan-out to %d subscribers p50 %.1f p99 %.1f max %.1f ms",
		n, rounds, ms(pct(toSound, 50)), ms(pct(toSound, 99)), ms(toSound[len(toSound)-1]), leads, resends,
		ms(pct(skew, 50)), ms(pct(skew, 99)), ms(skew[len(skew)-1]), late,
		ms(pct(received, 50)), ms(pct(received, 99)), n, ms(pct(floor, 50)), ms(pct(floor, 99)), ms(floor[len(floor)-1]))
	logf("off the area's timeline (start skew less how far a late play skipped into its chime): p50 %.2f p99 %.2f max %.2f ms, %d plays >20 ms off it (%d >20 ms off the start, early or late); %d plays began late and skipped into their chime",
		ms(pct(timeline, 50)), ms(pct(timeline, 99)), ms(timeline[len(timeline)-1]), offTimeline, offStart, skipped)
	if len(skewInTime) > 0 {
		logf("start skew of the %d plays whose node had the alert 100 ms or more before the start: p50 %.2f p99 %.2f max %.2f ms",
			len(skewInTime), ms(pct(skewInTime, 50)), ms(pct(skewInTime, 99)), ms(skewInTime[len(skewInTime)-1]))
	}
	if len(ready) > 0 {
		slices.Sort(ready)
		logf("a new %d s message each round: could play after the issue p50 %.0f p99 %.0f max %.0f ms (%d plays); %d of them by the end of the opening chime",
			fresh, ms(pct(ready, 50)), ms(pct(ready, 99)), ms(ready[len(ready)-1]), fetched, inStep)
		logf("of the %d plays whose message came after the chime's end, %d began it in step with a repeat of the nodes that had it (%d repeats)", lateMsgs, joined, repeat)
	}
}

// fetchProfile saves the CPU profile a pprof server takes at url to path.
func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

func maxOf(m map[string]time.Time) time.Time {
	var last time.Time
	for _, at := range m {
		if at.After(last) {
			last = at
		}
	}
	return last
}

// silent logs what the controller knows of the nodes that did not sound
// (at most 20 of them): whether they are online, had the alert, and what
// they reported.
func silent(c *rig.Controller, em loaxa.Emergency, sounded map[string]time.Time, logf func(string, ...any)) {
	var rep loaxa.EmergencyReport
	c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
	shown := 0
	for _, nd := range rep.Nodes {
		if _, ok := sounded[nd.Node]; ok || shown == 20 {
			continue
		}
		shown++
		received, ready := "never", "no"
		if nd.ReceivedMS != nil {
			received = fmt.Sprintf("%d ms", *nd.ReceivedMS)
		}
		if nd.ContentReadyMS != nil {
			ready = fmt.Sprintf("%d ms", *nd.ContentReadyMS)
		}
		logf("did not sound: %s state %q reason %q online %v received %s content ready %s resends %d played %d ms",
			nd.Node, nd.State, nd.Reason, nd.Online, received, ready, nd.Resends, nd.PlayedMS)
	}
}

// soundReader reads a fleet's sound log as it grows.
type soundReader struct {
	path string
	f    *os.File
	part []byte // an incomplete last line
}

// read adds the complete lines written since the last read to sounds,
// and the offsets of the plays that began into their stream to offsets.
func (r *soundReader) read(sounds map[string]map[string]time.Time, offsets map[string]map[string]time.Duration) error {
	if r.f == nil {
		f, err := os.Open(r.path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		r.f = f
	}
	data, err := io.ReadAll(r.f)
	if err != nil {
		return fmt.Errorf("sound log %s: %w", r.path, err)
	}
	data = append(r.part, data...)
	i := bytes.LastIndexByte(data, '\n')
	r.part = slices.Clone(data[i+1:])
	for line := range strings.SplitSeq(string(data[:i+1]), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		var ns, offset int64
		var err error
		if len(f) == 4 {
			ns, err = strconv.ParseInt(f[2], 10, 64)
			if err == nil {
				offset, err = strconv.ParseInt(f[3], 10, 64)
			}
		}
		if len(f) != 4 || err != nil {
			return fmt.Errorf("sound log %s: line %q: want <node> <occurrence> <Unix ns> <offset ns>", r.path, line)
		}
		if sounds[f[1]] == nil {
			sounds[f[1]] = map[string]time.Time{}
		}
		if _, ok := sounds[f[1]][f[0]]; !ok { // the first play counts
			// A play begun a lead-in ahead of its instant (a negative
			// offset) sounds from its stream's first sample, that much
			// after its output took the lead-in's silence.
			sounds[f[1]][f[0]] = time.Unix(0, ns-min(offset, 0))
			if offset > 0 {
				if offsets[f[1]] == nil {
					offsets[f[1]] = map[string]time.Duration{}
				}
				offsets[f[1]][f[0]] = time.Duration(offset)
			}
		}
	}
	return nil
}

// helper is a child process: a fleet, the floor's broker or a floor
// subscriber group. Its stdout lines are kept for await; its stderr goes
// to the benchmark's output.
type helper struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled on every line
	out   sync.WaitGroup
	onOut func(string) // if set, gets every stdout line instead of lines
	ended chan struct{}
}

func startHelper(b testing.TB, name string, cmd *exec.Cmd) *helper {
	h := &helper{name: name, cmd: cmd, more: make(chan struct{}, 1), ended: make(chan struct{})}
	return h.start(b)
}

func (h *helper) start(b testing.TB) *helper {
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	h.cmd.Stderr = prefixWriter{w: os.Stderr, prefix: h.name + ": "}
	if err := h.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", h.name, err)
	}
	h.out.Add(1)
	go func() {
		defer h.out.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if h.onOut != nil {
				h.onOut(sc.Text())
				continue
			}
			h.mu.Lock()
			h.lines = append(h.lines, sc.Text())
			h.mu.Unlock()
			select {
			case h.more <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		h.out.Wait()
		h.cmd.Wait()
		close(h.ended)
	}()
	return h
}

// await returns the first stdout line that ok accepts.
func (h *helper) await(b testing.TB, within time.Duration, ok func(string) bool) string {
	timeout := time.After(within)
	for {
		h.mu.Lock()
		for _, l := range h.lines {
			if ok(l) {
				h.mu.Unlock()
				return l
			}
		}
		h.mu.Unlock()
		select {
		case <-h.more:
		case <-h.ended:
			b.Fatalf("%s ended (%v); stdout %q", h.name, h.cmd.ProcessState, h.lines)
		case <-timeout:
			b.Fatalf("%s: nothing awaited on stdout within %v; stdout %q", h.name, within, h.lines)
		}
	}
}

// stop ends the process (SIGTERM, and closing its stdin) and waits for it.
func (h *helper) stop(b testing.TB) {
	if h.cmd.Process == nil {
		return
	}
	h.stdin.Close()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.ended:
	case <-time.After(2 * time.Minute):
		h.cmd.Process.Kill()
		<-h.ended
		b.Errorf("%s did not stop within 2 min of SIGTERM; killed", h.name)
	}
}

// prefixWriter prefixes each write (a log line) with the helper's name.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// runAsController sets this process's collector percentage as the
// controller's main does (gcpause.SetDefault: GOGC, or 200) while b runs:
// the benchmark runs the controller in its own process.
func runAsController(b *testing.B) {
	prev := debug.SetGCPercent(100)
	debug.SetGCPercent(prev)
	b.Cleanup(func() { debug.SetGCPercent(prev) })
	gcpause.SetDefault(os.Getenv)
}

// simulationEnv adds to env the Go runtime settings asked for the
// simulated nodes' processes (LOAXA_BENCH_FLEET_GOMAXPROCS, _GOGC).
func simulationEnv(env []string) []string {
	if v := os.Getenv(envFleetProcs); v != "" {
		env = append(env, "GOMAXPROCS="+v)
	}
	if v := os.Getenv(envFleetGOGC); v != "" {
		env = append(env, "GOGC="+v)
	}
	return env
}

// rawFanout starts an embedded mochi broker (the controller's broker
// software, without its node authentication) and n plain paho
// subscribers, in processes of their own (PerFleet subscribers each), and
// returns, for five messages of an alert's size published with QoS 1 from
// this process, the time from publish to each subscriber's receipt. A
// message before them warms the broker and the subscribers up and is not
// counted, as the alert benchmarks' round 0 is not: in three runs of
// seven the first message to fresh connections took its broker about
// twice the CPU of the others (buffers and goroutine stacks grown), and
// counted, that one message set the floor's p99. For
// each message it prints (stderr, as the benchmarks' progress) the CPU
// the broker's process and the subscribers' processes used from the
// publish to the last receipt: which side of the floor the time is spent
// on, when both share the machine's cores.
func rawFanout(b *testing.B, n int) []time.Duration {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	role := func(r string, env ...string) *exec.Cmd {
		cmd := exec.Command(self)
		cmd.Env = append(append(os.Environ(), envRole+"="+r), env...)
		return cmd
	}
	broker := startHelper(b, "floor broker", role("floor-broker"))
	defer broker.stop(b)
	addr := strings.TrimPrefix(broker.await(b, time.Minute, func(l string) bool { return strings.HasPrefix(l, "broker ") }), "broker ")

	var mu sync.Mutex
	got := map[int][]time.Time{}
	var subs []*helper
	defer func() {
		for _, s := range subs {
			s.stop(b)
		}
	}()
	for from := 0; from < n; from += PerFleet {
		count := min(PerFleet, n-from)
		s := &helper{name: fmt.Sprintf("floor subscribers %d", from/PerFleet), more: make(chan struct{}, 1), ended: make(chan struct{}),
			cmd: role("floor-subscribers", envFloorBroker+"="+addr, envFloorFrom+"="+strconv.Itoa(from), envFloorCount+"="+strconv.Itoa(count))}
		s.cmd.Env = simulationEnv(s.cmd.Env)
		ready := make(chan struct{})
		s.onOut = func(line string) {
			if line == "ready" {
				close(ready)
				return
			}
			var seq int
			var ns int64
			if _, err := fmt.Sscanf(line, "%d %d", &seq, &ns); err != nil {
				return
			}
			mu.Lock()
			got[seq] = append(got[seq], time.Unix(0, ns))
			mu.Unlock()
		}
		s.start(b)
		subs = append(subs, s)
		select {
		case <-ready:
		case <-s.ended:
			b.Fatalf("%s ended before it was ready", s.name)
		case <-time.After(5 * time.Minute):
			b.Fatalf("%s not ready within 5 min", s.name)
		}
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("floor-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		b.Fatalf("floor publisher: %v", tok.Error())
	}
	defer pub.Disconnect(50)
	payload := make([]byte, 1500) // about a signed alert's size
	var out []time.Duration
	cpu := func() (inBroker, inSubscribers time.Duration) {
		return procsCPU(b, []*helper{broker}), procsCPU(b, subs)
	}
	for seq := range 6 { // 0: the warm-up
		payload[0] = byte(seq)
		broker0, subs0 := cpu()
		t0 := time.Now()
		if tok := pub.Publish(floorTopic, 1, false, payload); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			b.Fatalf("floor publish: %v", tok.Error())
		}
		rig.Eventually(b, 2*time.Minute, "every subscriber has the message", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got[seq]) == n
		})
		broker1, subs1 := cpu()
		mu.Lock()
		last := t0
		for _, at := range got[seq] {
			if seq > 0 {
				out = append(out, at.Sub(t0))
			}
			if at.After(last) {
				last = at
			}
		}
		mu.Unlock()
		warm := ""
		if seq == 0 {
			warm = " (warm-up, not counted)"
		}
		fmt.Fprintf(os.Stderr, "%s floor message %d%s: last receipt %v after the publish; CPU by then (and the check's up to 10 ms later): broker %v, subscribers %v\n",
			time.Now().UTC().Format("15:04:05.000"), seq, warm, last.Sub(t0).Round(time.Millisecond), broker1-broker0, subs1-subs0)
	}
	return out
}

const floorTopic = "loa/v1/area/12346/cmd"

// pct returns the p-th percentile of sorted values (nearest rank).
func pct[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// quiesce waits until the controller's node traffic is down to what n
// agents send at rest: their heartbeat states, one a minute each, with a
// margin (3× and 20 a second). The counters never stand still for long
// with thousands of agents, as settle waits for with thin nodes.
func quiesce(b *testing.B, url string, n int, within time.Duration) {
	b.Helper()
	limit := 3*float64(n)/60 + 20
	deadline := time.Now().Add(within)
	count := func() float64 {
		m := promtest.Scrape(b, url+"/metrics")
		return m.Sum("loaxa_mqtt_messages_out_total") + m.Sum("loaxa_mqtt_messages_ingested_total")
	}
	last, quiet := count(), 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			b.Fatalf("the controller's traffic did not fall to %.0f messages a second within %v", limit, within)
		}
		time.Sleep(time.Second)
		v := count()
		if v-last <= limit {
			quiet++
		} else {
			quiet = 0
		}
		last = v
	}
}
