package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

const officerPassword = "mat-khau-lap-le-2026"

// TestCommuneOfficerEveningBulletin is the console's main story, in a real
// browser against the real controller and two real node agents sharing a
// fake clock: the officer of Xã Lập Lễ signs in (and sees that scope),
// uploads a WAV with the progress bar, adds the evening session, schedules
// the recording every day in it ("Hằng ngày trong buổi …"), and watches
// both clusters play it. The officer never sees Xã Tam Hưng's cluster, and
// the console's own API client is refused when it names that commune.
func TestCommuneOfficerEveningBulletin(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	day := time.Date(2026, 3, 2, 16, 0, 0, 0, vn) // a Monday afternoon
	fc := clock.NewFake(day)
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "31")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.CreateArea("11530", "Xã Tam Hưng", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	mine := []string{"lap-le-01", "lap-le-02"}
	for i, id := range mine {
		var created struct{ Credentials protocol.Credentials }
		c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": id, "name": fmt.Sprintf("Cụm loa thôn %d", i+1), "area": "11527",
			"lat": 20.86 + 0.01*float64(i), "lon": 106.74 + 0.012*float64(i)}, &created)
		rig.StartNode(t, &created.Credentials, rig.NodeOptions{Clock: fc})
	}
	c.MustDo("POST", "/api/v1/holidays", map[string]string{"area": "11527", "date": "2026-03-04", "name": "Lễ hội đình làng"}, nil)
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "tam-hung-01", "name": "Cụm loa Tam Hưng", "area": "11530", "lat": 20.9, "lon": 106.7}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()

	// Sign in; the header says who and where.
	b.Do("open the console", chromedp.Navigate(c.URL+"/"))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 15*time.Second)
	b.Shot("01-dang-nhap")
	b.Do("sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "can-bo-lap-le"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), officerPassword),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	b.Wait("the scope in the header", text("#scope")+` === 'Cán bộ xã Lập Lễ'`, 15*time.Second)
	b.Wait("both clusters online on the overview", text("#count-online")+`.startsWith('2')`, 20*time.Second)
	if got := MustEval[string](b, text("#emergency-entry")); !strings.Contains(got, "PHÁT KHẨN CẤP") {
		t.Errorf("overview emergency entry %q", got)
	}
	b.Shot("02-tong-quan")

	// Another commune is out of sight: not in the list, not in any area
	// choice, and the console's API client is refused for it.
	b.Go("#/clusters", `document.querySelector('#cluster-table')`)
	rows := MustEval[[]string](b, `[...document.querySelectorAll('#cluster-table tbody tr')].map(r => r.dataset.node)`)
	if !slices.Equal(rows, mine) {
		t.Errorf("cluster list %q, want only %q", rows, mine)
	}
	if n := MustEval[int](b, `document.querySelectorAll('svg.map circle.node').length`); n != 2 {
		t.Errorf("map draws %d clusters, want 2", n)
	}
	opts := MustEval[[]string](b, `[...document.querySelectorAll('#cluster-area option')].map(o => o.value)`)
	if !slices.Equal(opts, []string{"11527"}) {
		t.Errorf("area choices %q, want only 11527", opts)
	}
	b.Shot("03-cum-loa")
	forbidden := func(what, call string) {
		t.Helper()
		got := MustEval[string](b, `import('/static/js/api.js').then(m => `+call+`).then(() => 'allowed', e => String(e.status))`)
		if got != "403" {
			t.Errorf("%s through the console's API client: %s, want 403", what, got)
		}
	}
	forbidden("reading Tam Hưng's cluster", `m.api('GET', '/nodes/tam-hung-01')`)
	forbidden("listing Tam Hưng's clusters", `m.api('GET', '/nodes', undefined, {area: '11530'})`)

	// Upload a recording; the progress bar runs to the end.
	wav := filepath.Join(t.TempDir(), "ban-tin-chieu.wav")
	if err := os.WriteFile(wav, rig.ToneWAV(440, 2*time.Second, 22050, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Go("#/library", `document.querySelector('#upload-form')`)
	b.Do("upload the WAV",
		chromedp.SetUploadFiles(chromedp.CSS(`#upload-file`), []string{wav}),
		chromedp.SendKeys(chromedp.CSS(`#upload-title`), "Bản tin chiều"),
		chromedp.Click(chromedp.CSS(`#upload-form button[type=submit]`)))
	b.Wait("the upload saved", text("#upload-status")+`.includes('Đã lưu “Bản tin chiều” (2 giây)')`, 20*time.Second)
	if v := MustEval[float64](b, `document.querySelector('#upload-progress').value`); v != 1 {
		t.Errorf("progress bar at %v after the upload, want 1", v)
	}
	// Text read out, with a player to hear it before use.
	b.Do("have a notice read out",
		chromedp.SendKeys(chromedp.CSS(`#tts-text`), "Kính gửi bà con thôn Đông. Chiều nay có mưa lớn."),
		chromedp.Click(chromedp.CSS(`#tts-form button[type=submit]`)))
	b.Wait("the spoken notice ready to preview", `document.querySelector('#tts-preview audio') && document.querySelector('#tts-preview audio').src.startsWith('blob:')`, 20*time.Second)
	b.Wait("the preview player can play it", `document.querySelector('#tts-preview audio').readyState >= 1 && document.querySelector('#tts-preview audio').duration > 1`, 10*time.Second)
	b.Wait("the recording in the library", `[...document.querySelectorAll('#library-table tbody tr')].some(r => r.innerText.includes('Bản tin chiều'))`, 10*time.Second)
	b.Do("search the library", chromedp.SendKeys(chromedp.CSS(`#library-search`), "tin chiều"))
	b.Wait("only the recording found", `document.querySelectorAll('#library-table tbody tr').length === 1 && `+text("#library-table tbody")+`.includes('Bản tin chiều')`, 10*time.Second)
	b.Shot("04-thu-vien")
	var content struct{ Content []loaxa.Content }
	c.MustDo("GET", "/api/v1/content?q=B%E1%BA%A3n%20tin%20chi%E1%BB%81u", nil, &content)
	if len(content.Content) != 1 || content.Content[0].CreatedBy != "can-bo-lap-le" {
		t.Fatalf("content after the upload: %s", rig.Describe(content))
	}
	contentID := content.Content[0].ID

	// The evening session, then the bulletin in it every day.
	b.Go("#/programme", `document.querySelector('#week')`)
	b.Do("add the evening session (the form offers Buổi chiều at 17:00)", chromedp.Evaluate[chromedp.Void](`document.querySelector('#session-name').form.requestSubmit()`))
	b.Wait("the session offered in the form", `[...document.querySelectorAll('#place-when option')].some(o => o.value.startsWith('s:'))`, 10*time.Second)
	forbidden("scheduling for Tam Hưng", `m.api('POST', '/announcements', {content_id: '`+contentID+`', targets: {areas: ['11530'], nodes: []}, start: '2026-03-02T17:00:00+07:00', rrule: 'FREQ=DAILY'})`)
	b.Do("fill the bulletin",
		chromedp.SetValue(chromedp.CSS(`#place-content`), contentID),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-recurrence').dispatchEvent(new Event('change'))`))
	if got := MustEval[string](b, text("#place-summary")); got != "Hằng ngày trong buổi “Buổi chiều” (17:00)" {
		t.Errorf("the form says the bulletin plays %q", got)
	}
	if v := MustEval[string](b, `document.querySelector('#place-start').value`); v != "02/03/2026" {
		t.Errorf("start date %q: the console should take today from the controller's clock", v)
	}
	b.Do("schedule it", chromedp.Click(chromedp.CSS(`#place-submit`)))
	b.Wait("the bulletin in today's evening session",
		`[...document.querySelectorAll('[data-day="2026-03-02"] .session .slot')].some(s => s.innerText.includes('17:00 Bản tin chiều'))`, 15*time.Second)
	// The holiday is marked, and the daily bulletin skips it.
	if got := MustEval[string](b, text(`[data-day="2026-03-04"] .holiday`)); !strings.Contains(got, "Lễ hội đình làng") {
		t.Errorf("holiday on 4 March shows %q", got)
	}
	if n := MustEval[int](b, `document.querySelectorAll('[data-day="2026-03-04"] .slot').length`); n != 0 {
		t.Errorf("%d items on the holiday", n)
	}
	if n := MustEval[int](b, `document.querySelectorAll('[data-day="2026-03-05"] .slot').length`); n != 1 {
		t.Errorf("%d items the day after the holiday, want 1", n)
	}
	b.Shot("05-lich-phat")

	var anns struct{ Announcements []loaxa.Announcement }
	c.MustDo("GET", "/api/v1/announcements", nil, &anns)
	if len(anns.Announcements) != 1 {
		t.Fatalf("announcements: %s", rig.Describe(anns))
	}
	ann := anns.Announcements[0]
	if ann.RRule != "FREQ=DAILY" || ann.Session == "" || ann.CreatedBy != "can-bo-lap-le" || !slices.Equal(ann.Targets.Areas, []string{"11527"}) {
		t.Errorf("scheduled %s", rig.Describe(ann))
	}

	// The clusters get it, then the evening comes.
	ready := func() bool {
		for _, id := range mine {
			st := c.Node(id).Status
			if st.State != loaxa.NodeOnline || st.DesiredVersion == 0 || st.RunningVersion != st.DesiredVersion || len(st.ContentMissing) > 0 {
				return false
			}
		}
		return true
	}
	tick := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for: %s", what)
			}
			fc.Advance(100 * time.Millisecond)
			time.Sleep(5 * time.Millisecond) // let agents run; outcomes do not depend on it
		}
	}
	tick(minWait, "both clusters have the schedule and its audio", ready)
	evening := time.Date(2026, 3, 2, 17, 0, 0, 0, vn)
	occ := loaxa.OccurrenceID(ann.ID, evening)
	fc.Set(evening.Add(-time.Second))
	tick(minWait, "both clusters completed the evening bulletin", func() bool {
		done := 0
		for _, d := range c.Deliveries(ann.ID) {
			if d.Occurrence == occ && d.State == loaxa.DeliveryCompleted {
				done++
			}
		}
		return done == len(mine)
	})

	// The officer sees it played, per cluster and on the cluster's page.
	b.Go("#/deliveries/"+ann.ID, `document.querySelector('#deliveries')`)
	b.Wait("both clusters completed in the browser",
		`document.querySelectorAll('#deliveries tr[data-state=completed]').length === 2`, 10*time.Second)
	b.Shot("06-ket-qua-phat")
	// The day before's play, read back from the cluster's store after a
	// power cut damaged it, came late; the page says so.
	before := loaxa.OccurrenceID(ann.ID, evening.Add(-24*time.Hour))
	if _, _, err := c.App.Events.RecordEvents(context.Background(), "lap-le-01", protocol.EventBatch{Epoch: "0badc0de0badc0de", Salvaged: true,
		Events: []protocol.Event{{Seq: 7, Type: protocol.EventCompleted, Occurrence: before, At: evening.Add(-24 * time.Hour).Add(time.Minute), PlayedMS: 60000}}}, evening); err != nil {
		t.Fatal(err)
	}
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-plays')`)
	if got := MustEval[[]string](b, `[...document.querySelectorAll('#node-plays tr[data-occurrence="`+occ+`"]')].map(r => r.dataset.type)`); !slices.Equal(got, []string{"completed", "started", "received"}) {
		t.Errorf("cluster page lists plays %q, want completed, started, received (newest first)", got)
	}
	b.Shot("07-chi-tiet-cum-loa")
	// Each day's play received reads alike but for when it plays; before,
	// seven rows "Đã nhận lịch · Bản tin chiều" with nothing between them.
	next := loaxa.OccurrenceID(ann.ID, evening.Add(24*time.Hour))
	if got := MustEval[string](b, text(`#node-plays tr[data-type=received][data-occurrence="`+next+`"]`)); !strings.Contains(got, "sẽ phát lúc 17:00 03/03/2026") {
		t.Errorf("tomorrow's play received reads %q, without saying when it plays", got)
	}
	if got := MustEval[string](b, `document.querySelector('#node-plays tr[data-occurrence="`+before+`"]').textContent`); !strings.Contains(got, "đọc lại từ dữ liệu hỏng trên bo mạch, gửi về muộn") {
		t.Errorf("the salvaged play reads %q, without saying it was read back from a damaged store", got)
	}

	b.Go("#/reports", `document.querySelector('#report-nodes')`)
	csv := MustEval[string](b, `fetch(document.querySelector('#report-csv').href).then(r => r.text())`)
	if !strings.HasPrefix(csv, "level,id,area,name,nodes,scheduled,completed,") || !strings.Contains(csv, "node,lap-le-01,11527,") {
		t.Errorf("the report's CSV link gives:\n%s", csv)
	}
	// The month's chart counts both clusters' plays; the year's report
	// draws twelve months.
	if n := MustEval[int](b, `document.querySelectorAll('#report-nodes tbody tr').length`); n != 2 {
		t.Errorf("report lists %d clusters, want 2", n)
	}
	b.Shot("08-bao-cao")
	b.Do("make the yearly report", chromedp.Evaluate[chromedp.Void](`document.querySelector('#report-year').form.requestSubmit()`))
	b.Wait("the yearly report", `document.querySelector('#report-year-result svg.chart')`, 15*time.Second)
	if n := MustEval[int](b, `document.querySelectorAll('#report-year-result svg.chart')[0].querySelectorAll('rect.bar-done').length`); n != 12+1 {
		t.Errorf("yearly minutes chart has %d 'played' bars, want 12 months and the legend", n)
	}

	b.Go("#/emergency", `document.querySelector('main h1.emergency-title')`)
	b.Shot("12-khan-cap")
	b.Go("#/alarms", `document.querySelector('#h-open')`)
	b.Shot("13-canh-bao")

	// On a phone the menu runs across the top and the page still reads.
	b.Do("phone screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	b.Go("#/", `document.querySelector('#count-online')`)
	if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("overview on a phone is %d px wide, more than the 390 px screen", w)
	}
	b.Shot("09-dien-thoai")
	// Every screen of the officer's day reads on it without scrolling
	// sideways (tables scroll inside their own frame).
	for route, ready := range map[string]string{
		"#/clusters":             `#cluster-table`,
		"#/library":              `#upload-form`,
		"#/programme":            `#week`,
		"#/deliveries/" + ann.ID: `#deliveries`,
		"#/clusters/lap-le-01":   `#node-plays`,
		"#/reports":              `#report-nodes`,
		"#/emergency":            `main h1.emergency-title`,
		"#/alarms":               `#h-open`,
	} {
		b.Go(route, `document.querySelector('`+ready+`')`)
		if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("%s on a phone is %d px wide, more than the 390 px screen (%s)", route, w,
				MustEval[string](b, `[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.table-wrap')).slice(0, 4).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('; ')`))
		}
	}
	b.Do("desktop screen", chromedp.EmulateReset())

	// English on request, and back.
	b.Do("switch to English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("English menu", `[...document.querySelectorAll('nav.side a')].some(a => a.innerText === 'Programme')`, 10*time.Second)
	b.Wait("English scope", text("#scope")+` === 'Commune officer — Xã Lập Lễ'`, 5*time.Second)
	b.Do("switch back", chromedp.Click(chromedp.CSS(`header button.lang`)))
	b.Wait("Vietnamese menu", `[...document.querySelectorAll('nav.side a')].some(a => a.innerText === 'Lịch phát')`, 10*time.Second)

	// The administrator sees the officer's actions in the audit log and
	// enrols a board with a one-time code.
	b.Do("sign out", chromedp.Click(chromedp.CSS(`header button:not(.lang)`)))
	b.Wait("the sign-in form again", `document.querySelector('input[name=username]')`, 10*time.Second)
	b.Do("sign in as admin",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), rig.AdminPassword),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	b.Wait("the admin's scope", text("#scope")+` === 'Quản trị toàn hệ thống'`, 10*time.Second)
	b.Go("#/audit", `document.querySelector('#audit-table')`)
	b.Wait("the officer's bulletin in the audit log", `[...document.querySelectorAll('#audit-table tbody tr')].some(r => r.innerText.includes('can-bo-lap-le') && r.cells[2].innerText === 'Tạo bản tin')`, 5*time.Second)
	b.Shot("10-nhat-ky")
	b.Go("#/admin", `document.querySelector('#node-id')`)
	b.Do("enrol a board",
		chromedp.SendKeys(chromedp.CSS(`#node-id`), "lap-le-03"),
		chromedp.SendKeys(chromedp.CSS(`#node-name`), "Cụm loa chợ Lập Lễ"),
		chromedp.SetValue(chromedp.CSS(`#node-area`), "11527"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#node-id').form.requestSubmit()`))
	b.Wait("the enrolment code", text("#enrol-result")+`.match(/[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/)`, 10*time.Second)
	if n := c.Node("lap-le-03"); n.Credentials != "pending" || n.Area != "11527" {
		t.Errorf("enrolled from the console: %s", rig.Describe(n))
	}
	b.Shot("11-quan-tri")
}
