package console

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
)

// TestTechnicianCorrectsAndMovesACluster: a cluster, once enrolled, could
// not be corrected from the console (nor the API). The district's
// technician opens the cluster's page, corrects its misspelt name and its
// surveyed position, then moves it to the neighbouring commune, confirming
// the move; the page and the store say so. A commune's technician is
// offered no other commune to move it to.
func TestTechnicianCorrectsAndMovesACluster(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("311", "Huyện Thủy Nguyên", "")
	c.CreateArea("11527", "Xã Lập Lễ", "311")
	c.CreateArea("11530", "Xã Tam Hưng", "311")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "ky-thuat-huyen", "password": officerPassword, "role": "technician", "area": "311"}, nil)
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "ky-thuat-lap-le", "password": officerPassword, "role": "technician", "area": "11527"}, nil)
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cum loa cho", "area": "11527", "lat": 20.9, "lon": 106.6}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "ky-thuat-lap-le", officerPassword, "Kỹ thuật viên xã Lập Lễ")
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-edit')`)
	if got := MustEval[[]string](b, `[...document.querySelectorAll('#node-area option')].map(o => o.value)`); len(got) != 1 || got[0] != "11527" {
		t.Errorf("a commune's technician is offered the areas %v, want only the commune", got)
	}

	b = StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "ky-thuat-huyen", officerPassword, "Kỹ thuật viên huyện Thủy Nguyên")
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-edit')`)
	if got := MustEval[string](b, text("#h-edit")); got != "Sửa thông tin cụm loa" {
		t.Errorf("the edit panel is headed %q", got)
	}
	b.Do("correct the name and the position",
		chromedp.SetValue(chromedp.CSS(`#node-name`), "Cụm loa chợ Lập Lễ"),
		chromedp.SetValue(chromedp.CSS(`#node-lat`), "20.9123"),
		chromedp.Click(chromedp.CSS(`#node-edit-save`)))
	b.Wait("the corrected name on the page", text("h1")+`.startsWith('Cụm loa chợ Lập Lễ')`, 10*time.Second)
	if n := c.Node("lap-le-01"); n.Name != "Cụm loa chợ Lập Lễ" || n.Lat != 20.9123 || n.Lon != 106.6 || n.Area != "11527" {
		t.Errorf("after the correction: %+v", n)
	}
	if got := MustEval[string](b, `[...document.querySelectorAll('tr')].find(r => r.innerText.startsWith('Toạ độ')).innerText`); !contains(got, "20.9123, 106.6") {
		t.Errorf("the position on the page %q", got)
	}

	b.Do("move it to Xã Tam Hưng",
		chromedp.SetValue(chromedp.CSS(`#node-area`), "11530"),
		chromedp.Click(chromedp.CSS(`#node-edit-save`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open]')`, 10*time.Second)
	if got := MustEval[string](b, text("dialog[open]")); !contains(got, "Chuyển cụm loa sang địa bàn khác?", "Cụm loa chợ Lập Lễ sẽ chuyển từ Xã Lập Lễ sang Xã Tam Hưng") {
		t.Errorf("the confirmation says %q", got)
	}
	b.Shot("40-chuyen-cum-loa")
	MustEval[bool](b, `(() => { [...document.querySelectorAll('dialog[open] button')].find(x => x.textContent === 'Chuyển cụm loa').click(); return true; })()`)
	b.Wait("the new commune on the page", `[...document.querySelectorAll('tr')].some(r => r.innerText.startsWith('Địa bàn') && r.innerText.includes('Xã Tam Hưng'))`, 10*time.Second)
	if n := c.Node("lap-le-01"); n.Area != "11530" || n.Name != "Cụm loa chợ Lập Lễ" {
		t.Errorf("after the move: %+v", n)
	}
	var l struct{ Nodes []loaxa.Node }
	c.MustDo("GET", "/api/v1/nodes?area=11530", nil, &l)
	if len(l.Nodes) != 1 {
		t.Errorf("Xã Tam Hưng's clusters after the move: %+v", l.Nodes)
	}
}
