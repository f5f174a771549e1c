// Package rig starts the real parts of loaxa for end-to-end tests: the
// controller (HTTP API, scheduler, store, embedded broker or an external
// one) with an API client signed in as admin, and real node agents talking
// to it over TCP.
package rig

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/board"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

const adminPassword = "e2e-admin-password"

// AdminPassword is the password of user admin on every test controller,
// for tests that sign in as a person would (e2e/console).
const AdminPassword = adminPassword

// Logger logs warnings and errors into the test output, everything with
// LOAXA_TEST_LOG=debug.
func Logger(t testing.TB, name string) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("LOAXA_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level})).With("part", name)
}

// Controller is a running controller and an API client signed in as admin.
type Controller struct {
	t     testing.TB
	App   *app.App
	URL   string
	Token string
	// Client makes the API calls (it trusts the controller's certificate
	// over TLS).
	Client *http.Client

	cfg     app.Config        // as started, for Restart
	opt     ControllerOptions // as given, for Restart
	stopped bool
}

// ControllerOptions change how StartControllerWith runs a controller.
type ControllerOptions struct {
	// Broker is an external broker URL; "" runs the embedded broker.
	Broker string
	// Configure changes the configuration before the controller starts.
	Configure func(*app.Config)
	// Logger receives the controller's log (default: Logger(t, ...)).
	Logger *slog.Logger
	// Client is the API client (default: http.DefaultClient).
	Client *http.Client
	// Clock is the controller's clock (default: the real one).
	Clock clock.Clock
	// EUID is the user the controller takes itself to run as (default:
	// the test's), e.g. another than the data directory's owner, for its
	// "files" health check to fail as after a restore made as root.
	EUID func() int
}

// StartController runs a controller on loopback ports with a temp data dir;
// brokerURL "" runs the embedded broker.
func StartController(t testing.TB, brokerURL string) *Controller {
	t.Helper()
	return StartControllerWith(t, ControllerOptions{Broker: brokerURL})
}

// StartControllerOn is StartController with the controller's clock (nil:
// the real one), e.g. a clock.Fake shared with the nodes to run days of a
// programme in seconds.
func StartControllerOn(t testing.TB, brokerURL string, clk clock.Clock) *Controller {
	t.Helper()
	return StartControllerWith(t, ControllerOptions{Broker: brokerURL, Clock: clk})
}

// StartControllerWith runs a controller as StartController does, with opt.
func StartControllerWith(t testing.TB, opt ControllerOptions) *Controller {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.BrokerURL = opt.Broker
	cfg.AdminPassword = adminPassword
	// No daily self-test: at 03:00 in Hải Phòng (20:00 UTC) it would add
	// events to whatever test runs then. Tests of it set it
	// (controller/health tests it on a fake clock).
	cfg.Health.DailyTest = ""
	// The disk check is about the controller's host, not what a test
	// checks: off unless a test raises it.
	cfg.StoreMinFree = 0
	// No fan-out probes: one 2 minutes in would give a slow test's later
	// alert another lead than its first. Tests of them set them.
	cfg.Probing = emergency.Probing{Every: -1}
	// Passwords at bcrypt's lowest cost: at the default, each user made
	// and each sign-in took about a second of CPU under the race detector.
	cfg.PasswordCost = bcrypt.MinCost
	if opt.Configure != nil {
		opt.Configure(&cfg)
	}
	if opt.Logger == nil {
		opt.Logger = Logger(t, "controller")
	}
	if opt.Client == nil {
		opt.Client = http.DefaultClient
	}
	a := app.New(cfg, opt.Logger)
	a.Out = io.Discard
	if opt.Clock != nil {
		a.Clock = opt.Clock
	}
	a.EUID = opt.EUID
	if err := a.Open(); err != nil {
		t.Fatalf("start controller: %v", err)
	}
	c := &Controller{t: t, App: a, URL: a.HTTP.URL(), Client: opt.Client, cfg: cfg, opt: opt}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c.SignIn()
	return c
}

// SignIn gets a fresh admin token (after a fake clock jumped past the old
// one's lifetime).
func (c *Controller) SignIn() {
	c.t.Helper()
	c.Token = ""
	var tok struct{ Token string }
	c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": "admin", "password": adminPassword}, &tok)
	c.Token = tok.Token
}

// Do sends a JSON request and decodes a JSON answer into out; it returns
// the status and the raw body.
func (c *Controller) Do(method, path string, in, out any) (int, []byte) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.Send(req, out)
}

// Send sends req with the admin token and decodes a JSON answer into out.
func (c *Controller) Send(req *http.Request, out any) (int, []byte) {
	c.t.Helper()
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", req.Method, req.URL.Path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// MustDo is Do that fails the test on any status >= 300.
func (c *Controller) MustDo(method, path string, in, out any) {
	c.t.Helper()
	if status, raw := c.Do(method, path, in, out); status >= 300 {
		c.t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
}

// For returns c making its API calls on behalf of t: a helper called
// from a subtest fails that subtest, not the test that started the
// controller (whose Fatal, from a subtest, would also stop the subtests
// after it). Only for API calls; stop and restart c itself.
func (c *Controller) For(t testing.TB) *Controller {
	cc := *c
	cc.t = t
	return &cc
}

// CreateArea adds an area.
func (c *Controller) CreateArea(id, name, parent string) {
	c.t.Helper()
	c.MustDo("POST", "/api/v1/areas", map[string]string{"id": id, "name": name, "parent": parent}, nil)
}

// CreateNode enrols a node and returns its credentials document.
func (c *Controller) CreateNode(id, area string) *protocol.Credentials {
	c.t.Helper()
	var created struct {
		Credentials protocol.Credentials `json:"credentials"`
	}
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": id, "name": "Cụm loa " + id, "area": area, "lat": 20.8, "lon": 106.7}, &created)
	return &created.Credentials
}

// Upload posts a WAV file and returns the stored content.
func (c *Controller) Upload(name string, wav []byte) *loaxa.Content {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("title", "Bản tin "+name)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(wav)
	mw.Close()
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/content", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var ct loaxa.Content
	if status, raw := c.Send(req, &ct); status >= 300 {
		c.t.Fatalf("upload %s: %d %s", name, status, raw)
	}
	return &ct
}

// Announce schedules a normal-priority one-off announcement.
func (c *Controller) Announce(contentID string, areas, nodes []string, start time.Time) *loaxa.Announcement {
	c.t.Helper()
	var a loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{
		"title": "Thông báo", "content_id": contentID, "priority": "normal",
		"targets": map[string][]string{"areas": nonNil(areas), "nodes": nonNil(nodes)},
		"start":   start.Format(time.RFC3339Nano),
	}, &a)
	return &a
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Deliveries lists the deliveries of an announcement.
func (c *Controller) Deliveries(ann string) []*loaxa.Delivery {
	c.t.Helper()
	var resp struct{ Deliveries []*loaxa.Delivery }
	c.MustDo("GET", "/api/v1/announcements/"+ann+"/deliveries", nil, &resp)
	return resp.Deliveries
}

// Events queries the play log.
func (c *Controller) Events(query url.Values) []*loaxa.Event {
	c.t.Helper()
	var resp struct{ Events []*loaxa.Event }
	c.MustDo("GET", "/api/v1/events?"+query.Encode(), nil, &resp)
	return resp.Events
}

// Node returns a node with its status.
func (c *Controller) Node(id string) *loaxa.Node {
	c.t.Helper()
	var n loaxa.Node
	c.MustDo("GET", "/api/v1/nodes/"+id, nil, &n)
	return &n
}

// Node is a running node agent.
type Node struct {
	ID    string
	Agent *agent.Agent
	// DB is the agent's store; tests may read it while the agent runs.
	DB     *store.Bolt
	cancel context.CancelFunc
	done   chan error
}

// NodeOptions change how StartNode runs an agent.
type NodeOptions struct {
	Broker string       // override the credentials' broker URL (e.g. a netproxy)
	Output agent.Output // default: audio.None on the real clock
	Dir    string       // data dir (default: a temp dir); reuse to restart a node
	// Clock is the board's system clock (default clock.Real); a skewed one
	// plays a board whose clock is wrong.
	Clock clock.Clock
	// Logger receives the agent's log (default: Logger(t, ...)).
	Logger *slog.Logger
	// ContentSpread is the agent's spread of first content fetches
	// (default 2s: real, and short enough for tests that schedule far
	// ahead on a fake clock; node/content tests the spread itself). It
	// is the spread of content kept with no play (the emergency chimes,
	// standing content) too, rather than the agent's ten minutes.
	ContentSpread time.Duration
	// Board is the node's hardware (default board.None), e.g. a
	// firmware-sim board to inject faults into.
	Board agent.Board
	// Tune adjusts the agent's configuration before it is created.
	Tune func(*agent.Config)
}

// StartNode runs a real agent with creds in this process, stopped when the
// test ends.

func StartNode(t testing.TB, creds *protocol.Credentials, opt NodeOptions) *Node {
	t.Helper()
	cr := *creds
	if opt.Broker != "" {
		cr.Broker = opt.Broker
	}
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	// A damaged store is set aside and a new one started, as the node
	// program does, which reads back what the new one can use of it (here
	// in this process, not in one of its own).
	st, _, err := store.OpenBoltOrSetAside(filepath.Join(opt.Dir, "node.db"), time.Now())
	damaged := 0
	if de := (*store.DamagedError)(nil); errors.As(err, &de) {
		damaged, err = 1, nil
		var kept store.Kept
		if serr := store.Salvage(de.Aside, time.Now(), kept.Add); serr != nil {
			t.Logf("node %s: the damaged store read back in part: %v", cr.Node, serr)
		}
		if err := st.Keep(&kept, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Output == nil {
		opt.Output = audio.NewNone(opt.Clock)
	}
	if opt.Logger == nil {
		opt.Logger = Logger(t, "node "+cr.Node)
	}
	if opt.ContentSpread == 0 {
		opt.ContentSpread = 2 * time.Second
	}
	if opt.Board == nil {
		opt.Board = board.None{}
	}
	ac := agent.Config{
		Credentials: &cr, DataDir: opt.Dir, Store: st, Output: opt.Output, Board: opt.Board,
		Clock: opt.Clock, Logger: opt.Logger, Version: "e2e", ContentSpread: opt.ContentSpread, ContentKeepSpread: -1,
		DamagedAtStart: damaged,
	}
	if opt.Tune != nil {
		opt.Tune(&ac)
	}
	a, err := agent.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{ID: cr.Node, Agent: a, DB: st, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// Acknowledged waits until the controller has acknowledged every event
// the node sent: its outbox, as the node itself sees it, is empty. (The
// count in the node's published state is not enough: a change of the
// count alone publishes no state below a backlog, so it can be a
// heartbeat old.)
func (n *Node) Acknowledged(t testing.TB, within time.Duration) {
	t.Helper()
	Eventually(t, within, n.ID+" outbox acknowledged", func() bool { return n.Agent.Status().Outbox == 0 })
}

// Stop stops the agent and closes its store; safe to call twice.
func (n *Node) Stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node %s: %v", n.ID, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("node %s did not stop within 10s", n.ID)
	}
	if err := n.DB.Close(); err != nil {
		t.Errorf("node %s: close store: %v", n.ID, err)
	}
}

// AwaitKept waits until node n is online with everything its desired
// state names: the chimes every cluster keeps, standing content. An alert
// sent before that waits for its chime like a bulletin for its content.
func (c *Controller) AwaitKept(n *Node, within time.Duration) {
	c.t.Helper()
	Eventually(c.t, within, n.ID+" online with the content it keeps", func() bool {
		st := n.Agent.Status()
		return c.Node(n.ID).Status.State == loaxa.NodeOnline && st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
}

// Eventually polls cond until it holds or the deadline passes; the message
// says what was awaited. Polling observes asynchronous outcomes without
// assuming how long they take.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ToneWAV returns a PCM WAV of a sine tone: rate Hz, channels, 16-bit.
func ToneWAV(freq float64, dur time.Duration, rate, channels int) []byte {
	frames := int(dur.Seconds() * float64(rate))
	samples := make([]int16, 0, frames*channels)
	for i := 0; i < frames; i++ {
		v := int16(0.5 * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		for ch := 0; ch < channels; ch++ {
			samples = append(samples, v)
		}
	}
	return PCMWAV(samples, rate, channels)
}

// PCMWAV returns 16-bit samples (interleaved when channels > 1) as a PCM
// WAV file at rate Hz.
func PCMWAV(samples []int16, rate, channels int) []byte {
	var b bytes.Buffer
	b.Grow(44 + 2*len(samples))
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*len(samples)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * 2))
	le(uint16(channels * 2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * len(samples)))
	le(samples)
	return b.Bytes()
}

// CountEvents counts events by node and type for one occurrence.
func CountEvents(evs []*loaxa.Event, occurrence string) map[string]map[protocol.EventType]int {
	out := map[string]map[protocol.EventType]int{}
	for _, e := range evs {
		if e.Occurrence != occurrence {
			continue
		}
		if out[e.Node] == nil {
			out[e.Node] = map[protocol.EventType]int{}
		}
		out[e.Node][e.Type]++
	}
	return out
}

// Describe renders v as indented JSON for failure messages.
func Describe(v any) string {
	raw, _ := json.MarshalIndent(v, "", " ")
	return strings.TrimSpace(string(raw))
}
