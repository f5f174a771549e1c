package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
)

// TestProgramme: the programme routes show what the scheduler compiles —
// recurrences with their exceptions, holidays skipped unless an item says
// otherwise, per node and per area with the nodes each item plays on —
// and refuse bad ranges with a message.
func TestProgramme(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)

	// The village festival on Thursday 5 March is a holiday in 12346 only.
	e.call("POST", "/api/v1/holidays", officerA, map[string]any{"area": "12346", "date": "2026-03-05", "name": "Lễ hội làng"}, http.StatusCreated, nil)
	var daily, festival loaxa.Announcement
	// Every day at 05:30 and 17:00 across the district, except all of
	// Wednesday and Tuesday evening.
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"318"}},
		"start": "2026-03-02T05:30:00+07:00", "rrule": "FREQ=DAILY\nRRULE:FREQ=DAILY;BYHOUR=17;BYMINUTE=0",
		"exdates": []string{"2026-03-04", "2026-03-03T17:00:00+07:00"},
	}, http.StatusCreated, &daily)
	// Twice at noon in 12346, holiday or not.
	e.call("POST", "/api/v1/announcements", officerA, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}},
		"start": "2026-03-04T12:00:00+07:00", "rrule": "FREQ=DAILY", "count": 2, "on_holidays": true,
	}, http.StatusCreated, &festival)

	d, f := daily.ID, festival.ID
	if got, want := e.programmeOf(officerA, "n-a", "2026-03-02", "2026-03-07"), []string{
		d + " 02 05:30", d + " 02 17:00", d + " 03 05:30", f + " 04 12:00", f + " 05 12:00", d + " 06 05:30", d + " 06 17:00",
	}; !slices.Equal(got, want) {
		t.Errorf("n-a programme\n  %v\nwant\n  %v", got, want)
	}
	if got, want := e.programmeOf(e.admin, "n-b", "2026-03-05", "2026-03-06"), []string{d + " 05 05:30", d + " 05 17:00"}; !slices.Equal(got, want) {
		t.Errorf("n-b plays on 12346's holiday: %v, want %v", got, want)
	}

	var area struct {
		From, To time.Time
		Items    []loaxa.ProgrammeItem
	}
	e.call("GET", "/api/v1/areas/318/programme?from=2026-03-05&to=2026-03-06", e.admin, nil, http.StatusOK, &area)
	var got []string
	for _, it := range area.Items {
		got = append(got, fmt.Sprintf("%s %s %v", it.Announcement, it.Start.In(t0.Location()).Format("15:04"), it.Nodes))
		if it.End.Sub(it.Start) != time.Second {
			t.Errorf("item %s ends %v after its start, want the 1 s of its content", it.ID, it.End.Sub(it.Start))
		}
	}
	if want := []string{d + " 05:30 [n-b]", f + " 12:00 [n-a]", d + " 17:00 [n-b]"}; !slices.Equal(got, want) {
		t.Errorf("area 318 on 5 March %v, want %v", got, want)
	}
	if want := time.Date(2026, 3, 5, 0, 0, 0, 0, t0.Location()); !area.From.Equal(want) || !area.To.Equal(want.AddDate(0, 0, 1)) {
		t.Errorf("range %v – %v, want the local day of 5 March", area.From, area.To)
	}

	var def struct{ From, To time.Time }
	e.call("GET", "/api/v1/nodes/n-a/programme", officerA, nil, http.StatusOK, &def)
	if !def.From.Equal(e.clock.Now()) || def.To.Sub(def.From) != 7*24*time.Hour {
		t.Errorf("default range %v – %v, want a week from now", def.From, def.To)
	}

	for _, tc := range []struct {
		name, token, path string
		status            int
		code, msg         string
	}{
		{"backwards", e.admin, "/api/v1/nodes/n-a/programme?from=2026-03-05&to=2026-03-04", 400, loaxa.EInvalid, "is not a range of at most 62 days; give from < to."},
		{"longer than two months", e.admin, "/api/v1/nodes/n-a/programme?from=2026-03-01&to=2026-06-01", 400, loaxa.EInvalid, "is not a range of at most 62 days"},
		{"not a time", e.admin, "/api/v1/nodes/n-a/programme?from=h%C3%B4m-nay", 400, loaxa.EInvalid, `from "hôm-nay" is not an RFC 3339 time`},
		{"misspelt parameter", e.admin, "/api/v1/nodes/n-a/programme?form=2026-03-05", 400, loaxa.EInvalid, `Unknown query parameter "form"; the accepted ones are from, to.`},
		{"unknown node", e.admin, "/api/v1/nodes/n-z/programme", 404, loaxa.ENotFound, `There is no node "n-z"`},
		{"unknown area", e.admin, "/api/v1/areas/99999/programme", 404, loaxa.ENotFound, `There is no area "99999"`},
		{"another commune's node", officerA, "/api/v1/nodes/n-b/programme", 403, loaxa.EForbidden, `Node "n-b" is outside your area "12346"`},
		{"another commune", officerA, "/api/v1/areas/12347/programme", 403, loaxa.EForbidden, `Area "12347" is outside your area "12346"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, e.request("GET", tc.path, tc.token, "", nil), tc.status, tc.code, tc.msg)
		})
	}
}

// TestProgrammeAndConflictCheckPanicsSayWhatWasNotDone: a panic in the
// scheduler while it compiled an area's or a cluster's programme, or
// checked a new bulletin against the programme, reached the HTTP server's
// recover: 500 "Internal error; the controller log has the details.",
// not a word of what was not done. Each answers 500 saying what was not
// done (the programme not shown, the bulletin not created), where the log
// has it and what to do; the bulletin is not stored.
func TestProgrammeAndConflictCheckPanicsSayWhatWasNotDone(t *testing.T) {
	t.Parallel()
	var prog *schedule.Scheduler
	e := newEnv(t, func(s *lhttp.Server) { prog = s.ProgrammeService.(*schedule.Scheduler) })
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	content := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	e.call("POST", "/api/v1/announcements", district, map[string]any{"title": "Cảnh báo mưa lớn", "content_id": content.ID,
		"targets": map[string]any{"areas": []string{"12346"}}, "priority": "priority", "start": t0.Add(time.Hour).Format(time.RFC3339)},
		http.StatusCreated, nil)
	prog.ContentService = panickyContent{ContentService: prog.ContentService, bad: content.ID}
	const tryAgain = "Try again; if it fails again, tell the controller's administrator."

	r := e.request("GET", "/api/v1/areas/12346/programme?from=2026-03-02&to=2026-03-04", officer, "", nil)
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal,
		`The programme of Xã Tiên Thắng (12346) could not be shown: the controller failed while compiling it (a fault of the controller; its log has the details, under "programme failed"). Nothing was changed. `+tryAgain)
	r = e.request("GET", "/api/v1/nodes/n-a/programme?from=2026-03-02&to=2026-03-04", officer, "", nil)
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal,
		`The programme of cluster n-a (Cụm loa chợ Đôi) could not be shown: the controller failed while compiling it (a fault of the controller; its log has the details, under "programme failed"). Nothing was changed. `+tryAgain)
	r = e.call("POST", "/api/v1/announcements", officer, map[string]any{"title": "Thông báo tiêm chủng", "content_id": content.ID,
		"targets": map[string]any{"areas": []string{"12346"}}, "priority": "normal", "start": t0.Add(2 * time.Hour).Format(time.RFC3339)},
		http.StatusInternalServerError, nil)
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal,
		`The bulletin "Thông báo tiêm chủng" was not created: the controller failed while checking it against the programme (a fault of the controller; its log has the details, under "announcement conflict check failed"). Nothing was stored or sent. `+tryAgain)
	if logs := e.logs.String(); !strings.Contains(logs, "programme failed") || !strings.Contains(logs, "announcement conflict check failed") ||
		!strings.Contains(logs, "choked on "+content.ID) {
		t.Errorf("the log does not name the failed steps and their panic:\n%s", logs)
	}
	var l struct{ Announcements []loaxa.Announcement }
	e.call("GET", "/api/v1/announcements", e.admin, nil, http.StatusOK, &l)
	for _, a := range l.Announcements {
		if a.Title == "Thông báo tiêm chủng" {
			t.Errorf("the bulletin whose check failed was stored: %s", a.ID)
		}
	}
}

// TestProgrammeSaysTheTimesEachDayRanBy: an officer moved the commune's
// evening session from 17:00 to 18:00 on Wednesday morning. The week's
// plays of Monday and Tuesday are at 17:00, as they ran, but the console's
// box of the session on those days said "18:00": the only times the
// programme answer had were the session's now. It says, for each day of
// the span a session of the area ran by times it has no more, those times
// (session_runs); the days after the change need none.
func TestProgrammeSaysTheTimesEachDayRanBy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	var evening, other loaxa.Session
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 30},
		http.StatusCreated, &evening)
	// The other commune's, changed too, is not this area's.
	e.call("POST", "/api/v1/sessions", e.admin, map[string]any{"area": "12347", "name": "Buổi sáng", "start": "05:30", "max_minutes": 15},
		http.StatusCreated, &other)
	// Wednesday 4 March, 09:00: from today, 18:00 for 45 minutes.
	e.clock.Set(t0.AddDate(0, 0, 2).Add(4 * time.Hour))
	officer = e.token("can-bo-a") // signed in again, two days on
	e.call("PATCH", "/api/v1/sessions/"+evening.ID, officer, map[string]any{"start": "18:00", "max_minutes": 45}, http.StatusOK, nil)
	e.call("PATCH", "/api/v1/sessions/"+other.ID, e.token("admin"), map[string]any{"start": "06:00"}, http.StatusOK, nil)

	type run struct {
		Session, Day, Start string
		MaxMinutes          int `json:"max_minutes"`
	}
	var prog struct {
		Runs []run `json:"session_runs"`
	}
	e.call("GET", "/api/v1/areas/12346/programme?from=2026-03-02&to=2026-03-09", officer, nil, http.StatusOK, &prog)
	want := []run{{evening.ID, "2026-03-02", "17:00", 30}, {evening.ID, "2026-03-03", "17:00", 30}}
	if !slices.Equal(prog.Runs, want) {
		t.Errorf("the week's session runs %+v, want %+v: Monday's and Tuesday's at 17:00 for 30 minutes, none from Wednesday", prog.Runs, want)
	}
	// A week after the change needs none.
	prog.Runs = nil
	e.call("GET", "/api/v1/areas/12346/programme?from=2026-03-09&to=2026-03-16", officer, nil, http.StatusOK, &prog)
	if len(prog.Runs) != 0 {
		t.Errorf("the week after the change has session runs %+v, want none", prog.Runs)
	}
}

// BenchmarkAreaProgrammeWithChangedSessions: a commune officer's week of
// programme (GET /areas/{id}/programme, the console's calendar) in a
// province of 100 communes with 3 sessions each, every one moved on
// Wednesday 4 March at 09:00, read on Tuesday 10 March: the week of the
// change, whose Monday, Tuesday and Wednesday morning ran by earlier
// times (session_runs), and the week after (none). A commune with a
// cluster and a daily bulletin in its evening session (whose items
// already had the sessions read, for deleted_sessions), and one without
// clusters (which read none before).
func BenchmarkAreaProgrammeWithChangedSessions(b *testing.B) {
	e := newEnv(b)
	e.tree()
	ctx := b.Context()
	changed := t0.AddDate(0, 0, 2).Add(4 * time.Hour) // Wednesday 4 March, 09:00
	evening := ""
	for i := range 100 {
		area := fmt.Sprintf("c%03d", i)
		if err := e.stores.areas.CreateArea(ctx, &loaxa.Area{ID: area, Name: "Xã " + area, Parent: "318"}); err != nil {
			b.Fatal(err)
		}
		for j, start := range []string{"05:30", "11:00", "17:00"} {
			sess := &loaxa.Session{Area: area, Name: fmt.Sprintf("Buổi %d", j), Start: start, MaxMinutes: 30, CreatedBy: "admin", CreatedAt: t0.Add(-time.Hour)}
			if err := e.stores.sessions.CreateSession(ctx, sess); err != nil {
				b.Fatal(err)
			}
			if area == "c050" && start == "17:00" {
				evening = sess.ID
			}
		}
	}
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "c050-01", "name": "Cụm loa chợ", "area": "c050", "lat": 20.7, "lon": 106.5}, http.StatusCreated, nil)
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{"title": "Thời sự", "content_id": c.ID, "targets": map[string]any{"areas": []string{"c050"}},
		"priority": "normal", "start": "2026-03-02T17:00:00+07:00", "rrule": "FREQ=DAILY", "session": evening}, http.StatusCreated, nil)
	ss, err := e.stores.sessions.FindSessions(ctx, loaxa.SessionFilter{})
	if err != nil {
		b.Fatal(err)
	}
	for _, sess := range ss {
		later := sess.Start[:3] + "15"
		if _, _, err := e.stores.sessions.UpdateSession(ctx, sess.ID, loaxa.SessionChange{Start: &later, By: "admin", At: changed}); err != nil {
			b.Fatal(err)
		}
	}
	e.clock.Set(t0.AddDate(0, 0, 8).Add(7 * time.Hour)) // Tuesday 10 March, 12:00
	admin := e.token("admin")
	for _, area := range []string{"c050", "c051"} {
		for _, week := range []struct {
			name, from, to string
			runs           int // the area's 3 sessions on Monday and Tuesday, and its 05:30 on Wednesday
		}{{"week-of-the-change", "2026-03-02", "2026-03-09", 7}, {"week-after", "2026-03-09", "2026-03-16", 0}} {
			b.Run(area+"/"+week.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var prog struct {
						Runs []json.RawMessage `json:"session_runs"`
					}
					e.call("GET", "/api/v1/areas/"+area+"/programme?from="+week.from+"&to="+week.to, admin, nil, http.StatusOK, &prog)
					if len(prog.Runs) != week.runs {
						b.Fatalf("%d session runs, want %d", len(prog.Runs), week.runs)
					}
				}
			})
		}
	}
}
