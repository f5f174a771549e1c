// This file is loaxa's, not upstream's.

package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

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
