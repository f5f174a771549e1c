package mosquittotest

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// Raw MQTT 3.1.1 packets for client "n1": CONNECT with a clean session
// (keep-alive 60 s), SUBSCRIBE to "a/b" at QoS 1 (packet id 1).
var (
	rawConnect   = []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'n', '1'}
	rawSubscribe = []byte{0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 1}
)

// TestReconnectKeepsTheNewConnection asks of Mosquitto what
// third_party/mochi-server's TestLoaxaReconnectKeepsTheNewConnection asks
// of the embedded broker, whose copy needed a fix for it: a node whose
// connection drops as it connects again (a flaky 4G link) must end up
// connected and subscribed, not connected and deaf. Each round opens a
// connection and subscribes, cuts it without a DISCONNECT while the next
// connection with the same client id connects and subscribes, and then
// requires a message published to the topic to reach the new connection.
func TestReconnectKeepsTheNewConnection(t *testing.T) {
	b := Start(t, Options{AllowAnonymous: true})
	pub := connect(t, b, "pub", "", "")
	open := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", b.Addr(), wait)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(wait))
		buf := make([]byte, 5)
		if _, err := c.Write(rawConnect); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil || !bytes.Equal(buf[:4], []byte{0x20, 2, 0, 0}) {
			t.Fatalf("CONNACK %x, %v", buf[:4], err)
		}
		if _, err := c.Write(rawSubscribe); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, []byte{0x90, 3, 0, 1, 1}) {
			t.Fatalf("SUBACK %x, %v", buf, err)
		}
		return c
	}
	for i := range 150 {
		old := open()
		cut := make(chan struct{})
		go func() {
			defer close(cut)
			_ = old.Close()
		}()
		c := open()
		<-cut
		if tok := pub.Publish("a/b", 1, false, "alert"); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		head := make([]byte, 1)
		if _, err := io.ReadFull(c, head); err != nil || head[0]>>4 != 3 {
			t.Fatalf("round %d: the new connection got %x, %v; want the PUBLISH", i, head, err)
		}
		_ = c.Close()
	}
}
