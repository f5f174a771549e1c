package console

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"loaxa.vn/e2e/rig"
)

// TestSlowScreenDoesNotCoverTheNext: the overview's module comes slowly
// (two seconds of latency on it alone, as on a poor link); the officer
// signs in and at once opens Phát trực tiếp, which comes first. When the
// overview arrives at last, it must not draw itself over the screen the
// officer is on: the live screen stays, with its form.
func TestSlowScreenDoesNotCoverTheNext(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	slow := c.URL + "/static/js/views/overview.js"
	b.EmulateLink("slow down the overview's module", &network.Conditions{URLPattern: slow, Latency: 2000, DownloadThroughput: -1, UploadThroughput: -1})
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Do("open Phát trực tiếp at once", chromedp.Evaluate[chromedp.Void](`location.hash = '#/live'`))
	b.Wait("the live screen", `document.querySelector('#live-start')`, 15*time.Second)
	if loaded := MustEval[bool](b, `performance.getEntriesByType('resource').some(e => e.name.endsWith('/views/overview.js'))`); loaded {
		t.Fatal("the overview's module came before the live screen: the test did not slow it down")
	}
	// The overview draws its frame as it begins and then asks for the
	// clusters: once that answer has come, it has drawn.
	b.Wait("the overview's request for the clusters", `performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/nodes'))`, 15*time.Second)
	if !MustEval[bool](b, `!!document.querySelector('#live-start') && !document.querySelector('#count-never')`) {
		t.Errorf("after the overview came, the page shows %q, want the live screen", MustEval[string](b, `document.querySelector('main').innerText.slice(0, 200)`))
	}
}
