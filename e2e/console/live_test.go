package console

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// TestLiveFromTheBrowserMicrophone: a commune officer opens Phát trực
// tiếp, picks the commune and goes on air with the browser's (fake)
// microphone; the commune's cluster plays the call, and stopping ends it
// on the cluster.
func TestLiveFromTheBrowserMicrophone(t *testing.T) {
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("11527", "Xã Lập Lễ", "31")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	var created struct{ Credentials protocol.Credentials }
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa thôn 1", "area": "11527", "lat": 20.86, "lon": 106.74}, &created)
	n := rig.StartNode(t, &created.Credentials, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	b.Do("pick the commune and go on air", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`document.querySelector('#live-areas option[value=%q]').selected = true`, "11527")),
		chromedp.Click(chromedp.CSS(`#live-start`)))
	b.Wait("on air", text("#live-state")+` === 'ĐANG PHÁT TRỰC TIẾP'`, 15*time.Second)
	var call string
	rig.Eventually(t, 10*time.Second, "the cluster plays the call", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && strings.HasPrefix(p.Occurrence, "live-") && p.Priority == protocol.PriorityHigh {
			call = p.Occurrence
			return true
		}
		return false
	})
	b.Wait("the level meter moves", `parseFloat(document.querySelector('#live-level').style.width) > 0`, 10*time.Second)
	b.Shot("live-dang-phat")
	b.Do("stop", chromedp.Click(chromedp.CSS(`#live-stop`)))
	b.Wait("ended", text("#live-state")+`.startsWith('Đã kết thúc')`, 15*time.Second)
	rig.Eventually(t, 10*time.Second, "the call off the cluster", func() bool {
		p := n.Agent.Status().Playing
		return p == nil || p.Occurrence != call
	})
}
