package http_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/cap"
	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/tts"
	"loaxa.vn/protocol"
)

// capXML is a CAP 1.2 alert for area (a geocode) with the given status.
func capXML(id, status, area string, extra ...string) string {
	x := strings.Join(extra, "")
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
 <identifier>%s</identifier><sender>nchmf.gov.vn</sender><sent>2026-03-02T04:50:00+07:00</sent>
 <status>%s</status><msgType>Alert</msgType><scope>Public</scope>%s
 <info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Immediate</urgency>
  <severity>Extreme</severity><certainty>Observed</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Bão số 3 đổ bộ</headline><instruction>Bà con vào nơi trú ẩn</instruction>
  <area><areaDesc>Vùng</areaDesc><geocode><valueName>loaxa</valueName><value>%s</value></geocode></area></info>
</alert>`, id, status, x, area)
}

func (e *env) postCap(doc string, want int) capAnswer {
	e.t.Helper()
	r := e.request("POST", "/api/v1/cap", e.admin, "application/cap+xml", strings.NewReader(doc))
	if r.status != want {
		e.t.Fatalf("POST /cap: %d, want %d: %s", r.status, want, r.body)
	}
	var a capAnswer
	if want < 300 {
		if err := jsonUnmarshal(r.body, &a); err != nil {
			e.t.Fatal(err)
		}
	} else {
		a.Body = string(r.body)
	}
	return a
}

type capAnswer struct {
	Action    string
	Reason    string
	Alert     loaxa.CapAlert
	Emergency *loaxa.Emergency
	Cancelled []string
	Body      string
}

// TestCapEffects: each kind of CAP alert has exactly its effect on what
// is sent to the nodes (a fake broker records it here; the e2e suite has
// the real one). Text is read out by a speech engine, which this
// environment does not have, so alerts that would play wait for approval
// or are refused with 503; the decisions themselves are covered in
// controller/cap.
func TestCapEffects(t *testing.T) {
	e := newEnv(t)
	e.tree()
	sent := func() int { return len(e.alerts.commands()) }

	// Not on the auto-start list: waits for approval, nothing sent.
	a := e.postCap(capXML("a1", "Actual", "12346"), http.StatusCreated)
	if a.Action != "pending" || len(a.Alert.Targets) != 1 || a.Alert.Targets[0] != "12346" || !strings.Contains(a.Alert.Text, "Bão số 3 đổ bộ.") || sent() != 0 {
		t.Errorf("pending alert: %+v, %d sent", a, sent())
	}
	// The same again: a duplicate, nothing new.
	if d := e.postCap(capXML("a1", "Actual", "12346"), http.StatusOK); d.Action != "duplicate" || d.Alert.ID != a.Alert.ID {
		t.Errorf("duplicate: %+v", d)
	}
	// Test, System and Draft are recorded, never played.
	for i, st := range []string{"Test", "System", "Draft"} {
		if l := e.postCap(capXML(fmt.Sprint("t", i), st, "12346"), http.StatusCreated); l.Action != "log" {
			t.Errorf("status %s: %+v", st, l)
		}
	}
	// An area we do not have.
	if n := e.postCap(capXML("w1", "Actual", "99999"), http.StatusCreated); n.Action != "no-target" {
		t.Errorf("wrong area: %+v", n)
	}
	// Malformed: 400 naming the field.
	if m := e.postCap(strings.Replace(capXML("m1", "Actual", "12346"), "<urgency>Immediate</urgency>", "", 1), http.StatusBadRequest); !strings.Contains(m.Body, "urgency") {
		t.Errorf("malformed: %s", m.Body)
	}
	// Expired.
	expired := strings.Replace(capXML("x1", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T04:55:00+07:00", 1)
	if x := e.postCap(expired, http.StatusCreated); x.Action != "expired" {
		t.Errorf("expired: %+v", x)
	}
	// A Cancel referencing the pending one withdraws it.
	cancel := strings.Replace(capXML("c1", "Actual", "12346", "<references>nchmf.gov.vn,a1,2026-03-02T04:50:00+07:00</references>"), "<msgType>Alert", "<msgType>Cancel", 1)
	if c := e.postCap(cancel, http.StatusCreated); c.Action != "cancel" {
		t.Errorf("cancel: %+v", c)
	}
	var got loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+a.Alert.ID, e.admin, nil, http.StatusOK, &got)
	if got.Action != "cancelled" {
		t.Errorf("pending alert after the cancel: %s", got.Action)
	}
	e.call("POST", "/api/v1/cap/"+a.Alert.ID+"/approve", e.admin, nil, http.StatusConflict, nil)

	// On the auto-start list, an Exercise would play as a drill: it needs
	// the speech engine, and without one the answer says so.
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	r := e.request("POST", "/api/v1/cap", e.admin, "application/xml", strings.NewReader(capXML("d1", "Exercise", "12346")))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "content_id") {
		t.Errorf("exercise without a speech engine: %d %s", r.status, r.body)
	}
	var held struct{ Alerts []loaxa.CapAlert }
	e.call("GET", "/api/v1/cap?limit=1", e.admin, nil, http.StatusOK, &held)
	if len(held.Alerts) != 1 || held.Alerts[0].Identifier != "d1" || held.Alerts[0].Action != "pending" {
		t.Errorf("an alert that could not be played is not held for approval: %+v", held.Alerts)
	}
	if sent() != 0 {
		t.Errorf("%d commands sent, want none", sent())
	}
}

// TestCapPlaysTheKeptRecording: with a recording kept for an event type,
// a CAP alert of that type plays it instead of its text read out, so it
// plays with no speech engine at all (as J-Alert plays a fixed message per
// kind of alert), and its record says which recording played. Event types
// are compared without case; a recording must be stored content; only a
// whole-tree user may change the list, and each change is audited.
func TestCapPlaysTheKeptRecording(t *testing.T) {
	e := newEnv(t) // no speech engine
	e.tree()
	warning := e.upload(e.admin, "canh-bao-bao.wav", wav(16000, 1, 32000), "Cảnh báo bão", http.StatusCreated)
	var got struct{ Recordings map[string]string }
	e.call("GET", "/api/v1/cap/recordings", e.admin, nil, http.StatusOK, &got)
	if got.Recordings == nil || len(got.Recordings) != 0 {
		t.Errorf("recordings before any: %#v, want an empty map", got.Recordings)
	}
	e.call("PUT", "/api/v1/cap/recordings", e.admin, map[string]any{"recordings": map[string]string{" bão ": warning.ID}}, http.StatusOK, &got)
	if len(got.Recordings) != 1 || got.Recordings["bão"] != warning.ID {
		t.Errorf("recordings set: %#v", got.Recordings)
	}
	if a := e.auditActions(); !strings.Contains(a, "cap.recordings cap by admin") {
		t.Errorf("audit:\n%s", a)
	}
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)

	a := e.postCap(capXML("r1", "Exercise", "12346"), http.StatusCreated)
	if a.Action != "drill" || a.Emergency == nil || a.Emergency.ContentID != warning.ID || !a.Emergency.Drill {
		t.Fatalf("an exercise of a type with a recording: %+v (emergency %+v), want a drill of the recording", a, a.Emergency)
	}
	var rec loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+a.Alert.ID, e.admin, nil, http.StatusOK, &rec)
	if rec.Recording != warning.ID || rec.Emergency != a.Emergency.ID || rec.Text == "" {
		t.Errorf("the alert's record: recording %q, emergency %q, text %q", rec.Recording, rec.Emergency, rec.Text)
	}

	for _, bad := range []struct {
		body any
		says string
	}{
		{map[string]any{"recordings": map[string]string{"Bão": strings.Repeat("0", 64)}}, "there is no content"},
		{map[string]any{"recordings": map[string]string{"Bão": warning.ID, "BÃO": warning.ID}}, "twice"},
		{map[string]any{"recordings": map[string]string{" ": warning.ID}}, "required"},
		{map[string]any{}, "recordings is missing"},
	} {
		r := e.request("PUT", "/api/v1/cap/recordings", e.admin, "application/json", jsonBody(t, bad.body))
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), bad.says) {
			t.Errorf("PUT %v: %d %s, want 400 saying %q", bad.body, r.status, r.body, bad.says)
		}
	}
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	e.call("PUT", "/api/v1/cap/recordings", district, map[string]any{"recordings": map[string]string{}}, http.StatusForbidden, nil)

	// Without it, the same kind of alert needs the speech engine again.
	e.call("PUT", "/api/v1/cap/recordings", e.admin, map[string]any{"recordings": map[string]string{}}, http.StatusOK, nil)
	if r := e.request("POST", "/api/v1/cap", e.admin, "application/xml", strings.NewReader(capXML("r2", "Exercise", "12346"))); r.status != http.StatusServiceUnavailable {
		t.Errorf("an exercise with no recording and no speech engine: %d %s", r.status, r.body)
	}
}

// TestCapPlaysTheRecordingThenItsWords: with a speech engine, a CAP alert
// of a type with a kept recording plays the recording first (the intro)
// and then its own text read out; with an engine that fails, the
// recording alone, and the alert is still played.
func TestCapPlaysTheRecordingThenItsWords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		engine *tts.Espeak
		words  bool
	}{
		{"the engine speaks", &tts.Espeak{}, true},
		{"the engine fails", &tts.Espeak{Command: filepath.Join(t.TempDir(), "espeak-ng")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = tc.engine })
			e.tree()
			warning := e.upload(e.admin, "canh-bao-bao.wav", wav(16000, 1, 32000), "Cảnh báo bão", http.StatusCreated)
			e.call("PUT", "/api/v1/cap/recordings", e.admin, map[string]any{"recordings": map[string]string{"Bão": warning.ID}}, http.StatusOK, nil)
			e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
			a := e.postCap(capXML("r1", "Exercise", "12346"), http.StatusCreated)
			em := a.Emergency
			if em == nil {
				t.Fatalf("no emergency: %+v", a)
			}
			switch {
			case tc.words && (em.IntroContentID != warning.ID || em.ContentID == warning.ID || !strings.Contains(em.Text, "Bà con vào nơi trú ẩn")):
				t.Errorf("emergency: intro %q, content %q, text %q; want the recording as the intro, then the alert's words read out", em.IntroContentID, em.ContentID, em.Text)
			case !tc.words && (em.IntroContentID != "" || em.ContentID != warning.ID || em.Text != ""):
				t.Errorf("emergency: intro %q, content %q, text %q; want the recording alone", em.IntroContentID, em.ContentID, em.Text)
			}
			var rec loaxa.CapAlert
			e.call("GET", "/api/v1/cap/"+a.Alert.ID, e.admin, nil, http.StatusOK, &rec)
			if rec.Recording != warning.ID {
				t.Errorf("the alert's record names recording %q, want %s", rec.Recording, warning.ID)
			}
		})
	}
}

// TestCapScope: CAP alerts are shown to the users of the areas they
// touch — their targets lie within the user's area or above it — and to
// nobody else; approving one needs the right to send emergencies to every
// one of its targets.
func TestCapScope(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	// Two areas in one alert: commune A and commune B.
	both := strings.Replace(capXML("ab", "Actual", "12346"), "</area></info>",
		"</area><area><areaDesc>Vùng 2</areaDesc><geocode><valueName>loaxa</valueName><value>12347</value></geocode></area></info>", 1)
	ids := map[string]string{}
	for name, doc := range map[string]string{
		"a":        capXML("a", "Actual", "12346"),
		"b":        capXML("b", "Actual", "12347"),
		"district": capXML("d", "Actual", "318"),
		"ab":       both,
		"log":      capXML("t", "Test", "12346"),
	} {
		ids[name] = e.postCap(doc, http.StatusCreated).Alert.ID
	}
	officerA := e.addUser("xa-a", loaxa.RoleCommune, "12346")
	officerB := e.addUser("xa-b", loaxa.RoleCommune, "12347")
	district := e.addUser("huyen", loaxa.RoleDistrict, "318")
	viewerA := e.addUser("xem-a", loaxa.RoleViewer, "12346")

	list := func(token string) []string {
		var got struct{ Alerts []loaxa.CapAlert }
		e.call("GET", "/api/v1/cap", token, nil, http.StatusOK, &got)
		var out []string
		for _, a := range got.Alerts {
			for name, id := range ids {
				if id == a.ID {
					out = append(out, name)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		who   string
		token string
		want  []string
	}{
		{"admin", e.admin, []string{"a", "ab", "b", "district", "log"}},
		{"commune A officer", officerA, []string{"a", "ab", "district"}},
		{"commune B officer", officerB, []string{"ab", "b", "district"}},
		{"district officer", district, []string{"a", "ab", "b", "district"}},
		{"commune A viewer", viewerA, []string{"a", "ab", "district"}},
	} {
		if got := list(tc.token); !slices.Equal(got, tc.want) {
			t.Errorf("%s lists %v, want %v", tc.who, got, tc.want)
		}
	}
	// The limit counts what the caller sees.
	var one struct{ Alerts []loaxa.CapAlert }
	e.call("GET", "/api/v1/cap?limit=1", officerB, nil, http.StatusOK, &one)
	if len(one.Alerts) != 1 || one.Alerts[0].ID == ids["a"] {
		t.Errorf("commune B officer's first alert: %+v", one.Alerts)
	}

	e.call("GET", "/api/v1/cap/"+ids["a"], officerA, nil, http.StatusOK, nil)
	e.call("GET", "/api/v1/cap/"+ids["district"], officerA, nil, http.StatusOK, nil)
	for _, tc := range []struct{ token, id, want string }{
		{officerA, ids["b"], "outside your area"},
		{officerA, ids["log"], "whole tree"},
		{officerB, ids["a"], "outside your area"},
	} {
		r := e.call("GET", "/api/v1/cap/"+tc.id, tc.token, nil, http.StatusForbidden, nil)
		if !strings.Contains(string(r.body), tc.want) {
			t.Errorf("GET cap %s: %s, want it to say %q", tc.id, r.body, tc.want)
		}
	}

	// Posting an alert again answers duplicate; the earlier record only to
	// someone who may read it.
	for _, tc := range []struct {
		who, token string
		sees       bool
	}{{"commune B officer", officerB, false}, {"commune A officer", officerA, true}} {
		r := e.request("POST", "/api/v1/cap", tc.token, "application/cap+xml", strings.NewReader(capXML("a", "Actual", "12346")))
		var d capAnswer
		if r.status != http.StatusOK || jsonUnmarshal(r.body, &d) != nil || d.Action != "duplicate" {
			t.Fatalf("%s posts alert a again: %d %s, want 200 duplicate", tc.who, r.status, r.body)
		}
		if got := d.Alert.ID == ids["a"]; got != tc.sees || strings.Contains(string(r.body), "12346") != tc.sees {
			t.Errorf("%s posts alert a again: %s; record shown %v, want %v", tc.who, r.body, got, tc.sees)
		}
	}

	// Approving: not an alert outside the caller's area, not one that also
	// goes outside it, not as a viewer; an officer of the area may.
	sent := func() int { return len(e.alerts.commands()) }
	e.call("POST", "/api/v1/cap/"+ids["b"]+"/approve", officerA, nil, http.StatusForbidden, nil)
	r := e.call("POST", "/api/v1/cap/"+ids["ab"]+"/approve", officerA, nil, http.StatusForbidden, nil)
	// It says that part of the alert lies outside the caller's area, not
	// which part (TestOutOfScopeRefusalSaysNotWhere).
	if want := fmt.Sprintf(`Part of CAP alert %s is outside your area \"12346\"`, ids["ab"]); !strings.Contains(string(r.body), want) {
		t.Errorf("approving an alert that goes to commune B too: %s, want it to say %s", r.body, want)
	}
	e.call("POST", "/api/v1/cap/"+ids["a"]+"/approve", viewerA, nil, http.StatusForbidden, nil)
	if n := sent(); n != 0 {
		t.Fatalf("%d commands sent by refused approvals", n)
	}
	var pending loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+ids["ab"], e.admin, nil, http.StatusOK, &pending)
	if pending.Action != "pending" {
		t.Errorf("alert after refused approvals is %s, want still pending", pending.Action)
	}
	var ok capAnswer
	e.call("POST", "/api/v1/cap/"+ids["a"]+"/approve", officerA, nil, http.StatusOK, &ok)
	if ok.Alert.ApprovedBy != "xa-a" || ok.Emergency == nil || !slices.Equal(ok.Emergency.Targets, []string{"12346"}) {
		t.Errorf("approval by commune A officer: %+v", ok)
	}
	if cmds := e.alerts.commands(); len(cmds) != 1 || cmds[0].scope != "area" || cmds[0].id != "12346" {
		t.Errorf("approval sent %+v, want one alert to 12346", cmds)
	}
	e.call("POST", "/api/v1/cap/"+ids["ab"]+"/approve", district, nil, http.StatusOK, nil)
}

// TestCapListByAction: the console asked for the newest 100 alerts and
// looked for those waiting for approval among them, so a warning waiting
// since before 100 others came (another province's, recorded only) was
// no longer shown for approval anywhere. GET /cap?action=pending finds it
// however many came after; the limit counts what matches; an action that
// no alert can have is refused, naming those it can.
func TestCapListByAction(t *testing.T) {
	e := newEnv(t)
	e.tree()
	waiting := e.postCap(capXML("w", "Actual", "12346"), http.StatusCreated)
	for i := range 3 {
		e.postCap(capXML(fmt.Sprint("t", i), "Test", "12346"), http.StatusCreated)
	}
	var got struct{ Alerts []loaxa.CapAlert }
	e.call("GET", "/api/v1/cap?action=pending&limit=1", e.admin, nil, http.StatusOK, &got)
	if len(got.Alerts) != 1 || got.Alerts[0].ID != waiting.Alert.ID {
		t.Errorf("GET /cap?action=pending&limit=1 = %+v, want only %s", got.Alerts, waiting.Alert.ID)
	}
	e.call("GET", "/api/v1/cap?action=log", e.admin, nil, http.StatusOK, &got)
	if len(got.Alerts) != 3 {
		t.Errorf("GET /cap?action=log lists %d alerts, want the 3 recorded", len(got.Alerts))
	}
	r := e.call("GET", "/api/v1/cap?action=waiting", e.admin, nil, http.StatusBadRequest, nil)
	if !strings.Contains(string(r.body), "pending") {
		t.Errorf("an unknown action is refused without naming the valid ones: %s", r.body)
	}
}

// TestCapWithdrawNeedsItsRights: a CAP Cancel or Update stops what its
// references started, so its poster needs the right to stop that: to send
// emergencies to every area the referenced alert went to, as for
// POST /emergency/{id}/cancel. A commune officer cannot stop the
// district's warning by posting a Cancel that references it.
func TestCapWithdrawNeedsItsRights(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	officerA := e.addUser("xa-a", loaxa.RoleCommune, "12346")
	district := e.addUser("huyen", loaxa.RoleDistrict, "318")
	refTo := func(id string) string {
		return "<references>nchmf.gov.vn," + id + ",2026-03-02T04:50:00+07:00</references>"
	}
	cancelOf := func(id, ref string) string {
		return strings.Replace(capXML(id, "Actual", "12346", refTo(ref)), "<msgType>Alert", "<msgType>Cancel", 1)
	}
	updateOf := func(id, ref string) string {
		return strings.Replace(capXML(id, "Actual", "12346", refTo(ref)), "<msgType>Alert", "<msgType>Update", 1)
	}
	post := func(token, doc string) response {
		return e.request("POST", "/api/v1/cap", token, "application/cap+xml", strings.NewReader(doc))
	}

	// The district's warning waits for approval, then one plays.
	waiting := e.postCap(capXML("q1", "Actual", "318"), http.StatusCreated)
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	playing := e.postCap(capXML("p1", "Actual", "318"), http.StatusCreated)
	if waiting.Action != "pending" || playing.Action != "play" || playing.Emergency == nil {
		t.Fatalf("set-up: %+v, %+v", waiting, playing)
	}
	sent := len(e.alerts.commands())

	for _, tc := range []struct{ what, doc string }{
		{"Cancel of the playing warning", cancelOf("c1", "p1")},
		{"Update of the playing warning", updateOf("u1", "p1")},
		{"Cancel of the waiting warning", cancelOf("c2", "q1")},
	} {
		r := post(officerA, tc.doc)
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "references CAP alert nchmf.gov.vn,") || !strings.Contains(string(r.body), "went to areas outside your area") {
			t.Errorf("commune officer posts a %s: %d %s, want 403 naming the reference, not where it went", tc.what, r.status, r.body)
		}
	}
	if n := len(e.alerts.commands()); n != sent {
		t.Errorf("refused CAP alerts sent %d commands", n-sent)
	}
	var em loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+playing.Emergency.ID, e.admin, nil, http.StatusOK, &em)
	if em.State != loaxa.EmergencyActive {
		t.Errorf("the district's warning after refused withdrawals: %s, want active", em.State)
	}
	var q loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+waiting.Alert.ID, e.admin, nil, http.StatusOK, &q)
	if q.Action != "pending" {
		t.Errorf("the waiting warning after a refused Cancel: %s, want pending", q.Action)
	}
	// Nothing of the refused alerts was recorded: the same Cancel from
	// someone who may is not a duplicate.
	r := post(district, cancelOf("c1", "p1"))
	var c capAnswer
	if r.status != http.StatusCreated || jsonUnmarshal(r.body, &c) != nil || c.Action != "cancel" || !slices.Equal(c.Cancelled, []string{playing.Emergency.ID}) {
		t.Errorf("district officer's Cancel: %d %s", r.status, r.body)
	}
	e.call("GET", "/api/v1/emergency/"+playing.Emergency.ID, e.admin, nil, http.StatusOK, &em)
	if em.State != loaxa.EmergencyCancelled {
		t.Errorf("the district's warning after the district's Cancel: %s, want cancelled", em.State)
	}
}

// TestCapExerciseDoesNotWithdrawActual: a Cancel or Update of status
// Exercise that references a real (Actual) alert leaves it playing: an
// exercise is for its participants only. The Update still plays as the
// drill it is; the answer says what was not withdrawn.
func TestCapExerciseDoesNotWithdrawActual(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	real := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	if real.Action != "play" || real.Emergency == nil {
		t.Fatalf("set-up: %+v", real)
	}
	ref := "<references>nchmf.gov.vn,p1,2026-03-02T04:50:00+07:00</references>"
	cancel := strings.Replace(capXML("x1", "Exercise", "12346", ref), "<msgType>Alert", "<msgType>Cancel", 1)
	update := strings.Replace(capXML("x2", "Exercise", "12346", ref), "<msgType>Alert", "<msgType>Update", 1)
	if c := e.postCap(cancel, http.StatusCreated); c.Action != "cancel" || len(c.Cancelled) != 0 || !strings.Contains(c.Reason, "nchmf.gov.vn,p1 not withdrawn") {
		t.Errorf("exercise Cancel of the real alert: %+v", c)
	}
	if u := e.postCap(update, http.StatusCreated); u.Action != "drill" || len(u.Cancelled) != 0 || u.Emergency == nil || !u.Emergency.Drill {
		t.Errorf("exercise Update of the real alert: %+v", u)
	}
	if st := e.emergencyState(real.Emergency.ID); st != loaxa.EmergencyActive {
		t.Errorf("the real alert after the exercise's Cancel and Update: %s, want active", st)
	}
	e.noCancelSent("after the exercise's Cancel and Update")
}

// emergencyState returns the state of emergency id.
func (e *env) emergencyState(id string) string {
	e.t.Helper()
	var em loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+id, e.admin, nil, http.StatusOK, &em)
	return em.State
}

// noCancelSent fails the test if an alert-cancel was sent to any node.
func (e *env) noCancelSent(when string) {
	e.t.Helper()
	for _, c := range e.alerts.commands() {
		if c.cmd.Name == protocol.CmdAlertCancel {
			e.t.Errorf("a cancel was sent %s: %+v", when, c)
		}
	}
}

// updateWaiting plays CAP warning p1 (its event then on the auto-start
// list) and posts u1, an Update of it whose event no longer is: it waits
// for approval.
func updateWaiting(t *testing.T) (e *env, playing, update capAnswer) {
	t.Helper()
	e = newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	playing = e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	if playing.Action != "play" || playing.Emergency == nil {
		t.Fatalf("set-up: %+v", playing)
	}
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {}}, http.StatusOK, nil)
	ref := "<references>nchmf.gov.vn,p1,2026-03-02T04:50:00+07:00</references>"
	update = e.postCap(strings.Replace(capXML("u1", "Actual", "12346", ref), "<msgType>Alert", "<msgType>Update", 1), http.StatusCreated)
	return e, playing, update
}

// TestCapUpdateWaitingKeepsTheWarning: an Update whose event does not
// start on its own waits for approval, and the warning it updates sounds
// on meanwhile (the answer says so) rather than leaving the area silent;
// approving the update plays it and then stops the older warning.
func TestCapUpdateWaitingKeepsTheWarning(t *testing.T) {
	e, playing, u := updateWaiting(t)
	if u.Action != "pending" || len(u.Cancelled) != 0 || !strings.Contains(u.Reason, playing.Emergency.ID+" of nchmf.gov.vn,p1") {
		t.Errorf("waiting Update: %+v, want pending, nothing cancelled, the reason naming what plays on", u)
	}
	if st := e.emergencyState(playing.Emergency.ID); st != loaxa.EmergencyActive {
		t.Errorf("the warning while its update waits: %s, want active", st)
	}
	e.noCancelSent("while the update waits")

	var a capAnswer
	e.call("POST", "/api/v1/cap/"+u.Alert.ID+"/approve", e.admin, nil, http.StatusOK, &a)
	if a.Emergency == nil || !slices.Equal(a.Cancelled, []string{playing.Emergency.ID}) {
		t.Errorf("approved Update: %+v, want it played and %s cancelled", a, playing.Emergency.ID)
	}
	if st := e.emergencyState(playing.Emergency.ID); st != loaxa.EmergencyCancelled {
		t.Errorf("the older warning after the update was approved: %s, want cancelled", st)
	}
}

// TestCapUpdateApprovedWhileTheBrokerIsAway: an Update approved while the
// broker is away is stored (answered 503 with its emergency) and still
// withdraws the warning it updates, whose cancel follows once the broker
// is back; otherwise that warning would sound on after the update, and the
// approval cannot be made twice.
func TestCapUpdateApprovedWhileTheBrokerIsAway(t *testing.T) {
	e, playing, u := updateWaiting(t)
	if u.Action != "pending" {
		t.Fatalf("set-up: the Update %+v, want pending", u)
	}

	e.alerts.setAway(errors.New("not connected to the broker at tcp://mqtt.haiphong.example:1883"))
	var answer struct {
		Error     struct{ Code, Message string }
		Emergency *loaxa.Emergency
	}
	e.call("POST", "/api/v1/cap/"+u.Alert.ID+"/approve", e.admin, nil, http.StatusServiceUnavailable, &answer)
	if answer.Emergency == nil || !strings.Contains(answer.Error.Message, "not connected to the broker") {
		t.Fatalf("approval with the broker away answered %+v, want the error and the emergency stored", answer)
	}
	if st := e.emergencyState(playing.Emergency.ID); st != loaxa.EmergencyCancelled {
		t.Errorf("the warning the update replaces: %s, want cancelled (its cancel follows the nodes)", st)
	}
	if st := e.emergencyState(answer.Emergency.ID); st != loaxa.EmergencyActive {
		t.Errorf("the update's own emergency: %s, want active (sent again once the broker is back)", st)
	}
	e.call("POST", "/api/v1/cap/"+u.Alert.ID+"/approve", e.admin, nil, http.StatusConflict, nil)
}

// fakeFeeds reports fixed feed statuses.
type fakeFeeds []cap.FeedStatus

func (f fakeFeeds) Status() []cap.FeedStatus { return f }

// TestCapFeedsStatus: GET /cap/feeds says how each configured feed's polls
// went, to any signed-in officer; without feeds the list is empty.
func TestCapFeedsStatus(t *testing.T) {
	at := time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC)
	feeds := fakeFeeds{
		{Feed: "https://canhbao.example.vn/cap.xml", LastOK: at},
		{Feed: "https://nchmf.example.vn/atom", LastOK: at.Add(-time.Hour), Failures: 12, LastError: "GET https://nchmf.example.vn/atom: 502 Bad Gateway", LastErrorAt: at},
	}
	e := newEnv(t, func(s *lhttp.Server) { s.CapFeeds = feeds })
	e.tree()
	officer := e.addUser("xa-a", loaxa.RoleCommune, "12346")
	var got struct{ Feeds []cap.FeedStatus }
	e.call("GET", "/api/v1/cap/feeds", officer, nil, http.StatusOK, &got)
	if len(got.Feeds) != 2 || !got.Feeds[0].LastOK.Equal(at) || got.Feeds[1].Failures != 12 || !strings.Contains(got.Feeds[1].LastError, "502") {
		t.Errorf("feeds %+v", got.Feeds)
	}
	checkError(t, e.request("GET", "/api/v1/cap/feeds?x=1", officer, "", nil), http.StatusBadRequest, loaxa.EInvalid, "x")

	none := newEnv(t)
	none.call("GET", "/api/v1/cap/feeds", none.admin, nil, http.StatusOK, &got)
	if got.Feeds == nil || len(got.Feeds) != 0 {
		t.Errorf("without feeds: %+v, want an empty list", got.Feeds)
	}
}

// capRefP1 references alert p1 of capXML.
const capRefP1 = "<references>nchmf.gov.vn,p1,2026-03-02T04:50:00+07:00</references>"

// TestCapAfterItsCancelOrUpdate: an alert that comes after a Cancel or
// Update of it (a gateway that retried out of order, a feed that lists
// the newest first) was withdrawn before it came: it is recorded as
// cancelled and never sounds, beside or after the newer warning.
func TestCapAfterItsCancelOrUpdate(t *testing.T) {
	for _, msgType := range []string{"Cancel", "Update"} {
		t.Run(msgType, func(t *testing.T) {
			e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
			e.tree()
			e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
			later := strings.Replace(capXML("l1", "Actual", "12346", capRefP1), "<msgType>Alert", "<msgType>"+msgType, 1)
			l := e.postCap(later, http.StatusCreated)
			p := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
			if p.Action != "cancelled" || p.Emergency != nil || !strings.Contains(p.Reason, msgType+" nchmf.gov.vn,l1") {
				t.Errorf("p1 after its %s: %+v; want it recorded as cancelled, naming the %s, and not played", msgType, p, msgType)
			}
			if msgType == "Update" {
				if l.Emergency == nil {
					t.Fatalf("set-up: the Update did not play: %+v", l)
				}
				if st := e.emergencyState(l.Emergency.ID); st != loaxa.EmergencyActive {
					t.Errorf("the Update's warning after p1 came: %s, want active", st)
				}
			}
		})
	}
	// An exercise's Cancel withdraws only exercises: the real warning it
	// references, coming after it, sounds.
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	e.postCap(strings.Replace(capXML("x1", "Exercise", "12346", capRefP1), "<msgType>Alert", "<msgType>Cancel", 1), http.StatusCreated)
	if p := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated); p.Action != "play" || p.Emergency == nil {
		t.Errorf("an Actual alert after an Exercise's Cancel of it: %+v, want it played", p)
	}
}

// TestCapUpdateThatCannotPlayKeepsTheWarning: an Update that would start
// on its own but cannot be played (text-to-speech fails) waits for
// approval, and the warning it updates sounds on meanwhile: the area
// keeps the older warning rather than none.
func TestCapUpdateThatCannotPlayKeepsTheWarning(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) {
		s.SpeechEngine = &tts.Espeak{Command: filepath.Join(t.TempDir(), "espeak-ng")} // fails
	})
	e.tree()
	warning := e.upload(e.admin, "canh-bao-bao.wav", wav(16000, 1, 32000), "Cảnh báo bão", http.StatusCreated)
	e.call("PUT", "/api/v1/cap/recordings", e.admin, map[string]any{"recordings": map[string]string{"Bão": warning.ID}}, http.StatusOK, nil)
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão", "Lũ"}}, http.StatusOK, nil)
	p := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	if p.Action != "play" || p.Emergency == nil {
		t.Fatalf("set-up: %+v", p)
	}
	update := strings.Replace(strings.Replace(capXML("u1", "Actual", "12346", capRefP1), "<msgType>Alert", "<msgType>Update", 1),
		"<event>Bão</event>", "<event>Lũ</event>", 1)
	r := e.request("POST", "/api/v1/cap", e.admin, "application/cap+xml", strings.NewReader(update))
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("the Update that cannot be read out answered %d: %s, want 503", r.status, r.body)
	}
	u, err := e.caps.FindCapAlertByKey(t.Context(), "nchmf.gov.vn,u1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Action != "pending" || !strings.Contains(u.Reason, "emergency "+p.Emergency.ID+" of nchmf.gov.vn,p1 plays on until this update is approved") {
		t.Errorf("the Update's record: %s, %q; want pending, saying the warning plays on", u.Action, u.Reason)
	}
	if st := e.emergencyState(p.Emergency.ID); st != loaxa.EmergencyActive {
		t.Errorf("the warning the Update could not replace: %s, want active", st)
	}
	e.noCancelSent("while the update waits")
}

// TestCapFeedRefusalsAndPassingErrors: what ReceiveCapFeed answers the
// feed poller. An alert refused for what it is wraps cap.ErrRefused, so
// that its entry is not fetched again; one that could not be played for
// a passing reason does not, so that it is handed again at the next poll,
// which finds it stored (a duplicate, nothing more to do).
func TestCapFeedRefusalsAndPassingErrors(t *testing.T) {
	var srv *lhttp.Server
	e := newEnv(t, func(s *lhttp.Server) {
		srv = s
		s.SpeechEngine = &tts.Espeak{Command: filepath.Join(t.TempDir(), "espeak-ng")} // fails
	})
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	if _, err := srv.ReceiveCapFeed(t.Context(), []byte("<alert>bão</alert>"), "https://feed.example/cap.atom"); !errors.Is(err, cap.ErrRefused) {
		t.Errorf("an invalid alert from a feed: %v, want it refused (cap.ErrRefused)", err)
	}
	doc := []byte(capXML("p1", "Actual", "12346"))
	if _, err := srv.ReceiveCapFeed(t.Context(), doc, "https://feed.example/cap.atom"); err == nil || errors.Is(err, cap.ErrRefused) {
		t.Errorf("an alert whose text cannot be read out: %v, want a passing error", err)
	}
	if action, err := srv.ReceiveCapFeed(t.Context(), doc, "https://feed.example/cap.atom"); err != nil || action != "duplicate" {
		t.Errorf("the same alert handed again: %q, %v; want a duplicate", action, err)
	}
}

// TestCapPlaysEachVietnameseBlock: a CAP alert with two vi-VN info blocks,
// one for each commune (the coast to shelter now, inland to make ready),
// played only the first block: the second commune heard nothing, and
// nothing said so. CAP 1.2 treats each block as its own (a later one may
// expand, not override, an earlier one where their areas overlap): each
// block's words go to its own areas, as an emergency of its own, and a
// Cancel of the alert stops both.
func TestCapPlaysEachVietnameseBlock(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	second := `<info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Expected</urgency>
  <severity>Severe</severity><certainty>Likely</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Bão số 3 gây mưa lớn</headline><instruction>Bà con chằng chống nhà cửa</instruction>
  <area><areaDesc>Vùng 2</areaDesc><geocode><valueName>loaxa</valueName><value>12347</value></geocode></area>
  <area><areaDesc>Vùng 1 nữa</areaDesc><geocode><valueName>loaxa</valueName><value>12346</value></geocode></area></info>
</alert>`
	doc := strings.Replace(capXML("two", "Actual", "12346"), "</alert>", second, 1)
	a := e.postCap(doc, http.StatusCreated)
	if a.Action != "play" || a.Emergency == nil {
		t.Fatalf("alert with two vi-VN blocks: %+v", a)
	}
	if got := strings.Join(a.Alert.Targets, " "); got != "12346 12347" {
		t.Errorf("the alert's targets %q, want both communes", got)
	}
	words := map[string]string{}
	for _, c := range e.alerts.commands() {
		if c.scope != "area" || c.cmd.Alert == nil {
			t.Errorf("sent %s/%s %s, want alerts to areas only", c.scope, c.id, c.cmd.Name)
			continue
		}
		words[c.id] = c.cmd.Alert.Occurrence.Announcement
	}
	if len(words) != 2 || words["12346"] == "" || words["12347"] == "" || words["12346"] == words["12347"] {
		t.Fatalf("alerts sent %v, want one emergency to each commune", words)
	}
	for area, want := range map[string]string{"12346": "Bà con vào nơi trú ẩn", "12347": "Bà con chằng chống nhà cửa"} {
		var em loaxa.Emergency
		e.call("GET", "/api/v1/emergency/"+words[area], e.admin, nil, http.StatusOK, &em)
		if !strings.Contains(em.Text, want) || !slices.Equal(em.Targets, []string{area}) {
			t.Errorf("emergency to %s: text %q, targets %v; want %q there only (the first block keeps the commune both name)", area, em.Text, em.Targets, want)
		}
	}

	cancel := strings.NewReplacer("<identifier>two<", "<identifier>two-cancel<", "<msgType>Alert", "<msgType>Cancel",
		"<scope>Public</scope>", "<scope>Public</scope><references>nchmf.gov.vn,two,2026-03-02T04:50:00+07:00</references>").Replace(capXML("two", "Actual", "12346"))
	c := e.postCap(cancel, http.StatusCreated)
	slices.Sort(c.Cancelled)
	want := []string{words["12346"], words["12347"]}
	slices.Sort(want)
	if !slices.Equal(c.Cancelled, want) {
		t.Errorf("the Cancel stopped %v, want both emergencies %v", c.Cancelled, want)
	}
}

// TestCapPlaysTheBlocksThatHaveNotExpired: a CAP alert's first vi-VN block
// (the coast) had expired and its second (inland) had not; the whole
// alert was recorded expired and the inland commune heard nothing. Each
// block is judged on its own, when the alert comes and when it is
// approved: what has not expired plays, to its own areas.
func TestCapPlaysTheBlocksThatHaveNotExpired(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	second := func(event string) string {
		return `<info><language>vi-VN</language><category>Met</category><event>` + event + `</event><urgency>Expected</urgency>
  <severity>Severe</severity><certainty>Likely</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Bão số 3 gây mưa lớn</headline><instruction>Bà con chằng chống nhà cửa</instruction>
  <area><areaDesc>Vùng 2</areaDesc><geocode><valueName>loaxa</valueName><value>12347</value></geocode></area></info>
</alert>`
	}
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	// The first block expired at 04:59, a minute before the controller's 05:00.
	doc := strings.Replace(strings.Replace(capXML("late", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T04:59:00+07:00", 1),
		"</alert>", second("Bão"), 1)
	a := e.postCap(doc, http.StatusCreated)
	if a.Action != "play" || a.Emergency == nil {
		t.Fatalf("first block expired, second not: %s (%s), want the second to play", a.Action, a.Reason)
	}
	sent := e.alerts.commands()
	if len(sent) != 1 || sent[0].id != "12347" || sent[0].cmd.Alert == nil {
		t.Fatalf("sent %v, want one alert, to 12347", sent)
	}
	if !strings.Contains(a.Emergency.Text, "chằng chống") || !slices.Equal(a.Emergency.Targets, []string{"12347"}) {
		t.Errorf("emergency: text %q, targets %v; want the second block's words to 12347", a.Emergency.Text, a.Emergency.Targets)
	}

	// Waiting for approval (its second block's event is not on the list)
	// while its first block expires: approving plays the second.
	doc = strings.Replace(strings.Replace(capXML("waits", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T05:20:00+07:00", 1),
		"</alert>", second("Lũ"), 1)
	p := e.postCap(doc, http.StatusCreated)
	if p.Action != "pending" || len(p.Alert.Blocks) != 2 {
		t.Fatalf("second block's event not on the list: %s, %d blocks; want pending with both", p.Action, len(p.Alert.Blocks))
	}
	e.clock.Advance(30 * time.Minute) // 05:30: the first block expired at 05:20
	var approved capAnswer
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusOK, &approved)
	var to []string
	for _, c := range e.alerts.commands()[1:] {
		if c.cmd.Alert != nil {
			to = append(to, c.id)
		}
	}
	if !slices.Equal(to, []string{"12347"}) {
		t.Errorf("approved after its first block expired: alerts to %v, want only the second block's, 12347", to)
	}
}

// TestCapFoldsABlockInsideAnEarlierBlocksArea: a CAP alert's first vi-VN
// block named the district (318) and its second a commune inside it
// (12347); the commune's clusters heard both blocks, one after the other,
// though the district's block already covered it (CAP 1.2: a later block
// adds to an earlier one, never overrides it). An area inside an earlier
// block's area is left out of the later block; a block left with no area
// does not play, and the record says so.
func TestCapFoldsABlockInsideAnEarlierBlocksArea(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	second := `<info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Expected</urgency>
  <severity>Severe</severity><certainty>Likely</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Bão số 3 gây mưa lớn</headline><instruction>Bà con chằng chống nhà cửa</instruction>
  <area><areaDesc>Xã Tiên Minh</areaDesc><geocode><valueName>loaxa</valueName><value>12347</value></geocode></area></info>
</alert>`
	doc := strings.Replace(capXML("district", "Actual", "318"), "</alert>", second, 1)
	a := e.postCap(doc, http.StatusCreated)
	if a.Action != "play" || a.Emergency == nil {
		t.Fatalf("district then a commune in it: %s (%s), want play", a.Action, a.Reason)
	}
	var to []string
	for _, c := range e.alerts.commands() {
		if c.cmd.Alert != nil {
			to = append(to, c.id)
		}
	}
	if !slices.Equal(to, []string{"318"}) {
		t.Errorf("alerts sent to %v, want one, to the district 318 (the commune 12347 lies inside it)", to)
	}
	if !slices.Equal(a.Alert.Targets, []string{"318"}) || len(a.Alert.Blocks) != 0 {
		t.Errorf("record: targets %v, %d blocks; want the district alone, as a single block", a.Alert.Targets, len(a.Alert.Blocks))
	}
	if !strings.Contains(a.Reason, "12347") || !strings.Contains(a.Reason, "318") {
		t.Errorf("reason %q, want it to say the second block's 12347 lies within the first block's 318", a.Reason)
	}
}

// TestCapApprovedRecordSaysWhatPlayed: a pending alert with two vi-VN
// blocks was approved after its first block (the coast) had expired; only
// the second (inland) played, and its emergency was the record's, yet the
// record's event, headline and text still showed the first block, so the
// console showed words nobody heard. The record gives the words of the
// first block that played.
func TestCapApprovedRecordSaysWhatPlayed(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	second := `<info><language>vi-VN</language><category>Met</category><event>Lũ</event><urgency>Expected</urgency>
  <severity>Severe</severity><certainty>Likely</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Lũ trên sông Văn Úc</headline><instruction>Bà con chằng chống nhà cửa</instruction>
  <area><areaDesc>Vùng 2</areaDesc><geocode><valueName>loaxa</valueName><value>12347</value></geocode></area></info>
</alert>`
	doc := strings.Replace(strings.Replace(capXML("waits", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T05:20:00+07:00", 1),
		"</alert>", second, 1)
	p := e.postCap(doc, http.StatusCreated)
	if p.Action != "pending" || p.Alert.Event != "Bão" {
		t.Fatalf("neither event on the auto-start list: %s, event %q; want pending, showing the first block", p.Action, p.Alert.Event)
	}
	e.clock.Advance(30 * time.Minute) // 05:30: the first block expired at 05:20
	var approved capAnswer
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusOK, &approved)
	if approved.Emergency == nil || !slices.Equal(approved.Emergency.Targets, []string{"12347"}) {
		t.Fatalf("approved: emergency %+v, want the second block's, to 12347", approved.Emergency)
	}
	var rec loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+p.Alert.ID, e.admin, nil, http.StatusOK, &rec)
	for _, got := range []*loaxa.CapAlert{&approved.Alert, &rec} {
		if got.Emergency != approved.Emergency.ID || got.Event != "Lũ" || got.Headline != "Lũ trên sông Văn Úc" ||
			!strings.Contains(got.Text, "chằng chống") || !got.Expires.Equal(time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)) {
			t.Errorf("record after approval: emergency %s, event %q, headline %q, text %q, expires %v; want the second block's, which played (%s)",
				got.Emergency, got.Event, got.Headline, got.Text, got.Expires, approved.Emergency.ID)
		}
	}
}

// capBlock is a vi-VN info block of event Bão with instruction say, for
// the areas given as geocodes.
func capBlock(say string, areas ...string) string {
	var b strings.Builder
	b.WriteString(`<info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Expected</urgency>
  <severity>Severe</severity><certainty>Likely</certainty><expires>2026-03-02T09:00:00+07:00</expires>
  <headline>Bão số 3 gây mưa lớn</headline><instruction>` + say + `</instruction>`)
	for _, a := range areas {
		b.WriteString(`<area><areaDesc>Vùng ` + a + `</areaDesc><geocode><valueName>loaxa</valueName><value>` + a + `</value></geocode></area>`)
	}
	b.WriteString("</info>\n")
	return b.String()
}

// capWords returns the words of each area's alert sent since the n-th
// command: area → the emergency's text.
func (e *env) capWords(n int) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, c := range e.alerts.commands()[n:] {
		if c.scope != "area" || c.cmd.Alert == nil {
			continue
		}
		var em loaxa.Emergency
		e.call("GET", "/api/v1/emergency/"+c.cmd.Alert.Occurrence.Announcement, e.admin, nil, http.StatusOK, &em)
		out[c.id] = em.Text
	}
	return out
}

// TestCapSendsALaterDistrictBlockAroundAnEarlierCommune: a CAP alert's
// first vi-VN block named a village (1234801) and its second the
// district it lies in (318); the village's clusters heard the village's
// warning and then the district's, two different messages back to back.
// CAP 1.2: where blocks of a language overlap, a later one may expand an
// earlier one but not override it; so the earlier block keeps its area,
// and the later one goes to the rest of the district: its communes other
// than the village's (12346, 12347) and the village's sister (1234802).
// An area on the way down with clusters of its own cannot be split from
// what lies below it (an emergency goes to whole areas): the later block
// then goes to it whole, as no cluster of its area may miss its warning,
// and the reason says which earlier area hears both.
func TestCapSendsALaterDistrictBlockAroundAnEarlierCommune(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	for _, a := range []map[string]string{
		{"id": "12348", "name": "Xã Tiên Cường", "parent": "318"},
		{"id": "1234801", "name": "Thôn Đông", "parent": "12348"},
		{"id": "1234802", "name": "Thôn Tây", "parent": "12348"},
	} {
		e.call("POST", "/api/v1/areas", e.admin, a, http.StatusCreated, nil)
	}
	for id, area := range map[string]string{"n-c": "1234801", "n-d": "1234802"} {
		e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": id, "name": "Cụm loa " + id, "area": area, "lat": 20.69, "lon": 106.57},
			http.StatusCreated, nil)
	}
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)

	doc := capXML("village-then-district", "Actual", "1234801")
	doc = strings.Replace(doc, "</alert>", capBlock("Bà con chằng chống nhà cửa", "318")+"</alert>", 1)
	a := e.postCap(doc, http.StatusCreated)
	if a.Action != "play" || a.Emergency == nil {
		t.Fatalf("a village, then its district: %s (%s), want play", a.Action, a.Reason)
	}
	words := e.capWords(0)
	want := map[string]string{"1234801": "vào nơi trú ẩn", "1234802": "chằng chống", "12346": "chằng chống", "12347": "chằng chống"}
	if len(words) != len(want) {
		t.Errorf("alerts sent to %v, want one to each of %v (none to the district 318, whose village 1234801 has the first block)", slices.Sorted(maps.Keys(words)), slices.Sorted(maps.Keys(want)))
	}
	for area, say := range want {
		if !strings.Contains(words[area], say) {
			t.Errorf("alert to %s says %q, want %q", area, words[area], say)
		}
	}
	if len(a.Alert.Blocks) != 2 || !slices.Equal(a.Alert.Blocks[1].Targets, []string{"12346", "12347", "1234802"}) {
		t.Fatalf("record's blocks %+v, want the district block to 12346, 12347 and 1234802", a.Alert.Blocks)
	}
	if got := strings.Join(a.Alert.Targets, " "); got != "12346 12347 1234801 1234802" {
		t.Errorf("the alert's targets %q, want the areas its blocks went to", got)
	}
	if !strings.Contains(a.Reason, "318") || !strings.Contains(a.Reason, "1234801") {
		t.Errorf("reason %q, want it to say the district block 318 plays around 1234801, which the first block has", a.Reason)
	}

	// The district has a cluster of its own, at the district office: only
	// the whole district reaches it.
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-e", "name": "Cụm loa huyện", "area": "318", "lat": 20.70, "lon": 106.55},
		http.StatusCreated, nil)
	n := len(e.alerts.commands())
	doc = strings.Replace(capXML("commune-then-district", "Actual", "12346"), "</alert>", capBlock("Bà con chằng chống nhà cửa", "318")+"</alert>", 1)
	a = e.postCap(doc, http.StatusCreated)
	words = e.capWords(n)
	if len(words) != 2 || !strings.Contains(words["12346"], "vào nơi trú ẩn") || !strings.Contains(words["318"], "chằng chống") {
		t.Errorf("with a cluster in the district itself: alerts %v, want the first block to 12346 and the second to the whole district 318", words)
	}
	if !strings.Contains(a.Reason, "12346") || !strings.Contains(a.Reason, "318") || !strings.Contains(a.Reason, "both") {
		t.Errorf("reason %q, want it to say 12346 hears both blocks, as 318 has clusters of its own", a.Reason)
	}
}

// TestCapApprovalKeepsWhatTheRecordSaid: a pending CAP alert's reason said
// which info blocks would not play and why; approving it cleared the
// reason, so what was left out was then only in the log, and a block only
// partly covered by an earlier one, or one expired or for no area here,
// got no note at all. The record keeps its reason through the approval,
// with a note for every block left out or cut down, and gains what was
// decided at approval: when, and the blocks that expired while it waited.
func TestCapApprovalKeepsWhatTheRecordSaid(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	doc := strings.Replace(capXML("noted", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T05:20:00+07:00", 1)
	gone := strings.Replace(capBlock("Bà con đề phòng sạt lở", "12347"), "2026-03-02T09:00:00+07:00", "2026-03-02T04:55:00+07:00", 1)
	doc = strings.Replace(doc, "</alert>", capBlock("Bà con chằng chống nhà cửa", "12346", "12347")+ // 12346 is the first block's
		capBlock("Bà con theo dõi tin bão", "318")+ // both its communes are taken
		capBlock("Bà con ở Quảng Ninh sơ tán", "22")+ // no such area here
		gone+"</alert>", 1)
	p := e.postCap(doc, http.StatusCreated)
	if p.Action != "pending" || len(p.Alert.Blocks) != 2 {
		t.Fatalf("posted: %s, %d blocks (%s); want pending with two blocks", p.Action, len(p.Alert.Blocks), p.Reason)
	}
	// The four later blocks share one headline: each note names its
	// block by its place among the alert's info elements too.
	said := []string{
		`event "Bão" is not on the auto-start list`,
		`info block 2 "Bão số 3 gây mưa lớn" (Bão) plays to 12347 only: an earlier block has 12346`,
		`info block 3 "Bão số 3 gây mưa lớn" (Bão) not played: an earlier block covers its areas (all of 318 (12346, 12347))`,
		`info block 4 "Bão số 3 gây mưa lớn" (Bão) not played: no geocode names an area here`,
		`info block 5 "Bão số 3 gây mưa lớn" (Bão) not played: it expired at 2026-03-02T04:55:00+07:00`,
	}
	for _, want := range said {
		if !strings.Contains(p.Reason, want) {
			t.Errorf("reason when posted %q lacks %q", p.Reason, want)
		}
	}

	e.clock.Advance(30 * time.Minute) // 05:30: the first block expired at 05:20
	var approved capAnswer
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusOK, &approved)
	var rec loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+p.Alert.ID, e.admin, nil, http.StatusOK, &rec)
	// The reason as it was, but for the route that approves it, and who
	// approved it when.
	kept := strings.TrimSuffix(p.Reason, "; to approve it: POST /api/v1/cap/"+p.Alert.ID+"/approve") +
		"; approved by admin at 2026-03-02T05:30:00+07:00"
	for _, got := range []*loaxa.CapAlert{&approved.Alert, &rec} {
		if got.Action != "approved" || got.Reason != kept {
			t.Errorf("after approval: %s, reason %q; want approved, the reason as it was without its approval route, and the approval: %q", got.Action, got.Reason, kept)
		}
		if !got.ApprovedAt.Equal(t0.Add(30*time.Minute)) || got.ApprovedBy != "admin" {
			t.Errorf("approved at %v by %q, want %v by admin", got.ApprovedAt, got.ApprovedBy, t0.Add(30*time.Minute))
		}
		if want := `info block 1 "Bão số 3 đổ bộ" (Bão) not played: it expired at 2026-03-02T05:20:00+07:00 while the alert waited`; got.Approval != want {
			t.Errorf("approval %q, want %q", got.Approval, want)
		}
	}

	// One held for approval because it could not be played keeps its
	// notes after saying so.
	quiet := newEnv(t) // no speech engine
	quiet.tree()
	quiet.call("PUT", "/api/v1/cap/auto-start", quiet.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	quiet.postCap(strings.Replace(capXML("unspoken", "Actual", "12346"), "</alert>", capBlock("Bà con chằng chống nhà cửa", "12347")+gone+"</alert>", 1),
		http.StatusServiceUnavailable)
	var held struct{ Alerts []loaxa.CapAlert }
	quiet.call("GET", "/api/v1/cap?limit=1", quiet.admin, nil, http.StatusOK, &held)
	if len(held.Alerts) != 1 || held.Alerts[0].Action != "pending" || !strings.HasPrefix(held.Alerts[0].Reason, "could not be played") ||
		!strings.Contains(held.Alerts[0].Reason, "not played: it expired at 2026-03-02T04:55:00+07:00") {
		t.Errorf("held as it could not be played: %+v; want pending, saying so first, then the block that expired", held.Alerts)
	}
}

// TestCapWithdrawalKeepsTheNotes: a Cancel withdrew a pending CAP alert
// and its reason became "withdrawn by a later Cancel or Update" alone:
// why it waited and which of its info blocks would not play were gone
// from the record. The withdrawal is noted after what the reason said;
// so it is for an alert whose Cancel came before it.
func TestCapWithdrawalKeepsTheNotes(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	noted := func(id string, extra ...string) string {
		return strings.Replace(capXML(id, "Actual", "12346", extra...), "</alert>", capBlock("Bà con theo dõi tin bão", "22")+"</alert>", 1)
	}
	p := e.postCap(noted("p1"), http.StatusCreated)
	if p.Action != "pending" || !strings.Contains(p.Reason, `(Bão) not played: no geocode names an area here`) {
		t.Fatalf("set-up: %s (%s), want pending, noting the second block", p.Action, p.Reason)
	}
	cancel := strings.Replace(capXML("c1", "Actual", "12346", capRefP1), "<msgType>Alert", "<msgType>Cancel", 1)
	e.postCap(cancel, http.StatusCreated)
	var rec loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+p.Alert.ID, e.admin, nil, http.StatusOK, &rec)
	if want := strings.TrimSuffix(p.Reason, "; to approve it: POST /api/v1/cap/"+p.Alert.ID+"/approve") + "; withdrawn by a later Cancel nchmf.gov.vn,c1"; rec.Action != "cancelled" || rec.Reason != want {
		t.Errorf("withdrawn while pending: %s, reason %q; want cancelled, %q", rec.Action, rec.Reason, want)
	}

	// Its Cancel first, then the alert.
	e.postCap(strings.Replace(capXML("c2", "Actual", "12346", "<references>nchmf.gov.vn,p2,2026-03-02T04:50:00+07:00</references>"),
		"<msgType>Alert", "<msgType>Cancel", 1), http.StatusCreated)
	late := e.postCap(noted("p2"), http.StatusCreated)
	if late.Action != "cancelled" || !strings.Contains(late.Reason, `event "Bão" is not on the auto-start list`) ||
		!strings.Contains(late.Reason, `(Bão) not played: no geocode names an area here`) ||
		!strings.Contains(late.Reason, "; withdrawn by Cancel nchmf.gov.vn,c2 (") || !strings.HasSuffix(late.Reason, "received before it") {
		t.Errorf("withdrawn before it came: %s, reason %q; want cancelled, its notes, then the withdrawal", late.Action, late.Reason)
	}
}

// TestCapApprovalThatCannotPlayWaitsAgain: an officer approved a waiting
// typhoon warning while text-to-speech was down; the approval failed
// (503), yet the record stayed "approved" with no emergency, and every
// later approval answered 409: the warning could never be played from
// its CAP record. A failed approval leaves it waiting, saying why, and
// approving again once the engine is back plays it.
func TestCapApprovalThatCannotPlayWaitsAgain(t *testing.T) {
	engine := &tts.Espeak{Command: filepath.Join(t.TempDir(), "espeak-ng")} // fails
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = engine })
	e.tree()
	p := e.postCap(capXML("down", "Actual", "12346"), http.StatusCreated)
	if p.Action != "pending" {
		t.Fatalf("set-up: %s, want pending (Bão is not on the auto-start list)", p.Action)
	}
	route := "; to approve it: POST /api/v1/cap/" + p.Alert.ID + "/approve"
	waited := strings.TrimSuffix(p.Alert.Reason, route)
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusServiceUnavailable, nil)
	var rec loaxa.CapAlert
	e.call("GET", "/api/v1/cap/"+p.Alert.ID, e.admin, nil, http.StatusOK, &rec)
	if rec.Action != "pending" || rec.Emergency != "" || rec.ApprovedBy != "" || !rec.ApprovedAt.IsZero() {
		t.Errorf("after the failed approval: %s, emergency %q, approved by %q at %v; want pending, none",
			rec.Action, rec.Emergency, rec.ApprovedBy, rec.ApprovedAt)
	}
	if strings.Contains(rec.Reason, "approved by") {
		t.Errorf("reason after the failed approval: %q; it was not approved", rec.Reason)
	}
	if !strings.HasPrefix(rec.Reason, waited) || !strings.Contains(rec.Reason, "approval by admin could not be played") ||
		!strings.HasSuffix(rec.Reason, route) || strings.Count(rec.Reason, route) != 1 {
		t.Errorf("reason after the failed approval: %q; want what it said (%q), that the approval could not be played, and its approval route once, at the end", rec.Reason, waited)
	}
	engine.Command = "" // the engine is back
	var approved capAnswer
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusOK, &approved)
	if approved.Emergency == nil || approved.Alert.Action != "approved" {
		t.Errorf("approved again: %s, emergency %+v; want approved, playing", approved.Alert.Action, approved.Emergency)
	}
}

// TestCapWaitingSaysHowToApproveIt: a CAP alert waiting for approval said
// "approve it with POST /api/v1/cap/{id}/approve", with a literal {id}:
// the operator reading the answer of a gateway's post, or the list, had
// to find which id was meant. Each way an alert comes to wait names the
// route with the alert's own id, in the answer and in its record.
func TestCapWaitingSaysHowToApproveIt(t *testing.T) {
	e := newEnv(t) // no speech engine: an alert on the auto-start list cannot be played
	e.tree()
	for _, c := range []struct{ name, doc string }{
		{"not on the auto-start list", capXML("event", "Actual", "12346")},
		{"not for the public", strings.Replace(capXML("scope", "Actual", "12346"),
			"<scope>Public</scope>", "<scope>Restricted</scope><restriction>Ban chỉ huy PCTT các xã</restriction>", 1)},
		{"stale", strings.Replace(strings.Replace(capXML("stale", "Actual", "12346"),
			"<sent>2026-03-02T04:50:00+07:00</sent>", "<sent>2026-03-02T02:00:00+07:00</sent>", 1),
			"<expires>2026-03-02T09:00:00+07:00</expires>", "", 1)},
	} {
		p := e.postCap(c.doc, http.StatusCreated)
		var rec loaxa.CapAlert
		e.call("GET", "/api/v1/cap/"+p.Alert.ID, e.admin, nil, http.StatusOK, &rec)
		want := "POST /api/v1/cap/" + p.Alert.ID + "/approve"
		for _, got := range []string{p.Reason, p.Alert.Reason, rec.Reason} {
			if p.Action != "pending" || p.Alert.ID == "" || !strings.Contains(got, want) || strings.Contains(got, "{id}") {
				t.Errorf("%s: %s, reason %q; want pending, naming %q", c.name, p.Action, got, want)
				break
			}
		}
	}
	// Held because it could not be played (no speech engine here).
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	e.postCap(capXML("unspoken", "Actual", "12346"), http.StatusServiceUnavailable)
	var held struct{ Alerts []loaxa.CapAlert }
	e.call("GET", "/api/v1/cap?limit=1", e.admin, nil, http.StatusOK, &held)
	if len(held.Alerts) != 1 || held.Alerts[0].Action != "pending" ||
		!strings.Contains(held.Alerts[0].Reason, "POST /api/v1/cap/"+held.Alerts[0].ID+"/approve") {
		t.Errorf("held as it could not be played: %+v; want pending, naming its approval route", held.Alerts)
	}
}

// TestCapWithdrawalIsAudited: a CAP Cancel or Update that stopped a
// warning left no emergency.cancel in the audit log, and its own
// cap.receive entry did not say what it stopped: walking docs/emergency.md
// ("each send, cancel and all-clear is in the audit log with drill="), the
// log showed the typhoon warning sent and never stopped, and a district's
// auditor (the Cancel names no area of its own) saw nothing of it. Each
// emergency a Cancel, an Update that plays or an approved Update stops is
// now audited as emergency.cancel, under its areas, naming the CAP alert.
func TestCapWithdrawalIsAudited(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão"}}, http.StatusOK, nil)
	ref := func(id string) string {
		return "<references>nchmf.gov.vn," + id + ",2026-03-02T04:50:00+07:00</references>"
	}
	msg := func(doc, msgType string) string {
		return strings.Replace(doc, "<msgType>Alert", "<msgType>"+msgType, 1)
	}
	cancelled := func(em string) *loaxa.AuditEntry {
		for _, x := range e.auditSeen(e.admin, "emergency.cancel") {
			if x.Target == em {
				return &x
			}
		}
		return nil
	}

	// A Cancel stops p1's warning.
	p1 := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	if p1.Emergency == nil {
		t.Fatalf("set-up: %+v", p1)
	}
	c := e.postCap(msg(capXML("c1", "Actual", "12346", ref("p1")), "Cancel"), http.StatusCreated)
	if !slices.Equal(c.Cancelled, []string{p1.Emergency.ID}) {
		t.Fatalf("Cancel: %+v", c)
	}
	x := cancelled(p1.Emergency.ID)
	if x == nil {
		t.Fatalf("the Cancel stopped %s: no emergency.cancel in the audit log", p1.Emergency.ID)
	}
	if x.Area != "12346" || !strings.Contains(x.Detail, "drill=false") || !strings.Contains(x.Detail, "nchmf.gov.vn,c1") {
		t.Errorf("the Cancel's audit entry %+v: want it under 12346, drill=false, naming the Cancel", *x)
	}

	// An Update that plays at once stops the warning it updates.
	p2 := e.postCap(capXML("p2", "Exercise", "12346"), http.StatusCreated)
	u := e.postCap(msg(capXML("u2", "Exercise", "12346", ref("p2")), "Update"), http.StatusCreated)
	if p2.Emergency == nil || !slices.Equal(u.Cancelled, []string{p2.Emergency.ID}) {
		t.Fatalf("Update: %+v of %+v", u, p2)
	}
	if x := cancelled(p2.Emergency.ID); x == nil || !strings.Contains(x.Detail, "drill=true") || !strings.Contains(x.Detail, "nchmf.gov.vn,u2") {
		t.Errorf("the Update stopped %s: audit entry %+v, want one with drill=true naming the Update", p2.Emergency.ID, x)
	}

	// An Update that waited, approved, stops it then.
	p3 := e.postCap(capXML("p3", "Actual", "12346"), http.StatusCreated)
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {}}, http.StatusOK, nil)
	w := e.postCap(msg(capXML("u3", "Actual", "12346", ref("p3")), "Update"), http.StatusCreated)
	if p3.Emergency == nil || w.Action != "pending" {
		t.Fatalf("set-up of the waiting Update: %+v of %+v", w, p3)
	}
	if x := cancelled(p3.Emergency.ID); x != nil {
		t.Errorf("a waiting Update: %s audited cancelled before it was stopped: %+v", p3.Emergency.ID, *x)
	}
	e.call("POST", "/api/v1/cap/"+w.Alert.ID+"/approve", e.admin, nil, http.StatusOK, nil)
	if x := cancelled(p3.Emergency.ID); x == nil || !strings.Contains(x.Detail, "nchmf.gov.vn,u3") {
		t.Errorf("the approved Update stopped %s: audit entry %+v, want one naming the Update", p3.Emergency.ID, x)
	}
}

// TestCapListSaysWhatBecameOfEachAlert: walking docs/emergency.md, a
// typhoon warning that had played and was then withdrawn by the warning
// service's Cancel, or replaced by its Update, still read "play" (or
// "approved") in GET /api/v1/cap with nothing more: an officer could not
// tell a warning sounding now from one stopped an hour ago, nor by which
// message. And an approved alert's reason still ended "to approve it:
// POST …". Each record now says which alert withdrew it and when
// (withdrawn: by, key, msg_type Cancel or Update, at), its action still
// saying what was done on arrival; the approval route leaves the reason
// once it no longer applies.
func TestCapListSaysWhatBecameOfEachAlert(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	auto := func(events ...string) {
		e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": nonNilStrings(events)}, http.StatusOK, nil)
	}
	ref := func(id string) string {
		return "<references>nchmf.gov.vn," + id + ",2026-03-02T04:50:00+07:00</references>"
	}
	msg := func(doc, msgType string) string {
		return strings.Replace(doc, "<msgType>Alert", "<msgType>"+msgType, 1)
	}
	listed := func(id string) loaxa.CapAlert {
		t.Helper()
		var list struct{ Alerts []loaxa.CapAlert }
		e.call("GET", "/api/v1/cap", e.admin, nil, http.StatusOK, &list)
		var one loaxa.CapAlert
		e.call("GET", "/api/v1/cap/"+id, e.admin, nil, http.StatusOK, &one)
		for _, a := range list.Alerts {
			if a.ID == id {
				if a.Action != one.Action || a.Reason != one.Reason || !reflectEqualWithdrawal(a.Withdrawn, one.Withdrawn) {
					t.Errorf("%s listed as %s (%q, %+v), read alone as %s (%q, %+v)", id, a.Action, a.Reason, a.Withdrawn, one.Action, one.Reason, one.Withdrawn)
				}
				return a
			}
		}
		t.Fatalf("%s not in the list", id)
		return one
	}
	// says checks that what's reason says note.
	says := func(what string, got loaxa.CapAlert, note string) {
		t.Helper()
		if !strings.Contains(got.Reason, note) {
			t.Errorf("%s: reason %q does not say %q", what, got.Reason, note)
		}
	}
	withdrawnBy := func(what string, got loaxa.CapAlert, action string, by capAnswer, at time.Time) {
		t.Helper()
		w := got.Withdrawn
		if got.Action != action || w == nil || w.By != by.Alert.ID || w.Key != by.Alert.Key || w.MsgType != by.Alert.MsgType || !w.At.Equal(at) {
			t.Errorf("%s: %s, withdrawn %+v; want %s, withdrawn by %s (%s %s) at %v", what, got.Action, w, action, by.Alert.ID, by.Alert.MsgType, by.Alert.Key, at)
		}
		if strings.Contains(got.Reason, "to approve it") {
			t.Errorf("%s: reason %q still says how to approve it", what, got.Reason)
		}
	}

	// Played, then cancelled by the warning service.
	auto("Bão")
	p1 := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	e.clock.Advance(10 * time.Minute)
	c1 := e.postCap(msg(capXML("c1", "Actual", "12346", ref("p1")), "Cancel"), http.StatusCreated)
	withdrawnBy("played, then cancelled", listed(p1.Alert.ID), "play", c1, t0.Add(10*time.Minute))
	says("played, then cancelled", listed(p1.Alert.ID), "withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T05:10:00+07:00: it no longer sounds")
	if got := listed(c1.Alert.ID); got.Withdrawn != nil {
		t.Errorf("the Cancel itself: withdrawn %+v, want none", got.Withdrawn)
	}

	// Played, then replaced by an Update that plays at once.
	p2 := e.postCap(capXML("p2", "Actual", "12346"), http.StatusCreated)
	e.clock.Advance(time.Minute)
	u2 := e.postCap(msg(capXML("u2", "Actual", "12346", ref("p2")), "Update"), http.StatusCreated)
	withdrawnBy("played, then updated", listed(p2.Alert.ID), "play", u2, t0.Add(11*time.Minute))
	says("played, then updated", listed(p2.Alert.ID), "replaced by a later Update nchmf.gov.vn,u2 at 2026-03-02T05:11:00+07:00: it no longer sounds")
	if got := listed(u2.Alert.ID); got.Action != "play" || got.Withdrawn != nil {
		t.Errorf("the Update: %s, withdrawn %+v; want play, not withdrawn", got.Action, got.Withdrawn)
	}

	// Waited, approved: by whom, and no route to approve it any more;
	// then replaced by an Update that waited and was approved in turn.
	auto()
	p3 := e.postCap(capXML("p3", "Actual", "12346"), http.StatusCreated)
	e.call("POST", "/api/v1/cap/"+p3.Alert.ID+"/approve", e.admin, nil, http.StatusOK, nil)
	got := listed(p3.Alert.ID)
	if got.Action != "approved" || got.ApprovedBy != "admin" || strings.Contains(got.Reason, "to approve it") ||
		!strings.Contains(got.Reason, `event "Bão" is not on the auto-start list`) || got.Withdrawn != nil {
		t.Errorf("approved: %s by %q, reason %q, withdrawn %+v; want approved by admin, why it waited, no approval route, not withdrawn",
			got.Action, got.ApprovedBy, got.Reason, got.Withdrawn)
	}
	says("approved", got, "approved by admin at 2026-03-02T05:11:00+07:00")
	u3 := e.postCap(msg(capXML("u3", "Actual", "12346", ref("p3")), "Update"), http.StatusCreated)
	if got := listed(p3.Alert.ID); got.Withdrawn != nil {
		t.Errorf("while its Update waits: withdrawn %+v, want none (it sounds on)", got.Withdrawn)
	}
	e.clock.Advance(time.Minute)
	e.call("POST", "/api/v1/cap/"+u3.Alert.ID+"/approve", e.admin, nil, http.StatusOK, nil)
	withdrawnBy("approved, then its approved Update", listed(p3.Alert.ID), "approved", u3, t0.Add(12*time.Minute))
	says("approved, then its approved Update", listed(p3.Alert.ID),
		"approved by admin at 2026-03-02T05:11:00+07:00; replaced by a later Update nchmf.gov.vn,u3 at 2026-03-02T05:12:00+07:00: it no longer sounds")

	// Waiting, then withdrawn by a Cancel: by which.
	p4 := e.postCap(capXML("p4", "Actual", "12346"), http.StatusCreated)
	c4 := e.postCap(msg(capXML("c4", "Actual", "12346", ref("p4")), "Cancel"), http.StatusCreated)
	withdrawnBy("waiting, then cancelled", listed(p4.Alert.ID), "cancelled", c4, t0.Add(12*time.Minute))

	// Its Cancel came first.
	c5 := e.postCap(msg(capXML("c5", "Actual", "12346", ref("p5")), "Cancel"), http.StatusCreated)
	e.clock.Advance(time.Minute)
	p5 := e.postCap(capXML("p5", "Actual", "12346"), http.StatusCreated)
	withdrawnBy("cancelled before it came", listed(p5.Alert.ID), "cancelled", c5, t0.Add(13*time.Minute))

	// One that never sounded (no area here), then cancelled: by which and
	// when, not "it no longer sounds".
	nt := e.postCap(capXML("nt", "Actual", "99999"), http.StatusCreated)
	cnt := e.postCap(msg(capXML("cnt", "Actual", "12346", ref("nt")), "Cancel"), http.StatusCreated)
	got = listed(nt.Alert.ID)
	withdrawnBy("no target, then cancelled", got, "no-target", cnt, t0.Add(13*time.Minute))
	says("no target, then cancelled", got, "withdrawn by a later Cancel nchmf.gov.vn,cnt at 2026-03-02T05:13:00+07:00")
	if strings.Contains(got.Reason, "no longer sounds") {
		t.Errorf("no target, then cancelled: reason %q says it no longer sounds; it never sounded", got.Reason)
	}

	// One an older controller approved keeps the route in its stored
	// reason: the API does not show it.
	old := &loaxa.CapAlert{Key: "nchmf.gov.vn,old", Status: "Actual", MsgType: "Alert", Action: "approved", Targets: []string{"12346"}}
	if err := e.caps.CreateCapAlert(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := e.caps.UpdateCapAlert(t.Context(), old.ID, func(a *loaxa.CapAlert) error {
		a.Reason = `event "Bão" is not on the auto-start list; to approve it: POST /api/v1/cap/` + a.ID + "/approve"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := listed(old.ID); got.Reason != `event "Bão" is not on the auto-start list` {
		t.Errorf("approved by an older controller: reason %q, want why it waited only", got.Reason)
	}
	if dup := e.postCap(capXML("old", "Actual", "12346"), http.StatusOK); dup.Alert.Reason != `event "Bão" is not on the auto-start list` {
		t.Errorf("posted again, the answer's record: reason %q, want why it waited only", dup.Alert.Reason)
	}

	// One an older controller approved and saw withdrawn, whose reason
	// says neither: the API says both, from what the record holds.
	older := &loaxa.CapAlert{Key: "nchmf.gov.vn,older", Status: "Actual", MsgType: "Alert", Action: "approved", Targets: []string{"12346"}, Emergency: "e-older",
		Reason: `event "Bão" is not on the auto-start list`, ApprovedBy: "can-bo-huyen", ApprovedAt: t0.Add(-2 * time.Hour).UTC(),
		Withdrawn: &loaxa.CapWithdrawal{By: c1.Alert.ID, Key: c1.Alert.Key, MsgType: "Cancel", At: t0.Add(-time.Hour).UTC()}}
	if err := e.caps.CreateCapAlert(t.Context(), older); err != nil {
		t.Fatal(err)
	}
	want := `event "Bão" is not on the auto-start list; approved by can-bo-huyen at 2026-03-02T03:00:00+07:00; ` +
		"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T04:00:00+07:00: it no longer sounds"
	if got := listed(older.ID); got.Reason != want {
		t.Errorf("approved and withdrawn under an older controller: reason %q, want %q", got.Reason, want)
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func reflectEqualWithdrawal(a, b *loaxa.CapWithdrawal) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.By == b.By && a.Key == b.Key && a.MsgType == b.MsgType && a.At.Equal(b.At)
}

// TestCapAutoStartAuditIsKeyValue: a change of the auto-start list was
// audited as the event types joined with commas ("Bão,Lũ quét"), the one
// detail not in the key=value form of docs/api.md: the console could not
// label it, and an event type holding a comma read as two. It is now one
// JSON list under events=, as written, and events=[] when emptied.
func TestCapAutoStartAuditIsKeyValue(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {"Bão", "Lũ, sạt lở & ngập"}}, http.StatusOK, nil)
	e.call("PUT", "/api/v1/cap/auto-start", e.admin, map[string][]string{"events": {}}, http.StatusOK, nil)
	entries, err := e.stores.audit.FindAudit(t.Context(), loaxa.AuditFilter{Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, a := range entries {
		if a.Action == "cap.auto_start" {
			details = append(details, a.Detail)
		}
	}
	want := []string{`events=["Bão","Lũ, sạt lở & ngập"]`, `events=[]`}
	if !slices.Equal(details, want) {
		t.Errorf("cap.auto_start audited %q, want %q", details, want)
	}
}

// TestCapNoteSaysItsInstantOnceWhenTheZoneChanges: a CAP alert approved
// and then withdrawn had its reason say so, each instant in its commune's
// time zone ("approved by admin at 2026-03-02T05:10:00+07:00"). Once the
// commune's zone changed (mended in the store by the controller's
// administrator, or a restored backup), GET /api/v1/cap and
// GET /api/v1/cap/{id} said each note a second time beside the first, in
// the new zone, as if approved and withdrawn twice: the list looked for
// the note as it would say it now. A note states an instant: it is found
// by its words and that instant, in whatever zone it was said, and kept
// as said. A record whose reason lacks it (an older controller's) is
// given it in the zone the area has now, once.
func TestCapNoteSaysItsInstantOnceWhenTheZoneChanges(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	e.clock.Advance(10 * time.Minute)
	p := e.postCap(capXML("p1", "Actual", "12346"), http.StatusCreated)
	e.call("POST", "/api/v1/cap/"+p.Alert.ID+"/approve", e.admin, nil, http.StatusOK, nil)
	e.clock.Advance(time.Minute)
	e.postCap(strings.Replace(capXML("c1", "Actual", "12346", "<references>nchmf.gov.vn,p1,2026-03-02T04:50:00+07:00</references>"),
		"<msgType>Alert", "<msgType>Cancel", 1), http.StatusCreated)
	approved := "approved by admin at 2026-03-02T05:10:00+07:00"
	withdrawn := "withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T05:11:00+07:00: it no longer sounds"
	older := &loaxa.CapAlert{Key: "nchmf.gov.vn,older", Status: "Actual", MsgType: "Alert", Action: "approved", Targets: []string{"12346"},
		Reason: `event "Bão" is not on the auto-start list`, ApprovedBy: "can-bo-huyen", ApprovedAt: t0.Add(-2 * time.Hour).UTC()}
	if err := e.caps.CreateCapAlert(t.Context(), older); err != nil {
		t.Fatal(err)
	}
	reasons := func() map[string][]string {
		t.Helper()
		var list struct{ Alerts []loaxa.CapAlert }
		e.call("GET", "/api/v1/cap", e.admin, nil, http.StatusOK, &list)
		got := map[string][]string{}
		for _, a := range list.Alerts {
			var one loaxa.CapAlert
			e.call("GET", "/api/v1/cap/"+a.ID, e.admin, nil, http.StatusOK, &one)
			got[a.ID] = []string{a.Reason, one.Reason}
		}
		return got
	}
	check := func(when string, id string, want ...string) {
		t.Helper()
		for _, r := range reasons()[id] {
			for _, w := range want {
				if strings.Count(r, w) != 1 {
					t.Errorf("%s: reason %q; want %q in it once", when, r, w)
				}
			}
			if n := strings.Count(r, "approved by"); n != 1 {
				t.Errorf("%s: reason %q says approved %d times", when, r, n)
			}
		}
	}
	check("in Vietnam's zone", p.Alert.ID, approved, withdrawn)
	check("in Vietnam's zone", older.ID, "approved by can-bo-huyen at 2026-03-02T03:00:00+07:00")

	e.storeAreaUnchecked(&loaxa.Area{ID: "12346", Name: "Xã Tiên Thắng", Parent: "318", TimeZone: "Asia/Tokyo", CreatedAt: t0})
	check("the commune's zone changed", p.Alert.ID, approved, withdrawn)
	if r := reasons()[p.Alert.ID][0]; strings.Contains(r, "+09:00") {
		t.Errorf("the commune's zone changed: reason %q says a note again in the new zone", r)
	}
	check("the commune's zone changed", older.ID, "approved by can-bo-huyen at 2026-03-02T05:00:00+09:00")
}

// countedChains counts the area chains read from the store.
type countedChains struct {
	loaxa.AreaService
	mu    sync.Mutex
	reads int
}

func (c *countedChains) AreaChain(ctx context.Context, id string) ([]string, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.AreaService.AreaChain(ctx, id)
}

func (c *countedChains) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// TestCapListReadsEachAreasZoneOnce: GET /api/v1/cap said each alert's
// approval and withdrawal in its area's time zone, reading the area's
// chain from the store for each note of each alert listed: 20,000 reads
// for a list of 10,000 (BenchmarkListCapNotes). A list now reads each
// area's zone once, however many alerts it holds.
func TestCapListReadsEachAreasZoneOnce(t *testing.T) {
	var areas *countedChains
	e := newEnv(t, func(s *lhttp.Server) {
		areas = &countedChains{AreaService: s.AreaService}
		s.AreaService = areas
	})
	e.tree()
	store := func(n int) {
		for i := range n {
			at := e.clock.Now().UTC()
			a := &loaxa.CapAlert{Key: fmt.Sprintf("nchmf.gov.vn,z%d-%d", n, i), Status: "Actual", MsgType: "Alert", Action: "approved",
				Targets: []string{[]string{"12346", "12347"}[i%2]}, Emergency: "e-z", Reason: `event "Bão" is not on the auto-start list`,
				ApprovedBy: "can-bo-huyen", ApprovedAt: at, Withdrawn: &loaxa.CapWithdrawal{By: "c1", Key: "nchmf.gov.vn,c1", MsgType: "Cancel", At: at}}
			if err := e.caps.CreateCapAlert(t.Context(), a); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := func() (reads int) {
		t.Helper()
		before := areas.count()
		var l struct{ Alerts []loaxa.CapAlert }
		e.call("GET", "/api/v1/cap?limit=10000", e.admin, nil, http.StatusOK, &l)
		for _, a := range l.Alerts {
			if !strings.Contains(a.Reason, "approved by can-bo-huyen at 2026-03-02T05:00:00+07:00; withdrawn by a later Cancel") {
				t.Fatalf("%s listed with reason %q", a.ID, a.Reason)
			}
		}
		return areas.count() - before
	}
	store(2)
	few := list()
	store(200)
	if many := list(); many != few {
		t.Errorf("listing 202 alerts read %d area chains, 2 alerts %d: want as many (each area's zone once)", many, few)
	}
}

// BenchmarkListCapNotes: the CAP screen's read of the most GET /api/v1/cap
// gives, 10,000 alerts, each approved and later withdrawn, by the
// administrator. "noted": their reasons say so, as this controller stores
// them; "older": they do not, as an older controller stored them, and the
// list adds the notes, each instant in its area's time zone.
func BenchmarkListCapNotes(b *testing.B) {
	for _, noted := range []bool{true, false} {
		name := "older"
		if noted {
			name = "noted"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			e.tree()
			ctx := context.Background()
			for i := range 10000 {
				area := []string{"12346", "12347"}[i%2]
				a := &loaxa.CapAlert{Key: fmt.Sprintf("nchmf.gov.vn,b%05d", i), Status: "Actual", MsgType: "Alert", Action: "approved",
					Targets: []string{area}, Emergency: fmt.Sprintf("e%06d", i), Reason: `event "Bão" is not on the auto-start list`,
					ApprovedBy: "can-bo-huyen", ApprovedAt: t0.Add(time.Duration(i) * time.Minute).UTC(),
					Withdrawn: &loaxa.CapWithdrawal{By: "c1", Key: "nchmf.gov.vn,c1", MsgType: "Cancel", At: t0.Add(time.Duration(i+5) * time.Minute).UTC()}}
				if noted {
					vn := time.FixedZone("ICT", 7*3600)
					a.Reason += fmt.Sprintf("; approved by can-bo-huyen at %s; withdrawn by a later Cancel nchmf.gov.vn,c1 at %s: it no longer sounds",
						a.ApprovedAt.In(vn).Format(time.RFC3339), a.Withdrawn.At.In(vn).Format(time.RFC3339))
				}
				if err := e.caps.CreateCapAlert(ctx, a); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				var l struct{ Alerts []loaxa.CapAlert }
				e.call("GET", "/api/v1/cap?limit=10000", e.admin, nil, http.StatusOK, &l)
				if len(l.Alerts) != 10000 || !strings.HasSuffix(l.Alerts[0].Reason, "+07:00: it no longer sounds") || strings.Count(l.Alerts[0].Reason, "approved by") != 1 {
					b.Fatalf("%d alerts, the first's reason %q", len(l.Alerts), l.Alerts[0].Reason)
				}
			}
		})
	}
}
