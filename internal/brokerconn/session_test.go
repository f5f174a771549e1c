package brokerconn

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// slowTeardown holds the first connection's goroutine in its first
// OnUnsubscribed — which mochi calls after deciding the client was not
// taken over and before deleting its id from the client list — until
// released: the window a quick reconnect can fall into, as wide as the test
// needs.
type slowTeardown struct {
	mochi.HookBase
	mu       sync.Mutex
	first    *mochi.Client
	held     bool
	release  chan struct{}
	holding  chan struct{} // closed when the first connection is held
	arriving chan struct{} // closed when a second connection authenticates
	once     sync.Once
}

func (h *slowTeardown) ID() string { return "slow-teardown" }
func (h *slowTeardown) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnUnsubscribed, mochi.OnSessionEstablish}, []byte{b})
}

func (h *slowTeardown) OnSessionEstablish(cl *mochi.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.first == nil {
		h.first = cl
		return
	}
	h.once.Do(func() { close(h.arriving) })
}

func (h *slowTeardown) OnUnsubscribed(cl *mochi.Client, _ packets.Packet) {
	h.mu.Lock()
	hold := cl == h.first && !h.held
	h.held = h.held || hold
	h.mu.Unlock()
	if hold {
		close(h.holding)
		<-h.release
	}
}

func startGatedBroker(t *testing.T, hooks ...mochi.Hook) (*mochi.Server, string) {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), Capabilities: mochi.NewDefaultServerCapabilities()})
	for _, h := range append([]mochi.Hook{new(auth.AllowHook)}, hooks...) {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.AddHook(&SessionGate{Server: srv}, nil); err != nil {
		t.Fatal(err)
	}
	ln := NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}, 0)
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, "tcp://" + ln.Address()
}

func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// A board that reconnects while its previous connection is still being
// torn down keeps its new session: it gets what is published to it.
func TestReconnectDuringTeardownKeepsTheNewSession(t *testing.T) {
	slow := &slowTeardown{release: make(chan struct{}), holding: make(chan struct{}), arriving: make(chan struct{})}
	_, url := startGatedBroker(t, slow)

	first := connect(t, url, "node-1")
	if tok := first.Subscribe("loa/v1/node/node-1/cmd", 1, nil); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	first.Disconnect(0)
	<-slow.holding // its server goroutine is between "not taken over" and "delete"

	var released sync.Once
	release := func() { released.Do(func() { close(slow.release) }) }
	defer release()
	connected := make(chan paho.Client, 1)
	go func() { connected <- connect(t, url, "node-1") }()
	<-slow.arriving
	// Without the gate the second connection completes while the first is
	// held, and releasing the first then deletes the second's session.
	// With it, the second waits for the first: release when the second is
	// connected or half a second has passed.
	var second paho.Client
	select {
	case second = <-connected:
		release()
	case <-time.After(500 * time.Millisecond):
		release()
		second = <-connected
	}
	defer second.Disconnect(0)

	got := make(chan []byte, 1)
	if tok := second.Subscribe("loa/v1/node/node-1/cmd", 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := connect(t, url, "controller")
	defer pub.Disconnect(0)
	if tok := pub.Publish("loa/v1/node/node-1/cmd", 1, false, "alert"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case p := <-got:
		if string(p) != "alert" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reconnected client never got the message: its session was deleted with the old connection")
	}
}

// A client that takes over a live connection with its id (the old one is
// still reading) disconnects it and gets the messages.
func TestTakeoverOfLiveConnection(t *testing.T) {
	_, url := startGatedBroker(t)
	lost := make(chan error, 1)
	oldOpts := paho.NewClientOptions().AddBroker(url).SetClientID("node-2").SetCleanSession(true).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	old := paho.NewClient(oldOpts)
	if tok := old.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer old.Disconnect(0)
	second := connect(t, url, "node-2")
	defer second.Disconnect(0)
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("the old connection was not taken over")
	}
	got := make(chan struct{}, 1)
	if tok := second.Subscribe("t", 1, func(paho.Client, paho.Message) { got <- struct{}{} }); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := connect(t, url, "pub")
	defer pub.Disconnect(0)
	pub.Publish("t", 1, false, "x").WaitTimeout(30 * time.Second)
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the new connection got nothing")
	}
}
