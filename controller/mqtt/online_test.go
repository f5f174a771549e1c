package mqtt_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// TestOnOnlineWhenANodeComesOnline: a node that missed a live call's start
// or end while it was away gets it again when it comes online (controller/
// live NodeOnline). The client must say so once per return (a state that
// brings the node online after an offline one, or the first), not on every
// state an online node publishes (that would send the call's start again
// to every node of a call every heartbeat); and what it sends a node, a
// call's start or end on the node's own cmd topic, is signed for that node.
func TestOnOnlineWhenANodeComesOnline(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	var mu sync.Mutex
	var online []string
	c.OnOnline = func(node string) {
		mu.Lock()
		defer mu.Unlock()
		online = append(online, node)
	}
	ctx := open(t, c)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(online)
	}

	node, cmdTopic := r.nodeOnItsCmdTopic(t)
	state := func(st protocol.Status, version uint64) {
		t.Helper()
		raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: st, At: time.Now(), DesiredVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, true, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	stored := func(what string, cond func(*loaxa.Node) bool) {
		t.Helper()
		poll(t, what, func() bool {
			n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
			return err == nil && cond(n)
		})
	}
	state(protocol.StatusOnline, 1)
	poll(t, "told the node came online", func() bool { return count() == 1 })
	state(protocol.StatusOnline, 2) // a heartbeat
	stored("the heartbeat stored", func(n *loaxa.Node) bool { return n.Status.RunningVersion == 2 })
	state(protocol.StatusOffline, 0) // its Last Will
	stored("the node offline", func(n *loaxa.Node) bool { return n.Status.State == loaxa.NodeOffline })
	if got := count(); got != 1 {
		t.Errorf("told %d times, want once: a heartbeat or going offline is no return", got)
	}
	state(protocol.StatusOnline, 3)
	poll(t, "told the node came online again", func() bool { return count() == 2 })

	l := protocol.Live{Call: "live-j1", Kind: protocol.LiveStart, Priority: protocol.PriorityHigh, Title: "Họp dân"}
	if err := c.SendNodeLive(ctx, "tt-01", l); err != nil {
		t.Fatal(err)
	}
	poll(t, "the start on the node's cmd topic", func() bool { return node.received(cmdTopic) > 0 })
	env := r.openFirst(t, node, cmdTopic, "the start")
	var got protocol.Live
	if err := env.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if env.Type != protocol.TypeLive || got.Call != l.Call || got.Kind != l.Kind || got.Title != l.Title || got.Priority != l.Priority {
		t.Errorf("sent %s %+v, want live %+v", env.Type, got, l)
	}
	if ttl := env.ExpiresAt().Sub(env.IssuedAt()); ttl != protocol.LiveTTL {
		t.Errorf("valid for %s, want %s as any live message", ttl, protocol.LiveTTL)
	}
}

// TestLastWillLeavesLastSeenAtTheNodesLastMessage: a board that lost power
// or its link says nothing; the broker publishes its Last Will once its
// keep-alive ran out (45 s with the node's 30 s). last_seen, "last contact"
// in docs/fleet-health.md, and the offline alarm's "no message since"
// took the Will's arrival for the node's last message, up to a minute and
// a half late for a technician matching it with a power cut. The Will
// makes the node offline from its arrival (since) and leaves last_seen at
// the node's last own message.
func TestLastWillLeavesLastSeenAtTheNodesLastMessage(t *testing.T) {
	r := newRig(t)
	c := r.client(t, true)
	clk := clock.NewFake(time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC))
	c.Now = clk.Now
	open(t, c)
	node, _ := r.nodeOnItsCmdTopic(t)
	state := func(st protocol.Status) {
		t.Helper()
		raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: st, At: time.Now(), DesiredVersion: 1})
		if err != nil {
			t.Fatal(err)
		}
		if tok := node.c.Publish(topics.Node("tt-01", protocol.ChanState), 1, true, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	status := func(what string, cond func(loaxa.NodeStatus) bool) loaxa.NodeStatus {
		t.Helper()
		var st loaxa.NodeStatus
		poll(t, what, func() bool {
			n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
			if err == nil {
				st = n.Status
			}
			return err == nil && cond(st)
		})
		return st
	}
	last := clk.Now()
	state(protocol.StatusOnline)
	status("the node online", func(s loaxa.NodeStatus) bool { return s.State == loaxa.NodeOnline })
	clk.Advance(50 * time.Second) // the keep-alive runs out
	willAt := clk.Now()
	state(protocol.StatusOffline)
	st := status("the node offline by its Will", func(s loaxa.NodeStatus) bool { return s.State == loaxa.NodeOffline })
	if !st.LastSeen.Equal(last) || !st.Since.Equal(willAt) {
		t.Errorf("after the Will: last_seen %v, since %v; want last_seen at the node's last message %v, offline since the Will %v",
			st.LastSeen, st.Since, last, willAt)
	}
}
