package console

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/tts"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
)

// TestRarerRefusalsSaidInVietnamese: refusals an officer meets less often
// showed a Vietnamese heading followed by the API's English ("Thông tin
// chưa đúng. until 2026-03-03T23:59:00+07:00 is not after start; …",
// "Bị trùng hoặc xung đột. Proposal p000001 was already declined by …",
// "Dịch vụ tạm thời không sẵn sàng. Text-to-speech is not available: …").
// Each must be said wholly in Vietnamese: an end date before the first
// play, or already past, before anything is sent; a proposal a colleague
// decided meanwhile from the 409's proposal (who, what, when); and speech
// without espeak-ng from the answer's reason. So are a weekly rule with
// no chosen day between its start and end dates and a relay address that
// is not http:// or https:// (both before anything is sent), and an upload
// over the limit (413), that is not audio (415) or that has no sound
// (400, "Thông tin chưa đúng. … is silent: …"), and an administrator's
// new user, area or cluster whose id is in use (409), from the answer's
// reason. One page session for all, as each browser test costs seconds of
// the suite.
func TestRarerRefusalsSaidInVietnamese(t *testing.T) {
	t.Parallel()
	c, evening, news := lapLeWithEvening(t) // 2 March 2026, 09:00
	// The controller's espeak-ng is missing, as on a host where it was never
	// installed; set before the browser's first request.
	c.App.HTTP.SpeechEngine = &tts.Espeak{Command: "/nonexistent/espeak-ng"}
	c.App.HTTP.MaxUploadBytes = 64 << 10
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "pho-ban-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	var fromDistrict struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	asUser(c, "can-bo-huyen", func() {
		c.MustDo("POST", "/api/v1/announcements", map[string]any{"title": "Thông báo của huyện", "content_id": news.ID, "priority": "normal",
			"targets": map[string][]string{"areas": {"11527"}, "nodes": {}}, "start": "2026-03-02T17:00:00+07:00"}, &fromDistrict)
	})
	if len(fromDistrict.Proposals) != 1 {
		t.Fatalf("the district's bulletin made proposals %s; want one to Lập Lễ", rig.Describe(fromDistrict.Proposals))
	}

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/programme", `document.querySelector('#place-form') && document.querySelector('#proposals li button')`)

	// The end date, in the evening session, daily or on Sundays; then a
	// relay from an RTSP address.
	for _, tc := range []struct{ name, source, stream, rec, start, until, want string }{
		{"an end date before the first play", "content", "", "daily", "05/03/2026", "03/03/2026",
			"Ngày kết thúc 03/03/2026 phải sau lần phát đầu tiên (17:00 ngày 05/03/2026). Chọn ngày kết thúc muộn hơn, hoặc để trống để lặp lại không thời hạn."},
		{"an end date already past", "content", "", "daily", "20/02/2026", "28/02/2026",
			"Ngày kết thúc 28/02/2026 đã qua (hôm nay là 02/03/2026): bản tin sẽ không phát lần nào. Chọn ngày kết thúc muộn hơn, hoặc để trống để lặp lại không thời hạn."},
		{"no Sunday from Tuesday to Saturday", "content", "", "weekly", "03/03/2026", "07/03/2026",
			"Từ 03/03/2026 đến ngày kết thúc 07/03/2026 không có ngày nào bản tin phát (Chủ nhật): bản tin sẽ không phát lần nào. Chọn thêm ngày trong tuần, hoặc ngày kết thúc muộn hơn."},
		{"a relay from an RTSP address", "relay", "rtsp://radio.thuynguyen.vn/vov1", "daily", "03/03/2026", "31/03/2026",
			"Địa chỉ luồng “rtsp://radio.thuynguyen.vn/vov1” không dùng được: hãy nhập địa chỉ bắt đầu bằng http:// hoặc https:// của luồng phát (ví dụ luồng Icecast MP3 của đài)."},
	} {
		b.Do("place a bulletin with "+tc.name,
			chromedp.SetValue(chromedp.CSS(`#place-source`), tc.source),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-stream').value = `+strconv.Quote(tc.stream)),
			chromedp.SetValue(chromedp.CSS(`#place-content`), news.ID),
			chromedp.SetValue(chromedp.CSS(`#place-when`), "s:"+evening.ID),
			chromedp.SetValue(chromedp.CSS(`#place-recurrence`), tc.rec),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-day-SU').checked = true`),
			chromedp.SetValue(chromedp.CSS(`#place-start`), tc.start),
			chromedp.SetValue(chromedp.CSS(`#place-until`), tc.until),
			chromedp.Evaluate[chromedp.Void](`for (const id of ['#place-source', '#place-when', '#place-recurrence', '#place-start', '#place-until']) document.querySelector(id).dispatchEvent(new Event('change', { bubbles: true }))`),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-status').replaceChildren()`),
			chromedp.Click(chromedp.CSS(`#place-submit`)))
		b.Wait("the refusal", `document.querySelector('#place-status .error-box')`, 10*time.Second)
		if got := MustEval[string](b, text("#place-status")); got != tc.want {
			t.Errorf("%s: the form says\n%q, want\n%q", tc.name, got, tc.want)
		}
	}
	var anns struct{ Announcements []loaxa.Announcement }
	c.MustDo("GET", "/api/v1/announcements", nil, &anns)
	if len(anns.Announcements) != 1 {
		t.Errorf("bulletins: %s; want the district's alone, nothing placed", rig.Describe(anns.Announcements))
	}

	// A colleague declines the district's bulletin while the page still
	// offers it.
	p := fromDistrict.Proposals[0]
	asUser(c, "pho-ban-lap-le", func() {
		c.MustDo("POST", "/api/v1/proposals/"+p.ID+"/decline", map[string]any{}, nil)
	})
	b.Do("accept the proposal", chromedp.Click(chromedp.CSS(`#proposals li button`)))
	b.Wait("the refusal", `document.querySelector('#proposal-decided-`+p.ID+`')`, 10*time.Second)
	want := "Đề xuất này đã bị pho-ban-lap-le từ chối lúc 09:00 ngày 02/03/2026; không còn gì phải quyết định."
	if got := MustEval[string](b, text("#proposal-decided-"+p.ID)); got != want {
		t.Errorf("accepting a proposal a colleague declined: the page says\n%q, want\n%q", got, want)
	}
	if n := MustEval[int](b, `document.querySelectorAll('#proposals li button').length`); n != 0 {
		t.Errorf("the decided proposal still offers %d buttons", n)
	}

	// Text read out without espeak-ng.
	b.Go("#/library", `document.querySelector('#tts-text')`)
	b.Do("read a text out",
		chromedp.SetValue(chromedp.CSS(`#tts-text`), "Kính gửi bà con thôn Đông."),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#tts-form').requestSubmit()`))
	b.Wait("the refusal", `document.querySelector('#tts-preview .error-box')`, 10*time.Second)
	want = "Máy chủ chưa đọc được văn bản thành giọng nói: chưa cài phần mềm đọc espeak-ng. Hãy dùng hoặc tải lên một bản ghi âm, và báo quản trị viên cài espeak-ng."
	if got := MustEval[string](b, text("#tts-preview")); got != want {
		t.Errorf("text-to-speech without espeak-ng: the form says\n%q, want\n%q", got, want)
	}

	// Uploads over the limit (64 KiB here) or not audio.
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"a recording over the limit", "ban-tin-dai.wav", rig.ToneWAV(440, 3*time.Second, 16000, 1),
			"Tệp lớn hơn giới hạn tải lên của máy chủ. Hãy gửi bản ghi ngắn hơn, hoặc lưu lại dưới dạng MP3 cho nhẹ hơn."},
		{"a text file", "thong-bao.txt", []byte("Thông báo họp thôn lúc 8 giờ sáng mai."),
			"Tệp này không phải âm thanh WAV hay MP3. Hãy chọn tệp ghi âm WAV hoặc MP3 (có thể chuyển đổi bằng phần mềm ghi âm trên máy tính hoặc điện thoại)."},
		{"a recording made with the microphone off", "ban-tin-im-lang.wav", rig.PCMWAV(make([]int16, 8000), 16000, 1),
			"Tệp này không có tiếng: tệp trống, hoặc bản ghi im lặng (có thể micrô bị tắt hay để quá xa). Hãy nghe lại bản ghi, ghi âm lại nếu cần, rồi tải lên lại."},
	} {
		path := filepath.Join(dir, tc.file)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		b.Do("upload "+tc.name,
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#upload-status').replaceChildren()`),
			chromedp.SetUploadFiles(chromedp.CSS(`#upload-file`), []string{path}),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#upload-form').requestSubmit()`))
		b.Wait("the refusal", `document.querySelector('#upload-status .error-box')`, 10*time.Second)
		if got := MustEval[string](b, text("#upload-status")); got != tc.want {
			t.Errorf("%s: the form says\n%q, want\n%q", tc.name, got, tc.want)
		}
	}

	// The administrator's forms, with an id in use.
	b.Do("sign out", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('header.top button')].find((e) => e.textContent === 'Đăng xuất').click()`))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	b.SignIn(c.URL, "admin", rig.AdminPassword, "Quản trị toàn hệ thống")
	b.Go("#/admin", `document.querySelector('#node-id')`)
	for _, tc := range []struct{ name, form, status, set, want string }{
		{"a username in use", "#user-name", "#user-status",
			`document.querySelector('#user-name').value = 'can-bo-lap-le'; document.querySelector('#user-password').value = 'mat-khau-moi-2026'`,
			"Tên đăng nhập này đã có người dùng; hãy chọn tên khác."},
		{"an area id in use", "#area-id", "#area-status",
			`document.querySelector('#area-id').value = '11527'; document.querySelector('#area-name').value = 'Xã Lập Lễ mới'`,
			"Mã địa bàn này đã có; hãy chọn mã khác, hoặc dùng địa bàn đã có."},
		{"a cluster id in use", "#node-id", "#enrol-status",
			`document.querySelector('#node-id').value = 'lap-le-01'; document.querySelector('#node-name').value = 'Cụm loa mới'`,
			"Mã cụm loa này đã có; hãy chọn mã khác."},
	} {
		b.Do("submit "+tc.name,
			chromedp.Evaluate[chromedp.Void](tc.set),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('`+tc.form+`').form.requestSubmit()`))
		b.Wait("the refusal", `document.querySelector('`+tc.status+` .error-box')`, 10*time.Second)
		if got := MustEval[string](b, text(tc.status)); got != tc.want {
			t.Errorf("%s: the form says\n%q, want\n%q", tc.name, got, tc.want)
		}
	}
}

// TestBulletinAndSessionRefusalsSaidInVietnamese: the refusals of the
// bulletin and session forms that the console cannot see coming showed
// the API's English behind a heading ("Thông tin chưa đúng. start
// 2027-03-03T17:00:00+07:00 is more than a year ahead; …", "Không tìm
// thấy. There is no session "s000001"; …"). Each is said wholly in
// Vietnamese from the answer's reason, the API's sentence as the tooltip:
// a first play next year, a daily bulletin started the year before last
// or with no play left today, and the evening session a colleague deleted
// while the page still offers it, as a bulletin's session, as the session
// a proposal from the district is accepted into (a toast), and edited; and
// a one-off whose time has passed by the controller's clock but not by
// the page's copy of it, taken at sign-in; and the officer's bulletin for
// the market's cluster, cancelled after the cluster moved to the next
// commune, which was "Bạn không có quyền làm việc này ở địa bàn này.
// Announcement a000001 does not play in your area "11527"." with no
// tooltip.
func TestBulletinAndSessionRefusalsSaidInVietnamese(t *testing.T) {
	t.Parallel()
	c, evening, news := lapLeWithEvening(t) // 2 March 2026, 09:00
	market := marketBulletin(c, news)
	var fromDistrict struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	asUser(c, "can-bo-huyen", func() {
		c.MustDo("POST", "/api/v1/announcements", map[string]any{"title": "Thông báo của huyện", "content_id": news.ID, "priority": "normal",
			"targets": map[string][]string{"areas": {"311"}, "nodes": {}}, "start": "2026-03-02T17:00:00+07:00"}, &fromDistrict)
	})
	if len(fromDistrict.Proposals) != 1 {
		t.Fatalf("the district's bulletin made proposals %s; want one to Lập Lễ", rig.Describe(fromDistrict.Proposals))
	}
	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/programme", `document.querySelector('#place-form') && document.querySelector('button[data-edit="`+evening.ID+`"]') && document.querySelector('#proposals li select')`)
	// A colleague deletes the evening session; this page still offers it.
	c.MustDo("DELETE", "/api/v1/sessions/"+evening.ID, nil, nil)

	for _, tc := range []struct{ name, when, rec, time, start, until, want string }{
		{"a one-off next year", "time", "once", "17:00", "03/03/2027", "",
			"Ngày phát cách hôm nay hơn một năm: chỉ đặt lịch được trong vòng một năm tới; bản tin chưa được đặt lịch. Hãy chọn ngày gần hơn (xem lại năm đã nhập)."},
		{"every day since the year before last", "time", "daily", "17:00", "01/03/2025", "",
			"Ngày bắt đầu của lịch lặp lại đã cách đây hơn một năm; bản tin chưa được đặt lịch. Hãy chọn ngày bắt đầu là hôm nay hoặc một ngày sau đó (xem lại năm đã nhập)."},
		{"every day at 08:00 until today", "time", "daily", "08:00", "02/03/2026", "02/03/2026",
			"Lịch lặp lại này không còn lần phát nào từ bây giờ trở đi (theo giờ của địa bàn): các lần phát trước ngày kết thúc đều đã qua, nên loa sẽ không phát; bản tin chưa được đặt lịch. Hãy chọn ngày kết thúc muộn hơn, hoặc để trống để lặp lại không thời hạn."},
		{"the deleted session", "s:" + evening.ID, "once", "17:00", "02/03/2026", "",
			"Buổi phát này không còn nữa: nó đã bị xoá (có thể do một cán bộ khác, hoặc từ một trang khác) sau khi trang này được mở; chưa có gì được thực hiện. Hãy tải lại trang rồi chọn buổi phát khác, hoặc thêm lại buổi phát."},
	} {
		b.Do("place "+tc.name,
			chromedp.SetValue(chromedp.CSS(`#place-content`), news.ID),
			chromedp.SetValue(chromedp.CSS(`#place-when`), tc.when),
			chromedp.SetValue(chromedp.CSS(`#place-recurrence`), tc.rec),
			chromedp.SetValue(chromedp.CSS(`#place-time`), tc.time),
			chromedp.SetValue(chromedp.CSS(`#place-start`), tc.start),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-until').value = `+strconv.Quote(tc.until)),
			chromedp.Evaluate[chromedp.Void](`for (const id of ['#place-when', '#place-recurrence', '#place-time', '#place-start', '#place-until']) document.querySelector(id).dispatchEvent(new Event('change', { bubbles: true }))`),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-status').replaceChildren()`),
			chromedp.Click(chromedp.CSS(`#place-submit`)))
		b.Wait("the refusal", `document.querySelector('#place-status .error-box')`, 10*time.Second)
		if got := MustEval[string](b, text("#place-status")); got != tc.want {
			t.Errorf("%s: the form says\n%q, want\n%q", tc.name, got, tc.want)
		}
		if tip := MustEval[string](b, `document.querySelector('#place-status .error-box').title`); tip == "" {
			t.Errorf("%s: the refusal has no tooltip; want the API's sentence", tc.name)
		}
	}
	var anns struct{ Announcements []loaxa.Announcement }
	c.MustDo("GET", "/api/v1/announcements", nil, &anns)
	if len(anns.Announcements) != 2 {
		t.Errorf("bulletins: %s; want the district's and the market's alone, none placed", rig.Describe(anns.Announcements))
	}

	// The district's bulletin, accepted into the deleted session.
	b.Do("accept the proposal into the deleted session",
		chromedp.SetValue(chromedp.CSS(`#proposals li select`), evening.ID),
		chromedp.Click(chromedp.CSS(`#proposals li button`)))
	b.Wait("the refusal", `document.querySelector('#toasts .toast.bad')`, 10*time.Second)
	gone := "Buổi phát này không còn nữa: nó đã bị xoá (có thể do một cán bộ khác, hoặc từ một trang khác) sau khi trang này được mở; chưa có gì được thực hiện. Hãy tải lại trang rồi chọn buổi phát khác, hoặc thêm lại buổi phát."
	// Its words and tooltip at once: a toast goes by itself after 9 s.
	toast := MustEval[[]string](b, `(() => { const el = document.querySelector('#toasts .toast.bad'); return [el.textContent, el.title]; })()`)
	if toast[0] != gone {
		t.Errorf("accepting into a deleted session: the toast says\n%q, want\n%q", toast[0], gone)
	}
	if !strings.Contains(toast[1], `Session "`+evening.ID+`" does not exist`) {
		t.Errorf("accepting into a deleted session: the toast's tooltip is %q; want the API's sentence", toast[1])
	}

	// The deleted session, moved to 18:00.
	b.Do("move the deleted session", chromedp.Click(chromedp.CSS(`button[data-edit="`+evening.ID+`"]`)),
		chromedp.SetValue(chromedp.CSS(`#session-start`), "18:00"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#session-start').dispatchEvent(new Event('change', { bubbles: true }))`),
		chromedp.Click(chromedp.CSS(`#session-submit`)))
	b.Wait("the refusal", `document.querySelector('#session-status .error-box')`, 10*time.Second)
	if got := MustEval[string](b, text("#session-status")); got != gone {
		t.Errorf("moving a deleted session: the form says\n%q, want\n%q", got, gone)
	}

	// An hour later by the controller's clock, which the page took at
	// sign-in: a one-off at 09:30 today is past for the controller only.
	c.App.Clock.(*clock.Fake).Advance(time.Hour)
	b.Do("place a one-off at 09:30 today",
		chromedp.SetValue(chromedp.CSS(`#place-content`), news.ID),
		chromedp.SetValue(chromedp.CSS(`#place-when`), "time"),
		chromedp.SetValue(chromedp.CSS(`#place-recurrence`), "once"),
		chromedp.SetValue(chromedp.CSS(`#place-time`), "09:30"),
		chromedp.SetValue(chromedp.CSS(`#place-start`), "02/03/2026"),
		chromedp.Evaluate[chromedp.Void](`for (const id of ['#place-when', '#place-recurrence', '#place-time', '#place-start']) document.querySelector(id).dispatchEvent(new Event('change', { bubbles: true }))`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-status').replaceChildren()`),
		chromedp.Click(chromedp.CSS(`#place-submit`)))
	b.Wait("the refusal", `document.querySelector('#place-status .error-box')`, 10*time.Second)
	want := "Giờ phát đã qua theo đồng hồ của máy chủ (giờ của địa bàn) lúc bản tin được gửi đi; bản tin chưa được đặt lịch. Hãy chọn giờ hoặc ngày muộn hơn. Nếu trang này đã mở từ lâu, hãy tải lại trang để lấy lại giờ của máy chủ."
	if got := MustEval[string](b, text("#place-status")); got != want {
		t.Errorf("a one-off past by the controller's clock only: the form says\n%q, want\n%q", got, want)
	}

	// The market's cluster moves to Tam Hưng; this page still offers
	// to cancel its bulletin.
	c.MustDo("PATCH", "/api/v1/nodes/lap-le-01", map[string]any{"area": "11530"}, nil)
	b.Do("dismiss the toasts", chromedp.Evaluate[chromedp.Void](`document.querySelector('#toasts').replaceChildren()`))
	b.Do("cancel the market's bulletin", chromedp.Click(chromedp.CSS(`tr[data-announcement="`+market.ID+`"] button`)))
	confirmDanger(b, "confirm")
	b.Wait("the refusal", `document.querySelector('#toasts .toast.bad')`, 10*time.Second)
	toast = MustEval[[]string](b, `(() => { const el = document.querySelector('#toasts .toast.bad'); return [el.textContent, el.title]; })()`)
	want = "Bản tin này không phát ở nơi nào trong địa bàn của bạn (có thể cụm loa nhận bản tin đã được chuyển sang địa bàn khác, hoặc địa bàn của tài khoản bạn vừa được thay đổi, sau khi trang này được mở); chưa có gì được thực hiện. Hãy tải lại trang; nếu bản tin vẫn cần huỷ, hãy nhờ cán bộ phụ trách địa bàn nơi bản tin phát."
	if toast[0] != want {
		t.Errorf("cancelling the bulletin of a cluster moved away: the toast says\n%q, want\n%q", toast[0], want)
	}
	if !strings.Contains(toast[1], "Announcement "+market.ID+" does not play in your area") {
		t.Errorf("cancelling the bulletin of a cluster moved away: the toast's tooltip is %q; want the API's sentence", toast[1])
	}
}

// TestResultsOfABulletinPlayingElsewhere: the commune officer's bulletin
// for the market's cluster, whose results page was open (or kept as a
// link, as the cluster's plays and the overview give it) when the cluster
// moved to the next commune. The page then said the cancel's words,
// "… chưa có gì được thực hiện. Hãy tải lại trang; nếu bản tin vẫn cần
// huỷ, …", to an officer who had cancelled nothing. It now says, as a
// results page, that the bulletin plays nowhere in their area, so its
// results are not theirs to see, and who can see them; the API's
// sentence is the tooltip.
func TestResultsOfABulletinPlayingElsewhere(t *testing.T) {
	t.Parallel()
	c, _, news := lapLeWithEvening(t) // 2 March 2026, 09:00
	market := marketBulletin(c, news)
	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/deliveries/"+market.ID, `document.querySelector('#delivery-counts')`)
	c.MustDo("PATCH", "/api/v1/nodes/lap-le-01", map[string]any{"area": "11530"}, nil)
	b.Go("#/programme", `document.querySelector('#place-form')`)
	b.Go("#/deliveries/"+market.ID, `document.querySelector('main .error-box')`)
	box := MustEval[[]string](b, `(() => { const el = document.querySelector('main .error-box'); return [el.innerText, el.title]; })()`)
	want := "Bản tin này không phát ở nơi nào trong địa bàn của bạn (có thể cụm loa nhận bản tin đã được chuyển sang địa bàn khác, hoặc địa bàn của tài khoản bạn vừa được thay đổi), nên bạn không xem được kết quả phát của bản tin này. Cán bộ phụ trách địa bàn nơi bản tin phát xem được kết quả đó; hãy hỏi họ nếu cần."
	if box[0] != want {
		t.Errorf("the results page of a bulletin playing elsewhere says\n%q, want\n%q", box[0], want)
	}
	if !strings.Contains(box[1], "Announcement "+market.ID+" does not play in your area") {
		t.Errorf("its tooltip is %q; want the API's sentence", box[1])
	}
}

// marketBulletin is the Lập Lễ officer's bulletin for the market's
// cluster, lap-le-01, the next evening; and beside the commune, Tam Hưng,
// where the cluster may be moved.
func marketBulletin(c *rig.Controller, news *loaxa.Content) loaxa.Announcement {
	c.CreateArea("11530", "Xã Tam Hưng", "311")
	var market loaxa.Announcement
	asUser(c, "can-bo-lap-le", func() {
		c.MustDo("POST", "/api/v1/announcements", map[string]any{"title": "Thông báo họp chợ", "content_id": news.ID, "priority": "normal",
			"targets": map[string][]string{"areas": {}, "nodes": {"lap-le-01"}}, "start": "2026-03-03T18:00:00+07:00"}, &market)
	})
	return market
}
