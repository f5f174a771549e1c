package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// capAlert is a CAP 1.2 alert for an area, expiring in an hour.
func capAlert(id, status, msgType, area, refs string) string {
	now := time.Now()
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
 <identifier>%s</identifier><sender>nchmf.gov.vn</sender><sent>%s</sent>
 <status>%s</status><msgType>%s</msgType><scope>Public</scope>%s
 <info><language>en-US</language><category>Met</category><event>Storm</event><urgency>Immediate</urgency>
  <severity>Extreme</severity><certainty>Observed</certainty><headline>Storm</headline>
  <area><areaDesc>Tien Lang</areaDesc><geocode><valueName>loaxa</valueName><value>%s</value></geocode></area></info>
 <info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Immediate</urgency>
  <severity>Extreme</severity><certainty>Observed</certainty><expires>%s</expires>
  <headline>Bão đổ bộ</headline><instruction>Vào nhà</instruction>
  <area><areaDesc>Tiên Lãng</areaDesc><geocode><valueName>loaxa</valueName><value>%s</value></geocode></area></info>
</alert>`, id, now.Format(time.RFC3339), status, msgType, refs, area, now.Add(time.Hour).Format(time.RFC3339), area)
}

func postCap(t *testing.T, c *rig.Controller, doc string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/cap", strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/cap+xml")
	var out map[string]any
	status, raw := c.Send(req, &out)
	if out == nil {
		out = map[string]any{"body": string(raw)}
	}
	return status, out
}

func capEmergency(out map[string]any) string {
	if em, ok := out["emergency"].(map[string]any); ok {
		id, _ := em["id"].(string)
		return id
	}
	return ""
}

// TestCapAlerts: CAP samples through the real controller, broker and
// agents, each with exactly its effect: an Exercise plays as a drill on
// its area only; a Test plays nothing; an Actual plays, and an Update
// referencing it cancels it and plays the new text; a Cancel stops that;
// a malformed alert is refused naming the field.
func TestCapAlerts(t *testing.T) {
	c, nodes := emergencyFleet(t)
	c.MustDo("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {"Bão"}}, nil)

	status, out := postCap(t, c, capAlert("ex-1", "Exercise", "Alert", "12346", ""))
	drill := capEmergency(out)
	if status != http.StatusCreated || out["action"] != "drill" || drill == "" {
		t.Fatalf("exercise: %d %v", status, out)
	}
	rig.Eventually(t, 30*time.Second, "drill completed on A", func() bool { return report(c, drill).Summary.Completed == 2 })
	if rep := report(c, drill); !rep.Drill || rep.Summary.Targeted != 2 {
		t.Errorf("drill report: drill %v, %+v", rep.Drill, rep.Summary)
	}

	if status, out := postCap(t, c, capAlert("test-1", "Test", "Alert", "12346", "")); status != http.StatusCreated || out["action"] != "log" || capEmergency(out) != "" {
		t.Errorf("test alert: %d %v", status, out)
	}
	if status, out := postCap(t, c, strings.Replace(capAlert("bad-1", "Actual", "Alert", "12346", ""), "<scope>Public</scope>", "", 1)); status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out), "scope") {
		t.Errorf("malformed: %d %v", status, out)
	}

	status, out = postCap(t, c, capAlert("act-1", "Actual", "Alert", "12347", ""))
	first := capEmergency(out)
	if status != http.StatusCreated || out["action"] != "play" || first == "" {
		t.Fatalf("actual: %d %v", status, out)
	}
	rig.Eventually(t, 15*time.Second, "b1 plays the alert", func() bool { return report(c, first).Summary.Sounding == 1 })
	ref := "<references>nchmf.gov.vn,act-1," + time.Now().Format(time.RFC3339) + "</references>"
	status, out = postCap(t, c, capAlert("upd-1", "Actual", "Update", "12347", ref))
	second := capEmergency(out)
	if status != http.StatusCreated || out["action"] != "play" || second == "" || fmt.Sprint(out["cancelled"]) != "["+first+"]" {
		t.Fatalf("update: %d %v", status, out)
	}
	rig.Eventually(t, 15*time.Second, "the first alert cancelled on b1", func() bool { return report(c, first).Summary.Cancelled == 1 })
	rig.Eventually(t, 15*time.Second, "b1 plays the update", func() bool { return report(c, second).Summary.Sounding == 1 })
	ref = "<references>nchmf.gov.vn,upd-1," + time.Now().Format(time.RFC3339) + "</references>"
	if status, out := postCap(t, c, capAlert("can-1", "Actual", "Cancel", "12347", ref)); status != http.StatusCreated || out["action"] != "cancel" {
		t.Fatalf("cancel: %d %v", status, out)
	}
	rig.Eventually(t, 15*time.Second, "the update cancelled on b1", func() bool { return report(c, second).Summary.Cancelled == 1 })
	if p := playing(nodes["b1"]); p != "" {
		t.Errorf("b1 still plays %s", p)
	}
	for _, id := range []string{first, second} {
		if rep := report(c, id); rep.State != loaxa.EmergencyCancelled || rep.Summary.Targeted != 1 {
			t.Errorf("%s: state %s, %+v", id, rep.State, rep.Summary)
		}
	}
}
