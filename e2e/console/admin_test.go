package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/e2e/rig"
)

// TestAdminClusterTableFollowsChanges: "Thu hồi" on the admin screen
// revoked the cluster, and the toast said so, but its row went on saying
// "Đang dùng được" until the page was opened again; a cluster enrolled
// from the form was not in the table at all, so its new code or key could
// not be had from the screen. The table must show each change as it is
// made, and keep the code just given on the screen.
func TestAdminClusterTableFollowsChanges(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.CreateNode("lap-le-01", "11527")

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "admin", rig.AdminPassword, "Quản trị toàn hệ thống")
	b.Go("#/admin", `document.querySelector('#node-id')`)
	// The row of cluster id, found by the id under its name; null if none.
	row := func(id string) string {
		return `([...document.querySelectorAll('#h-nodes ~ .table-wrap tbody tr')].find((r) => r.querySelector('td .hint').textContent === '` + id + `') || null)`
	}
	if got := MustEval[string](b, row("lap-le-01")+`.innerText`); !strings.Contains(got, "Đang dùng được") {
		t.Fatalf("before: %q", got)
	}
	b.Do("revoke it", chromedp.Evaluate[chromedp.Void](row("lap-le-01")+`.querySelector('button.danger').click()`))
	confirmDanger(b, "confirm")
	b.Wait("the toast", `document.querySelector('.toast')`, 10*time.Second)
	if n := c.Node("lap-le-01"); n.Credentials != "revoked" {
		t.Fatalf("the cluster is %q after revoking", n.Credentials)
	}
	b.Wait("the row to say so", `(`+row("lap-le-01")+` || {innerText: ''}).innerText.includes('Đã thu hồi')`, 10*time.Second)

	b.Do("enrol another",
		chromedp.SendKeys(chromedp.CSS(`#node-id`), "lap-le-02"),
		chromedp.SendKeys(chromedp.CSS(`#node-name`), "Cụm loa chợ"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#node-id').form.requestSubmit()`))
	b.Wait("its code", `document.querySelector('#enrol-result .stat')`, 10*time.Second)
	b.Wait("the cluster just enrolled in the table", row("lap-le-02")+` !== null`, 10*time.Second)
	if got := MustEval[string](b, row("lap-le-02")+`.innerText`); !strings.Contains(got, "Cụm loa chợ") || !strings.Contains(got, "Chờ nhập mã đăng ký") {
		t.Errorf("the cluster just enrolled reads %q", got)
	}
	if !MustEval[bool](b, `!!document.querySelector('#enrol-result .stat')`) {
		t.Errorf("its code is not on the screen")
	}
}

// TestAdminWithoutRightsSaysSo: a commune officer who opened "Quản trị"
// from an old link saw the heading over an empty page, not knowing
// whether it was still loading or broken. Without rights to any of its
// parts, the screen says so.
func TestAdminWithoutRightsSaysSo(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/admin", `document.querySelector('main h1')`)
	if got := MustEval[string](b, text("main")); !strings.Contains(got, "Tài khoản của bạn không có quyền quản trị") {
		t.Errorf("the administration screen without rights says %q", got)
	}
}
