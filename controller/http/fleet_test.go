package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// fakeMessenger records the commands the API sends.
type fakeMessenger struct {
	mu   sync.Mutex
	cmds []sentCommand
}

type sentCommand struct {
	node string
	cmd  protocol.Command
	ttl  time.Duration
}

var _ loaxa.Messenger = (*fakeMessenger)(nil)

func (f *fakeMessenger) PublishDesired(context.Context, *protocol.DesiredState) error { return nil }

func (f *fakeMessenger) SendNodeCommand(_ context.Context, node string, cmd protocol.Command, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, sentCommand{node, cmd, ttl})
	return nil
}

func (f *fakeMessenger) sent() []sentCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentCommand(nil), f.cmds...)
}

// observe feeds the health model a state of node, as the MQTT ingest does.
func (e *env) observe(node string, b protocol.Board) {
	e.t.Helper()
	at := e.clock.Now()
	if err := e.stores.nodes.UpdateNodeStatus(context.Background(), node, func(s *loaxa.NodeStatus) {
		s.State, s.LastSeen = loaxa.NodeOnline, at
	}); err != nil {
		e.t.Fatal(err)
	}
	e.health.ObserveState(context.Background(), node, &protocol.State{Status: protocol.StatusOnline, At: at, Board: &b}, at)
}

func TestNodeSettings(t *testing.T) {
	e := newEnv(t)
	e.tree()
	before := e.sched.changed.Load()
	var n loaxa.Node
	e.call("PATCH", "/api/v1/nodes/n-a/settings", e.admin, map[string]any{"volume": 7, "muted": true, "amplifier_policy": "always-on"}, http.StatusOK, &n)
	if n.Settings.Volume == nil || *n.Settings.Volume != 7 || !n.Settings.Muted || n.Settings.AmplifierPolicy != protocol.AmpAlwaysOn {
		t.Errorf("settings: %+v", n.Settings)
	}
	if e.sched.changed.Load() == before {
		t.Error("the scheduler was not told, so no desired state carries the settings")
	}
	// Partial: only muted changes; auto is stored as the default.
	n = loaxa.Node{}
	e.call("PATCH", "/api/v1/nodes/n-a/settings", e.admin, map[string]any{"muted": false, "amplifier_policy": "auto"}, http.StatusOK, &n)
	if n.Settings.Volume == nil || *n.Settings.Volume != 7 || n.Settings.Muted || n.Settings.AmplifierPolicy != "" {
		t.Errorf("after a partial change: %+v", n.Settings)
	}
	for _, tt := range []struct {
		body any
		want string
	}{
		{map[string]any{"volume": 16}, "volume 16 is out of range"},
		{map[string]any{"volume": -1}, "volume -1 is out of range"},
		{map[string]any{"amplifier_policy": "off"}, `always-on`},
		{map[string]any{}, "at least one of volume"},
		{map[string]any{"volume": "loud"}, "volume"},
	} {
		r := e.call("PATCH", "/api/v1/nodes/n-a/settings", e.admin, tt.body, http.StatusBadRequest, nil)
		if !strings.Contains(string(r.body), tt.want) {
			t.Errorf("%v: %s, want it to say %q", tt.body, r.body, tt.want)
		}
	}
	e.call("PATCH", "/api/v1/nodes/nope/settings", e.admin, map[string]any{"volume": 3}, http.StatusNotFound, nil)
	audit := e.auditActions()
	if !strings.Contains(audit, "node.settings n-a") {
		t.Errorf("audit log %s has no node.settings", audit)
	}
	// The settings given, as facts the console words; the request's JSON
	// ({"volume":null,"muted":false,…}) was shown as written.
	var details []string
	for _, x := range e.auditSeen(e.admin, "node.settings") {
		details = append(details, x.Detail)
	}
	if want := []string{"volume=7 muted=true amplifier_policy=always-on", "muted=false amplifier_policy=auto"}; !slices.Equal(details, want) {
		t.Errorf("node.settings details %q, want %q", details, want)
	}
}

func (e *env) auditActions() string {
	e.t.Helper()
	entries, err := e.stores.audit.FindAudit(context.Background(), loaxa.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range entries {
		b.WriteString(a.Action + " " + a.Target + " by " + a.Actor + "\n")
	}
	return b.String()
}

func TestNodeCommands(t *testing.T) {
	e := newEnv(t)
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	e.call("POST", "/api/v1/nodes/n-a/commands", tech, map[string]string{"name": "reboot"}, http.StatusAccepted, nil)
	e.call("POST", "/api/v1/nodes/n-a/commands", tech, map[string]string{"name": "state-now"}, http.StatusAccepted, nil)
	r := e.call("POST", "/api/v1/nodes/n-a/commands", tech, map[string]string{"name": "self-destruct"}, http.StatusBadRequest, nil)
	if !strings.Contains(string(r.body), "reboot") {
		t.Errorf("unknown command answer does not list the known ones: %s", r.body)
	}
	// n-b is in 12347, outside the technician's commune.
	e.call("POST", "/api/v1/nodes/n-b/commands", tech, map[string]string{"name": "reboot"}, http.StatusForbidden, nil)
	sent := e.msgs.sent()
	if len(sent) != 2 || sent[0].node != "n-a" || sent[0].cmd.Name != protocol.CmdReboot || sent[1].cmd.Name != protocol.CmdStateNow || sent[0].ttl <= 0 {
		t.Errorf("sent %+v", sent)
	}
	if a := e.auditActions(); strings.Count(a, "node.command n-a by ky-thuat") != 2 {
		t.Errorf("audit:\n%s", a)
	}
}

func TestAlarmsAPI(t *testing.T) {
	e := newEnv(t)
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	viewer := e.addUser("xem", loaxa.RoleViewer, "31")

	// Stream first, so the alarms below arrive on it.
	events := alarmStream(t, e, tech, "12346")

	open, door := true, true
	e.observe("n-b", protocol.Board{DoorOpen: &door}) // 12347: not on the technician's stream
	e.observe("n-a", protocol.Board{SpeakerLine: protocol.LineOpen, AmplifierFault: &open})
	want := map[string]bool{loaxa.AlarmSpeakerOpen: true, loaxa.AlarmAmplifier: true}
	got := map[string]loaxa.Alarm{}
	for len(got) < 2 {
		select {
		case a, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if a.Node != "n-a" || !want[a.Kind] {
				t.Fatalf("unexpected alarm on the stream: %+v", a)
			}
			got[a.Kind] = a
		case <-time.After(10 * time.Second):
			t.Fatalf("stream gave %v, want the speaker-line and amplifier alarms", got)
		}
	}

	var list struct{ Alarms []loaxa.Alarm }
	e.call("GET", "/api/v1/alarms?state=open", viewer, nil, http.StatusOK, &list)
	if len(list.Alarms) != 3 {
		t.Errorf("open alarms: %+v", list.Alarms)
	}
	e.call("GET", "/api/v1/alarms?area=12346", tech, nil, http.StatusOK, &list)
	if len(list.Alarms) != 2 {
		t.Errorf("alarms of 12346: %+v", list.Alarms)
	}
	e.call("GET", "/api/v1/alarms?area=12347", tech, nil, http.StatusForbidden, nil)
	e.call("GET", "/api/v1/alarms?state=maybe", viewer, nil, http.StatusBadRequest, nil)
	// A misspelt kind is refused, not answered with an empty list that
	// reads as "no door open anywhere".
	e.call("GET", "/api/v1/alarms?kind=door_open", viewer, nil, http.StatusBadRequest, nil)
	e.call("GET", "/api/v1/alarms?kind="+loaxa.AlarmDoorOpen, viewer, nil, http.StatusOK, nil)
	// Several kinds at once (the emergency board's faults that keep a
	// cluster silent), each checked.
	e.call("GET", "/api/v1/alarms?state=open&kind="+loaxa.AlarmSpeakerOpen+","+loaxa.AlarmDoorOpen, viewer, nil, http.StatusOK, &list)
	if len(list.Alarms) != 2 || list.Alarms[0].Kind == loaxa.AlarmAmplifier || list.Alarms[1].Kind == loaxa.AlarmAmplifier {
		t.Errorf("open alarms of two kinds: %+v", list.Alarms)
	}
	e.call("GET", "/api/v1/alarms?kind="+loaxa.AlarmSpeakerOpen+",door_open", viewer, nil, http.StatusBadRequest, nil)

	line := got[loaxa.AlarmSpeakerOpen]
	e.call("POST", "/api/v1/alarms/"+line.ID+"/ack", viewer, nil, http.StatusForbidden, nil)
	var acked loaxa.Alarm
	e.call("POST", "/api/v1/alarms/"+line.ID+"/ack", tech, nil, http.StatusOK, &acked)
	if acked.AckBy != "ky-thuat" || acked.AckAt.IsZero() || !acked.Open() {
		t.Errorf("acked: %+v", acked)
	}
	e.call("POST", "/api/v1/alarms/al999999/ack", tech, nil, http.StatusNotFound, nil)
	if a := e.auditActions(); !strings.Contains(a, "alarm.ack "+line.ID+" by ky-thuat") {
		t.Errorf("audit:\n%s", a)
	}

	// The line is mended: the alarm ends, on the stream too.
	e.clock.Advance(time.Minute)
	e.observe("n-a", protocol.Board{SpeakerLine: protocol.LineOK, AmplifierFault: &open})
	deadline := time.After(10 * time.Second)
	for {
		var a loaxa.Alarm
		select {
		case a = <-events:
		case <-deadline:
			t.Fatal("no end of the speaker-line alarm on the stream")
		}
		if a.ID == line.ID && !a.Open() {
			if a.AckBy != "ky-thuat" {
				t.Errorf("ended alarm lost its acknowledgement: %+v", a)
			}
			break
		}
	}

	var h loaxa.AreaHealth
	e.call("GET", "/api/v1/areas/318/health", viewer, nil, http.StatusOK, &h)
	// n-a has an amplifier fault, n-b an open door: both faulty.
	if h.Nodes != 2 || h.Online != 2 || h.Faulty != 2 || h.Healthy != 0 || h.Score != 0 || h.Critical != 1 || h.Warning != 1 {
		t.Errorf("area health: %+v", h)
	}
	e.call("GET", "/api/v1/fleet/health", tech, nil, http.StatusOK, &h)
	if h.Area != "12346" || h.Nodes != 1 {
		t.Errorf("technician's fleet health: %+v", h)
	}
	e.call("GET", "/api/v1/areas/nope/health", viewer, nil, http.StatusNotFound, nil)
}

// TestAlarmListRefusesWhatItCannotAnswer: a technician who mistypes a
// cluster's id, names one outside their area, or gives a range the wrong
// way round is told so. Each was answered with an empty list, which reads
// as "no alarm on that cluster", as the play log (GET /events) does not.
func TestAlarmListRefusesWhatItCannotAnswer(t *testing.T) {
	e := newEnv(t)
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	e.observe("n-a", protocol.Board{SpeakerLine: protocol.LineOpen})
	var list struct{ Alarms []loaxa.Alarm }
	e.call("GET", "/api/v1/alarms?node=n-a", tech, nil, http.StatusOK, &list)
	if len(list.Alarms) != 1 || list.Alarms[0].Kind != loaxa.AlarmSpeakerOpen {
		t.Fatalf("alarms of n-a: %+v", list.Alarms)
	}
	for _, c := range []struct {
		name, query string
		status      int
		code, msg   string
	}{
		{"unknown node", "node=n-x", http.StatusBadRequest, loaxa.EInvalid, `node: there is no node "n-x"; pick one from GET /api/v1/nodes.`},
		{"node of another commune", "node=n-b", http.StatusForbidden, loaxa.EForbidden, `Node "n-b" is outside your area "12346".`},
		{"range the wrong way round", "from=2026-03-03T00:00:00Z&to=2026-03-02T00:00:00Z", http.StatusBadRequest, loaxa.EInvalid,
			"from 2026-03-03T00:00:00Z is not before to 2026-03-02T00:00:00Z; give from < to (to is exclusive)."},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, e.request("GET", "/api/v1/alarms?"+c.query, tech, "", nil), c.status, c.code, c.msg)
		})
	}
}

// TestNodeListByStateMatchesAreaHealth: area health counts a pole waiting
// for its enrolment code as awaiting_enrolment, not never, but the node
// list's state=never listed it among the boards that never came up, and
// state=awaiting_enrolment, to list what health counted, was refused. The
// list now answers each state with the nodes health counts in it.
func TestNodeListByStateMatchesAreaHealth(t *testing.T) {
	e := newEnv(t)
	e.tree() // n-a, n-b: enrolled with their credentials, never connected
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-pole", "name": "Cột chưa lắp", "area": "12346", "credentials": "code"},
		http.StatusCreated, nil)
	var h loaxa.AreaHealth
	e.call("GET", "/api/v1/areas/12346/health", e.admin, nil, http.StatusOK, &h)
	if h.Never != 1 || h.AwaitingEnrolment != 1 {
		t.Fatalf("health of 12346: %+v, want 1 never and 1 awaiting enrolment", h)
	}
	for state, want := range map[string][]string{
		loaxa.NodeNever:                {"n-a"},
		loaxa.MonitorAwaitingEnrolment: {"n-pole"},
	} {
		var list struct{ Nodes []loaxa.Node }
		e.call("GET", "/api/v1/nodes?area=12346&state="+state, e.admin, nil, http.StatusOK, &list)
		var got []string
		for _, n := range list.Nodes {
			got = append(got, n.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("nodes of 12346 in state %s: %v, want %v (as area health counts them)", state, got, want)
		}
	}
	checkError(t, e.request("GET", "/api/v1/nodes?state=asleep", e.admin, "", nil), http.StatusBadRequest, loaxa.EInvalid,
		`state "asleep" is not a node state; use online, stale, offline, never or awaiting_enrolment.`)
}

func TestSelfTestAPI(t *testing.T) {
	e := newEnv(t)
	e.tree()
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a", "n-b"}}, http.StatusAccepted, &run)
	if run.ID == "" || len(run.Nodes) != 2 {
		t.Fatalf("run: %+v", run)
	}
	e.health.Close() // the commands are sent
	if sent := e.msgs.sent(); len(sent) != 2 || sent[0].cmd.Name != protocol.CmdSelfTest || sent[0].cmd.TestID != run.ID || sent[0].cmd.Test != protocol.TestSilent {
		t.Errorf("sent %+v", sent)
	}
	ohms := 0.4
	e.health.ObserveEvents(context.Background(), "n-a", "e1", []protocol.Event{{Seq: 1, Type: protocol.EventSelfTest, At: e.clock.Now(),
		Test: &protocol.TestResult{ID: run.ID, Kind: protocol.TestSilent, Problems: []string{protocol.ProblemLineShort}, Line: protocol.LineShort, Ohms: &ohms}}})
	var rep loaxa.SelfTestReport
	e.call("GET", "/api/v1/selftests/"+run.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Fail != 1 || rep.Pending != 1 || rep.Complete || rep.Rows[0].Node != "n-a" || rep.Rows[0].Line != protocol.LineShort {
		t.Errorf("report before the deadline: %+v", rep)
	}
	e.clock.Advance(3 * time.Minute)
	e.call("GET", "/api/v1/selftests/"+run.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.NoAnswer != 1 || !rep.Complete || rep.Rows[1].Status != loaxa.TestNoAnswer {
		t.Errorf("report after the deadline: %+v", rep)
	}
	// A commune user sees only their nodes.
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12347")
	e.call("GET", "/api/v1/selftests/"+run.ID, tech, nil, http.StatusOK, &rep)
	if len(rep.Rows) != 1 || rep.Rows[0].Node != "n-b" {
		t.Errorf("technician's report: %+v", rep.Rows)
	}
	r := e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "loud", "nodes": []string{"n-a"}}, http.StatusBadRequest, nil)
	if !strings.Contains(string(r.body), "silent") {
		t.Errorf("unknown kind: %s", r.body)
	}
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"area": "12346"}, http.StatusBadRequest, nil) // nobody online
	e.call("POST", "/api/v1/selftests", tech, map[string]any{"nodes": []string{"n-a"}}, http.StatusForbidden, nil)
	var list struct{ Selftests []map[string]any }
	e.call("GET", "/api/v1/selftests", tech, nil, http.StatusOK, &list)
	if len(list.Selftests) != 1 {
		t.Errorf("list: %+v", list)
	}
}

// TestSelfTestOfNamedClustersIsAuditedInTheirAreas: a whole-tree admin
// testing two named clusters of two communes was filed under the admin's
// area, none, so the district officer reading the audit of their district
// never saw who tested its clusters. It is filed as an action on several
// areas is: under the lowest area they lie in, listing them.
func TestSelfTestOfNamedClustersIsAuditedInTheirAreas(t *testing.T) {
	e := newEnv(t)
	e.tree()
	district := e.addUser("huyen", loaxa.RoleDistrict, "318")
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a", "n-b"}}, http.StatusAccepted, &run)
	var log struct{ Entries []loaxa.AuditEntry }
	e.call("GET", "/api/v1/audit?area=318", district, nil, http.StatusOK, &log)
	i := slices.IndexFunc(log.Entries, func(a loaxa.AuditEntry) bool { return a.Action == "selftest.start" && a.Target == run.ID })
	if i < 0 {
		t.Fatalf("the district's audit has no selftest.start of %s: %+v", run.ID, log.Entries)
	}
	if a := log.Entries[i]; a.Area != "318" || !slices.Equal(a.Areas, []string{"12346", "12347"}) {
		t.Errorf("selftest.start filed under %q, areas %v; want 318, [12346 12347]", a.Area, a.Areas)
	}
}

// TestSelfTestReportShowsOnlyTheCallersNodes: a self-test report shows
// only the caller's nodes (docs/api.md GET /selftests/{id}), its raw
// results too: they carried other areas' nodes (their speaker lines,
// amplifier faults), for anyone who guessed a run's id.
func TestSelfTestReportShowsOnlyTheCallersNodes(t *testing.T) {
	e := newEnv(t)
	e.tree()
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a", "n-b"}}, http.StatusAccepted, &run)
	e.health.Close()
	ohms := 0.4
	e.health.ObserveEvents(context.Background(), "n-a", "e1", []protocol.Event{{Seq: 1, Type: protocol.EventSelfTest, At: e.clock.Now(),
		Test: &protocol.TestResult{ID: run.ID, Kind: protocol.TestSilent, Problems: []string{protocol.ProblemLineShort}, Line: protocol.LineShort, Ohms: &ohms}}})
	// A technician of commune 12347 (node n-b only).
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12347")
	var rep struct {
		Results map[string]any `json:"results"`
	}
	e.call("GET", "/api/v1/selftests/"+run.ID, tech, nil, http.StatusOK, &rep)
	if _, ok := rep.Results["n-a"]; ok {
		t.Errorf("a technician of 12347 reads the self-test result of node n-a in 12346: %v", rep.Results)
	}
}

// TestSelfTestListIsScoped: GET /selftests lists the runs that tested
// the caller's clusters only, and a run of another area is 403: a commune
// officer saw every area's runs, who asked for them and on how many nodes.
func TestSelfTestListIsScoped(t *testing.T) {
	e := newEnv(t)
	e.tree()
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a"}}, http.StatusAccepted, &run)
	officer := e.addUser("can-bo-tien-minh", loaxa.RoleCommune, "12347")
	var list struct {
		Selftests []struct {
			ID string `json:"id"`
		} `json:"selftests"`
	}
	e.call("GET", "/api/v1/selftests", officer, nil, http.StatusOK, &list)
	for _, s := range list.Selftests {
		if s.ID == run.ID {
			t.Errorf("an officer of 12347 lists self-test %s of node n-a in 12346", run.ID)
		}
	}
	// The run itself is no business of theirs either.
	e.call("GET", "/api/v1/selftests/"+run.ID, officer, nil, http.StatusForbidden, nil)
}

// TestAlarmStreamEndsWithItsSession: signing a user out everywhere
// (DELETE /users/{u}/sessions) ends what their token opened: an alarm
// stream opened before went on delivering alarms to the revoked token.
func TestAlarmStreamEndsWithItsSession(t *testing.T) {
	e := newEnv(t)
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	events := alarmStream(t, e, tech, "12346")
	// The technician's phone is lost: the admin signs them out everywhere.
	e.call("DELETE", "/api/v1/users/ky-thuat/sessions", e.admin, nil, http.StatusOK, nil)
	e.call("GET", "/api/v1/alarms", tech, nil, http.StatusUnauthorized, nil)
	// The stream ends within sessionCheck; before, it stayed open.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case a, ok := <-events:
			if !ok {
				return
			}
			t.Logf("alarm %s %s on %s", a.ID, a.Kind, a.Node)
		case <-deadline:
			t.Fatal("10 s after the session was revoked, its alarm stream is still open")
		}
	}
}

// TestAlarmStreamThatFellBehindSaysResync: a typhoon cut off thousands of
// clusters and one sweep opened their alarms at once; an officer's console
// got the first 256 on its alarm stream, lost the rest without a word, and
// showed part of the outage until its re-read 30 s later. A stream that
// fell behind sends "resync" (the console reads the alarms again at once)
// and goes on with the changes that follow; the monitor never waits for it.
func TestAlarmStreamThatFellBehindSaysResync(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *lhttp.Server) {
		s.HealthService = &laggingHealth{HealthService: s.HealthService, release: release}
	})
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	events := streamEvents(t, e, tech, "/api/v1/alarms/stream?area=12346")

	door := true
	e.observe("n-a", protocol.Board{DoorOpen: &door})
	var list struct{ Alarms []loaxa.Alarm }
	e.call("GET", "/api/v1/alarms?state=open", tech, nil, http.StatusOK, &list)
	if len(list.Alarms) != 1 {
		t.Fatalf("open alarms %+v, want the door-open alarm", list.Alarms)
	}
	// The door-open alarm and 300 acknowledgements: more than a stream
	// holds while its reader is held up.
	const changes = 301
	for range changes - 1 {
		if _, err := e.health.AckAlarm(context.Background(), list.Alarms[0].ID, "ky-thuat"); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	alarms := 0
	deadline := time.After(10 * time.Second)
	for resync := false; !resync; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended after %d alarm events", alarms)
			}
			switch ev.name {
			case "alarm":
				alarms++
			case "resync":
				resync = true
			default:
				t.Fatalf("unexpected event %q: %s", ev.name, ev.data)
			}
		case <-deadline:
			t.Fatalf("the stream gave %d of %d changes and no resync: the console cannot know it lost the rest", alarms, changes)
		}
	}
	if alarms == 0 || alarms >= changes {
		t.Errorf("%d alarm events before the resync, want some but not all %d", alarms, changes)
	}
	// Followed again: the door is closed, and its alarm's end comes.
	door = false
	e.observe("n-a", protocol.Board{DoorOpen: &door})
	select {
	case ev := <-events:
		var a loaxa.Alarm
		if err := json.Unmarshal([]byte(ev.data), &a); ev.name != "alarm" || err != nil || a.Kind != loaxa.AlarmDoorOpen || a.Open() {
			t.Errorf("after the resync: %q %s, want the door-open alarm ended", ev.name, ev.data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change on the stream after the resync")
	}
}

// TestAlarmStreamIgnoresOtherAreas: an outage in another commune filled a
// commune technician's alarm stream with changes it was never to show, and
// the stream, fallen behind, sent "resync": the console read every alarm
// again although none of its own had changed. Changes outside the stream's
// areas take no room in it: 300 changes in 12347 while the technician's
// console (12346) is held up, and the next change in 12346 is the next
// event, not a resync.
func TestAlarmStreamIgnoresOtherAreas(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *lhttp.Server) {
		s.HealthService = &laggingHealth{HealthService: s.HealthService, release: release}
	})
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	events := streamEvents(t, e, tech, "/api/v1/alarms/stream")

	door := true
	e.observe("n-b", protocol.Board{DoorOpen: &door})
	var list struct{ Alarms []loaxa.Alarm }
	e.call("GET", "/api/v1/alarms?state=open", e.admin, nil, http.StatusOK, &list)
	if len(list.Alarms) != 1 || list.Alarms[0].Node != "n-b" {
		t.Fatalf("open alarms %+v, want n-b's door-open alarm", list.Alarms)
	}
	for range 300 {
		if _, err := e.health.AckAlarm(context.Background(), list.Alarms[0].ID, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	e.observe("n-a", protocol.Board{DoorOpen: &door})
	select {
	case ev := <-events:
		var a loaxa.Alarm
		if err := json.Unmarshal([]byte(ev.data), &a); ev.name != "alarm" || err != nil || a.Node != "n-a" || a.Kind != loaxa.AlarmDoorOpen {
			t.Errorf("first event %q %s, want n-a's door-open alarm: nothing in 12346 changed before it", ev.name, ev.data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the stream for n-a's door-open alarm")
	}
}

// TestAlarmStreamFollowsAreasMadeSince: a stream takes the changes of the
// areas of its subtree as they were when it opened, and of areas made
// since, which it checks itself: a village added under the commune while
// the console is open has its alarms on it; one added elsewhere does not.
func TestAlarmStreamFollowsAreasMadeSince(t *testing.T) {
	e := newEnv(t)
	e.tree()
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	events := alarmStream(t, e, tech, "")
	for _, a := range []map[string]string{
		{"id": "1234601", "name": "Thôn Đông", "parent": "12346"},
		{"id": "1234701", "name": "Thôn Tây", "parent": "12347"},
	} {
		e.call("POST", "/api/v1/areas", e.admin, a, http.StatusCreated, nil)
	}
	for id, area := range map[string]string{"n-tay": "1234701", "n-dong": "1234601"} {
		e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": id, "name": "Cụm loa " + id, "area": area, "lat": 20.71, "lon": 106.55}, http.StatusCreated, nil)
	}
	door := true
	e.observe("n-tay", protocol.Board{DoorOpen: &door})
	e.observe("n-dong", protocol.Board{DoorOpen: &door})
	select {
	case a := <-events:
		if a.Node != "n-dong" || a.Kind != loaxa.AlarmDoorOpen {
			t.Errorf("first alarm on the stream %s %s, want n-dong's door-open (n-tay is outside 12346)", a.Node, a.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alarm on the stream for n-dong, in a village made under 12346 after it opened")
	}
}

// laggingHealth is the health service with its alarm subscribers' reading
// held up until release is closed, as a stream whose client is slow is.
type laggingHealth struct {
	loaxa.HealthService
	release chan struct{}
}

func (l *laggingHealth) SubscribeAlarms(in func(area string) bool) (<-chan *loaxa.Alarm, func()) {
	src, cancel := l.HealthService.SubscribeAlarms(in)
	out, done := make(chan *loaxa.Alarm), make(chan struct{})
	go func() {
		defer close(out) // src closed: the reader fell behind
		select {
		case <-l.release:
		case <-done:
			return
		}
		for {
			select {
			case a, ok := <-src:
				if !ok {
					return
				}
				select {
				case out <- a:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(done); cancel() }) }
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// streamEvents opens the server-sent event stream at path as the holder of
// token; the channel closes when the stream ends.
func streamEvents(t *testing.T, e *env, token, path string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream %s: %d", path, resp.StatusCode)
	}
	events := make(chan sseEvent, 1024)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return events
}

// TestEmergencyStreamEndsWithItsSession: an emergency's live stream, like
// the alarm stream, ends once the session that opened it is revoked; it
// went on until the emergency ended.
func TestEmergencyStreamEndsWithItsSession(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")
	officer := e.addUser("can-bo-tinh", loaxa.RoleProvince, "31")
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/emergency/"+em.ID+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+officer)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		io.Copy(io.Discard, resp.Body)
	}()
	e.call("DELETE", "/api/v1/users/can-bo-tinh/sessions", e.admin, nil, http.StatusOK, nil)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("10 s after the session was revoked, its emergency stream is still open")
	}
}

// alarmStream opens GET /alarms/stream?area= as the holder of token and
// returns the alarms it brings; the channel closes when the stream ends.
func alarmStream(t *testing.T, e *env, token, area string) <-chan loaxa.Alarm {
	t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/alarms/stream?area="+area, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan loaxa.Alarm, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var a loaxa.Alarm
				if json.Unmarshal([]byte(data), &a) == nil {
					events <- a
				}
			}
		}
		close(events)
	}()
	return events
}

// TestSelfTestReportAsDocumented: the report of GET /selftests/{id}
// carried a "results" map (each node's raw answer) that docs/api.md did
// not show, so a script writer met a field the reference did not
// explain. The documented example has every key the report serves, at
// the top and in a result.
func TestSelfTestReportAsDocumented(t *testing.T) {
	e := newEnv(t)
	e.tree()
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a", "n-b"}}, http.StatusAccepted, &run)
	e.health.Close()
	ohms := 0.4
	e.health.ObserveEvents(context.Background(), "n-a", "e1", []protocol.Event{{Seq: 1, Type: protocol.EventSelfTest, At: e.clock.Now(),
		Test: &protocol.TestResult{ID: run.ID, Kind: protocol.TestSilent, Problems: []string{protocol.ProblemLineShort}, Line: protocol.LineShort, Ohms: &ohms}}})
	var served map[string]json.RawMessage
	e.call("GET", "/api/v1/selftests/"+run.ID, e.admin, nil, http.StatusOK, &served)
	var servedResults map[string]map[string]any
	if err := json.Unmarshal(served["results"], &servedResults); err != nil {
		t.Fatalf("results %s: %v", served["results"], err)
	}

	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "### `GET /selftests` · `GET /selftests/{id}`"
	_, section, ok := strings.Cut(string(raw), heading)
	_, example, ok2 := strings.Cut(section, "```json\n")
	example, _, ok3 := strings.Cut(example, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("docs/api.md: no JSON example under %q", heading)
	}
	var documented map[string]json.RawMessage
	var documentedResults map[string]map[string]any
	if err := json.Unmarshal([]byte(example), &documented); err != nil {
		t.Fatalf("docs/api.md: the example under %q is not JSON: %v\n%s", heading, err, example)
	}
	if err := json.Unmarshal(documented["results"], &documentedResults); err != nil && documented["results"] != nil {
		t.Fatalf("docs/api.md: results %s: %v", documented["results"], err)
	}
	for k := range served {
		if _, ok := documented[k]; !ok {
			t.Errorf("GET /selftests/{id} serves %q, which the example in docs/api.md does not show", k)
		}
	}
	shown := map[string]bool{} // some keys are left out when empty: any result may show them
	for _, doc := range documentedResults {
		for k := range doc {
			shown[k] = true
		}
	}
	for k := range servedResults["n-a"] {
		if !shown[k] {
			t.Errorf("a result in GET /selftests/{id} has %q, which the example in docs/api.md does not show", k)
		}
	}
	if len(documentedResults) == 0 {
		t.Errorf("docs/api.md shows no result under %q; served: %s", heading, served["results"])
	}
}

// BenchmarkOpenAlarmStream: what opening the alarm stream costs, which a
// console does on every page load, in a province of 5,000 areas (a
// village per cluster, the most there can be): as the province's officer,
// a commune's technician, and the admin (the whole tree).
func BenchmarkOpenAlarmStream(b *testing.B) {
	e := newEnv(b)
	e.tree()
	ctx := context.Background()
	for c := range 100 {
		commune := fmt.Sprintf("9%04d", c)
		if err := e.stores.areas.CreateArea(ctx, &loaxa.Area{ID: commune, Name: "Xã " + commune, Parent: "318"}); err != nil {
			b.Fatal(err)
		}
		for v := range 49 {
			village := fmt.Sprintf("%s%02d", commune, v)
			if err := e.stores.areas.CreateArea(ctx, &loaxa.Area{ID: village, Name: "Thôn " + village, Parent: commune}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, u := range []struct{ name, token string }{
		{"province", e.addUser("tinh", loaxa.RoleProvince, "31")},
		{"commune", e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")},
		{"admin", e.admin},
	} {
		b.Run(u.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/alarms/stream", nil)
				req.Header.Set("Authorization", "Bearer "+u.token)
				resp, err := e.ts.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || line != ": loaxa alarms\n" {
					b.Fatalf("stream: %d, first line %q, %v", resp.StatusCode, line, err)
				}
			}
		})
	}
}

// TestSecondAcknowledgementKeepsTheFirst: two technicians on one alarm
// (one screen drawn before the other pressed): the second acknowledgement
// replaced the first's ack_by and ack_at, and who took the alarm was lost
// but for the audit. The alarm keeps the first; the second press is
// answered 200 with it as it is, ack_by naming who took it (what the
// console tells the second technician), and its audit entry says so.
func TestSecondAcknowledgementKeepsTheFirst(t *testing.T) {
	e := newEnv(t)
	e.tree()
	first := e.addUser("ky-thuat-1", loaxa.RoleTechnician, "12346")
	second := e.addUser("ky-thuat-2", loaxa.RoleTechnician, "12346")
	door := true
	e.observe("n-a", protocol.Board{DoorOpen: &door})
	var list struct{ Alarms []loaxa.Alarm }
	e.call("GET", "/api/v1/alarms?state=open&kind="+loaxa.AlarmDoorOpen, first, nil, http.StatusOK, &list)
	if len(list.Alarms) != 1 {
		t.Fatalf("open alarms %+v, want the door-open alarm", list.Alarms)
	}
	id := list.Alarms[0].ID
	var took loaxa.Alarm
	e.call("POST", "/api/v1/alarms/"+id+"/ack", first, nil, http.StatusOK, &took)
	e.clock.Advance(3 * time.Minute)
	var again loaxa.Alarm
	e.call("POST", "/api/v1/alarms/"+id+"/ack", second, nil, http.StatusOK, &again)
	if again.AckBy != "ky-thuat-1" || !again.AckAt.Equal(took.AckAt) {
		t.Errorf("the second acknowledgement answered ack_by %q at %v, want the first's, ky-thuat-1 at %v", again.AckBy, again.AckAt, took.AckAt)
	}
	e.call("GET", "/api/v1/alarms?state=open&kind="+loaxa.AlarmDoorOpen, first, nil, http.StatusOK, &list)
	if len(list.Alarms) != 1 || list.Alarms[0].AckBy != "ky-thuat-1" || !list.Alarms[0].AckAt.Equal(took.AckAt) {
		t.Errorf("after two acknowledgements the alarm reads %+v, want ky-thuat-1's at %v", list.Alarms, took.AckAt)
	}
	// The first technician pressing again changes nothing either.
	e.clock.Advance(time.Minute)
	e.call("POST", "/api/v1/alarms/"+id+"/ack", first, nil, http.StatusOK, &again)
	if !again.AckAt.Equal(took.AckAt) {
		t.Errorf("acknowledging again moved ack_at from %v to %v", took.AckAt, again.AckAt)
	}
	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, x := range entries {
		if x.Action == "alarm.ack" && x.Target == id {
			details = append(details, x.Actor+": "+x.Detail)
		}
	}
	want := []string{
		"ky-thuat-1: kind=door-open node=n-a",
		"ky-thuat-2: kind=door-open node=n-a acked_by=ky-thuat-1",
		"ky-thuat-1: kind=door-open node=n-a",
	}
	if !slices.Equal(details, want) {
		t.Errorf("alarm.ack entries %q, want %q", details, want)
	}
}

// TestSelfTestDefaults: what POST /selftests does with what it is not
// told, which docs/api.md did not say. Without a kind it is silent (the
// amplifier and the line checked, no tone: nothing a village hears by
// mistake); without an area or nodes it tests the caller's own area, its
// clusters online. A user over the whole tree has no area of their own:
// they were answered "Name an area or nodes to test.", which did not say
// which fields nor that a commune user's {} tests their commune; the
// answer says both.
func TestSelfTestDefaults(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.observe("n-a", protocol.Board{}) // 12346; n-b of 12347 never seen
	tech := e.addUser("ky-thuat", loaxa.RoleTechnician, "12346")
	var run loaxa.SelfTest
	e.call("POST", "/api/v1/selftests", tech, map[string]any{}, http.StatusAccepted, &run)
	if run.Kind != protocol.TestSilent || run.Area != "12346" || !slices.Equal(run.Nodes, []string{"n-a"}) {
		t.Errorf("a technician's {} ran %s on area %q, nodes %v; want silent on 12346, n-a", run.Kind, run.Area, run.Nodes)
	}
	e.health.Close() // the commands are sent
	if sent := e.msgs.sent(); len(sent) != 1 || sent[0].cmd.Test != protocol.TestSilent {
		t.Errorf("sent %+v, want one silent self-test", sent)
	}
	checkError(t, e.request("POST", "/api/v1/selftests", e.admin, "application/json", strings.NewReader(`{"kind":"audible"}`)),
		http.StatusBadRequest, loaxa.EInvalid,
		`Name what to test: "area" (an area's code: its clusters online) or "nodes" (clusters' ids, whatever their state). Without either a self-test tests your own area, and you are over the whole tree: name the province's area to test every cluster online.`)
}
