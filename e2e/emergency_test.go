package e2e

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// emergencyFleet is two sibling communes under one district: nodes a1 and
// a2 in commune A (12346), b1 in commune B (12347).
func emergencyFleet(t *testing.T) (*rig.Controller, map[string]*rig.Node) {
	t.Helper()
	c, nodes, _ := emergencyFleetOn(t, nil)
	return c, nodes
}

// tienLang makes the areas most tests run in: Hải Phòng, its district
// Tiên Lãng, and two of its communes, Tiên Thắng (12346) and Tiên Minh
// (12347).
func tienLang(c *rig.Controller) {
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("318", "Huyện Tiên Lãng", "31")
	c.CreateArea("12346", "Xã Tiên Thắng", "318")
	c.CreateArea("12347", "Xã Tiên Minh", "318")
}

// emergencyFleetOn is emergencyFleet on broker m, installed with the
// nodes' accounts and ACLs before they start; nil is the controller's
// embedded broker. It returns each node's log as well, which goes to the
// test's output too.
func emergencyFleetOn(t *testing.T, m *rig.Mosquitto) (*rig.Controller, map[string]*rig.Node, map[string]*nodeLog) {
	t.Helper()
	c := rig.StartController(t, m.ControllerBroker())
	tienLang(c)
	creds := map[string]*protocol.Credentials{}
	for id, area := range map[string]string{"a1": "12346", "a2": "12346", "b1": "12347"} {
		creds[id] = c.CreateNode(id, area)
	}
	m.Install(t, c, creds["b1"])
	nodes, logs := map[string]*rig.Node{}, map[string]*nodeLog{}
	for id, cr := range creds {
		logs[id] = &nodeLog{}
		logger := slog.New(slog.NewMultiHandler(rig.Logger(t, "node "+id).Handler(), slog.NewTextHandler(logs[id], nil)))
		nodes[id] = rig.StartNode(t, cr, rig.NodeOptions{Logger: logger})
	}
	for id := range nodes {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	return c, nodes, logs
}

// playing returns the occurrence a node has on air, or "".
func playing(n *rig.Node) string {
	if p := n.Agent.Status().Playing; p != nil {
		return p.Occurrence
	}
	return ""
}

// report fetches an emergency's report.
func report(c *rig.Controller, id string) *loaxa.EmergencyReport {
	var rep loaxa.EmergencyReport
	c.MustDo("GET", "/api/v1/emergency/"+id, nil, &rep)
	return &rep
}

// playedWhole reports whether n played em's whole template: all of it but
// the opening chime's beginning a node that began late leaves out to
// sound on its area's timeline (on a busy machine a node may begin a few
// milliseconds late, and then plays that much less). Each is counted in
// whole milliseconds, so the two may sum to 1 ms less or more.
func playedWhole(n loaxa.EmergencyNode, em *loaxa.Emergency) bool {
	d := n.PlayedMS + n.ChimeSkippedMS - em.PlannedMS
	return d >= -1 && d <= 1 && n.ChimeSkippedMS <= n.LateMS
}

// TestEmergencyPreemptsOnlyItsArea: an emergency drill to commune A cuts
// the bulletin playing on A's nodes off, plays there, and the bulletin
// plays again afterwards; commune B's node plays its bulletin on,
// untouched. The report and the live stream count every node; every
// event of the drill is marked as one.
func TestEmergencyPreemptsOnlyItsArea(t *testing.T) {
	t.Parallel()
	c, nodes, logs := emergencyFleetOn(t, nil)
	testEmergencyPreempts(t, c, nodes, logs)
}

// TestEmergencyPreemptsOnlyItsAreaMosquitto is the same through a real
// Mosquitto installed as a province installs it: the configuration,
// password file and ACLs the controller exports, each node allowed only
// its own topics and its areas'.
func TestEmergencyPreemptsOnlyItsAreaMosquitto(t *testing.T) {
	t.Parallel()
	c, nodes, logs := emergencyFleetOn(t, rig.StartMosquitto(t, 0))
	testEmergencyPreempts(t, c, nodes, logs)
}

func testEmergencyPreempts(t *testing.T, c *rig.Controller, nodes map[string]*rig.Node, logs map[string]*nodeLog) {
	news := c.Upload("thoi-su.wav", rig.ToneWAV(440, 20*time.Second, 16000, 1))
	start := time.Now().Add(3 * time.Second)
	ann := c.Announce(news.ID, []string{"318"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	for id, n := range nodes {
		rig.Eventually(t, 20*time.Second, id+" plays the bulletin", func() bool { return playing(n) == occ })
	}

	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{
		"content_id": alarm.ID, "targets": []string{"12346"}, "repeat": 2, "drill": true, "volume": 4,
		"title": "Bão số 3 đổ bộ",
	}, &em)
	if !em.Drill || !strings.HasPrefix(em.Title, "[DIỄN TẬP] ") || em.Repeat != 2 || em.Volume != 4 || len(em.Areas) != 1 {
		t.Errorf("emergency as sent: %s", rig.Describe(em))
	}
	if a := em.Areas[0]; a.Area != "12346" || a.Nodes != 2 || a.LeadMS <= 0 || a.PublishedAt.IsZero() || a.LeadFrom != "estimated" {
		t.Errorf("area publish: %+v", a)
	}

	// The stream is opened now and read to its end in the background.
	streamed := make(chan []string, 1)
	go func() { streamed <- readStream(t, c, em.ID) }()

	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" plays the emergency", func() bool { return playing(nodes[id]) == em.Occurrence })
		// From the area's one publish, the broker's fan-out: a resend on
		// the node's own topic comes only seconds after that publish, so
		// a node that is not let read its area's topic plays it too.
		if got := logs[id].count(`occurrence=` + em.Occurrence + ` to=area/12346 `); got != 1 {
			t.Errorf("%s took the alert from its area's publish %d times, want once:\n%s", id, got, logs[id].String())
		}
	}
	if p := playing(nodes["b1"]); p != occ {
		t.Errorf("b1 in the sibling commune plays %q, want the bulletin %s", p, occ)
	}
	// While the alert sounds, the bulletin it cut off is suspended, not
	// sounding. A node reports in order (the bulletin's suspended before
	// the alert's started, its new start after the alert's completed), so
	// a reading of the bulletin taken between two reports that both show
	// the alert sounding on the node must show the bulletin suspended.
	cutOff := map[string]bool{}
	rig.Eventually(t, 20*time.Second, "the bulletin read suspended on both nodes of A while the alert sounds", func() bool {
		sounding := func() map[string]bool {
			on := map[string]bool{}
			for _, n := range report(c, em.ID).Nodes {
				on[n.Node] = n.State == string(loaxa.DeliveryStarted)
			}
			return on
		}
		before := sounding()
		ds := c.Deliveries(ann.ID)
		after := sounding()
		for _, d := range ds {
			if d.Occurrence != occ || !before[d.Node] || !after[d.Node] {
				continue
			}
			if d.State != loaxa.DeliverySuspended || d.Reason != protocol.ReasonPreempted {
				t.Errorf("%s: the bulletin reads %s (%q) while the alert sounds, want suspended (preempted)", d.Node, d.State, d.Reason)
			}
			cutOff[d.Node] = true
		}
		return cutOff["a1"] && cutOff["a2"]
	})
	rig.Eventually(t, 20*time.Second, "both nodes of A completed the emergency", func() bool {
		s := report(c, em.ID).Summary
		return s.Completed == 2
	})
	rep := report(c, em.ID)
	want := loaxa.EmergencySummary{Targeted: 2, Reached: 2, Completed: 2}
	if rep.Summary != want {
		t.Errorf("summary %+v, want %+v", rep.Summary, want)
	}
	for _, n := range rep.Nodes {
		if n.ReceivedMS == nil || !playedWhole(n, &em) || n.State != "completed" {
			t.Errorf("node %s: %+v (planned %d ms)", n.Node, n, em.PlannedMS)
		}
		// The alarm was uploaded just before: no node had it, each fetched
		// it on receipt, and the report says so.
		if !n.Fetched || n.ContentReadyMS == nil || n.ReceivedMS != nil && *n.ContentReadyMS < *n.ReceivedMS {
			t.Errorf("node %s fetched the alarm, the report says fetched %v, content_ready_ms %v", n.Node, n.Fetched, n.ContentReadyMS)
		}
		// When it began, from its own started event: the lead plus how late.
		if n.SoundMS == nil || *n.SoundMS != em.Areas[0].LeadMS+n.LateMS {
			t.Errorf("node %s: sound_ms %v, want the lead %d ms + late_ms %d", n.Node, n.SoundMS, em.Areas[0].LeadMS, n.LateMS)
		}
	}
	if tm := rep.Timing; tm.Received != 2 || tm.Started != 2 || tm.ReceivedMS == nil || tm.SoundMS == nil || tm.SkewMS == nil {
		t.Errorf("timing %s, want both nodes received and began", rig.Describe(tm))
	}
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" resumes the bulletin", func() bool { return playing(nodes[id]) == occ })
	}
	// Sounding again: started, how late it first began, no reason.
	rig.Eventually(t, 10*time.Second, "the bulletin reads started again on A", func() bool {
		again := 0
		for _, d := range c.Deliveries(ann.ID) {
			if d.State == loaxa.DeliveryStarted && d.Node != "b1" {
				again++
				if d.Reason != "" || d.LateMS > 1000 {
					t.Errorf("%s: the resumed bulletin reads %+v, want no reason and its first lateness", d.Node, d)
				}
			}
		}
		return again == 2
	})

	evs := c.Events(url.Values{"area": {"318"}})
	counts := rig.CountEvents(evs, occ)
	for _, id := range []string{"a1", "a2"} {
		if counts[id][protocol.EventSuspended] != 1 || counts[id][protocol.EventStarted] != 2 {
			t.Errorf("%s bulletin events %v: want suspended once and started twice", id, counts[id])
		}
	}
	if counts["b1"][protocol.EventSuspended] != 0 || counts["b1"][protocol.EventStarted] != 1 {
		t.Errorf("b1 bulletin events %v: want one start and no suspension", counts["b1"])
	}
	drills := 0
	for _, e := range evs {
		if e.Occurrence == em.Occurrence {
			drills++
			if !e.Drill {
				t.Errorf("event %s of %s about the drill is not marked as one", e.Type, e.Node)
			}
		} else if e.Drill {
			t.Errorf("event %s of %s about %s is marked as a drill", e.Type, e.Node, e.Occurrence)
		}
	}
	if drills < 6 {
		t.Errorf("%d events about the drill, want at least received, started and completed from both nodes", drills)
	}
	select {
	case lines := <-streamed:
		last := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"summary"`) {
				last = l
			}
		}
		var sum struct {
			Summary loaxa.EmergencySummary
			Timing  loaxa.EmergencyTiming
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(last, "data: ")), &sum); err != nil || sum.Summary != want || sum.Timing.Started != 2 {
			t.Errorf("last streamed summary %q, want %+v and both nodes' starts timed", last, want)
		}
		if !strings.Contains(strings.Join(lines, "\n"), "event: end") {
			t.Errorf("stream did not end with an end event")
		}
	case <-time.After(20 * time.Second):
		t.Error("the stream did not end after every node completed")
	}
}

// readStream reads GET /api/v1/emergency/{id}/stream to its end.
func readStream(t *testing.T, c *rig.Controller, id string) []string {
	req, _ := http.NewRequest("GET", c.URL+"/api/v1/emergency/"+id+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("stream: %v", err)
		return nil
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream Content-Type %q", ct)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestEmergencyCancel: cancelling an emergency while it plays stops it on
// every node at once, each node reports it cancelled, and the bulletin it
// cut off plays again. An all-clear follows to the same areas.
func TestEmergencyCancel(t *testing.T) {
	t.Parallel()
	c, nodes := emergencyFleet(t)
	news := c.Upload("thoi-su.wav", rig.ToneWAV(440, 20*time.Second, 16000, 1))
	start := time.Now().Add(3 * time.Second)
	ann := c.Announce(news.ID, []string{"12346"}, nil, start)
	occ := loaxa.OccurrenceID(ann.ID, start)
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 20*time.Second, id+" plays the bulletin", func() bool { return playing(nodes[id]) == occ })
	}
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 10*time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": map[string][]string{"areas": {"12346"}}}, &em)
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" plays the emergency", func() bool { return playing(nodes[id]) == em.Occurrence })
	}
	var cancelled loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency/"+em.ID+"/cancel", nil, &cancelled)
	if cancelled.State != loaxa.EmergencyCancelled || cancelled.CancelledBy != "admin" {
		t.Errorf("cancel answered %+v", cancelled)
	}
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" back on the bulletin", func() bool { return playing(nodes[id]) == occ })
	}
	rig.Eventually(t, 10*time.Second, "both nodes report the emergency cancelled", func() bool {
		s := report(c, em.ID).Summary
		return s.Cancelled == 2
	})
	rep := report(c, em.ID)
	if rep.State != loaxa.EmergencyCancelled || rep.Summary.Targeted != 2 || rep.Summary.Completed != 0 {
		t.Errorf("report after cancel: %s", rig.Describe(rep.Summary))
	}
	for _, n := range rep.Nodes {
		if n.PlayedMS <= 0 || n.PlayedMS >= em.PlannedMS {
			t.Errorf("%s played %d ms of %d before the cancel", n.Node, n.PlayedMS, em.PlannedMS)
		}
	}
	if status, raw := c.Do("POST", "/api/v1/emergency/"+em.ID+"/cancel", nil, nil); status != http.StatusConflict {
		t.Errorf("second cancel: %d %s", status, raw)
	}

	clear := c.Upload("het-nguy-hiem.wav", rig.ToneWAV(660, time.Second, 16000, 1))
	var ac loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency/"+em.ID+"/all-clear", map[string]any{"content_id": clear.ID}, &ac)
	if ac.Kind != loaxa.EmergencyAllClear || ac.Follows != em.ID || ac.Repeat != 1 || len(ac.Targets) != 1 || ac.Targets[0] != "12346" {
		t.Errorf("all-clear: %s", rig.Describe(ac))
	}
	rig.Eventually(t, 20*time.Second, "all-clear completed on both nodes", func() bool { return report(c, ac.ID).Summary.Completed == 2 })
	if got := report(c, em.ID).AllClear; got != ac.ID {
		t.Errorf("emergency names all-clear %q, want %q", got, ac.ID)
	}
	if counts := rig.CountEvents(c.Events(url.Values{"node": {"b1"}}), ac.Occurrence); len(counts) != 0 {
		t.Errorf("b1 outside the area got the all-clear: %v", counts)
	}
}

// TestEmergencyOfflineNodeGetsNothingStale: a node that is off during an
// emergency shows as offline; when it comes back after the expiry, the
// controller does not resend it and the node plays nothing of it. A new
// emergency reaches it as usual.
func TestEmergencyOfflineNodeGetsNothingStale(t *testing.T) {
	t.Parallel()
	c, _ := emergencyFleet(t)
	dir := t.TempDir()
	creds := c.CreateNode("a3", "12346")
	a3 := rig.StartNode(t, creds, rig.NodeOptions{Dir: dir})
	rig.Eventually(t, 15*time.Second, "a3 online", func() bool { return c.Node("a3").Status.State == loaxa.NodeOnline })
	a3.Stop(t)
	rig.Eventually(t, 15*time.Second, "a3 offline", func() bool { return c.Node("a3").Status.State == loaxa.NodeOffline })

	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	expires := time.Now().Add(8 * time.Second)
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "expires": expires.Format(time.RFC3339Nano)}, &em)
	if s := report(c, em.ID).Summary; s.Targeted != 3 || s.Offline != 1 {
		t.Errorf("summary with a3 off: %+v, want 3 targeted, 1 offline", s)
	}
	rig.Eventually(t, 15*time.Second, "a1 and a2 completed", func() bool { return report(c, em.ID).Summary.Completed == 2 })

	time.Sleep(time.Until(expires)) // the point of the test is the expiry passing
	a3 = rig.StartNode(t, creds, rig.NodeOptions{Dir: dir})
	rig.Eventually(t, 15*time.Second, "a3 back online", func() bool { return c.Node("a3").Status.State == loaxa.NodeOnline })
	// A later emergency reaches a3: anything stale sent before it would
	// have been reported before it.
	var next loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "repeat": 1}, &next)
	rig.Eventually(t, 15*time.Second, "a3 completed the new emergency", func() bool {
		for _, n := range report(c, next.ID).Nodes {
			if n.Node == "a3" {
				return n.State == "completed"
			}
		}
		return false
	})
	a3.Acknowledged(t, 10*time.Second)
	if got := rig.CountEvents(c.Events(url.Values{"node": {"a3"}}), em.Occurrence); len(got) != 0 {
		t.Errorf("a3 reported the expired emergency: %v", got)
	}
	for _, n := range report(c, em.ID).Nodes {
		if n.Node == "a3" && (n.State != "missed" || n.Reason != loaxa.ReasonNotReached || n.Resends != 0) {
			t.Errorf("a3 in the expired emergency: %+v", n)
		}
	}
}

// TestEmergencyPermissions: a commune officer may alert their own commune
// and not the sibling one; a viewer may alert none; bad requests get
// clear errors; the audit log says who sent the drill.
func TestEmergencyPermissions(t *testing.T) {
	t.Parallel()
	c, _ := emergencyFleet(t)
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "xa-a", "password": "mat-khau-xa-a-dai", "role": "commune", "area": "12346"}, nil)
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "xem", "password": "mat-khau-xem-dai", "role": "viewer", "area": "12346"}, nil)
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	admin := c.Token
	as := func(user, password string) {
		c.Token = ""
		var tok struct{ Token string }
		c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": user, "password": password}, &tok)
		c.Token = tok.Token
	}
	send := func(body map[string]any) (int, string) {
		status, raw := c.Do("POST", "/api/v1/emergency", body, nil)
		return status, string(raw)
	}
	as("xa-a", "mat-khau-xa-a-dai")
	if status, raw := send(map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}}); status != http.StatusForbidden {
		t.Errorf("commune A officer alerting commune B: %d %s", status, raw)
	}
	if status, raw := send(map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "drill": true, "volume": 3}); status != http.StatusCreated {
		t.Errorf("commune A officer alerting commune A: %d %s", status, raw)
	}
	as("xem", "mat-khau-xem-dai")
	if status, raw := send(map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}}); status != http.StatusForbidden {
		t.Errorf("viewer alerting: %d %s", status, raw)
	}
	c.Token = admin
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"content_id": alarm.ID, "targets": []string{"99999"}}, "99999"},
		{map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "volume": 16}, "volume"},
		{map[string]any{"content_id": alarm.ID, "targets": []string{}}, "targets"},
		{map[string]any{"content_id": alarm.ID, "text": "Bão", "targets": []string{"12346"}}, "not both"},
		{map[string]any{"targets": []string{"12346"}}, "content_id"},
		{map[string]any{"content_id": alarm.ID, "targets": map[string][]string{"nodes": {"a1"}}}, "whole areas"},
	} {
		if status, raw := send(tc.body); status != http.StatusBadRequest || !strings.Contains(raw, tc.want) {
			t.Errorf("%v: %d %s, want 400 naming %q", tc.body, status, raw, tc.want)
		}
	}
	var audit struct{ Entries []loaxa.AuditEntry }
	c.MustDo("GET", "/api/v1/audit", nil, &audit)
	found := false
	for _, e := range audit.Entries {
		if e.Action == "emergency.send" && e.Actor == "xa-a" && strings.Contains(e.Detail, "drill=true") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry of xa-a's drill: %s", rig.Describe(audit))
	}
}
