package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// TestMovedClusterHearsItsNewCommune: a cluster, once enrolled, could not
// be moved to another commune at all. Moved (PATCH /api/v1/nodes/{id})
// from commune A to its neighbour B while B's alert is on air, cluster
// a1 is sent that alert and plays it; its desired state names B's chain
// and B's bulletin instead of A's; an alert to A then sounds on a2 and
// not on a1, and one to B sounds on a1 from B's area publish. Run on the
// embedded broker, which regrants the node's connection at once.
func TestMovedClusterHearsItsNewCommune(t *testing.T) {
	t.Parallel()
	c, nodes, logs := emergencyFleetOn(t, nil)
	testMovedCluster(t, c, nodes, logs, nil)
}

// TestMovedClusterHearsItsNewCommuneMosquitto is the same through a real
// Mosquitto installed from the files the controller exports: the answer
// to the move says to export them again; once the operator has installed
// them and reloaded Mosquitto, the cluster hears its new commune's area
// publishes.
func TestMovedClusterHearsItsNewCommuneMosquitto(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c, nodes, logs := emergencyFleetOn(t, m)
	testMovedCluster(t, c, nodes, logs, m)
}

func testMovedCluster(t *testing.T, c *rig.Controller, nodes map[string]*rig.Node, logs map[string]*nodeLog, m *rig.Mosquitto) {
	// A bulletin for each commune, far enough ahead to be planned only.
	news := c.Upload("thoi-su.wav", rig.ToneWAV(440, 2*time.Second, 16000, 1))
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	annA := c.Announce(news.ID, []string{"12346"}, nil, start)
	annB := c.Announce(news.ID, []string{"12347"}, nil, start.Add(time.Minute))
	occA, occB := loaxa.OccurrenceID(annA.ID, start), loaxa.OccurrenceID(annB.ID, start.Add(time.Minute))
	desired := func() *protocol.DesiredState {
		var d loaxa.Desired
		if status, _ := c.Do("GET", "/api/v1/nodes/a1/desired", nil, &d); status != 200 {
			return nil // not compiled yet
		}
		return d.State
	}
	plans := func(d *protocol.DesiredState, occ string) bool {
		return d != nil && slices.ContainsFunc(d.Occurrences, func(o protocol.Occurrence) bool { return o.ID == occ })
	}
	rig.Eventually(t, 20*time.Second, "a1 plans commune A's bulletin", func() bool { return plans(desired(), occA) })
	for _, n := range nodes {
		c.AwaitKept(n, 30*time.Second)
	}

	// Commune B's alert goes on air while a1 is still A's.
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 8*time.Second, 16000, 1))
	var onAir loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &onAir)
	rig.Eventually(t, 10*time.Second, "b1 plays B's alert", func() bool { return playing(nodes["b1"]) == onAir.Occurrence })

	var moved struct {
		Node   loaxa.Node `json:"node"`
		Notice string     `json:"notice"`
	}
	c.MustDo("PATCH", "/api/v1/nodes/a1", map[string]any{"area": "12347", "name": "Cụm loa chợ Đôi (chuyển sang Tiên Minh)"}, &moved)
	if moved.Node.Area != "12347" || (m != nil) != (moved.Notice != "") {
		t.Errorf("the move answered %s", rig.Describe(moved))
	}
	if m != nil {
		// What the operator does (docs/deploy.md): export the files again,
		// install them, reload Mosquitto. Until then Mosquitto delivers
		// the cluster nothing of its new commune's topics (it grants the
		// subscription and filters the deliveries, so the cluster cannot
		// tell); the alert on air still reaches it on its own topic.
		var files struct{ Files map[string]string }
		c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
		m.SetAuth(files.Files["loaxa.passwd"], files.Files["loaxa.acl"])
	}
	rig.Eventually(t, 30*time.Second, "a1 plays B's alert on air", func() bool { return playing(nodes["a1"]) == onAir.Occurrence })
	rig.Eventually(t, 30*time.Second, "a1 hears every area of its new chain", func() bool {
		st := c.Node("a1").Status
		return len(st.AreasUnheard) == 0 && st.State == loaxa.NodeOnline
	})
	// The scheduler compiles a1's desired state for its new chain on its
	// next pass, after the move's answer: what a1 hears and plays above
	// does not wait for it.
	var d *protocol.DesiredState
	rig.Eventually(t, 30*time.Second, "a1's desired state names B's chain", func() bool {
		d = desired()
		return d != nil && slices.Equal(d.Areas, []string{"12347", "318", "31"})
	})
	if !plans(d, occB) || plans(d, occA) {
		t.Errorf("a1's desired state for B's chain plans B's bulletin %v, A's %v; want B's only", plans(d, occB), plans(d, occA))
	}
	rig.Eventually(t, 20*time.Second, "a1 runs its new desired state", func() bool {
		return nodes["a1"].Agent.Status().DesiredVersion >= d.Version
	})
	// Seen once in about 60 runs under load, not reproduced: this wait
	// gave up with a1 playing the alert. Should it again, the report and
	// a1's events say which node did not complete, and how it ended.
	var last *loaxa.EmergencyReport
	t.Cleanup(func() {
		if t.Failed() && last != nil {
			t.Logf("B's alert when the test failed: %s; nodes %s", rig.Describe(last.Summary), rig.Describe(last.Nodes))
			t.Logf("a1's events: %s", rig.Describe(c.Events(url.Values{"node": {"a1"}})))
		}
	})
	rig.Eventually(t, 30*time.Second, "B's alert completed on b1 and a1", func() bool {
		last = report(c, onAir.ID)
		return last.Summary.Completed == 2
	})
	if rep := report(c, onAir.ID); rep.Summary.Targeted != 2 {
		t.Errorf("B's alert after a1 moved in: %s; want a1 targeted too", rig.Describe(rep.Summary))
	}

	// An alert to A sounds on a2, not on a1; then one to B on a1, from
	// B's area publish. The controller publishes both in order, so once
	// a1 has B's, A's would have reached it before.
	var toA, toB loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12346"}, "drill": true}, &toA)
	rig.Eventually(t, 10*time.Second, "a2 plays A's alert", func() bool { return playing(nodes["a2"]) == toA.Occurrence })
	if toA.Areas[0].Nodes != 1 {
		t.Errorf("A's alert targets %d clusters, want a2 alone", toA.Areas[0].Nodes)
	}
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &toB)
	rig.Eventually(t, 10*time.Second, "a1 plays B's second alert", func() bool { return playing(nodes["a1"]) == toB.Occurrence })
	if got := logs["a1"].count(`occurrence=` + toB.Occurrence + ` to=area/12347 `); got != 1 {
		t.Errorf("a1 took B's second alert from B's area publish %d times, want once", got)
	}
	if got := logs["a1"].count(toA.Occurrence); got != 0 {
		t.Errorf("a1, moved out of A, heard A's alert (%d log lines)", got)
	}
	if counts := rig.CountEvents(c.Events(url.Values{"node": {"a1"}}), toA.Occurrence); len(counts) != 0 {
		t.Errorf("a1, moved out of A, reported A's alert: %v", counts)
	}
	// The planned deliveries follow: B's bulletin is a1's, A's no longer.
	has := func(ann, node string) bool {
		return slices.ContainsFunc(c.Deliveries(ann), func(d *loaxa.Delivery) bool { return d.Node == node })
	}
	if has(annA.ID, "a1") || !has(annB.ID, "a1") {
		t.Errorf("deliveries after the move: a1 in A's bulletin %v, in B's %v; want B's only", has(annA.ID, "a1"), has(annB.ID, "a1"))
	}
}

// TestMovedClusterFollowsTheLiveCalls: cluster a1 is moved from Tiên
// Thắng to Tiên Minh while an officer of each commune speaks live to it.
// Before, a1 went on holding its old commune's call, suspended, frames
// no longer reaching it, until that call's end, which it did not hear
// either; and it never played Tiên Minh's call (the start had gone to
// Tiên Minh before a1 belonged there, so it ignored every frame). Through
// the real controller, broker and agents: the old commune's call ends on
// a1 at the move, and a1 plays the new commune's call from the frames
// that come, to its end with b1.
func TestMovedClusterFollowsTheLiveCalls(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	tienLang(c)
	heard := &soundingOutput{None: audio.NewNone(nil)} // what a1 sounds
	a1 := rig.StartNode(t, c.CreateNode("a1", "12346"), rig.NodeOptions{Output: heard})
	b1 := rig.StartNode(t, c.CreateNode("b1", "12347"), rig.NodeOptions{})
	for _, id := range []string{"a1", "b1"} {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	speakers := map[string]*rig.Controller{
		"12346": signInAs(t, c, "can-bo-tien-thang", loaxa.RoleCommune, "12346"),
		"12347": signInAs(t, c, "can-bo-tien-minh", loaxa.RoleCommune, "12347"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ids, streamed := map[string]string{}, map[string]chan error{}
	for _, area := range []string{"12346", "12347"} {
		call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speakers[area].Token, Areas: []string{area}, Title: "Họp dân " + area})
		if err != nil {
			t.Fatal(err)
		}
		// Its own channel: the goroutine must not read the map this loop
		// writes.
		done := make(chan error, 1)
		streamed[area] = done
		go func() { done <- call.Stream(ctx, bytes.NewReader(voicePCM(60*time.Second))) }()
		ids[area] = callOnAir(t, speakers[area])
	}
	rig.Eventually(t, 10*time.Second, "a1 plays its commune's call", func() bool { return playing(a1) == ids["12346"] })
	rig.Eventually(t, 10*time.Second, "b1 plays its commune's call", func() bool { return playing(b1) == ids["12347"] })
	// And a1 sounds its call's frames: playing it says only that its start
	// came. Moved while it still waited for a first frame past the frame
	// timeout (2 s, on a busy machine), a1 would end the call failed for
	// want of frames, not cut by the move.
	rig.Eventually(t, 20*time.Second, "a1 sounds its commune's call", func() bool { return heard.Samples() > 0 })

	c.MustDo("PATCH", "/api/v1/nodes/a1", map[string]any{"area": "12347"}, nil)
	node := func(rep *loaxa.LiveCallReport, id string) loaxa.LiveNode {
		for _, n := range rep.Nodes {
			if n.Node == id {
				return n
			}
		}
		return loaxa.LiveNode{}
	}
	rig.Eventually(t, 20*time.Second, "a1 plays its new commune's call", func() bool { return playing(a1) == ids["12347"] })
	rig.Eventually(t, 10*time.Second, "its old commune's call over on a1", func() bool {
		return loaxa.DeliveryState(node(liveReport(c, ids["12346"]), "a1").State).Terminal()
	})
	if n := node(liveReport(c, ids["12346"]), "a1"); n.Reason != protocol.ReasonCut {
		t.Errorf("a1's delivery of its old commune's call %+v; want it ended as cut at the move", n)
	}
	// Its old call is over on a1: what a1 sounds from now on is Tiên
	// Minh's call, from its frames, which come once a1 runs the desired
	// state of its new chain and so hears Tiên Minh's live topic. Until
	// then a1 plays the call from its start with nothing to sound (and,
	// after the frame timeout, holds it suspended): the call's being on
	// the air on a1 does not say the frames reach it.
	before := heard.Samples()
	rig.Eventually(t, 30*time.Second, "a1 sounds half a second of its new commune's call", func() bool {
		return heard.Samples() >= before+nodeaudio.SampleRate/2
	})
	if playing(a1) != ids["12347"] {
		t.Errorf("a1 plays %q, want its new commune's call", playing(a1))
	}
	var d loaxa.Desired
	c.MustDo("GET", "/api/v1/nodes/a1/desired", nil, &d)
	if d.State == nil || !slices.Contains(d.State.Areas, "12347") {
		t.Errorf("a1's desired state %+v; want its new chain's", d.State)
	}

	for _, area := range []string{"12346", "12347"} {
		speakers[area].MustDo("POST", "/api/v1/live/calls/"+ids[area]+"/cut", nil, nil)
		if err := <-streamed[area]; !errors.Is(err, liveclient.ErrEnded) {
			t.Errorf("the stream of %s's call after the cut: %v, want ErrEnded", area, err)
		}
	}
	rig.Eventually(t, 20*time.Second, "the new commune's call completed on b1 and a1", func() bool {
		return liveReport(c, ids["12347"]).Summary.Completed == 2
	})
	if n := node(liveReport(c, ids["12347"]), "a1"); n.Area != "12347" || n.FramesPlayed == 0 {
		t.Errorf("a1 in its new commune's call: %+v; want it under 12347, frames played", n)
	}
}

// soundingOutput plays in real time like audio.None and counts the
// samples it was given that are not silent: a live call's frames, not the
// silence of a call held with no frames yet.
type soundingOutput struct {
	*audio.None
	n atomic.Int64
}

func (o *soundingOutput) Play(ctx context.Context, pcm io.Reader) error {
	return o.None.Play(ctx, readFunc(func(p []byte) (int, error) {
		n, err := pcm.Read(p)
		for i := 0; i+1 < n; i += 2 {
			if binary.LittleEndian.Uint16(p[i:]) != 0 {
				o.n.Add(1)
			}
		}
		return n, err
	}))
}

// Samples returns how many samples that are not silent o has played.
func (o *soundingOutput) Samples() int64 { return o.n.Load() }

// TestClusterMovedOfflineHearsItsNewCommuneAfterARestart: a cluster is
// taken down in Tiên Thắng while Tiên Minh's alert is on air, moved to
// Tiên Minh (PATCH /api/v1/nodes/{id}), and the controller restarts (an
// upgrade) before the cluster is up again there. Before, the restarted
// controller took it for none of the alert's (under Tiên Minh with no
// delivery, enrolled before the alert), and the cluster, up again, never
// played it. Through the real controller, broker and agent: once up, a1
// plays Tiên Minh's alert and is counted there, runs its new chain's
// desired state and hears every area of it from the restarted broker.
func TestClusterMovedOfflineHearsItsNewCommuneAfterARestart(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	tienLang(c)
	creds := map[string]*protocol.Credentials{"a1": c.CreateNode("a1", "12346"), "b1": c.CreateNode("b1", "12347")}
	a1dir := t.TempDir()
	a1 := rig.StartNode(t, creds["a1"], rig.NodeOptions{Dir: a1dir, Tune: quickReconnect})
	b1 := rig.StartNode(t, creds["b1"], rig.NodeOptions{Tune: quickReconnect})
	for _, id := range []string{"a1", "b1"} {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	a1.Stop(t)
	rig.Eventually(t, 15*time.Second, "a1 offline", func() bool { return c.Node("a1").Status.State == loaxa.NodeOffline })

	// Long enough to be on air still once a1 is up again.
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 40*time.Second, 16000, 1))
	var onAir loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &onAir)
	rig.Eventually(t, 10*time.Second, "b1 plays Tiên Minh's alert", func() bool { return playing(b1) == onAir.Occurrence })
	c.MustDo("PATCH", "/api/v1/nodes/a1", map[string]any{"area": "12347"}, nil)

	c = c.Restart()
	a1 = rig.StartNode(t, creds["a1"], rig.NodeOptions{Dir: a1dir, Tune: quickReconnect})
	rig.Eventually(t, 30*time.Second, "a1, up again in Tiên Minh, plays its alert", func() bool { return playing(a1) == onAir.Occurrence })
	_, ns := reportNodes(c, onAir.ID)
	if n, ok := ns["a1"]; !ok || n.Area != "12347" {
		t.Errorf("Tiên Minh's alert after the restart: a1 %+v (%v); want it counted under 12347", n, ok)
	}
	rig.Eventually(t, 30*time.Second, "a1 runs its new chain and hears every area of it", func() bool {
		var d loaxa.Desired
		if status, _ := c.Do("GET", "/api/v1/nodes/a1/desired", nil, &d); status != 200 || d.State == nil {
			return false
		}
		st := c.Node("a1").Status
		return slices.Equal(d.State.Areas, []string{"12347", "318", "31"}) && a1.Agent.Status().DesiredVersion >= d.State.Version &&
			st.State == loaxa.NodeOnline && len(st.AreasUnheard) == 0 && len(a1.Agent.Status().AreasUnheard) == 0
	})
}

// TestClusterPutUpAfterAnAlertAndMovedOfflineHearsItAfterARestart: a
// cluster is created in Tiên Thắng after Tiên Minh's alert went out,
// moved to Tiên Minh before its board is up, and the controller restarts.
// Before, the restarted controller took it for a pole put up after the
// alert (created after its issue) and dropped it, though the running
// controller had followed it as one moved in: up in Tiên Minh under the
// alert, it never played it. Through the real controller, broker and
// agent: once up, c1 plays Tiên Minh's alert and is counted there.
func TestClusterPutUpAfterAnAlertAndMovedOfflineHearsItAfterARestart(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	tienLang(c)
	b1 := rig.StartNode(t, c.CreateNode("b1", "12347"), rig.NodeOptions{Tune: quickReconnect})
	rig.Eventually(t, 15*time.Second, "b1 online", func() bool { return c.Node("b1").Status.State == loaxa.NodeOnline })

	// Long enough to be on air still once c1 is up.
	alarm := c.Upload("bao-dong.wav", rig.ToneWAV(880, 40*time.Second, 16000, 1))
	var onAir loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": alarm.ID, "targets": []string{"12347"}, "drill": true}, &onAir)
	rig.Eventually(t, 10*time.Second, "b1 plays Tiên Minh's alert", func() bool { return playing(b1) == onAir.Occurrence })
	c1creds := c.CreateNode("c1", "12346")
	c.MustDo("PATCH", "/api/v1/nodes/c1", map[string]any{"area": "12347"}, nil)

	c = c.Restart()
	c1 := rig.StartNode(t, c1creds, rig.NodeOptions{Tune: quickReconnect})
	rig.Eventually(t, 30*time.Second, "c1, up in Tiên Minh, plays its alert", func() bool { return playing(c1) == onAir.Occurrence })
	_, ns := reportNodes(c, onAir.ID)
	if n, ok := ns["c1"]; !ok || n.Area != "12347" {
		t.Errorf("Tiên Minh's alert after the restart: c1 %+v (%v); want it counted under 12347", n, ok)
	}
}
