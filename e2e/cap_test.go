package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/app"
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
// its area only; a Test plays nothing; an expired alert and one for an
// area this controller does not have are recorded and play nothing; an
// Actual plays, and an Update referencing it cancels it and plays the new
// text; a Cancel stops that; a malformed alert is refused naming the
// field.
func TestCapAlerts(t *testing.T) {
	t.Parallel()
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

	// Expired, and for an area this controller does not have: recorded as
	// such, nothing sent, nothing plays.
	emergencies := func() int {
		var list struct{ Emergencies []loaxa.Emergency }
		c.MustDo("GET", "/api/v1/emergency", nil, &list)
		return len(list.Emergencies)
	}
	before := emergencies()
	expired := regexp.MustCompile(`<expires>[^<]*</expires>`).ReplaceAllString(capAlert("exp-1", "Actual", "Alert", "12347", ""),
		"<expires>"+time.Now().Add(-time.Minute).Format(time.RFC3339)+"</expires>")
	for _, tc := range []struct{ doc, want string }{
		{expired, "expired"},
		{capAlert("far-1", "Actual", "Alert", "99999", ""), "no-target"},
	} {
		if status, out := postCap(t, c, tc.doc); status != http.StatusCreated || out["action"] != tc.want || capEmergency(out) != "" {
			t.Errorf("%s alert: %d %v", tc.want, status, out)
		}
	}
	if n := emergencies(); n != before {
		t.Errorf("%d emergencies after the expired and the wrong-area alerts, want %d", n, before)
	}
	for id, n := range nodes {
		if p := playing(n); p != "" {
			t.Errorf("%s plays %s after the expired and the wrong-area alerts", id, p)
		}
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
	// The list says what became of each: replaced by the Update, which
	// the Cancel withdrew.
	var list struct{ Alerts []loaxa.CapAlert }
	c.MustDo("GET", "/api/v1/cap", nil, &list)
	byKey := map[string]loaxa.CapAlert{}
	for _, a := range list.Alerts {
		byKey[a.Key] = a
	}
	for key, want := range map[string]string{"nchmf.gov.vn,act-1": "Update nchmf.gov.vn,upd-1", "nchmf.gov.vn,upd-1": "Cancel nchmf.gov.vn,can-1"} {
		a := byKey[key]
		if w := a.Withdrawn; a.Action != "play" || w == nil || w.MsgType+" "+w.Key != want || w.By != byKey[w.Key].ID {
			t.Errorf("%s listed as %s, withdrawn %+v; want play, withdrawn by %s", key, a.Action, a.Withdrawn, want)
		}
	}
}

// TestCapFeedPolled: an alert a configured feed serves is polled and
// played (as a drill, for an Exercise) once, however often it is polled.
func TestCapFeedPolled(t *testing.T) {
	t.Parallel()
	doc := capAlert("feed-1", "Exercise", "Alert", "12346", "")
	var ready atomic.Bool // the feed has nothing until the area and the auto-start list are set up
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/cap+xml")
		w.Write([]byte(doc))
	}))
	defer feed.Close()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) {
		cfg.CapFeeds, cfg.CapPoll = []string{feed.URL + "/cap.xml"}, 200*time.Millisecond
	}})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	rig.StartNode(t, c.CreateNode("f1", "12346"), rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "f1 online", func() bool { return c.Node("f1").Status.State == loaxa.NodeOnline })
	c.MustDo("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {"Bão"}}, nil)
	ready.Store(true)

	var list struct{ Emergencies []loaxa.Emergency }
	rig.Eventually(t, 20*time.Second, "the polled drill played on f1", func() bool {
		c.MustDo("GET", "/api/v1/emergency", nil, &list)
		return len(list.Emergencies) == 1 && report(c, list.Emergencies[0].ID).Summary.Completed == 1
	})
	if em := list.Emergencies[0]; !em.Drill || em.CreatedBy != "cap-feed" {
		t.Errorf("emergency from the feed: drill %v, by %q", em.Drill, em.CreatedBy)
	}
	var alerts struct{ Alerts []loaxa.CapAlert }
	c.MustDo("GET", "/api/v1/cap", nil, &alerts)
	if len(alerts.Alerts) != 1 || alerts.Alerts[0].Action != "drill" || alerts.Alerts[0].ReceivedBy != "cap-feed" {
		t.Errorf("CAP alerts after many polls: %+v", alerts.Alerts)
	}
	// The feed's polls are on /metrics: failed while it answered 404, then
	// ok, with the time of the last good one.
	resp, err := http.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`loaxa_cap_feed_polls_total{feed="` + feed.URL + `/cap.xml",result="error"}`,
		`loaxa_cap_feed_polls_total{feed="` + feed.URL + `/cap.xml",result="ok"}`,
		`loaxa_cap_feed_last_success_seconds{feed="` + feed.URL + `/cap.xml"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestCapCircleAroundASimulatedCommune: on a walk-through, a CAP circle
// drawn around one commune's simulated clusters (firmware-sim fleet)
// alerted both communes: every fleet stood on one grid whatever its area.
// Each area's boxes now stand at a place of their own, and a circle around
// one commune's boxes maps to that commune only, through the real
// controller and fleets; played (its event on the auto-start list), it
// reaches that commune's clusters and no other's, and a polygon around the
// other commune's boxes reaches theirs only.
func TestCapCircleAroundASimulatedCommune(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	tienLang(c)
	startFleet(t, c, "thang", "12346", 3)
	startFleet(t, c, "minh", "12347", 3)
	c.MustDo("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {"Lốc xoáy"}}, nil)

	boxes := func(area string) []loaxa.Node {
		t.Helper()
		var in struct{ Nodes []loaxa.Node }
		c.MustDo("GET", "/api/v1/nodes?area="+area, nil, &in)
		if len(in.Nodes) != 3 {
			t.Fatalf("%d nodes in %s, want the fleet's 3", len(in.Nodes), area)
		}
		return in.Nodes
	}
	capDoc := func(id, shape string) string {
		now := time.Now()
		return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
 <identifier>%s</identifier><sender>nchmf.gov.vn</sender><sent>%s</sent>
 <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
 <info><language>vi-VN</language><category>Met</category><event>Lốc xoáy</event><urgency>Immediate</urgency>
  <severity>Extreme</severity><certainty>Observed</certainty><expires>%s</expires>
  <headline>Lốc xoáy</headline><instruction>Vào nhà</instruction>
  <area><areaDesc>Quanh các cụm loa</areaDesc>%s</area></info>
</alert>`, id, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), shape)
	}
	// reaches posts doc, and checks that it maps to area only, and that
	// its emergency reaches area's three clusters and is sent to no other.
	reaches := func(what, doc, area string) string {
		t.Helper()
		status, out := postCap(t, c, doc)
		alert, _ := out["alert"].(map[string]any)
		id := capEmergency(out)
		if status != http.StatusCreated || alert == nil || out["action"] != "play" || id == "" {
			t.Fatalf("%s: %d %v", what, status, out)
		}
		if got := fmt.Sprint(alert["targets"]); got != "["+area+"]" {
			t.Errorf("%s targets %s, want [%s] only", what, got, area)
		}
		rig.Eventually(t, 30*time.Second, what+" reaches every cluster it went to", func() bool {
			sum := report(c, id).Summary
			return sum.Targeted > 0 && sum.Reached == sum.Targeted
		})
		rep := report(c, id)
		var nodes []string
		for _, n := range rep.Nodes {
			nodes = append(nodes, n.Area+"/"+n.Node)
			if n.Area != area {
				t.Errorf("%s was sent to %s of %s, outside it", what, n.Node, n.Area)
			}
		}
		if rep.Summary.Targeted != 3 || len(rep.Nodes) != 3 {
			t.Errorf("%s: %d clusters targeted (%v), want %s's 3", what, rep.Summary.Targeted, nodes, area)
		}
		return id
	}

	// 1 km around the middle of 12346's boxes (220 m apart) holds them.
	var lat, lon float64
	for _, n := range boxes("12346") {
		lat, lon = lat+n.Lat/3, lon+n.Lon/3
	}
	circle := reaches("a circle around 12346's clusters", capDoc("circle-1", fmt.Sprintf("<circle>%.6f,%.6f 1</circle>", lat, lon)), "12346")

	// A polygon 300 m around 12347's boxes.
	south, west, north, east := 90.0, 180.0, -90.0, -180.0
	for _, n := range boxes("12347") {
		south, west, north, east = min(south, n.Lat), min(west, n.Lon), max(north, n.Lat), max(east, n.Lon)
	}
	const m300 = 0.003
	south, west, north, east = south-m300, west-m300, north+m300, east+m300
	polygon := reaches("a polygon around 12347's clusters", capDoc("polygon-1", fmt.Sprintf("<polygon>%[1]f,%[2]f %[1]f,%[4]f %[3]f,%[4]f %[3]f,%[2]f %[1]f,%[2]f</polygon>",
		south, west, north, east)), "12347")

	// Each commune's clusters told of their own alert only: 12347's had
	// the circle's before the polygon's, had it been sent to them.
	for area, alerts := range map[string][2]string{"12346": {circle, polygon}, "12347": {polygon, circle}} {
		own, other := alerts[0], alerts[1]
		var evs struct{ Events []map[string]any }
		c.MustDo("GET", "/api/v1/events?area="+area, nil, &evs)
		ownSeen := 0
		var strays []string
		for _, ev := range evs.Events {
			if strings.Contains(fmt.Sprint(ev), other) {
				strays = append(strays, fmt.Sprintf("%v %v", ev["node"], ev["type"]))
			}
			if strings.Contains(fmt.Sprint(ev), own) {
				ownSeen++
			}
		}
		if len(strays) > 0 {
			t.Errorf("%s's clusters reported the other commune's alert %s: %v", area, other, strays)
		}
		if ownSeen < 3 {
			t.Errorf("%s's clusters reported %d events of their own alert %s, want one from each at least (%d events)", area, ownSeen, own, len(evs.Events))
		}
	}
}
