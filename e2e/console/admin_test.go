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

// TestFilesOfAnotherUserShownToTheAdmin: a data directory restored or
// copied as root holds files the controller's user may not read, and GET
// /health's "files" check said so, but the overview showed only the
// broker's and the disk's banners: an administrator learnt it from the
// clusters failing to download their bulletins. The overview and the
// cluster list now say it to those who manage the controller, with what
// to do and the check's words as the tooltip; an officer, who cannot mend
// it, is not shown it. The controller takes itself for another user than
// the one the test runs as, whose files the data directory holds.
func TestFilesOfAnotherUserShownToTheAdmin(t *testing.T) {
	t.Parallel()
	const serviceUID = 64123 // no file of the test is its
	c := rig.StartControllerWith(t, rig.ControllerOptions{EUID: func() int { return serviceUID }})
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "admin", rig.AdminPassword, "Quản trị toàn hệ thống")
	b.Wait("the overview says the files belong to another user", `document.querySelector('#overview-files-foreign')`, 20*time.Second)
	banner := MustEval[[]string](b, `(() => { const el = document.querySelector('#overview-files-foreign'); return [el.innerText, el.title]; })()`)
	if !contains(banner[0], "thư mục dữ liệu của bộ điều khiển thuộc về một người dùng khác", "không tải được bản tin", "chown -R") {
		t.Errorf("the overview's banner says %q", banner[0])
	}
	if !contains(banner[1], "belong to", "not to this controller's user (uid 64123)") {
		t.Errorf("the overview's banner's tooltip is %q; want the files check's words", banner[1])
	}
	b.Go("#/clusters", `document.querySelector('#cluster-area')`)
	b.Wait("the cluster list says it too", `document.querySelector('#clusters-files-foreign')`, 10*time.Second)

	b.Do("sign out", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('header.top button')].find((e) => e.textContent === 'Đăng xuất').click()`))
	b.Wait("the sign-in form", `document.querySelector('input[name=username]')`, 10*time.Second)
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/", `document.querySelector('#h-fleet')`)
	if MustEval[bool](b, `!!document.querySelector('#overview-files-foreign')`) {
		t.Error("the officer's overview says the files belong to another user; only an administrator can mend it")
	}
}
