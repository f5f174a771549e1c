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

// offline is a cluster of Xã Tiên Thắng whose link to the broker goes
// through a proxy that the test cuts.
type offline struct {
	c    *rig.Controller
	cr   *protocol.Credentials
	link *netproxy.Proxy
	opt  rig.NodeOptions
	n    *rig.Node
}

// startOffline starts the controller and the cluster tt-01 in dir, its
// link through a proxy.
func startOffline(t *testing.T, dir string) *offline {
	t.Helper()
	o := &offline{c: rig.StartController(t, "")}
	o.c.CreateArea("31", "Thành phố Hải Phòng", "")
	o.c.CreateArea("12346", "Xã Tiên Thắng", "31")
	o.cr = o.c.CreateNode("tt-01", "12346")
	link, err := netproxy.Start(strings.TrimPrefix(o.c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	o.link = link
	t.Cleanup(func() { link.Close() }) // after the node stops (cleanups run last-in first-out)
	o.opt = rig.NodeOptions{Broker: "tcp://" + link.Addr(), Dir: dir}
	o.n = rig.StartNode(t, o.cr, o.opt)
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return o.c.Node("tt-01").Status.State == loaxa.NodeOnline })
	return o
}

// playCutOff schedules a one-second bulletin 4 s ahead, waits until the
// cluster has it and its audio, cuts the link, and waits until the
// cluster played it: its own outbox holds the completed event. It returns
// the announcement, its occurrence, and whether the cluster had the audio
// a second before the start (on a loaded machine it may come later, and
// the play with it).
func (o *offline) playCutOff(t *testing.T) (*loaxa.Announcement, string, bool) {
	t.Helper()
	ct := o.c.Upload("bao-bao.wav", rig.ToneWAV(660, time.Second, 16000, 1))
	start := time.Now().Add(4 * time.Second).Truncate(time.Millisecond)
	ann := o.c.Announce(ct.ID, []string{"12346"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	rig.Eventually(t, 10*time.Second, "delivery received", func() bool {
		ds := o.c.Deliveries(ann.ID)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryReceived
	})
	rig.Eventually(t, 10*time.Second, "content cached on the node", func() bool {
		st := o.n.Agent.Status()
		return st.DesiredVersion > 0 && len(st.ContentMissing) == 0
	})
	inTime := time.Now().Before(start.Add(-time.Second))
	o.link.Cut()
	rig.Eventually(t, 20*time.Second, "node completed the play offline", func() bool {
		ob, err := o.n.DB.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		evs, err := o.n.DB.Events(ob.Acked, 100)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(evs, func(e protocol.Event) bool { return e.Occurrence == occ && e.Type == protocol.EventCompleted })
	})
	return ann, occ, inTime
}

// A cluster whose 4G link drops after it got its schedule still plays on
// time; once the link is back the controller receives every event exactly
// once.
func TestOfflineNodePlaysAndReportsLater(t *testing.T) {
	t.Parallel()
	o := startOffline(t, "")
	c := o.c
	ann, occ, inTime := o.playCutOff(t)
	rig.Eventually(t, 15*time.Second, "controller sees the node offline", func() bool {
		return c.Node("tt-01").Status.State == loaxa.NodeOffline
	})
	if st := c.Deliveries(ann.ID)[0].State; st != loaxa.DeliveryReceived {
		t.Fatalf("controller saw delivery %s while the link was cut", st)
	}

	o.link.Restore()
	rig.Eventually(t, 30*time.Second, "delivery completed after reconnect", func() bool {
		return c.Deliveries(ann.ID)[0].State == loaxa.DeliveryCompleted
	})
	o.n.Acknowledged(t, 15*time.Second)

	d := c.Deliveries(ann.ID)[0]
	switch {
	case d.LateMS > 1000 && inTime:
		t.Errorf("offline play started %d ms late, its audio cached a second before", d.LateMS)
	case !inTime:
		t.Logf("the audio came less than a second before the start on this loaded machine; the play began %d ms late", d.LateMS)
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
	dir := t.TempDir()
	o := startOffline(t, dir)
	c := o.c
	oldEpoch := o.n.DB.Epoch()
	ann, occ, _ := o.playCutOff(t)
	// The power cut: the store's desired state torn, its events intact.
	o.n.Stop(t)
	db, err := bbolt.Open(filepath.Join(dir, "node.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("desired"), []byte{'{', 0xFF}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	o.link.Restore()
	n := rig.StartNode(t, o.cr, o.opt)
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
	// (How late it began depends on how soon this machine fetched the
	// audio; it is the offline play's, not this test's, to judge.)
	if d := c.Deliveries(ann.ID)[0]; d.State != loaxa.DeliveryCompleted {
		t.Errorf("delivery %s, want completed", d.State)
	}
	if st := c.Node("tt-01").Status; st.StorageDamaged != 1 {
		t.Errorf("node reports %d damaged files, want its store", st.StorageDamaged)
	}
}
