// This file is loaxa's, not upstream's.

package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkSweep is the once-a-second sweep of expired retained messages
// with 10,000 retained desired states (one per node) of which none expires,
// as in the controller's broker (see README.loaxa.md).
func BenchmarkSweep(b *testing.B) {
	s := New(&Options{Capabilities: NewDefaultServerCapabilities()})
	s.Options.Capabilities.MaximumMessageExpiryInterval = 0
	for i := 0; i < 10000; i++ {
		s.Topics.Retained.Add(fmt.Sprintf("loaxa/node/n%05d/desired", i), packets.Packet{TopicName: "x", Payload: make([]byte, 1500), Created: time.Now().Unix()})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.clearExpiredRetainedMessages(time.Now().Unix())
	}
}

// TestLoaxaClientWritesPending: with Options.ClientWritesPending a client
// gets no pending-write buffer until it has authenticated, then the one
// the function gives it, knowing its id; and messages still reach it.
func TestLoaxaClientWritesPending(t *testing.T) {
	s := newServer()
	defer s.Close()
	var got *Client
	s.Options.ClientWritesPending = func(cl *Client) int32 {
		got = cl
		return 3
	}
	if c := cap(s.NewClient(nil, "tcp", "", false).State.outbound); c != 0 {
		t.Fatalf("a client not yet authenticated has %d pending writes allocated, want 0", c)
	}

	r, w := net.Pipe()
	o := make(chan error)
	go func() { o <- s.EstablishConnection("tcp", r) }()
	go func() {
		_, _ = w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectClean).RawBytes)
		_, _ = w.Write(packets.TPacketData[packets.Disconnect].Get(packets.TDisconnect).RawBytes)
	}()
	recv := make(chan []byte)
	go func() {
		buf, _ := io.ReadAll(w)
		recv <- buf
	}()
	if err := <-o; err != nil {
		t.Fatal(err)
	}
	want := packets.TPacketData[packets.Connack].Get(packets.TConnackAcceptedNoSession).RawBytes
	if b := <-recv; !bytes.Equal(b, want) {
		t.Fatalf("connack % x, want % x", b, want)
	}
	_ = w.Close()
	_ = r.Close()
	if got == nil {
		t.Fatal("ClientWritesPending was not asked")
	}
	if id := packets.TPacketData[packets.Connect].Get(packets.TConnectClean).Packet.Connect.ClientIdentifier; got.ID != id {
		t.Fatalf("ClientWritesPending asked for client %q, want %q", got.ID, id)
	}
	if c := cap(got.State.outbound); c != 3 {
		t.Fatalf("the client's pending writes hold %d, want 3", c)
	}
}

// TestLoaxaInlinePublishRejected: a publish of the inline client that a
// hook rejects is neither retained nor delivered, and Server.Publish says
// so; one that the hooks let through returns nil and is retained.
func TestLoaxaInlinePublishRejected(t *testing.T) {
	s := newServerWithInlineClient()
	hook := new(modifiedHookBase)
	hook.fail = true
	hook.err = packets.ErrRejectPacket
	if err := s.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Serve()
	defer s.Close()
	got := 0
	if err := s.Subscribe("a/#", 1, func(*Client, packets.Subscription, packets.Packet) { got++ }); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish("a/b", []byte("x"), true, 1); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("rejected publish returned %v, want ErrRejectPacket", err)
	}
	if got != 0 || s.Topics.Retained.Len() != 0 {
		t.Fatalf("rejected publish: %d delivered, %d retained", got, s.Topics.Retained.Len())
	}
	hook.fail = false
	if err := s.Publish("a/b", []byte("x"), true, 1); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if got != 1 || s.Topics.Retained.Len() != 1 {
		t.Fatalf("publish: %d delivered, %d retained, want 1 and 1", got, s.Topics.Retained.Len())
	}
}

// TestLoaxaReconnectKeepsTheNewConnection: a clean client's connection
// ends at the moment the same client connects again (a node that missed a
// keepalive on a loaded broker and reconnected at once). However the old
// connection's clean-up and the new one's admission interleave, the new
// client stays known and subscribed, so publishes reach it.
func TestLoaxaReconnectKeepsTheNewConnection(t *testing.T) {
	s := newServer()
	defer s.Close()
	connect := packets.TPacketData[packets.Connect].Get(packets.TConnectClean)
	subscribe := packets.TPacketData[packets.Subscribe].Get(packets.TSubscribe).RawBytes
	id := connect.Packet.Connect.ClientIdentifier
	// open connects and subscribes a connection of the client, reading
	// the connack and the suback; done is closed when the broker is done
	// with it.
	open := func() (w net.Conn, done chan struct{}) {
		r, w := net.Pipe()
		done = make(chan struct{})
		go func() {
			defer close(done)
			_ = s.EstablishConnection("tcp", r)
			_ = r.Close()
		}()
		_, _ = w.Write(connect.RawBytes)
		buf := make([]byte, 64)
		_, _ = w.Read(buf) // connack
		_, _ = w.Write(subscribe)
		_, _ = w.Read(buf) // suback
		go func() { _, _ = io.Copy(io.Discard, w) }()
		return w, done
	}
	for i := 0; i < 300; i++ {
		oldConn, oldDone := open()
		// The old connection drops as the new one connects.
		go func() { _ = oldConn.Close() }()
		newConn, newDone := open()
		<-oldDone
		cl, ok := s.Clients.Get(id)
		subs := s.Topics.Subscribers("a/b/c")
		if _, subscribed := subs.Subscriptions[id]; !ok || cl.Net.Conn == nil || cl.Closed() || !subscribed {
			t.Fatalf("attempt %d: after the old connection's clean-up, client known %v (closed %v), subscribed %v; want the new connection, subscribed",
				i, ok, ok && cl.Closed(), subscribed)
		}
		_ = newConn.Close()
		<-newDone
	}
}

// TestLoaxaDropUnrouted: a connected client missing from s.Clients (what
// the clean-up race once left) is disconnected, without unsubscribing the
// id, which a newer connection may hold; a client in s.Clients is left
// alone.
func TestLoaxaDropUnrouted(t *testing.T) {
	s := newServer()
	defer s.Close()
	connect := packets.TPacketData[packets.Connect].Get(packets.TConnectClean)
	subscribe := packets.TPacketData[packets.Subscribe].Get(packets.TSubscribe).RawBytes
	id := connect.Packet.Connect.ClientIdentifier
	open := func() (w net.Conn, done chan struct{}) {
		r, w := net.Pipe()
		done = make(chan struct{})
		go func() {
			defer close(done)
			_ = s.EstablishConnection("tcp", r)
			_ = r.Close()
		}()
		_, _ = w.Write(connect.RawBytes)
		buf := make([]byte, 64)
		_, _ = w.Read(buf) // connack
		_, _ = w.Write(subscribe)
		_, _ = w.Read(buf) // suback
		go func() { _, _ = io.Copy(io.Discard, w) }()
		return w, done
	}
	conn, done := open()
	defer conn.Close()
	cl, ok := s.Clients.Get(id)
	if !ok {
		t.Fatal("client not known after connecting")
	}
	if s.DropUnrouted(cl, packets.ErrServerBusy) {
		t.Fatal("a routed client was dropped")
	}
	if cl.Closed() {
		t.Fatal("a routed client was closed")
	}

	s.Clients.Delete(id) // the race's effect: connected, subscribed, unknown
	if !s.DropUnrouted(cl, packets.ErrServerBusy) {
		t.Fatal("an unrouted client was left connected")
	}
	<-done
	if !cl.Closed() {
		t.Fatal("the unrouted client is still open")
	}
	// Its id's subscription is not removed with it: a newer connection of
	// the same node may hold it by now.
	if _, subscribed := s.Topics.Subscribers("a/b/c").Subscriptions[id]; !subscribed {
		t.Fatal("dropping the unrouted client unsubscribed its id")
	}
	if s.DropUnrouted(cl, packets.ErrServerBusy) {
		t.Fatal("a closed client was dropped again")
	}
}

// cutBeforeConnack is a hook that closes each connection after it
// authenticated and before its CONNACK (a link that dropped at that
// moment), and records the connections it is told ended.
type cutBeforeConnack struct {
	HookBase
	mu    sync.Mutex
	ended []*Client
}

func (h *cutBeforeConnack) ID() string { return "cut-before-connack" }

func (h *cutBeforeConnack) Provides(b byte) bool {
	return b == OnSessionEstablish || b == OnDisconnect
}

func (h *cutBeforeConnack) OnSessionEstablish(cl *Client, _ packets.Packet) { _ = cl.Net.Conn.Close() }

func (h *cutBeforeConnack) OnDisconnect(cl *Client, _ error, _ bool) {
	h.mu.Lock()
	h.ended = append(h.ended, cl)
	h.mu.Unlock()
}

// TestLoaxaConnectionCutBeforeConnackEnds: a connection that authenticated
// and then could not be acknowledged ends like any other: the hooks get
// OnDisconnect (upstream's never did, and the controller's auth hook kept
// the connection's grant and *Client for ever), and its clean session
// leaves s.Clients (upstream's stayed until the id connected again).
func TestLoaxaConnectionCutBeforeConnackEnds(t *testing.T) {
	s := newServer()
	defer s.Close()
	h := new(cutBeforeConnack)
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	connect := packets.TPacketData[packets.Connect].Get(packets.TConnectClean)
	r, w := net.Pipe()
	defer w.Close()
	go func() { _, _ = w.Write(connect.RawBytes) }()
	if err := s.EstablishConnection("tcp", r); err == nil {
		t.Fatal("a connection cut before its CONNACK was established")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ended) != 1 || h.ended[0].ID != connect.Packet.Connect.ClientIdentifier {
		t.Fatalf("OnDisconnect was called for %d connections, want 1 for %q", len(h.ended), connect.Packet.Connect.ClientIdentifier)
	}
	if !h.ended[0].Closed() {
		t.Error("the connection is open after OnDisconnect")
	}
	if _, ok := s.Clients.Get(connect.Packet.Connect.ClientIdentifier); ok {
		t.Error("the clean session of a connection that ended before its CONNACK is still in s.Clients")
	}
}

// deadlineConn records the deadline set on it.
type deadlineConn struct {
	net.Conn
	deadline time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error { c.deadline = t; return nil }

// TestLoaxaKeepaliveDeadline: a client's read deadline is one and a half
// keep-alives, also for a keep-alive of 1 s (upstream's integer arithmetic
// made it 1 s, which the client's ping races) and for odd ones.
func TestLoaxaKeepaliveDeadline(t *testing.T) {
	cl, _, _ := newTestClient()
	conn := &deadlineConn{Conn: cl.Net.Conn}
	cl.Net.Conn = conn
	for _, c := range []struct {
		keepalive uint16
		want      time.Duration
	}{{1, 1500 * time.Millisecond}, {3, 4500 * time.Millisecond}, {30, 45 * time.Second}} {
		before := time.Now()
		cl.refreshDeadline(c.keepalive)
		after := time.Now()
		if conn.deadline.Before(before.Add(c.want)) || conn.deadline.After(after.Add(c.want)) {
			t.Errorf("keep-alive %d s: deadline %v after the refresh, want %v", c.keepalive, conn.deadline.Sub(before), c.want)
		}
	}
}

// TestLoaxaConnectionAfterCloseIsRefused: a connection whose goroutine
// reaches the server once Close has begun waiting for its clients is
// refused and closed. Before, it added itself to the wait group Close was
// already waiting on (a data race the race detector reported in loaxa's
// broker tests) and then ran, reading its CONNECT, after Close returned.
func TestLoaxaConnectionAfterCloseIsRefused(t *testing.T) {
	s := newServer()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, w := net.Pipe()
	defer w.Close()
	refused := make(chan error, 1)
	go func() { refused <- s.EstablishConnection("tcp", r) }()
	select {
	case err := <-refused:
		if !errors.Is(err, packets.ErrServerShuttingDown) {
			t.Errorf("connection after Close: %v, want %v", err, packets.ErrServerShuttingDown)
		}
	case <-time.After(10 * time.Second):
		_ = r.Close() // let the goroutine end
		t.Fatal("a connection after Close was taken in: it waits for its CONNECT")
	}
	if _, err := w.Write([]byte{0x10}); err == nil {
		t.Error("the refused connection is still open")
	}
}

// BenchmarkLoaxaFanout is one alert's fan-out in the broker: a 1,500-byte
// QoS 1 message published by the inline client to LOAXA_FANOUT_SUBSCRIBERS
// (default 1,000) subscribers of its topic over TCP on the loopback, until
// every subscriber has it and has sent its PUBACK. The subscribers are
// minimal MQTT 3.1.1 clients in this process (a read loop each), so a CPU
// profile shows the broker's share by its functions.
func BenchmarkLoaxaFanout(b *testing.B) {
	n := 1000
	if v := os.Getenv("LOAXA_FANOUT_SUBSCRIBERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LOAXA_FANOUT_SUBSCRIBERS=%q: want a number of subscribers", v)
		}
	}
	s := newServerWithInlineClient()
	s.Options.Capabilities.MaximumClients = int64(n) + 16
	ln := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := s.AddListener(ln); err != nil {
		b.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	const topic = "loa/v1/area/12346/cmd"
	var acked sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Address())
		if err != nil {
			b.Fatalf("subscriber %d: %v", i, err)
		}
		conns = append(conns, c)
		r := bufio.NewReader(c)
		connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 600, ClientIdentifier: fmt.Sprintf("sub-%d", i)}}
		subscribe := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: topic, Qos: 1}}}
		for _, pk := range []packets.Packet{connect, subscribe} {
			var buf bytes.Buffer
			var err error
			if pk.FixedHeader.Type == packets.Connect {
				err = pk.ConnectEncode(&buf)
			} else {
				err = pk.SubscribeEncode(&buf)
			}
			if err == nil {
				_, err = c.Write(buf.Bytes())
			}
			if err == nil {
				_, err = readPacket(r) // CONNACK, SUBACK
			}
			if err != nil {
				b.Fatalf("subscriber %d: %v", i, err)
			}
		}
		go func() {
			for {
				raw, err := readPacket(r)
				if err != nil {
					return
				}
				if raw[0]>>4 != packets.Publish {
					continue
				}
				// QoS 1: the packet id follows the topic.
				tl := int(raw[1])<<8 | int(raw[2])
				id := raw[3+tl : 5+tl]
				if _, err := c.Write([]byte{packets.Puback << 4, 2, id[0], id[1]}); err != nil {
					return
				}
				acked.Done()
			}
		}()
	}
	payload := make([]byte, 1500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		acked.Add(n)
		if err := s.Publish(topic, payload, false, 1); err != nil {
			b.Fatal(err)
		}
		acked.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/subscriber")
}

// readPacket reads one MQTT packet from r and returns its variable header
// and payload after the fixed header's first byte and length: raw[0] is
// the first byte, raw[1:] the rest.
func readPacket(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	length, shift := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		length |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		shift += 7
	}
	raw := make([]byte, 1+length)
	raw[0] = first
	_, err = io.ReadFull(r, raw[1:])
	return raw, err
}

// TestLoaxaSubscribersShareABrokerOwnedPayload: the subscribers' copies of
// a publish share one payload, the broker's own. An inline publish whose
// caller writes to its buffer afterwards leaves the queued and inflight
// packets of every subscriber, and the retained message, as they were
// published.
func TestLoaxaSubscribersShareABrokerOwnedPayload(t *testing.T) {
	s := newServerWithInlineClient()
	defer s.Close()
	var clients []*Client
	for _, id := range []string{"n1", "n2"} {
		r, w := net.Pipe()
		defer r.Close()
		cl := s.NewClient(w, "tcp", id, false)            // no write loop: the test reads what it was given
		cl.State.outbound = make(chan *packets.Packet, 1) // as for an authenticated client
		s.Clients.Add(cl)
		if !s.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "area/cmd", Qos: 1}) {
			t.Fatalf("%s not subscribed", id)
		}
		clients = append(clients, cl)
	}
	buf := []byte("cảnh báo bão số 3")
	want := string(buf)
	if err := s.Publish("area/cmd", buf, true, 1); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXXXXXXXXXX")

	var payloads [][]byte
	for _, cl := range clients {
		select {
		case pk := <-cl.State.outbound:
			if string(pk.Payload) != want {
				t.Errorf("%s was sent %q, want %q", cl.ID, pk.Payload, want)
			}
			payloads = append(payloads, pk.Payload)
		default:
			t.Fatalf("nothing queued for %s", cl.ID)
		}
		in := cl.State.Inflight.GetAll(false)
		if len(in) != 1 || string(in[0].Payload) != want {
			t.Errorf("%s holds %d inflight, want 1 of %q", cl.ID, len(in), want)
		}
	}
	if &payloads[0][0] != &payloads[1][0] {
		t.Error("each subscriber has a payload of its own; want one shared")
	}
	if r := s.Topics.Retained.GetAll(); len(r) != 1 || string(r["area/cmd"].Payload) != want {
		t.Errorf("retained %v, want %q", r, want)
	}
}

// TestLoaxaQueued: a client's Queued counts the publishes queued for it
// until its write loop has written them.
func TestLoaxaQueued(t *testing.T) {
	s := newServerWithInlineClient()
	defer s.Close()
	r, w := net.Pipe()
	defer r.Close()
	cl := s.NewClient(w, "tcp", "n1", false)
	cl.State.outbound = make(chan *packets.Packet, 4) // as for an authenticated client
	s.Clients.Add(cl)
	if !s.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "area/cmd", Qos: 1}) {
		t.Fatal("not subscribed")
	}
	for i := 0; i < 2; i++ {
		if err := s.Publish("area/cmd", []byte("cảnh báo"), false, 1); err != nil {
			t.Fatal(err)
		}
		if q := cl.Queued(); q != i+1 {
			t.Fatalf("after %d publishes Queued = %d, want %d", i+1, q, i+1)
		}
	}
	go cl.WriteLoop()
	read := bufio.NewReader(r)
	for i := 0; i < 2; i++ {
		var fh packets.FixedHeader
		b, err := read.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		if err := fh.Decode(b); err != nil {
			t.Fatal(err)
		}
		n, _, err := packets.DecodeLength(read)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, read, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	// Both were read: the loop counts the second written once its write
	// returns.
	for deadline := time.Now().Add(5 * time.Second); cl.Queued() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after both were written Queued = %d, want 0", cl.Queued())
		}
	}
	cl.Stop(errors.New("test over"))
}
