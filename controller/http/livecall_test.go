package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// recordLive records the live messages the API publishes, per area.
type recordLive struct {
	mu   sync.Mutex
	sent []areaLive
}

type areaLive struct {
	area string
	l    protocol.Live
}

var _ loaxa.LiveMessenger = (*recordLive)(nil)

func (r *recordLive) SendLive(_ context.Context, area string, l protocol.Live) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, areaLive{area, l})
	return nil
}

// of returns the kinds (with an end's reason) of call's messages to area.
func (r *recordLive) of(call, area string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.sent {
		if m.l.Call == call && m.area == area {
			out = append(out, strings.TrimSuffix(m.l.Kind+":"+m.l.Reason, ":"))
		}
	}
	return out
}

// dialLive opens a call through the test server as the holder of token.
func (e *env) dialLive(token string, areas ...string) *liveclient.Call {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: e.ts.URL, Token: token, Areas: areas, Title: "Họp dân", Client: e.ts.Client()})
	if err != nil {
		e.t.Fatal(err)
	}
	return call
}

// onAir returns the id of the one call on air that token's holder sees.
func (e *env) onAir(token string) *loaxa.LiveCall {
	e.t.Helper()
	var out struct{ Calls []*loaxa.LiveCall }
	e.call("GET", "/api/v1/live/calls?active=true", token, nil, http.StatusOK, &out)
	if len(out.Calls) != 1 || !out.Calls[0].Active() {
		e.t.Fatalf("calls on air %+v, want one", out.Calls)
	}
	return out.Calls[0]
}

// voice is 200 ms of PCM: 5 frames.
var voice = bytes.Repeat([]byte{0x10, 0x02}, 5*nodeaudio.NarrowFrameWide)

func TestLiveCallCut(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	colleague := e.addUser("can-bo-a2", loaxa.RoleCommune, "12346")
	viewer := e.addUser("xem-a", loaxa.RoleViewer, "12346")
	neighbour := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	district := e.addUser("huyen", loaxa.RoleDistrict, "318")

	call := e.dialLive(speaker, "12346")
	if err := call.Stream(t.Context(), bytes.NewReader(voice)); err != nil {
		t.Fatal(err)
	}
	c := e.onAir(colleague)
	if c.CreatedBy != "can-bo-a" || !slices.Equal(c.Areas, []string{"12346"}) || c.Nodes != 1 || c.Priority != protocol.PriorityHigh || c.Title != "Họp dân" {
		t.Errorf("call on air %+v", c)
	}
	// Stream returns once the frames are written to the socket; the
	// server publishes them as it reads them. The cut below is to come
	// after all five.
	for deadline := time.Now().Add(10 * time.Second); len(e.liveMsgs.of(c.ID, "12346")) < 6; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("published %q after 10 s, want start and 5 frames", e.liveMsgs.of(c.ID, "12346"))
		}
	}
	if got := e.onAir(district); got.ID != c.ID {
		t.Errorf("the district sees %s, want %s", got.ID, c.ID)
	}
	// The neighbouring commune sees neither the call nor its record.
	var list struct{ Calls []*loaxa.LiveCall }
	e.call("GET", "/api/v1/live/calls", neighbour, nil, http.StatusOK, &list)
	if len(list.Calls) != 0 {
		t.Errorf("commune 12347 lists %+v, want nothing", list.Calls)
	}
	checkError(t, e.request("GET", "/api/v1/live/calls/"+c.ID, neighbour, "", nil), http.StatusForbidden, loaxa.EForbidden, "outside your area")
	checkError(t, e.request("POST", "/api/v1/live/calls/"+c.ID+"/cut", neighbour, "", nil), http.StatusForbidden, loaxa.EForbidden, "outside your area")
	// A viewer sees it but may not cut it.
	checkError(t, e.request("POST", "/api/v1/live/calls/"+c.ID+"/cut", viewer, "", nil), http.StatusForbidden, loaxa.EForbidden, "Only can-bo-a, who speaks")

	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+c.ID, viewer, nil, http.StatusOK, &rep)
	if rep.Summary.Targeted != 1 || len(rep.Nodes) != 1 || rep.Nodes[0].Node != "n-a" || rep.Nodes[0].State != loaxa.EmergencyOffline {
		t.Errorf("report %+v, want n-a pending and offline", rep)
	}

	// A colleague who may speak to the commune cuts it.
	var cut loaxa.LiveCall
	e.call("POST", "/api/v1/live/calls/"+c.ID+"/cut", colleague, nil, http.StatusOK, &cut)
	if cut.Active() || cut.EndReason != loaxa.LiveEndCut || cut.CutBy != "can-bo-a2" || cut.FramesSent != 5 || cut.Bytes != uint64(len(voice)) {
		t.Errorf("cut call %+v, want ended, cut by can-bo-a2, 5 frames of %d bytes", cut, len(voice))
	}
	// The speaker is told, and the nodes got an end that cuts.
	err := call.Stream(t.Context(), bytes.NewReader(voice))
	if !errors.Is(err, liveclient.ErrEnded) {
		t.Errorf("streaming after the cut: %v, want ErrEnded", err)
	}
	st, err := call.End(t.Context())
	if err != nil || st.Reason != loaxa.LiveEndCut || st.CutBy != "can-bo-a2" {
		t.Errorf("speaker's last status %+v, %v; want cut by can-bo-a2", st, err)
	}
	want := []string{"start", "audio", "audio", "audio", "audio", "audio", "end:cut"}
	if got := e.liveMsgs.of(c.ID, "12346"); !slices.Equal(got, want) {
		t.Errorf("published %q, want %q", got, want)
	}
	// Cutting it again says it is over.
	checkError(t, e.request("POST", "/api/v1/live/calls/"+c.ID+"/cut", speaker, "", nil), http.StatusConflict, loaxa.EConflict, "is over: it ended at")
	e.call("GET", "/api/v1/live/calls?active=true", speaker, nil, http.StatusOK, &list)
	if len(list.Calls) != 0 {
		t.Errorf("calls on air after the cut: %+v", list.Calls)
	}
	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		if a.Target == c.ID {
			actions = append(actions, a.Actor+" "+a.Action)
		}
	}
	slices.Sort(actions) // the stop and the cut are written concurrently
	if want := []string{"can-bo-a live.start", "can-bo-a live.stop", "can-bo-a2 live.cut"}; !slices.Equal(actions, want) {
		t.Errorf("audit %q, want %q", actions, want)
	}
}

// TestLiveCallDrill: a call opened as a drill says so in every message to
// the nodes, its status, record, deliveries and every audit entry, and
// plays at the volume asked; a real call says drill in none of them.
func TestLiveCallDrill(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	colleague := e.addUser("can-bo-a2", loaxa.RoleCommune, "12346")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var onAir liveclient.Status
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: e.ts.URL, Token: speaker, Areas: []string{"12346"}, Title: "Diễn tập phòng chống bão",
		Drill: true, Volume: 3, Client: e.ts.Client(), OnStatus: func(st liveclient.Status) {
			if st.State == "on_air" {
				onAir = st
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !onAir.Drill || onAir.Volume != 3 {
		t.Errorf("on-air status %+v, want drill at volume 3", onAir)
	}
	if err := call.Stream(t.Context(), bytes.NewReader(voice)); err != nil {
		t.Fatal(err)
	}
	c := e.onAir(colleague)
	if !c.Drill || c.Volume != 3 || c.Title != "[DIỄN TẬP] Diễn tập phòng chống bão" {
		t.Errorf("drill call listed as %+v, want drill, volume 3, title marked", c)
	}
	// As in TestLiveCall: the frames are published after Stream returns,
	// each area's by its own sender; the cut is to come after all five.
	for deadline := time.Now().Add(10 * time.Second); len(e.liveMsgs.of(c.ID, "12346")) < 6; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("published %q after 10 s, want start and 5 frames", e.liveMsgs.of(c.ID, "12346"))
		}
	}
	var cut loaxa.LiveCall
	e.call("POST", "/api/v1/live/calls/"+c.ID+"/cut", colleague, nil, http.StatusOK, &cut)
	if st, err := call.End(t.Context()); err != nil || !st.Drill || st.Reason != loaxa.LiveEndCut {
		t.Errorf("speaker's last status %+v, %v; want a cut drill", st, err)
	}
	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+c.ID, colleague, nil, http.StatusOK, &rep)
	if !rep.Drill || len(rep.Nodes) != 1 || !rep.Nodes[0].Drill {
		t.Errorf("drill report %+v with nodes %+v, want drill on the call and on n-a's delivery", rep.LiveCall, rep.Nodes)
	}
	ds, err := e.stores.deliveries.FindDeliveries(t.Context(), loaxa.DeliveryFilter{Announcement: c.ID})
	if err != nil || len(ds) != 1 || !ds[0].Drill {
		t.Errorf("stored deliveries %+v, %v; want n-a's marked drill", ds, err)
	}

	// A real call, for comparison.
	realCall := e.dialLive(speaker, "12346")
	r := e.onAir(speaker)
	if r.Drill || r.Volume != 0 || strings.Contains(r.Title, "DIỄN TẬP") {
		t.Errorf("real call listed as %+v", r)
	}
	if st, err := realCall.End(t.Context()); err != nil || st.Drill {
		t.Errorf("real call's last status %+v, %v", st, err)
	}
	waitEnded(t, e, speaker, r.ID, loaxa.LiveEndSpeakerStopped)

	e.liveMsgs.mu.Lock()
	var drillKinds []string
	for _, m := range e.liveMsgs.sent {
		switch m.l.Call {
		case c.ID:
			drillKinds = append(drillKinds, m.l.Kind)
			if !m.l.Drill {
				t.Errorf("drill call's %s message %+v not marked drill", m.l.Kind, m.l)
			}
			if m.l.Kind == protocol.LiveStart && (m.l.Volume != 3 || m.l.Title != c.Title) {
				t.Errorf("drill call's start %+v, want volume 3 and title %q", m.l, c.Title)
			}
		case r.ID:
			if m.l.Drill || m.l.Volume != 0 {
				t.Errorf("real call's %s message %+v marked drill or with a volume", m.l.Kind, m.l)
			}
		}
	}
	e.liveMsgs.mu.Unlock()
	if want := []string{"start", "audio", "audio", "audio", "audio", "audio", "end"}; !slices.Equal(drillKinds, want) {
		t.Errorf("drill call published %q, want %q", drillKinds, want)
	}

	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var drillActions []string
	for _, a := range entries {
		switch a.Target {
		case c.ID:
			drillActions = append(drillActions, a.Action)
			if !strings.HasPrefix(a.Detail, "drill=true ") {
				t.Errorf("audit %s of the drill: %q, want it to start drill=true", a.Action, a.Detail)
			}
		case r.ID:
			if !strings.HasPrefix(a.Detail, "drill=false ") {
				t.Errorf("audit %s of the real call: %q, want it to start drill=false", a.Action, a.Detail)
			}
		}
	}
	slices.Sort(drillActions)
	if want := []string{"live.cut", "live.start", "live.stop"}; !slices.Equal(drillActions, want) {
		t.Errorf("drill audited as %q, want %q", drillActions, want)
	}
}

// The speaker may cut their own call even without the right to cut
// others'; an emergency call needs emergency rights to cut.
func TestLiveCallCutBySpeakerAndEmergencyRights(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	call := e.dialLive(speaker, "12346")
	c := e.onAir(speaker)
	var cut loaxa.LiveCall
	e.call("POST", "/api/v1/live/calls/"+c.ID+"/cut", speaker, nil, http.StatusOK, &cut)
	if cut.CutBy != "can-bo-a" || cut.FramesSent != 0 {
		t.Errorf("cut call %+v", cut)
	}
	if st, err := call.End(t.Context()); err != nil || st.Reason != loaxa.LiveEndCut {
		t.Errorf("last status %+v, %v", st, err)
	}
}

func TestLiveCallEnds(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo", loaxa.RoleDistrict, "318")

	// The speaker stops: the call records its frames and bytes; the
	// nodes' events are its deliveries.
	call := e.dialLive(speaker, "12346", "12347", "318")
	c := e.onAir(speaker)
	if c.Nodes != 2 {
		t.Errorf("call to 318 and its communes targets %d nodes, want 2 (each once)", c.Nodes)
	}
	if err := call.Stream(t.Context(), bytes.NewReader(voice[:len(voice)-100])); err != nil {
		t.Fatal(err)
	}
	st, err := call.End(t.Context())
	if err != nil || st.Reason != loaxa.LiveEndSpeakerStopped || st.Frames != 5 {
		t.Fatalf("end %+v, %v; want speaker stopped after 5 frames (the last padded)", st, err)
	}
	ev := func(seq uint64, typ protocol.EventType) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: e.clock.Now(), Occurrence: c.ID, Announcement: c.ID}
	}
	done := ev(3, protocol.EventCompleted)
	done.FramesPlayed, done.FramesLost = 4, 1
	if _, _, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "x", Events: []protocol.Event{
		ev(1, protocol.EventReceived), ev(2, protocol.EventStarted), done}}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+c.ID, speaker, nil, http.StatusOK, &rep)
	if rep.EndReason != loaxa.LiveEndSpeakerStopped || rep.FramesSent != 5 || rep.Bytes != uint64(len(voice)-100) || rep.Active() {
		t.Errorf("record %+v", rep.LiveCall)
	}
	// The speaker's last status says when the call began and ended, as
	// recorded: the console says how long it was on air from them.
	if st.Started.IsZero() || !st.Started.Equal(rep.Started) || !st.Ended.Equal(rep.Ended) {
		t.Errorf("ended status says started %v, ended %v; the record %v, %v", st.Started, st.Ended, rep.Started, rep.Ended)
	}
	if s := rep.Summary; s.Targeted != 2 || s.Completed != 1 || s.Offline != 1 || s.FramesLost != 1 {
		t.Errorf("summary %+v, want 2 targeted, 1 completed, 1 offline, 1 frame lost", s)
	}
	if n := rep.Nodes[0]; n.Node != "n-a" || n.State != "completed" || n.FramesPlayed != 4 || n.FramesLost != 1 {
		t.Errorf("n-a %+v", n)
	}
	// Once, to 318: its communes' nodes are below it, and published to
	// each as well they got every frame twice.
	if got := e.liveMsgs.of(c.ID, "318"); len(got) != 7 || got[6] != "end" {
		t.Errorf("published to 318: %q, want start, 5 frames, end", got)
	}
	for _, area := range []string{"12346", "12347"} {
		if got := e.liveMsgs.of(c.ID, area); len(got) != 0 {
			t.Errorf("published to %s, inside 318: %q, want nothing", area, got)
		}
	}
	if !slices.Equal(rep.Areas, []string{"318"}) {
		t.Errorf("call's areas %v, want [318]: the communes are inside it", rep.Areas)
	}

	// The client disconnects.
	call = e.dialLive(speaker, "12346")
	c = e.onAir(speaker)
	call.Drop()
	waitEnded(t, e, speaker, c.ID, loaxa.LiveEndDisconnected)

	// A message that is not 16-bit PCM ends the call with a clear status.
	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.ts.URL, "http")+"/api/v1/live?areas=12346",
		&websocket.DialOptions{HTTPClient: e.ts.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + speaker}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var onAir, ended liveclient.Status
	readStatus(t, ws, &onAir)
	if err := ws.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	readStatus(t, ws, &ended)
	if ended.State != "ended" || ended.Call != onAir.Call || ended.Reason != loaxa.LiveEndBadAudio || !strings.Contains(ended.Detail, "3 bytes is not 16-bit PCM") {
		t.Errorf("status after an odd message %+v", ended)
	}
	if _, _, err := ws.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("close after bad audio: %v, want %d", err, websocket.StatusUnsupportedData)
	}
	waitEnded(t, e, speaker, onAir.Call, loaxa.LiveEndBadAudio)

	// The controller shuts down during a call: Close ends it and waits.
	call = e.dialLive(speaker, "12346")
	c = e.onAir(speaker)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, speaker, c.ID, loaxa.LiveEndShutdown)
	if got := e.liveMsgs.of(c.ID, "12346"); !slices.Equal(got, []string{"start", "end"}) {
		t.Errorf("published %q, want start and end", got)
	}
	st, err = call.End(t.Context())
	if err != nil || st.Reason != loaxa.LiveEndShutdown {
		t.Errorf("last status %+v, %v; want controller shutdown", st, err)
	}
}

func readStatus(t *testing.T, ws *websocket.Conn, st *liveclient.Status) {
	t.Helper()
	typ, b, err := ws.Read(t.Context())
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("status: %v %v", typ, err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		t.Fatal(err)
	}
}

// waitEnded waits until call id's record has ended (its handler records
// the end after the client's side is gone) and checks the reason.
func waitEnded(t *testing.T, e *env, token, id, reason string) *loaxa.LiveCall {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rep loaxa.LiveCallReport
		e.call("GET", "/api/v1/live/calls/"+id, token, nil, http.StatusOK, &rep)
		if !rep.Active() {
			if rep.EndReason != reason {
				t.Errorf("call %s ended with %q (%s), want %q", id, rep.EndReason, rep.EndDetail, reason)
			}
			return rep.LiveCall
		}
		if time.Now().After(deadline) {
			t.Logf("log:\n%s", e.logs.String())
			t.Fatalf("call %s still on air after 10s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveCallListSummaries: with summary=true the list of calls on air
// carries each call's summary, the same as its report's, in one request;
// each user sees the calls (and summaries) of their areas only. Without
// it the list holds the records only.
func TestLiveCallListSummaries(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speakerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	speakerB := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	viewerA := e.addUser("xem-a", loaxa.RoleViewer, "12346")
	district := e.addUser("huyen", loaxa.RoleDistrict, "318")

	callA := e.dialLive(speakerA, "12346")
	a := e.onAir(speakerA)
	callB := e.dialLive(speakerB, "12347")
	b := e.onAir(speakerB)
	// n-a (12346) has call A and plays it; n-b (12347) is offline.
	ev := func(seq uint64, typ protocol.EventType) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: e.clock.Now(), Occurrence: a.ID, Announcement: a.ID}
	}
	if _, _, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "x", Events: []protocol.Event{
		ev(1, protocol.EventReceived), ev(2, protocol.EventStarted)}}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	want := map[string]loaxa.LiveCallSummary{
		a.ID: {Targeted: 1, Reached: 1, Sounding: 1},
		b.ID: {Targeted: 1, Offline: 1},
	}
	type listed struct {
		loaxa.LiveCall
		Summary *loaxa.LiveCallSummary
	}
	for _, tt := range []struct {
		who, token string
		calls      []string
	}{
		{"the district", district, []string{a.ID, b.ID}},
		{"commune 12346's viewer", viewerA, []string{a.ID}},
		{"commune 12347's speaker", speakerB, []string{b.ID}},
	} {
		var list struct{ Calls []listed }
		e.call("GET", "/api/v1/live/calls?active=true&summary=true", tt.token, nil, http.StatusOK, &list)
		var got []string
		for _, c := range list.Calls {
			got = append(got, c.ID)
			if c.Summary == nil || !reflect.DeepEqual(*c.Summary, want[c.ID]) {
				t.Errorf("%s: call %s summary %+v, want %+v", tt.who, c.ID, c.Summary, want[c.ID])
			}
			var rep loaxa.LiveCallReport
			e.call("GET", "/api/v1/live/calls/"+c.ID, tt.token, nil, http.StatusOK, &rep)
			if c.Summary != nil && !reflect.DeepEqual(*c.Summary, rep.Summary) {
				t.Errorf("%s: call %s listed with %+v, its report says %+v", tt.who, c.ID, *c.Summary, rep.Summary)
			}
		}
		slices.Sort(got) // both began at the same (fake) instant
		if slices.Sort(tt.calls); !slices.Equal(got, tt.calls) {
			t.Errorf("%s sees calls %q, want %q", tt.who, got, tt.calls)
		}
	}
	r := e.call("GET", "/api/v1/live/calls?active=true", district, nil, http.StatusOK, nil)
	if bytes.Contains(r.body, []byte(`"summary"`)) {
		t.Errorf("list without summary=true: %s, want the records only", r.body)
	}

	for _, c := range []*liveclient.Call{callA, callB} {
		if _, err := c.End(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitEnded(t, e, district, a.ID, loaxa.LiveEndSpeakerStopped)
	waitEnded(t, e, district, b.ID, loaxa.LiveEndSpeakerStopped)
}

// TestLiveCallCountsFramesOnAir: an officer watching a call on air saw
// frames_sent: 0 in the list and the report until the call ended. The
// frames and bytes sent so far are counted while it runs.
func TestLiveCallCountsFramesOnAir(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")

	call := e.dialLive(speaker, "12346")
	if err := call.Stream(t.Context(), bytes.NewReader(voice)); err != nil {
		t.Fatal(err)
	}
	id := call.ID()
	// The frames are published, and counted, after Stream returns.
	var listed *loaxa.LiveCall
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if listed = e.onAir(speaker); listed.FramesSent == 5 || time.Now().After(deadline) {
			break
		}
	}
	if listed.ID != id || listed.FramesSent != 5 || listed.FramesDropped != 0 || listed.Bytes != uint64(len(voice)) {
		t.Errorf("call on air listed with %d frames sent, %d dropped, %d bytes; want 5, 0, %d", listed.FramesSent, listed.FramesDropped, listed.Bytes, len(voice))
	}
	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+id, speaker, nil, http.StatusOK, &rep)
	if !rep.Active() || rep.FramesSent != 5 || rep.Bytes != uint64(len(voice)) {
		t.Errorf("report of the call on air: %d frames sent, %d bytes; want 5, %d", rep.FramesSent, rep.Bytes, len(voice))
	}

	st, err := call.End(t.Context())
	if err != nil || st.Frames != 5 {
		t.Fatalf("end: %+v, %v; want 5 frames", st, err)
	}
	ended := waitEnded(t, e, speaker, id, loaxa.LiveEndSpeakerStopped)
	if ended.FramesSent != 5 || ended.Bytes != uint64(len(voice)) {
		t.Errorf("ended call recorded with %d frames, %d bytes; want 5, %d", ended.FramesSent, ended.Bytes, len(voice))
	}
}

// TestLiveCallHeldBehindAnAlertTold: a commune officer speaks while a
// typhoon alert still plays on a cluster. The cluster holds the call until
// the alert is over (its received event names the alert, held_by), but the
// officer saw it only "reached", silent, in the report, the list and their
// own status, with nothing saying why or when it would join. The report's
// node and summary, the list's summary and the speaker's status say which
// alert holds which clusters, and when they joined.
func TestLiveCallHeldBehindAnAlertTold(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")

	ctx, call, statuses := dialOnAir(t, e, speaker, "12346")
	id := call.ID()
	// told waits for the speaker's status saying hold.
	told := func(hold liveclient.Hold) {
		t.Helper()
		for {
			select {
			case st := <-statuses:
				if slices.Equal(st.Held, []liveclient.Hold{hold}) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the speaker was not told %+v", hold)
			}
		}
	}
	report := func() loaxa.LiveCallReport {
		var rep loaxa.LiveCallReport
		e.call("GET", "/api/v1/live/calls/"+id, speaker, nil, http.StatusOK, &rep)
		var list struct {
			Calls []struct{ Summary loaxa.LiveCallSummary }
		}
		e.call("GET", "/api/v1/live/calls?active=true&summary=true", speaker, nil, http.StatusOK, &list)
		if len(list.Calls) != 1 || !reflect.DeepEqual(list.Calls[0].Summary, rep.Summary) {
			t.Errorf("listed with %+v, its report says %+v", list.Calls, rep.Summary)
		}
		return rep
	}
	ev := func(seq uint64, typ protocol.EventType, late int64, heldBy string) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: e.clock.Now(), Occurrence: id, Announcement: id, LateMS: late, HeldBy: heldBy}
	}

	// record stores n-a's event and tells the live calls, as the MQTT
	// client does.
	record := func(ev protocol.Event) {
		t.Helper()
		_, stored, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "x", Events: []protocol.Event{ev}}, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.live.Events("n-a", stored)
	}

	// n-a has the call while alert e000007 plays there.
	record(ev(1, protocol.EventReceived, 0, "e000007"))
	rep := report()
	want := []loaxa.LiveHold{{Alert: "e000007", Waiting: 1}}
	if n := rep.Nodes[0]; n.State != string(loaxa.DeliveryReceived) || n.HeldBy != "e000007" || rep.Summary.Held != 1 || !slices.Equal(rep.Summary.HeldBy, want) {
		t.Errorf("node %+v, summary %+v; want n-a received, held by e000007, and the summary saying so", n, rep.Summary)
	}
	told(liveclient.Hold{Alert: "e000007", Waiting: 1})

	// The alert over, n-a joins the call 2.5 s after it began.
	record(ev(2, protocol.EventStarted, 2500, ""))
	rep = report()
	want = []loaxa.LiveHold{{Alert: "e000007", Joined: 1}}
	if n := rep.Nodes[0]; n.State != string(loaxa.DeliveryStarted) || n.HeldBy != "e000007" || n.LateMS != 2500 || rep.Summary.Held != 0 || !slices.Equal(rep.Summary.HeldBy, want) {
		t.Errorf("node %+v, summary %+v; want n-a started 2500 ms late after e000007, none held", n, rep.Summary)
	}
	told(liveclient.Hold{Alert: "e000007", Joined: 1})

	if _, err := call.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, speaker, id, loaxa.LiveEndSpeakerStopped)
}

// TestLiveCallHeldBehindAnAlertNamesIt: a province officer spoke while
// the typhoon alert still played on some clusters and another officer's
// call on others. The call's report, the list and the officer's own
// status said the clusters waited for "e000001" and "live-…": ids no one
// on duty knows. Each hold now carries its alert's title and drill mark
// (an emergency's, or the other live call's), beside its id.
func TestLiveCallHeldBehindAnAlertNamesIt(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "drill": true,
		"title": "Cảnh báo bão số 3"}, http.StatusCreated, &em)
	other := &loaxa.LiveCall{ID: loaxa.LiveCallIDPrefix + "tinh-1", Title: "Thông báo của tỉnh", CreatedBy: "tinh", Areas: []string{"12347"},
		Priority: protocol.PriorityEmergency, Started: e.clock.Now(), Ended: e.clock.Now().Add(time.Minute)}
	if err := e.live.Store.CreateLiveCall(t.Context(), other); err != nil {
		t.Fatal(err)
	}

	ctx, call, statuses := dialOnAir(t, e, e.admin, "318")
	id := call.ID()
	for node, alert := range map[string]string{"n-a": em.ID, "n-b": other.ID} {
		_, stored, err := e.stores.events.RecordEvents(t.Context(), node, protocol.EventBatch{Epoch: "x", Events: []protocol.Event{
			{Seq: 1, Type: protocol.EventReceived, At: e.clock.Now(), Occurrence: id, Announcement: id, HeldBy: alert}}}, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.live.Events(node, stored) // as the MQTT client tells it
	}
	want := []loaxa.LiveHold{
		{Alert: em.ID, Title: "[DIỄN TẬP] Cảnh báo bão số 3", Drill: true, Waiting: 1},
		{Alert: other.ID, Title: "Thông báo của tỉnh", Waiting: 1},
	}
	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+id, e.admin, nil, http.StatusOK, &rep)
	if !slices.Equal(rep.Summary.HeldBy, want) {
		t.Errorf("report's held_by %+v, want %+v", rep.Summary.HeldBy, want)
	}
	var list struct {
		Calls []struct{ Summary loaxa.LiveCallSummary }
	}
	e.call("GET", "/api/v1/live/calls?active=true&summary=true", e.admin, nil, http.StatusOK, &list)
	if len(list.Calls) != 1 || !slices.Equal(list.Calls[0].Summary.HeldBy, want) {
		t.Errorf("listed with %+v, want held_by %+v", list.Calls, want)
	}
	// The speaker's status says it too (what "controller live" prints).
	told := []liveclient.Hold{{Alert: em.ID, Title: want[0].Title, Drill: true, Waiting: 1}, {Alert: other.ID, Title: want[1].Title, Waiting: 1}}
	for said := false; !said; {
		select {
		case st := <-statuses:
			said = slices.Equal(st.Held, told)
		case <-ctx.Done():
			t.Fatalf("the speaker was not told %+v", told)
		}
	}

	if _, err := call.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, e.admin, id, loaxa.LiveEndSpeakerStopped)
}

func TestLiveCallRequests(t *testing.T) {
	e := newEnv(t)
	e.tree()
	for _, tt := range []struct {
		method, path string
		status       int
		code, msg    string
	}{
		{"GET", "/api/v1/live/calls?limit=0", 400, loaxa.EInvalid, "limit \"0\": give a number from 1 to 1000"},
		{"GET", "/api/v1/live/calls?limit=x", 400, loaxa.EInvalid, "limit \"x\""},
		{"GET", "/api/v1/live/calls?active=maybe", 400, loaxa.EInvalid, "active \"maybe\": write true"},
		{"GET", "/api/v1/live/calls?summary=yes", 400, loaxa.EInvalid, "summary \"yes\": write true"},
		{"GET", "/api/v1/live/calls?area=31", 400, loaxa.EInvalid, "Unknown query parameter \"area\""},
		{"GET", "/api/v1/live/calls/a000001", 400, loaxa.EInvalid, "not a live call id"},
		{"GET", "/api/v1/live/calls/live-NOPE!", 400, loaxa.EInvalid, "id:"},
		{"GET", "/api/v1/live/calls/live-0000000000000000", 404, loaxa.ENotFound, "There is no live call \"live-0000000000000000\""},
		{"POST", "/api/v1/live/calls/live-0000000000000000/cut", 404, loaxa.ENotFound, "There is no live call"},
		{"POST", "/api/v1/live/calls/e000001/cut", 400, loaxa.EInvalid, "not a live call id"},
		{"GET", "/api/v1/live?areas=12346&priority=normal", 400, loaxa.EInvalid, "a live call is \"priority\""},
		{"GET", "/api/v1/live?areas=99", 400, loaxa.EInvalid, "there is no area \"99\""},
		{"GET", "/api/v1/live?areas=12346&drill=perhaps", 400, loaxa.EInvalid, "drill \"perhaps\": write 1 or true"},
		{"GET", "/api/v1/live?areas=12346&drill=1&volume=0", 400, loaxa.EInvalid, "volume \"0\": give a level from 1"},
		{"GET", "/api/v1/live?areas=12346&volume=16", 400, loaxa.EInvalid, "volume \"16\": give a level from 1"},
	} {
		checkError(t, e.request(tt.method, tt.path, e.admin, "", nil), tt.status, tt.code, tt.msg)
	}
	var list struct{ Calls []*loaxa.LiveCall }
	e.call("GET", "/api/v1/live/calls?active=false&limit=5", e.admin, nil, http.StatusOK, &list)
	if list.Calls == nil || len(list.Calls) != 0 {
		t.Errorf("calls %+v, want an empty list", list.Calls)
	}
}

// dialRaw opens GET /api/v1/live as the holder of token on a raw
// WebSocket and reads the on-air status.
func dialRaw(t *testing.T, e *env, token, areas string) (*websocket.Conn, liveclient.Status) {
	t.Helper()
	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.ts.URL, "http")+"/api/v1/live?areas="+areas,
		&websocket.DialOptions{HTTPClient: e.ts.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(-1)
	var onAir liveclient.Status
	readStatus(t, ws, &onAir)
	if onAir.State != "on_air" {
		t.Fatalf("first status %+v, want on_air", onAir)
	}
	return ws, onAir
}

// TestLiveOversizeMessageIsBadAudio: a client message over the 1 s limit
// ends the call as "bad audio" with a status saying so (docs/live.md). It
// was recorded as "client disconnected", without a status: the library's
// read error for it is not a close error.
func TestLiveOversizeMessageIsBadAudio(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ws, onAir := dialRaw(t, e, speaker, "12346")

	big := make([]byte, 2*16000+2) // just over a second of 16 kHz PCM
	if err := ws.Write(t.Context(), websocket.MessageBinary, big); err != nil {
		t.Fatal(err)
	}
	c := waitEndedAny(t, e, speaker, onAir.Call)
	if c.EndReason != loaxa.LiveEndBadAudio {
		t.Errorf("oversize message: call recorded as ended %q (%q), want %q", c.EndReason, c.EndDetail, loaxa.LiveEndBadAudio)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageText || !strings.Contains(string(b), loaxa.LiveEndBadAudio) {
		t.Errorf("speaker told %q (%v), want an ended status with reason %q", b, err, loaxa.LiveEndBadAudio)
	}
}

// waitEndedAny waits until call id is over and returns its record.
func waitEndedAny(t *testing.T, e *env, token, id string) *loaxa.LiveCall {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var rep loaxa.LiveCallReport
		e.call("GET", "/api/v1/live/calls/"+id, token, nil, http.StatusOK, &rep)
		if !rep.Active() {
			return rep.LiveCall
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s still on air after 10s", id)
		}
	}
}

// TestLiveCallEndsWithItsSession: signing a user out everywhere (a lost
// phone: DELETE /users/{u}/sessions, docs/api.md "end at once") ends that
// user's call on air within sessionCheck, with reason "signed out";
// it went on publishing, the WebSocket authorised only at the upgrade.
func TestLiveCallEndsWithItsSession(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ws, onAir := dialRaw(t, e, speaker, "12346")
	if err := ws.Write(t.Context(), websocket.MessageBinary, voice); err != nil {
		t.Fatal(err)
	}
	var rev struct{ Revoked int }
	e.call("DELETE", "/api/v1/users/can-bo-a/sessions", e.admin, nil, http.StatusOK, &rev)
	if rev.Revoked != 1 {
		t.Fatalf("revoked %d sessions, want 1", rev.Revoked)
	}
	c := waitEndedAny(t, e, e.admin, onAir.Call)
	if c.EndReason != loaxa.LiveEndSignedOut || !strings.Contains(c.EndDetail, "session ended") {
		t.Errorf("call after its session was revoked: ended %q (%q), want %q", c.EndReason, c.EndDetail, loaxa.LiveEndSignedOut)
	}
}

// TestLiveEndAsAnyJSON: the end message is JSON however it is spaced
// (Python's json.dumps writes `{"type": "end"}`); it was ignored unless
// written exactly `{"type":"end"}`, and the call stayed on air.
func TestLiveEndAsAnyJSON(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ws, onAir := dialRaw(t, e, speaker, "12346")
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type": "end"}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageText || !strings.Contains(string(b), `"ended"`) {
		t.Errorf(`after {"type": "end"}: read %q, %v; want an "ended" status`, b, err)
	}
	var rep loaxa.LiveCallReport
	e.call("GET", "/api/v1/live/calls/"+onAir.Call, speaker, nil, http.StatusOK, &rep)
	if rep.Active() {
		t.Errorf("call %s still on air after the speaker's end message", onAir.Call)
	}
}

// failFrames publishes starts and ends but no audio frame: the broker link
// is gone for frames.
type failFrames struct{ recordLive }

func (f *failFrames) SendLive(ctx context.Context, area string, l protocol.Live) error {
	if l.Kind == protocol.LiveAudio {
		return errors.New("not connected")
	}
	return f.recordLive.SendLive(ctx, area, l)
}

// TestLiveBrokerGoneEndsAfterASecond: docs/live.md, "after a second of
// them the call ends with reason broker unavailable". It took 25 frames, a
// second of the old 40 ms frames but 1.5 s of the 60 ms ones sent now.
func TestLiveBrokerGoneEndsAfterASecond(t *testing.T) {
	ff := &failFrames{}
	e := newEnv(t, func(s *lhttp.Server) { s.Live = ff })
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ws, onAir := dialRaw(t, e, speaker, "12346")
	sec := make([]byte, 2*16000)
	for range 2 {
		if err := ws.Write(t.Context(), websocket.MessageBinary, sec); err != nil {
			break // the server may have closed already
		}
	}
	c := waitEndedAny(t, e, speaker, onAir.Call)
	if c.EndReason != loaxa.LiveEndBroker {
		t.Fatalf("ended %q, want %q", c.EndReason, loaxa.LiveEndBroker)
	}
	frame := 60 * time.Millisecond
	if d := time.Duration(c.FramesDropped) * frame; d > time.Second+frame {
		t.Errorf("call ended after %d frames (%v of audio) not published, want about a second", c.FramesDropped, d)
	}
}

// areaFaults publishes like recordLive, but audio frames to area fail
// fail, and those to area slow wait until release is closed.
type areaFaults struct {
	recordLive
	fail, slow string
	release    chan struct{}
}

func (f *areaFaults) SendLive(ctx context.Context, area string, l protocol.Live) error {
	if l.Kind == protocol.LiveAudio {
		switch area {
		case f.fail:
			return errors.New("publish refused")
		case f.slow:
			select {
			case <-f.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return f.recordLive.SendLive(ctx, area, l)
}

// readUntil reads the speaker's statuses until one that ok accepts.
func readUntil(t *testing.T, ws *websocket.Conn, ok func(liveclient.Status) bool) liveclient.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("no status as wanted: %v", err)
		}
		var st liveclient.Status
		if typ != websocket.MessageText || json.Unmarshal(b, &st) != nil {
			continue
		}
		if ok(st) {
			return st
		}
		if st.State == "ended" {
			t.Fatalf("call ended before the status wanted: %+v", st)
		}
	}
}

// TestLiveFailingAreaLosesOnlyItsFrames: a call to three communes whose
// frames to one cannot be published. The other two communes heard it
// whole only while that went on for less than a second: then the call
// ended for all three as "broker unavailable". The others must get every
// frame, the speaker be told which area is not reached, and the call go on
// until the speaker stops.
func TestLiveFailingAreaLosesOnlyItsFrames(t *testing.T) {
	faults := &areaFaults{fail: "12347"}
	e := newEnv(t, func(s *lhttp.Server) { s.Live = faults })
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12348", "name": "Xã Tiên Cường", "parent": "318"}, http.StatusCreated, nil)
	speaker := e.addUser("huyen", loaxa.RoleDistrict, "318")
	ws, onAir := dialRaw(t, e, speaker, "12346,12347,12348")

	sec := make([]byte, 2*16000) // two seconds, 33 frames and a part
	for range 2 {
		if err := ws.Write(t.Context(), websocket.MessageBinary, sec); err != nil {
			t.Fatal(err)
		}
	}
	st := readUntil(t, ws, func(st liveclient.Status) bool { return len(st.FailingAreas) > 0 })
	if st.State != "on_air" || !slices.Equal(st.FailingAreas, []string{"12347"}) || !strings.Contains(st.Detail, "publish refused") {
		t.Errorf("status %+v, want on air with 12347 failing, and why", st)
	}
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"end"}`)); err != nil {
		t.Fatal(err)
	}
	st = readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "ended" })
	if st.Reason != loaxa.LiveEndSpeakerStopped || st.Frames != 34 {
		t.Errorf("end %+v, want speaker stopped after 34 frames", st)
	}
	whole := slices.Concat([]string{"start"}, slices.Repeat([]string{"audio"}, 34), []string{"end"})
	for _, area := range []string{"12346", "12348"} {
		if got := faults.of(onAir.Call, area); !slices.Equal(got, whole) {
			t.Errorf("published to %s: %q, want start, 34 frames, end", area, got)
		}
	}
	if got := faults.of(onAir.Call, "12347"); !slices.Equal(got, []string{"start", "end"}) {
		t.Errorf("published to 12347: %q, want start and end", got)
	}
	c := waitEndedAny(t, e, speaker, onAir.Call)
	if c.FramesSent != 34 || c.FramesDropped != 34 {
		t.Errorf("record: %d frames sent, %d dropped; want 34 and 34 (all of 12347's)", c.FramesSent, c.FramesDropped)
	}
}

// TestLiveSlowAreaDoesNotHoldOthersBack: the frames went out area after
// area, so a commune whose publish was slow held back every other
// commune's audio. The others must get their frames while it waits.
func TestLiveSlowAreaDoesNotHoldOthersBack(t *testing.T) {
	faults := &areaFaults{slow: "12346", release: make(chan struct{})}
	e := newEnv(t, func(s *lhttp.Server) { s.Live = faults })
	e.tree()
	speaker := e.addUser("huyen", loaxa.RoleDistrict, "318")
	ws, onAir := dialRaw(t, e, speaker, "12346,12347")
	released := false
	defer func() {
		if !released {
			close(faults.release)
		}
	}()
	if err := ws.Write(t.Context(), websocket.MessageBinary, voice); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(faults.of(onAir.Call, "12347")) < 6; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("published to 12347 while 12346 waits: %q, want start and 5 frames", faults.of(onAir.Call, "12347"))
		}
	}
	close(faults.release)
	released = true
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"end"}`)); err != nil {
		t.Fatal(err)
	}
	if st := readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "ended" }); st.Reason != loaxa.LiveEndSpeakerStopped || st.Frames != 5 {
		t.Errorf("end %+v, want speaker stopped after 5 frames", st)
	}
	for _, area := range []string{"12346", "12347"} {
		if got := faults.of(onAir.Call, area); len(got) != 7 || got[6] != "end" {
			t.Errorf("published to %s: %q, want start, 5 frames, end", area, got)
		}
	}
}

// holdControl publishes like recordLive, but a start or an end to an area
// waits until the channel held for that area and kind is closed.
type holdControl struct {
	recordLive
	hold map[string]chan struct{} // by area+" "+kind
}

func (h *holdControl) SendLive(ctx context.Context, area string, l protocol.Live) error {
	if gate, ok := h.hold[area+" "+l.Kind]; ok {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.recordLive.SendLive(ctx, area, l)
}

// has reports whether a message of kind went to area.
func (h *holdControl) has(area, kind string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.sent, func(m areaLive) bool { return m.area == area && m.l.Kind == kind })
}

// TestLiveSlowAreaDoesNotHoldOthersStartOrEnd: a call's start and end went
// to its areas one after another, each waiting for the broker to take it,
// so a commune whose publish was slow kept the others' nodes from
// starting (and ending) the call. Each area's start and end must go out
// while another area's waits (the call on air meanwhile:
// TestLiveSlowAreaStartDoesNotHoldTheCallOffAir).
func TestLiveSlowAreaDoesNotHoldOthersStartOrEnd(t *testing.T) {
	startHeld, endHeld := make(chan struct{}), make(chan struct{})
	hc := &holdControl{hold: map[string]chan struct{}{"12346 start": startHeld, "12346 end": endHeld}}
	e := newEnv(t, func(s *lhttp.Server) { s.Live = hc })
	e.tree()
	speaker := e.addUser("huyen", loaxa.RoleDistrict, "318")
	var once [2]sync.Once
	release := func(i int, c chan struct{}) { once[i].Do(func() { close(c) }) }
	defer release(0, startHeld)
	defer release(1, endHeld)

	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.ts.URL, "http")+"/api/v1/live?areas=12346,12347",
		&websocket.DialOptions{HTTPClient: e.ts.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + speaker}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	waitFor("no start published to 12347 while 12346's waits", func() bool { return hc.has("12347", protocol.LiveStart) })
	release(0, startHeld)
	onAir := readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "on_air" && len(st.FailingAreas) == 0 })
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"end"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor("no end published to 12347 while 12346's waits", func() bool { return hc.has("12347", protocol.LiveEnd) })
	release(1, endHeld)
	if st := readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "ended" }); st.Reason != loaxa.LiveEndSpeakerStopped {
		t.Errorf("end %+v, want speaker stopped", st)
	}
	for _, area := range []string{"12346", "12347"} {
		if got := hc.of(onAir.Call, area); !slices.Equal(got, []string{"start", "end"}) {
			t.Errorf("published to %s: %q, want start and end", area, got)
		}
	}
}

// TestLiveSlowAreaStartDoesNotHoldTheCallOffAir: the call went on air (the
// officer's "on air", and its frames) only once every area's start was
// answered, so one commune whose broker path was slow held the officer's
// "you are on air" and every other commune's audio until its publish timed
// out. The call must go on air once an area has taken its start, the
// first status naming the area not started yet, its frames go to the
// areas that started, and the slow area get its start, then its frames,
// when its broker answers (and a status saying every area is reached).
func TestLiveSlowAreaStartDoesNotHoldTheCallOffAir(t *testing.T) {
	startHeld := make(chan struct{})
	hc := &holdControl{hold: map[string]chan struct{}{"12346 start": startHeld}}
	e := newEnv(t, func(s *lhttp.Server) { s.Live = hc })
	e.tree()
	speaker := e.addUser("huyen", loaxa.RoleDistrict, "318")
	released := false
	defer func() {
		if !released {
			close(startHeld)
		}
	}()

	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.ts.URL, "http")+"/api/v1/live?areas=12346,12347",
		&websocket.DialOptions{HTTPClient: e.ts.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + speaker}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("no status while area 12346's start waits: one area holds the call off the air (%v)", err)
	}
	var onAir liveclient.Status
	if err := json.Unmarshal(b, &onAir); err != nil {
		t.Fatal(err)
	}
	if onAir.State != "on_air" || !slices.Equal(onAir.FailingAreas, []string{"12346"}) || !strings.Contains(onAir.Detail, "12346: start not yet taken") {
		t.Fatalf("first status %+v, want on air with 12346 named as not started yet", onAir)
	}
	if err := ws.Write(t.Context(), websocket.MessageBinary, voice); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(hc.of(onAir.Call, "12347")) < 6; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("published to 12347 while 12346's start waits: %q, want start and 5 frames", hc.of(onAir.Call, "12347"))
		}
	}
	close(startHeld)
	released = true
	readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "on_air" && len(st.FailingAreas) == 0 })
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"end"}`)); err != nil {
		t.Fatal(err)
	}
	if st := readUntil(t, ws, func(st liveclient.Status) bool { return st.State == "ended" }); st.Reason != loaxa.LiveEndSpeakerStopped || st.Frames != 5 {
		t.Errorf("end %+v, want speaker stopped after 5 frames", st)
	}
	whole := slices.Concat([]string{"start"}, slices.Repeat([]string{"audio"}, 5), []string{"end"})
	for _, area := range []string{"12346", "12347"} {
		if got := hc.of(onAir.Call, area); !slices.Equal(got, whole) {
			t.Errorf("published to %s: %q, want its start, then 5 frames, then its end", area, got)
		}
	}
}

// BenchmarkListLiveCallsOnAirOfAProvinceCall is the request each console
// watching the calls on air makes every 3 s (GET
// /api/v1/live/calls?active=true&summary=true) while a province-wide call
// is on air: 5,000 nodes in 50 communes, all online, as a province
// officer sees it.
func BenchmarkListLiveCallsOnAirOfAProvinceCall(b *testing.B) {
	e := newEnv(b)
	e.tree()
	ctx := context.Background()
	var ns []*loaxa.Node
	for c := range 50 {
		area := fmt.Sprintf("9%04d", c)
		if err := e.stores.areas.CreateArea(ctx, &loaxa.Area{ID: area, Name: area, Parent: "318"}); err != nil {
			b.Fatal(err)
		}
		for n := range 100 {
			ns = append(ns, &loaxa.Node{ID: fmt.Sprintf("p%02d-%03d", c, n), Area: area, SecretHash: loaxa.HashSecret("s")})
		}
	}
	if err := e.stores.nodes.CreateNodes(ctx, ns); err != nil {
		b.Fatal(err)
	}
	for _, n := range ns {
		if err := e.stores.nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) { s.State = loaxa.NodeOnline }); err != nil {
			b.Fatal(err)
		}
	}
	c := &loaxa.LiveCall{ID: "live-1", CreatedBy: "admin", Areas: []string{"31"}, Priority: protocol.PriorityEmergency}
	if _, err := e.live.BeginCall(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := e.live.EndCall(ctx, c.ID, loaxa.LiveCallEnd{Reason: loaxa.LiveEndSpeakerStopped}); err != nil {
			b.Error(err)
		}
	})
	province := e.addUser("tinh", loaxa.RoleProvince, "31")
	b.ReportAllocs()
	for b.Loop() {
		var list struct {
			Calls []struct {
				ID      string
				Summary loaxa.LiveCallSummary
			}
		}
		e.call("GET", "/api/v1/live/calls?active=true&summary=true", province, nil, http.StatusOK, &list)
		if len(list.Calls) != 1 || list.Calls[0].Summary.Targeted != len(ns)+2 || list.Calls[0].Summary.Pending != len(ns) {
			b.Fatalf("calls on air %+v, want the province's call to %d nodes, %d online", list.Calls, len(ns)+2, len(ns))
		}
	}
}

// TestLiveCallCutOffByAnAlertTold: walking docs/live.md, an officer spoke
// to commune 12346 and a typhoon alert to the commune cut the call off on
// every cluster (each reported it preempted); the speaker's status said
// nothing and `controller live` went on sending seven seconds of speech no
// speaker played. The speaker is now told, as it happens, how many
// clusters an alert cut the call off on (the call is not resumed there).
func TestLiveCallCutOffByAnAlertTold(t *testing.T) {
	e := newEnv(t)
	e.tree()
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ctx, call, statuses := dialOnAir(t, e, speaker, "12346")
	id := call.ID()
	record := func(ev protocol.Event) {
		t.Helper()
		_, stored, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "x", Events: []protocol.Event{ev}}, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.live.Events("n-a", stored)
	}
	ev := func(seq uint64, typ protocol.EventType) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: e.clock.Now(), Occurrence: id, Announcement: id}
	}
	record(ev(1, protocol.EventReceived))
	record(ev(2, protocol.EventStarted))
	record(ev(3, protocol.EventPreempted))
	for told := false; !told; {
		select {
		case st := <-statuses:
			told = st.Preempted == 1
		case <-ctx.Done():
			t.Fatal("the speaker was not told that an alert cut the call off on n-a")
		}
	}
	if _, err := call.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, speaker, id, loaxa.LiveEndSpeakerStopped)
}

// TestLiveCallCutOffOnEveryClusterTold: the speaker was told on how many
// clusters an alert cut the call off, but not of how many: the console
// could not tell "1 of 2" from "every one", when the call is no longer
// heard at all and the officer, talking on, speaks to no one. Each on_air
// status says how many clusters the call is for (nodes).
func TestLiveCallCutOffOnEveryClusterTold(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-c", "name": "Cụm loa thôn Đông", "area": "12346", "lat": 20.72, "lon": 106.55},
		http.StatusCreated, nil)
	speaker := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	ctx, call, statuses := dialOnAir(t, e, speaker, "12346")
	id := call.ID()
	cutOff := func(node string) {
		t.Helper()
		var evs []protocol.Event
		for i, typ := range []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventPreempted} {
			evs = append(evs, protocol.Event{Seq: uint64(i + 1), Type: typ, At: e.clock.Now(), Occurrence: id, Announcement: id})
		}
		_, stored, err := e.stores.events.RecordEvents(t.Context(), node, protocol.EventBatch{Epoch: "x", Events: evs}, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.live.Events(node, stored)
	}
	// told waits for the status saying preempted of nodes.
	told := func(preempted, nodes int) {
		t.Helper()
		var last liveclient.Status
		for {
			select {
			case st := <-statuses:
				if last = st; st.Preempted == preempted && st.Nodes == nodes {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the speaker was not told the call was cut off on %d of %d clusters; last told %d of %d", preempted, nodes, last.Preempted, last.Nodes)
			}
		}
	}
	cutOff("n-a")
	told(1, 2)
	cutOff("n-c")
	told(2, 2)
	if _, err := call.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, speaker, id, loaxa.LiveEndSpeakerStopped)
}

// dialOnAir puts a call from the user of token to area on air through
// liveclient, as `controller live` does, and returns a context that ends
// 10 s on (the bound of the test's waits), the call, and the speaker's
// "on_air" statuses as they come.
func dialOnAir(t *testing.T, e *env, token, area string) (context.Context, *liveclient.Call, <-chan liveclient.Status) {
	t.Helper()
	statuses := make(chan liveclient.Status, 16)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: e.ts.URL, Token: token, Areas: []string{area}, Client: e.ts.Client(),
		OnStatus: func(st liveclient.Status) {
			if st.State == "on_air" {
				statuses <- st
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, call, statuses
}
