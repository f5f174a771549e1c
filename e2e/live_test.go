package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// voicePCM is d of a 300 Hz tone as the live WebSocket takes it.
func voicePCM(d time.Duration) []byte {
	n := int(d.Seconds() * nodeaudio.SampleRate)
	b := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*300*float64(i)/nodeaudio.SampleRate))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// signInAs creates user name with role at area and returns a client of the
// controller signed in as them.
func signInAs(t *testing.T, c *rig.Controller, name string, role loaxa.Role, area string) *rig.Controller {
	t.Helper()
	const password = "mật khẩu của cán bộ 2026"
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": name, "password": password, "role": string(role), "area": area}, nil)
	u := *c
	u.Token = ""
	var tok struct{ Token string }
	u.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": name, "password": password}, &tok)
	u.Token = tok.Token
	return &u
}

// callOnAir waits for the one live call on air that speaker sees and
// returns its id.
func callOnAir(t *testing.T, speaker *rig.Controller) string {
	t.Helper()
	var id string
	rig.Eventually(t, 10*time.Second, "the call on air", func() bool {
		var out struct{ Calls []*loaxa.LiveCall }
		speaker.MustDo("GET", "/api/v1/live/calls?active=true", nil, &out)
		if len(out.Calls) == 1 {
			id = out.Calls[0].ID
		}
		return id != ""
	})
	return id
}

func liveReport(c *rig.Controller, id string) *loaxa.LiveCallReport {
	var rep loaxa.LiveCallReport
	c.MustDo("GET", "/api/v1/live/calls/"+id, nil, &rep)
	return &rep
}

// TestLiveCallRecordsAndCut: a call is listed on air while it runs and
// plays on its area's node with the amplifier on; an officer of the
// commune cuts it, which ends it on the speaker's side, on the node (its
// delivery completes as cut, the amplifier is released) and in the record
// (who cut it). A call that the speaker ends shows every node completed,
// with the frames each played.
func TestLiveCallRecordsAndCut(t *testing.T) {
	t.Parallel()
	testLiveCall(t, nil)
}

// TestLiveCallRecordsAndCutMosquitto is the same through a real Mosquitto
// installed as a province installs it: each node may read only its own
// topics and its areas' (their live topics among them).
func TestLiveCallRecordsAndCutMosquitto(t *testing.T) {
	t.Parallel()
	testLiveCall(t, rig.StartMosquitto(t, 0))
}

// testLiveCall runs the live call tests on broker m (nil: the embedded
// one).
func testLiveCall(t *testing.T, m *rig.Mosquitto) {
	c := rig.StartController(t, m.ControllerBroker())
	tienLang(c)
	amp, err := board.New(clock.Real{}, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a1Creds, b1Creds := c.CreateNode("a1", "12346"), c.CreateNode("b1", "12347")
	m.Install(t, c, b1Creds)
	a1 := rig.StartNode(t, a1Creds, rig.NodeOptions{Board: amp})
	b1 := rig.StartNode(t, b1Creds, rig.NodeOptions{})
	for _, id := range []string{"a1", "b1"} {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}
	speaker := signInAs(t, c, "can-bo-phat", loaxa.RoleCommune, "12346")
	officer := signInAs(t, c, "can-bo-truc", loaxa.RoleCommune, "12346")
	neighbour := signInAs(t, c, "can-bo-ben", loaxa.RoleCommune, "12347")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sent atomic.Int64 // samples
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speaker.Token, Areas: []string{"12346"}, Title: "Thông báo khẩn của xã",
		OnSend: func(n int) { sent.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(voicePCM(30*time.Second))) }()

	var onAir []*loaxa.LiveCall
	rig.Eventually(t, 10*time.Second, "the call listed on air", func() bool {
		var out struct{ Calls []*loaxa.LiveCall }
		officer.MustDo("GET", "/api/v1/live/calls?active=true", nil, &out)
		onAir = out.Calls
		return len(out.Calls) == 1
	})
	id := onAir[0].ID
	if onAir[0].CreatedBy != "can-bo-phat" || onAir[0].Nodes != 1 {
		t.Errorf("call on air %+v, want can-bo-phat's to 1 node", onAir[0])
	}
	rig.Eventually(t, 10*time.Second, "a1 plays the call with its amplifier on", func() bool {
		return playing(a1) == id && amp.Amplifier()
	})
	rig.Eventually(t, 10*time.Second, "a1's delivery started", func() bool {
		rep := liveReport(officer, id)
		return len(rep.Nodes) == 1 && rep.Nodes[0].State == string(loaxa.DeliveryStarted) && rep.Summary.Sounding == 1
	})
	if playing(b1) != "" {
		t.Errorf("b1, in the sibling commune, plays %s", playing(b1))
	}
	// Cut once the node has had time to play part of the call: a second
	// and a half sent, against its 200 ms buffer.
	rig.Eventually(t, 10*time.Second, "1.5 s of the call sent", func() bool { return sent.Load() >= 3*nodeaudio.SampleRate/2 })
	// The neighbouring commune may not cut it.
	if status, body := neighbour.Do("POST", "/api/v1/live/calls/"+id+"/cut", nil, nil); status != http.StatusForbidden {
		t.Errorf("cut by the neighbouring commune: %d %s, want 403", status, body)
	}

	var cut loaxa.LiveCall
	officer.MustDo("POST", "/api/v1/live/calls/"+id+"/cut", nil, &cut)
	if cut.EndReason != loaxa.LiveEndCut || cut.CutBy != "can-bo-truc" || cut.Active() || cut.FramesSent == 0 {
		t.Errorf("cut call %+v", cut)
	}
	if err := <-streamed; !errors.Is(err, liveclient.ErrEnded) {
		t.Errorf("the speaker's stream after the cut: %v, want ErrEnded", err)
	}
	if st, err := call.End(ctx); err != nil || st.Reason != loaxa.LiveEndCut || st.CutBy != "can-bo-truc" {
		t.Errorf("speaker's last status %+v, %v; want cut by can-bo-truc", st, err)
	}
	rig.Eventually(t, 10*time.Second, "a1 off the air, amplifier released", func() bool {
		return playing(a1) == "" && !amp.Amplifier()
	})
	rig.Eventually(t, 15*time.Second, "a1's delivery ended as cut", func() bool {
		n := liveReport(c, id).Nodes[0]
		return n.State == string(loaxa.DeliveryCompleted)
	})
	rep := liveReport(c, id)
	if n := rep.Nodes[0]; n.Reason != protocol.ReasonCut || n.FramesPlayed == 0 || n.Node != "a1" {
		t.Errorf("a1 after the cut %+v, want completed (cut) with frames played", n)
	}
	if rep.EndReason != loaxa.LiveEndCut || rep.CutBy != "can-bo-truc" {
		t.Errorf("record %+v", rep.LiveCall)
	}
	if status, body := officer.Do("POST", "/api/v1/live/calls/"+id+"/cut", nil, nil); status != http.StatusConflict || !strings.Contains(string(body), "is over") {
		t.Errorf("cutting it again: %d %s, want 409", status, body)
	}

	// A call to the district that the speaker ends: both nodes play it to
	// the end.
	district := signInAs(t, c, "huyen", loaxa.RoleDistrict, "318")
	call, err = liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: district.Token, Areas: []string{"318"}})
	if err != nil {
		t.Fatal(err)
	}
	const frames = 34 // 2 s of 60 ms frames
	if err := call.Stream(ctx, bytes.NewReader(voicePCM(frames*nodeaudio.NarrowFrameWide*time.Second/nodeaudio.SampleRate))); err != nil {
		t.Fatal(err)
	}
	st, err := call.End(ctx)
	if err != nil || st.Reason != loaxa.LiveEndSpeakerStopped || st.Frames != frames {
		t.Fatalf("end %+v, %v; want speaker stopped after %d frames", st, err, frames)
	}
	rig.Eventually(t, 20*time.Second, "both nodes completed the district's call", func() bool {
		return liveReport(c, st.Call).Summary.Completed == 2
	})
	rep = liveReport(district, st.Call)
	var nodes []string
	for _, n := range rep.Nodes {
		nodes = append(nodes, n.Node)
		// Frames come over QoS 0 on one machine: some may be late on a
		// loaded run, but every frame is accounted for.
		if n.FramesPlayed+n.FramesLost < frames-1 || n.FramesPlayed == 0 || n.Reason != "" {
			t.Errorf("%s: %+v, want about %d frames played and accounted for", n.Node, n, frames)
		}
	}
	if !slices.Equal(nodes, []string{"a1", "b1"}) || rep.EndReason != loaxa.LiveEndSpeakerStopped || rep.FramesSent != frames {
		t.Errorf("district call %+v with nodes %q", rep.LiveCall, nodes)
	}
	t.Logf("district call: %+v", rep.Summary)
	if !amp.Amplifier() && playing(a1) == "" {
		return
	}
	rig.Eventually(t, 10*time.Second, "a1 released after the district's call", func() bool { return playing(a1) == "" && !amp.Amplifier() })
}

// TestLiveDrillMarked: a live call opened as a drill (diễn tập) at a low
// volume goes through the real controller, broker and agents marked as
// one: the node's events about it say drill, as do its record, its
// deliveries and the audit entries, and its title starts with the drill
// mark; a real call after it is marked in none of them.
func TestLiveDrillMarked(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("318", "Huyện Tiên Lãng", "31")
	c.CreateArea("12346", "Xã Tiên Thắng", "318")
	a1 := rig.StartNode(t, c.CreateNode("a1", "12346"), rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })
	speaker := signInAs(t, c, "can-bo-phat", loaxa.RoleCommune, "12346")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// speak makes a call of 2 s that the speaker ends, and waits until a1
	// reported it completed.
	speak := func(drill bool, volume int) *loaxa.LiveCallReport {
		t.Helper()
		call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speaker.Token, Areas: []string{"12346"},
			Title: "Diễn tập ứng phó bão", Drill: drill, Volume: volume})
		if err != nil {
			t.Fatal(err)
		}
		if err := call.Stream(ctx, bytes.NewReader(voicePCM(2*time.Second))); err != nil {
			t.Fatal(err)
		}
		st, err := call.End(ctx)
		if err != nil || st.Reason != loaxa.LiveEndSpeakerStopped || st.Drill != drill {
			t.Fatalf("end %+v, %v; want speaker stopped, drill %t", st, err, drill)
		}
		rig.Eventually(t, 20*time.Second, "a1 completed the call", func() bool {
			return liveReport(speaker, st.Call).Summary.Completed == 1
		})
		rig.Eventually(t, 10*time.Second, "a1 off the air", func() bool { return playing(a1) == "" })
		return liveReport(speaker, st.Call)
	}
	drill := speak(true, 3)
	realCall := speak(false, 0)

	if !drill.Drill || drill.Volume != 3 || drill.Title != "[DIỄN TẬP] Diễn tập ứng phó bão" || !drill.Nodes[0].Drill {
		t.Errorf("drill record %+v, node %+v: want drill at volume 3, title marked, delivery marked", drill.LiveCall, drill.Nodes[0])
	}
	if realCall.Drill || realCall.Volume != 0 || realCall.Title != "Diễn tập ứng phó bão" || realCall.Nodes[0].Drill {
		t.Errorf("real record %+v, node %+v: marked as a drill", realCall.LiveCall, realCall.Nodes[0])
	}
	// The node's events, as the controller stored them.
	types := map[string][]protocol.EventType{}
	for _, e := range c.Events(url.Values{"node": {"a1"}}) {
		switch e.Occurrence {
		case drill.ID:
			types[drill.ID] = append(types[drill.ID], e.Type)
			if !e.Drill {
				t.Errorf("a1's %s event about the drill call is not marked drill", e.Type)
			}
		case realCall.ID:
			types[realCall.ID] = append(types[realCall.ID], e.Type)
			if e.Drill {
				t.Errorf("a1's %s event about the real call is marked drill", e.Type)
			}
		}
	}
	for _, id := range []string{drill.ID, realCall.ID} {
		if got := types[id]; !slices.Contains(got, protocol.EventStarted) || !slices.Contains(got, protocol.EventCompleted) {
			t.Errorf("a1's events about %s: %q, want at least started and completed", id, got)
		}
	}
	var audit struct{ Entries []loaxa.AuditEntry }
	c.MustDo("GET", "/api/v1/audit", nil, &audit)
	marks := map[string][]string{}
	for _, e := range audit.Entries {
		if e.Target == drill.ID || e.Target == realCall.ID {
			marks[e.Target] = append(marks[e.Target], e.Action+" "+strings.Fields(e.Detail)[0])
		}
	}
	slices.Sort(marks[drill.ID])
	slices.Sort(marks[realCall.ID])
	if want := []string{"live.start drill=true", "live.stop drill=true"}; !slices.Equal(marks[drill.ID], want) {
		t.Errorf("audit of the drill %q, want %q", marks[drill.ID], want)
	}
	if want := []string{"live.start drill=false", "live.stop drill=false"}; !slices.Equal(marks[realCall.ID], want) {
		t.Errorf("audit of the real call %q, want %q", marks[realCall.ID], want)
	}
}

// TestLiveCallReachesANodeWhoseLinkComesBack: a pole's 4G is down when an
// officer's call begins and comes back during it. Nodes use clean MQTT
// sessions, so the call's start was lost to it, and it stayed silent for
// the whole call. Then its link drops again and the call is cut meanwhile:
// the end was lost to it too, and it kept the call suspended for 2 h (the
// report said so). Through the real controller, embedded broker and agent:
// the node must play the call once it is back, and, back after the cut,
// end it (failed, stream: it lost the call before its end).
func TestLiveCallReachesANodeWhoseLinkComesBack(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("a1", "12346")
	link, err := netproxy.Start(strings.TrimPrefix(c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() }) // after the node stops
	a1 := rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + link.Addr()})
	rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })
	link.Cut()
	rig.Eventually(t, 15*time.Second, "a1 offline", func() bool { return c.Node("a1").Status.State == loaxa.NodeOffline })

	speaker := signInAs(t, c, "can-bo-phat", loaxa.RoleCommune, "12346")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var sent atomic.Int64 // samples
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speaker.Token, Areas: []string{"12346"}, Title: "Phòng chống bão",
		OnSend: func(n int) { sent.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(voicePCM(60*time.Second))) }()
	id := callOnAir(t, speaker)
	rig.Eventually(t, 10*time.Second, "2 s of the call said while a1 is away", func() bool { return sent.Load() >= 2*nodeaudio.SampleRate })
	link.Restore()
	rig.Eventually(t, 20*time.Second, "a1, back online, plays the call", func() bool { return playing(a1) == id })
	rig.Eventually(t, 10*time.Second, "a1's delivery started", func() bool {
		return liveReport(speaker, id).Nodes[0].State == string(loaxa.DeliveryStarted)
	})

	// Its link drops again, and the call is cut while it is away.
	joined := sent.Load()
	rig.Eventually(t, 10*time.Second, "another second of the call said", func() bool { return sent.Load() >= joined+nodeaudio.SampleRate })
	link.Cut()
	rig.Eventually(t, 15*time.Second, "a1 offline again", func() bool { return c.Node("a1").Status.State == loaxa.NodeOffline })
	rig.Eventually(t, 10*time.Second, "a1 off the air without frames", func() bool { return playing(a1) == "" })
	speaker.MustDo("POST", "/api/v1/live/calls/"+id+"/cut", nil, nil)
	if err := <-streamed; !errors.Is(err, liveclient.ErrEnded) {
		t.Errorf("the speaker's stream after the cut: %v, want ErrEnded", err)
	}
	link.Restore()
	rig.Eventually(t, 20*time.Second, "a1, back after the cut, ends the call", func() bool {
		n := liveReport(speaker, id).Nodes[0]
		return n.State == string(loaxa.DeliveryFailed) && n.Reason == protocol.ReasonStream
	})
	t.Logf("a1 after the call: %+v", liveReport(speaker, id).Nodes[0])
}

// TestLiveCallKeepsItsClustersThroughAScheduleChange: a technician turns
// two clusters' volume down while a drill call is on air, one of them away
// (its 4G down). The scheduler, recompiling them, dropped their deliveries
// of the call that were still pending or received, as occurrences it no
// longer planned: the cluster away left the call's report and, back
// online, was not sent the call (silent to its end); one that had just
// heard the start reported its play into a delivery made from its reports,
// no longer marked drill (TestLiveDrillMarked failed so in a full run,
// behind its node's first desired state). Through the real controller,
// broker and agents: the cluster away joins the call once back, and both
// deliveries stay the call's, marked drill.
func TestLiveCallKeepsItsClustersThroughAScheduleChange(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	a1 := rig.StartNode(t, c.CreateNode("a1", "12346"), rig.NodeOptions{Tune: quickStates})
	cr2 := c.CreateNode("a2", "12346") // away until after the change
	rig.Eventually(t, 15*time.Second, "a1 online", func() bool { return c.Node("a1").Status.State == loaxa.NodeOnline })
	speaker := signInAs(t, c, "can-bo-phat", loaxa.RoleCommune, "12346")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: speaker.Token, Areas: []string{"12346"},
		Title: "Diễn tập ứng phó bão", Drill: true})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(voicePCM(60*time.Second))) }()
	id := callOnAir(t, speaker)
	rig.Eventually(t, 10*time.Second, "a1 plays the call", func() bool { return playing(a1) == id })

	// a2's change is stored before a1's, so the pass that gives a1 its
	// volume has recompiled a2 too (and dropped what it drops before
	// the states go out).
	for _, n := range []string{"a2", "a1"} {
		c.MustDo("PATCH", "/api/v1/nodes/"+n+"/settings", map[string]int{"volume": 9}, nil)
	}
	rig.Eventually(t, 15*time.Second, "volume 9 in a1's state", func() bool {
		v := c.Node("a1").Status.Volume
		return v != nil && *v == 9
	})
	a2 := rig.StartNode(t, cr2, rig.NodeOptions{})
	rig.Eventually(t, 20*time.Second, "a2, back online, plays the call", func() bool { return playing(a2) == id })

	speaker.MustDo("POST", "/api/v1/live/calls/"+id+"/cut", nil, nil)
	if err := <-streamed; !errors.Is(err, liveclient.ErrEnded) {
		t.Errorf("the speaker's stream after the cut: %v, want ErrEnded", err)
	}
	rig.Eventually(t, 20*time.Second, "both clusters completed the call", func() bool {
		return liveReport(speaker, id).Summary.Completed == 2
	})
	for _, n := range liveReport(speaker, id).Nodes {
		if !n.Drill {
			t.Errorf("%s's delivery of the drill call %+v is not marked drill", n.Node, n)
		}
	}
}
