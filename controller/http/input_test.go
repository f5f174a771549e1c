package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
)

// TestBadInput: every kind of wrong request gets a 4xx whose message says
// what was wrong and how to fix it, and nothing is stored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *lhttp.Server) { s.MaxUploadBytes = 16 << 10 })
	e.tree()
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1000), "Bản tin", http.StatusCreated)
	now := e.clock.Now()
	past := now.Add(-time.Hour).Format(time.RFC3339)
	later := now.Add(time.Hour).Format(time.RFC3339)
	example := now.Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339) // t0 is on the hour, +07:00

	good := wav(16000, 1, 1000)
	upload := func(parts ...part) (io.Reader, string) { return multipartBody(t, parts...) }
	announcement := func(change func(m map[string]any)) string {
		m := map[string]any{"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}}, "start": later}
		change(m)
		b := new(bytes.Buffer)
		fmt.Fprintf(b, "%s", mustJSON(t, m))
		return b.String()
	}

	type request struct {
		method, path, ct string
		body             io.Reader
	}
	jsonReq := func(method, path, body string) request {
		return request{method, path, "application/json", strings.NewReader(body)}
	}
	uploadReq := func(body io.Reader, ct string) request { return request{"POST", "/api/v1/content", ct, body} }
	tests := []struct {
		name   string
		req    request
		status int
		code   string
		msg    string
	}{
		// Uploads.
		{"non-WAV upload", uploadReq(upload(part{"file", "notice.txt", []byte("Kính gửi bà con thôn Đông,\n")})),
			415, loaxa.EUnsupported, `"notice.txt" is neither WAV nor MP3; upload WAV or MP3`},
		{"empty file", uploadReq(upload(part{"file", "empty.wav", nil})), 400, loaxa.EInvalid, `"empty.wav" is empty`},
		{"truncated WAV", uploadReq(upload(part{"file", "cut.wav", good[:len(good)-500]})), 400, loaxa.EInvalid, "the file is truncated"},
		{"oversize upload", uploadReq(upload(part{"file", "long.wav", wav(16000, 1, 16000)})), 413, loaxa.ETooLarge, "larger than the 16 KiB limit"},
		{"upload as JSON", uploadReq(strings.NewReader(`{"file":"x"}`), "application/json"), 415, loaxa.EUnsupported, `send multipart/form-data with the audio in a part named "file"`},
		{"upload without a file", uploadReq(upload(part{"title", "", []byte("Bản tin")})), 400, loaxa.EInvalid, `no part named "file"`},
		{"upload with an unknown field", uploadReq(upload(part{"titel", "", []byte("x")}, part{"file", "a.wav", good})), 400, loaxa.EInvalid, `Unknown form field "titel"`},
		{"two files", uploadReq(upload(part{"file", "a.wav", good}, part{"file", "b.wav", good})), 400, loaxa.EInvalid, `more than one part named "file"`},
		{"cut multipart body", uploadReq(func() (io.Reader, string) {
			body, ct := upload(part{"file", "a.wav", good})
			b, _ := io.ReadAll(body)
			return bytes.NewReader(b[:len(b)/2]), ct
		}()), 400, loaxa.EInvalid, "broke off"},

		// JSON bodies.
		{"unknown JSON field", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"Thôn 1","parent":"12346","colour":"red"}`),
			400, loaxa.EInvalid, `Unknown field "colour"; the accepted fields are id, name, parent, time_zone.`},
		{"unknown nested field", jsonReq("POST", "/api/v1/announcements", `{"targets":{"area":["31"]}}`),
			400, loaxa.EInvalid, `Unknown field "area"; the accepted fields are title, content_id, targets.areas, targets.nodes, priority, start, rrule, repeat, until, count, exdates, on_holidays, session, gap_ms, on_preempt, opening_chime, closing_chime, force, stream_url, duration_ms.`},
		{"trailing JSON", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"Thôn 1","parent":"12346"} {"id":"thon-2"}`),
			400, loaxa.EInvalid, "continues after the JSON object"},
		{"trailing garbage", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"Thôn 1","parent":"12346"}x`),
			400, loaxa.EInvalid, "continues after the JSON object"},
		{"wrong content type", request{"POST", "/api/v1/areas", "text/plain", strings.NewReader(`{"id":"thon-1"}`)},
			415, loaxa.EUnsupported, `Content-Type "text/plain" is not accepted here; send a JSON object with Content-Type: application/json.`},
		{"wrong type", jsonReq("POST", "/api/v1/nodes", `{"id":"n-c","name":"Loa","area":"12346","lat":"20.7"}`),
			400, loaxa.EInvalid, `Field "lat" must be a number, not a string.`},
		{"wrong type in a list", jsonReq("POST", "/api/v1/announcements", `{"targets":{"areas":[31]}}`),
			400, loaxa.EInvalid, `Field "targets.areas" must be a string, not a number.`},
		{"a list instead of an object", jsonReq("POST", "/api/v1/areas", `[]`), 400, loaxa.EInvalid, "must be a JSON object with the fields id, name, parent, time_zone, not a list"},
		{"empty body", jsonReq("POST", "/api/v1/areas", ``), 400, loaxa.EInvalid, "The request body is empty"},
		{"broken JSON", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1",}`), 400, loaxa.EInvalid, "not valid JSON at byte 16"},
		{"cut JSON", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1"`), 400, loaxa.EInvalid, "ends in the middle of the JSON"},
		{"huge body", jsonReq("POST", "/api/v1/areas", `{"name":"`+strings.Repeat("a", 1<<20)+`"}`), 413, loaxa.ETooLarge, "larger than 1 MiB"},

		// Areas and nodes.
		{"bad area id", jsonReq("POST", "/api/v1/areas", `{"id":"Thôn 1","name":"Thôn 1","parent":"12346"}`), 400, loaxa.EInvalid, "id: id \"Thôn 1\" has"},
		{"unknown parent area", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"Thôn 1","parent":"99999"}`),
			400, loaxa.EInvalid, `parent: there is no area "99999"; pick one from GET /api/v1/areas or create it first.`},
		{"area without a name", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"  ","parent":"12346"}`), 400, loaxa.EInvalid, "name is required."},
		{"bad time zone", jsonReq("POST", "/api/v1/areas", `{"id":"thon-1","name":"Thôn 1","parent":"12346","time_zone":"ICT"}`),
			400, loaxa.EInvalid, `time_zone "ICT" is not an IANA time zone name; use one like Asia/Ho_Chi_Minh`},
		{"existing area", jsonReq("POST", "/api/v1/areas", `{"id":"12346","name":"Again","parent":"318"}`), 409, loaxa.EConflict, `Area "12346" exists already`},
		{"unknown area for a node", jsonReq("POST", "/api/v1/nodes", `{"id":"n-c","name":"Loa","area":"99999"}`),
			400, loaxa.EInvalid, `area: there is no area "99999"`},
		{"node off the map", jsonReq("POST", "/api/v1/nodes", `{"id":"n-c","name":"Loa","area":"12346","lat":106.5,"lon":20.7}`),
			400, loaxa.EInvalid, "lat within ±90 and lon within ±180"},
		{"existing node", jsonReq("POST", "/api/v1/nodes", `{"id":"n-a","name":"Loa","area":"12346"}`), 409, loaxa.EConflict, `Node "n-a" exists already`},
		{"unknown node", request{"GET", "/api/v1/nodes/n-z", "", nil}, 404, loaxa.ENotFound, `There is no node "n-z"`},
		{"unknown area", request{"GET", "/api/v1/areas/99999", "", nil}, 404, loaxa.ENotFound, `There is no area "99999"`},
		{"bad node state filter", request{"GET", "/api/v1/nodes?state=broken", "", nil}, 400, loaxa.EInvalid, `state "broken" is not a node state; use online, stale, offline, never or awaiting_enrolment.`},
		{"misspelt query parameter", request{"GET", "/api/v1/nodes?aera=12346", "", nil}, 400, loaxa.EInvalid, `Unknown query parameter "aera"; the accepted ones are area, state.`},

		// Content.
		{"unknown content", request{"GET", "/api/v1/content/" + strings.Repeat("ab", 32), "", nil}, 404, loaxa.ENotFound, "There is no content abab"},
		{"not a content id", request{"GET", "/api/v1/content/bulletin.wav/audio", "", nil}, 404, loaxa.ENotFound, "content ids are the 64 hex digits"},

		// Announcements.
		{"start in the past", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["start"] = past })),
			400, loaxa.EInvalid, fmt.Sprintf("The time to play, 04:00 on 2026-03-02 (Asia/Ho_Chi_Minh time, start %s), has passed: it is 05:00 on 2026-03-02 there now. Give a later time, e.g. %s.", past, example)},
		{"start without an offset", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["start"] = "2026-03-02 17:00" })),
			400, loaxa.EInvalid, `start "2026-03-02 17:00" is not an RFC 3339 time; write the date, T, the time and the UTC offset, e.g. ` + example},
		{"start missing", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { delete(m, "start") })),
			400, loaxa.EInvalid, "start is required"},
		{"start too far ahead", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["start"] = now.AddDate(1, 0, 1).Format(time.RFC3339) })),
			400, loaxa.EInvalid, "is more than a year ahead"},
		{"unknown content for an announcement", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["content_id"] = strings.Repeat("0", 64) })),
			400, loaxa.EInvalid, "content_id 0000000000000000000000000000000000000000000000000000000000000000 does not exist; upload the audio with POST /api/v1/content"},
		{"content id that is a filename", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["content_id"] = "ban-tin.wav" })),
			400, loaxa.EInvalid, `content_id "ban-tin.wav" is not a content id`},
		{"no targets", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["targets"] = map[string]any{"areas": []string{}} })),
			400, loaxa.EInvalid, "targets is empty; name at least one area or node"},
		{"unknown target area", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["targets"] = map[string]any{"areas": []string{"99999"}} })),
			400, loaxa.EInvalid, `targets.areas: there is no area "99999"`},
		{"unknown target node", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["targets"] = map[string]any{"nodes": []string{"n-z"}} })),
			400, loaxa.EInvalid, `targets.nodes: there is no node "n-z"`},
		{"unknown priority", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["priority"] = "urgent" })),
			400, loaxa.EInvalid, `priority "urgent" is not a priority; use one of background, normal, priority, emergency (default normal).`},
		{"repeat too high", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["repeat"] = 11 })),
			400, loaxa.EInvalid, "repeat 11 is out of range; give 1 to 10"},
		{"repeat zero", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["repeat"] = 0 })),
			400, loaxa.EInvalid, "repeat 0 is out of range"},
		{"recurrence rule that is not RFC 5545", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["rrule"] = "FREQ=SOMETIMES;BYHOUR=5" })),
			400, loaxa.EInvalid, "is not an RFC 5545 rule"},
		{"recurrence too frequent", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["rrule"] = "FREQ=MINUTELY" })),
			400, loaxa.EInvalid, "at most 48 a day"},
		{"recurrence every second", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["rrule"] = "FREQ=SECONDLY" })),
			400, loaxa.EInvalid, "repeats every second"},
		{"recurrence by Easter", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["rrule"] = "FREQ=YEARLY;BYEASTER=-2" })),
			400, loaxa.EInvalid, `rrule "FREQ=YEARLY;BYEASTER=-2" uses BYEASTER, which is not RFC 5545; choose the days with BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY or BYWEEKNO`},
		{"recurrence with its own DTSTART", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["rrule"] = "DTSTART:20250101T000000Z\nRRULE:FREQ=DAILY" })),
			400, loaxa.EInvalid, "DTSTART"},
		{"bad exception date", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) {
			m["rrule"], m["exdates"] = "FREQ=DAILY", []string{"02/09/2026"}
		})), 400, loaxa.EInvalid, "exdates"},
		{"until without a rule", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["until"] = "2026-12-31T00:00:00Z" })),
			400, loaxa.EInvalid, "until and count bound a recurrence"},
		{"unknown preemption policy", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["on_preempt"] = "later" })),
			400, loaxa.EInvalid, "on_preempt"},
		{"unknown session", jsonReq("POST", "/api/v1/announcements", announcement(func(m map[string]any) { m["session"] = "s999" })),
			400, loaxa.EInvalid, "session \"s999\" does not exist"},

		// Events.
		{"events from not RFC 3339", request{"GET", "/api/v1/events?from=yesterday", "", nil}, 400, loaxa.EInvalid, `from "yesterday" is not an RFC 3339 time`},
		{"events window backwards", request{"GET", "/api/v1/events?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "", nil},
			400, loaxa.EInvalid, "is not before to"},
		{"events limit", request{"GET", "/api/v1/events?limit=0", "", nil}, 400, loaxa.EInvalid, `limit "0" is not a number from 1 to 10000.`},
		{"events of an unknown node", request{"GET", "/api/v1/events?node=n-z", "", nil}, 400, loaxa.EInvalid, `node: there is no node "n-z"`},
	}
	changed := e.sched.changed.Load()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, e.request(tt.req.method, tt.req.path, e.admin, tt.req.ct, tt.req.body), tt.status, tt.code, tt.msg)
		})
	}

	// Nothing of the refused requests was kept.
	ctx := t.Context()
	if areas, _ := e.stores.areas.FindAreas(ctx, loaxa.AreaFilter{}); len(areas) != 4 {
		t.Errorf("%d areas after refused requests, want the 4 of the tree", len(areas))
	}
	if nodes, _ := e.stores.nodes.FindNodes(ctx, loaxa.NodeFilter{}); len(nodes) != 2 {
		t.Errorf("%d nodes after refused requests, want 2", len(nodes))
	}
	if anns, _ := e.stores.anns.FindAnnouncements(ctx, loaxa.AnnouncementFilter{}); len(anns) != 0 {
		t.Errorf("refused announcements were stored: %+v", anns)
	}
	if contents, _ := e.stores.contents.FindContents(ctx, loaxa.ContentFilter{}); len(contents) != 1 {
		t.Errorf("%d contents after refused uploads, want 1", len(contents))
	}
	if got := e.sched.changed.Load(); got != changed {
		t.Errorf("scheduler told %d times by refused requests", got-changed)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := io.ReadAll(jsonBody(t, v))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestErrorTextIsNotHTMLEscaped: an operator running curl read "give from
// \u003c to" instead of "give from < to", because the JSON answers escaped
// <, > and &. Every JSON answer is application/json with nosniff, so no
// browser reads it as HTML and the text can be sent as written.
func TestErrorTextIsNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	for _, r := range []response{
		e.request("GET", "/api/v1/events?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", e.admin, "", nil),
		e.request("GET", "/api/v1/areas", "", "", nil),
		e.request("GET", "/api/v1/time", "", "", nil),
	} {
		if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("Content-Type %q, want application/json; charset=utf-8: %s", ct, r.body)
		}
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options %q, want nosniff: %s", got, r.body)
		}
		if bytes.Contains(r.body, []byte(`\u003c`)) || bytes.Contains(r.body, []byte(`\u003e`)) || bytes.Contains(r.body, []byte(`\u0026`)) {
			t.Errorf("answer escapes HTML characters: %s", r.body)
		}
	}
	if r := e.request("GET", "/api/v1/events?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", e.admin, "", nil); !bytes.Contains(r.body, []byte("give from < to")) {
		t.Errorf("answer %s does not say %q as written", r.body, "give from < to")
	}
	if r := e.request("GET", "/api/v1/areas", "", "", nil); !bytes.Contains(r.body, []byte("Bearer <token>")) {
		t.Errorf("answer %s does not say %q as written", r.body, "Bearer <token>")
	}
}

// TestTakenIDSaysWhichRefusal: the admin's forms showed "Bị trùng hoặc
// xung đột." followed by the API's English when a new user's, area's or
// cluster's id was in use. Each 409 names its refusal (reason), so that
// the console says it wholly in Vietnamese.
func TestTakenIDSaysWhichRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	for _, tc := range []struct {
		path   string
		body   map[string]any
		reason string
	}{
		{"/api/v1/users", map[string]any{"username": "admin", "password": testPassword, "role": "viewer", "area": "31"}, loaxa.ReasonUsernameTaken},
		{"/api/v1/areas", map[string]any{"id": "12346", "name": "Xã trùng mã", "parent": "318"}, loaxa.ReasonAreaExists},
		{"/api/v1/nodes", map[string]any{"id": "n-a", "name": "Cụm trùng mã", "area": "12346"}, loaxa.ReasonNodeExists},
	} {
		r := e.request("POST", tc.path, e.admin, "application/json", jsonBody(t, tc.body))
		checkError(t, r, http.StatusConflict, loaxa.EConflict, "")
		var got struct{ Error struct{ Reason string } }
		if err := json.Unmarshal(r.body, &got); err != nil || got.Error.Reason != tc.reason {
			t.Errorf("POST %s: %s (%v), want reason %q", tc.path, r.body, err, tc.reason)
		}
	}
}
