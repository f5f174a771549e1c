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

// TestReportRateCountsOnlyWhatWasDue: the report opens on the current
// month, to its end. Its "Tỉ lệ hoàn thành" was completed over
// scheduled, and scheduled counts the plays already planned for the hours
// and days to come: a commune whose every bulletin so far played read 50%
// with one more due later today. The rate must count only the plays that
// were due, and the report say how many are not due yet.
func TestReportRateCountsOnlyWhatWasDue(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{ContentSpread: time.Millisecond})
	rig.Eventually(t, minWait, "the cluster online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })
	ct := c.Upload("tin.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	vn := time.FixedZone("+07", 7*3600)
	now := time.Now().In(vn)
	if now.Add(2*time.Hour).Month() != now.Month() {
		t.Skip("too close to the end of the month for the second bulletin to fall in it")
	}
	played := c.Announce(ct.ID, []string{"11527"}, nil, now.Add(4*time.Second))
	c.Announce(ct.ID, []string{"11527"}, nil, now.Add(time.Hour)) // later today: not due yet
	rig.Eventually(t, minWait, "the first bulletin played", func() bool {
		d := c.Deliveries(played.ID)
		return len(d) == 1 && d[0].State == "completed"
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/reports", `document.querySelector('#h-rep')`)
	stats := MustEval[string](b, text("#h-rep ~ .stats"))
	if !strings.Contains(stats, "100%\nTỉ lệ hoàn thành") || !strings.Contains(stats, "1\nChưa đến giờ phát") {
		t.Errorf("every bulletin due so far played, and the one to come is not due; the report says:\n%s", stats)
	}
}

// TestReportPeriodInVietnameseDates: dates are written DD/MM/YYYY in
// Vietnamese, as everywhere else in the console; the report's heading,
// which is what gets printed and filed, read "Xã Lập Lễ: từ 2026-03-01
// đến trước 2026-04-01".
func TestReportPeriodInVietnameseDates(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	fc := clock.NewFake(time.Date(2026, 3, 12, 9, 0, 0, 0, vn))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/reports", `document.querySelector('#h-rep')`)
	if got, want := MustEval[string](b, text("#h-rep")), "Xã Lập Lễ: từ 01/03/2026 đến trước 01/04/2026"; got != want {
		t.Errorf("the report's heading reads %q, want %q", got, want)
	}
}

// TestReportChartReadableOnAPhone: the report's chart was drawn 760
// wide and shrunk to a phone's screen, its words 5 px high; nobody could
// read it. On a 390 px phone its words are at least 9 px high and its
// legend within the chart.
func TestReportChartReadableOnAPhone(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	fc := clock.NewFake(time.Date(2026, 3, 12, 9, 0, 0, 0, vn))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)
	c.CreateNode("lap-le-01", "11527")
	ct := c.Upload("tin.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	c.Announce(ct.ID, []string{"11527"}, nil, time.Date(2026, 3, 12, 17, 0, 0, 0, vn))

	b := lapLeOfficerOnAPhone(t, c)
	b.Go("#/reports", `document.querySelector('#h-rep ~ svg.chart')`)
	bad := MustEval[[]string](b, `(() => {
		const svg = document.querySelector('#h-rep ~ svg.chart').getBoundingClientRect();
		return [...document.querySelectorAll('#h-rep ~ svg.chart text')].filter((el) => {
			const r = el.getBoundingClientRect();
			return r.height < 9 || r.left < svg.left - 1 || r.right > svg.right + 1;
		}).map((el) => el.textContent + ' ' + Math.round(el.getBoundingClientRect().height) + ' px high');
	})()`)
	if len(bad) > 0 {
		t.Errorf("the report's chart on a phone: words too small or outside it: %s", strings.Join(bad, "; "))
	}
}

// TestReportCSVDownloadOpensInExcel: officers open the report's CSV in
// Excel, which read the file the console gave them (UTF-8 without a byte
// order mark) in the PC's code page: "Xã Lập Lễ" showed as "XÃ£ Láº­p
// Lá»…". Both downloads, the period's and the year's, must give a file
// that begins with the UTF-8 byte order mark and names the commune.
func TestReportCSVDownloadOpensInExcel(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	fc := clock.NewFake(time.Date(2026, 3, 12, 9, 0, 0, 0, vn))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)
	c.CreateNode("lap-le-01", "11527")

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/reports", `document.querySelector('#report-csv')`)
	b.Do("show the year", chromedp.Click(chromedp.CSS(`form:has(#report-year) button[type="submit"]`)))
	b.Wait("the year's report", `document.querySelector('#report-year-result a[download]')`, minWait)
	for _, link := range []string{"#report-csv", "#report-year-result a[download]"} {
		got := MustEval[string](b, `(async () => {
			const resp = await fetch(document.querySelector('`+link+`').href);
			const bytes = new Uint8Array(await resp.arrayBuffer());
			const head = [...bytes.slice(0, 3)].map((x) => x.toString(16)).join(' ');
			return resp.status + ' ' + head + ' ' + new TextDecoder().decode(bytes).includes(',Xã Lập Lễ,');
		})()`)
		if want := "200 ef bb bf true"; got != want {
			t.Errorf("the CSV of %s: status, first bytes and whether it names Xã Lập Lễ: %q, want %q", link, got, want)
		}
	}
}
