package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
)

// TestDatesInVietnameseOrderInAnEnglishBrowser: the console's date and
// time fields were the browser's own, which an English Chromium shows as
// mm/dd/yyyy and "05:00 PM". A Vietnamese officer on such a PC typed
// 02/12/2026 for 2 December and had the bulletin placed on 12 February.
// Whatever the browser's language, the fields read and write dd/mm/yyyy
// and 24-hour hh:mm, a date that does not exist is refused with the field
// named, and what the API stores is the day and time typed.
func TestDatesInVietnameseOrderInAnEnglishBrowser(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	c := rig.StartControllerOn(t, "", clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, vn)))
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.CreateNode("lap-le-01", "11527")
	addLapLeOfficer(c)
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-huyen", "password": officerPassword, "role": "district", "area": "311"}, nil)
	news := c.Upload("bao-bao.wav", rig.ToneWAV(523, 3*time.Second, 16000, 1))
	announcements := func() []loaxa.Announcement {
		var l struct{ Announcements []loaxa.Announcement }
		c.MustDo("GET", "/api/v1/announcements", nil, &l)
		return l.Announcements
	}

	b := StartBrowserIn(t, "en-US")
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/programme", `document.querySelector('#place-form')`)
	value := func(sel string) string { return MustEval[string](b, `document.querySelector('`+sel+`').value`) }
	if got := value("#place-start"); got != "30/11/2026" {
		t.Errorf("the start day shows %q, want today as 30/11/2026", got)
	}
	if got := value("#place-time"); got != "17:00" {
		t.Errorf("the time shows %q, want 17:00", got)
	}
	// typeInto types s with the keyboard into an emptied field.
	typeInto := func(sel, s string) {
		b.Do("type "+s+" into "+sel,
			chromedp.Evaluate[chromedp.Void](`document.querySelector('`+sel+`').value = ''`),
			chromedp.SendKeys(chromedp.CSS(sel), s),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('`+sel+`').dispatchEvent(new Event('change', { bubbles: true }))`))
	}
	b.Do("place a one-off bulletin",
		chromedp.SetValue(chromedp.CSS(`#place-content`), news.ID),
		chromedp.SendKeys(chromedp.CSS(`#place-title`), "Bão số 15"),
		chromedp.SetValue(chromedp.CSS(`#place-when`), "time"),
		chromedp.SetValue(chromedp.CSS(`#place-recurrence`), "once"),
		chromedp.Evaluate[chromedp.Void](`for (const id of ['#place-when', '#place-recurrence']) document.querySelector(id).dispatchEvent(new Event('change', { bubbles: true }))`))
	typeInto(`#place-start`, "02/12/2026") // 2 December, as a Vietnamese officer writes it
	typeInto(`#place-time`, "17:00")
	b.Do("schedule it", chromedp.Click(chromedp.CSS(`#place-submit`)))
	// Placed, the programme is read again and drawn anew, form and all.
	b.Wait("the bulletin on the calendar, or the form's refusal", `[...document.querySelectorAll('.slot')].some(x => x.innerText.includes('Bão số 15')) || document.querySelector('#place-status .error-box, #place-form .field-error:not([hidden])')`, 10*time.Second)
	if day := MustEval[string](b, `(([...document.querySelectorAll('.slot')].find(x => x.innerText.includes('Bão số 15')) || {}).closest?.('[data-day]') || {dataset: {}}).dataset.day || ''`); day != "2026-12-02" {
		t.Errorf("the calendar shows the bulletin on %q, want 2026-12-02", day)
	}
	anns := announcements()
	if len(anns) != 1 || !anns[0].Start.Equal(time.Date(2026, 12, 2, 17, 0, 0, 0, vn)) {
		t.Fatalf("typing 02/12/2026 and 17:00 in an English browser stored %s; want one bulletin on 2 December 2026 at 17:00 +07 (the page says %q)",
			rig.Describe(anns), MustEval[string](b, text("#place-form")))
	}

	// 31/02 is no day: the form says which field and sends nothing.
	b.Do("place one on 31/02/2026",
		chromedp.SetValue(chromedp.CSS(`#place-content`), news.ID),
		chromedp.SetValue(chromedp.CSS(`#place-when`), "time"),
		chromedp.SetValue(chromedp.CSS(`#place-recurrence`), "once"),
		chromedp.Evaluate[chromedp.Void](`for (const id of ['#place-when', '#place-recurrence']) document.querySelector(id).dispatchEvent(new Event('change', { bubbles: true }))`))
	typeInto(`#place-start`, "31/02/2026")
	b.Do("schedule it", chromedp.Click(chromedp.CSS(`#place-submit`)))
	b.Wait("the day refused", `document.querySelector('#place-start-error') && !document.querySelector('#place-start-error').hidden`, 10*time.Second)
	if got := MustEval[string](b, text("#place-start-error")); !strings.Contains(got, "Bắt đầu từ ngày") || !strings.Contains(got, "31/02/2026") {
		t.Errorf("the refusal says %q; want the field (Bắt đầu từ ngày) and what was typed named", got)
	}
	if MustEval[string](b, `document.querySelector('#place-start').getAttribute('aria-invalid') || ''`) != "true" {
		t.Error("the refused field is not marked aria-invalid")
	}
	if got := announcements(); len(got) != 1 {
		t.Errorf("after 31/02: %d bulletins, want the form refused", len(got))
	}

	// A session's time written as officers say it, "5h30".
	b.Do("name a morning session", chromedp.SetValue(chromedp.CSS(`#session-name`), "Buổi sáng"))
	typeInto(`#session-start`, "5h30")
	b.Do("add it", chromedp.Evaluate[chromedp.Void](`document.querySelector('#session-start').form.requestSubmit()`))
	var sessions struct{ Sessions []loaxa.Session }
	rig.Eventually(t, minWait, "the morning session", func() bool {
		c.MustDo("GET", "/api/v1/sessions?area=11527", nil, &sessions)
		return len(sessions.Sessions) == 1
	})
	if got := sessions.Sessions[0].Start; got != "05:30" {
		t.Errorf("5h30 stored the session at %q, want 05:30", got)
	}

	// The report's and the audit log's periods in the same order.
	b.Go("#/reports", `document.querySelector('#h-rep')`)
	if from, to := value("#report-from"), value("#report-to"); from != "01/11/2026" || to != "01/12/2026" {
		t.Errorf("the report's period shows %q – %q, want 01/11/2026 – 01/12/2026", from, to)
	}
	typeInto(`#report-from`, "1/12/2026")
	typeInto(`#report-to`, "02-12-2026")
	b.Do("ask for the report of 1–2 December", chromedp.Evaluate[chromedp.Void](`document.querySelector('#report-from').form.requestSubmit()`))
	b.Wait("the report of 1 December", text("#h-rep")+`.includes('01/12/2026') && `+text("#h-rep")+`.includes('02/12/2026')`, 10*time.Second)
	b.Go("#/programme", `document.querySelector('#place-form')`)
	b.Shot("26-ngay-thang-trinh-duyet-tieng-anh")

	// The district's officer reads the audit log of the last week.
	d := StartBrowserIn(t, "en-US")
	defer d.checkErrors()
	d.SignIn(c.URL, "can-bo-huyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	d.Go("#/audit", `document.querySelector('#audit-table')`)
	from := MustEval[string](d, `document.querySelector('#audit-from').value`)
	to := MustEval[string](d, `document.querySelector('#audit-to').value`)
	if from != "23/11/2026" || to != "30/11/2026" {
		t.Errorf("the audit log's period shows %q – %q, want 23/11/2026 – 30/11/2026", from, to)
	}
	// The bulletin's start in its entry, as every time is shown; before,
	// the API's "start=2026-12-02T10:00:00Z", seven hours off in UTC.
	got := MustEval[string](d, `([...document.querySelectorAll('#audit-table tbody tr')].find(r => r.cells[2].innerText === 'Tạo bản tin') || {innerText: ''}).innerText`)
	if !strings.Contains(got, "Bắt đầu: 17:00 02/12/2026") || strings.Contains(got, "T10:00") {
		t.Errorf("the bulletin's entry in the audit log reads %q, want its start as 17:00 02/12/2026", got)
	}
}
