// Package nodetest plays the controller's side of the wire contract for
// tests of node agents: an embedded MQTT broker (mochi-mqtt, everyone
// allowed), an HTTP server for /api/v1/time and content, and a paho client
// that signs desired states and commands, stores event batches the way the
// controller does (in order, idempotent by epoch and sequence) and
// acknowledges them.
package nodetest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"loaxa.vn/internal/brokerconn"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// StartBroker runs an embedded broker on 127.0.0.1:0 that lets everyone in,
// until the test ends. It returns the broker's address (host:port).
func StartBroker(t testing.TB) string {
	t.Helper()
	srv, addr, err := OpenBroker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return addr
}

// OpenBroker starts what StartBroker does, for a program that is not a
// test (the emergency benchmark's floor process); Close the server when
// done.
func OpenBroker() (srv *mochi.Server, addr string, err error) {
	srv = mochi.New(&mochi.Options{
		Logger:       slog.New(slog.DiscardHandler),
		Capabilities: mochi.NewDefaultServerCapabilities(),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", fmt.Errorf("test broker: %w", err)
	}
	if err := srv.AddHook(&brokerconn.SessionGate{Server: srv}, nil); err != nil {
		return nil, "", fmt.Errorf("test broker: %w", err)
	}
	ln := brokerconn.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}, 0)
	ln.Server = srv
	if err := srv.AddListener(ln); err != nil {
		return nil, "", fmt.Errorf("test broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, "", fmt.Errorf("test broker: %w", err)
	}
	return srv, ln.Address(), nil
}

// Controller is the controller's side of the contract in a test.
type Controller struct {
	t       testing.TB
	Topics  protocol.Topics
	Signer  *protocol.Signer
	Key     ed25519.PrivateKey
	Broker  string // host:port the nodes and the controller dial
	HTTP    *httptest.Server
	AutoAck atomic.Bool // acknowledge event batches (default true)
	// DropBatches is how many of the next event batches are dropped
	// unread, as the controller's full ingest queue drops them.
	DropBatches atomic.Int64
	// TimeOffset shifts the controller's clock as served by /api/v1/time.
	TimeOffset atomic.Int64 // nanoseconds
	// Clock, when set, is the controller's clock instead of the real one
	// shifted by TimeOffset.
	Clock func() time.Time
	// ContentHook, when set, may answer a content request itself (return true).
	ContentHook func(w http.ResponseWriter, r *http.Request) bool

	client  paho.Client
	work    chan paho.Message
	wg      sync.WaitGroup
	closing atomic.Bool // the test is over: publishes may fail

	mu       sync.Mutex
	content  map[string][]byte
	requests map[string]int // content id → requests
	nodes    map[string]*NodeLog
	secrets  map[string]string
}

// NodeLog is what the controller heard from one node.
type NodeLog struct {
	Epoch   string
	Events  []protocol.Event // stored events of Epoch, seq 1… without gaps
	Batches int              // event batches received, resends included
	Acked   uint64           // the Acked of the last batch received
	Resent  int              // events received again after being stored
	States  []protocol.State
	// Salvaged holds, by epoch, the events of earlier outboxes stored
	// from salvaged batches (protocol.EventBatch.Salvaged), in order; an
	// epoch's first is the one after what Had said was stored already.
	Salvaged        map[string][]protocol.Event
	SalvagedBatches int
	had             map[string]uint64
}

// NewController starts the controller's HTTP server and MQTT client against
// the broker at addr (host:port), until the test ends.
func NewController(t testing.TB, addr string) *Controller {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{
		t:        t,
		Topics:   protocol.NewTopics(""),
		Key:      key,
		Signer:   protocol.NewSigner("controller", key, 0, nil),
		Broker:   addr,
		content:  map[string][]byte{},
		requests: map[string]int{},
		nodes:    map[string]*NodeLog{},
		secrets:  map[string]string{},
		work:     make(chan paho.Message, 4096),
	}
	c.AutoAck.Store(true)
	c.HTTP = httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	t.Cleanup(c.HTTP.Close)

	c.wg.Add(1)
	go c.ingest()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID("test-controller-" + protocol.KeyID(key.Public().(ed25519.PublicKey))).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetOrderMatters(true).
		SetOnConnectHandler(func(cl paho.Client) {
			cl.SubscribeMultiple(map[string]byte{
				c.Topics.AllNodes(protocol.ChanEvent): 1,
				c.Topics.AllNodes(protocol.ChanState): 1,
			}, func(_ paho.Client, m paho.Message) { c.work <- m })
		})
	c.client = paho.NewClient(opts)
	if tok := c.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test controller: connect: %v", tok.Error())
	}
	// The subscription is made in the connect handler; wait for it so no
	// early node message is lost.
	tok := c.client.SubscribeMultiple(map[string]byte{
		c.Topics.AllNodes(protocol.ChanEvent): 1,
		c.Topics.AllNodes(protocol.ChanState): 1,
	}, func(_ paho.Client, m paho.Message) { c.work <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test controller: subscribe: %v", tok.Error())
	}
	t.Cleanup(func() {
		c.closing.Store(true)
		c.client.Disconnect(100)
		close(c.work)
		c.wg.Wait()
	})
	return c
}

// Now returns the controller's time.
func (c *Controller) Now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now().Add(time.Duration(c.TimeOffset.Load()))
}

// PublicKey returns the signing key as written in credentials.
func (c *Controller) PublicKey() protocol.PublicKey {
	pub := c.Key.Public().(ed25519.PublicKey)
	return protocol.PublicKey{ID: protocol.KeyID(pub), Key: base64.StdEncoding.EncodeToString(pub)}
}

// Credentials returns a credentials document for node in area (whose
// ancestors are parents), pointing at this controller.
func (c *Controller) Credentials(node, area string, parents ...string) *protocol.Credentials {
	secret := "secret-" + node
	c.mu.Lock()
	c.secrets[node] = secret
	c.mu.Unlock()
	return &protocol.Credentials{
		Node: node, Area: area, Areas: append([]string{area}, parents...),
		Controller: c.HTTP.URL, Broker: "tcp://" + c.Broker,
		Username: node, Secret: secret,
		Keys: []protocol.PublicKey{c.PublicKey()},
	}
}

// AddContent stores d of node audio (a quiet tone) and returns its ref.
func (c *Controller) AddContent(d time.Duration) protocol.ContentRef {
	samples := make([]int16, nodeaudio.Bytes(d)/nodeaudio.BytesPerSample)
	for i := range samples {
		samples[i] = int16(i % 64) // a soft sawtooth, so files differ by length
	}
	b, err := nodeaudio.Encode(samples)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.AddFile(b, d)
}

// AddFile stores the bytes of a content file that plays for d (e.g. node
// audio in the legacy PCM format) and returns its ref.
func (c *Controller) AddFile(b []byte, d time.Duration) protocol.ContentRef {
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:])
	c.mu.Lock()
	c.content[id] = b
	c.mu.Unlock()
	list, _ := protocol.ChunkList(bytes.NewReader(b))
	return protocol.ContentRef{ID: id, Size: int64(len(b)), DurationMS: d.Milliseconds(), Path: "/api/v1/content/" + id + "/audio",
		Chunks: protocol.ChunkRoot(list)}
}

// File returns the bytes stored for content id.
func (c *Controller) File(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.content[id]
	return b, ok
}

// ContentRequests returns how many times content id was requested.
func (c *Controller) ContentRequests(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[id]
}

func (c *Controller) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/v1/time" {
		// LOAXA_TEST_TIME_DELAY (a Go duration, for finding flaky tests)
		// holds every answer that long, as a loaded machine or a slow link
		// does, half before the time is read and half after, so that the
		// time stays in the middle of the round trip: a test whose outcome
		// depends on when the node's first measurement lands fails under
		// it (node/agent waitMeasured).
		delay, _ := time.ParseDuration(os.Getenv("LOAXA_TEST_TIME_DELAY"))
		time.Sleep(delay / 2)
		defer time.Sleep(delay - delay/2)
		// As the controller answers: the time, and signed with the nonce.
		now := c.Now()
		answer := map[string]any{"time": now.Format(time.RFC3339Nano)}
		if nonce := r.URL.Query().Get("nonce"); nonce != "" {
			s := protocol.NewSigner("controller", c.Key, 0, func() time.Time { return now })
			proof, err := s.Seal(protocol.TypeTime, protocol.TimeAudience, protocol.TimeProof{Nonce: nonce, Time: now}, protocol.TimeProofTTL)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			answer["proof"] = json.RawMessage(proof)
		}
		json.NewEncoder(w).Encode(answer)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/content/")
	id, ok2 := strings.CutSuffix(rest, "/audio")
	if !ok || !ok2 {
		http.NotFound(w, r)
		return
	}
	user, pass, _ := r.BasicAuth()
	c.mu.Lock()
	good := user != "" && c.secrets[user] == pass
	c.requests[id]++
	b, found := c.content[id]
	c.mu.Unlock()
	if !good {
		http.Error(w, "wrong node credentials", http.StatusUnauthorized)
		return
	}
	if found && r.URL.Query().Get("chunks") == "1" {
		// The list of the bytes AddFile stored, whatever the hook serves.
		list, _ := protocol.ChunkList(bytes.NewReader(b))
		w = protocol.ChunkedAudioWriter(w, list)
	}
	if c.ContentHook != nil && c.ContentHook(w, r) {
		return
	}
	if !found {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// ingest stores node messages like the controller: events in order only,
// idempotent by (epoch, seq), then acknowledged.
func (c *Controller) ingest() {
	defer c.wg.Done()
	for m := range c.work {
		tp, err := c.Topics.Parse(m.Topic())
		if err != nil || tp.Scope != protocol.ScopeNode {
			continue
		}
		env, err := protocol.Parse(m.Payload())
		if err != nil || env.From != tp.ID {
			c.t.Logf("test controller: bad message on %s: %v", m.Topic(), err)
			continue
		}
		switch tp.Channel {
		case protocol.ChanState:
			var st protocol.State
			if env.Decode(&st) == nil {
				c.mu.Lock()
				c.log(tp.ID).States = append(c.log(tp.ID).States, st)
				c.mu.Unlock()
			}
		case protocol.ChanEvent:
			var b protocol.EventBatch
			if env.Decode(&b) != nil || env.Type != protocol.TypeEvents {
				continue
			}
			if c.DropBatches.Add(-1) >= 0 {
				continue
			}
			c.DropBatches.Store(0)
			record := c.record
			if b.Salvaged {
				record = c.recordSalvaged
			}
			ack := record(tp.ID, b)
			switch {
			case !c.AutoAck.Load() || len(b.Events) == 0:
			case !b.Salvaged && b.Events[0].Seq > ack+1:
				// Past a gap: answered at once, as the controller does
				// (protocol.Command.Gap).
				c.SendCommand(tp.ID, protocol.Command{Name: protocol.CmdAck, Epoch: b.Epoch, Seq: ack, Gap: b.Events[0].Seq})
			case ack > 0:
				c.Ack(tp.ID, b.Epoch, ack)
			}
		}
	}
}

func (c *Controller) log(node string) *NodeLog {
	l := c.nodes[node]
	if l == nil {
		l = &NodeLog{}
		c.nodes[node] = l
	}
	return l
}

func (c *Controller) record(node string, b protocol.EventBatch) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log(node)
	l.Batches++
	l.Acked = b.Acked
	if b.Epoch != l.Epoch {
		l.Epoch, l.Events = b.Epoch, nil
	}
	for _, e := range b.Events {
		next := uint64(len(l.Events)) + 1
		switch {
		case e.Seq < next:
			l.Resent++
		case e.Seq == next:
			l.Events = append(l.Events, e)
		default:
			return uint64(len(l.Events)) // a gap: the node resends from there
		}
	}
	return uint64(len(l.Events))
}

// Log returns a copy of what the controller heard from node.
func (c *Controller) Log(node string) NodeLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log(node)
	salvaged := map[string][]protocol.Event{}
	for epoch, es := range l.Salvaged {
		salvaged[epoch] = slices.Clone(es)
	}
	return NodeLog{Epoch: l.Epoch, Events: slices.Clone(l.Events), Batches: l.Batches, Acked: l.Acked, Resent: l.Resent, States: slices.Clone(l.States),
		Salvaged: salvaged, SalvagedBatches: l.SalvagedBatches}
}

// Had says that the controller had stored node's events of the earlier
// epoch up to seq, before the node's store was lost: salvaged events up
// to seq are resends.
func (c *Controller) Had(node, epoch string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log(node)
	if l.had == nil {
		l.had = map[string]uint64{}
	}
	l.had[epoch] = seq
}

// recordSalvaged stores a salvaged batch as a controller does: in order
// after what it had of that epoch.
func (c *Controller) recordSalvaged(node string, b protocol.EventBatch) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log(node)
	l.SalvagedBatches++
	if l.Salvaged == nil {
		l.Salvaged = map[string][]protocol.Event{}
	}
	last := l.had[b.Epoch] + uint64(len(l.Salvaged[b.Epoch]))
	for _, e := range b.Events {
		switch {
		case e.Seq <= last:
			l.Resent++
		case e.Seq == last+1:
			l.Salvaged[b.Epoch] = append(l.Salvaged[b.Epoch], e)
			last++
		default:
			return last
		}
	}
	return last
}

// Events returns the stored events of node.
func (c *Controller) Events(node string) []protocol.Event { return c.Log(node).Events }

// Ack acknowledges node's events up to seq.
func (c *Controller) Ack(node, epoch string, seq uint64) {
	c.SendCommand(node, protocol.Command{Name: protocol.CmdAck, Epoch: epoch, Seq: seq})
}

// SendCommand signs cmd for node and publishes it on the node's cmd topic.
func (c *Controller) SendCommand(node string, cmd protocol.Command) []byte {
	raw, err := c.Signer.Seal(protocol.TypeCommand, "node/"+node, cmd, 10*time.Minute)
	if err != nil {
		c.t.Errorf("test controller: %v", err)
		return nil
	}
	c.Publish(c.Topics.Node(node, protocol.ChanCmd), false, raw)
	return raw
}

// SendAreaCommand signs cmd for area, valid for ttl, and publishes it on
// the area's cmd topic, returning the wire bytes.
func (c *Controller) SendAreaCommand(area string, cmd protocol.Command, ttl time.Duration) []byte {
	raw, err := c.Signer.Seal(protocol.TypeCommand, "area/"+area, cmd, ttl)
	if err != nil {
		c.t.Errorf("test controller: %v", err)
		return nil
	}
	c.Publish(c.Topics.Area(area, protocol.ChanCmd), false, raw)
	return raw
}

// PublishDesired signs d and publishes it retained on the node's desired
// topic, returning the wire bytes.
func (c *Controller) PublishDesired(d *protocol.DesiredState) []byte {
	raw, err := c.Signer.Seal(protocol.TypeDesired, "node/"+d.Node, d, 24*time.Hour)
	if err != nil {
		c.t.Errorf("test controller: %v", err)
		return nil
	}
	c.Publish(c.Topics.Node(d.Node, protocol.ChanDesired), true, raw)
	return raw
}

// Publish publishes raw bytes with QoS 1 and waits for the broker. Once
// the test is over, an acknowledgement still being sent for the node's
// last events may fail as the client disconnects; that is not an error.
func (c *Controller) Publish(topic string, retained bool, raw []byte) {
	tok := c.client.Publish(topic, 1, retained, raw)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		if c.closing.Load() {
			c.t.Logf("test controller: publish %s at the end of the test: %v", topic, tok.Error())
			return
		}
		c.t.Errorf("test controller: publish %s: %v", topic, tok.Error())
	}
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Summary renders events as "type occurrence[ reason]" lines, for
// comparisons that do not depend on times. It leaves out content-ready
// events, whose place among the others depends on when downloads finish;
// ReadySummary has them.
func Summary(events []protocol.Event) []string {
	var out []string
	for _, e := range events {
		if e.Type == protocol.EventContentReady {
			continue
		}
		s := fmt.Sprintf("%s %s", e.Type, e.Occurrence)
		if e.Reason != "" {
			s += " " + e.Reason
		}
		out = append(out, s)
	}
	return out
}

// ReadySummary lists the occurrences of content-ready events, in order.
func ReadySummary(events []protocol.Event) []string {
	var out []string
	for _, e := range events {
		if e.Type == protocol.EventContentReady {
			out = append(out, e.Occurrence)
		}
	}
	return out
}

// FreeAddr is a helper for tests that need an address nothing listens on.
func FreeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
