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
