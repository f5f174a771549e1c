package e2e

import (
	"loaxa.vn/e2e/rig"
	"net/url"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Three clusters in two communes; a bulletin for commune A and for one
// named cluster of commune B must play on exactly those two, each delivery
// must complete, and each play must be in the log exactly once.
func testBroadcast(t *testing.T, m *rig.Mosquitto) {
	c := rig.StartController(t, m.ControllerBroker())
	tienLang(c)
	creds := map[string]*protocol.Credentials{
		"tt-01": c.CreateNode("tt-01", "12346"),
		"tm-01": c.CreateNode("tm-01", "12347"),
		"tm-02": c.CreateNode("tm-02", "12347"),
	}
	m.Install(t, c, creds["tm-02"])
	nodes := map[string]*rig.Node{}
	for id, cr := range creds {
		nodes[id] = rig.StartNode(t, cr, rig.NodeOptions{})
	}
	for id := range creds {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}

	ct := c.Upload("tiem-chung.wav", rig.ToneWAV(440, 1200*time.Millisecond, 44100, 2))
	start := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	ann := c.Announce(ct.ID, []string{"12346"}, []string{"tm-01"}, start)
	occ := loaxa.OccurrenceID(ann.ID, start)

	rig.Eventually(t, 30*time.Second, "both deliveries completed", func() bool {
		ds := c.Deliveries(ann.ID)
		done := 0
		for _, d := range ds {
			if d.State == loaxa.DeliveryCompleted {
				done++
			}
		}
		return len(ds) == 2 && done == 2
	})
	for _, d := range c.Deliveries(ann.ID) {
		if d.Node != "tt-01" && d.Node != "tm-01" {
			t.Errorf("delivery for untargeted node: %s", rig.Describe(d))
		}
		if d.Occurrence != occ {
			t.Errorf("delivery occurrence %q, want %q", d.Occurrence, occ)
		}
		if d.PlayedMS < 1100 {
			t.Errorf("node %s played %d ms of a 1200 ms bulletin", d.Node, d.PlayedMS)
		}
	}

	// The controller acknowledges asynchronously; once every outbox is
	// empty no resend can still arrive, so the counts are final.
	for _, n := range nodes {
		n.Acknowledged(t, 15*time.Second)
	}
	counts := rig.CountEvents(c.Events(url.Values{"area": {"31"}}), occ)
	want := map[protocol.EventType]int{protocol.EventReceived: 1, protocol.EventStarted: 1, protocol.EventCompleted: 1}
	for _, id := range []string{"tt-01", "tm-01"} {
		for typ, n := range want {
			if counts[id][typ] != n {
				t.Errorf("node %s: %d %s events, want %d (all: %v)", id, counts[id][typ], typ, n, counts[id])
			}
		}
	}
	if len(counts["tm-02"]) != 0 {
		t.Errorf("untargeted node tm-02 reported %v", counts["tm-02"])
	}
	for id := range creds {
		n := c.Node(id)
		if n.Status.State != loaxa.NodeOnline || n.Status.RunningVersion != n.Status.DesiredVersion {
			t.Errorf("node %s status %s", id, rig.Describe(n.Status))
		}
	}
}

func TestBroadcastEmbeddedBroker(t *testing.T) {
	t.Parallel()
	testBroadcast(t, nil)
}

// TestBroadcastMosquitto runs it through a real Mosquitto installed as a
// province installs it: the exported configuration, password file and
// ACLs.
func TestBroadcastMosquitto(t *testing.T) {
	t.Parallel()
	testBroadcast(t, rig.StartMosquitto(t, 0))
}
