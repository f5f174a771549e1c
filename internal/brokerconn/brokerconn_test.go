package brokerconn

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteToPeerThatDoesNotReadTimesOut(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &Conn{Conn: a, timeout: 20 * time.Millisecond}
	_, err := c.Write([]byte("nobody reads this"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: err = %v, want a deadline error", err)
	}
}

func TestWriteToReadingPeerSucceeds(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan []byte)
	go func() {
		buf := make([]byte, 5)
		_, _ = io.ReadFull(b, buf)
		got <- buf
	}()
	c := &Conn{Conn: a, timeout: time.Minute}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; !bytes.Equal(g, []byte("hello")) {
		t.Fatalf("peer read %q", g)
	}
}

// A client that connects, subscribes and then stops reading must not hang
// the broker: disconnecting it (as a revocation does) and closing the
// server return once the blocked write times out.
func TestStuckClientDoesNotHangDisconnectOrClose(t *testing.T) {
	srv := mochi.New(&mochi.Options{
		Logger:       slog.New(slog.DiscardHandler),
		Capabilities: mochi.NewDefaultServerCapabilities(),
		InlineClient: true,
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}, 200*time.Millisecond)
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()

	conn, err := net.Dial("tcp", ln.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// MQTT 3.1.1 CONNECT (client "stuck", clean session, keep-alive 600 s)
	// and SUBSCRIBE to "t" at QoS 0, written by hand: this client must
	// never read on its own.
	connect := []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0x02, 0x58, 0, 5, 's', 't', 'u', 'c', 'k'}
	subscribe := []byte{0x82, 6, 0, 1, 0, 1, 't', 0}
	if _, err := conn.Write(append(connect, subscribe...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4+5) // CONNACK, SUBACK
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("reading CONNACK and SUBACK: %v", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 || ack[4] != 0x90 || ack[8] != 0 {
		t.Fatalf("CONNACK+SUBACK = % x, want accepted", ack)
	}
	cl, ok := srv.Clients.Get("stuck")
	if !ok {
		t.Fatal("the broker does not know the client")
	}
	// Far more than the loopback socket buffers hold: the broker's writes
	// to the client block.
	payload := make([]byte, 256<<10)
	for range 64 {
		if err := srv.Publish("t", payload, false, 0); err != nil {
			t.Fatal(err)
		}
	}

	done := make(chan error, 1)
	go func() { done <- srv.DisconnectClient(cl, packets.ErrNotAuthorized) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("DisconnectClient of a client that does not read has not returned after a minute")
	}
	if !cl.Closed() {
		t.Fatal("the stuck client is still open after DisconnectClient")
	}
	go func() { done <- srv.Close() }()
	select {
	case <-done:
		closed = true
	case <-time.After(time.Minute):
		t.Fatal("server Close has not returned after a minute")
	}
}

// TestCloseDisconnectsTheListenersClients: with Server set, Close lists
// the listener's clients itself (one read lock, not mochi's two) and
// disconnects every one: the client is told the server is shutting down
// (DISCONNECT, reason 0x8B) and the broker forgets it.
func TestCloseDisconnectsTheListenersClients(t *testing.T) {
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), Capabilities: mochi.NewDefaultServerCapabilities()})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}, 0)
	ln.Server = srv
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", ln.Address())
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	defer conn.Close()
	// MQTT 5 CONNECT (client "c1", clean start, keep-alive 600 s): an MQTT 5
	// client is told why it is disconnected.
	connect := []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0x02, 0x58, 0, 0, 2, 'c', '1'}
	if _, err := conn.Write(connect); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ack := make([]byte, 2)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 {
		srv.Close()
		t.Fatalf("CONNACK: % x, %v", ack, err)
	}
	io.ReadFull(conn, make([]byte, ack[1])) // the CONNACK's rest
	if _, ok := srv.Clients.Get("c1"); !ok {
		srv.Close()
		t.Fatal("the broker does not know the client")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("server Close has not returned after a minute")
	}
	rest, _ := io.ReadAll(conn)
	if len(rest) < 3 || rest[0] != 0xE0 || rest[2] != packets.ErrServerShuttingDown.Code {
		t.Errorf("client got % x after Close, want DISCONNECT with reason %#x", rest, packets.ErrServerShuttingDown.Code)
	}
	if cl, ok := srv.Clients.Get("c1"); ok && !cl.Closed() {
		t.Error("the client is still open after Close")
	}
}
