package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// auditRow is one row of the audit screen as an officer reads it.
type auditRow struct {
	Action, Target, TargetTip, Detail string
}

// adminAuditLog records entries in c's audit log, as a controller wrote
// them (an older one's, or from routes not the test's), and opens the
// audit screen signed in as the admin.
func adminAuditLog(t *testing.T, c *rig.Controller, entries []*loaxa.AuditEntry) *Browser {
	t.Helper()
	for _, e := range entries {
		if err := c.App.Audit.RecordAudit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	b := StartBrowser(t)
	b.SignIn(c.URL, "admin", rig.AdminPassword, "Quản trị toàn hệ thống")
	b.Go("#/audit", `document.querySelector('#audit-table')`)
	return b
}

// hasAuditRow checks that rows hold one of action on target ("": any)
// whose detail says each of want.
func hasAuditRow(t *testing.T, rows []auditRow, action, target string, want ...string) {
	t.Helper()
	var seen []string
	for _, r := range rows {
		if r.Action != action {
			continue
		}
		if (target == "" || r.Target == target) && contains(r.Detail, want...) {
			return
		}
		seen = append(seen, r.Target+" | "+r.Detail)
	}
	t.Errorf("no %q row on %q says %q; they read %q", action, target, want, seen)
}

// auditRows reads the audit screen's rows: the action, the target (and
// its tooltip) and the detail columns, by their place in the table.
func auditRows(b *Browser) []auditRow {
	return MustEval[[]auditRow](b, `[...document.querySelectorAll('#audit-table tbody tr')].map((r) => ({
		Action: r.cells[2].innerText, Target: r.cells[3].innerText,
		TargetTip: (r.cells[3].querySelector('[title]') || {}).title || '', Detail: r.cells[5].innerText }))`)
}

// TestAuditLogReadsAsSentences: the audit screen showed what was done as
// codes ("announcement.create", "emergency.cancel"), what it was done to
// as ids ("a000001", "e000001") and the audio in the details as its
// SHA-256. The administrator reading who did what cannot tell one bulletin
// from another. Each action is said in words, the code as its tooltip;
// the bulletin, the alert, the cluster, the audio and the area by their
// names, the id in small type after it and as its tooltip; the audio in
// the details by its title, never its hash. A code this console has no
// words for (a newer controller's) shows as the code, not a blank.
func TestAuditLogReadsAsSentences(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa chợ Lập Lễ", "area": "11527", "lat": 20.8, "lon": 106.7}, nil)
	news := c.Upload("ban-tin-chieu.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	var a loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{
		"title": "Bản tin chiều thứ Hai", "content_id": news.ID, "priority": "normal",
		"targets": map[string][]string{"areas": {"11527"}, "nodes": {"lap-le-01"}},
		"start":   time.Now().Add(2 * time.Hour).Format(time.RFC3339),
	}, &a)
	c.MustDo("POST", "/api/v1/announcements/"+a.ID+"/cancel", nil, nil)
	flood := c.Upload("lu.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": flood.ID, "targets": []string{"11527"}, "repeat": 1, "drill": true}, &em)
	c.MustDo("POST", "/api/v1/emergency/"+em.ID+"/cancel", nil, nil)
	// An action of a newer controller, which this console has no words for.
	if err := c.App.Audit.RecordAudit(context.Background(), &loaxa.AuditEntry{Actor: "admin", Action: "node.firmware_wipe", Target: "lap-le-01", Area: "11527"}); err != nil {
		t.Fatal(err)
	}

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "admin", rig.AdminPassword, "Quản trị toàn hệ thống")
	b.Go("#/audit", `document.querySelector('#audit-table')`)
	rows := auditRows(b)
	find := func(action string) auditRow {
		t.Helper()
		for _, r := range rows {
			if r.Action == action {
				return r
			}
		}
		t.Errorf("no row says %q; the actions read %q", action, actions(rows))
		return auditRow{}
	}
	// checkTarget finds the row of action on id, which must name it by
	// name, with id in small type (but an audio file's hash) and as the
	// tooltip.
	checkTarget := func(action, name, id string) auditRow {
		t.Helper()
		var seen []string
		for _, r := range rows {
			if r.Action != action || r.TargetTip != id {
				seen = append(seen, r.Target)
				continue
			}
			want := name + " " + id
			if action == "Tải lên tệp âm thanh" {
				want = name
			}
			if r.Target != want {
				t.Errorf("the row %q names its target %q, want %q", action, r.Target, want)
			}
			return r
		}
		t.Errorf("no row %q has the tooltip %s; the targets read %q", action, id, seen)
		return auditRow{}
	}
	created := checkTarget("Tạo bản tin", "Bản tin chiều thứ Hai", a.ID)
	if !contains(created.Detail, "Tệp âm thanh: "+news.Title, "Cụm loa: Cụm loa chợ Lập Lễ", "Địa bàn: Xã Lập Lễ", "Mức ưu tiên: Thông thường") {
		t.Errorf("the bulletin's entry reads %q, want its audio, cluster, area and priority in words", created.Detail)
	}
	checkTarget("Huỷ bản tin", "Bản tin chiều thứ Hai", a.ID)
	sent := checkTarget("Phát khẩn cấp", em.Title, em.ID)
	if !contains(sent.Detail, "Diễn tập", "Tệp âm thanh: "+flood.Title) {
		t.Errorf("the alert's entry reads %q, want that it was a drill and its audio by title", sent.Detail)
	}
	checkTarget("Dừng phát khẩn cấp", em.Title, em.ID)
	checkTarget("Thêm cụm loa", "Cụm loa chợ Lập Lễ", "lap-le-01")
	checkTarget("Tải lên tệp âm thanh", news.Title, news.ID)
	checkTarget("Tạo địa bàn", "Xã Lập Lễ", "11527")
	for _, r := range rows {
		for _, hash := range []string{news.ID, flood.ID} {
			if strings.Contains(r.Detail, hash) {
				t.Errorf("the row %q shows the audio's hash in its detail: %q", r.Action, r.Detail)
			}
		}
	}
	// The newer controller's action, as its code, on the cluster by name.
	checkTarget("node.firmware_wipe", "Cụm loa chợ Lập Lễ", "lap-le-01")
	// Every other action in words: none is a code.
	for _, r := range rows {
		if r.Action != "node.firmware_wipe" && (strings.Contains(r.Action, ".") || r.Action == "") {
			t.Errorf("an action reads %q, not in words", r.Action)
		}
	}

	// On a phone each entry is a card, its detail as wide as the card;
	// as a table the detail was squeezed to a word a line.
	onSmallPhone(b)
	b.Go("#/overview", `document.querySelector('#count-never')`)
	b.Go("#/audit", `document.querySelector('#audit-table')`)
	row := `[...document.querySelectorAll('#audit-table tbody tr')].find((r) => r.cells[2].innerText === 'Tạo bản tin')`
	detail := MustEval[float64](b, row+`.cells[5].getBoundingClientRect().width`)
	card := MustEval[float64](b, row+`.getBoundingClientRect().width`)
	if detail < 0.8*card {
		t.Errorf("on a phone the bulletin's detail is %.0f px wide in a row %.0f px wide", detail, card)
	}
	if got := MustEval[string](b, `getComputedStyle(`+row+`.cells[5], '::before').content`); !strings.Contains(got, "Chi tiết") {
		t.Errorf("on a phone the bulletin's detail is labelled %s, not with its column's name", got)
	}
	if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the audit log is %d px wide on a 390 px screen", w)
	}
	b.Shot("10b-nhat-ky-dien-thoai")

	// In English too.
	b.Do("switch to English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("the audit log in English", `[...document.querySelectorAll('#audit-table tbody tr')].some((r) => r.cells[2].innerText === 'Created a bulletin')`, 10*time.Second)
	rows = auditRows(b)
	if r := find("Stopped an emergency alert"); !strings.HasPrefix(r.Target, em.Title) || !contains(r.Detail, "Drill") {
		t.Errorf("in English the stopped alert reads %q / %q, want its title and Drill", r.Target, r.Detail)
	}
}

func actions(rows []auditRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Action)
	}
	return out
}

// TestAuditLogReadsSessionAndSettingsChangesInWords: a session's creation
// (its name alone), its rename,
// its forced delete, an accepted proposal and a cluster's settings were
// written by the controller in English prose (`Buổi tối; name "Buổi
// chiều" -> "Buổi tối"`, `forced, 1 item(s) cancelled with it: a000001`)
// or as the request's JSON (`{"volume":8,"muted":true,…}`), and a
// self-test's kind as its code: English in the middle of the worded log.
// They are facts the console words now, in Vietnamese and in English: each
// change as before → after, the bulletins cancelled by their titles, the
// settings under their labels. Entries an older controller wrote still
// show: its settings JSON worded the same, its prose as written.
func TestAuditLogReadsSessionAndSettingsChangesInWords(t *testing.T) {
	t.Parallel()
	c, evening, news := lapLeWithEvening(t) // Monday 2 March 2026, 09:00
	var daily loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{"title": "Thời sự hằng ngày", "content_id": news.ID, "priority": "normal",
		"targets": map[string][]string{"areas": {"11527"}, "nodes": {}}, "start": "2026-03-02T17:00:00+07:00", "rrule": "FREQ=DAILY",
		"session": evening.ID}, &daily)
	c.MustDo("PATCH", "/api/v1/sessions/"+evening.ID, map[string]any{"name": "Buổi tối", "start": "18:00", "days": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}, nil)
	c.MustDo("DELETE", "/api/v1/sessions/"+evening.ID+"?force=true", nil, nil)
	c.MustDo("PATCH", "/api/v1/nodes/lap-le-01/settings", map[string]any{"volume": 8, "muted": true, "amplifier_policy": "always-on"}, nil)
	c.MustDo("POST", "/api/v1/selftests", map[string]any{"kind": "silent", "nodes": []string{"lap-le-01"}}, nil)
	// What an older controller wrote, and the details of an alert stopped
	// by its all-clear and of a live call's end, as this one writes them
	// (their routes are not this test's).
	at := c.App.Clock.Now()
	b := adminAuditLog(t, c, []*loaxa.AuditEntry{
		{At: at, Actor: "admin", Action: "emergency.cancel", Target: "e000009", Area: "11527", Detail: "drill=true by all-clear"},
		{At: at, Actor: "admin", Action: "live.stop", Target: "l000009", Area: "11527",
			Detail: `drill=false priority=priority title="Họp dân" frames=50 dropped=0 bytes=32000 reason="speaker stopped" cut_by=""`},
		{At: at, Actor: "admin", Action: "session.update", Target: "s000099", Area: "11527", Detail: `Buổi sáng; name "Buổi sớm" -> "Buổi sáng"`},
		{At: at, Actor: "admin", Action: "node.settings", Target: "lap-le-01", Area: "11527", Detail: `{"volume":5,"muted":null,"amplifier_policy":null}`},
	})
	defer b.checkErrors()
	details := func(action string) []string {
		var out []string
		for _, r := range auditRows(b) {
			if r.Action == action {
				out = append(out, r.Detail)
			}
		}
		return out
	}
	// one checks that action has a row whose detail says each of want.
	one := func(action string, want ...string) {
		t.Helper()
		got := details(action)
		for _, d := range got {
			if contains(d, want...) {
				return
			}
		}
		t.Errorf("no %q row says %q; they read %q", action, want, got)
	}
	one("Tạo buổi phát", "Tên: “Buổi chiều”", "Bắt đầu: 17:00", "Dài tối đa (phút): 30", "Ngày phát: Hằng ngày")
	one("Sửa buổi phát", "Tên: “Buổi chiều” → “Buổi tối”", "Bắt đầu: 17:00 → 18:00", "Ngày phát: Hằng ngày → Thứ Hai đến thứ Sáu")
	one("Xoá buổi phát", "Tên: “Buổi tối”", "Buộc thực hiện", "Bản tin bị huỷ theo: Thời sự hằng ngày")
	one("Đổi cài đặt cụm loa", "Âm lượng: 8", "Tắt tiếng (trừ phát khẩn cấp)", "Bộ khuếch đại: Luôn bật")
	one("Kiểm tra cụm loa từ xa", "Loại: Kiểm tra im lặng", "Số cụm loa: 1")
	one("Dừng phát khẩn cấp", "Diễn tập · Dừng vì đã phát thông báo an toàn")
	one("Kết thúc phát trực tiếp", "Lý do kết thúc: Người nói kết thúc", "Số khung âm thanh bị mất: 0")
	for _, d := range details("Kết thúc phát trực tiếp") {
		if strings.Contains(d, "Người ngắt") {
			t.Errorf("the live call nobody cut reads %q: it says who cut it, with no one", d)
		}
	}
	// The older controller's: its JSON as facts, its prose as written.
	one("Đổi cài đặt cụm loa", "Âm lượng: 5")
	one("Sửa buổi phát", `Buổi sáng; name "Buổi sớm" -> "Buổi sáng"`)
	for _, r := range auditRows(b) {
		if r.Detail == `Buổi sáng; name "Buổi sớm" -> "Buổi sáng"` {
			continue
		}
		for _, english := range []string{"->", "forced", "cancelled", "name=", "{", "null", "silent", "volume", "amplifier", "all-clear", "stopped", "cut_by", "dropped"} {
			if strings.Contains(r.Detail, english) {
				t.Errorf("the row %q reads %q: %q is not in words", r.Action, r.Detail, english)
			}
		}
	}

	b.Do("switch to English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("the audit log in English", `[...document.querySelectorAll('#audit-table tbody tr')].some((r) => r.cells[2].innerText === 'Changed a session')`, 10*time.Second)
	one("Changed a session", "Name: “Buổi chiều” → “Buổi tối”", "Start: 17:00 → 18:00")
	one("Deleted a session", "Name: “Buổi tối”", "Forced", "Bulletins cancelled with it: Thời sự hằng ngày")
	one("Changed a cluster's settings", "Volume: 8", "Muted (never emergencies)", "Amplifier: Always on")
}

// TestAuditLogSaysRecordingsReleasesAndCallsForWhatTheyAre: the audit
// screen showed the CAP recordings as "Sóng thần=9d27…", the audio's
// hash; a release upload as "amd64 ed9d…", a bare hash under a bare
// version; and any live call that was not a drill as "Báo động thật", a
// real alarm, which a commune's meeting call is not (nor an all-clear).
// The recordings say which audio each event type plays first, by its
// title; the release its version, architecture and a short hash (the
// whole as the tooltip); a call "Cuộc gọi thật, không phải diễn tập", and
// its volume 0 as each cluster's own (it read "Âm lượng: 0").
// Entries an older controller wrote read the same. A self-test's count of
// clusters (node_count=) is said as a count. A CAP warning as received
// says its status, message type and what was done with it in words (they
// read "status=Actual msgType=Alert action=pending"), and an alert sent
// for one says which ("cap=c000003"). A change of the CAP auto-start list
// names the event types that play without approval, or says none does
// (it read "Bão,Lũ quét", unlabelled, and nothing at all when emptied).
func TestAuditLogSaysRecordingsReleasesAndCallsForWhatTheyAre(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa chợ Lập Lễ", "area": "11527", "lat": 20.8, "lon": 106.7}, nil)
	siren := c.Upload("coi.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	flood := c.Upload("lu.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	c.MustDo("PUT", "/api/v1/cap/recordings", map[string]any{"recordings": map[string]string{"Sóng thần": siren.ID}}, nil)
	c.MustDo("POST", "/api/v1/selftests", map[string]any{"kind": "silent", "nodes": []string{"lap-le-01"}}, nil)
	c.MustDo("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {"Bão", "Lũ, sạt lở"}}, nil)
	c.MustDo("PUT", "/api/v1/cap/auto-start", map[string][]string{"events": {}}, nil)
	const hash = "ed9d6dee13df54db1748e7e23eb41716d50a58e40b6129404c7872574bdd9dea"
	at := c.App.Clock.Now()
	b := adminAuditLog(t, c, []*loaxa.AuditEntry{
		{At: at, Actor: "admin", Action: "release.upload", Target: "2.1.0", Detail: "arch=arm64 sha256=" + hash},
		// An older controller's.
		{At: at, Actor: "admin", Action: "release.upload", Target: "2.0.0", Detail: "amd64 " + hash},
		{At: at, Actor: "admin", Action: "cap.recordings", Target: "cap", Detail: "Lũ quét=" + flood.ID},
		{At: at, Actor: "admin", Action: "cap.auto_start", Target: "cap", Detail: "Sóng thần,Lốc xoáy"},
		// A call and an all-clear that were no drills, as this controller
		// writes them (their routes are not this test's).
		{At: at, Actor: "admin", Action: "live.start", Target: "live-x1", Area: "11527", Detail: `drill=false priority=priority volume=0 title="Họp dân"`},
		{At: at, Actor: "admin", Action: "emergency.send", Target: "e000009", Area: "11527",
			Detail: `drill=false kind=all-clear content=` + flood.ID + ` repeat=1 volume=15 title="Nước đã rút"`},
		{At: at, Actor: "admin", Action: "emergency.send", Target: "e000008", Area: "11527",
			Detail: `drill=false kind=alert content=` + flood.ID + ` repeat=1 volume=15 title="Lũ quét"`},
		// A CAP warning as received, and the alert sent for one.
		{At: at, Actor: "cap:kttv", Action: "cap.receive", Target: "c000003", Area: "11527", Detail: "key=kttv,lq-01 status=Actual msgType=Alert action=pending"},
		{At: at, Actor: "cap:kttv", Action: "emergency.send", Target: "e000007", Area: "11527",
			Detail: `cap=c000003 drill=false kind=alert content=` + flood.ID + ` repeat=1 volume=15 title="Lũ quét thôn 3"`},
	})
	defer b.checkErrors()
	rows := auditRows(b)
	one := func(action, target string, want ...string) {
		t.Helper()
		hasAuditRow(t, rows, action, target, want...)
	}
	one("Đổi bản ghi âm cho cảnh báo CAP", "cap", "Bản ghi phát trước cho “Sóng thần”: "+siren.Title)
	one("Đổi bản ghi âm cho cảnh báo CAP", "cap", "Bản ghi phát trước cho “Lũ quét”: "+flood.Title)
	// The auto-start list as this controller writes it (events=[…]), emptied,
	// and as an older one wrote it ("Sóng thần,Lốc xoáy").
	one("Đổi danh sách cảnh báo CAP tự động phát", "", "Loại cảnh báo CAP tự động phát, không chờ duyệt: “Bão”, “Lũ, sạt lở”")
	one("Đổi danh sách cảnh báo CAP tự động phát", "", "Không còn loại cảnh báo CAP nào tự động phát: mọi cảnh báo chờ cán bộ duyệt")
	one("Đổi danh sách cảnh báo CAP tự động phát", "", "Loại cảnh báo CAP tự động phát, không chờ duyệt: “Sóng thần”, “Lốc xoáy”")
	one("Tải lên phiên bản phần mềm", "Phiên bản 2.1.0", "Kiến trúc bo mạch: ARM 64 bit (arm64)", "Mã kiểm tra SHA-256: ed9d6dee13df…")
	one("Tải lên phiên bản phần mềm", "Phiên bản 2.0.0", "Kiến trúc bo mạch: x86 64 bit (amd64)", "Mã kiểm tra SHA-256: ed9d6dee13df…")
	one("Kiểm tra cụm loa từ xa", "", "Loại: Kiểm tra im lặng", "Số cụm loa: 1")
	one("Bắt đầu phát trực tiếp", "", "Cuộc gọi thật, không phải diễn tập", "Âm lượng: theo cài đặt của từng cụm loa")
	one("Phát khẩn cấp", "", "Không phải diễn tập", "Tiêu đề: “Nước đã rút”")
	one("Phát khẩn cấp", "", "Báo động thật", "Tiêu đề: “Lũ quét”")
	one("Nhận cảnh báo CAP", "", "Trạng thái CAP (status): thật (Actual)", "Loại tin CAP (msgType): cảnh báo mới (Alert)", "Bộ điều khiển đã xử lý: chờ cán bộ duyệt")
	one("Phát khẩn cấp", "", "Theo cảnh báo CAP: c000003", "Tiêu đề: “Lũ quét thôn 3”")
	tip := MustEval[string](b, `[...document.querySelectorAll('#audit-table tbody tr')].find((r) => r.cells[3].innerText === 'Phiên bản 2.1.0').cells[5].querySelector('[title]').title`)
	if tip != hash {
		t.Errorf("the release's short hash has the tooltip %q, want the whole %s", tip, hash)
	}
	for _, r := range rows {
		for _, id := range []string{siren.ID, flood.ID} {
			if strings.Contains(r.Detail, id) {
				t.Errorf("the row %q shows an audio's hash: %q", r.Action, r.Detail)
			}
		}
		if strings.Contains(r.Detail, "Báo động thật") && (r.Action == "Bắt đầu phát trực tiếp" || strings.Contains(r.Detail, "Nước đã rút")) {
			t.Errorf("the row %q reads %q: a call or an all-clear that is no drill is not a real alarm", r.Action, r.Detail)
		}
	}
	b.Shot("10c-nhat-ky-ban-ghi-phien-ban")

	b.Do("switch to English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("the audit log in English", `[...document.querySelectorAll('#audit-table tbody tr')].some((r) => r.cells[3].innerText === 'Version 2.1.0')`, 10*time.Second)
	rows = auditRows(b)
	one("Uploaded a software release", "Version 2.1.0", "Board architecture: ARM 64-bit (arm64)", "SHA-256 checksum: ed9d6dee13df…")
	one("Started a live call", "", "A real call, not a drill")
	one("Changed the CAP auto-start list", "", "CAP event types that play without approval: “Bão”, “Lũ, sạt lở”")
	one("Changed the CAP auto-start list", "", "No CAP event type plays on its own any more: every alert waits for approval")
	for _, r := range rows {
		if strings.Contains(r.Detail, "events=") {
			t.Errorf("the row %q shows the list's code: %q", r.Action, r.Detail)
		}
	}
}

// TestAuditLogSaysWhatARolloutDid: a software rollout's entry read its
// version alone ("1.5.0") and a halt "halted by admin: …", English prose
// in the Vietnamese log, and nothing said which clusters an update went to
// or how fast. The console says the version, the areas and clusters by
// their names, the share of clusters, the canaries and how many clusters
// it asked; a halt the version and the admin's reason, under "Lý do dừng".
// An older entry's bare version reads as the version.
func TestAuditLogSaysWhatARolloutDid(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa chợ Lập Lễ", "area": "11527", "lat": 20.8, "lon": 106.7}, nil)
	at := c.App.Clock.Now()
	b := adminAuditLog(t, c, []*loaxa.AuditEntry{
		{At: at, Actor: "admin", Action: "rollout.create", Target: "r000002", Detail: "version=1.5.0 areas=11527 nodes=lap-le-01 percent=50 canaries=2 node_count=12"},
		{At: at, Actor: "admin", Action: "rollout.halt", Target: "r000002", Detail: `version=1.5.0 reason="loa im tiếng sau cập nhật"`},
		// An older controller's.
		{At: at, Actor: "admin", Action: "rollout.create", Target: "r000001", Detail: "1.4.0"},
	})
	defer b.checkErrors()
	rows := auditRows(b)
	one := func(action, target string, want ...string) {
		t.Helper()
		hasAuditRow(t, rows, action, target, want...)
	}
	one("Bắt đầu cập nhật phần mềm", "r000002", "Phiên bản: 1.5.0", "Địa bàn: Xã Lập Lễ", "Cụm loa: Cụm loa chợ Lập Lễ",
		"Tỉ lệ cụm loa được cập nhật: 50%", "Số cụm loa cập nhật thử trước: 2", "Số cụm loa được cập nhật: 12")
	one("Dừng cập nhật phần mềm", "r000002", "Phiên bản: 1.5.0", "Lý do dừng: loa im tiếng sau cập nhật")
	one("Bắt đầu cập nhật phần mềm", "r000001", "Phiên bản: 1.4.0")
	for _, r := range rows {
		if strings.Contains(r.Detail, "=") {
			t.Errorf("the row %q reads %q: a fact left as key=value", r.Action, r.Detail)
		}
	}

	b.Do("switch to English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("the audit log in English", `[...document.querySelectorAll('#audit-table tbody tr')].some((r) => r.cells[2].innerText === 'Started a software rollout')`, 10*time.Second)
	rows = auditRows(b)
	one("Started a software rollout", "r000002", "Version: 1.5.0", "Share of clusters updated: 50%", "Clusters updated first (canaries): 2", "Clusters to update: 12")
	one("Halted a software rollout", "r000002", "Why it was halted: loa im tiếng sau cập nhật")
}
