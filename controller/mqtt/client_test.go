package mqtt_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

// The controller's client ingests a node's state and events through the
// embedded broker, and acknowledges the events with a signed command the
// node can verify.
func TestClientIngestsAndAcknowledges(t *testing.T) {
	r := newRig(t)
	key, err := r.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := mqtt.NewClient()
	c.BrokerURL = r.broker.URL()
	c.Username, c.Password = mqtt.ControllerUsername, r.broker.ControllerSecret
	c.Signer = protocol.NewSigner("controller", key, 0, nil)
	c.NodeService, c.EventService = r.nodes, r.events
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	node, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", "")
	if err != nil {
		t.Fatal(err)
	}
	cmdTopic := topics.Node("tt-01", protocol.ChanCmd)
	if !node.subscribe(t, cmdTopic) {
		t.Fatal("node may not subscribe to its cmd topic")
	}
	publish := func(ch protocol.Channel, typ protocol.Type, seq uint64, body any) {
		t.Helper()
		raw, err := protocol.Encode(typ, "tt-01", "controller", seq, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", ch), 1, ch == protocol.ChanState, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(protocol.ChanState, protocol.TypeState, 0, protocol.State{Status: protocol.StatusOnline, At: time.Now(), Agent: "test", DesiredVersion: 7, Outbox: 2})
	poll(t, "node online", func() bool {
		n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
		return err == nil && n.Status.State == loaxa.NodeOnline && n.Status.RunningVersion == 7 && n.Status.Outbox == 2
	})

	// A state claiming to come from another node is refused.
	raw, _ := protocol.Encode(protocol.TypeState, "tm-01", "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOffline})
	node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, false, raw).WaitTimeout(5 * time.Second)

	batch := protocol.EventBatch{Epoch: "ep1", Events: []protocol.Event{
		{Seq: 1, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAudioDevice},
		{Seq: 2, Type: protocol.EventFailed, At: time.Now(), Reason: protocol.ReasonAmplifier},
	}}
	publish(protocol.ChanEvent, protocol.TypeEvents, 1, batch)
	poll(t, "signed ack for seq 2", func() bool { return node.received(cmdTopic) > 0 })

	node.mu.Lock()
	ack := node.got[cmdTopic][0]
	node.mu.Unlock()
	v := protocol.NewVerifier([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil, 0)
	env, err := v.Open(ack, "node/tt-01")
	if err != nil {
		t.Fatalf("ack does not verify: %v", err)
	}
	var cmd protocol.Command
	if err := env.Decode(&cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Name != protocol.CmdAck || cmd.Epoch != "ep1" || cmd.Seq != 2 {
		t.Errorf("ack %+v, want ack ep1 seq 2", cmd)
	}
	evs, err := r.events.FindEvents(context.Background(), loaxa.EventFilter{Node: "tt-01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	if n, _ := r.nodes.FindNodeByID(context.Background(), "tt-01"); n.Status.State != loaxa.NodeOnline {
		t.Errorf("a state forged in another node's name changed tt-01 to %s", n.Status.State)
	}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
