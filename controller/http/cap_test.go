package http_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
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
