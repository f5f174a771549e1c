package console

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"loaxa.vn/e2e/rig"
)

// BenchmarkConsoleLoad measures opening the console, signed in, on a slow
// mobile link (3G: 400 kbit/s down, 150 kbit/s up, 300 ms latency): the
// time from navigation until the overview shows the clusters, and the
// bytes that crossed the link (page, modules, words and API answers).
// "first" has an empty cache, "again" revalidates what it has.
func BenchmarkConsoleLoad(b *testing.B) {
	c := rig.StartController(b, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	for i := range 20 {
		c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "ll-" + string(rune('a'+i)), "name": "Cụm loa", "area": "11527", "lat": 20.8 + float64(i)/100, "lon": 106.7}, nil)
	}
	br := StartBrowser(b)
	cdpDo := func(what string, f func(ctx context.Context, t *chromedp.Target) error) {
		br.Do(what, chromedp.Func(f))
	}
	br.Do("open", chromedp.Navigate(c.URL+"/"))
	br.Wait("sign-in form", `document.querySelector('input[name=username]')`, 15*time.Second)
	br.Do("sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "can-bo-lap-le"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), officerPassword),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	br.Wait("overview", `document.querySelector('#count-never')`, 15*time.Second)
	br.EmulateLink("throttle to 3G", &network.Conditions{Latency: 300, DownloadThroughput: 400_000 / 8, UploadThroughput: 150_000 / 8})
	load := func(b *testing.B, cacheDisabled bool) {
		cdpDo("cache", func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: cacheDisabled})
			return err
		})
		var bytes float64
		for b.Loop() {
			br.Do("leave", chromedp.Navigate("about:blank"))
			br.Do("open again", chromedp.Navigate(c.URL+"/#/overview"))
			br.Wait("overview with counts", `document.querySelector('#count-never') && document.querySelector('#count-never').innerText.startsWith('20')`, 60*time.Second)
			bytes = MustEval[float64](br, `performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((n, e) => n + e.transferSize, 0)`)
		}
		b.ReportMetric(bytes, "B/load")
	}
	b.Run("first", func(b *testing.B) { load(b, true) })
	b.Run("again", func(b *testing.B) { load(b, false) })
}
