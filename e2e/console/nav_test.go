package console

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/app"
	"loaxa.vn/e2e/rig"
)

// TestSlowScreenDoesNotCoverTheNext: the overview's module comes slowly
// (as on a poor link); the officer signs in and at once opens Phát trực
// tiếp, which comes first. When the overview arrives at last, it must not
// draw itself over the screen the officer is on: the live screen stays,
// with its form. The browser holds the module's answer (Chromium's Fetch
// interception) until the live screen is drawn, so the order does not
// depend on how fast the machine is.
func TestSlowScreenDoesNotCoverTheNext(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	paused, release := b.HoldResponses(`*/static/js/views/overview.js*`)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	module := b.AwaitHeld(paused, "the console did not ask for the overview's module after sign-in")
	b.Do("open Phát trực tiếp at once", chromedp.Evaluate[chromedp.Void](`location.hash = '#/live'`))
	b.Wait("the live screen", `document.querySelector('#live-start')`, 15*time.Second)
	if err := release(module); err != nil {
		t.Fatal(err)
	}
	// The overview draws its frame as it begins and then asks for the
	// clusters: once that answer has come, it has drawn.
	b.Wait("the overview's request for the clusters", `performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/nodes'))`, 15*time.Second)
	if !MustEval[bool](b, `!!document.querySelector('#live-start') && !document.querySelector('#count-never')`) {
		t.Errorf("after the overview came, the page shows %q, want the live screen", MustEval[string](b, `document.querySelector('main').innerText.slice(0, 200)`))
	}
}

// TestLeftScreensStopRefreshing: an officer watches a bulletin's result
// on every cluster (refreshed every 4 s) and moves on to another screen
// while one of those refreshes is on its way, as on a slow 3G link in a
// commune office. The refresh that finished after they left set the next
// one, so the results screen went on asking in the background, one more
// poller for each visit; the overview (every officer's first screen,
// refreshed every 15 s: the clusters, the open alarms, today's programme,
// the health and the CAP warnings) did the same. Once left, a screen must
// ask nothing more. The controller shortens the console's periods
// (ConsoleRefresh), so the test waits 0.75 s and 0.2 s, not 15 s and 4 s.
func TestLeftScreensStopRefreshing(t *testing.T) {
	t.Parallel()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) { cfg.ConsoleRefresh = quickRefresh }})
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	c.CreateNode("lap-le-01", "11527")
	ct := c.Upload("tin.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	a := c.Announce(ct.ID, []string{"11527"}, nil, time.Now().Add(2*time.Hour))

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Wait("the overview", `document.querySelector('#count-never')`, 15*time.Second)
	leaveDuringRefresh(t, b, `*/api/v1/alarms?*state=open*`, refreshed(15*time.Second))
	b.Go("#/deliveries/"+a.ID, `document.querySelector('#delivery-counts')`)
	leaveDuringRefresh(t, b, `*/api/v1/announcements/*/deliveries`, refreshed(4*time.Second))
}

// quickRefresh is the factor on the console's refresh periods
// (app.Config.ConsoleRefresh) in tests that would otherwise wait them out.
const quickRefresh = 0.05

// refreshed is a console refresh period as shipped, under quickRefresh.
func refreshed(period time.Duration) time.Duration {
	return time.Duration(float64(period) * quickRefresh)
}

// leaveDuringRefresh holds the answer to the screen's next refresh (a
// request matching pattern), opens "Tài khoản của tôi" meanwhile, lets the
// answer go and fails if the screen, left, asks again within a refresh
// period and 3 s. Nothing can make a screen that stopped ask again, so a
// slow machine cannot fail this; at worst it passes a late poller.
func leaveDuringRefresh(t *testing.T, b *Browser, pattern string, period time.Duration) {
	t.Helper()
	paused, release := b.HoldResponses(pattern)
	// Let anything held go at the end, so the browser closes cleanly.
	defer func() {
		for {
			select {
			case id := <-paused:
				release(id)
			default:
				return
			}
		}
	}()
	var held fetch.RequestID
	select {
	case held = <-paused:
	case <-time.After(period + minWait):
		t.Fatalf("the screen did not refresh (%s) within %v", pattern, period+minWait)
	}
	b.Go("#/account", `document.querySelector('#pw-form')`)
	if err := release(held); err != nil {
		t.Fatal(err)
	}
	select {
	case again := <-paused:
		release(again)
		t.Errorf("the screen, left for %q, still asks %s every %v", MustEval[string](b, `location.hash`), pattern, period)
	case <-time.After(period + 3*time.Second):
	}
}

// TestSkipLinkStaysOnTheScreen: "Bỏ qua đến nội dung chính" was a plain
// link to #main, and the console routes on the hash: the router read
// "main" as an unknown screen and opened the overview. A keyboard or
// screen-reader user on the emergency form who used it lost the form, and
// the warning typed in it. It must move the focus into the screen and
// leave the screen as it is.
func TestSkipLinkStaysOnTheScreen(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)
	c.CreateNode("lap-le-01", "11527")

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/emergency", `document.querySelector('#em-form')`)
	b.Do("type the warning", chromedp.SendKeys(chromedp.CSS(`#em-text`), "Bão số 3 sắp đổ bộ"))
	b.Do("use the skip link from the keyboard",
		chromedp.Focus(chromedp.CSS(`a.skip`)),
		chromedp.KeyEvent("\r"))
	// Either the router has drawn another screen (the fault), or the
	// focus is in the screen's main.
	b.Wait("the skip link's effect", `document.querySelector('#count-online') || (document.activeElement && document.activeElement.closest('main'))`, 10*time.Second)
	if got := MustEval[string](b, `location.hash`); got != "#/emergency" || !MustEval[bool](b, `!!document.querySelector('#em-form')`) {
		t.Errorf("after the skip link the console shows %q (h1 %q), not the emergency form it was on", got, MustEval[string](b, text("main h1")))
	}
	if got := MustEval[string](b, `(document.querySelector('#em-text') || {value: ''}).value`); got != "Bão số 3 sắp đổ bộ" {
		t.Errorf("the typed warning is gone: %q", got)
	}
	if got := MustEval[string](b, `document.activeElement.id`); got != "main" {
		t.Errorf("after the skip link the focus is on %q, not the screen's main", got)
	}
}

// TestSignOutWhileAScreenLoads: an officer signed out while a screen was
// still loading (the emergency form, on a slow link); the screen went on,
// asked its next questions without a session and failed with "Sign in
// first", an error on the sign-in page. Signed out, a screen still
// loading is no longer the current one: it ends without a word.
func TestSignOutWhileAScreenLoads(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	paused, release := b.HoldResponses(`*/api/v1/emergency`)
	b.Do("open the emergency form", chromedp.Evaluate[chromedp.Void](`location.hash = '#/emergency'`))
	held := b.AwaitHeld(paused, "the emergency screen did not ask for the recent emergencies")
	b.Do("sign out", chromedp.Click(chromedp.CSS(`header button:not(.lang)`)))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	if err := release(held); err != nil {
		t.Fatal(err)
	}
	// The screen, let go on, asks for the clusters and the content next:
	// once those answers have come, it has ended, one way or the other.
	b.Wait("the screen's next requests answered", `['/api/v1/nodes', '/api/v1/content'].every(p => performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === p))`, 15*time.Second)
	if MustEval[bool](b, `!document.querySelector('input[name=username]')`) {
		t.Error("the sign-in form is gone after the screen that was loading ended")
	}
}

// TestSignOutWhileTheLanguageLoads: the officer presses "English" and, at
// once, "Đăng xuất", while the English words are on their way (held by
// the browser). Once they came, the page drew the menu of a user no
// longer signed in and failed ("Cannot read properties of null"), leaving
// the sign-in form in Vietnamese; it must show the sign-in form in
// English, the language chosen.
func TestSignOutWhileTheLanguageLoads(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	paused, release := b.HoldResponses(`*/static/i18n/en.json`)
	b.Do("press English", chromedp.Click(chromedp.CSS(`header button.lang`)))
	held := b.AwaitHeld(paused, "the page did not ask for the English words")
	b.Do("sign out", chromedp.Click(chromedp.CSS(`header button:not(.lang)`)))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	if err := release(held); err != nil {
		t.Fatal(err)
	}
	b.Wait("the sign-in form in English", text(`form button[type=submit]`)+` === 'Sign in'`, 10*time.Second)
}

// TestSignInByAnotherUserOpensTheOverview: on the commune office's shared
// PC, the commune's officer signed out on the programme, and the district
// officer who signed in next landed on it: the address (#/programme) was
// the last user's. Another user signing in opens the overview; the same
// user signing in again (as after a timeout) keeps the screen they left.
func TestSignInByAnotherUserOpensTheOverview(t *testing.T) {
	t.Parallel()
	c := sharedOfficePC(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	signOut := func() {
		t.Helper()
		b.Do("sign out", chromedp.Click(chromedp.CSS(`header button:not(.lang)`)))
		b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	}
	screen := func() string {
		return MustEval[string](b, `location.hash + ' ' + ((document.querySelector('nav.side a[aria-current=page]') || {}).textContent || '')`)
	}
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/programme", `document.querySelector('nav.side a[aria-current=page][data-path=programme]') && !document.querySelector('main .loading')`)
	signOut()
	b.SignInHere("can-bo-huyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	b.Wait("a screen drawn", `document.querySelector('nav.side a[aria-current=page]') && !document.querySelector('main .loading')`, 10*time.Second)
	if got := screen(); got != "#/overview Tổng quan" {
		t.Errorf("the district officer signed in after the commune's officer lands on %q, want the overview (#/overview Tổng quan)", got)
	}

	// The same officer again keeps the screen they were on.
	b.Go("#/programme", `document.querySelector('nav.side a[aria-current=page][data-path=programme]') && !document.querySelector('main .loading')`)
	signOut()
	b.SignInHere("can-bo-huyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	b.Wait("a screen drawn", `document.querySelector('nav.side a[aria-current=page]') && !document.querySelector('main .loading')`, 10*time.Second)
	if got := screen(); got != "#/programme Lịch phát" {
		t.Errorf("the district officer signed in again lands on %q, want the programme they left (#/programme Lịch phát)", got)
	}
}

// TestBackAfterAnotherUserSignedInStaysOwn: on the commune office's
// shared PC, the commune's officer looked at the programme and the
// alarms and signed out; the district officer who signed in next pressed
// Back and was shown the commune officer's screens from the tab's
// history, drawn with the district officer's rights. Back after another
// user signed in goes through the new user's own screens, and at the last
// user's lands on the overview; the same user signing in again keeps
// their history (TestSignInByAnotherUserOpensTheOverview).
func TestBackAfterAnotherUserSignedInStaysOwn(t *testing.T) {
	t.Parallel()
	c := sharedOfficePC(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	drawn := func(path string) string {
		return `document.querySelector('nav.side a[aria-current=page][data-path=` + path + `]') && !document.querySelector('main .loading')`
	}
	screen := func() string {
		return MustEval[string](b, `location.hash + ' ' + ((document.querySelector('nav.side a[aria-current=page]') || {}).textContent || '')`)
	}
	// back presses Back and waits for the screen it leads to: the router
	// draws every screen into a new main.
	back := func() string {
		t.Helper()
		b.Do("press Back", chromedp.Evaluate[chromedp.Void](`window.mainBeforeBack = document.getElementById('main'); history.back()`))
		b.Wait("the screen Back leads to", `document.getElementById('main') !== window.mainBeforeBack && document.querySelector('nav.side a[aria-current=page]') && !document.querySelector('main .loading')`, 10*time.Second)
		return screen()
	}
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/programme", drawn("programme"))
	b.Go("#/alarms", drawn("alarms"))
	b.Do("sign out", chromedp.Click(chromedp.CSS(`header button:not(.lang)`)))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	b.SignInHere("can-bo-huyen", officerPassword, "Cán bộ huyện Thủy Nguyên")
	b.Wait("the overview", drawn("overview"), 10*time.Second)
	b.Go("#/clusters", drawn("clusters"))

	if got := back(); got != "#/overview Tổng quan" {
		t.Fatalf("Back from the district officer's clusters shows %q, want their overview", got)
	}
	// The next entry back is the commune officer's programme.
	if got := back(); got != "#/overview Tổng quan" {
		t.Errorf("Back past the district officer's first screen shows %q, the last user's screen; want the overview (#/overview Tổng quan)", got)
	}
	if got := MustEval[string](b, text("#scope")); got != "Cán bộ huyện Thủy Nguyên" {
		t.Errorf("after Back the header says %q, want the district officer", got)
	}
}

// sharedOfficePC starts a controller with the two officers who share the
// commune office's PC: Xã Lập Lễ's (can-bo-lap-le) and its district's,
// Huyện Thủy Nguyên (can-bo-huyen).
func sharedOfficePC(t *testing.T) *rig.Controller {
	t.Helper()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-huyen", "password": officerPassword, "role": "district", "area": "311"}, nil)
	return c
}
