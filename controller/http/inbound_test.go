package http_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// TestInboundEmergencyResentAfter503IsADuplicate: with the broker away, an
// inbound emergency bulletin is stored and sent once the broker is back,
// and answered 503; the province system sends it again, as any client does
// after a 503. docs/upstream.md: a resend is a duplicate and the emergency
// is not sent twice. It was: the id was recorded only after a send without
// error, so the resend made a second alert to cancel.
func TestInboundEmergencyResentAfter503IsADuplicate(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.srv.UpstreamSystems = bolt.NewUpstreamService(e.db)
	var sys struct {
		Key string `json:"key"`
	}
	e.call("POST", "/api/v1/upstream/systems", e.admin, map[string]any{"id": "ttn-hai-phong", "name": "Hệ thống thông tin nguồn", "area": "31"},
		http.StatusCreated, &sys)
	body := map[string]any{
		"id": "TB-2026-0001", "title": "Bão số 9 đổ bộ", "priority": "emergency", "areas": []string{"12346"},
		"audio": base64.StdEncoding.EncodeToString(wav(16000, 1, 16000)),
	}
	send := func() response {
		return e.request("POST", "/api/v1/inbound/bulletins", sys.Key, "application/json", jsonBody(t, body))
	}

	e.alerts.setAway(errors.New("not connected to the broker at tcp://mqtt.haiphong.example:1883"))
	first := send()
	t.Logf("first send with the broker away: %d %s", first.status, first.body)
	e.alerts.setAway(nil)
	second := send()
	t.Logf("second send of the same id: %d %s", second.status, second.body)

	var ems struct {
		Emergencies []loaxa.Emergency `json:"emergencies"`
	}
	e.call("GET", "/api/v1/emergency", e.admin, nil, http.StatusOK, &ems)
	if len(ems.Emergencies) != 1 {
		ids := []string{}
		for _, em := range ems.Emergencies {
			ids = append(ids, em.ID+" ("+em.State+")")
		}
		t.Errorf("one bulletin id sent twice made %d emergencies %v, want 1 (the resend a duplicate)", len(ems.Emergencies), ids)
	}
	if second.status != http.StatusOK {
		t.Errorf("resend answered %d, want 200 with \"duplicate\": true", second.status)
	}
}

// TestInboundSameIDAtOnceIsSentOnce: the province system's client times
// out and sends again while its first request is still handled (the audio
// is converted), so one bulletin id arrives twice at once. Both passed the
// duplicate check, made before the ingest and the send, and two
// emergencies went out for one warning; the second now waits for the
// first and is its duplicate.
func TestInboundSameIDAtOnceIsSentOnce(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.srv.UpstreamSystems = bolt.NewUpstreamService(e.db)
	var sys struct {
		Key string `json:"key"`
	}
	e.call("POST", "/api/v1/upstream/systems", e.admin, map[string]any{"id": "ttn-hai-phong", "name": "Hệ thống thông tin nguồn", "area": "31"},
		http.StatusCreated, &sys)
	body, err := json.Marshal(map[string]any{
		"id": "TB-2026-0002", "title": "Bão số 9 đổ bộ", "priority": "emergency", "areas": []string{"12346"},
		"audio": base64.StdEncoding.EncodeToString(wav(16000, 1, 16000*20)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/inbound/bulletins", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+sys.Key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	var ems struct {
		Emergencies []loaxa.Emergency `json:"emergencies"`
	}
	e.call("GET", "/api/v1/emergency", e.admin, nil, http.StatusOK, &ems)
	if len(ems.Emergencies) != 1 {
		t.Errorf("bulletin TB-2026-0002 sent twice at once (answers %v) made %d emergencies, want 1", statuses, len(ems.Emergencies))
	}
}

// TestInboundDuplicateSaysWhatTheFirstBecame: a resend of a bulletin id
// is answered with what the first one became: its priority and handling
// (the answer had "handling": "" and the resend's own priority), and a
// priority bulletin for a commune without a station plays as sent and
// says so (it said "next-session", a session that does not exist). A
// bulletin sent under an id already taken with another priority (a
// warning escalated to an emergency under the id of the normal bulletin
// it began as) is refused, and nothing is sent: it was answered 200
// "duplicate" naming the normal bulletin as the emergency, and nothing
// sounded.
func TestInboundDuplicateSaysWhatTheFirstBecame(t *testing.T) {
	e := newEnv(t)
	e.tree()
	e.srv.UpstreamSystems = bolt.NewUpstreamService(e.db)
	var sys struct {
		Key string `json:"key"`
	}
	e.call("POST", "/api/v1/upstream/systems", e.admin, map[string]any{"id": "ttn-hai-phong", "name": "Hệ thống thông tin nguồn", "area": "31"},
		http.StatusCreated, &sys)
	audio := base64.StdEncoding.EncodeToString(wav(16000, 1, 16000))
	send := func(id, priority string) (response, map[string]any) {
		t.Helper()
		r := e.request("POST", "/api/v1/inbound/bulletins", sys.Key, "application/json", jsonBody(t, map[string]any{
			"id": id, "title": "Thông báo phòng chống bão số 9", "priority": priority, "areas": []string{"12346"}, "audio": audio}))
		var got map[string]any
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("answer %d %s: %v", r.status, r.body, err)
		}
		return r, got
	}
	for _, priority := range []string{"normal", "priority"} {
		id := "TB-" + priority
		first, firstGot := send(id, priority)
		if first.status != http.StatusCreated || firstGot["handling"] != "as-sent" {
			t.Errorf("%s bulletin for a commune without a station: %d %s; want 201 and handling as-sent", priority, first.status, first.body)
		}
		again, got := send(id, priority)
		if again.status != http.StatusOK || got["duplicate"] != true || got["announcement"] != firstGot["announcement"] ||
			got["priority"] != priority || got["handling"] != "as-sent" {
			t.Errorf("%s resent: %d %s; want 200, duplicate, the first's announcement %v, priority and handling as-sent", priority, again.status, again.body, firstGot["announcement"])
		}
	}

	escalated, _ := send("TB-normal", "emergency")
	if escalated.status != http.StatusConflict || !bytes.Contains(escalated.body, []byte("already taken as a normal bulletin")) ||
		!bytes.Contains(escalated.body, []byte("new id")) {
		t.Errorf("an emergency under a normal bulletin's id: %d %s; want 409 saying the id is taken and to use a new one", escalated.status, escalated.body)
	}
	var ems struct {
		Emergencies []loaxa.Emergency `json:"emergencies"`
	}
	e.call("GET", "/api/v1/emergency", e.admin, nil, http.StatusOK, &ems)
	if len(ems.Emergencies) != 0 {
		t.Errorf("a refused escalation sent %d emergencies", len(ems.Emergencies))
	}
	alert, alertGot := send("TB-alert", "emergency")
	if alert.status != http.StatusCreated {
		t.Fatalf("emergency bulletin: %d %s", alert.status, alert.body)
	}
	if again, got := send("TB-alert", "emergency"); again.status != http.StatusOK || got["emergency"] != alertGot["emergency"] || got["handling"] != "immediate" {
		t.Errorf("emergency resent: %d %s; want 200 naming emergency %v, handling immediate", again.status, again.body, alertGot["emergency"])
	}
	if down, _ := send("TB-alert", "normal"); down.status != http.StatusConflict {
		t.Errorf("a normal bulletin under an emergency's id: %d %s; want 409", down.status, down.body)
	}
}
