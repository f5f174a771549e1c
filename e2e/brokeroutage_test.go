package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/clock"
)

// TestEmergencyAcrossAMosquittoOutage: the province's Mosquitto goes down
// on the day of an alert. An alert that is sounding when the broker
// restarts sounds on to its end (the nodes play what they have without the
// link), and their reports of it reach the controller once they are back.
// An alert sent while the broker is down is answered 503 at once, saying
// the controller is not connected and what happens next; it is kept, and
// reaches every node of its area once the broker is back, and no node
// outside it.
func TestEmergencyAcrossAMosquittoOutage(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c, nodes, _ := emergencyFleetOn(t, m)
	// Long enough (about 20 s with the chimes) to be sounding still when
	// the restart returns, however slow the machine.
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 8*time.Second, 16000, 1))

	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "repeat": 2}, &em)
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 10*time.Second, id+" plays the emergency", func() bool { return playing(nodes[id]) == em.Occurrence })
	}
	m.Restart()
	for _, id := range []string{"a1", "a2"} {
		if p := playing(nodes[id]); p != em.Occurrence {
			t.Errorf("%s plays %q right after the broker restarted, want the emergency %s", id, p, em.Occurrence)
		}
	}
	rig.Eventually(t, 60*time.Second, "both nodes' reports of the emergency completed, after the restart", func() bool {
		return report(c, em.ID).Summary.Completed == 2
	})
	if rep := report(c, em.ID); rep.Summary.Failed != 0 {
		t.Errorf("after the restart: %s", rig.Describe(rep.Summary))
	}

	m.Stop()
	rig.Eventually(t, 30*time.Second, "the controller sees the broker down", func() bool {
		var h struct{ Checks map[string]struct{ OK bool } }
		c.Do("GET", "/api/v1/health", nil, &h)
		return !h.Checks["broker"].OK
	})
	// Played once, not the default three times: what counts is that it
	// reaches the area once the broker is back, not how long it sounds.
	status, raw := c.Do("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "title": "Vỡ đê Tiên Lãng", "repeat": 1}, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(raw), "not connected to the broker") ||
		!strings.Contains(string(raw), "retried") || !strings.Contains(string(raw), "check the broker") {
		t.Fatalf("an alert sent while the broker is down: %d %s; want 503 saying the controller is not connected and the nodes are retried", status, raw)
	}
	// The answer carries the emergency kept, for the console to open its
	// board rather than invite a second send.
	var answer struct{ Emergency *loaxa.Emergency }
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Emergency == nil {
		t.Fatalf("the 503 does not carry the emergency kept: %v %s", err, raw)
	}
	down := answer.Emergency
	var list struct{ Emergencies []*loaxa.Emergency }
	c.MustDo("GET", "/api/v1/emergency", nil, &list)
	if len(list.Emergencies) != 2 || list.Emergencies[0].ID != down.ID || list.Emergencies[0].State != loaxa.EmergencyActive || down.Title != "Vỡ đê Tiên Lãng" {
		t.Fatalf("the alert sent while the broker was down (%s) is not kept active: %s", rig.Describe(down), rig.Describe(list))
	}
	if s := report(c, down.ID).Summary; s.Reached != 0 {
		t.Errorf("reached %d nodes with the broker down", s.Reached)
	}

	m.Restart()
	for _, id := range []string{"a1", "a2"} {
		rig.Eventually(t, 60*time.Second, id+" plays the alert sent while the broker was down", func() bool {
			return playing(nodes[id]) == down.Occurrence
		})
	}
	rig.Eventually(t, 60*time.Second, "both nodes reported it completed", func() bool {
		return report(c, down.ID).Summary.Completed == 2
	})
	if counts := rig.CountEvents(c.Events(nil), down.Occurrence); counts["b1"] != nil {
		t.Errorf("b1, outside the area, played it: %v", counts["b1"])
	}
}

// TestScheduleAfterMosquittoLostItsRetained: a bulletin is scheduled while
// a cluster is off, and the province's Mosquitto then restarts without the
// retained desired states (no persistence, or a crash before it saved
// them). The cluster comes back running its old schedule; the controller
// sees it run an older version than the broker had accepted and publishes
// the newest again, so the cluster gets the bulletin without anyone
// changing the schedule.
func TestScheduleAfterMosquittoLostItsRetained(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c := rig.StartControllerWith(t, rig.ControllerOptions{Broker: m.ControllerBroker(), Configure: func(cfg *app.Config) {
		cfg.DesiredBehindAfter = 2 * time.Second
		// The scheduler finds the node behind on its next pass: every
		// second rather than every 30 s.
		cfg.ScheduleInterval = time.Second
	}})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	m.Install(t, c, cr)
	dir := t.TempDir()
	n := rig.StartNode(t, cr, rig.NodeOptions{Dir: dir, Tune: quickStates})
	status := func() loaxa.NodeStatus { return c.Node("tt-01").Status }
	rig.Eventually(t, 30*time.Second, "the node runs its first desired state", func() bool {
		st := status()
		return st.State == loaxa.NodeOnline && st.DesiredVersion > 0 && st.RunningVersion == st.DesiredVersion
	})
	before := status().RunningVersion
	n.Stop(t)

	news := c.Upload("thoi-su.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	ann := c.Announce(news.ID, []string{"12346"}, nil, time.Now().Add(time.Hour))
	var desired struct {
		Published time.Time
		State     struct{ Version uint64 }
	}
	rig.Eventually(t, 30*time.Second, "the broker accepted the new desired state", func() bool {
		c.MustDo("GET", "/api/v1/nodes/tt-01/desired", nil, &desired)
		return desired.State.Version > before && !desired.Published.IsZero()
	})
	m.Restart() // the retained desired states are gone
	rig.Eventually(t, 30*time.Second, "the controller reconnected", c.App.MQTT.Connected)

	rig.StartNode(t, cr, rig.NodeOptions{Dir: dir, Tune: quickStates})
	// The scheduler looks every second, once the node has been online for
	// DesiredBehindAfter. The limit is for a hang.
	rig.Eventually(t, 90*time.Second, "the node runs the newest desired state", func() bool {
		st := status()
		return st.State == loaxa.NodeOnline && st.RunningVersion == desired.State.Version
	})
	if c.App.Scheduler.Republished() == 0 {
		t.Error("the scheduler did not count the desired state it published again")
	}
	occ := loaxa.OccurrenceID(ann.ID, ann.Start)
	for _, d := range c.Deliveries(ann.ID) {
		if d.Node == "tt-01" && d.Occurrence == occ {
			return
		}
	}
	t.Errorf("no delivery of %s for tt-01", occ)
}

// TestLiveCallWhenMosquittoStops: the province's Mosquitto stops during a
// live call. The speaker is told within seconds that the call ended for
// the broker (not left speaking to nobody), the record says so, and the
// node releases its amplifier on its frame timeout.
func TestLiveCallWhenMosquittoStops(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c := rig.StartController(t, m.ControllerBroker())
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	amp, err := board.New(clock.Real{}, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cr := c.CreateNode("a1", "12346")
	m.Install(t, c, cr)
	a1 := rig.StartNode(t, cr, rig.NodeOptions{Board: amp})
	rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: c.Token, Areas: []string{"12346"}, Title: "Thông báo của xã"})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(voicePCM(40*time.Second))) }()
	var id string
	rig.Eventually(t, 10*time.Second, "a1 plays the call with its amplifier on", func() bool {
		id = playing(a1)
		return strings.HasPrefix(id, "live-") && amp.Amplifier()
	})

	m.Stop()
	select {
	case err := <-streamed:
		if !errors.Is(err, liveclient.ErrEnded) {
			t.Fatalf("the speaker's stream after the broker stopped: %v, want ErrEnded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the speaker was not told within 20 s that the broker is gone; the call would go on to nobody")
	}
	if st, err := call.End(ctx); err != nil || st.Reason != loaxa.LiveEndBroker {
		t.Errorf("speaker's last status %+v, %v; want %q", st, err, loaxa.LiveEndBroker)
	}
	if rec := liveReport(c, id); rec.EndReason != loaxa.LiveEndBroker || rec.Active() {
		t.Errorf("record %+v, want ended %q", rec.LiveCall, loaxa.LiveEndBroker)
	}
	rig.Eventually(t, 10*time.Second, "a1 off the air, amplifier released", func() bool {
		return playing(a1) == "" && !amp.Amplifier()
	})
	// Back, so that the controller closes connected: paho's Disconnect
	// of a client still trying to reconnect leaves a goroutine waiting
	// for that attempt, after the test (goleak).
	m.Restart()
	rig.Eventually(t, 30*time.Second, "the controller reconnected", c.App.MQTT.Connected)
}
