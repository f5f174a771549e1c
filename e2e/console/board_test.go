package console

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// BenchmarkEmergencyBoard measures a province officer's board of an
// alert to LOAXA_BENCH_BOARD_NODES clusters (default 10,000) in 100
// communes, none of them connected (every one "offline"): the time from
// opening the board until every cluster's row is there, the page's
// JavaScript heap then, and choosing one commune in the table's filter.
//
//	LOAXA_BENCH_BOARD_NODES=10000 go test -count=1 -run '^$' -bench EmergencyBoard -benchtime 3x ./e2e/console
func BenchmarkEmergencyBoard(b *testing.B) {
	n := 10000
	if v := os.Getenv("LOAXA_BENCH_BOARD_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LOAXA_BENCH_BOARD_NODES=%q", v)
		}
	}
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	const communes = 100
	for i := range communes {
		c.CreateArea(fmt.Sprintf("31%03d", i), fmt.Sprintf("Xã %03d", i), "31")
	}
	for from := 0; from < n; from += 1000 {
		reqs := make([]map[string]any, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			id := fmt.Sprintf("cum-%05d", i)
			reqs = append(reqs, map[string]any{"id": id, "name": "Cụm loa " + id, "area": fmt.Sprintf("31%03d", i%communes), "lat": 20.8, "lon": 106.7})
		}
		c.MustDo("POST", "/api/v1/nodes/batch", map[string]any{"nodes": reqs}, nil)
	}
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-tinh", "password": officerPassword, "role": "province", "area": "31"}, nil)
	ct := c.Upload("bao.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": ct.ID, "targets": []string{"31"}, "drill": true}, &em)

	br := StartBrowser(b)
	br.SignIn(c.URL, "can-bo-tinh", officerPassword, "Cán bộ thành phố Hải Phòng")
	var heap, fetchMS float64
	var filter time.Duration
	b.ResetTimer()
	for b.Loop() {
		br.Go("#/overview", `document.querySelector('#count-never')`)
		br.Do("open the board", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "#/emergency/"+em.ID)))
		br.Wait("every cluster's row", `document.querySelectorAll('#ack-board tbody tr').length === `+strconv.Itoa(n), 2*time.Minute)
		b.StopTimer()
		heap = MustEval[float64](br, `performance.memory ? performance.memory.usedJSHeapSize : 0`)
		fetchMS = MustEval[float64](br, `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/emergency/`+em.ID+`') && !e.name.includes('stream')).map(e => e.duration).pop() || 0`)
		t0 := time.Now()
		br.Do("choose one commune", chromedp.SetValue(chromedp.CSS(`#em-area-filter`), "31007"),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#em-area-filter').dispatchEvent(new Event('change'))`))
		filter = time.Since(t0)
		if got := MustEval[int](br, `[...document.querySelectorAll('#ack-board tbody tr')].filter(r => !r.hidden).length`); got != n/communes {
			b.Fatalf("%d rows shown for one commune, want %d", got, n/communes)
		}
		b.StartTimer()
	}
	b.ReportMetric(heap/1e6, "heap-MB")
	b.ReportMetric(fetchMS, "report-fetch-ms")
	b.ReportMetric(float64(filter.Milliseconds()), "filter-ms")
}
