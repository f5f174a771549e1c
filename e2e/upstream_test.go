package e2e

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// The province's information-source system sends bulletins in with its
// key: normal ones become proposals for the stations below, priority ones
// open the next session, emergency ones sound at once; a bulletin
// for a commune without a station plays as sent, and the export then
// shows it played with the clusters' status.
func TestUpstreamInboundAndExport(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("318", "Huyện Tiên Lãng", "31")
	c.CreateArea("12346", "Xã Tiên Thắng", "318") // a station: it has sessions
	c.CreateArea("12347", "Xã Tiên Minh", "318")  // no station
	c.CreateNode("tt-01", "12346")
	rig.StartNode(t, c.CreateNode("tm-01", "12347"), rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "tm-01 online", func() bool { return c.Node("tm-01").Status.State == loaxa.NodeOnline })

	// The evening session of the station, starting in two hours (local).
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	session := time.Now().In(loc).Add(2 * time.Hour).Truncate(time.Minute)
	c.MustDo("POST", "/api/v1/sessions", map[string]any{"area": "12346", "name": "Buổi chiều", "start": session.Format("15:04"), "max_minutes": 30}, nil)

	var sys struct {
		ID, Area, Key string
	}
	c.MustDo("POST", "/api/v1/upstream/systems", map[string]string{"id": "tinh-hp", "name": "Hệ thống thông tin nguồn tỉnh Hải Phòng", "area": "31"}, &sys)
	if !strings.HasPrefix(sys.Key, "tinh-hp.") {
		t.Fatalf("system key %q", sys.Key)
	}
	audio := base64.StdEncoding.EncodeToString(rig.ToneWAV(440, 1200*time.Millisecond, 16000, 1))
	send := func(key string, body map[string]any) (int, string, map[string]any) {
		t.Helper()
		var out map[string]any
		saved := c.Token
		c.Token = ""
		defer func() { c.Token = saved }()
		req, _ := http.NewRequest("POST", c.URL+"/api/v1/inbound/bulletins", strings.NewReader(rig.Describe(body)))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		status, raw := c.Send(req, &out)
		return status, string(raw), out
	}
	bulletin := func(id string, p protocol.Priority, area string) map[string]any {
		return map[string]any{"id": id, "title": "Bản tin tỉnh " + id, "priority": p, "areas": []string{area}, "audio": audio}
	}

	if status, raw, _ := send("tinh-hp.wrong", bulletin("b1", protocol.PriorityNormal, "318")); status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %s", status, raw)
	}

	// Normal → a proposal for the station (not for the commune without one).
	status, raw, out := send(sys.Key, bulletin("b1", protocol.PriorityNormal, "318"))
	if status != http.StatusCreated || out["handling"] != "proposal" {
		t.Fatalf("normal: %d %s", status, raw)
	}
	normal := out["announcement"].(string)
	var props struct{ Proposals []*loaxa.Proposal }
	c.MustDo("GET", "/api/v1/proposals?area=12346", nil, &props)
	if len(props.Proposals) != 1 || props.Proposals[0].Announcement != normal || props.Proposals[0].State != loaxa.ProposalPending {
		t.Fatalf("proposals of the station: %s", rig.Describe(props.Proposals))
	}
	// Sent again: the same announcement, nothing new.
	if status, raw, out := send(sys.Key, bulletin("b1", protocol.PriorityNormal, "318")); status != http.StatusOK || out["announcement"] != normal || out["duplicate"] != true {
		t.Fatalf("resend: %d %s", status, raw)
	}

	// A recording larger than an ordinary JSON request (1 MiB) is taken.
	long := bulletin("b1-long", protocol.PriorityNormal, "12346") // a proposal only: nothing plays it now
	long["audio"] = base64.StdEncoding.EncodeToString(rig.ToneWAV(440, 40*time.Second, 16000, 1))
	if status, raw, _ := send(sys.Key, long); status != http.StatusCreated {
		t.Fatalf("a 1.3 MB recording: %d %s", status, raw)
	}

	// Priority → the head of the station's next session.
	status, raw, out = send(sys.Key, bulletin("b2", protocol.PriorityHigh, "12346"))
	if status != http.StatusCreated || out["handling"] != "next-session" {
		t.Fatalf("priority: %d %s", status, raw)
	}
	high := out["announcement"].(string)
	var prog struct{ Items []loaxa.ProgrammeItem }
	c.MustDo("GET", "/api/v1/nodes/tt-01/programme", nil, &prog)
	found := false
	for _, it := range prog.Items {
		if it.Announcement == high {
			found = true
			if !it.Start.Equal(session) {
				t.Errorf("priority bulletin starts %v, want the next session's start %v", it.Start.In(loc), session)
			}
		}
	}
	if !found {
		t.Fatalf("priority bulletin not in tt-01's programme: %s", rig.Describe(prog.Items))
	}

	// Normal for a commune without a station: plays as sent, and the
	// export shows it.
	status, raw, out = send(sys.Key, bulletin("b3", protocol.PriorityNormal, "12347"))
	if status != http.StatusCreated || out["handling"] != "as-sent" {
		t.Fatalf("normal without a station: %d %s", status, raw)
	}
	played := out["announcement"].(string)
	rig.Eventually(t, 20*time.Second, "tm-01 played the province's bulletin", func() bool {
		ds := c.Deliveries(played)
		return len(ds) == 1 && ds[0].State == loaxa.DeliveryCompleted
	})
	// Emergency → at once, through the emergency path, over anything.
	status, raw, out = send(sys.Key, bulletin("b9", protocol.PriorityEmergency, "12347"))
	if status != http.StatusCreated || out["handling"] != "immediate" || out["emergency"] == nil {
		t.Fatalf("emergency: %d %s", status, raw)
	}
	em := out["emergency"].(string)
	rig.Eventually(t, 20*time.Second, "tm-01 sounded the province's emergency", func() bool {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em, nil, &rep)
		return len(rep.Nodes) == 1 && rep.Nodes[0].Node == "tm-01" && (rep.Nodes[0].State == string(loaxa.DeliveryStarted) || rep.Nodes[0].State == string(loaxa.DeliveryCompleted))
	})
	if status, raw, out := send(sys.Key, bulletin("b9", protocol.PriorityEmergency, "12347")); status != http.StatusOK || out["emergency"] != em {
		t.Fatalf("emergency resent: %d %s", status, raw)
	}

	var x struct {
		Format   string
		Communes []struct {
			Area     string
			Clusters []struct{ Node, Status string }
		}
		Bulletins []struct {
			Announcement string
			Completed    int
		}
	}
	c.MustDo("GET", "/api/v1/upstream/export?area=31", nil, &x)
	if x.Format != "loaxa.upstream/1" || len(x.Communes) != 2 {
		t.Fatalf("export: %s", rig.Describe(x))
	}
	ok := false
	for _, b := range x.Bulletins {
		ok = ok || (b.Announcement == played && b.Completed == 1)
	}
	if !ok {
		t.Errorf("export does not show the bulletin played once: %s", rig.Describe(x.Bulletins))
	}
	for _, cm := range x.Communes {
		if cm.Area == "12347" && (len(cm.Clusters) != 1 || cm.Clusters[0].Status != loaxa.NodeOnline) {
			t.Errorf("export's cluster of 12347: %s", rig.Describe(cm))
		}
	}
}
