package e2e

import (
	"loaxa.vn/e2e/rig"
	"net/url"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/protocol"
)

// A cluster whose 4G link drops after it got its schedule still plays on
// time; once the link is back the controller receives every event exactly
// once.
func TestOfflineNodePlaysAndReportsLater(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")

	link, err := netproxy.Start(strings.TrimPrefix(c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() }) // after the node stops (cleanups run last-in first-out)
	n := rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + link.Addr()})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })

	ct := c.Upload("bao-bao.wav", rig.ToneWAV(660, time.Second, 16000, 1))
	start := time.Now().Add(4 * time.Second).Truncate(time.Millisecond)
	ann := c.Announce(ct.ID, []string{"12346"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)

	// Wait until the node has the schedule and the audio, then cut its link.
	rig.Eventually(t, 10*time.Second, "delivery received", func() bool {
		ds := c.Deliveries(ann.ID)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryReceived
	})
	rig.Eventually(t, 10*time.Second, "content cached on the node", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
	link.Cut()
	rig.Eventually(t, 15*time.Second, "controller sees the node offline", func() bool {
		return c.Node("tt-01").Status.State == loaxa.NodeOffline
	})

	// The node plays while cut off: its own outbox holds the events.
	rig.Eventually(t, 20*time.Second, "node completed the play offline", func() bool {
		ob, err := n.DB.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		evs, err := n.DB.Events(ob.Acked, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Occurrence == occ && e.Type == protocol.EventCompleted {
				return true
			}
		}
		return false
	})
	if st := c.Deliveries(ann.ID)[0].State; st != loaxa.DeliveryReceived {
		t.Fatalf("controller saw delivery %s while the link was cut", st)
	}

	link.Restore()
	rig.Eventually(t, 30*time.Second, "delivery completed after reconnect", func() bool {
		return c.Deliveries(ann.ID)[0].State == loaxa.DeliveryCompleted
	})
	n.Acknowledged(t, 15*time.Second)

	d := c.Deliveries(ann.ID)[0]
	if d.LateMS > 1000 {
		t.Errorf("offline play started %d ms late", d.LateMS)
	}
	counts := rig.CountEvents(c.Events(url.Values{"node": {"tt-01"}}), occ)["tt-01"]
	for _, typ := range []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted} {
		if counts[typ] != 1 {
			t.Errorf("%d %s events, want exactly 1 (all: %v)", counts[typ], typ, counts)
		}
	}
}
