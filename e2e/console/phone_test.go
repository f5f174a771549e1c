package console

import (
	"testing"

	"github.com/chromedp/chromedp"

	"loaxa.vn/e2e/rig"
)

// onSmallPhone shows pages as on a small phone: 390 × 844, touch.
func onSmallPhone(b *Browser) {
	b.Do("emulate a small phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch))
}

// TestPhoneMenuIsOneRow: on a phone, a short screen (the alarms with
// none open) stretched the menu's row into an empty band a third of the
// screen high, pushing the screen itself down. The menu must stay one
// row high whatever the screen's length.
func TestPhoneMenuIsOneRow(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	onSmallPhone(b)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	for _, route := range []string{"#/alarms", "#/account"} {
		b.Go(route, `document.querySelector('main h1')`)
		menu := MustEval[float64](b, `document.querySelector('nav.side').getBoundingClientRect().height`)
		entry := MustEval[float64](b, `document.querySelector('nav.side a').getBoundingClientRect().height`)
		if menu > entry+30 {
			t.Errorf("%s on a phone: the menu is %.0f px high for entries %.0f px high", route, menu, entry)
		}
	}
}
