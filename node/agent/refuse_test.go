package agent_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// TestRefusesCatalogue feeds every controller → node fixture of the shared
// catalogue to a running agent through the broker: the accepted ones are
// acted on, every refused one is counted and nothing of it acted on.
func TestRefusesCatalogue(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctl.AutoAck.Store(false) // its acks would be signed with another key
	ctl.Clock = prototest.Now
	// Its time signed with the catalogue's key: the fixtures are judged on
	// a measured clock, as a node runs. (On a clock not measured yet, an
	// acknowledgement that looks expired is held until it is:
	// TestAcksHeldOnAFastBoardUntilMeasured.)
	ctl.Key = prototest.Key()
	cred := prototest.Credentials()
	cred.Controller, cred.Broker = ctl.HTTP.URL, "tcp://"+ctl.Broker
	n := startAgent(t, &cred, options{clock: clock.NewFake(prototest.Now())})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "clock measured", func() bool { return n.a.Status().ClockUncertaintyUS > 0 })

	subscribed := map[string]bool{}
	topics := protocol.NewTopics("")
	subscribed[topics.Node(prototest.Node, protocol.ChanDesired)] = true
	subscribed[topics.Node(prototest.Node, protocol.ChanCmd)] = true
	for _, a := range prototest.Areas {
		subscribed[topics.Area(a, protocol.ChanCmd)] = true
	}
	var refused []string
	for _, f := range prototest.Catalogue() {
		if !subscribed[f.Topic] {
			continue // node → controller channels, or another node's topic
		}
		if f.Want != nil {
			refused = append(refused, f.Name)
		}
		ctl.Publish(f.Topic, false, f.Raw)
	}
	if len(refused) < 30 {
		t.Fatalf("only %d refused fixtures reach the node; the catalogue changed?", len(refused))
	}
	// A last, newer desired state: once it runs, everything before it has
	// been through the agent, in order.
	last := prototest.Desired()
	last.Version, last.Occurrences, last.Content = 8, nil, nil
	signer := protocol.NewSigner(prototest.Controller, prototest.Key(), uint64(prototest.Now().UnixMicro())+1e9, prototest.Now)
	raw, err := signer.Seal(protocol.TypeDesired, "node/"+prototest.Node, last, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(topics.Node(prototest.Node, protocol.ChanDesired), false, raw)
	nodetest.Eventually(t, 10*time.Second, "sentinel desired state not applied", func() bool { return n.a.Status().DesiredVersion == 8 })

	if got := n.a.Status().Rejected; got != uint64(len(refused)) {
		t.Errorf("Rejected = %d, want %d (%v)", got, len(refused), refused)
	}
	// Only the accepted desired state was acted on: two occurrences
	// received, none played (the fake clock stays five minutes before).
	want := []string{"received a-0042@20250309T223000.000Z", "received a-0042@20250310T100000.000Z"}
	waitEvents(t, ctl, prototest.Node, want)
	if n.out.Plays() != 0 || len(n.board.Flips()) != 0 {
		t.Errorf("played %d times, amplifier %v", n.out.Plays(), n.board.Flips())
	}
}

// TestRefusesReplayAcrossRestart replays an accepted command to the same
// agent and to its successor on the same store, and sends messages signed
// by a stranger or for another audience.
func TestRefusesReplayAcrossRestart(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1", "p1")
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := startAgent(t, cred, options{store: st, dir: dir})
	waitConnected(t, n)
	version := uint64(0)
	// settle publishes a newer empty desired state and waits for it, so
	// every message sent before has been handled.
	settle := func(n *node) {
		t.Helper()
		version++
		ctl.PublishDesired(desired("n1", version, nil))
		nodetest.Eventually(t, 10*time.Second, fmt.Sprintf("desired version %d not applied", version), func() bool {
			return n.a.Status().DesiredVersion == version
		})
	}

	ack := ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdAck, Epoch: n.a.Epoch(), Seq: 0})
	settle(n)
	if got := n.a.Status().Rejected; got != 0 {
		t.Fatalf("a valid command was refused (Rejected = %d)", got)
	}
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, ack)
	settle(n)
	if got := n.a.Status().Rejected; got != 1 {
		t.Fatalf("after a replay Rejected = %d, want 1", got)
	}

	n.stop(t)
	n = startAgent(t, cred, options{store: st, dir: dir})
	waitConnected(t, n)
	settle(n)
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, ack)

	// A stranger's key, an area command for an area not in the chain
	// re-published on one that is, and a desired state for another node.
	stranger := nodetest.NewController(t, ctl.Broker)
	raw, _ := stranger.Signer.Seal(protocol.TypeDesired, "node/n1", desired("n1", 99, nil), time.Hour)
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanDesired), false, raw)
	raw, _ = ctl.Signer.Seal(protocol.TypeCommand, "area/zz", protocol.Command{Name: protocol.CmdAck}, time.Minute)
	ctl.Publish(ctl.Topics.Area("p1", protocol.ChanCmd), false, raw)
	raw, _ = ctl.Signer.Seal(protocol.TypeDesired, "node/n1", desired("n2", 100, nil), time.Hour)
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanDesired), false, raw)
	// An expired command from a controller clock two hours behind. Not an
	// acknowledgement: one that looks expired before the restarted
	// agent's first measurement is held until it (holdAck), not refused,
	// and whether the measurement came first depended on the machine.
	old := protocol.NewSigner("controller", ctl.Key, 0, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	raw, _ = old.Seal(protocol.TypeCommand, "node/n1", protocol.Command{Name: protocol.CmdStateNow}, time.Hour)
	ctl.Publish(ctl.Topics.Node("n1", protocol.ChanCmd), false, raw)
	settle(n)
	if got := n.a.Status().Rejected; got != 5 {
		t.Fatalf("after restart Rejected = %d, want 5 (replay, stranger, area, other node, expired)", got)
	}
	if got := n.a.Status().DesiredVersion; got != version {
		t.Fatalf("running desired version %d, want %d", got, version)
	}
	nodetest.Eventually(t, 5*time.Second, "rejections not in the retained state", func() bool {
		st := ctl.Log("n1").States
		return len(st) > 0 && st[len(st)-1].Rejected == 5
	})
	if got := nodetest.Summary(ctl.Events("n1")); len(got) != 0 {
		t.Fatalf("events %q from refused messages", got)
	}
}
