// Package console tests the web console in a real headless Chromium
// (Debian's chromium, driven with chromedp) against the real controller,
// broker and node agents: a commune officer signs in, uploads a WAV,
// schedules it in the evening session, sees the clusters play it, and
// cannot see or target another commune. Each main screen is saved as a
// PNG in e2e/console/screenshots (or $LOAXA_SCREENSHOTS).
//
// The tests run in parallel (scripts/test.sh: -parallel 4), each with a
// controller, agents and browser context of its own: they mostly wait on
// the screens' timers and on clusters playing in real time, and one after
// another they took over 6 minutes.
package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

// TestMain closes the browsers the tests share before it looks for leaked
// goroutines.
func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowsers()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// sharedChromium is a Chromium the package's tests share: starting it is
// most of a short test's time, and each test gets a browser context of its
// own (StartBrowser), with its own cookies, storage and cache, as a fresh
// browser has.
type sharedChromium struct {
	once  sync.Once
	ctx   context.Context // the browser's first tab, open until close
	close func()
	err   error
}

// browsers are the shared Chromiums by their user interface language:
// vi-VN (an office PC in Vietnam) for most tests, en-US for those that
// check what an English browser does to the page.
var browsers = struct {
	sync.Mutex
	by map[string]*sharedChromium
}{by: map[string]*sharedChromium{}}

func closeBrowsers() {
	browsers.Lock()
	defer browsers.Unlock()
	for _, sc := range browsers.by {
		if sc.close != nil {
			sc.close()
		}
	}
}

// sharedBrowser starts the shared Chromium of the language lang (a BCP 47
// tag, "vi-VN") the first time.
func sharedBrowser(t testing.TB, lang string) context.Context {
	t.Helper()
	path := browserPath(t)
	browsers.Lock()
	sc := browsers.by[lang]
	if sc == nil {
		sc = &sharedChromium{}
		browsers.by[lang] = sc
	}
	browsers.Unlock()
	sc.once.Do(func() {
		dir, err := os.MkdirTemp("", "loaxa-chromium-")
		if err != nil {
			sc.err = err
			return
		}
		// The browser's language is that of its user interface: the
		// flag, and the environment a desktop session would give it.
		posix := strings.ReplaceAll(lang, "-", "_") + ".UTF-8"
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("no-default-browser-check", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			// A fake microphone (a beep) that needs no permission prompt,
			// for the live screen.
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("lang", lang), // Accept-Language, navigator.language, the form controls' own words
			chromedp.Env("LANG="+posix, "LANGUAGE="+strings.ReplaceAll(lang, "-", "_"), "LC_ALL="+posix),
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1280, 900),
		}
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		sc.ctx = ctx
		sc.close = func() { cancel(); cancelAlloc(); os.RemoveAll(dir) }
		// The first Run starts the browser; it must not have a deadline.
		sc.err = chromedp.Listen(ctx, func(any) {})
	})
	if sc.err != nil {
		t.Fatalf("start chromium (%s): %v", lang, sc.err)
	}
	return sc.ctx
}

// browserPath finds Debian's chromium; scripts/test.sh installs it and
// sets LOAXA_REQUIRE_BROWSER so CI fails rather than skips without it.
func browserPath(t testing.TB) string {
	for _, name := range []string{os.Getenv("LOAXA_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LOAXA_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium is not installed: apt-get install chromium (scripts/test.sh does)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set LOAXA_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// Browser is one headless Chromium tab with a fresh profile. Script
// errors, failed promises and missing translations on the page fail the
// test.
type Browser struct {
	t     testing.TB
	ctx   context.Context
	shots string

	mu     sync.Mutex
	errors []string
}

// StartBrowser opens a tab in a browser context of its own (nothing
// shared with another test's: cookies, storage, cache) of the package's
// Chromium, started with the flags CI needs and nothing that reaches the
// internet; the context goes when the test ends.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	return StartBrowserIn(t, "vi-VN")
}

// StartBrowserIn is StartBrowser in a Chromium whose user interface is in
// the language lang ("en-US"): an office PC set up in English.
func StartBrowserIn(t testing.TB, lang string) *Browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedBrowser(t, lang), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &Browser{t: t, ctx: ctx, shots: screenshotDir(t)}
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b.Do("the window's size", chromedp.EmulateViewport(1280, 900))
	return b
}

func (b *Browser) watch(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

// checkErrors fails the test for anything the page complained about.
func (b *Browser) checkErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("page error: %s", e)
	}
	b.errors = nil
}

func screenshotDir(t testing.TB) string {
	dir := os.Getenv("LOAXA_SCREENSHOTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(wd, "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// HoldResponses has the browser hold the answers of requests whose URL
// matches pattern (Chromium's Fetch interception) and hand their ids to
// the channel returned (those that find it full go unheld ids: the test
// never releases them); release lets one go on, from any goroutine.
func (b *Browser) HoldResponses(pattern string) (held <-chan fetch.RequestID, release func(fetch.RequestID) error) {
	b.t.Helper()
	paused := make(chan fetch.RequestID, 16)
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			select {
			case paused <- e.RequestID:
			default:
			}
		}
	}); err != nil {
		b.t.Fatal(err)
	}
	b.Do("hold the answers to "+pattern, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: pattern, RequestStage: fetch.RequestStageResponse}}})
		return err
	}))
	return paused, func(id fetch.RequestID) error {
		return chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, fetch.ContinueResponse, fetch.ContinueResponseParams{RequestID: id})
			return err
		}))
	}
}

// AwaitHeld waits up to 15 s for the first answer the browser holds
// (HoldResponses) and returns it to be released; failure says what did
// not happen if none comes.
func (b *Browser) AwaitHeld(paused <-chan fetch.RequestID, failure string) fetch.RequestID {
	b.t.Helper()
	select {
	case id := <-paused:
		return id
	case <-time.After(15 * time.Second):
		b.t.Fatal(failure)
		return ""
	}
}

// Do runs steps within a deadline; what names them in a failure.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, minWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.checkErrors()
		b.failedShot()
		b.t.Fatalf("%s: %v", what, err)
	}
}

// minWait is the least any wait allows: deadlines only bound a failing
// run, and a loaded 2-core CI machine can be many times slower than a
// developer's.
const minWait = 60 * time.Second

// Wait polls a JavaScript condition on the page until it is true, for at
// least minWait.
func (b *Browser) Wait(what, expr string, within time.Duration) {
	b.t.Helper()
	within = max(within, minWait)
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if d := time.Since(start); d > 2*time.Second {
		b.t.Logf("waited %v for %s", d.Round(time.Millisecond), what) // where a slow run spends its time
	}
	if err != nil {
		b.checkErrors()
		b.failedShot()
		text, _ := Eval[string](b, `document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 1500) : document.body.innerText.slice(0, 1500)`)
		b.t.Fatalf("waiting for %s (%s): %v\npage says:\n%s", what, expr, err, text)
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) on the page.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, minWait)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// MustEval is Eval that fails the test on an error.
func MustEval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := Eval[T](b, expr)
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// failedShot saves the page a test failed on as failed-<test>.png: the
// tests run in parallel, and one name would keep only the last failure.
func (b *Browser) failedShot() {
	b.Shot("failed-" + strings.ReplaceAll(b.t.Name(), "/", "_"))
}

// Shot saves a screenshot of the viewport as name.png.
func (b *Browser) Shot(name string) { b.shot(name, chromedp.FullScreenshot(100)) }

// ScreenShot saves what the screen shows (not the whole page), as
// screenshots/<name>.png: a phone's first screen of a long page.
func (b *Browser) ScreenShot(name string) { b.shot(name, chromedp.CaptureScreenshot()) }

func (b *Browser) shot(name string, take chromedp.Action[[]byte]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, minWait)
	defer cancel()
	png, err := chromedp.Run(ctx, take)
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// Go navigates to a screen of the console by its hash route and waits
// until it has rendered.
func (b *Browser) Go(route, ready string) {
	b.t.Helper()
	b.Do("open "+route, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, route)))
	b.Wait(route+" rendered", ready, 15*time.Second)
	b.CheckAccessible(route)
}

// CheckAccessible fails the test for controls a screen reader cannot name:
// form fields without a label, buttons and links without text, a page
// without one h1; and for a screen inside a live region, whose every
// redraw a screen reader would read out. A control's text is its text content, so that one not
// shown yet (in a closed <details>) is checked too.
func (b *Browser) CheckAccessible(where string) {
	b.t.Helper()
	bad := MustEval[[]string](b, `(() => {
		const out = [];
		const named = (el) => (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
		for (const el of document.querySelectorAll('input, select, textarea')) {
			if (el.type !== 'hidden' && !named(el)) out.push('field without a label: ' + el.outerHTML.slice(0, 100));
		}
		for (const el of document.querySelectorAll('button, a[href]')) {
			if (!el.textContent.trim() && !el.getAttribute('aria-label') && !el.querySelector('img[alt]:not([alt=""])')) out.push('nameless ' + el.outerHTML.slice(0, 100));
		}
		// A live region around the screen reads every redraw out.
		const live = document.querySelector('main') && document.querySelector('main').closest('[aria-live]');
		if (live) out.push('the screen lies in a live region: ' + live.outerHTML.slice(0, 100));
		const h1 = document.querySelectorAll('main h1').length;
		if (h1 !== 1) out.push(h1 + ' h1 headings in main');
		return out;
	})()`)
	for _, m := range bad {
		b.t.Errorf("%s: %s", where, m)
	}
}

// text is a JavaScript expression for the visible text of a selector.
func text(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {innerText: ''}).innerText`, sel)
}

// SignIn opens the console at base and signs in with the form, waiting
// until the header names the user's scope.
func (b *Browser) SignIn(base, username, password, scope string) {
	b.t.Helper()
	b.Do("open the console", chromedp.Navigate(base+"/"))
	b.SignInHere(username, password, scope)
}

// SignInHere signs in with the form on the page as it is (after a sign
// out, at the address the last user left), waiting until the header
// names the user's scope.
func (b *Browser) SignInHere(username, password, scope string) {
	b.t.Helper()
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 15*time.Second)
	b.Do("sign in as "+username,
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), username),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	b.Wait("the scope in the header", text("#scope")+fmt.Sprintf(` === %q`, scope), 15*time.Second)
}

// EmulateLink puts the browser's requests on the given network
// conditions (Chromium's, by rule: a URLPattern limits one to some
// requests), as on a slow or distant link.
func (b *Browser) EmulateLink(what string, conds ...*network.Conditions) {
	b.t.Helper()
	b.Do(what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, emulateByRule, emulateByRuleParams{MatchedNetworkConditions: conds})
		return err
	}))
}

// emulateByRuleParams are Network.emulateNetworkConditionsByRule's
// parameters with the top-level offline that Chromium up to 148 (Debian's)
// requires, answering "Invalid parameters" without it; the protocol
// cdproto follows has since moved it into each rule, and newer browsers
// ignore it.
type emulateByRuleParams struct {
	Offline                  bool                  `json:"offline"`
	MatchedNetworkConditions []*network.Conditions `json:"matchedNetworkConditions"`
}

var emulateByRule = cdp.Command[emulateByRuleParams, network.EmulateNetworkConditionsByRuleResult]{Method: network.CommandEmulateNetworkConditionsByRule}
