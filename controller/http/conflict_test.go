package http_test

import (
	"net/http"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
)

// conflictAnswer is the body of a 409 for conflicts.
type conflictAnswer struct {
	Error struct {
		Code, Message string
	}
	Conflicts []loaxa.Conflict
}

// TestConflicts: an announcement that overfills a session, overlaps another
// of its level on a node, or is put in a session on a day it does not run
// is refused with 409, the list of conflicts and a message saying how to
// go on; nothing is stored. The same request with force stores it and
// answers with the conflicts it was forced in with.
func TestConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	long := e.upload(e.admin, "dai.wav", wav(16000, 1, 40*16000), "Bản tin 40 giây", http.StatusCreated)

	var morning, weekdays loaxa.Session
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi sáng", "start": "05:30", "max_minutes": 1}, http.StatusCreated, &morning)
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 30,
		"days": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, http.StatusCreated, &weekdays)

	body := func(m map[string]any) map[string]any {
		out := map[string]any{"content_id": long.ID, "targets": map[string]any{"areas": []string{"12346"}}, "start": "2026-03-02T05:30:00+07:00"}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	post := func(m map[string]any) response {
		return e.request("POST", "/api/v1/announcements", officer, "application/json", jsonBody(t, body(m)))
	}
	var first loaxa.Announcement
	e.call("POST", "/api/v1/announcements", officer, body(map[string]any{"session": morning.ID}), http.StatusCreated, &first)
	e.call("POST", "/api/v1/announcements", officer, body(map[string]any{"start": "2026-03-02T08:00:00+07:00"}), http.StatusCreated, nil)

	stored := func() int {
		anns, err := e.stores.anns.FindAnnouncements(t.Context(), loaxa.AnnouncementFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(anns)
	}
	before, changed := stored(), e.sched.changed.Load()
	for _, tc := range []struct {
		name     string
		req      map[string]any
		kind     string
		session  string
		messages []string
	}{
		// The officer read "in 1 place(s)" and "of 1 minutes": a count of
		// one is said in the singular.
		{"a second 40 s item in a 1-minute session", map[string]any{"session": morning.ID}, loaxa.ConflictSessionOverflow, morning.ID + "@20260302",
			[]string{"The announcement conflicts with the programme in 1 place: Session " + morning.ID + " (Buổi sáng) on 2026-03-02 05:30 (Asia/Ho_Chi_Minh time) runs 1m20s, over its maximum of 1 minute; this announcement (from 05:30:40) runs past the end.",
				`send the same request with "force": true to schedule it anyway.`}},
		// Named by their titles, at the times of the area's clock: the
		// message read "a000002@20260302T010000.000Z (2026-03-02T08:00:00+07:00
		// to …)", an id and RFC 3339 an officer does not read.
		{"two normal items at 08:00 on one node", map[string]any{"start": "2026-03-02T08:00:00+07:00"}, loaxa.ConflictOverlap, "",
			[]string{`On node n-a (Cụm loa chợ Đôi), "Bản tin 40 giây" (a000002), from 08:00 to 08:00:40 on 2026-03-02, and this announcement, from 08:00 on 2026-03-02 (Asia/Ho_Chi_Minh time), are both normal and overlap; the second waits until the first ends.`}},
		{"a weekday session on a Saturday", map[string]any{"session": weekdays.ID, "start": "2026-03-07T17:00:00+07:00"}, loaxa.ConflictNoSession, weekdays.ID,
			[]string{"This announcement is placed in session " + weekdays.ID + " (Buổi chiều), which does not run on 2026-03-07; it will not play that day."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.req)
			if r.status != http.StatusConflict {
				t.Fatalf("status %d, want 409: %s", r.status, r.body)
			}
			var ans conflictAnswer
			if err := jsonUnmarshal(r.body, &ans); err != nil {
				t.Fatal(err)
			}
			if ans.Error.Code != loaxa.EConflict || len(ans.Conflicts) != 1 {
				t.Fatalf("answer %s", r.body)
			}
			cf := ans.Conflicts[0]
			if cf.Kind != tc.kind || cf.Session != tc.session || cf.Node != "n-a" || len(cf.Occurrences) == 0 {
				t.Errorf("conflict %+v, want kind %s in session %q on n-a", cf, tc.kind, tc.session)
			}
			// A session that does not run has no end to give.
			if !cf.SessionEnd.IsZero() {
				t.Errorf("conflict %+v has a session_end; want none", cf)
			}
			// Beside the words, each play for programs: its occurrence, its
			// bulletin and title, its start in RFC 3339 at the area's offset.
			if len(cf.Items) != len(cf.Occurrences) {
				t.Fatalf("conflict items %+v, want one for each of %v", cf.Items, cf.Occurrences)
			}
			for i, it := range cf.Items {
				if _, off := it.Start.Zone(); it.Occurrence != cf.Occurrences[i] || it.Title != long.Title || off != 7*3600 ||
					loaxa.OccurrenceID(it.Announcement, it.Start) != it.Occurrence {
					t.Errorf("conflict item %+v of %s, want its title %q and its start at +07:00", it, cf.Occurrences[i], long.Title)
				}
			}
			for _, m := range tc.messages {
				if !strings.Contains(ans.Error.Message, m) && !strings.Contains(cf.Message, m) {
					t.Errorf("messages %q and %q do not say %q", ans.Error.Message, cf.Message, m)
				}
			}
		})
	}
	if got := stored(); got != before {
		t.Errorf("%d announcements stored by refused requests", got-before)
	}
	if got := e.sched.changed.Load(); got != changed {
		t.Errorf("scheduler told %d times by refused requests", got-changed)
	}

	// Different levels are not a conflict: the higher one preempts.
	e.call("POST", "/api/v1/announcements", officer, body(map[string]any{"start": "2026-03-02T08:00:00+07:00", "priority": "priority"}), http.StatusCreated, nil)

	// Forced, it is stored with the conflicts it was forced in with.
	var forced struct {
		loaxa.Announcement
		Conflicts []loaxa.Conflict
	}
	e.call("POST", "/api/v1/announcements", officer, body(map[string]any{"session": morning.ID, "force": true}), http.StatusCreated, &forced)
	if forced.ID == "" || len(forced.Conflicts) != 1 || forced.Conflicts[0].Kind != loaxa.ConflictSessionOverflow {
		t.Errorf("forced %+v", forced)
	}
	if got := stored(); got != before+2 {
		t.Errorf("%d announcements stored, want %d", got, before+2)
	}
	// The session plays both, back to back, the second past its end.
	var prog struct{ Items []loaxa.ProgrammeItem }
	e.call("GET", "/api/v1/nodes/n-a/programme?from=2026-03-02&to=2026-03-03", officer, nil, http.StatusOK, &prog)
	var inSession []loaxa.ProgrammeItem
	for _, it := range prog.Items {
		if it.Session == morning.ID+"@20260302" {
			inSession = append(inSession, it)
		}
	}
	if len(inSession) != 2 || inSession[0].Announcement != first.ID || inSession[1].Announcement != forced.ID ||
		!inSession[1].Start.Equal(inSession[0].End) || !inSession[1].PlayBy.Equal(inSession[0].PlayBy) {
		t.Errorf("morning session %+v", inSession)
	}
}

// TestConflictNamesTheAnnouncementBeingCreated: an officer whose new
// bulletin overfilled a session read "…; new@20260301T223040.000Z runs
// past the end", an id nobody gave, for the item they were submitting.
// The message calls it "this announcement", as the overlap message does.
func TestConflictNamesTheAnnouncementBeingCreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	long := e.upload(e.admin, "dai.wav", wav(16000, 1, 40*16000), "Bản tin 40 giây", http.StatusCreated)
	var morning loaxa.Session
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi sáng", "start": "05:30", "max_minutes": 1}, http.StatusCreated, &morning)
	body := map[string]any{"title": "Lịch tiêm phòng", "content_id": long.ID, "targets": map[string]any{"areas": []string{"12346"}},
		"start": "2026-03-02T05:30:00+07:00", "session": morning.ID}
	e.call("POST", "/api/v1/announcements", officer, body, http.StatusCreated, nil)
	r := e.request("POST", "/api/v1/announcements", officer, "application/json", jsonBody(t, body))
	var ans conflictAnswer
	if err := jsonUnmarshal(r.body, &ans); err != nil || r.status != http.StatusConflict || len(ans.Conflicts) != 1 {
		t.Fatalf("status %d, %v: %s; want 409 with one conflict", r.status, err, r.body)
	}
	for _, m := range []string{ans.Error.Message, ans.Conflicts[0].Message} {
		if strings.Contains(m, "new@") || !strings.Contains(m, "; this announcement (from 05:30:40) runs past the end.") {
			t.Errorf("message %q: want the item being created called %q, not by a made-up id", m, "this announcement")
		}
	}
}
