package console

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/app"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// technicianAtLapLe starts a controller that sweeps its nodes every 50 ms,
// the cluster lap-le-01 of Xã Lập Lễ on a simulated board, and a browser
// signed in as the commune's technician, once the cluster is online. The
// caller defers the browser's checkErrors.
func technicianAtLapLe(t *testing.T) (*rig.Controller, *board.Board, *Browser) {
	t.Helper()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) { cfg.Health.Sweep = 50 * time.Millisecond }})
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "ky-thuat-lap-le", "password": officerPassword, "role": "technician", "area": "11527"}, nil)
	sim, err := board.New(clock.Real{}, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{Board: sim, Tune: func(ac *agent.Config) {
		ac.StateDebounce = 20 * time.Millisecond
	}})
	b := StartBrowser(t)
	b.SignIn(c.URL, "ky-thuat-lap-le", officerPassword, "Kỹ thuật viên xã Lập Lễ")
	b.Wait("the cluster online and working", text("#count-online")+`.startsWith('1')`, 20*time.Second)
	return c, sim, b
}

// TestTechnicianFaultAlarmAndSelfTest: a cluster on a simulated board has
// its speaker line cut. The technician of Xã Lập Lễ sees the alarm arrive
// on the alarms screen without reloading, acknowledges it, finds the fault
// on the overview and the cluster's page, runs a silent self-test there
// that names the line, turns the volume down, and sees the alarm end when
// the line is mended.
func TestTechnicianFaultAlarmAndSelfTest(t *testing.T) {
	t.Parallel()
	c, sim, b := technicianAtLapLe(t)
	defer b.checkErrors()
	if n := MustEval[int](b, `document.querySelectorAll('#emergency-entry, nav a.nav-emergency').length`); n != 0 {
		t.Errorf("a technician sees %d emergency entries, want none", n)
	}

	b.Go("#/alarms", `document.querySelector('#h-open')`)
	sim.SetSpeakerLine(protocol.LineOpen)
	b.Wait("the alarm", `document.querySelector('#alarms-open tr[data-kind="speaker-line-open"]')`, 15*time.Second)
	if n := MustEval[string](b, `document.querySelector('main').dataset.streamEvents || '0'`); n == "0" {
		t.Error("the alarm appeared without an event from the alarm stream")
	}
	if got := MustEval[string](b, text(`#alarms-open tr[data-kind="speaker-line-open"]`)); !contains(got, "Nghiêm trọng", "Đứt dây loa", "Không có tải trên đường dây loa", "lap-le-01") {
		t.Errorf("alarm row %q", got)
	}
	b.Do("acknowledge it", chromedp.Click(chromedp.CSS(`#alarms-open tr[data-kind="speaker-line-open"] button`)))
	b.Wait("seen by the technician", text(`#alarms-open tr[data-kind="speaker-line-open"]`)+`.includes('ky-thuat-lap-le đã xem')`, 10*time.Second)
	b.Shot("15-canh-bao-dut-day")

	b.Go("#/overview", `document.querySelector('#overview-alarms')`)
	if got := MustEval[string](b, text("#overview-alarms")); !contains(got, "Cảnh báo đang mở: 1 (1 nghiêm trọng)", "Đứt dây loa") {
		t.Errorf("overview alarms %q", got)
	}
	if got := MustEval[string](b, text("#count-faulty")); got[:1] != "1" {
		t.Errorf("overview faulty count %q", got)
	}

	// An overheating enclosure: the alarm words what the board measured
	// in Vietnamese, with a Vietnamese decimal comma, on the alarms screen
	// and with the cluster's faults.
	sim.SetTemperature(71.5)
	b.Go("#/alarms", `document.querySelector('#h-open')`)
	b.Wait("the overheat alarm", `document.querySelector('#alarms-open tr[data-kind="overheat"]')`, 15*time.Second)
	if got := MustEval[string](b, text(`#alarms-open tr[data-kind="overheat"]`)); !contains(got, "Quá nóng", "Trong tủ 71,5 °C") || strings.Contains(got, "enclosure") {
		t.Errorf("overheat alarm row %q, want it worded in Vietnamese", got)
	}
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-remote')`)
	if n := MustEval[int](b, `document.querySelectorAll('#node-faults li[data-fault="speaker-line-open"]').length`); n != 1 {
		t.Errorf("%d speaker-line faults on the cluster page", n)
	}
	if got := MustEval[string](b, text(`#node-faults li[data-fault="overheat"]`)); !contains(got, "Quá nóng", "Trong tủ 71,5 °C") {
		t.Errorf("overheat fault on the cluster page %q", got)
	}
	sim.SetTemperature(40)
	b.Do("run a silent self-test", chromedp.Click(chromedp.CSS(`#test-silent`)))
	b.Wait("the self-test fails on the line", `document.querySelector('#selftest-report [data-status="fail"]') && `+text("#selftest-report")+`.includes('Dây loa: Bị đứt')`, 20*time.Second)
	b.Do("turn the volume down",
		chromedp.SetValue(chromedp.CSS(`#node-volume`), "5"),
		chromedp.Click(chromedp.CSS(`#node-save`)))
	rig.Eventually(t, minWait, "the node plays at volume 5", func() bool {
		v := c.Node("lap-le-01").Status.Volume
		return v != nil && *v == 5
	})
	b.Go("#/clusters", `document.querySelector('#cluster-table')`)
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-remote')`)
	if got := MustEval[string](b, `[...document.querySelectorAll('tr')].find(r => r.innerText.startsWith('Âm lượng')).innerText`); !strings.Contains(got, "5/15") {
		t.Errorf("cluster page shows volume %q, want 5/15", got)
	}
	// The clock offset with how certain the cluster's measurement of it is.
	if got := MustEval[string](b, `[...document.querySelectorAll('tr')].find(r => r.innerText.startsWith('Lệch đồng hồ')).innerText`); !regexp.MustCompile(`ms ± [0-9]+(,[0-9])? ms$`).MatchString(got) {
		t.Errorf("cluster page shows the clock as %q, want its offset ± its uncertainty", got)
	}
	b.Shot("16-dieu-khien-tu-xa")

	sim.SetSpeakerLine(protocol.LineOK)
	b.Go("#/alarms", `document.querySelector('#h-open')`)
	b.Wait("the alarm ended", `!document.querySelector('#alarms-open') && document.querySelector('#alarms-ended tr[data-kind="speaker-line-open"]')`, 15*time.Second)

	// At the pole, with a phone: the door is opened; the technician sees
	// the alarm and acknowledges it, and works the cluster's page, with
	// every button on the screen and no page wider than it.
	emulatePhone(b, 1)
	onScreen := func(where string, buttons ...string) {
		t.Helper()
		if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 412 {
			t.Errorf("%s is %d px wide on a 412 px screen: the page scrolls sideways", where, w)
		}
		for _, css := range buttons {
			if right := MustEval[float64](b, `document.querySelector('`+css+`').getBoundingClientRect().right`); right > 412 {
				t.Errorf("%s: %s ends %.0f px from the left of a 412 px screen", where, css, right)
			}
		}
	}
	sim.SetDoor(true)
	b.Wait("the door alarm", `document.querySelector('#alarms-open tr[data-kind="door-open"] button')`, 15*time.Second)
	onScreen("the alarms", `#alarms-open tr[data-kind="door-open"] button`)
	b.ScreenShot("24-canh-bao-dien-thoai")
	b.Do("acknowledge it from the phone", chromedp.Click(chromedp.CSS(`#alarms-open tr[data-kind="door-open"] button`)))
	b.Wait("seen", text(`#alarms-open tr[data-kind="door-open"]`)+`.includes('ky-thuat-lap-le đã xem')`, 10*time.Second)
	b.Go("#/clusters", `document.querySelector('#cluster-table')`)
	onScreen("the clusters")
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-remote')`)
	onScreen("the cluster's page", `#test-silent`, `#node-save`)
	b.ScreenShot("25-cum-loa-dien-thoai")
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestSecondTechnicianIsToldWhoTookTheAlarm: a technician whose alarms
// screen was drawn before a colleague acknowledged an alarm pressed
// "acknowledge" and was told "Đã ghi nhận cảnh báo.", and the alarm then
// named them: the colleague who took it was replaced. The alarm keeps the
// first acknowledgement, and the toast names who took it and when.
func TestSecondTechnicianIsToldWhoTookTheAlarm(t *testing.T) {
	t.Parallel()
	c, sim, b := technicianAtLapLe(t)
	defer b.checkErrors()
	b.Go("#/alarms", `document.querySelector('#h-open')`)
	sim.SetSpeakerLine(protocol.LineOpen)
	row := `#alarms-open tr[data-kind="speaker-line-open"]`
	b.Wait("the alarm", `document.querySelector('`+row+` button')`, 15*time.Second)
	id := MustEval[string](b, `document.querySelector('`+row+`').dataset.alarm`)
	// A colleague takes it, written to the store as the monitor would,
	// but without telling this screen: it is drawn from before.
	if _, err := c.App.Alarms.AckAlarm(t.Context(), id, "ky-thuat-huyen", c.App.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.Do("acknowledge it", chromedp.Click(chromedp.CSS(row+` button`)))
	b.Wait("the toast", `document.querySelector('.toast')`, 10*time.Second)
	if got := MustEval[string](b, text(".toast")); !strings.HasPrefix(got, "ky-thuat-huyen đã nhận cảnh báo này trước bạn, lúc ") {
		t.Errorf("the second technician was told %q, want who took the alarm first", got)
	}
	b.Wait("the alarm names the first", text(row)+`.includes('ky-thuat-huyen đã xem')`, 10*time.Second)
}
