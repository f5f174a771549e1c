package http_test

import (
	"net/http"
	"slices"
	"testing"

	"loaxa.vn/controller/loaxa"
)

// TestHolidays: holidays are kept per area (for its subtree) or for
// everywhere; a commune officer manages their own, only a user without an
// area the global ones; an area sees its own, its ancestors' and the
// global ones.
func TestHolidays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	officerB := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")

	before := e.sched.changed.Load()
	var national, local, districtDay loaxa.Holiday
	e.call("POST", "/api/v1/holidays", e.admin, map[string]any{"date": "2026-09-02", "name": "Quốc khánh"}, http.StatusCreated, &national)
	e.call("POST", "/api/v1/holidays", officerA, map[string]any{"area": "12346", "date": "2026-03-15", "name": "Lễ hội làng"}, http.StatusCreated, &local)
	e.call("POST", "/api/v1/holidays", district, map[string]any{"area": "318", "date": "2026-04-10", "name": "Ngày huyện"}, http.StatusCreated, &districtDay)
	if national.Area != "" || national.Date != "2026-09-02" || national.CreatedBy != "admin" || local.Area != "12346" || local.CreatedBy != "can-bo-a" {
		t.Errorf("created %+v and %+v", national, local)
	}
	if got := e.sched.changed.Load() - before; got != 3 {
		t.Errorf("scheduler told %d times for 3 holidays", got)
	}

	list := func(token, query string) []string {
		var resp struct{ Holidays []loaxa.Holiday }
		e.call("GET", "/api/v1/holidays"+query, token, nil, http.StatusOK, &resp)
		var out []string
		for _, h := range resp.Holidays {
			out = append(out, h.Date)
		}
		return out
	}
	if got := list(officerA, "?area=12346"); !slices.Equal(got, []string{"2026-03-15", "2026-04-10", "2026-09-02"}) {
		t.Errorf("holidays of 12346: %v", got)
	}
	if got := list(officerB, "?area=12347"); !slices.Equal(got, []string{"2026-04-10", "2026-09-02"}) {
		t.Errorf("holidays of 12347: %v, want the district's and the national one", got)
	}

	holiday := func(token string, body map[string]any) response {
		return e.request("POST", "/api/v1/holidays", token, "application/json", jsonBody(t, body))
	}
	changed := e.sched.changed.Load()
	for _, tc := range []struct {
		name   string
		r      response
		status int
		code   string
		msg    string
	}{
		{"global as an officer", holiday(officerA, map[string]any{"date": "2026-05-01", "name": "Quốc tế lao động"}), 403, loaxa.EForbidden,
			`A holiday without an area applies everywhere; give area (your area "12346" or one below it).`},
		{"for another commune", holiday(officerA, map[string]any{"area": "12347", "date": "2026-05-01", "name": "x"}), 403, loaxa.EForbidden,
			`Area "12347" is outside your area "12346"`},
		{"date written the Vietnamese way", holiday(officerA, map[string]any{"area": "12346", "date": "02/09/2026", "name": "x"}), 400, loaxa.EInvalid,
			`Holiday date "02/09/2026": write it as YYYY-MM-DD, e.g. 2025-09-02.`},
		// Written as asked, so "write it as YYYY-MM-DD" told the officer nothing.
		{"no such day", holiday(officerA, map[string]any{"area": "12346", "date": "2026-02-30", "name": "x"}), 400, loaxa.EInvalid,
			`Holiday date "2026-02-30" is not a day of the calendar; check the month and the day, e.g. 2026-02-28.`},
		{"no date", holiday(officerA, map[string]any{"area": "12346", "name": "x"}), 400, loaxa.EInvalid, `Holiday date ""`},
		{"no name", holiday(officerA, map[string]any{"area": "12346", "date": "2026-05-01"}), 400, loaxa.EInvalid, "name is required."},
		{"the same day twice", holiday(officerA, map[string]any{"area": "12346", "date": "2026-03-15", "name": "again"}), 409, loaxa.EConflict,
			"2026-03-15 is already a holiday (Lễ hội làng"},
		{"unknown area", holiday(e.admin, map[string]any{"area": "99999", "date": "2026-05-01", "name": "x"}), 400, loaxa.EInvalid, `area: there is no area "99999"`},
		{"delete an unknown one", e.request("DELETE", "/api/v1/holidays/h999999", officerA, "", nil), 404, loaxa.ENotFound,
			`There is no holiday "h999999"; list them with GET /api/v1/holidays.`},
		{"delete the national one as an officer", e.request("DELETE", "/api/v1/holidays/"+national.ID, officerA, "", nil), 403, loaxa.EForbidden,
			"applies everywhere; only a user without an area may remove it."},
		{"delete another commune's", e.request("DELETE", "/api/v1/holidays/"+local.ID, officerB, "", nil), 403, loaxa.EForbidden,
			`is outside your area "12347"`},
		{"list another commune's", e.request("GET", "/api/v1/holidays?area=12347", officerA, "", nil), 403, loaxa.EForbidden, "outside your area"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkError(t, tc.r, tc.status, tc.code, tc.msg) })
	}
	if got := e.sched.changed.Load(); got != changed {
		t.Errorf("scheduler told %d times by refused requests", got-changed)
	}

	e.call("DELETE", "/api/v1/holidays/"+local.ID, officerA, nil, http.StatusNoContent, nil)
	e.call("DELETE", "/api/v1/holidays/"+national.ID, e.admin, nil, http.StatusNoContent, nil)
	if got := list(e.admin, ""); !slices.Equal(got, []string{"2026-04-10"}) {
		t.Errorf("after deleting two: %v", got)
	}
	if got := e.sched.changed.Load() - changed; got != 2 {
		t.Errorf("scheduler told %d times for 2 deletes", got)
	}
}

// TestHolidayListIsScoped: GET /holidays without area listed every area's
// holidays to everyone, the neighbouring commune's included, where every
// other list shows only what lies in the caller's subtree. Without area a
// user sees the holidays that apply somewhere in their subtree: their
// area's and those below it, their ancestors' and the global ones.
func TestHolidayListIsScoped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "1234601", "name": "Thôn Đông", "parent": "12346"}, http.StatusCreated, nil)
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	officerB := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	ids := map[string]string{}
	for _, h := range []struct{ by, area, date, name string }{
		{e.admin, "", "2026-09-02", "Quốc khánh"},
		{e.admin, "31", "2026-04-09", "Ngày giải phóng Hải Phòng"},
		{district, "318", "2026-04-20", "Lễ hội huyện Tiên Lãng"},
		{officerA, "12346", "2026-04-11", "Lễ hội xã Tiên Thắng"},
		{officerA, "1234601", "2026-04-12", "Lễ hội thôn Đông"},
		{officerB, "12347", "2026-04-10", "Lễ hội làng Tiên Minh"},
	} {
		var got loaxa.Holiday
		e.call("POST", "/api/v1/holidays", h.by, map[string]any{"area": h.area, "date": h.date, "name": h.name}, http.StatusCreated, &got)
		ids[h.area] = got.ID
	}
	list := func(token, query string) []string {
		var l struct{ Holidays []loaxa.Holiday }
		e.call("GET", "/api/v1/holidays"+query, token, nil, http.StatusOK, &l)
		var out []string
		for _, h := range l.Holidays {
			out = append(out, h.Area)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		who, token, query string
		want              []string
	}{
		{"12346's officer", officerA, "", []string{"", "12346", "1234601", "31", "318"}},
		{"12347's officer", officerB, "", []string{"", "12347", "31", "318"}},
		{"the district officer", district, "", []string{"", "12346", "1234601", "12347", "31", "318"}},
		{"admin", e.admin, "", []string{"", "12346", "1234601", "12347", "31", "318"}},
		{"12346's officer for the village", officerA, "?area=1234601", []string{"", "12346", "1234601", "31", "318"}},
	} {
		if got := list(tc.token, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("GET /holidays%s by %s lists the holidays of %q, want %q", tc.query, tc.who, got, tc.want)
		}
	}
	// Naming the neighbouring commune is refused.
	if r := e.request("GET", "/api/v1/holidays?area=12347", officerA, "", nil); r.status != http.StatusForbidden {
		t.Errorf("GET /holidays?area=12347 by 12346's officer: %d, want 403", r.status)
	}
}
