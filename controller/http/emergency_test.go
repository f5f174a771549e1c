package http_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/protocol"
)

// TestEmergencySend: one signed publish per targeted area, nested targets
// folded into their ancestor, the alert carrying the template, the level,
// the drill mark and an expiry; deliveries pending for every node.
func TestEmergencySend(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{
		"content_id": ct.ID, "targets": []string{"12346", "318"}, "drill": true, "volume": 5, "repeat": 2,
	}, http.StatusCreated, &em)
	if len(em.Targets) != 1 || em.Targets[0] != "318" {
		t.Errorf("targets %v, want 12346 folded into 318", em.Targets)
	}
	sent := e.alerts.commands()
	if len(sent) != 1 || sent[0].scope != "area" || sent[0].id != "318" || sent[0].cmd.Name != protocol.CmdAlert {
		t.Fatalf("sent %+v, want one alert on area 318", sent)
	}
	o := sent[0].cmd.Alert.Occurrence
	if o.ID != em.Occurrence || o.Priority != protocol.PriorityEmergency || !o.Drill || o.Volume != 5 || o.Repeat != 2 ||
		o.OpeningChime == "" || o.ClosingChime == "" || o.Expires.IsZero() || !o.Start.After(em.Issued) {
		t.Errorf("alert occurrence %+v", o)
	}
	if err := sent[0].cmd.Alert.Validate(); err != nil {
		t.Errorf("the alert sent does not validate: %v", err)
	}
	if o.Intro != "" {
		t.Errorf("alert without an intro names intro %q", o.Intro)
	}
	if want := em.Expires.Sub(e.clock.Now()); sent[0].ttl != want {
		t.Errorf("alert valid for %v, want until the expiry (%v)", sent[0].ttl, want)
	}
	var rep loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Summary.Targeted != 2 || len(rep.Nodes) != 2 {
		t.Errorf("report %+v", rep.Summary)
	}
	ds, err := e.stores.deliveries.FindDeliveries(context.Background(), loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.State != loaxa.DeliveryPending || d.Priority != protocol.PriorityEmergency || d.Occurrence != em.Occurrence || d.PlannedMS != em.PlannedMS {
			t.Errorf("delivery %+v", d)
		}
	}
	if len(ds) != 2 {
		t.Errorf("%d deliveries, want one per node", len(ds))
	}
	// The scheduler's clean-up of deliveries it no longer plans leaves
	// emergencies alone.
	if err := e.stores.deliveries.DropDeliveries(context.Background(), map[string]map[string]bool{"n-a": {}}, t0.Add(-time.Hour), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if ds, _ := e.stores.deliveries.FindDeliveries(context.Background(), loaxa.DeliveryFilter{Announcement: em.ID}); len(ds) != 2 {
		t.Errorf("DropDeliveries dropped an emergency delivery: %d left", len(ds))
	}

	// Cancel: one cancel per area, then no second cancel.
	e.call("POST", "/api/v1/emergency/"+em.ID+"/cancel", e.admin, nil, http.StatusOK, nil)
	sent = e.alerts.commands()
	if last := sent[len(sent)-1]; last.cmd.Name != protocol.CmdAlertCancel || last.cmd.Occurrence != em.Occurrence || last.id != "318" {
		t.Errorf("cancel sent %+v", last)
	}
	// The console says the second in the officer's words, by its reason.
	var refused struct {
		Error struct{ Reason string } `json:"error"`
	}
	e.call("POST", "/api/v1/emergency/"+em.ID+"/cancel", e.admin, nil, http.StatusConflict, &refused)
	if refused.Error.Reason != loaxa.ReasonEmergencyStopped {
		t.Errorf("second cancel refused with reason %q, want %q", refused.Error.Reason, loaxa.ReasonEmergencyStopped)
	}
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.State != loaxa.EmergencyCancelled || rep.Summary.Cancelled != 2 {
		t.Errorf("after cancel: state %s, summary %+v", rep.State, rep.Summary)
	}
}

// TestEmergencyStopOfAnExpiredOneSaysWhy: a stop after the expiry is
// refused with its reason, for the console to say it in the officer's
// words (before, the API's English only).
func TestEmergencyStopOfAnExpiredOneSaysWhy(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"318"}, "drill": true}, http.StatusCreated, &em)
	e.clock.Set(em.Expires)
	var refused struct {
		Error struct{ Reason string } `json:"error"`
	}
	e.call("POST", "/api/v1/emergency/"+em.ID+"/cancel", e.admin, nil, http.StatusConflict, &refused)
	if refused.Error.Reason != loaxa.ReasonEmergencyExpired {
		t.Errorf("cancel after the expiry refused with reason %q, want %q", refused.Error.Reason, loaxa.ReasonEmergencyExpired)
	}
}

// TestEmergencyWithIntro: a kept warning named as the intro goes with the
// alert, after the chime and before the typed message.
func TestEmergencyWithIntro(t *testing.T) {
	e := newEnv(t)
	e.tree()
	kept := e.upload(e.admin, "song-than.wav", wav(16000, 1, 32000), "Cảnh báo sóng thần", http.StatusCreated)
	ct := e.upload(e.admin, "chi-tiet.wav", wav(16000, 1, 16000), "Chi tiết", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{
		"content_id": ct.ID, "intro_content_id": kept.ID, "targets": []string{"12346"}, "drill": true,
	}, http.StatusCreated, &em)
	sent := e.alerts.commands()
	if em.IntroContentID != kept.ID || len(sent) != 1 || sent[0].cmd.Alert.Occurrence.Intro != kept.ID {
		t.Fatalf("emergency intro %q, sent %+v; want %s in both", em.IntroContentID, sent, kept.ID)
	}
}

// TestEmergencyBadRequests: every wrong request says what was wrong and
// sends nothing.
func TestEmergencyBadRequests(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	future := t0.Add(time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		body   map[string]any
		status int
		want   string
	}{
		{map[string]any{"content_id": ct.ID}, 400, "targets"},
		{map[string]any{"content_id": ct.ID, "targets": []string{"nowhere"}}, 400, "nowhere"},
		{map[string]any{"content_id": ct.ID, "targets": "31"}, 400, "targets"},
		{map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "volume": -1}, 400, "volume"},
		{map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "repeat": 11}, 400, "repeat"},
		{map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "expires": "tomorrow"}, 400, "RFC 3339"},
		{map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "expires": t0.Add(-time.Minute).Format(time.RFC3339)}, 400, "expires"},
		{map[string]any{"content_id": strings.Repeat("ab", 32), "targets": []string{"31"}, "expires": future}, 400, "does not exist"},
		{map[string]any{"content_id": ct.ID, "intro_content_id": strings.Repeat("ab", 32), "targets": []string{"31"}}, 400, "intro_content_id"},
		{map[string]any{"targets": []string{"31"}}, 400, "content_id"},
		{map[string]any{"text": "Bão số 3", "targets": []string{"31"}}, 503, "content_id"}, // no speech engine here
	} {
		r := e.call("POST", "/api/v1/emergency", e.admin, c.body, c.status, nil)
		if !strings.Contains(string(r.body), c.want) {
			t.Errorf("%v: %s, want a message naming %q", c.body, r.body, c.want)
		}
	}
	if sent := e.alerts.commands(); len(sent) != 0 {
		t.Errorf("bad requests sent %+v", sent)
	}
	e.call("GET", "/api/v1/emergency/e999999", e.admin, nil, http.StatusNotFound, nil)
}

// TestEmergencyZeroVolumeOrRepeatRefused: an officer who sent a drill
// with "volume": 0, meaning it to be silent or as quiet as can be, had it
// sound at full volume on every speaker of the commune, and "repeat": 0
// played the message three times: a 0 written in the request was taken
// as "not given". Volume and repeat are 1–15 and 1–10, for an alert and
// its all-clear alike: a 0 is refused (400 naming the field) before
// anything is read out, stored or sent, and the alert sounding is left
// alone.
func TestEmergencyZeroVolumeOrRepeatRefused(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	for _, c := range []struct {
		field string
		body  map[string]any
	}{
		{"volume", map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "drill": true, "volume": 0}},
		{"repeat", map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "repeat": 0}},
		// Refused before the text is read out (no speech engine here: 503).
		{"volume", map[string]any{"text": "Diễn tập phòng chống bão.", "targets": []string{"12346"}, "drill": true, "volume": 0}},
	} {
		r := e.call("POST", "/api/v1/emergency", e.admin, c.body, http.StatusBadRequest, nil)
		if !strings.Contains(string(r.body), c.field+" 0: give 1 to") {
			t.Errorf("%v: %s; want a message saying %s 0 is out of range", c.body, r.body, c.field)
		}
	}
	if sent := e.alerts.commands(); len(sent) != 0 {
		t.Fatalf("refused requests sent %+v", sent)
	}
	var list struct{ Emergencies []loaxa.Emergency }
	e.call("GET", "/api/v1/emergency", e.admin, nil, http.StatusOK, &list)
	if len(list.Emergencies) != 0 {
		t.Fatalf("refused requests stored %+v", list.Emergencies)
	}

	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "drill": true, "volume": 3}, http.StatusCreated, &em)
	for _, field := range []string{"volume", "repeat"} {
		r := e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": ct.ID, field: 0}, http.StatusBadRequest, nil)
		if !strings.Contains(string(r.body), field+" 0: give 1 to") {
			t.Errorf("all-clear with %s 0: %s; want a message saying it is out of range", field, r.body)
		}
	}
	if st := e.emergencyState(em.ID); st != loaxa.EmergencyActive {
		t.Errorf("after refused all-clears the alert is %s; want it still active", st)
	}
	// Left out, they take their defaults.
	var ac loaxa.Emergency
	e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": ct.ID}, http.StatusCreated, &ac)
	if ac.Volume != protocol.MaxVolume || ac.Repeat != 1 {
		t.Errorf("all-clear without volume or repeat: volume %d, repeat %d; want %d and 1", ac.Volume, ac.Repeat, protocol.MaxVolume)
	}
}

// TestEmergencyUnavailable: a controller without the service says so.
func TestEmergencyUnavailable(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.EmergencyService = nil })
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": "x", "targets": []string{"31"}}, http.StatusServiceUnavailable, nil)
}

// TestAllClearWhileTheBrokerIsAway: an all-clear sent while the broker is
// away cancels the alert (the cancel stored, to follow the nodes) and is
// itself kept: one press, answered 503 with the all-clear, whose board the
// console opens.
func TestAllClearWhileTheBrokerIsAway(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}}, http.StatusCreated, &em)
	e.alerts.setAway(errors.New("not connected to the broker at tcp://mqtt.haiphong.example:1883"))
	var answer struct {
		Error     struct{ Code, Message string }
		Emergency *loaxa.Emergency
	}
	e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": ct.ID}, http.StatusServiceUnavailable, &answer)
	if answer.Emergency == nil || answer.Emergency.Kind != loaxa.EmergencyAllClear || answer.Emergency.Follows != em.ID {
		t.Fatalf("all-clear with the broker away answered %+v, want 503 with the all-clear kept", answer)
	}
	if st := e.emergencyState(em.ID); st != loaxa.EmergencyCancelled {
		t.Errorf("the alert after its all-clear: %s, want cancelled", st)
	}
}

// TestAllClearAuditSaysDrill: the all-clear of a drill that still plays
// cancels it first; that cancel's audit entry says drill=true like every
// other entry of the drill (send, cancel, all-clear), so the audit log
// cannot be read as a real alert stopped.
func TestAllClearAuditSaysDrill(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "drill": true}, http.StatusCreated, &em)
	e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": ct.ID}, http.StatusCreated, nil)
	entries, err := e.stores.audit.FindAudit(context.Background(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range entries {
		if !strings.HasPrefix(a.Action, "emergency.") {
			continue
		}
		seen[a.Action] = true
		if !strings.Contains(a.Detail, "drill=true") {
			t.Errorf("audit %s %s: detail %q does not say drill=true", a.Action, a.Target, a.Detail)
		}
	}
	for _, action := range []string{"emergency.send", "emergency.cancel", "emergency.all_clear"} {
		if !seen[action] {
			t.Errorf("no audit entry %s", action)
		}
	}
}

// TestEmergencyReportSaysContentFetched: a node that did not have the
// alert's audio fetches it at once; while it does, the report counts it
// fetching; then it says so (fetched) and when it had it
// (content_ready_ms after the issue), next to a node that had it stored.
func TestEmergencyReportSaysContentFetched(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"318"}}, http.StatusCreated, &em)
	at := em.Issued.Add(40 * time.Millisecond)
	ev := func(seq uint64, typ protocol.EventType, at time.Time) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: at, Occurrence: em.Occurrence, Announcement: em.ID, Content: ct.ID}
	}
	record := func(node string, events ...protocol.Event) {
		t.Helper()
		if _, _, err := e.stores.events.RecordEvents(t.Context(), node, protocol.EventBatch{Epoch: "e1", Events: events}, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	record("n-a", ev(1, protocol.EventReceived, at), ev(2, protocol.EventContentReady, at)) // stored
	record("n-b", ev(1, protocol.EventReceived, at))                                        // fetching
	var rep loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Summary.Fetching != 1 || rep.ByArea["12347"].Fetching != 1 || rep.ByArea["12346"].Fetching != 0 {
		t.Errorf("while n-b fetches: summary %+v, by area %+v; want 1 fetching, in 12347", rep.Summary, rep.ByArea)
	}
	// It starts with its chime at the shared start, the message still to
	// come: sounding, and still fetching.
	chime := ev(2, protocol.EventStarted, at.Add(300*time.Millisecond))
	chime.ContentPending = true
	record("n-b", chime)
	rep = loaxa.EmergencyReport{}
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Summary.Fetching != 1 || rep.Summary.Sounding != 1 {
		t.Errorf("n-b sounding its chime, fetching its message: summary %+v; want 1 sounding, 1 fetching", rep.Summary)
	}
	record("n-b", ev(3, protocol.EventContentReady, at.Add(800*time.Millisecond))) // fetched
	rep = loaxa.EmergencyReport{}
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Summary.Fetching != 0 {
		t.Errorf("after n-b has it: %d fetching", rep.Summary.Fetching)
	}
	want := map[string]struct {
		fetched bool
		readyMS int64
	}{"n-a": {false, 40}, "n-b": {true, 840}}
	for _, n := range rep.Nodes {
		w := want[n.Node]
		if n.Fetched != w.fetched || n.ContentReadyMS == nil || *n.ContentReadyMS != w.readyMS || !n.ContentReady {
			got := "nil"
			if n.ContentReadyMS != nil {
				got = fmt.Sprint(*n.ContentReadyMS)
			}
			t.Errorf("node %s: fetched %v, content_ready_ms %s; want fetched %v, %d ms", n.Node, n.Fetched, got, w.fetched, w.readyMS)
		}
	}
}

// TestAllClearRefusedLeavesTheAlert: an all-clear request the service
// refuses (repeat out of range) is answered 400 and changes nothing: the
// alert it would follow goes on sounding. It was cancelled on every
// speaker first, by a request that then sent no all-clear.
func TestAllClearRefusedLeavesTheAlert(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}}, http.StatusCreated, &em)
	r := e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": ct.ID, "repeat": 20}, http.StatusBadRequest, nil)
	if !strings.Contains(string(r.body), "repeat") {
		t.Errorf("answer %s, want it to name repeat", r.body)
	}
	if st := e.emergencyState(em.ID); st != loaxa.EmergencyActive {
		t.Errorf("after a refused all-clear the alert is %s; want it still active", st)
	}
	for _, c := range e.alerts.commands() {
		if c.cmd.Name == protocol.CmdAlertCancel {
			t.Errorf("a refused all-clear sent %s to %s/%s", c.cmd.Name, c.scope, c.id)
		}
	}
}

// TestAllClearBadRequestsNameItsOwnFields: an operator who sent an empty
// all-clear, or one with a misspelt field, was told to send the fields of
// an alert — targets, drill, expires among them — which the all-clear then
// refuses. An all-clear's bad request names the all-clear's own fields,
// and one that names areas, a drill or an expiry says why they are not
// its to choose; none of them stops the alert.
func TestAllClearBadRequestsNameItsOwnFields(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}}, http.StatusCreated, &em)
	const fields = "content_id, text, intro_content_id, voice, rate, title, repeat, volume."
	const goesWhereItsAlertWent = "An all-clear goes to the areas of the emergency it follows, as a drill if that was one"
	for _, c := range []struct {
		name, body, want string
	}{
		{"empty", "", "The request body is empty; send a JSON object with the fields " + fields},
		{"misspelt", `{"txt":"Bão đã tan."}`, `Unknown field "txt"; the accepted fields are ` + fields},
		{"areas", `{"text":"Bão đã tan.","targets":["12346"]}`, goesWhereItsAlertWent},
		{"drill", `{"content_id":"` + ct.ID + `","drill":true}`, goesWhereItsAlertWent},
		{"expiry", `{"content_id":"` + ct.ID + `","expires":"2026-03-02T06:00:00+07:00"}`, goesWhereItsAlertWent},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.request("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, "application/json", strings.NewReader(c.body))
			var ans struct {
				Error struct{ Code, Message string }
			}
			if err := jsonUnmarshal(r.body, &ans); err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusBadRequest || !strings.Contains(ans.Error.Message, c.want) {
				t.Errorf("%d %q; want 400 saying %q", r.status, ans.Error.Message, c.want)
			}
		})
	}
	if st := e.emergencyState(em.ID); st != loaxa.EmergencyActive {
		t.Errorf("after refused all-clears the alert is %s; want it still active", st)
	}
}

// allClearGate holds alert publishes until release, saying on entered
// that one began.
type allClearGate struct {
	*fakeAlerts
	entered chan struct{}
	release chan struct{}
}

func (g *allClearGate) SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	if cmd.Name == protocol.CmdAlert {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.fakeAlerts.SendAreaCommand(ctx, area, cmd, ttl)
}

// TestAllClearOnlyOnce: two presses of all-clear for one alert (a
// double click, or two officers) while the first is being published: the
// second is refused (409), and one all-clear plays on every speaker, not
// two.
func TestAllClearOnlyOnce(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}}, http.StatusCreated, &em)
	g := &allClearGate{fakeAlerts: e.alerts, entered: make(chan struct{}, 2), release: make(chan struct{})}
	e.emergency.Messenger = g
	body := `{"content_id":"` + ct.ID + `"}`
	status := make(chan int, 2)
	press := func() {
		r := e.request("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, "application/json", strings.NewReader(body))
		status <- r.status
	}
	go press()
	<-g.entered // the first all-clear is being published
	go press()
	answered := 0
	select {
	case <-g.entered:
		t.Errorf("a second all-clear for %s is being published while the first is", em.ID)
	case st := <-status:
		answered++
		if st != http.StatusConflict {
			t.Errorf("second press: %d, want 409", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second press did not answer")
	}
	close(g.release)
	var got []int
	for range 2 - answered {
		got = append(got, <-status)
	}
	n := 0
	for _, c := range e.alerts.commands() {
		if c.cmd.Name == protocol.CmdAlert && c.cmd.Alert.Occurrence.Announcement != em.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d all-clears published for %s (answers %v), want 1", n, em.ID, got)
	}
}

// TestEmergencyReportSaysWhereAFaultKeptThePoleSilent: a cluster whose
// speaker line was cut while it played an alert played on into the cut
// line and reported the alert completed; GET /emergency/{id} said
// "completed" like any other, and an officer reading the report believed
// the residents near that pole had heard the warning (the console's
// board warned from the alarm only while it sounded). A node that began
// the alert with a fault that keeps it silent open while it played (the
// board's own reading, here the simulator's cut line) now says which in
// silenced_by, and the summary counts it (silenced); a fault that came
// after its play ended does not.
func TestEmergencyReportSaysWhereAFaultKeptThePoleSilent(t *testing.T) {
	e := newEnv(t)
	e.tree()
	cut, err := board.New(e.clock, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	sound := cut.Snapshot()
	e.observe("n-a", sound)
	e.observe("n-b", sound)
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")
	e.clock.Advance(300 * time.Millisecond)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, em, protocol.Event{Seq: 1, Type: protocol.EventReceived}, protocol.Event{Seq: 2, Type: protocol.EventStarted})
	}
	e.clock.Advance(2 * time.Second)
	if err := cut.Inject(board.FaultSpeakerOpen, true); err != nil {
		t.Fatal(err)
	}
	e.observe("n-a", cut.Snapshot()) // its line cut while it plays
	e.clock.Advance(3 * time.Second)
	for _, n := range []string{"n-a", "n-b"} {
		// As a node reports it: how long it played, from its start.
		e.reportAlert(n, em, protocol.Event{Seq: 3, Type: protocol.EventCompleted, PlayedMS: 5000})
	}
	e.clock.Advance(time.Minute)
	e.observe("n-b", cut.Snapshot()) // its line cut after it played

	var rep loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	silenced := completedSilencedBy(t, &rep)
	if want := map[string][]string{"n-a": {loaxa.AlarmSpeakerOpen}}; !reflect.DeepEqual(silenced, want) {
		t.Errorf("silenced_by %v, want %v", silenced, want)
	}
	if rep.Summary.Completed != 2 || rep.Summary.Silenced != 1 || rep.ByArea["12346"].Silenced != 1 || rep.ByArea["12347"].Silenced != 0 {
		t.Errorf("summary %+v, by area %+v; want 2 completed, 1 silenced, in 12346", rep.Summary, rep.ByArea)
	}
}

// TestEmergencyReportSilencedByIsTheFaultHistoryOfThePlay: silenced_by
// read the faults open when the report was asked. Once the technician
// mended the cut speaker line, the typhoon alert's report no longer said
// that the cluster had played into it (the proof that residents near that
// pole did not hear it was lost); and a cluster whose line was cut after
// it played, but before its report of the end came in (a report window,
// a link down), was marked silenced. silenced_by now comes from the alarm
// history over each node's play (from its start for as long as it
// played), as the broadcast report's silenced does.
func TestEmergencyReportSilencedByIsTheFaultHistoryOfThePlay(t *testing.T) {
	e := newEnv(t)
	e.tree()
	sound, cut := soundAndCutBoards(t, e)
	e.observe("n-a", sound.Snapshot())
	e.observe("n-b", sound.Snapshot())
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")
	ds, err := e.stores.deliveries.FindDeliveries(t.Context(), loaxa.DeliveryFilter{Announcement: em.ID})
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries %v, %v; want n-a's and n-b's", ds, err)
	}
	start := ds[0].Start
	// report records events that happened at at, as the node sends them
	// now.
	report := func(node string, at time.Time, events ...protocol.Event) {
		t.Helper()
		for i := range events {
			events[i].At, events[i].Occurrence, events[i].Announcement, events[i].Content = at, em.Occurrence, em.ID, em.ContentID
		}
		if _, _, err := e.stores.events.RecordEvents(t.Context(), node, protocol.EventBatch{Epoch: "e1", Events: events}, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		e.emergency.Events(node, "e1", events)
	}
	e.clock.Set(start)
	for _, n := range []string{"n-a", "n-b"} {
		report(n, start, protocol.Event{Seq: 1, Type: protocol.EventReceived}, protocol.Event{Seq: 2, Type: protocol.EventStarted})
	}
	e.clock.Set(start.Add(2 * time.Second))
	e.observe("n-a", cut.Snapshot()) // n-a's line cut while it plays
	end := start.Add(5 * time.Second)
	e.clock.Set(end)
	report("n-a", end, protocol.Event{Seq: 3, Type: protocol.EventCompleted, PlayedMS: 5000})
	e.clock.Set(end.Add(5 * time.Second))
	e.observe("n-b", cut.Snapshot()) // n-b's line cut after it played...
	e.clock.Set(end.Add(30 * time.Second))
	report("n-b", end, protocol.Event{Seq: 3, Type: protocol.EventCompleted, PlayedMS: 5000}) // ...which it reports only now
	e.clock.Set(end.Add(time.Hour))
	e.observe("n-a", sound.Snapshot()) // the technician mends n-a's line

	var rep loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+em.ID, e.token("admin"), nil, http.StatusOK, &rep)
	silenced := completedSilencedBy(t, &rep)
	if want := map[string][]string{"n-a": {loaxa.AlarmSpeakerOpen}}; !reflect.DeepEqual(silenced, want) {
		t.Errorf("silenced_by %v, want %v: n-a played into its cut line (mended since), n-b's was cut after its play", silenced, want)
	}
	if rep.Summary.Silenced != 1 || rep.ByArea["12346"].Silenced != 1 || rep.ByArea["12347"].Silenced != 0 {
		t.Errorf("summary %+v, by area %+v; want 1 silenced, in 12346", rep.Summary, rep.ByArea)
	}
}
