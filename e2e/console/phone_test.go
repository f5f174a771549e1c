package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// onSmallPhone shows pages as on a small phone: 390 × 844, touch.
func onSmallPhone(b *Browser) {
	b.Do("emulate a small phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch))
}

// startLapLe starts a controller with Xã Lập Lễ (11527) and its commune
// officer can-bo-lap-le (addLapLeOfficer), where most screens' tests begin.
func startLapLe(t *testing.T) *rig.Controller {
	t.Helper()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)
	return c
}

// addLapLeOfficer adds can-bo-lap-le, the commune officer of Xã Lập Lễ
// (11527, which c must have), the officer of the phone tests.
func addLapLeOfficer(c *rig.Controller) {
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
}

// lapLeOfficerOnAPhone opens c's console on a small phone, signed in as
// can-bo-lap-le (addLapLeOfficer); the page's errors are checked when
// the test ends.
func lapLeOfficerOnAPhone(t *testing.T, c *rig.Controller) *Browser {
	b := StartBrowser(t)
	t.Cleanup(b.checkErrors)
	onSmallPhone(b)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	return b
}

// tooSmallToTap is a JavaScript expression listing the controls on the
// page a finger can hardly hit: buttons, fields and menu entries under
// 44 px high (WCAG's target size), and check boxes whose label is not
// that high either.
const tooSmallToTap = `(() => {
	const out = [];
	const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
	const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' + (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30) + '"';
	for (const el of document.querySelectorAll('button, .button, select, input, textarea, nav.side a')) {
		if (!shown(el) || el.type === 'hidden' || el.type === 'file') continue;
		let box = el.getBoundingClientRect();
		if (el.type === 'checkbox' || el.type === 'radio') {
			const label = el.closest('label') || (el.labels && el.labels[0]);
			if (label) box = label.getBoundingClientRect();
		}
		if (box.height < 43.5) out.push(name(el) + ' ' + Math.round(box.height) + ' px');
	}
	return out;
})()`

// TestPhoneControlsAreBigEnoughToTap: an officer on a phone in the rain
// tapped beside buttons, fields and menu entries 39–40 px high and the
// check boxes of 13 px (the drill switch, the areas to alert). Every
// control on the screens an officer uses on a phone must be at least
// 44 px high (or, a check box, its label).
func TestPhoneControlsAreBigEnoughToTap(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	addLapLeOfficer(c)
	c.CreateNode("lap-le-01", "11527")
	c.Upload("lu.wav", rig.ToneWAV(880, 2*time.Second, 16000, 1))

	b := lapLeOfficerOnAPhone(t, c)
	for _, sc := range []struct{ route, ready string }{
		{"#/overview", `document.querySelector('#emergency-entry')`},
		{"#/clusters", `document.querySelector('main table')`},
		{"#/clusters/lap-le-01", `document.querySelector('main h1') && document.querySelector('main button')`},
		{"#/library", `document.querySelector('main input[type=file]')`},
		{"#/programme", `document.querySelector('#week')`},
		{"#/alarms", `document.querySelector('#h-open')`},
		{"#/emergency", `document.querySelector('#em-form')`},
	} {
		b.Go(sc.route, sc.ready)
		if small := MustEval[[]string](b, tooSmallToTap); len(small) > 0 {
			t.Errorf("%s on a phone: too small to tap: %s", sc.route, strings.Join(small, "; "))
		}
	}
}

// TestPhoneMenuIsOneRow: on a phone, a short screen (the alarms with
// none open) stretched the menu's row into an empty band a third of the
// screen high, pushing the screen itself down. The menu must stay one
// row high whatever the screen's length.
func TestPhoneMenuIsOneRow(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)

	b := lapLeOfficerOnAPhone(t, c)
	for _, route := range []string{"#/alarms", "#/account"} {
		b.Go(route, `document.querySelector('main h1')`)
		menu := MustEval[float64](b, `document.querySelector('nav.side').getBoundingClientRect().height`)
		entry := MustEval[float64](b, `document.querySelector('nav.side a').getBoundingClientRect().height`)
		if menu > entry+30 {
			t.Errorf("%s on a phone: the menu is %.0f px high for entries %.0f px high", route, menu, entry)
		}
	}
}

// TestPhoneBoardDetailIsReadable: on a phone the emergency board's
// cluster table squeezed its detail column to a word a line ("Cụm /
// loa / chưa / có / nội / dung, …", ten lines a cluster) and broke
// "11 ms" in two. On a phone each cluster is a card: its detail is as
// wide as the card and the time it received on one line.
func TestPhoneBoardDetailIsReadable(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{})
	flood := c.Upload("lu.wav", rig.ToneWAV(880, 30*time.Second, 16000, 1))
	rig.Eventually(t, minWait, "the cluster online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })
	var drill loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": flood.ID, "targets": []string{"11527"}, "drill": true}, &drill)

	b := lapLeOfficerOnAPhone(t, c)
	row := `#ack-board tr[data-node="lap-le-01"]`
	b.Go("#/emergency/"+drill.ID, `document.querySelector('#ack-board')`)
	b.Wait("the cluster's detail", `document.querySelector('`+row+` td:last-child').innerText.trim() !== ''`, 20*time.Second)
	detail := MustEval[float64](b, `document.querySelector('`+row+` td:last-child').getBoundingClientRect().width`)
	card := MustEval[float64](b, `document.querySelector('`+row+`').getBoundingClientRect().width`)
	if detail < 0.8*card {
		t.Errorf("the cluster's detail is %.0f px wide in a row %.0f px wide: %q", detail, card, MustEval[string](b, text(row+` td:last-child`)))
	}
	// The lines of text the cell's words are set on.
	lines := MustEval[int](b, `(() => { const r = document.createRange(); r.selectNodeContents(document.querySelector('`+row+` td.num'));
		return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; })()`)
	if lines != 1 {
		t.Errorf("the time the cluster received is set on %d lines: %q", lines, MustEval[string](b, text(row+` td.num`)))
	}
	if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the board is %d px wide on a 390 px screen", w)
	}
}

// TestToastDoesNotTakeTaps: a message shown after an action ("Đã lưu …")
// lies for seconds over the bottom of the screen, where on a phone the
// next button often is; a tap there hit the message and did nothing
// (TestStandingContentForChosenAreas's second "Lưu" was lost so once the
// buttons grew to 44 px). Taps go through a message to what is under it.
func TestToastDoesNotTakeTaps(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	addLapLeOfficer(c)

	b := lapLeOfficerOnAPhone(t, c)
	b.Go("#/account", `document.querySelector('main h1')`)
	if hit := MustEval[string](b, `(() => {
		const el = document.createElement('div');
		el.className = 'toast';
		el.textContent = 'Đã lưu địa bàn lưu sẵn cho bản tin cảnh báo nước dâng.';
		document.getElementById('toasts').append(el);
		const r = el.getBoundingClientRect();
		const under = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		const hit = document.getElementById('toasts').contains(under) ? under.className : '';
		el.remove();
		return hit;
	})()`); hit != "" {
		t.Errorf("a tap on a message's place hits the message (%s), not what is under it", hit)
	}
}
