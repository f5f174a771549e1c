package mqtt

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"loaxa.vn/internal/brokerconn"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var topics = protocol.NewTopics("")

// peer is a plain client playing the controller.
type peer struct {
	t      *testing.T
	c      paho.Client
	states chan []byte
}

func newPeer(t *testing.T, broker string) *peer { return newPeerAs(t, broker, "", "") }

// newPeerAs connects the peer with a username and password.
func newPeerAs(t *testing.T, broker, user, password string) *peer {
	p := &peer{t: t, states: make(chan []byte, 16)}
	p.c = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + broker).SetClientID("peer").SetCleanSession(true).
		SetUsername(user).SetPassword(password))
	if tok := p.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	tok := p.c.Subscribe(topics.Node("n1", protocol.ChanState), 1, func(_ paho.Client, m paho.Message) {
		p.states <- m.Payload()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(50) })
	return p
}

func (p *peer) publish(topic, payload string) {
	if tok := p.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		p.t.Fatal(tok.Error())
	}
}

func (p *peer) state(want string) {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-p.states:
			if string(s) == want {
				return
			}
		case <-deadline:
			p.t.Fatalf("no state %q published", want)
		}
	}
}

// states2 waits for the peer to have both states, in either order.
func (p *peer) states2(a, b string) {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	seen := map[string]bool{}
	for !seen[a] || !seen[b] {
		select {
		case s := <-p.states:
			seen[string(s)] = true
		case <-deadline:
			p.t.Fatalf("states %q and %q not both published (seen %v)", a, b, seen)
		}
	}
}

func open(t *testing.T, broker string, areas []string) *Link {
	t.Helper()
	return openWith(t, Config{
		Broker: "tcp://" + broker, Areas: areas,
		Queue: 4, KeepAlive: time.Second, MaxReconnectInterval: 100 * time.Millisecond,
	})
}

// openWith opens a link of node n1 (secret "s", Last Will "offline",
// online state "online") with the rest of cfg, closed when the test ends.
func openWith(t *testing.T, cfg Config) *Link {
	t.Helper()
	cfg.Node, cfg.Username, cfg.Secret, cfg.Topics = "n1", "n1", "s", topics
	cfg.Will = []byte("offline")
	cfg.Online = func() []byte { return []byte("online") }
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func waitConnect(t *testing.T, l *Link) {
	t.Helper()
	select {
	case <-l.Connects():
	case <-time.After(10 * time.Second):
		t.Fatal("link did not connect")
	}
}

func recv(t *testing.T, l *Link) Message {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if m, ok := l.Next(); ok {
			return m
		}
		select {
		case <-l.Waiting():
		case <-timeout:
			t.Fatal("no message")
			return Message{}
		}
	}
}

func TestLinkSubscribesAndFollowsAreas(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	l := open(t, broker, []string{"x1", "p1"})
	waitConnect(t, l)
	p.state("online")
	if !l.Connected() {
		t.Fatal("Connected() = false after connect")
	}
	want := []string{topics.Node("n1", protocol.ChanDesired), topics.Node("n1", protocol.ChanCmd), topics.Area("x1", protocol.ChanCmd), topics.Area("x1", protocol.ChanLive), topics.Area("p1", protocol.ChanCmd), topics.Area("p1", protocol.ChanLive)}
	if got, all := l.Topics(), append(slices.Clone(want), topics.Node("n1", protocol.ChanState)); !slices.Equal(got, all) {
		t.Fatalf("Topics() = %v, want %v", got, all)
	}
	for _, topic := range want {
		p.publish(topic, "hello "+topic)
		if m := recv(t, l); m.Topic != topic || string(m.Payload) != "hello "+topic {
			t.Fatalf("got %q on %s, want hello on %s", m.Payload, m.Topic, topic)
		}
	}

	// The node moves: x1 is no longer in its chain, x2 is.
	l.SetAreas([]string{"x2", "p1"})
	x2 := topics.Area("x2", protocol.ChanCmd)
	nodetest.Eventually(t, 5*time.Second, "x2 not subscribed", func() bool {
		p.publish(x2, "probe")
		select {
		case <-l.Waiting():
			m, ok := l.Next()
			return ok && m.Topic == x2
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	for _, ok := l.Next(); ok; _, ok = l.Next() {
		// extra probes
	}
	// The link subscribes to x2 first and then leaves x1, without
	// waiting: x1 may deliver for a moment after x2 does, and then never.
	x1 := topics.Area("x1", protocol.ChanCmd)
	nodetest.Eventually(t, 5*time.Second, "x1 still delivered", func() bool {
		p.publish(x1, "old area")
		p.publish(x2, "new area")
		heardOld := false
		for {
			switch m := recv(t, l); {
			case m.Topic == x1:
				heardOld = true
			case m.Topic == x2 && string(m.Payload) == "new area":
				return !heardOld
			}
		}
	})
	if err := l.Publish(context.Background(), topics.Node("n1", protocol.ChanEvent), false, []byte("e")); err != nil {
		t.Fatal(err)
	}
}

func TestLinkWillAndResubscribeAfterLoss(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	proxy, err := netproxy.Start(broker)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	l := open(t, proxy.Addr(), []string{"x1"})
	waitConnect(t, l)
	p.state("online")

	proxy.Cut()
	p.state("offline") // the broker's Last Will
	// paho queues a QoS 1 publish while reconnecting; it must not report
	// success before the broker has it.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	if err := l.Publish(ctx, topics.Node("n1", protocol.ChanEvent), false, []byte("e")); err == nil {
		t.Error("publish over a cut link reported success")
	}
	cancel()
	proxy.Restore()
	waitConnect(t, l)
	p.state("online")
	p.publish(topics.Area("x1", protocol.ChanCmd), "after")
	if m := recv(t, l); string(m.Payload) != "after" {
		t.Fatalf("after reconnect got %q", m.Payload)
	}
}

func TestLinkDropsWhenAgentLags(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	l := open(t, broker, nil)
	waitConnect(t, l)
	for range 10 {
		p.publish(topics.Node("n1", protocol.ChanCmd), "x")
	}
	nodetest.Eventually(t, 5*time.Second, "drops not counted", func() bool { return l.Dropped() == 6 })
	queued := 0
	for _, ok := l.Next(); ok; _, ok = l.Next() {
		queued++
	}
	if queued != 4 {
		t.Fatalf("%d messages queued, want 4", queued)
	}
}

// TestLinkKeepsCommandsBehindLiveFrames: the link handed every incoming
// message to the agent through one bounded queue. While the agent's loop
// was held up (opening a play, a slow SD card write), a burst of live
// frames filled it, and a command that came right after them was dropped:
// an alert a node never heard. Live frames must never take the room of
// control messages: the command arrives, after the newest frames (in the
// order the broker sent them); only the oldest frames are dropped.
func TestLinkKeepsCommandsBehindLiveFrames(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	// No echo: every message the link hears is one of the test's.
	l := openWith(t, Config{
		Broker: "tcp://" + broker, Areas: []string{"x1"}, EchoTimeout: -1,
		Queue: 4, KeepAlive: time.Second, MaxReconnectInterval: 100 * time.Millisecond,
	})
	waitConnect(t, l)
	const frames = 40
	live, cmd := topics.Area("x1", protocol.ChanLive), topics.Area("x1", protocol.ChanCmd)
	for i := range frames {
		// Frames go at QoS 0, as the controller sends them.
		if tok := p.c.Publish(live, 0, false, "frame "+strconv.Itoa(i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	p.publish(cmd, "alert")
	// The agent's loop is busy until the link has heard them all.
	nodetest.Eventually(t, 10*time.Second, "link did not hear every message", func() bool { return l.heard.Load() == frames+1 })

	var got []string
	for {
		m := recv(t, l)
		got = append(got, string(m.Payload))
		if m.Topic == cmd {
			break
		}
	}
	kept := len(got) - 1
	if kept == 0 || kept > frames {
		t.Fatalf("got %q: want the newest frames, then the command", got)
	}
	for i, s := range got[:kept] {
		if want := "frame " + strconv.Itoa(frames-kept+i); s != want {
			t.Fatalf("got %q: message %d is %q, want %q (the newest frames in order, then the command)", got, i, s, want)
		}
	}
	if d := l.Dropped(); d != 0 {
		t.Errorf("Dropped() = %d, want 0: no control message was dropped", d)
	}
	if d := l.FramesDropped(); d != uint64(frames-kept) {
		t.Errorf("FramesDropped() = %d, want %d", d, frames-kept)
	}
}

func TestOpenChecksConfig(t *testing.T) {
	for _, c := range []Config{
		{Broker: "", Node: "n1", Username: "n1"},
		{Broker: "tcp://127.0.0.1:1", Node: "", Username: "n1"},
		{Broker: "tcp://127.0.0.1:1", Node: "n1", Username: ""},
	} {
		if _, err := Open(c); err == nil {
			t.Errorf("Open(%+v): no error", c)
		}
	}
	// A link to a broker that is not there keeps trying and closes cleanly.
	l, err := Open(Config{Broker: "tcp://" + nodetest.FreeAddr(t), Node: "n1", Username: "n1", ConnectRetryInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if l.Connected() {
		t.Fatal("connected to nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.Publish(ctx, "t", false, nil); err == nil {
		t.Fatal("publish without a broker: no error")
	}
	l.Close()
	if err := l.Publish(context.Background(), "t", false, nil); err != ErrClosed {
		t.Fatalf("publish after Close = %v, want ErrClosed", err)
	}

	// Closing a link that is waiting out a long backoff leaves nothing
	// behind (goleak checks at the end of the package).
	l, err = Open(Config{Broker: "tcp://" + nodetest.FreeAddr(t), Node: "n1", Username: "n1", ConnectRetryInterval: time.Hour, MaxReconnectInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestStatesLandInTheOrderBuilt: the on-connect state is built (from a
// board read before a change) but not yet handed to paho when the agent
// publishes the state reporting the change. The broker must end up
// holding the newer state, not the on-connect one landing after it.
func TestStatesLandInTheOrderBuilt(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	built := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	l, err := Open(Config{
		Broker: "tcp://" + broker, Node: "n1", Username: "n1", Secret: "s", Topics: topics, Areas: []string{"x1"},
		Online: func() []byte {
			once.Do(func() {
				close(built)
				<-release // paho's on-connect handler is slow to go on
			})
			return []byte("mains on")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	goOn := sync.OnceFunc(func() { close(release) })
	t.Cleanup(goOn) // before Close, even if the test fails
	select {
	case <-built:
	case <-time.After(10 * time.Second):
		t.Fatal("no state built on connect")
	}
	done := make(chan error, 1)
	go func() {
		done <- l.PublishState(context.Background(), func() []byte { return []byte("mains off") })
	}()
	// It must wait for the on-connect state to be handed over first. A
	// PublishState that does not wait returns within this bound (and its
	// state then lands first); one that waits never does.
	select {
	case err := <-done:
		t.Fatalf("PublishState returned (err %v) while the on-connect state was still being built", err)
	case <-time.After(200 * time.Millisecond):
	}
	goOn()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Both states are published either way; only their order tells.
	var got []string
	for timeout := time.After(10 * time.Second); len(got) < 2; {
		select {
		case s := <-p.states:
			got = append(got, string(s))
		case <-timeout:
			t.Fatalf("states published: %q, want two", got)
		}
	}
	if want := []string{"mains on", "mains off"}; !slices.Equal(got, want) {
		t.Fatalf("states landed as %q, want %q (the newer state last)", got, want)
	}
}

// holdSubscribe is a broker hook that keeps SUBSCRIBE packets from being
// granted until release is closed.
type holdSubscribe struct {
	mochi.HookBase
	held    chan struct{} // closed at the first SUBSCRIBE
	release chan struct{}
	once    sync.Once
}

func (h *holdSubscribe) ID() string { return "hold-subscribe" }

func (h *holdSubscribe) Provides(b byte) bool { return b == mochi.OnSubscribe }

func (h *holdSubscribe) OnSubscribe(_ *mochi.Client, pk packets.Packet) packets.Packet {
	h.once.Do(func() { close(h.held) })
	<-h.release
	return pk
}

// TestConnectedOnlyOnceSubscribed: a link whose connection is open but
// whose subscriptions the broker has not granted yet would miss what is
// published to the node (a command sent then is lost), so it must not say
// it is connected until they are.
func TestConnectedOnlyOnceSubscribed(t *testing.T) {
	hold := &holdSubscribe{held: make(chan struct{}), release: make(chan struct{})}
	addr := startBrokerWith(t, new(auth.AllowHook), hold)
	released := false
	t.Cleanup(func() {
		if !released {
			close(hold.release)
		}
	})

	l := open(t, addr, []string{"p1"})
	select {
	case <-hold.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the link never subscribed")
	}
	if !l.Open() {
		t.Fatal("the connection is not open while its SUBSCRIBE is with the broker")
	}
	if l.Connected() {
		t.Fatal("Connected before the broker granted the subscriptions")
	}
	released = true
	close(hold.release)
	waitConnect(t, l)
	if !l.Connected() {
		t.Fatal("not Connected after the link signalled its connect")
	}
}

// refuseTopic is a broker hook whose ACL refuses subscriptions to topic
// while refusing is set, and lets everything else through.
type refuseTopic struct {
	mochi.HookBase
	topic    string
	refusing atomic.Bool
	refused  atomic.Int32 // subscriptions refused
}

func (h *refuseTopic) ID() string { return "refuse-topic" }

func (h *refuseTopic) Provides(b byte) bool {
	return b == mochi.OnACLCheck || b == mochi.OnConnectAuthenticate
}

func (h *refuseTopic) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *refuseTopic) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	if !write && topic == h.topic && h.refusing.Load() {
		h.refused.Add(1)
		return false
	}
	return true
}

// startBrokerWith runs an embedded broker with hooks until the test ends
// and returns its address.
func startBrokerWith(t *testing.T, hooks ...mochi.Hook) string {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), Capabilities: mochi.NewDefaultServerCapabilities()})
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	ln := brokerconn.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}, 0)
	ln.Server = srv
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return ln.Address()
}

// TestLinkRetriesANewAreaUntilSubscribed: a node moved to another area
// subscribes to the new area's topics; when the broker refused that
// subscription (its ACL not yet updated for the move), the link only
// logged it, and the node heard nothing of its new area, alerts included,
// until its next reconnect. It must try again, with backoff, until the
// broker grants it, and say meanwhile which areas it does not hear.
func TestLinkRetriesANewAreaUntilSubscribed(t *testing.T) {
	x2 := topics.Area("x2", protocol.ChanCmd)
	acl := &refuseTopic{topic: x2}
	broker := startBrokerWith(t, acl)
	p := newPeer(t, broker)
	l := openWith(t, Config{
		Broker: "tcp://" + broker, Areas: []string{"x1"},
		KeepAlive: time.Second, ConnectRetryInterval: 20 * time.Millisecond, MaxReconnectInterval: 100 * time.Millisecond,
	})
	waitConnect(t, l)
	p.state("online")

	acl.refusing.Store(true)
	l.SetAreas([]string{"x2"})
	nodetest.Eventually(t, 5*time.Second, "the new area's subscription was never refused", func() bool { return acl.refused.Load() > 0 })
	nodetest.Eventually(t, 5*time.Second, "the link does not say it misses x2", func() bool { return slices.Equal(l.AreasUnheard(), []string{"x2"}) })
	select {
	case <-l.UnheardChanged():
	default:
		t.Error("UnheardChanged not signalled")
	}
	acl.refusing.Store(false)
	// The connection stays up throughout: only a retry subscribes.
	nodetest.Eventually(t, 5*time.Second, "the node never heard its new area", func() bool {
		p.publish(x2, "alert")
		select {
		case <-l.Waiting():
			m, ok := l.Next()
			return ok && m.Topic == x2
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	nodetest.Eventually(t, 5*time.Second, "the link still says it misses an area", func() bool { return len(l.AreasUnheard()) == 0 })
	select {
	case <-l.Connects():
		t.Error("the link connected again; it must retry on its connection")
	default:
	}
}

// token is a publish's token, completed by the test.
type token struct {
	done chan struct{}
	err  error
}

func newToken() *token { return &token{done: make(chan struct{})} }

func (t *token) complete(err error) { t.err = err; close(t.done) }

func (t *token) Wait() bool                       { <-t.done; return true }
func (t *token) WaitTimeout(d time.Duration) bool { return waitOn(t.done, d) }
func (t *token) Done() <-chan struct{}            { return t.done }
func (t *token) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

func waitOn(c <-chan struct{}, d time.Duration) bool {
	select {
	case <-c:
		return true
	case <-time.After(d):
		return false
	}
}

// TestEchoWatch: when a probe is overdue, and when it is not.
func TestEchoWatch(t *testing.T) {
	t0 := time.Now()
	const timeout = time.Minute
	accepted := func() paho.Token {
		tok := newToken()
		tok.complete(nil)
		return tok
	}
	late := func(w *echoWatch, at time.Time) bool {
		_, _, ok := w.overdue(at, timeout)
		return ok
	}
	var w echoWatch
	probe(&w, accepted(), t0)
	if late(&w, t0.Add(2*timeout)) {
		t.Error("overdue before the echo subscription was granted")
	}
	w.enable(true)
	probe(&w, accepted(), t0)
	probe(&w, accepted(), t0.Add(timeout)) // a later probe does not restart the wait
	if late(&w, t0.Add(timeout)) {
		t.Error("overdue at the timeout")
	}
	d, armed, ok := w.overdue(t0.Add(timeout+time.Second), timeout)
	if !ok || d != timeout+time.Second || armed {
		t.Errorf("overdue = %v, armed %v, %v after the timeout, before any echo; want %v, false, true", d, armed, ok, timeout+time.Second)
	}
	w.echoed()
	if _, armed, ok := w.overdue(t0.Add(10*timeout), timeout); ok || !armed {
		t.Errorf("after the echo: armed %v, overdue %v; want true, false", armed, ok)
	}

	pending := newToken()
	probe(&w, pending, t0)
	if late(&w, t0.Add(10*timeout)) {
		t.Error("overdue while the broker has not accepted the probe")
	}
	pending.complete(errors.New("connection lost"))
	if late(&w, t0.Add(10*timeout)) {
		t.Error("overdue for a probe that failed")
	}
	probe(&w, accepted(), t0.Add(10*timeout)) // the failed one was forgotten
	if !late(&w, t0.Add(11*timeout+time.Second)) {
		t.Error("the probe after a failed one is not watched")
	}
	w.reset(true)
	if late(&w, t0.Add(20*timeout)) {
		t.Error("a new connection inherited the old one's probe")
	}

	// Each reconnect for deafness with no echo since doubles the wait, up
	// to 64 times; an echo brings it back.
	for misses := range 8 {
		wait := timeout << min(misses, 6)
		w.reset(true)
		probe(&w, accepted(), t0)
		if late(&w, t0.Add(wait)) || !late(&w, t0.Add(wait+time.Second)) {
			t.Fatalf("after %d misses the probe is not overdue just after %v", misses, wait)
		}
		w.missed()
		if late(&w, t0.Add(100*wait)) {
			t.Fatalf("the check is on after a miss, before the next connection")
		}
	}
	w.reset(true)
	w.echoed()
	probe(&w, accepted(), t0)
	if !late(&w, t0.Add(timeout+time.Second)) {
		t.Error("an echo did not bring the wait back to the timeout")
	}

	// The echo comes back before the publishing goroutine has attached
	// the probe's token (a loaded machine): the probe has its echo.
	w.reset(true)
	id, ok := w.begin(t0, 0)
	if !ok {
		t.Fatal("no probe begun on a fresh connection")
	}
	w.echoed()
	w.attach(id, accepted())
	if late(&w, t0.Add(100*timeout)) {
		t.Error("a probe whose echo came before its token was attached is taken for unechoed")
	}
	// The next probe is watched as usual.
	probe(&w, accepted(), t0.Add(100*timeout))
	if !late(&w, t0.Add(101*timeout+time.Second)) {
		t.Error("the probe after an early echo is not watched")
	}
}

// probe begins a probe at now and attaches tok, as PublishState does.
func probe(w *echoWatch, tok paho.Token, now time.Time) {
	if id, ok := w.begin(now, 0); ok {
		w.attach(id, tok)
	}
}

// TestLinkReconnectsWhenTheBrokerStopsDelivering: the broker keeps the
// node connected but delivers nothing more to it, as the embedded broker's
// reconnect race once did (it dropped the client from its table while the
// connection lived on). The link must notice from its own state's missing
// echo, reconnect, and hear again.
func TestLinkReconnectsWhenTheBrokerStopsDelivering(t *testing.T) {
	srv, addr, err := nodetest.OpenBroker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p := newPeer(t, addr)
	var log syncbuf.Buffer
	l := openWith(t, Config{
		Broker: "tcp://" + addr,
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
		// The keep-alive's pings go on while the broker delivers nothing:
		// they are no help here. (Shorter than 5 s, mochi's read deadline
		// races paho's pings.)
		KeepAlive:            10 * time.Second,
		MaxReconnectInterval: 100 * time.Millisecond, ConnectRetryInterval: 50 * time.Millisecond,
		// Long enough that a slow echo on a loaded machine (the race
		// detector, other tests) is not taken for deafness.
		EchoTimeout: 2 * time.Second,
	})
	waitConnect(t, l)
	p.state("online")

	// While the broker delivers, every state comes back and leaves no
	// probe waiting.
	nodetest.Eventually(t, 5*time.Second, "the on-connect state's echo did not come", func() bool { return l.echoes.Load() >= 1 })
	for i := range 3 {
		if err := l.PublishState(context.Background(), func() []byte { return []byte("state " + strconv.Itoa(i)) }); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, 5*time.Second, "states' echoes did not come", func() bool { return l.echoes.Load() >= 4 })
	if d, _, late := l.echo.overdue(time.Now().Add(time.Hour), l.cfg.EchoTimeout); late {
		t.Fatalf("a probe is waiting %v with every echo heard", d)
	}
	if l.Deaf() != 0 {
		t.Fatalf("Deaf() = %d while the broker delivers", l.Deaf())
	}

	// The broker forgets the client; the connection stays up.
	cl, ok := srv.Clients.Get("n1")
	if !ok {
		t.Fatal("the broker does not know n1")
	}
	srv.Clients.Delete("n1")
	if cl.Closed() || !l.Connected() {
		t.Fatal("the connection went down with the broker's record")
	}
	p.publish(topics.Node("n1", protocol.ChanCmd), "unheard")
	if err := l.PublishState(context.Background(), func() []byte { return []byte("probe") }); err != nil {
		t.Fatal(err)
	}
	p.state("offline") // the link dropped the connection: the Last Will
	// The log tells a silent connection (nothing came since the probe,
	// not even the command) from one that lost only the echo.
	if !strings.Contains(log.String(), "messages_since_probe=0") {
		t.Errorf("the deaf connection's log does not say nothing came since the probe:\n%s", log.String())
	}
	waitConnect(t, l)
	p.state("online")
	if l.Deaf() != 1 || l.DeafSince(time.Now().Add(-time.Minute)) != 1 || l.DeafSince(time.Now()) != 0 {
		t.Fatalf("Deaf() = %d, DeafSince(a minute ago) = %d, DeafSince(now) = %d after one deaf connection",
			l.Deaf(), l.DeafSince(time.Now().Add(-time.Minute)), l.DeafSince(time.Now()))
	}
	p.publish(topics.Node("n1", protocol.ChanCmd), "heard")
	for {
		m := recv(t, l)
		if string(m.Payload) == "heard" {
			break
		}
		if string(m.Payload) != "unheard" {
			t.Fatalf("got %q on %s", m.Payload, m.Topic)
		}
	}
}

// TestLinkRestatesOverAStaleWill: a state on the node's topic that the link
// did not publish (the Last Will of an earlier connection that the broker
// published after this one's online state) makes the connected link publish
// its state again, so the broker does not keep the node offline; its own
// states, an empty retained state and the agent's goodbye do not.
func TestLinkRestatesOverAStaleWill(t *testing.T) {
	broker := nodetest.StartBroker(t)
	p := newPeer(t, broker)
	// A keep-alive of seconds: mochi drops a connection whose pings come
	// at its read deadline, and a reconnect would publish the state too.
	l := openWith(t, Config{Broker: "tcp://" + broker, Areas: []string{"x1"}, KeepAlive: 10 * time.Second})
	waitConnect(t, l)
	p.state("online")
	nodetest.Eventually(t, 5*time.Second, "the on-connect state's echo did not come", func() bool { return l.echoes.Load() >= 1 })

	stateTopic := topics.Node("n1", protocol.ChanState)
	retain := func(payload string) {
		t.Helper()
		if tok := p.c.Publish(stateTopic, 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// The old connection's Last Will, as the broker would publish it. The
	// peer may have the link's answer before its own copy of the Will: the
	// broker keeps no order between what it sends the two.
	retain("offline")
	p.states2("offline", "online")
	nodetest.Eventually(t, 5*time.Second, "Restated() did not count the state published again", func() bool { return l.Restated() == 1 })
	// A newcomer (the controller after a restart) finds the node online.
	if got := retained(t, broker, stateTopic); got != "online" {
		t.Fatalf("the broker holds state %q, want online", got)
	}

	// The node's own states are echoes, not others'.
	echoes := l.echoes.Load()
	if err := l.PublishState(context.Background(), func() []byte { return []byte("playing") }); err != nil {
		t.Fatal(err)
	}
	if err := l.Publish(context.Background(), stateTopic, true, []byte("goodbye")); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 5*time.Second, "the states' echoes did not come", func() bool { return l.echoes.Load() >= echoes+2 })
	// The node removed: its retained state cleared, not restored. The
	// state after it is the link's own, so the link handled the empty one
	// first.
	heard := l.heard.Load()
	retain("")
	if err := l.PublishState(context.Background(), func() []byte { return []byte("after") }); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 5*time.Second, "the empty state and the echo after it did not come", func() bool { return l.heard.Load() >= heard+2 })
	if n := l.Restated(); n != 1 {
		t.Fatalf("Restated() = %d after its own states and an empty one, want 1", n)
	}
}

// retained returns the retained message on topic, "" if none comes within
// a second of subscribing.
func retained(t *testing.T, broker, topic string) string {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + broker).SetClientID("observer").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(50)
	got := make(chan string, 1)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			select {
			case got <- string(m.Payload()):
			default:
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case s := <-got:
		return s
	case <-time.After(time.Second):
		return ""
	}
}

// TestEchoThroughMosquitto: through Mosquitto with the ACL the controller
// exports, the node's states come back to it; with an ACL from before the
// echo (its own state write-only) the broker refuses the subscription and
// the link works as it did, without the check and without reconnecting.
func TestEchoThroughMosquitto(t *testing.T) {
	for _, c := range []struct {
		name, state string
		echo        bool
	}{
		{"exported ACL", "readwrite", true},
		{"ACL from before the echo", "write", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mosquittotest.Start(t, mosquittotest.Options{
				Users: map[string]string{"peer": "p", "n1": "s"},
				ACL: "user peer\ntopic readwrite loa/v1/#\n\nuser n1\n" +
					"topic " + c.state + " " + topics.Node("n1", protocol.ChanState) + "\n" +
					"topic read " + topics.Node("n1", protocol.ChanDesired) + "\ntopic read " + topics.Node("n1", protocol.ChanCmd) + "\n",
			})
			p := newPeerAs(t, b.Addr(), "peer", "p")
			l := openWith(t, Config{
				Broker: b.URL(),
				// Short enough that a missing echo would have reconnected
				// the link by the end of the test, long enough that a slow
				// one on a loaded machine is not taken for deafness.
				EchoTimeout: time.Second,
			})
			waitConnect(t, l)
			p.state("online")
			for i := range 3 {
				if err := l.PublishState(context.Background(), func() []byte { return []byte("state " + strconv.Itoa(i)) }); err != nil {
					t.Fatal(err)
				}
				p.state("state " + strconv.Itoa(i))
			}
			if c.echo {
				nodetest.Eventually(t, 5*time.Second, "the states' echoes did not come", func() bool { return l.echoes.Load() == 4 })
			}
			if !c.echo {
				// Mosquitto grants the subscription and sends nothing on
				// it: the unarmed check must let the link be once the
				// watchdog has looked well after the probes' timeout.
				after := time.Now().Add(3 * l.cfg.EchoTimeout)
				nodetest.Eventually(t, 10*time.Second, "the echo watchdog did not look", func() bool { return l.checked.Load() > after.UnixNano() })
			}
			// Whatever the check, the node hears its commands on the
			// connection it made: the offline state in between would
			// say it reconnected.
			p.publish(topics.Node("n1", protocol.ChanCmd), "heard")
			if m := recv(t, l); string(m.Payload) != "heard" {
				t.Fatalf("got %q on %s", m.Payload, m.Topic)
			}
			if !c.echo && l.echoes.Load() != 0 {
				t.Fatalf("%d echoes through an ACL that refuses them", l.echoes.Load())
			}
			if l.Deaf() != 0 || !l.Connected() {
				t.Fatalf("Deaf() = %d, Connected() = %v", l.Deaf(), l.Connected())
			}
		})
	}
}

// refuseConnect is a broker hook that refuses every node's CONNECT while
// refusing is set.
type refuseConnect struct {
	mochi.HookBase
	refusing atomic.Bool
}

func (h *refuseConnect) ID() string { return "refuse-connect" }

func (h *refuseConnect) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *refuseConnect) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool {
	return !h.refusing.Load()
}

func (h *refuseConnect) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// An agent release on probation that never connected was kept whatever
// the reason, so a release that could not speak to a broker it reached was
// kept as long as a board whose 4G was down. Reaches tells them apart: it
// holds when the last connect reached the broker (TCP, TLS) and the broker
// did not refuse the node, and not when nothing answers at the address or
// the broker refuses the node's credentials (no release would do better).
func TestLinkReachesTellsTheNetworkFromTheBroker(t *testing.T) {
	// attempt opens a link to broker and waits for its first connect to fail.
	attempt := func(t *testing.T, broker string) *Link {
		t.Helper()
		log := &syncbuf.Buffer{}
		l := openWith(t, Config{Broker: "tcp://" + broker, ConnectTimeout: 300 * time.Millisecond, MaxReconnectInterval: time.Minute,
			Logger: slog.New(slog.NewTextHandler(log, nil))})
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "mqtt: connect failed"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no connect failed:\n%s", log)
			}
		}
		return l
	}

	t.Run("nothing answers at the address", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if l := attempt(t, addr); l.Reaches() || l.Connected() {
			t.Fatalf("Reaches %v, Connected %v; want neither", l.Reaches(), l.Connected())
		}
	})

	t.Run("something answers but does not speak MQTT", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, c) // never a CONNACK
				c.Close()
			}
		}()
		l := attempt(t, ln.Addr().String())
		if !l.Reaches() || l.Connected() {
			t.Errorf("Reaches %v, Connected %v; want it reached, not connected", l.Reaches(), l.Connected())
		}
		l.Close()
		ln.Close()
		wg.Wait()
	})

	t.Run("the broker refuses the node, then takes it", func(t *testing.T) {
		hook := &refuseConnect{}
		hook.refusing.Store(true)
		addr := startBrokerWith(t, hook)
		l := attempt(t, addr)
		if l.Reaches() || l.Connected() {
			t.Fatalf("refused: Reaches %v, Connected %v; want neither", l.Reaches(), l.Connected())
		}
		hook.refusing.Store(false)
		waitConnect(t, l)
		if !l.Reaches() || !l.Connected() {
			t.Fatalf("taken: Reaches %v, Connected %v; want both", l.Reaches(), l.Connected())
		}
	})
}
