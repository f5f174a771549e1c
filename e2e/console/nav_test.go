package console

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

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
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	paused, release := b.HoldResponses(`*/static/js/views/overview.js*`)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	var module fetch.RequestID
	select {
	case module = <-paused:
	case <-time.After(15 * time.Second):
		t.Fatal("the console did not ask for the overview's module after sign-in")
	}
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

// TestLeftResultsScreenStopsRefreshing: an officer watches a bulletin's
// result on every cluster (refreshed every 4 s) and moves on to another
// screen while one of those refreshes is on its way, as on a slow 3G link
// in a commune office. The refresh that finished after they left set the
// next one, so the results screen went on asking in the background, one
// more poller for each visit. Once left, a screen must ask nothing more.
func TestLeftResultsScreenStopsRefreshing(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	c.CreateNode("lap-le-01", "11527")
	ct := c.Upload("tin.wav", rig.ToneWAV(440, time.Second, 16000, 1))
	a := c.Announce(ct.ID, []string{"11527"}, nil, time.Now().Add(2*time.Hour))

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/deliveries/"+a.ID, `document.querySelector('#delivery-counts')`)
	leaveDuringRefresh(t, b, `*/api/v1/announcements/*/deliveries`, 4*time.Second)
}

// TestLeftOverviewStopsRefreshing: as for the results screen, the
// overview (every officer's first screen, refreshed every 15 s: the
// clusters, the open alarms, today's programme, the health and the CAP
// warnings) went on asking forever once left during one of its refreshes.
func TestLeftOverviewStopsRefreshing(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Wait("the overview", `document.querySelector('#count-never')`, 15*time.Second)
	leaveDuringRefresh(t, b, `*/api/v1/alarms?*state=open*`, 15*time.Second)
}

// leaveDuringRefresh holds the answer to the screen's next refresh (a
// request matching pattern), opens "Tài khoản của tôi" meanwhile, lets the
// answer go and fails if the screen, left, asks again within more than
// one refresh period. Nothing can make a screen that stopped ask again,
// so a slow machine cannot fail this; at worst it passes a late poller.
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
	case <-time.After(period + 8*time.Second):
	}
}
