// Package e2e runs the real parts together: the controller (HTTP API,
// scheduler, store, embedded broker or a real Mosquitto) and real node
// agents, talking over real TCP. Only the audio device is replaced by the
// paced None output here; e2e/audio plays through ALSA.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/board"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

const adminPassword = "e2e-admin-password"

// testLogger logs warnings and errors into the test output, everything with
// LOAXA_TEST_LOG=debug.
func testLogger(t testing.TB, name string) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("LOAXA_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level})).With("part", name)
}

// controller is a running controller and an API client signed in as admin.
type controller struct {
	t     testing.TB
	app   *app.App
	url   string
	token string
}

// startController runs a controller on loopback ports with a temp data dir;
// brokerURL "" runs the embedded broker.
func startController(t testing.TB, brokerURL string) *controller {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.BrokerURL = brokerURL
	cfg.AdminPassword = adminPassword
	a := app.New(cfg, testLogger(t, "controller"))
	a.Out = io.Discard
	if err := a.Open(); err != nil {
		t.Fatalf("start controller: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close controller: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := &controller{t: t, app: a, url: a.HTTP.URL()}
	var tok struct{ Token string }
	c.mustDo("POST", "/api/v1/auth/token", map[string]string{"username": "admin", "password": adminPassword}, &tok)
	c.token = tok.Token
	return c
}

// do sends a JSON request and decodes a JSON answer into out; it returns
// the status and the raw body.
func (c *controller) do(method, path string, in, out any) (int, []byte) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

func (c *controller) send(req *http.Request, out any) (int, []byte) {
	c.t.Helper()
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
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

// mustDo is do that fails the test on any status >= 300.
func (c *controller) mustDo(method, path string, in, out any) {
	c.t.Helper()
	if status, raw := c.do(method, path, in, out); status >= 300 {
		c.t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
}

func (c *controller) createArea(id, name, parent string) {
	c.t.Helper()
	c.mustDo("POST", "/api/v1/areas", map[string]string{"id": id, "name": name, "parent": parent}, nil)
}

func (c *controller) createNode(id, area string) *protocol.Credentials {
	c.t.Helper()
	var created struct {
		Credentials protocol.Credentials `json:"credentials"`
	}
	c.mustDo("POST", "/api/v1/nodes", map[string]any{"id": id, "name": "Cụm loa " + id, "area": area, "lat": 20.8, "lon": 106.7}, &created)
	return &created.Credentials
}

// upload posts a WAV file and returns the stored content.
func (c *controller) upload(name string, wav []byte) *loaxa.Content {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("title", "Bản tin "+name)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(wav)
	mw.Close()
	req, _ := http.NewRequest("POST", c.url+"/api/v1/content", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var ct loaxa.Content
	if status, raw := c.send(req, &ct); status >= 300 {
		c.t.Fatalf("upload %s: %d %s", name, status, raw)
	}
	return &ct
}

func (c *controller) announce(contentID string, areas, nodes []string, start time.Time) *loaxa.Announcement {
	c.t.Helper()
	var a loaxa.Announcement
	c.mustDo("POST", "/api/v1/announcements", map[string]any{
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

func (c *controller) deliveries(ann string) []*loaxa.Delivery {
	c.t.Helper()
	var resp struct{ Deliveries []*loaxa.Delivery }
	c.mustDo("GET", "/api/v1/announcements/"+ann+"/deliveries", nil, &resp)
	return resp.Deliveries
}

func (c *controller) events(query url.Values) []*loaxa.Event {
	c.t.Helper()
	var resp struct{ Events []*loaxa.Event }
	c.mustDo("GET", "/api/v1/events?"+query.Encode(), nil, &resp)
	return resp.Events
}

func (c *controller) node(id string) *loaxa.Node {
	c.t.Helper()
	var n loaxa.Node
	c.mustDo("GET", "/api/v1/nodes/"+id, nil, &n)
	return &n
}

// node is a running node agent.
type node struct {
	id     string
	agent  *agent.Agent
	db     *store.Bolt
	cancel context.CancelFunc
	done   chan error
}

type nodeOptions struct {
	broker string       // override the credentials' broker URL (e.g. a netproxy)
	output agent.Output // default: audio.None on the real clock
	dir    string       // data dir (default: a temp dir); reuse to restart a node
}

func startNode(t testing.TB, creds *protocol.Credentials, opt nodeOptions) *node {
	t.Helper()
	cr := *creds
	if opt.broker != "" {
		cr.Broker = opt.broker
	}
	if opt.dir == "" {
		opt.dir = t.TempDir()
	}
	st, err := store.OpenBolt(filepath.Join(opt.dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	if opt.output == nil {
		opt.output = audio.NewNone(clock.Real{})
	}
	a, err := agent.New(agent.Config{
		Credentials: &cr, DataDir: opt.dir, Store: st, Output: opt.output, Board: board.None{},
		Logger: testLogger(t, "node "+cr.Node), Version: "e2e",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: cr.Node, agent: a, db: st, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop stops the agent and closes its store; safe to call twice.
func (n *node) stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node %s: %v", n.id, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("node %s did not stop within 10s", n.id)
	}
	if err := n.db.Close(); err != nil {
		t.Errorf("node %s: close store: %v", n.id, err)
	}
}

// eventually polls cond until it holds or the deadline passes; the message
// says what was awaited. Polling observes asynchronous outcomes without
// assuming how long they take.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toneWAV returns a PCM WAV of a sine tone: rate Hz, channels, 16-bit.
func toneWAV(freq float64, dur time.Duration, rate, channels int) []byte {
	frames := int(dur.Seconds() * float64(rate))
	data := make([]byte, 0, frames*channels*2)
	for i := 0; i < frames; i++ {
		v := int16(0.5 * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		for ch := 0; ch < channels; ch++ {
			data = append(data, byte(v), byte(v>>8))
		}
	}
	var b bytes.Buffer
	le := func(v any) {
		switch x := v.(type) {
		case uint32:
			b.Write([]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)})
		case uint16:
			b.Write([]byte{byte(x), byte(x >> 8)})
		}
	}
	b.WriteString("RIFF")
	le(uint32(36 + len(data)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * 2))
	le(uint16(channels * 2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// countEvents counts events by node and type for one occurrence.
func countEvents(evs []*loaxa.Event, occurrence string) map[string]map[protocol.EventType]int {
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

func describe(v any) string {
	raw, _ := json.MarshalIndent(v, "", " ")
	return strings.TrimSpace(string(raw))
}

var _ = fmt.Sprintf
var _ = nodeaudio.SampleRate
