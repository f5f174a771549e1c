// Package fleetbench measures the controller under a fleet's status
// traffic (scripts/bench-fleet.sh runs it; BENCHMARKS.md records it): the
// real controller binary in its own process, and in this process one raw
// MQTT connection per simulated node, each signed in with its own
// credentials like a board. Two processes, because 10,000 nodes need
// 10,000 sockets on each side and one process may open 20,000 files.
package fleetbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"

	"loaxa.vn/internal/promtest"
	"loaxa.vn/protocol"
)

const password = "bench-admin-password"

// TestFleetStatusIngest is the benchmark; it runs only with
// LOAXA_BENCH_FLEET set to the stages, e.g. "1000,5000,10000".
func TestFleetStatusIngest(t *testing.T) {
	spec := os.Getenv("LOAXA_BENCH_FLEET")
	if spec == "" {
		t.Skip("set LOAXA_BENCH_FLEET=1000,5000,10000 (scripts/bench-fleet.sh)")
	}
	var stages []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("LOAXA_BENCH_FLEET=%q: want node counts like 1000,5000,10000", spec)
		}
		stages = append(stages, n)
	}
	slices.Sort(stages)
	total := stages[len(stages)-1]
	dir := t.TempDir()

	// Raw bbolt batched writes of node-status-sized values, on this disk,
	// in this run: the ceiling a store-backed ingest can reach.
	raw := rawBoltRate(t, filepath.Join(dir, "raw.db"), total)
	t.Logf("RESULT raw bbolt batched writes (1 KiB values, %d keys, 64 writers): %.0f/s", total, raw)

	ctl := startController(t, dir)
	tok := ctl.signIn(t)
	ctl.call(t, tok, "POST", "/api/v1/areas", map[string]string{"id": "31", "name": "Hải Phòng"}, nil)
	ctl.call(t, tok, "POST", "/api/v1/areas", map[string]string{"id": "12346", "name": "Xã Tiên Thắng", "parent": "31"}, nil)
	base := ctl.rss(t)
	t.Logf("RESULT controller RSS with no nodes: %.1f MiB", float64(base)/(1<<20))

	var creds []*protocol.Credentials
	for len(creds) < total {
		n := min(1000, total-len(creds))
		var batch struct {
			Nodes []struct{ Credentials *protocol.Credentials }
		}
		req := map[string]any{"credentials": "document", "nodes": nodeRequests(len(creds), n)}
		ctl.call(t, tok, "POST", "/api/v1/nodes/batch", req, &batch)
		for _, b := range batch.Nodes {
			creds = append(creds, b.Credentials)
		}
	}

	var conns []*rawNode
	t.Cleanup(func() {
		for _, c := range conns {
			c.conn.Close()
		}
	})
	for _, stage := range stages {
		g := errgroup.Group{}
		g.SetLimit(64)
		start := len(conns)
		add := make([]*rawNode, stage-start)
		for i := range add {
			g.Go(func() error {
				c, err := dial(ctl.broker, creds[start+i])
				add[i] = c
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("connect nodes: %v", err)
		}
		conns = append(conns, add...)
		for _, c := range add {
			if err := c.publishState(0); err != nil {
				t.Fatal(err)
			}
		}
		ctl.waitOnline(t, stage, 5*time.Minute)
		rss := ctl.rss(t)
		t.Logf("RESULT %d nodes online: controller RSS %.1f MiB, %.1f KiB/node above the empty controller",
			stage, float64(rss)/(1<<20), float64(rss-base)/float64(stage)/1024)
	}

	// Enrolment made the scheduler compile and publish every node's
	// desired state; let it finish, so the ingest is measured alone.
	ctl.waitQuiet(t, total, 10*time.Minute)

	// Ingest: every node publishes state changes as fast as the links
	// take them, for a while; the controller's rate is what its workers
	// handled per second until they caught up.
	m0 := promtest.Scrape(t, ctl.url+"/metrics")
	ingested0 := m0.Sum("loaxa_mqtt_messages_ingested_total", "channel", "state")
	arrived0, _ := m0.Value("loaxa_mqtt_messages_in_total", "channel", "state")
	dropped0, _ := m0.Value("loaxa_mqtt_messages_dropped_total")
	rounds := 10
	var lat latencies
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		for apiCtx.Err() == nil {
			begin := time.Now()
			ctl.call(t, tok, "GET", "/api/v1/nodes?state=offline", nil, nil)
			lat.add(time.Since(begin))
			time.Sleep(200 * time.Millisecond)
		}
	}()
	begin := time.Now()
	g := errgroup.Group{}
	g.SetLimit(256)
	for _, c := range conns {
		g.Go(func() error {
			for r := 1; r <= rounds; r++ {
				if err := c.publishState(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	sent := float64(len(conns) * rounds)
	sentIn := time.Since(begin)
	// Wait until nothing moves for 5 s: what was lost on the way (the
	// broker's queue to the controller, the ingest queues) never comes.
	var ingested, arrived, dropped float64
	lastMove, lastIngest := time.Now(), time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Since(lastMove) < 5*time.Second && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		m := promtest.Scrape(t, ctl.url+"/metrics")
		in := m.Sum("loaxa_mqtt_messages_ingested_total", "channel", "state") - ingested0
		a, _ := m.Value("loaxa_mqtt_messages_in_total", "channel", "state")
		d, _ := m.Value("loaxa_mqtt_messages_dropped_total")
		if in != ingested {
			lastIngest = time.Now()
		}
		if in != ingested || a-arrived0 != arrived || d-dropped0 != dropped {
			lastMove = time.Now()
		}
		ingested, arrived, dropped = in, a-arrived0, d-dropped0
	}
	took := lastIngest.Sub(begin)
	stopAPI()
	<-apiDone
	rate := ingested / took.Seconds()
	t.Logf("RESULT ingest: %d nodes × %d state changes = %.0f sent in %v; %.0f reached the controller's client, %.0f dropped from its full queues, %.0f handled in %v: %.0f states/s, %.2f of raw bbolt",
		len(conns), rounds, sent, sentIn.Round(time.Millisecond), arrived, dropped, ingested, took.Round(time.Millisecond), rate, rate/raw)
	p50, p99, n := lat.percentiles()
	t.Logf("RESULT GET /api/v1/nodes?state=offline during the ingest: p50 %v, p99 %v over %d requests", p50, p99, n)
	rss := ctl.rss(t)
	t.Logf("RESULT after the ingest: controller RSS %.1f MiB, %.1f KiB/node", float64(rss)/(1<<20), float64(rss-base)/float64(len(conns))/1024)
}

// rawBoltRate is how many 1 KiB puts per second bbolt takes through
// db.Batch from 64 goroutines over n keys, for three seconds.
func rawBoltRate(t *testing.T, path string, n int) float64 {
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("x"), 1024)
	var done atomic.Int64
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(end); i += 64 {
				key := []byte(fmt.Sprintf("n%06d", i%n))
				err := db.Batch(func(tx *bbolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("nodes"))
					if err != nil {
						return err
					}
					return b.Put(key, val)
				})
				if err != nil {
					t.Error(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))].Round(time.Microsecond) }
	return at(0.50), at(0.99), len(s)
}

func nodeRequests(from, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		id := fmt.Sprintf("fb-%05d", from+i+1)
		out[i] = map[string]any{"id": id, "name": "Bench " + id, "area": "12346", "lat": 20.8, "lon": 106.7}
	}
	return out
}

// controller is the controller binary running in its own process.
type controller struct {
	cmd    *exec.Cmd
	url    string
	broker string
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startController(t *testing.T, dir string) *controller {
	bin := filepath.Join(dir, "controller")
	build := exec.Command("go", "build", "-o", bin, "loaxa.vn/controller")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build controller: %v\n%s", err, out)
	}
	httpAddr, mqttAddr := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--http", httpAddr, "--mqtt", mqttAddr, "--data", filepath.Join(dir, "data"), "--log-level", "error", "--daily-test", "off")
	cmd.Env = append(os.Environ(), "LOAXA_ADMIN_PASSWORD="+password)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	c := &controller{cmd: cmd, url: "http://" + httpAddr, broker: mqttAddr}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(c.url + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not healthy after a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *controller) signIn(t *testing.T) string {
	var tok struct{ Token string }
	c.call(t, "", "POST", "/api/v1/auth/token", map[string]string{"username": "admin", "password": password}, &tok)
	return tok.Token
}

func (c *controller) call(t *testing.T, token, method, path string, in, out any) {
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.url+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		return
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Errorf("%s %s: %v", method, path, err)
		}
	}
}

func (c *controller) waitOnline(t *testing.T, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		m := promtest.Scrape(t, c.url+"/metrics")
		if v, _ := m.Value("loaxa_nodes", "state", "online"); int(v) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes not online within %v", n, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitQuiet waits until the scheduler has published n desired states and
// published nothing more for 3 s.
func (c *controller) waitQuiet(t *testing.T, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	last, since := -1.0, time.Now()
	for {
		m := promtest.Scrape(t, c.url+"/metrics")
		v, _ := m.Value("loaxa_mqtt_messages_out_total", "kind", "desired")
		if v != last {
			last, since = v, time.Now()
		}
		if int(v) >= n && time.Since(since) > 3*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler still publishing after %v (%v desired states)", within, v)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rss is the controller's resident memory in bytes.
func (c *controller) rss(t *testing.T) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// rawNode is one simulated node: an MQTT 3.1.1 connection with the node's
// credentials that publishes its state (QoS 0, retained) and never reads.
type rawNode struct {
	conn  net.Conn
	cred  *protocol.Credentials
	topic string
}

func dial(addr string, cred *protocol.Credentials) (*rawNode, error) {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 4, 0x80|0x40|0x02, 0, 0) // level 4; username, password, clean session; no keep-alive
	vh = appendString(vh, cred.Node)
	vh = appendString(vh, cred.Username)
	vh = appendString(vh, cred.Secret)
	if _, err := conn.Write(packet(0x10, vh)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connack of %s: %w", cred.Node, err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connack of %s: refused (%x)", cred.Node, ack)
	}
	topics := protocol.NewTopics(cred.Prefix())
	return &rawNode{conn: conn, cred: cred, topic: topics.Node(cred.Node, protocol.ChanState)}, nil
}

// publishState sends a state whose battery reading changes with round.
func (n *rawNode) publishState(round int) error {
	volts := 13.0 - float64(round%10)/100
	mains := true
	st := protocol.State{Status: protocol.StatusOnline, At: time.Now().UTC(), Agent: "fleetbench", HeartbeatMS: 60000,
		Board: &protocol.Board{Mains: &mains, BatteryVolts: &volts}}
	body, err := protocol.Encode(protocol.TypeState, n.cred.Node, "controller", 0, time.Now(), st)
	if err != nil {
		return err
	}
	var vh []byte
	vh = appendString(vh, n.topic)
	vh = append(vh, body...)
	n.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err = n.conn.Write(packet(0x31, vh)) // PUBLISH, QoS 0, retained
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("publish of %s: broker not reading: %w", n.cred.Node, err)
	}
	return err
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(header byte, body []byte) []byte {
	out := []byte{header}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// TestNodeAgentIdle measures one real node agent binary (--audio none)
// connected to the controller and idle: resident memory, and CPU over
// LOAXA_BENCH_IDLE (default 30s) after 10 s of settling.
func TestNodeAgentIdle(t *testing.T) {
	if os.Getenv("LOAXA_BENCH_FLEET") == "" {
		t.Skip("set LOAXA_BENCH_FLEET (scripts/bench-fleet.sh)")
	}
	window := 30 * time.Second
	if v := os.Getenv("LOAXA_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LOAXA_BENCH_IDLE=%q: %v", v, err)
		}
		window = d
	}
	dir := t.TempDir()
	ctl := startController(t, dir)
	tok := ctl.signIn(t)
	ctl.call(t, tok, "POST", "/api/v1/areas", map[string]string{"id": "31", "name": "Hải Phòng"}, nil)
	var created struct{ Credentials *protocol.Credentials }
	ctl.call(t, tok, "POST", "/api/v1/nodes", map[string]any{"id": "idle-01", "name": "Idle", "area": "31", "lat": 20.8, "lon": 106.7}, &created)
	credPath := filepath.Join(dir, "node.json")
	raw, _ := json.Marshal(created.Credentials)
	if err := os.WriteFile(credPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "node")
	if out, err := exec.Command("go", "build", "-o", bin, "loaxa.vn/node").CombinedOutput(); err != nil {
		t.Fatalf("build node: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--credentials", credPath, "--data", filepath.Join(dir, "node-data"), "--audio", "none", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	ctl.waitOnline(t, 1, time.Minute)
	time.Sleep(10 * time.Second) // measuring idleness: let start-up work (time sync, desired state) finish
	node := &controller{cmd: cmd}
	ticks0 := cpuTicks(t, cmd.Process.Pid)
	begin := time.Now()
	time.Sleep(window)
	ticks := cpuTicks(t, cmd.Process.Pid) - ticks0
	cpu := float64(ticks) / 100 / time.Since(begin).Seconds() // USER_HZ is 100 on Linux
	t.Logf("RESULT node agent idle: RSS %.1f MiB, CPU %.2f%% of one core over %v", float64(node.rss(t))/(1<<20), 100*cpu, window)
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ")".
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}
