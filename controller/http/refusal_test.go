package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
