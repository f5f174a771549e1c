package http_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestAnnouncementLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "Bản tin sáng", http.StatusCreated)
	before := e.sched.changed.Load()

	start := e.clock.Now().Add(30 * time.Minute).Truncate(time.Second)
	var a loaxa.Announcement
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"content_id": c.ID,
		"targets":    map[string]any{"areas": []string{"12346", "12346"}, "nodes": []string{"n-b"}},
		"start":      start.Format(time.RFC3339),
	}, http.StatusCreated, &a)
	if a.ID == "" || a.Title != "Bản tin sáng" || a.Priority != protocol.PriorityNormal || a.Repeat != 1 ||
		a.State != loaxa.AnnouncementActive || a.CreatedBy != "admin" || !a.Start.Equal(start) {
		t.Errorf("created %+v", a)
	}
	if !slices.Equal(a.Targets.Areas, []string{"12346"}) || !slices.Equal(a.Targets.Nodes, []string{"n-b"}) {
		t.Errorf("targets %+v, want repeats dropped", a.Targets)
	}
	if got := e.sched.changed.Load() - before; got != 1 {
		t.Errorf("scheduler told %d times after creating, want 1", got)
	}

	var got loaxa.Announcement
	e.call("GET", "/api/v1/announcements/"+a.ID, e.admin, nil, http.StatusOK, &got)
	if got.ID != a.ID || got.ContentID != c.ID {
		t.Errorf("GET %+v", got)
	}

	// A start a moment ago (the request took its time) is still accepted.
	var late loaxa.Announcement
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"title": "Khẩn", "content_id": c.ID, "targets": map[string]any{"areas": []string{"31"}},
		"priority": "emergency", "repeat": 3, "start": e.clock.Now().Add(-3 * time.Second).Format(time.RFC3339),
	}, http.StatusCreated, &late)
	if late.Priority != protocol.PriorityEmergency || late.Repeat != 3 || late.Title != "Khẩn" {
		t.Errorf("created %+v", late)
	}

	before = e.sched.changed.Load()
	var cancelled loaxa.Announcement
	e.call("POST", "/api/v1/announcements/"+a.ID+"/cancel", e.admin, nil, http.StatusOK, &cancelled)
	if cancelled.State != loaxa.AnnouncementCancelled {
		t.Errorf("after cancel: %+v", cancelled)
	}
	if got := e.sched.changed.Load() - before; got != 1 {
		t.Errorf("scheduler told %d times after cancelling, want 1", got)
	}
	e.call("POST", "/api/v1/announcements/"+a.ID+"/cancel", e.admin, nil, http.StatusOK, &cancelled)

	var list struct{ Announcements []loaxa.Announcement }
	e.call("GET", "/api/v1/announcements?state=active", e.admin, nil, http.StatusOK, &list)
	if len(list.Announcements) != 1 || list.Announcements[0].ID != late.ID {
		t.Errorf("active announcements %+v, want only %s", list.Announcements, late.ID)
	}
	checkError(t, e.request("GET", "/api/v1/announcements/a999999", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound, `no announcement "a999999"`)
}

// TestCommuneScope: an officer of one commune sees and schedules only
// within it.
func TestCommuneScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/users", e.admin, map[string]string{"username": "can-bo-a", "password": testPassword, "role": "commune", "area": "12346"},
		http.StatusCreated, nil)
	officer := e.token("can-bo-a")
	viewer := e.addUser("xem-a", loaxa.RoleViewer, "12346")
	tech := e.addUser("ky-thuat-a", loaxa.RoleTechnician, "12346")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "Bản tin", http.StatusCreated)
	start := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	announce := func(token string, targets map[string]any, priority string) response {
		return e.request("POST", "/api/v1/announcements", token, "application/json", jsonBody(t, map[string]any{
			"content_id": c.ID, "targets": targets, "start": start, "priority": priority,
			"force": true, // several at one time on purpose: this test is about scope
		}))
	}

	var nodes struct{ Nodes []loaxa.Node }
	e.call("GET", "/api/v1/nodes", officer, nil, http.StatusOK, &nodes)
	if ids := nodeIDs(nodes.Nodes); !slices.Equal(ids, []string{"n-a"}) {
		t.Errorf("officer of 12346 sees nodes %v, want [n-a]", ids)
	}
	var areas struct {
		Areas []loaxa.Area
		Above []struct{ ID, Name string }
	}
	e.call("GET", "/api/v1/areas", officer, nil, http.StatusOK, &areas)
	if len(areas.Areas) != 1 || areas.Areas[0].ID != "12346" {
		t.Errorf("officer of 12346 sees areas %+v", areas.Areas)
	}
	// The areas above are named, not opened.
	if got := fmt.Sprint(areas.Above); got != "[{318 Huyện Tiên Lãng} {31 Thành phố Hải Phòng}]" {
		t.Errorf("officer of 12346 sees above: %s", got)
	}
	if r := e.request("GET", "/api/v1/areas/318", officer, "", nil); r.status != http.StatusForbidden {
		t.Errorf("officer of 12346 reads the district: %d", r.status)
	}

	var province, other, own loaxa.Announcement
	decode(t, announce(e.admin, map[string]any{"areas": []string{"31"}}, ""), http.StatusCreated, &province)
	decode(t, announce(e.admin, map[string]any{"areas": []string{"12347"}}, ""), http.StatusCreated, &other)
	decode(t, announce(officer, map[string]any{"areas": []string{"12346"}}, "priority"), http.StatusCreated, &own)

	tests := []struct {
		name   string
		r      response
		status int
		code   string
		msg    string
	}{
		{"nodes of another commune", e.request("GET", "/api/v1/nodes?area=12347", officer, "", nil), 403, loaxa.EForbidden, `Area "12347" is outside your area "12346"`},
		{"a node of another commune", e.request("GET", "/api/v1/nodes/n-b", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
		{"its desired state", e.request("GET", "/api/v1/nodes/n-b/desired", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
		{"another commune's area", e.request("GET", "/api/v1/areas/12347", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
		{"the district above", e.request("GET", "/api/v1/areas/318", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
		{"schedule onto another commune", announce(officer, map[string]any{"areas": []string{"12347"}}, ""), 403, loaxa.EForbidden, `Area "12347" is outside your area "12346"`},
		{"schedule onto the province", announce(officer, map[string]any{"areas": []string{"31"}}, ""), 403, loaxa.EForbidden, "outside your area"},
		{"schedule onto another commune's node", announce(officer, map[string]any{"nodes": []string{"n-b"}}, ""), 403, loaxa.EForbidden, `Node "n-b" is outside your area "12346"`},
		{"schedule as a viewer", announce(viewer, map[string]any{"areas": []string{"12346"}}, ""), 403, loaxa.EForbidden, `Role "viewer" may not schedule`},
		{"emergency as a technician", announce(tech, map[string]any{"areas": []string{"12346"}}, "emergency"), 403, loaxa.EForbidden, `Role "technician" may not schedule`},
		{"enrol in another commune", e.request("POST", "/api/v1/nodes", tech, "application/json", jsonBody(t, map[string]any{"id": "n-c", "name": "Loa", "area": "12347"})),
			403, loaxa.EForbidden, "outside your area"},
		{"create an area as an officer", e.request("POST", "/api/v1/areas", officer, "application/json", jsonBody(t, map[string]any{"id": "thon-1", "name": "Thôn 1", "parent": "12346"})),
			403, loaxa.EForbidden, `Role "commune" may not areas.manage`},
		{"another commune's announcement", e.request("GET", "/api/v1/announcements/"+other.ID, officer, "", nil), 403, loaxa.EForbidden, "does not play in your area"},
		{"its deliveries", e.request("GET", "/api/v1/announcements/"+other.ID+"/deliveries", officer, "", nil), 403, loaxa.EForbidden, "does not play in your area"},
		{"cancel the province's announcement", e.request("POST", "/api/v1/announcements/"+province.ID+"/cancel", officer, "", nil), 403, loaxa.EForbidden, `Part of announcement ` + province.ID + ` is outside your area "12346"`},
		{"events of another commune", e.request("GET", "/api/v1/events?area=12347", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
		{"events of another commune's node", e.request("GET", "/api/v1/events?node=n-b", officer, "", nil), 403, loaxa.EForbidden, "outside your area"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt.r, tt.status, tt.code, tt.msg) })
	}

	var list struct{ Announcements []loaxa.Announcement }
	e.call("GET", "/api/v1/announcements", officer, nil, http.StatusOK, &list)
	var ids []string
	for _, a := range list.Announcements {
		ids = append(ids, a.ID)
	}
	if want := []string{province.ID, own.ID}; !slices.Equal(ids, want) {
		t.Errorf("officer sees announcements %v, want %v (the province's and their own)", ids, want)
	}
	e.call("GET", "/api/v1/announcements/"+province.ID, officer, nil, http.StatusOK, nil)
	e.call("POST", "/api/v1/announcements/"+own.ID+"/cancel", officer, nil, http.StatusOK, nil)
	e.call("POST", "/api/v1/nodes", tech, map[string]any{"id": "n-c", "name": "Loa thôn 2", "area": "12346"}, http.StatusCreated, nil)
}

func decode(t *testing.T, r response, want int, out any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if err := jsonUnmarshal(r.body, out); err != nil {
		t.Fatal(err)
	}
}

// TestRuleThatNeverPlaysIsRefused: the until field is refused when it is
// not after start, but the same bound written in the rule (a year typo,
// UNTIL 2025 for 2026), a count already used up, or a rule that matches no
// day (30 February) was stored with 201 and then never played: the officer
// believed the bulletin scheduled and the speakers stayed silent. A
// recurrence with nothing to play from now on is refused (400, saying so);
// one that plays again only years ahead (29 February) is not.
func TestRuleThatNeverPlaysIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	start := t0.Add(time.Hour).Format(time.RFC3339) // Monday 2026-03-02 06:00 +07
	lastMonth := t0.AddDate(0, -1, 0).Format(time.RFC3339)
	for _, tc := range []struct {
		rule, start string
		count       int
		status      int
	}{
		{"FREQ=DAILY;UNTIL=20251231T165959Z", start, 0, 400},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", start, 0, 400},
		{"FREQ=DAILY", lastMonth, 3, 400},
		{"FREQ=DAILY;UNTIL=20261231T165959Z", start, 0, 201},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", start, 0, 201}, // 2028
		{"FREQ=DAILY", lastMonth, 40, 201},
	} {
		t.Run(fmt.Sprintf("%s count %d", tc.rule, tc.count), func(t *testing.T) {
			body := map[string]any{"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}}, "start": tc.start, "rrule": tc.rule}
			if tc.count > 0 {
				body["count"] = tc.count
			}
			r := e.request("POST", "/api/v1/announcements", officer, "application/json", jsonBody(t, body))
			if tc.status == 201 {
				if r.status != 201 {
					t.Errorf("a rule that plays again: %d %s, want 201", r.status, r.body)
				}
				return
			}
			checkError(t, r, 400, loaxa.EInvalid, fmt.Sprintf("rrule %q plays no more from now on (in Asia/Ho_Chi_Minh)", tc.rule))
		})
	}
}
