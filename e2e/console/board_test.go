package console

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/node/audio"
)

// provinceDrill enrols n clusters, none of them connected, in the
// communes areaOf names (areas under province 31 that exist), adds the
// province officer can-bo-tinh, and sends a drill to the whole province.
func provinceDrill(tb testing.TB, c *rig.Controller, n int, areaOf func(i int) string) loaxa.Emergency {
	tb.Helper()
	for from := 0; from < n; from += 1000 {
		reqs := make([]map[string]any, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			id := fmt.Sprintf("cum-%05d", i)
			reqs = append(reqs, map[string]any{"id": id, "name": "Cụm loa " + id, "area": areaOf(i), "lat": 20.8, "lon": 106.7})
		}
		c.MustDo("POST", "/api/v1/nodes/batch", map[string]any{"nodes": reqs}, nil)
	}
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-tinh", "password": officerPassword, "role": "province", "area": "31"}, nil)
	ct := c.Upload("bao.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "drill": true}, &em)
	return em
}

// emulatePhone shows pages as on a phone: a 412 × 915 portrait screen,
// touch, and (slowdown > 1) the page's processor slowed down that many
// times (Chromium's CPU throttling).
func emulatePhone(br *Browser, slowdown float64) {
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(412, 915, chromedp.EmulateScale(2.625), chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch),
	}
	if slowdown > 1 {
		steps = append(steps, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetCPUThrottlingRate, emulation.SetCPUThrottlingRateParams{Rate: slowdown})
			return err
		}))
	}
	br.Do("emulate a phone", steps...)
}

// TestEmergencyBoardOfAProvince: a province's alert to 1,000 clusters,
// none connected, in two communes (600 and 400). The board opens on the
// commune with the most clusters not reached, so the officer sees it
// first and a phone does not build 1,000 rows; the filter says how many
// clusters every area holds and shows them all when chosen; a commune's
// name in the count by area shows its clusters.
func TestEmergencyBoardOfAProvince(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("31001", "Xã Lập Lễ", "31")
	c.CreateArea("31002", "Xã Tam Hưng", "31")
	em := provinceDrill(t, c, 1000, func(i int) string {
		if i%5 < 2 {
			return "31001" // 400 of them
		}
		return "31002"
	})

	br := StartBrowser(t)
	emulatePhone(br, 1) // as an officer away from the office reads it
	br.SignIn(c.URL, "can-bo-tinh", officerPassword, "Cán bộ thành phố Hải Phòng")
	br.Go("#/emergency/"+em.ID, `document.querySelector('#ack-board')`)
	if w := MustEval[int](br, `document.documentElement.scrollWidth`); w > 412 {
		t.Errorf("the board is %d px wide on a 412 px screen: the page scrolls sideways", w)
	}
	br.ScreenShot("22-bang-tinh-dien-thoai")
	// The cluster table shows one commune: no area column, and the detail
	// on the screen.
	if right := MustEval[float64](br, `document.querySelector('#ack-board thead th:last-child').getBoundingClientRect().right`); right > 412 {
		t.Errorf("the cluster table's detail ends %.0f px from the left of a 412 px screen", right)
	}
	// Theo địa bàn: what is wrong (not reached, offline, failed) shows
	// on the phone's screen without scrolling the table.
	for _, col := range []string{"not-reached", "offline", "failed"} {
		if right := MustEval[float64](br, `document.querySelector('#em-areas tbody tr td.s-`+col+`').getBoundingClientRect().right`); right > 412 {
			t.Errorf("Theo địa bàn: the %s column ends %.0f px from the left of a 412 px screen", col, right)
		}
	}
	// The board's stream begins from the report it loaded (its resume
	// token): no cluster is connected, so nothing changed, and its first
	// burst carries none of the 1,000 again.
	br.Wait("the stream's first burst", `Number(document.querySelector('main').dataset.streamBursts || 0) >= 1`, 20*time.Second)
	if n := MustEval[string](br, `document.querySelector('main').dataset.streamNodes || '0'`); n != "0" {
		t.Errorf("the stream's first burst sent %s clusters the board had just loaded, want none", n)
	}
	shown := func() (int, string) {
		return MustEval[int](br, `document.querySelectorAll('#ack-board tbody tr').length`),
			MustEval[string](br, `[...new Set([...document.querySelectorAll('#ack-board tbody tr')].map(r => r.dataset.area))].join(',')`)
	}
	if n, areas := shown(); n != 600 || areas != "31002" || MustEval[string](br, `document.querySelector('#em-area-filter').value`) != "31002" {
		t.Errorf("the board opened with %d rows of %q, want Tam Hưng's 600", n, areas)
	}
	if got := MustEval[string](br, `document.querySelector('#em-area-filter option[value=""]').textContent`); got != "Tất cả địa bàn (1.000 cụm loa)" {
		t.Errorf("the filter's every-area choice reads %q", got)
	}
	br.Do("choose Lập Lễ by its name", chromedp.Click(chromedp.CSS(`#em-areas tr[data-area="31001"] button`)))
	if n, areas := shown(); n != 400 || areas != "31001" {
		t.Errorf("after choosing Lập Lễ: %d rows of %q, want its 400", n, areas)
	}
	br.Do("show every area", chromedp.SetValue(chromedp.CSS(`#em-area-filter`), ""),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#em-area-filter').dispatchEvent(new Event('change'))`))
	// Built 500 rows at a time.
	br.Wait("every area's 1,000 rows", `document.querySelectorAll('#ack-board tbody tr').length === 1000`, 20*time.Second)
	if n, areas := shown(); n != 1000 || areas != "31001,31002" {
		t.Errorf("every area: %d rows of %q, want 1000 of both communes", n, areas)
	}
	if !MustEval[bool](br, `getComputedStyle(document.querySelector('#ack-board thead th:nth-child(2)')).display !== 'none'`) {
		t.Error("every area: the area column is hidden")
	}
	// Going back to one commune while rows are still being built leaves
	// only its rows, each once.
	br.Do("every area, then Lập Lễ at once", chromedp.Evaluate[chromedp.Void](`(() => {
		const pick = document.querySelector('#em-area-filter');
		pick.value = ''; pick.dispatchEvent(new Event('change'));
		pick.value = '31001'; pick.dispatchEvent(new Event('change'));
		setTimeout(() => { document.body.dataset.sliced = 'yes'; }, 100); // after the first drawing's next slice was due
	})()`))
	br.Wait("the first drawing's next slice", `document.body.dataset.sliced === 'yes'`, 20*time.Second)
	if n, areas := shown(); n != 400 || areas != "31001" {
		t.Errorf("after every area then Lập Lễ: %d rows of %q, want its 400", n, areas)
	}
	if dup := MustEval[int](br, `(() => { const ids = [...document.querySelectorAll('#ack-board tbody tr')].map(r => r.dataset.node); return ids.length - new Set(ids).size; })()`); dup != 0 {
		t.Errorf("%d rows drawn twice", dup)
	}
	br.CheckAccessible("a province's board")
}

// BenchmarkEmergencyBoard measures a province officer's board of an
// alert to LOAXA_BENCH_BOARD_NODES clusters (default 10,000) in 100
// communes, none of them connected (every one "offline"): the time from
// opening the board until the table shows its first rows (from 1,000
// clusters on, one commune's: the one with the most not reached), the
// page's JavaScript heap then, choosing another commune in the table's
// filter, and choosing every area (the first rows, in the page, and all of
// them, seen through the browser's protocol); the report's bytes on the
// wire (compressed) and as JSON; and when the live stream's first burst
// was shown (from opening the board, in the page) with how many clusters
// it carried.
//
//	LOAXA_BENCH_BOARD_NODES=10000 go test -count=1 -run '^$' -bench EmergencyBoard -benchtime 3x ./e2e/console
//
// LOAXA_BENCH_BOARD_PHONE=4 shows the board as on a phone: a 412 × 915
// portrait screen and the page's processor slowed down 4 times
// (Chromium's CPU throttling; Lighthouse takes 4 for a mid-range phone).
// LOAXA_BENCH_BOARD_KBPS=5000 puts the browser on a link of that many
// kbit/s down, a third of it up, with 50 ms latency (a commune's 4G).
func BenchmarkEmergencyBoard(b *testing.B) {
	n := 10000
	if v := os.Getenv("LOAXA_BENCH_BOARD_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LOAXA_BENCH_BOARD_NODES=%q", v)
		}
	}
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	const communes = 100
	for i := range communes {
		c.CreateArea(fmt.Sprintf("31%03d", i), fmt.Sprintf("Xã %03d", i), "31")
	}
	em := provinceDrill(b, c, n, func(i int) string { return fmt.Sprintf("31%03d", i%communes) })

	br := StartBrowser(b)
	if v := os.Getenv("LOAXA_BENCH_BOARD_PHONE"); v != "" {
		rate, err := strconv.ParseFloat(v, 64)
		if err != nil || rate < 1 {
			b.Fatalf("LOAXA_BENCH_BOARD_PHONE=%q: give the slowdown, 1 or more", v)
		}
		emulatePhone(br, rate)
	}
	br.SignIn(c.URL, "can-bo-tinh", officerPassword, "Cán bộ thành phố Hải Phòng")
	if v := os.Getenv("LOAXA_BENCH_BOARD_KBPS"); v != "" {
		kbps, err := strconv.ParseFloat(v, 64)
		if err != nil || kbps <= 0 {
			b.Fatalf("LOAXA_BENCH_BOARD_KBPS=%q: give the link's kbit/s down", v)
		}
		br.EmulateLink("throttle the link", &network.Conditions{Latency: 50, DownloadThroughput: kbps * 1000 / 8, UploadThroughput: kbps * 1000 / 8 / 3})
	}
	first := n // rows the board opens with
	if n >= 1000 {
		first = n / communes
	}
	shown := func() int {
		return MustEval[int](br, `[...document.querySelectorAll('#ack-board tbody tr')].filter(r => !r.hidden).length`)
	}
	// choose picks an area in the filter: the page's time to redraw the
	// table and lay it out, measured in the page (so without the round
	// trips of the browser's protocol, which a phone does not have).
	choose := func(area string) time.Duration {
		ms := MustEval[float64](br, fmt.Sprintf(`(() => {
			const t0 = performance.now(), pick = document.querySelector('#em-area-filter');
			pick.value = %q;
			pick.dispatchEvent(new Event('change'));
			document.body.offsetHeight;
			return performance.now() - t0;
		})()`, area))
		return time.Duration(ms * float64(time.Millisecond))
	}
	var heap, fetchMS, transferKB, bodyKB, streamMS, streamNodes float64
	var filter, allFirst, all time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		br.Go("#/overview", `document.querySelector('#count-never')`)
		b.StartTimer()
		br.Do("open the board", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.openedAt = performance.now(); location.hash = %q`, "#/emergency/"+em.ID)))
		br.Wait("the board's first rows", `document.querySelectorAll('#ack-board tbody tr').length === `+strconv.Itoa(first), 2*time.Minute)
		b.StopTimer()
		br.Wait("the stream's first burst", `Number(document.querySelector('main').dataset.streamBursts || 0) >= 1`, 2*time.Minute)
		streamMS = MustEval[float64](br, `Number(document.querySelector('main').dataset.streamFirstAt) - window.openedAt`)
		streamNodes = MustEval[float64](br, `Number(document.querySelector('main').dataset.streamNodes || 0)`)
		heap = MustEval[float64](br, `performance.memory ? performance.memory.usedJSHeapSize : 0`)
		report := `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/emergency/` + em.ID + `') && !e.name.includes('stream'))`
		fetchMS = MustEval[float64](br, report+`.map(e => e.duration).pop() || 0`)
		transferKB = MustEval[float64](br, report+`.map(e => e.transferSize).pop() || 0`) / 1e3
		bodyKB = MustEval[float64](br, report+`.map(e => e.decodedBodySize).pop() || 0`) / 1e3
		filter = choose("31007")
		if got := shown(); got != n/communes {
			b.Fatalf("%d rows shown for one commune, want %d", got, n/communes)
		}
		t0 := time.Now()
		allFirst = choose("")
		br.Wait("every area's rows", `document.querySelectorAll('#ack-board tbody tr').length === `+strconv.Itoa(n), 2*time.Minute)
		all = time.Since(t0)
		b.StartTimer()
	}
	b.ReportMetric(heap/1e6, "heap-MB")
	b.ReportMetric(fetchMS, "report-fetch-ms")
	b.ReportMetric(transferKB, "report-transfer-KB")
	b.ReportMetric(bodyKB, "report-body-KB")
	b.ReportMetric(float64(filter.Milliseconds()), "filter-ms")
	b.ReportMetric(float64(allFirst.Milliseconds()), "all-first-ms")
	b.ReportMetric(float64(all.Milliseconds()), "all-ms")
	b.ReportMetric(streamMS, "stream-first-ms")
	b.ReportMetric(streamNodes, "stream-nodes")
}

// TestEmergencyFromAPhone: a district officer away from the office sends a
// drill from a phone's screen: the form fits the screen (no sideways
// scroll), the district is chosen with a tap, the confirmation and the
// board come as on a desktop, and the commune's cluster sounds it. The
// confirmation names the clusters that are online but report they have no
// sound device, so the officer warns those places by other means: one of
// them came online while the form was open, and the confirmation counts
// from the cluster list read again as the officer sends. When that list
// does not come, it counts from the list read as the form opened and says
// from when.
func TestEmergencyFromAPhone(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.CreateArea("11530", "Xã Tam Hưng", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-huyen", "password": officerPassword, "role": "district", "area": "311"}, nil)
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{})
	rig.StartNode(t, c.CreateNode("lap-le-02", "11527"), rig.NodeOptions{Output: audio.Missing{Err: errors.New("no USB sound card")}})
	tamHung := c.CreateNode("tam-hung-01", "11530") // switched on once the form is open
	flood := c.Upload("lu.wav", rig.ToneWAV(880, 20*time.Second, 16000, 1))
	rig.Eventually(t, minWait, "the running clusters online, one without its sound device", func() bool {
		n := c.Node("lap-le-02")
		return c.Node("lap-le-01").Status.State == loaxa.NodeOnline && n.Status.State == loaxa.NodeOnline && len(n.Status.Faults) == 1
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	emulatePhone(b, 1)
	b.SignIn(c.URL, "can-bo-huyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	b.Go("#/emergency", `document.querySelector('#em-form')`)
	wide := func(where string) {
		t.Helper()
		if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 412 {
			t.Errorf("%s is %d px wide on a 412 px screen: the page scrolls sideways (%s)", where, w,
				MustEval[string](b, `[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 413).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('; ')`))
		}
	}
	wide("the emergency form")
	rig.StartNode(t, tamHung, rig.NodeOptions{Output: audio.Missing{Err: errors.New("no USB sound card")}})
	rig.Eventually(t, minWait, "the cluster switched on after the form opened online, without its sound device", func() bool {
		n := c.Node("tam-hung-01")
		return n.Status.State == loaxa.NodeOnline && len(n.Status.Faults) == 1
	})
	b.Do("a drill to the district, with the recording",
		chromedp.Click(chromedp.CSS(`#em-drill`)),
		chromedp.Click(chromedp.CSS(`#em-area-311`)),
		chromedp.SetValue(chromedp.CSS(`#em-how`), "content"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#em-how').dispatchEvent(new Event('change'))`),
		chromedp.SetValue(chromedp.CSS(`#em-content`), flood.ID))
	b.ScreenShot("23-khan-cap-dien-thoai")

	// The cluster list does not come again (the page's requests for it
	// never answer): the counts are those of the form's opening, and the
	// confirmation says so.
	b.Do("hold the cluster list", chromedp.Evaluate[chromedp.Void](`window.realFetch = window.fetch;
		window.fetch = (url, opts) => String(url).includes('/api/v1/nodes') ? new Promise(() => {}) : window.realFetch(url, opts)`))
	b.Do("send", chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the confirmation without the list read again", `document.querySelector('dialog[open] #em-confirm')`, 10*time.Second)
	if got := MustEval[string](b, text("#em-confirm")); !contains(got, "2 trong 3 cụm loa đang trực tuyến",
		"Không tải lại được danh sách cụm loa: số liệu trên là lúc") {
		t.Errorf("confirmation without the list read again says %q", got)
	}
	b.Do("let the list come", chromedp.Evaluate[chromedp.Void](`window.fetch = window.realFetch`))
	cancelConfirmation(b)

	b.Do("send", chromedp.Click(chromedp.CSS(`#em-send`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open] #em-confirm')`, 10*time.Second)
	if got := MustEval[string](b, text("#em-confirm")); !contains(got, "3 cụm loa", "3 trong 3 cụm loa đang trực tuyến", "Huyện Thủy Nguyên") ||
		contains(got, "Không tải lại được") {
		t.Errorf("confirmation says %q", got)
	}
	if got := MustEval[string](b, text(`label[for="em-area-11530"]`)); !contains(got, "Xã Tam Hưng — 1/1 cụm loa trực tuyến") {
		t.Errorf("the form's commune, once the list was read again, says %q", got)
	}
	if got := MustEval[string](b, text("#em-confirm-mute")); !contains(got,
		"2 cụm loa đang trực tuyến nhưng tự báo lỗi khiến không phát được. Hãy cảnh báo những nơi đó bằng cách khác và báo kỹ thuật viên:",
		"Cụm loa lap-le-02 (Xã Lập Lễ): Không có card âm thanh", "Cụm loa tam-hung-01 (Xã Tam Hưng): Không có card âm thanh") || contains(got, "lap-le-01") {
		t.Errorf("confirmation says of the silent clusters %q", got)
	}
	confirmDanger(b, "confirm")
	b.Wait("the board", `document.querySelector('#ack-board')`, 10*time.Second)
	b.Wait("the commune's cluster sounding", text(`[data-count="sounding"] .stat`)+` === '1'`, 20*time.Second)
	// The cluster without its sound device waits: its row says for what,
	// not only "Tạm dừng".
	b.Wait("the silent cluster suspended", `document.querySelector('#ack-board tr[data-node="lap-le-02"][data-state="suspended"]')`, 20*time.Second)
	if got := MustEval[string](b, text(`#ack-board tr[data-node="lap-le-02"]`)); !contains(got, "Lỗi thiết bị âm thanh: cụm loa chưa phát được; sẽ phát lại từ đầu khi mở được thiết bị") {
		t.Errorf("the silent cluster's row says %q", got)
	}
	wide("the board")
}
