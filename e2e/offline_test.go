package e2e

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"loaxa.vn/e2e/rig"

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

// A cluster that played while its link was down, and whose store a power
// cut then damaged, still reports that play: the new store reads back
// the events the damaged one had not sent, and the controller stores them
// once, under the old store's epoch, marked salvaged. It reads back the
// play's mark too, so the bulletin, still within its late grace, does not
// play again.
func TestOfflinePlayReportedFromADamagedStore(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")

	link, err := netproxy.Start(strings.TrimPrefix(c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	dir := t.TempDir()
	opt := rig.NodeOptions{Broker: "tcp://" + link.Addr(), Dir: dir}
	n := rig.StartNode(t, cr, opt)
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })
	oldEpoch := n.DB.Epoch()

	ct := c.Upload("bao-bao.wav", rig.ToneWAV(660, time.Second, 16000, 1))
	start := time.Now().Add(4 * time.Second).Truncate(time.Millisecond)
	ann := c.Announce(ct.ID, []string{"12346"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	rig.Eventually(t, 10*time.Second, "delivery received", func() bool {
		ds := c.Deliveries(ann.ID)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryReceived
	})
	rig.Eventually(t, 10*time.Second, "content cached on the node", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
	link.Cut()
	rig.Eventually(t, 20*time.Second, "node completed the play offline", func() bool {
		ob, err := n.DB.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		evs, err := n.DB.Events(ob.Acked, 100)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(evs, func(e protocol.Event) bool { return e.Occurrence == occ && e.Type == protocol.EventCompleted })
	})
	// The power cut: the store's desired state torn, its events intact.
	n.Stop(t)
	db, err := bbolt.Open(filepath.Join(dir, "node.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("desired"), []byte{'{', 0xFF}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	link.Restore()
	n = rig.StartNode(t, cr, opt)
	if n.DB.Epoch() == oldEpoch {
		t.Fatal("the node started on its damaged store")
	}
	rig.Eventually(t, 30*time.Second, "the play reported from the damaged store", func() bool {
		counts := map[protocol.EventType]int{}
		for _, e := range c.Events(url.Values{"node": {"tt-01"}}) {
			if e.Occurrence == occ && e.Epoch == oldEpoch {
				counts[e.Type]++
			}
		}
		return counts[protocol.EventStarted] == 1 && counts[protocol.EventCompleted] == 1
	})
	rig.Eventually(t, 15*time.Second, "the salvaged events acknowledged", func() bool {
		_, es, err := n.DB.Salvaged(1)
		return err == nil && len(es) == 0
	})
	// Whatever the new store made of the schedule has been reported.
	rig.Eventually(t, 10*time.Second, "the schedule on the new store", func() bool { return n.Agent.Status().DesiredVersion > 0 })
	n.Acknowledged(t, 15*time.Second)
	var salvaged []string
	for _, e := range c.Events(url.Values{"node": {"tt-01"}}) {
		if e.Epoch != oldEpoch {
			if e.Occurrence == occ {
				t.Errorf("the new store reported %s for the bulletin played already (late %d ms): it played again", e.Type, e.LateMS)
			}
			continue
		}
		if e.Salvaged {
			salvaged = append(salvaged, string(e.Type))
		}
		if e.Occurrence == occ && e.Type == protocol.EventReceived && e.Salvaged {
			t.Errorf("the received event, stored before the link was cut, came again as salvaged")
		}
	}
	if !slices.Contains(salvaged, string(protocol.EventStarted)) || !slices.Contains(salvaged, string(protocol.EventCompleted)) {
		t.Errorf("events stored as salvaged: %v; want the play's started and completed", salvaged)
	}
	if d := c.Deliveries(ann.ID)[0]; d.State != loaxa.DeliveryCompleted || d.LateMS > 1000 {
		t.Errorf("delivery %s, %d ms late; want completed, on time", d.State, d.LateMS)
	}
	if st := c.Node("tt-01").Status; st.StorageDamaged != 1 {
		t.Errorf("node reports %d damaged files, want its store", st.StorageDamaged)
	}
}
