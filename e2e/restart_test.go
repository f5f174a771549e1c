package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// quickReconnect makes a node find a restarted broker within a second.
func quickReconnect(c *agent.Config) { c.MQTTMaxReconnect = 500 * time.Millisecond }

// reportNodes fetches an emergency's report, its nodes by id.
func reportNodes(c *rig.Controller, id string) (*loaxa.EmergencyReport, map[string]loaxa.EmergencyNode) {
	rep := report(c, id)
	out := map[string]loaxa.EmergencyNode{}
	for _, n := range rep.Nodes {
		out[n.Node] = n
	}
	return rep, out
}

// TestEmergencyControllerRestart: the controller restarts (a new process
// on the same store and broker port) while an emergency plays on two
// nodes and a third, offline, has not had it. The nodes play on; the new
// controller reports the emergency as completely as the old one did
// (receipt times, states), follows it to the end, and resends it to the
// third node when that comes online, which then plays it late. No node
// plays it twice.
func TestEmergencyControllerRestart(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	c.CreateArea("12347", "Xã Tiên Minh", "31")
	creds := map[string]*protocol.Credentials{}
	for id, area := range map[string]string{"a1": "12346", "a2": "12346", "a3": "12346", "b1": "12347"} {
		creds[id] = c.CreateNode(id, area)
	}
	nodes := map[string]*rig.Node{}
	a3dir := t.TempDir()
	for _, id := range []string{"a1", "a2", "a3", "b1"} {
		opt := rig.NodeOptions{Tune: quickReconnect}
		if id == "a3" {
			opt.Dir = a3dir
		}
		nodes[id] = rig.StartNode(t, creds[id], opt)
	}
	for id := range nodes {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	nodes["a3"].Stop(t)
	rig.Eventually(t, 15*time.Second, "a3 offline", func() bool { return c.Node("a3").Status.State == loaxa.NodeOffline })

	msg := c.Upload("bao-dong.wav", rig.ToneWAV(880, 3*time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": msg.ID, "targets": []string{"12346"}, "repeat": 3}, &em)
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" plays the emergency", func() bool { return playing(nodes[id]) == em.Occurrence })
	}
	rig.Eventually(t, 10*time.Second, "a1 and a2 reported it started", func() bool {
		_, ns := reportNodes(c, em.ID)
		return ns["a1"].State == "started" && ns["a2"].State == "started"
	})
	_, before := reportNodes(c, em.ID)

	c = c.Restart()
	rep, after := reportNodes(c, em.ID)
	if rep.Summary.Targeted != 3 || rep.State != loaxa.EmergencyActive {
		t.Errorf("report right after the restart: state %s, summary %+v", rep.State, rep.Summary)
	}
	for _, id := range []string{"a1", "a2"} {
		b, a := before[id], after[id]
		if a.ReceivedMS == nil || b.ReceivedMS == nil || *a.ReceivedMS != *b.ReceivedMS || a.State != "started" {
			t.Errorf("%s after the restart: %s; before: %s", id, rig.Describe(a), rig.Describe(b))
		}
	}
	if a3 := after["a3"]; a3.State != loaxa.EmergencyOffline || a3.ReceivedMS != nil {
		t.Errorf("a3 after the restart: %s", rig.Describe(a3))
	}
	if p := playing(nodes["a1"]); p != em.Occurrence {
		t.Errorf("a1 plays %q during the controller restart, want the emergency", p)
	}

	rig.StartNode(t, creds["a3"], rig.NodeOptions{Dir: a3dir, Tune: quickReconnect})
	rig.Eventually(t, 60*time.Second, "every node of 12346 completed the emergency", func() bool {
		return report(c, em.ID).Summary.Completed == 3
	})
	rep, ns := reportNodes(c, em.ID)
	if want := (loaxa.EmergencySummary{Targeted: 3, Reached: 3, Completed: 3}); rep.Summary != want {
		t.Errorf("summary %+v, want %+v", rep.Summary, want)
	}
	for id, n := range ns {
		if n.ReceivedMS == nil || !playedWhole(n, &em) {
			t.Errorf("%s: %s (planned %d ms)", id, rig.Describe(n), em.PlannedMS)
		}
	}
	if a3 := ns["a3"]; a3.Resends < 1 || a3.LateMS <= 0 {
		t.Errorf("a3 came online after the restart: %d resends, %d ms late; want it resent and late", a3.Resends, a3.LateMS)
	}
	evs := rig.CountEvents(c.Events(url.Values{"area": {"31"}}), em.Occurrence)
	for _, id := range []string{"a1", "a2", "a3"} {
		if evs[id][protocol.EventStarted] != 1 || evs[id][protocol.EventCompleted] != 1 {
			t.Errorf("%s events %v: want one start and one completion", id, evs[id])
		}
	}
	if len(evs["b1"]) != 0 {
		t.Errorf("b1 in the sibling commune reported %v", evs["b1"])
	}
}

// TestEmergencyNodeRestartOnANewStore: a node whose power is cut while an
// alert plays, and whose store the cut leaves damaged, starts on a new
// store and no longer holds the alert; the controller sees its new outbox
// epoch and sends the alert again, and the node plays it to the end.
func TestEmergencyNodeRestartOnANewStore(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cred, dir := c.CreateNode("a1", "12346"), t.TempDir()
	a1 := rig.StartNode(t, cred, rig.NodeOptions{Dir: dir, Tune: quickReconnect})
	rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })
	msg := c.Upload("bao-dong.wav", rig.ToneWAV(880, 2*time.Second, 16000, 1))

	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": msg.ID, "targets": []string{"12346"}, "repeat": 2, "drill": true}, &em)
	rig.Eventually(t, 10*time.Second, "a1 plays the alert", func() bool { return playing(a1) == em.Occurrence })
	rig.Eventually(t, 10*time.Second, "the controller has a1 sounding", func() bool {
		_, ns := reportNodes(c, em.ID)
		return ns["a1"].State == "started"
	})
	a1.Stop(t)
	cutShort(t, filepath.Join(dir, "node.db"))
	a1 = rig.StartNode(t, cred, rig.NodeOptions{Dir: dir, Tune: quickReconnect})
	rig.Eventually(t, 30*time.Second, "a1 completed the alert on its new store", func() bool {
		_, ns := reportNodes(c, em.ID)
		return ns["a1"].State == "completed"
	})
	if n := c.Node("a1"); n.Status.StorageDamaged != 1 {
		t.Errorf("a1 reports %d damaged files, want its store", n.Status.StorageDamaged)
	}
	_, ns := reportNodes(c, em.ID)
	if n := ns["a1"]; n.Resends < 1 || n.PlayedMS <= 0 {
		t.Errorf("a1 after its restart on a new store: %s; want the alert sent again and played", rig.Describe(n))
	}
	if counts := rig.CountEvents(c.Events(url.Values{"node": {"a1"}}), em.Occurrence)["a1"]; counts[protocol.EventStarted] != 2 || counts[protocol.EventCompleted] != 1 {
		t.Errorf("a1 events %v: want started before the cut and again after it, then completed", counts)
	}
}

// cutShort leaves the second half of the pages of the store at path
// unwritten, as a power cut can. Half of the file was not that: bbolt
// doubles its file as its pages reach the end, so a store whose pages
// reach exactly half of its file (32,768 bytes of 65,536: one page fewer
// than this test's store usually has) is whole in that half, and on a
// loaded machine a1 started on it undamaged ("a1 reports 0 damaged
// files"). Half of the pages the store counts is always short of them.
func cutShort(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var pages int64
	err = db.View(func(tx *bbolt.Tx) error { pages = tx.Size(); return nil })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, pages/2); err != nil {
		t.Fatal(err)
	}
}

// TestEmergencyNodeRestart: a node whose agent restarts while an alert
// plays (a power cut) plays it again from the beginning once it is back,
// to the end, and says so; a node that comes back only after the alert
// expired plays nothing of it and reports it failed, expired.
func TestEmergencyNodeRestart(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	c.CreateArea("12347", "Xã Tiên Minh", "31")
	credA, credB := c.CreateNode("a1", "12346"), c.CreateNode("b1", "12347")
	dirA, dirB := t.TempDir(), t.TempDir()
	a1 := rig.StartNode(t, credA, rig.NodeOptions{Dir: dirA, Tune: quickReconnect})
	b1 := rig.StartNode(t, credB, rig.NodeOptions{Dir: dirB, Tune: quickReconnect})
	for _, id := range []string{"a1", "b1"} {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	msg := c.Upload("bao-dong.wav", rig.ToneWAV(880, 2*time.Second, 16000, 1))

	// a1: restarted mid-alert, back well before the expiry.
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": msg.ID, "targets": []string{"12346"}, "repeat": 2, "drill": true}, &em)
	rig.Eventually(t, 10*time.Second, "a1 plays the alert", func() bool { return playing(a1) == em.Occurrence })
	time.Sleep(time.Second) // into the alert: what is cut off is the point
	a1.Stop(t)
	out := &rig.StampOutput{Output: nil}
	a1 = rig.StartNode(t, credA, rig.NodeOptions{Dir: dirA, Tune: func(cfg *agent.Config) {
		quickReconnect(cfg)
		out.Output = cfg.Output
		cfg.Output = out
	}})
	rig.Eventually(t, 30*time.Second, "a1 completed the alert after its restart", func() bool {
		_, ns := reportNodes(c, em.ID)
		return ns["a1"].State == "completed"
	})
	// Played again after the restart from its beginning, the opening
	// chime whole (agent lateSkip). The report keeps how late the node
	// first began and what that start left out of the chime (the timing
	// counts the first start): a node that began late before the cut (the
	// chime fetched late on a loaded machine: 50 ms) left out 50 ms then,
	// and the whole template played after the restart is not 50 ms short.
	_, ns := reportNodes(c, em.ID)
	if n := ns["a1"]; n.PlayedMS < em.PlannedMS-1 || n.PlayedMS > em.PlannedMS+1 || n.ReceivedMS == nil {
		t.Errorf("a1 after its restart: %s; want the whole template (%d ms) played from its beginning", rig.Describe(n), em.PlannedMS)
	}
	if got := len(out.Plays()); got != 1 {
		t.Errorf("the restarted agent started %d plays, want the alert once", got)
	}
	evs := c.Events(url.Values{"node": {"a1"}})
	counts := rig.CountEvents(evs, em.Occurrence)["a1"]
	if counts[protocol.EventStarted] != 2 || counts[protocol.EventSuspended] != 1 || counts[protocol.EventCompleted] != 1 {
		t.Errorf("a1 events %v: want started, suspended (interrupted), started again, completed", counts)
	}
	for _, e := range evs {
		if e.Occurrence == em.Occurrence && e.Type == protocol.EventSuspended && e.Reason != protocol.ReasonInterrupted {
			t.Errorf("a1 suspended the alert for %q, want %q", e.Reason, protocol.ReasonInterrupted)
		}
	}

	// b1: stopped mid-alert, back after the expiry.
	expires := time.Now().Add(6 * time.Second)
	var short loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": msg.ID, "targets": []string{"12347"}, "repeat": 3,
		"expires": expires.Format(time.RFC3339Nano)}, &short)
	rig.Eventually(t, 10*time.Second, "b1 plays the alert", func() bool { return playing(b1) == short.Occurrence })
	b1.Stop(t)
	time.Sleep(time.Until(expires)) // the point of the test is the expiry passing
	outB := &rig.StampOutput{}
	b1 = rig.StartNode(t, credB, rig.NodeOptions{Dir: dirB, Tune: func(cfg *agent.Config) {
		quickReconnect(cfg)
		outB.Output = cfg.Output
		cfg.Output = outB
	}})
	rig.Eventually(t, 30*time.Second, "b1 reported the alert expired", func() bool {
		_, ns := reportNodes(c, short.ID)
		return ns["b1"].State == string(loaxa.DeliveryFailed)
	})
	rep, ns := reportNodes(c, short.ID)
	if n := ns["b1"]; n.Reason != protocol.ReasonExpired || n.ReceivedMS == nil {
		t.Errorf("b1 in the expired alert: %s", rig.Describe(n))
	}
	if rep.State != loaxa.EmergencyExpired {
		t.Errorf("alert state %s, want expired", rep.State)
	}
	b1.Acknowledged(t, 10*time.Second)
	if got := len(outB.Plays()); got != 0 {
		t.Errorf("b1 played %d times after coming back past the expiry, want none", got)
	}
	if counts := rig.CountEvents(c.Events(url.Values{"node": {"b1"}}), short.Occurrence)["b1"]; counts[protocol.EventStarted] != 1 {
		t.Errorf("b1 events %v: want one start only, before the stop", counts)
	}
}
