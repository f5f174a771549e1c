// Package fetchbench measures a fleet fetching new content from a real
// controller at once: the node content cache (node/content) of N enrolled
// nodes, in fleet processes of 2,500 (the test binary run again), against
// the controller's audio route in the benchmark's process, with and
// without the spread of first fetches. It has benchmarks only;
// scripts/bench-content.sh runs them.
package fetchbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/content"
	"loaxa.vn/protocol"
)

// BenchmarkFleetFetch: N nodes (LOAXA_BENCH_NODES, default 2000) learn of
// one new 60-second bulletin in the same instant, first due in 10 minutes.
// It reports how long until every node has it, the most requests the
// controller had in flight, request times and failures.
func BenchmarkFleetFetch(b *testing.B) {
	nodes := benchNodes(2000)
	creds, ref := fleet(b, nodes, speechWAV(60*time.Second))
	for _, spread := range []time.Duration{0, 30 * time.Second} {
		b.Run(fmt.Sprintf("nodes=%d/spread=%v", nodes, spread), func(b *testing.B) {
			for b.Loop() {
				run(b, creds, ref, spread, 10*time.Minute, 0)
			}
		})
	}
}

// BenchmarkAlertFetch: N nodes (LOAXA_BENCH_NODES, default 2000) receive
// an alert whose message none of them has: 20 s of speech made from typed
// text a moment before, needed at the end of a 300 ms lead, with the
// agent's spread (30 s, so a quarter of the lead). It reports how long
// until every node has it, and until every node could begin to play it
// as it arrives (s-playable-*): what an alert without standing content
// (docs/content.md) waits for, on top of its lead, at its last cluster.
//
//	LOAXA_BENCH_NODES=2000 go test -run '^$' -bench AlertFetch -benchtime 1x -timeout 60m ./e2e/fetchbench/
//
// LOAXA_BENCH_UPLINK_MBIT (a list, e.g. "0,1000,100") runs it once per
// controller uplink: every node's download shares one link of that many
// Mbit/s (0: loopback, no limit), in 4 KB turns, as TCP flows through one
// bottleneck share it.
func BenchmarkAlertFetch(b *testing.B) {
	nodes := benchNodes(2000)
	creds, ref := fleet(b, nodes, speechWAV(20*time.Second))
	for _, mbit := range uplinks() {
		b.Run(fmt.Sprintf("nodes=%d/KB=%d/uplink-mbit=%d", nodes, ref.Size/1000, mbit), func(b *testing.B) {
			for b.Loop() {
				run(b, creds, ref, 30*time.Second, 300*time.Millisecond, mbit)
			}
		})
	}
}

// uplinks is LOAXA_BENCH_UPLINK_MBIT, or no limit.
func uplinks() []int {
	var out []int
	for _, f := range strings.Split(os.Getenv("LOAXA_BENCH_UPLINK_MBIT"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n >= 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{0}
	}
	return out
}

// uplink is a link of a fixed rate that readers take turns on: each read
// of n bytes waits for the link to have carried the reads before it, then
// for n bytes' time.
type uplink struct {
	bytesPerSec float64
	mu          sync.Mutex
	free        time.Time // when the link has carried every read so far
}

func (u *uplink) carry(n int) {
	now := time.Now()
	u.mu.Lock()
	at := u.free
	if at.Before(now) {
		at = now
	}
	at = at.Add(time.Duration(float64(n) / u.bytesPerSec * float64(time.Second)))
	u.free = at
	u.mu.Unlock()
	time.Sleep(time.Until(at))
}

// limitedBody reads through an uplink in turns of at most 4 KB.
type limitedBody struct {
	io.ReadCloser
	link *uplink
}

func (l *limitedBody) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p[:min(len(p), 4096)])
	if n > 0 {
		l.link.carry(n)
	}
	return n, err
}

// benchNodes is LOAXA_BENCH_NODES, or def.
func benchNodes(def int) int {
	if n, err := strconv.Atoi(os.Getenv("LOAXA_BENCH_NODES")); err == nil && n > 0 {
		return n
	}
	return def
}

// fleet starts a controller with nodes enrolled nodes in one area and the
// audio uploaded, and returns the nodes' credentials and the content.
func fleet(b *testing.B, nodes int, audio []byte) ([]*protocol.Credentials, protocol.ContentRef) {
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	ct := c.Upload("ban-tin.wav", audio)
	creds := make([]*protocol.Credentials, nodes)
	for i := range creds {
		creds[i] = c.CreateNode(fmt.Sprintf("n%05d", i), "31")
	}
	return creds, protocol.ContentRef{ID: ct.ID, Size: ct.Size, DurationMS: ct.DurationMS, Path: "/api/v1/content/" + ct.ID + "/audio", Chunks: ct.Chunks}
}

// perProcess is how many nodes one fleet process holds: each node's
// download is a connection and a part file, and one process (with the
// controller in it) would pass this machine's 20,000 open files.
const perProcess = 2500

// job is what a fleet process is asked to do (JSON on its stdin).
type job struct {
	Creds       []*protocol.Credentials `json:"creds"`
	Ref         protocol.ContentRef     `json:"ref"`
	Spread      time.Duration           `json:"spread"`
	NeedIn      time.Duration           `json:"need_in"`
	BytesPerSec float64                 `json:"bytes_per_sec"` // its share of the uplink; 0: no limit
}

// result is what a fleet process measured (JSON on its stdout).
type result struct {
	Playable []time.Duration `json:"playable"` // per node, since the start
	Has      []time.Duration `json:"has"`
	Requests []time.Duration `json:"requests"`
	Peak     int64           `json:"peak"`
	Failures map[string]int  `json:"failures"`
	Late     bool            `json:"late"`
}

// TestMain runs a fleet process when the benchmark starts the test binary
// as one (fleetEnv set), else the benchmarks.
func TestMain(m *testing.M) {
	if os.Getenv(fleetEnv) != "" {
		if err := fleetProcess(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "fleet process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const fleetEnv = "LOAXA_FETCHBENCH_FLEET"

// run has the nodes of creds, in fleet processes of perProcess, learn at
// the same instant that they need ref within needIn, and reports how long
// until every node could play it as it arrives and until every node had
// it. An uplink of uplinkMbit (0: no limit) is shared by all downloads:
// each process gets its share of it, shared by its nodes.
func run(b *testing.B, creds []*protocol.Credentials, ref protocol.ContentRef, spread, needIn time.Duration, uplinkMbit int) {
	procs := (len(creds) + perProcess - 1) / perProcess
	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Scanner
	}
	var ps []proc
	defer func() {
		for _, p := range ps {
			p.in.Close()
			p.cmd.Wait()
		}
	}()
	for i := range procs {
		chunk := creds[i*perProcess : min((i+1)*perProcess, len(creds))]
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), fleetEnv+"=1")
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		ps = append(ps, proc{cmd, in, sc})
		j := job{Creds: chunk, Ref: ref, Spread: spread, NeedIn: needIn}
		if uplinkMbit > 0 {
			j.BytesPerSec = float64(uplinkMbit) * 1e6 / 8 * float64(len(chunk)) / float64(len(creds))
		}
		if err := json.NewEncoder(in).Encode(j); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range ps {
		if !p.out.Scan() || p.out.Text() != "ready" {
			b.Fatalf("a fleet process did not get ready: %q %v", p.out.Text(), p.out.Err())
		}
	}
	start := time.Now().Add(100 * time.Millisecond)
	for _, p := range ps {
		fmt.Fprintln(p.in, start.UnixNano())
	}
	var playable, has, requests []time.Duration
	var peak int64
	failures := map[string]int{}
	for _, p := range ps {
		if !p.out.Scan() {
			b.Fatalf("a fleet process gave no result: %v", p.out.Err())
		}
		var r result
		if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
			b.Fatal(err)
		}
		if r.Late {
			b.Fatal("not every node has the content after 10 minutes")
		}
		playable, has, requests = append(playable, r.Playable...), append(has, r.Has...), append(requests, r.Requests...)
		peak += r.Peak
		for c, n := range r.Failures {
			failures[c] += n
		}
	}
	slices.Sort(playable)
	slices.Sort(has)
	slices.Sort(requests)
	failed := 0
	for c, n := range failures {
		failed += n
		b.Logf("failed requests: %6d %s", n, c)
	}
	b.ReportMetric(has[len(has)-1].Seconds(), "s-until-all")
	b.ReportMetric(float64(peak), "peak-in-flight")
	b.ReportMetric(float64(failed), "failed-requests")
	b.ReportMetric(requests[len(requests)/2].Seconds()*1000, "p50-ms")
	b.ReportMetric(requests[len(requests)*99/100].Seconds()*1000, "p99-ms")
	if needIn < time.Minute {
		b.ReportMetric(playable[len(playable)/2].Seconds(), "s-playable-p50")
		b.ReportMetric(playable[len(playable)-1].Seconds(), "s-playable-all")
		b.ReportMetric(has[len(has)/2].Seconds(), "s-has-p50")
	}
}

// fleetProcess runs the node caches of the job read from in: it says
// "ready" once they run, waits for the start instant (Unix ns, a line),
// then has every cache want the content at that instant and writes what
// it measured.
func fleetProcess(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var j job
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	rt := &meter{next: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Second}}
	if j.BytesPerSec > 0 {
		rt.link = &uplink{bytesPerSec: j.BytesPerSec}
	}
	client := &http.Client{Transport: rt}
	dir, err := os.MkdirTemp("", "fetchbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		rt.transportClose()
	}()
	caches := make([]*content.Cache, len(j.Creds))
	for i, cr := range j.Creds {
		cache, err := content.Open(content.Config{
			Dir: filepath.Join(dir, cr.Node), BaseURL: cr.Controller, Username: cr.Username, Secret: cr.Secret,
			Client: client, Spread: j.Spread, BackoffMin: 2 * time.Second, BackoffMax: time.Minute,
		})
		if err != nil {
			return err
		}
		caches[i] = cache
		wg.Go(func() { cache.Run(ctx) })
	}
	fmt.Fprintln(out, "ready")
	lines := bufio.NewReader(io.MultiReader(dec.Buffered(), in))
	var line string
	for strings.TrimSpace(line) == "" {
		if line, err = lines.ReadString('\n'); err != nil && strings.TrimSpace(line) == "" {
			return fmt.Errorf("read the start: %w", err)
		}
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return fmt.Errorf("read the start: %w", err)
	}
	start := time.Unix(0, ns)
	time.Sleep(time.Until(start))
	need := start.Add(j.NeedIn)
	for _, cache := range caches {
		cache.Want([]content.Wanted{{ContentRef: j.Ref, Need: need}})
	}
	// Per node: when it could begin to play the content (played as it
	// arrives, node/content) and when it has all of it.
	r := result{Playable: make([]time.Duration, len(caches)), Has: make([]time.Duration, len(caches))}
	var late atomic.Bool
	var watch sync.WaitGroup
	for i, cache := range caches {
		watch.Go(func() {
			for !cache.Has(j.Ref.ID) {
				if r.Playable[i] == 0 && cache.Playable(j.Ref.ID) {
					r.Playable[i] = time.Since(start)
				}
				select {
				case <-cache.Changed():
				case <-time.After(100 * time.Millisecond):
				}
				if time.Since(start) > 10*time.Minute {
					late.Store(true)
					return
				}
			}
			r.Has[i] = time.Since(start)
			if r.Playable[i] == 0 {
				r.Playable[i] = r.Has[i]
			}
		})
	}
	watch.Wait()
	r.Late = late.Load()
	r.Requests = rt.durations()
	r.Peak = rt.peak.Load()
	rt.mu.Lock()
	r.Failures = rt.causes
	rt.mu.Unlock()
	return json.NewEncoder(out).Encode(r)
}

// meter counts requests in flight and times them to the end of the body.
type meter struct {
	next     *http.Transport
	link     *uplink // nil: no limit
	inFlight atomic.Int64
	peak     atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	times    []time.Duration
	causes   map[string]int // failed requests by cause
}

func (m *meter) RoundTrip(r *http.Request) (*http.Response, error) {
	n := m.inFlight.Add(1)
	for p := m.peak.Load(); n > p && !m.peak.CompareAndSwap(p, n); p = m.peak.Load() {
	}
	start := time.Now()
	resp, err := m.next.RoundTrip(r)
	switch {
	case err != nil:
		m.fail(err.Error())
	case resp.StatusCode >= 300:
		m.fail(resp.Status)
	}
	if err != nil {
		m.done(start)
		return nil, err
	}
	if m.link != nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, link: m.link}
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, end: func() { m.done(start) }}
	return resp, nil
}

// fail counts a failed request by its cause, addresses and ports left
// out so that like causes count together.
func (m *meter) fail(cause string) {
	m.failed.Add(1)
	cause = addrs.ReplaceAllString(cause, "ADDR")
	m.mu.Lock()
	if m.causes == nil {
		m.causes = map[string]int{}
	}
	m.causes[cause]++
	m.mu.Unlock()
}

var addrs = regexp.MustCompile(`[0-9.]+:[0-9]+`)

func (m *meter) done(start time.Time) {
	m.inFlight.Add(-1)
	m.mu.Lock()
	m.times = append(m.times, time.Since(start))
	m.mu.Unlock()
}

func (m *meter) durations() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := slices.Clone(m.times)
	slices.Sort(d)
	return d
}

func (m *meter) transportClose() { m.next.CloseIdleConnections() }

type timedBody struct {
	io.ReadCloser
	once sync.Once
	end  func()
}

func (t *timedBody) Close() error {
	err := t.ReadCloser.Close()
	t.once.Do(t.end)
	return err
}

// speechWAV is a 16 kHz mono WAV of a voiced, speech-like sound.
func speechWAV(d time.Duration) []byte {
	n := int(d.Seconds() * 16000)
	var buf bytes.Buffer
	le := binary.LittleEndian
	buf.WriteString("RIFF")
	binary.Write(&buf, le, uint32(36+2*n))
	buf.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)} {
		binary.Write(&buf, le, v)
	}
	buf.WriteString("data")
	binary.Write(&buf, le, uint32(2*n))
	for i := range n {
		t := float64(i) / 16000
		v := 0.3 * (0.6 + 0.4*math.Sin(2*math.Pi*4*t)) * (math.Sin(2*math.Pi*150*t) + 0.4*math.Sin(2*math.Pi*450*t) + 0.2*math.Sin(2*math.Pi*1300*t))
		binary.Write(&buf, le, int16(v*32767))
	}
	return buf.Bytes()
}
