package mqtt_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	mochi "github.com/mochi-mqtt/server/v2"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var topics = protocol.NewTopics("")

type rig struct {
	db     *bolt.DB
	nodes  *bolt.NodeService
	areas  *bolt.AreaService
	events *bolt.EventService
	broker *mqtt.Broker
}

// newRig runs an embedded broker on a real store with areas 31 → 318 →
// {12346, 12347} and nodes tt-01 (12346) and tm-01 (12347), whose secret is
// "secret-<id>".
func newRig(t testing.TB) *rig { return newRigWith(t, nil) }

// newRigWith is newRig with tune changing the broker before it opens.
func newRigWith(t testing.TB, tune func(*mqtt.Broker)) *rig {
	t.Helper()
	db := bolt.NewDB(t.TempDir() + "/loaxa.db")
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{db: db, nodes: bolt.NewNodeService(db), areas: bolt.NewAreaService(db), events: bolt.NewEventService(db)}
	ctx := context.Background()
	for _, a := range []loaxa.Area{{ID: "31", Name: "Hải Phòng"}, {ID: "318", Name: "Tiên Lãng", Parent: "31"},
		{ID: "12346", Name: "Tiên Thắng", Parent: "318"}, {ID: "12347", Name: "Tiên Minh", Parent: "318"}} {
		if err := r.areas.CreateArea(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	for id, area := range map[string]string{"tt-01": "12346", "tm-01": "12347"} {
		n := &loaxa.Node{ID: id, Name: id, Area: area, SecretHash: loaxa.HashSecret("secret-" + id)}
		if err := r.nodes.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	b := mqtt.NewBroker()
	b.Addr = "127.0.0.1:0"
	b.NodeService, b.AreaService = r.nodes, r.areas
	b.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if tune != nil {
		tune(b)
	}
	if err := b.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r.broker = b
	return r
}

// rawSubscriber connects as user/pass with client id over a bare TCP
// connection, subscribes to filter at qos and reads nothing more: the
// test reads the connection, or leaves it unread. Closed at the test's
// end.
func (r *rig) rawSubscriber(t *testing.T, id, user, pass, filter string, qos byte) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", r.broker.ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.Keepalive, cp.CleanSession = "MQTT", 4, id, 60, true
	cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, user, true, []byte(pass)
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{filter}, []byte{qos}
	for _, pk := range []packets.ControlPacket{cp, sp} {
		if err := pk.Write(raw); err != nil {
			t.Fatal(err)
		}
		if _, err := packets.ReadPacket(raw); err != nil { // CONNACK, SUBACK
			t.Fatal(err)
		}
	}
	return raw
}

type conn struct {
	c    paho.Client
	mu   sync.Mutex
	got  map[string][][]byte
	lost chan error
}

// connect connects as user/pass with client id, optionally with a will;
// it returns the connect error.
func (r *rig) connect(t *testing.T, id, user, pass, will string) (*conn, error) {
	t.Helper()
	cn := &conn{got: map[string][][]byte{}, lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { cn.lost <- err })
	if will != "" {
		opts.SetWill(will, "x", 1, true)
	}
	cn.c = paho.NewClient(opts)
	tok := cn.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { cn.c.Disconnect(50) })
	return cn, nil
}

// subscribe reports whether the broker granted the subscription.
func (cn *conn) subscribe(t *testing.T, topic string) bool {
	t.Helper()
	tok := cn.c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		cn.mu.Lock()
		cn.got[m.Topic()] = append(cn.got[m.Topic()], m.Payload())
		cn.mu.Unlock()
	})
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("subscribe %s timed out", topic)
	}
	st := tok.(*paho.SubscribeToken)
	return tok.Error() == nil && st.Result()[topic] < 0x80
}

func (cn *conn) received(topic string) int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.got[topic])
}

func TestBrokerAuthentication(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name, id, user, pass, will string
		ok                         bool
	}{
		{"node with its secret", "tt-01", "tt-01", "secret-tt-01", "", true},
		{"node with its own will", "tt-01", "tt-01", "secret-tt-01", topics.Node("tt-01", protocol.ChanState), true},
		{"controller", "loaxa-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "", true},
		{"wrong secret", "tt-01", "tt-01", "secret-tm-01", "", false},
		{"another node's secret", "tm-01", "tm-01", "secret-tt-01", "", false},
		{"unknown node", "xx-01", "xx-01", "secret-xx-01", "", false},
		{"anonymous", "anon", "", "", "", false},
		{"client id of another node", "tm-01", "tt-01", "secret-tt-01", "", false},
		{"will on another node's state", "tt-01", "tt-01", "secret-tt-01", topics.Node("tm-01", protocol.ChanState), false},
		{"will on an area command topic", "tt-01", "tt-01", "secret-tt-01", topics.Area("31", protocol.ChanCmd), false},
		{"wrong controller secret", "loaxa-controller", mqtt.ControllerUsername, "guess", "", false},
		{"the inline client's id", "inline", mqtt.ControllerUsername, r.broker.ControllerSecret, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cn, err := r.connect(t, c.id, c.user, c.pass, c.will)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && err == nil {
				t.Fatal("accepted")
			}
			if cn != nil {
				cn.c.Disconnect(50)
			}
		})
	}
}

func TestBrokerACL(t *testing.T) {
	r := newRig(t)
	ctl, err := r.connect(t, "loaxa-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("subscriptions", func(t *testing.T) {
		for topic, want := range map[string]bool{
			topics.Node("tt-01", protocol.ChanDesired): true,
			topics.Node("tt-01", protocol.ChanCmd):     true,
			topics.Node("tt-01", protocol.ChanState):   true, // its echo (node/mqtt)
			topics.Node("tm-01", protocol.ChanState):   false,
			topics.Area("12346", protocol.ChanCmd):     true,
			topics.Area("318", protocol.ChanCmd):       true,
			topics.Area("31", protocol.ChanCmd):        true,
			topics.Area("31", protocol.ChanLive):       true,
			topics.Node("tm-01", protocol.ChanDesired): false,
			topics.Node("tm-01", protocol.ChanCmd):     false,
			topics.Area("12347", protocol.ChanCmd):     false,
			topics.Area("12347", protocol.ChanLive):    false,
			topics.Node("tt-01", protocol.ChanEvent):   false,
			topics.AllNodes(protocol.ChanState):        false,
			"loa/v1/#":                                 false,
			"#":                                        false,
		} {
			if got := node.subscribe(t, topic); got != want {
				t.Errorf("subscribe %s: granted %v, want %v", topic, got, want)
			}
		}
	})

	t.Run("publishing", func(t *testing.T) {
		for _, topic := range []string{topics.Node("tt-01", protocol.ChanState), topics.Node("tm-01", protocol.ChanState),
			topics.Node("tm-01", protocol.ChanCmd), topics.Area("31", protocol.ChanCmd), topics.Area("31", protocol.ChanLive), topics.Node("tt-01", protocol.ChanDesired)} {
			if !ctl.subscribe(t, topic) {
				t.Fatalf("controller may not subscribe to %s", topic)
			}
		}
		// Publish the forbidden ones first: MQTT 3.1.1 brokers drop the
		// connection of a client that publishes where it may not.
		own := topics.Node("tt-01", protocol.ChanState)
		forbidden := []string{topics.Node("tm-01", protocol.ChanState), topics.Node("tm-01", protocol.ChanCmd), topics.Area("31", protocol.ChanCmd), topics.Area("31", protocol.ChanLive), topics.Node("tt-01", protocol.ChanDesired)}
		for _, topic := range forbidden {
			bad, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
			if err != nil {
				t.Fatal(err)
			}
			bad.c.Publish(topic, 1, false, []byte("forged")).WaitTimeout(2 * time.Second)
		}
		good, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
		if err != nil {
			t.Fatal(err)
		}
		if tok := good.c.Publish(own, 1, false, []byte("mine")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish own state: %v", tok.Error())
		}
		// Each forged publish was handled (the broker answered or dropped
		// the connection) before the own one was sent, and the broker
		// forwards to the controller in the order it handles publishes: once
		// the own message has arrived, anything forged that got through
		// would have arrived before it.
		deadline := time.Now().Add(5 * time.Second)
		for ctl.received(own) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("own state never reached the controller")
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, topic := range forbidden {
			if n := ctl.received(topic); n != 0 {
				t.Errorf("%d forged messages on %s reached the controller", n, topic)
			}
		}
	})
}

// TestBrokerHoldsABurstForTheController: a subscription of the
// controller's account over TCP (the controller's own, before it went
// in-process; a tool watching the reports) may have more unacknowledged
// messages than mochi's default 8,192 (every node of a big area reports at
// the same instant when an alert starts or ends); the broker keeps them
// instead of dropping them.
func TestBrokerHoldsABurstForTheController(t *testing.T) {
	r := newRig(t)
	// A controller connection that subscribes and then reads nothing, so
	// acknowledges nothing.
	r.rawSubscriber(t, "slow-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "loa/v1/node/+/event", 1)
	pub, err := r.connect(t, "publisher", mqtt.ControllerUsername, r.broker.ControllerSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 9000
	var last paho.Token
	for range n {
		last = pub.c.Publish("loa/v1/node/n1/event", 1, false, []byte("e"))
	}
	// A guard against a hang only: at load 16 in a full run, 9,000
	// publishes took over 30 s.
	if !last.WaitTimeout(5 * time.Minute) {
		t.Fatalf("the last of %d publishes not acknowledged within 5 min", n)
	} else if err := last.Error(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	var dropped float64
	for _, c := range r.broker.Collectors() {
		ch := make(chan prometheus.Metric, 1)
		c.Collect(ch)
		var m dto.Metric
		if err := (<-ch).Write(&m); err != nil {
			t.Fatal(err)
		}
		dropped += m.GetCounter().GetValue()
	}
	if dropped != 0 {
		t.Fatalf("the broker dropped %.0f of %d messages to the controller's subscription", dropped, n)
	}
}

// cutBeforeConnack closes every connection after the broker authenticated
// it and before its CONNACK: a board on a 3G link that dropped just then.
type cutBeforeConnack struct{ mochi.HookBase }

func (h *cutBeforeConnack) ID() string { return "cut-before-connack" }

func (h *cutBeforeConnack) Provides(b byte) bool { return b == mochi.OnSessionEstablish }

func (h *cutBeforeConnack) OnSessionEstablish(cl *mochi.Client, _ mpackets.Packet) {
	_ = cl.Net.Conn.Close()
}

// A board whose link dropped after the broker authenticated it and before
// its CONNACK left its grant, and with it mochi's whole client (buffers, a
// 512-slot write queue), in the auth hook for the life of the controller:
// mochi never told the hooks that such a connection ended, and on flaky
// 3G links that is a slow leak. A connection that ends, however it ends,
// leaves no grant behind.
func TestBrokerForgetsAConnectionCutBeforeConnack(t *testing.T) {
	r := newRig(t)
	if err := r.broker.AddHook(&cutBeforeConnack{}); err != nil {
		t.Fatal(err)
	}
	const tries = 3
	for range tries {
		raw, err := net.Dial("tcp", r.broker.ListenAddr())
		if err != nil {
			t.Fatal(err)
		}
		cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
		cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.Keepalive, cp.CleanSession = "MQTT", 4, "tt-01", 60, true
		cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, "tt-01", true, []byte("secret-tt-01")
		if err := cp.Write(raw); err != nil {
			t.Fatal(err)
		}
		if pk, err := packets.ReadPacket(raw); err == nil {
			t.Fatalf("the broker answered %v although the connection was cut before its CONNACK", pk)
		}
		raw.Close()
	}
	// The broker counts a connection from its authentication until its
	// goroutine has ended it, a moment after the client saw it close.
	deadline := time.Now().Add(10 * time.Second)
	for mqtt.ClientsConnected(r.broker) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the broker still serves %d connections", mqtt.ClientsConnected(r.broker))
		}
		time.Sleep(time.Millisecond)
	}
	if n := mqtt.Grants(r.broker); n != 0 {
		t.Errorf("the broker holds %d grants after %d connections that all ended before their CONNACK", n, tries)
	}
}

// holdSession holds one client id's connection after the broker
// authenticated it and before it is in the broker's client list
// (OnSessionEstablish): where a node's reconnect is when a technician
// revokes it.
type holdSession struct {
	mochi.HookBase
	id      string
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdSession) ID() string { return "hold-session" }

func (h *holdSession) Provides(b byte) bool { return b == mochi.OnSessionEstablish }

func (h *holdSession) OnSessionEstablish(cl *mochi.Client, _ mpackets.Packet) {
	if cl.ID != h.id {
		return
	}
	h.once.Do(func() {
		close(h.reached)
		<-h.release
	})
}

// docs/security.md promises that a revoked or rotated secret stops
// working at once: the broker drops the connection. A stolen board that
// kept reconnecting, revoked while its connection was past authentication
// but not yet in the broker's client list, was missed by
// Broker.Disconnect, and its connection went on with its old grant,
// receiving its areas' commands for as long as it stayed up. However the
// change and the connection interleave, the connection ends, and the
// broker holds nothing for it.
func TestBrokerCutsANodeWhoseCredentialsChangeWhileItConnects(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(ctx context.Context, nodes *bolt.NodeService) error
	}{
		{"revoked", func(ctx context.Context, nodes *bolt.NodeService) error {
			_, err := nodes.RevokeNode(ctx, "tt-01")
			return err
		}},
		{"rotated", func(ctx context.Context, nodes *bolt.NodeService) error {
			_, sec := loaxa.NewNodeSecret()
			_, err := nodes.SetNodeSecret(ctx, "tt-01", sec)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			h := &holdSession{id: "tt-01", reached: make(chan struct{}), release: make(chan struct{})}
			if err := r.broker.AddHook(h); err != nil {
				t.Fatal(err)
			}
			lost := make(chan error, 1)
			cl := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("tt-01").SetUsername("tt-01").
				SetPassword("secret-tt-01").SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
				SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
			tok := cl.Connect()
			select {
			case <-h.reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the connection never reached the broker")
			}
			// As the HTTP handler does: store the change, then cut the
			// node's connection.
			if err := c.change(context.Background(), r.nodes); err != nil {
				t.Fatal(err)
			}
			r.broker.Disconnect("tt-01")
			close(h.release)
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				defer cl.Disconnect(0)
				select {
				case <-lost:
				case <-time.After(10 * time.Second):
					t.Fatal("node tt-01 is still connected 10 s after its credentials were " + c.name)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for mqtt.ClientsConnected(r.broker) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the broker still serves %d connections", mqtt.ClientsConnected(r.broker))
				}
				time.Sleep(time.Millisecond)
			}
			if n := mqtt.Grants(r.broker); n != 0 {
				t.Errorf("the broker holds %d grants", n)
			}
		})
	}
}

// The store refuses to create nodes under the ids the broker keeps for
// itself: its inline client's, the controller's account and the
// controller's publishing account in the exported Mosquitto files.
func TestReservedNodeIDsMatchTheBroker(t *testing.T) {
	for _, id := range []string{mochi.InlineClientId, mqtt.ControllerUsername, mqtt.ControllerUsername + mqtt.PublishUsernameSuffix} {
		if !slices.Contains(loaxa.ReservedNodeIDs, id) {
			t.Errorf("loaxa.ReservedNodeIDs %q lacks %q, which the broker keeps for itself", loaxa.ReservedNodeIDs, id)
		}
	}
}

// TestBrokerDropsAClientItNoLongerRoutes: a node that is connected but
// missing from the broker's routing (what mochi's clean-up race left)
// hears nothing. The broker's sweep finds it within seconds and
// disconnects it, so that it reconnects (its Last Will tells the
// controller meanwhile); connected nodes it routes are left alone.
func TestBrokerDropsAClientItNoLongerRoutes(t *testing.T) {
	r := newRigWith(t, func(b *mqtt.Broker) { b.UnroutedSweep = 20 * time.Millisecond })
	var unrouted prometheus.Metric
	for _, c := range r.broker.Collectors() {
		if m := c.(prometheus.Metric); strings.Contains(m.Desc().String(), "loaxa_broker_unrouted_clients_total") {
			unrouted = m
		}
	}
	if unrouted == nil {
		t.Fatal("no loaxa_broker_unrouted_clients_total")
	}
	dropped := func() float64 {
		var m dto.Metric
		if err := unrouted.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	ctl, err := r.connect(t, "loaxa-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	state := topics.Node("tt-01", protocol.ChanState)
	if !ctl.subscribe(t, state) {
		t.Fatal("controller may not subscribe to the node's state")
	}
	deaf, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", state)
	if err != nil {
		t.Fatal(err)
	}
	heard, err := r.connect(t, "tm-01", "tm-01", "secret-tm-01", "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := topics.Node("tm-01", protocol.ChanCmd)
	if !heard.subscribe(t, cmd) {
		t.Fatal("tm-01 may not subscribe to its cmd topic")
	}
	// Sweeps pass over both routed nodes before one is forgotten.
	for swept := mqtt.Sweeps(r.broker); mqtt.Sweeps(r.broker) < swept+3; {
		time.Sleep(5 * time.Millisecond)
	}
	if v := dropped(); v != 0 {
		t.Fatalf("%v clients dropped while every one was routed", v)
	}

	mqtt.ForgetClient(r.broker, "tt-01")
	select {
	case <-deaf.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker left the client it no longer routes connected")
	}
	deadline := time.Now().Add(10 * time.Second)
	for ctl.received(state) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped client's Last Will never came")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sweep counts the client once DropUnrouted has disconnected it,
	// which the client may notice first.
	for deadline := time.Now().Add(10 * time.Second); dropped() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("loaxa_broker_unrouted_clients_total = %v, want 1", dropped())
		}
	}
	if tok := ctl.c.Publish(cmd, 1, false, "still heard"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for deadline := time.Now().Add(10 * time.Second); heard.received(cmd) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) || !heard.c.IsConnectionOpen() {
			t.Fatal("the routed node no longer hears")
		}
	}
}

// TestBrokerRegrantsAMovedNode: a node's grant was made when it connected,
// so a cluster moved to the neighbouring commune kept hearing its old
// commune's alerts and was refused its new one's topics until it next
// connected (never, on a good link). Regrant gives its connection the
// topics of its new area; the old area's publishes no longer reach it,
// though its subscription to them is still in the broker.
func TestBrokerRegrantsAMovedNode(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	ctl, err := r.connect(t, "loaxa-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	oldCmd, newCmd, newLive := topics.Area("12346", protocol.ChanCmd), topics.Area("12347", protocol.ChanCmd), topics.Area("12347", protocol.ChanLive)
	if !node.subscribe(t, oldCmd) {
		t.Fatal("the node may not subscribe to its own commune's commands")
	}
	if _, _, err := r.nodes.UpdateNodePlace(ctx, "tt-01", loaxa.NodePlace{Name: "tt-01", Area: "12347"}); err != nil {
		t.Fatal(err)
	}
	if err := r.broker.Regrant(ctx, "tt-01"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{newCmd, newLive, topics.Area("318", protocol.ChanCmd)} {
		if !node.subscribe(t, topic) {
			t.Errorf("after the move the node may not subscribe to %s", topic)
		}
	}
	if node.subscribe(t, topics.Area("12346", protocol.ChanLive)) {
		t.Error("after the move the node may still subscribe to its old commune's live audio")
	}
	// The old commune's alert is published first: the broker handles one
	// client's publishes in order, so once the new commune's has arrived,
	// the old one's would have arrived before it.
	for _, topic := range []string{oldCmd, newCmd} {
		if tok := ctl.c.Publish(topic, 1, false, []byte("alert")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish on %s: %v", topic, tok.Error())
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for node.received(newCmd) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new commune's alert never reached the moved node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := node.received(oldCmd); n != 0 {
		t.Errorf("%d of its old commune's alerts reached the moved node", n)
	}
}

// AwaitWritten says whether the broker has written out what it had queued
// for its clients: not while a node that subscribed reads nothing (more
// than the sockets hold is queued for it), and so once the node reads.
func TestBrokerAwaitWritten(t *testing.T) {
	r := newRig(t)
	area := topics.Area("12346", protocol.ChanCmd)
	raw := r.rawSubscriber(t, "tt-01", "tt-01", "secret-tt-01", area, 0)
	if !r.broker.AwaitWritten(context.Background(), time.Second) {
		t.Fatal("nothing queued, and AwaitWritten says the broker has not written it")
	}
	ctl, err := r.connect(t, "loaxa-controller", mqtt.ControllerUsername, r.broker.ControllerSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	// 64 messages of 256 KiB: 16 MiB, more than the node's and the
	// broker's socket buffers take while the node reads nothing.
	const n, size = 64, 256 << 10
	payload := make([]byte, size)
	for range n {
		if tok := ctl.c.Publish(area, 0, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// The broker has taken them all once a QoS 1 publish after them is
	// acknowledged (it handles a connection's packets in order).
	if tok := ctl.c.Publish(topics.Area("12347", protocol.ChanCmd), 1, false, "x"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if r.broker.AwaitWritten(context.Background(), 200*time.Millisecond) {
		t.Fatalf("AwaitWritten says %d MiB were written to a node that read none of it", n*size>>20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.broker.AwaitWritten(ctx, time.Minute) {
		t.Fatal("AwaitWritten with its context ended says the queue was written")
	}

	read := make(chan int, 1)
	go func() {
		got := 0
		for got < n {
			pk, err := packets.ReadPacket(raw)
			if err != nil {
				break
			}
			if _, ok := pk.(*packets.PublishPacket); ok {
				got++
			}
		}
		read <- got
	}()
	if !r.broker.AwaitWritten(context.Background(), time.Minute) {
		t.Fatal("the node read, and AwaitWritten still says the broker has not written what it queued within a minute")
	}
	if got := <-read; got != n {
		t.Fatalf("the node read %d publishes, want %d", got, n)
	}
}
