package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/tts"
)

// TestFormRefusalsNameTheirReason: the refusals a commune officer meets
// on the emergency, bulletin and library forms were an English sentence
// behind a generic Vietnamese heading ("Thông tin chưa đúng. text has no
// words to read out, …"). Each names its reason, so that the console
// says it wholly in Vietnamese: an area outside the officer's own, as a
// page read before their area changed offers it (outside_area), text with
// no words to read out (speech_no_words), and an all-clear a colleague
// sent first (all_clear_sent). A refusal of the role itself keeps no
// reason: its words are the code's.
func TestFormRefusalsNameTheirReason(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	officer := e.addUser("can-bo-tien-thang", loaxa.RoleCommune, "12346")
	viewer := e.addUser("xem-tien-thang", loaxa.RoleViewer, "12346")
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", officer, map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "drill": true}, http.StatusCreated, &em)
	e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", officer, map[string]any{"content_id": ct.ID}, http.StatusCreated, nil)

	for _, tc := range []struct {
		name, path, token string
		body              map[string]any
		status            int
		reason, says      string
	}{
		{"an emergency to the neighbouring commune", "/api/v1/emergency", officer,
			map[string]any{"content_id": ct.ID, "targets": []string{"12347"}}, http.StatusForbidden, loaxa.ReasonOutsideArea, `"12347" is outside your area "12346"`},
		{"an emergency of punctuation alone", "/api/v1/emergency", officer,
			map[string]any{"text": "!!! ... ???", "targets": []string{"12346"}}, http.StatusBadRequest, loaxa.ReasonSpeechNoWords, "no words to read out"},
		{"a second all-clear", "/api/v1/emergency/" + em.ID + "/all-clear", officer,
			map[string]any{"content_id": ct.ID}, http.StatusConflict, loaxa.ReasonAllClearSent, "was sent already"},
		{"a bulletin to the neighbouring commune", "/api/v1/announcements", officer,
			map[string]any{"content_id": ct.ID, "targets": map[string][]string{"areas": {"12347"}}, "start": "2026-03-02T17:00:00+07:00"},
			http.StatusForbidden, loaxa.ReasonOutsideArea, "outside your area"},
		{"text to speech of punctuation alone", "/api/v1/content/tts", officer,
			map[string]any{"text": "— … —"}, http.StatusBadRequest, loaxa.ReasonSpeechNoWords, "no words to read out"},
		{"an emergency by a viewer", "/api/v1/emergency", viewer,
			map[string]any{"content_id": ct.ID, "targets": []string{"12346"}}, http.StatusForbidden, "", `Role "viewer" may not`},
	} {
		r := e.call("POST", tc.path, tc.token, tc.body, tc.status, nil)
		var got struct {
			Error struct{ Code, Message, Reason string }
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("%s: %s: %v", tc.name, r.body, err)
		}
		if got.Error.Reason != tc.reason || !strings.Contains(got.Error.Message, tc.says) {
			t.Errorf("%s: %s\nwant reason %q and the English saying %q", tc.name, r.body, tc.reason, tc.says)
		}
	}
}

// TestBulletinAndSessionRefusalsNameTheirReason: the refusals an officer
// meets on the bulletin and session forms beyond what the console checks
// itself were the API's English behind a Vietnamese heading, their times
// RFC 3339 instants ("Thông tin chưa đúng. start 2026-03-01T21:00:00Z is
// in the past; …"). Each names its reason, so that the console says it
// wholly in Vietnamese, and says its times on the area's clock, the zone
// named: a one-off whose time has passed by the controller's clock (the
// page's copy of it, taken at sign-in, may be behind), a first play more
// than a year ahead, a recurrence started more than a year ago or with no
// play left, and a session deleted by a colleague while the page still
// offers it, placed into, a proposal accepted into, changed or deleted;
// and the officer's bulletin for their market's cluster cancelled after the
// cluster moved to the next commune, which had no reason ("Announcement
// a000002 does not play in your area").
func TestBulletinAndSessionRefusalsNameTheirReason(t *testing.T) {
	e := newEnv(t) // 05:00 on 2 March 2026, Vietnam
	e.tree()
	officer := e.addUser("can-bo-tien-thang", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-tien-lang", loaxa.RoleDistrict, "318")
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Thời sự", http.StatusCreated)
	var evening loaxa.Session
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 30}, http.StatusCreated, &evening)
	// A station is a commune with sessions: the district's bulletin asks it.
	var fromDistrict struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	e.call("POST", "/api/v1/announcements", district, map[string]any{"content_id": ct.ID, "targets": map[string][]string{"areas": {"318"}},
		"start": "2026-03-02T17:00:00+07:00"}, http.StatusCreated, &fromDistrict)
	if len(fromDistrict.Proposals) != 1 || fromDistrict.Proposals[0].Area != "12346" {
		t.Fatalf("the district's bulletin made proposals %+v; want one to Tiên Thắng", fromDistrict.Proposals)
	}
	e.call("DELETE", "/api/v1/sessions/"+evening.ID, e.admin, nil, http.StatusNoContent, nil)
	var market loaxa.Announcement
	e.call("POST", "/api/v1/announcements", officer, map[string]any{"content_id": ct.ID, "targets": map[string][]string{"nodes": {"n-a"}},
		"start": "2026-03-02T18:00:00+07:00"}, http.StatusCreated, &market)
	e.call("PATCH", "/api/v1/nodes/n-a", e.admin, map[string]any{"area": "12347"}, http.StatusOK, nil)
	bulletin := func(start, rrule, until, session string) map[string]any {
		m := map[string]any{"content_id": ct.ID, "targets": map[string][]string{"areas": {"12346"}}, "start": start}
		for k, v := range map[string]string{"rrule": rrule, "until": until, "session": session} {
			if v != "" {
				m[k] = v
			}
		}
		return m
	}

	for _, tc := range []struct {
		name, method, path string
		body               map[string]any
		status             int
		reason             string
		says               []string
	}{
		{"a one-off at 04:00 today, written in UTC", "POST", "/api/v1/announcements", bulletin("2026-03-01T21:00:00Z", "", "", ""),
			http.StatusBadRequest, loaxa.ReasonStartPast, []string{"04:00 on 2026-03-02 (Asia/Ho_Chi_Minh time", "it is 05:00 on 2026-03-02 there now"}},
		{"a one-off next year", "POST", "/api/v1/announcements", bulletin("2027-03-03T17:00:00+07:00", "", "", ""),
			http.StatusBadRequest, loaxa.ReasonStartTooFar, []string{"17:00 on 2027-03-03 (Asia/Ho_Chi_Minh time", "before 05:00 on 2027-03-02"}},
		{"every day since the year before last", "POST", "/api/v1/announcements", bulletin("2025-03-01T17:00:00+07:00", "FREQ=DAILY", "", ""),
			http.StatusBadRequest, loaxa.ReasonStartTooOld, []string{"17:00 on 2025-03-01 (Asia/Ho_Chi_Minh time", "on or after 2026-03-02"}},
		// No reason (the console checks it before sending), but its
		// times on the area's clock: "until 2026-03-03T16:59:00Z is not
		// after start".
		{"an end before the first play, written in UTC", "POST", "/api/v1/announcements", bulletin("2026-03-05T17:00:00+07:00", "FREQ=DAILY", "2026-03-03T16:59:00Z", ""),
			http.StatusBadRequest, "", []string{"The end, 23:59 on 2026-03-03 (Asia/Ho_Chi_Minh time, until 2026-03-03T16:59:00Z), is not after the first play, 17:00 on 2026-03-05;"}},
		{"every day at 04:00 until tonight", "POST", "/api/v1/announcements", bulletin("2026-03-02T04:00:00+07:00", "FREQ=DAILY", "2026-03-02T23:59:00+07:00", ""),
			http.StatusBadRequest, loaxa.ReasonRecurrenceOver, []string{"plays no more from now on (in Asia/Ho_Chi_Minh)"}},
		{"a bulletin in the deleted session", "POST", "/api/v1/announcements", bulletin("2026-03-02T17:00:00+07:00", "", "", evening.ID),
			http.StatusBadRequest, loaxa.ReasonSessionGone, []string{`session "` + evening.ID + `" does not exist`}},
		{"a proposal accepted into the deleted session", "POST", "/api/v1/proposals/" + fromDistrict.Proposals[0].ID + "/accept", map[string]any{"session": evening.ID},
			http.StatusBadRequest, loaxa.ReasonSessionGone, []string{`Session "` + evening.ID + `" does not exist`}},
		{"the deleted session moved", "PATCH", "/api/v1/sessions/" + evening.ID, map[string]any{"start": "18:00"},
			http.StatusNotFound, loaxa.ReasonSessionGone, []string{`There is no session "` + evening.ID + `"`}},
		{"the deleted session deleted", "DELETE", "/api/v1/sessions/" + evening.ID, nil,
			http.StatusNotFound, loaxa.ReasonSessionGone, []string{`There is no session "` + evening.ID + `"`}},
		{"the bulletin of a cluster moved away cancelled", "POST", "/api/v1/announcements/" + market.ID + "/cancel", nil,
			http.StatusForbidden, loaxa.ReasonBulletinElsewhere, []string{"Announcement " + market.ID + ` does not play in your area "12346"`}},
	} {
		var in any
		if tc.body != nil {
			in = tc.body
		}
		r := e.call(tc.method, tc.path, officer, in, tc.status, nil)
		var got struct {
			Error struct{ Code, Message, Reason string }
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("%s: %s: %v", tc.name, r.body, err)
		}
		if got.Error.Reason != tc.reason {
			t.Errorf("%s: %s\nwant reason %q", tc.name, r.body, tc.reason)
		}
		for _, s := range tc.says {
			if !strings.Contains(got.Error.Message, s) {
				t.Errorf("%s: %q\ndoes not say %q", tc.name, got.Error.Message, s)
			}
		}
	}
}

// TestCapApprovalRefusalsNameTheirReason: an officer who pressed "DUYỆT
// VÀ PHÁT NGAY" on a CAP warning a colleague had approved a moment before,
// or that had expired since the screen listed it, read "Bị trùng hoặc
// xung đột. CAP alert cap-… is approved, not waiting for approval." The
// refusals name their reason (cap_decided, cap_expired), so that the
// console says them wholly in Vietnamese.
func TestCapApprovalRefusalsNameTheirReason(t *testing.T) {
	e := newEnv(t, func(s *lhttp.Server) { s.SpeechEngine = &tts.Espeak{} })
	e.tree()
	approved := e.postCap(capXML("a1", "Actual", "12346"), http.StatusCreated)
	// Expiring at 05:10, ten minutes after the controller's 05:00.
	late := e.postCap(strings.Replace(capXML("a2", "Actual", "12346"), "2026-03-02T09:00:00+07:00", "2026-03-02T05:10:00+07:00", 1), http.StatusCreated)
	e.call("POST", "/api/v1/cap/"+approved.Alert.ID+"/approve", e.admin, nil, http.StatusOK, nil)
	for _, tc := range []struct {
		name, id     string
		advance      bool
		reason, says string
	}{
		{"approved by a colleague", approved.Alert.ID, false, loaxa.ReasonCapDecided, "not waiting for approval"},
		{"expired since it was listed", late.Alert.ID, true, loaxa.ReasonCapExpired, "expired at"},
	} {
		if tc.advance {
			e.clock.Advance(15 * time.Minute)
		}
		r := e.call("POST", "/api/v1/cap/"+tc.id+"/approve", e.admin, nil, http.StatusConflict, nil)
		var got struct {
			Error struct{ Code, Message, Reason string }
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("%s: %s: %v", tc.name, r.body, err)
		}
		if got.Error.Reason != tc.reason || !strings.Contains(got.Error.Message, tc.says) {
			t.Errorf("%s: %+v; want reason %q and a message saying %q", tc.name, got.Error, tc.reason, tc.says)
		}
	}
}
