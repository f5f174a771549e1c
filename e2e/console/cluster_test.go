package console

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// TestClusterPlaysSayWhatPlayed: a cluster plays a bulletin, an emergency
// and a live call. Its page listed them as "a000001", "e000001" and the
// call's id, which told the officer nothing; it must name the bulletin's
// title, "Khẩn cấp: <tiêu đề>" and "Phát trực tiếp", each link still
// leading to the play's deliveries.
func TestClusterPlaysSayWhatPlayed(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)
	rig.StartNode(t, c.CreateNode("lap-le-01", "11527"), rig.NodeOptions{})
	rig.Eventually(t, minWait, "the cluster online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })
	tone := c.Upload("tin.wav", rig.ToneWAV(660, time.Second, 16000, 1))

	var ann loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{"title": "Lịch tiêm chủng tháng 12", "content_id": tone.ID, "priority": "normal",
		"targets": map[string][]string{"areas": {"11527"}, "nodes": {}}, "start": time.Now().Add(2 * time.Second).Format(time.RFC3339)}, &ann)
	played := func(what, id string) {
		t.Helper()
		rig.Eventually(t, minWait, what+" played", func() bool {
			var ev struct {
				Events []struct{ Type, Announcement string }
			}
			c.MustDo("GET", "/api/v1/events?node=lap-le-01", nil, &ev)
			for _, e := range ev.Events {
				if e.Announcement == id && e.Type == "completed" {
					return true
				}
			}
			return false
		})
	}
	played("the bulletin", ann.ID)
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": tone.ID, "targets": []string{"11527"}, "repeat": 1, "title": "Lũ quét thôn 3"}, &em)
	played("the emergency", em.ID)

	var tok struct{ Token string }
	c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": "can-bo-lap-le", "password": officerPassword}, &tok)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: tok.Token, Areas: []string{"11527"}, Title: "Họp thôn"})
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Stream(ctx, bytes.NewReader(make([]byte, nodeaudio.Bytes(time.Second)))); err != nil {
		t.Fatal(err)
	}
	if _, err := call.End(ctx); err != nil {
		t.Fatal(err)
	}
	played("the live call", call.ID())

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/clusters/lap-le-01", `document.querySelector('#node-plays')`)
	links := MustEval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('#node-plays tbody a')].map(a => [decodeURIComponent(a.hash.slice('#/deliveries/'.length)), a.innerText]))`)
	want := map[string]string{ann.ID: "Lịch tiêm chủng tháng 12", em.ID: "Khẩn cấp: Lũ quét thôn 3", call.ID(): "Phát trực tiếp"}
	for id, w := range want {
		if links[id] != w {
			t.Errorf("the plays of %s read %q, want %q (all: %v)", id, links[id], w, links)
		}
	}
	if t.Failed() {
		return
	}
	if got := MustEval[string](b, text("#node-plays")); strings.Contains(got, ann.ID) || strings.Contains(got, em.ID) {
		t.Errorf("the plays still name ids: %q", got)
	}
}

// TestClustersNamedNotByTheirCode: a bulletin's result on each cluster, the
// alarms screen, the overview's open alarms, the emergency board and a
// conflict found when placing a bulletin named each cluster by its code ("lap-le-01"), where the cluster list and the report name it ("Cụm
// loa chợ Lập Lễ"); an officer reads the names. Each names it, with the
// code as the link's tooltip.
func TestClustersNamedNotByTheirCode(t *testing.T) {
	t.Parallel()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: func(cfg *app.Config) { cfg.Health.Sweep = 50 * time.Millisecond }})
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	sim, err := board.New(clock.Real{}, board.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Credentials protocol.Credentials }
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa chợ Lập Lễ", "area": "11527", "lat": 20.86, "lon": 106.74}, &created)
	rig.StartNode(t, &created.Credentials, rig.NodeOptions{Board: sim})
	rig.Eventually(t, minWait, "the cluster online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })
	tone := c.Upload("tin.wav", rig.ToneWAV(660, time.Second, 16000, 1))
	// On the minute, as the programme's form places one: at 00:00 or
	// later in Vietnam, so that the form's day is that of the bulletin.
	vn := time.FixedZone("+07", 7*3600)
	at := time.Now().In(vn).Truncate(time.Minute).Add(2 * time.Hour)
	ann := c.Announce(tone.ID, []string{"11527"}, nil, at)
	sim.SetSpeakerLine(protocol.LineOpen)
	rig.Eventually(t, minWait, "the alarm open", func() bool {
		var l struct{ Alarms []loaxa.Alarm }
		c.MustDo("GET", "/api/v1/alarms?state=open", nil, &l)
		return len(l.Alarms) == 1
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	named := func(where, link string) {
		t.Helper()
		got := MustEval[[]string](b, `(() => { const a = document.querySelector('`+link+`'); return a ? [a.innerText, a.title] : []; })()`)
		if len(got) != 2 || got[0] != "Cụm loa chợ Lập Lễ" || got[1] != "lap-le-01" {
			t.Errorf("%s names the cluster %q (text, tooltip), want “Cụm loa chợ Lập Lễ” with lap-le-01 as its tooltip", where, got)
		}
	}
	b.Wait("the alarm on the overview", `document.querySelector('#overview-alarms li a[href="#/clusters/lap-le-01"]')`, 15*time.Second)
	named("the overview's open alarms", `#overview-alarms li a[href="#/clusters/lap-le-01"]`)
	b.Go("#/alarms", `document.querySelector('#alarms-open tr[data-kind="speaker-line-open"]')`)
	named("the alarms screen", `#alarms-open tr[data-kind="speaker-line-open"] a[href="#/clusters/lap-le-01"]`)
	b.Go("#/deliveries/"+ann.ID, `document.querySelector('#deliveries tr[data-node="lap-le-01"]')`)
	named("the bulletin's result on each cluster", `#deliveries tr[data-node="lap-le-01"] a`)
	// A second bulletin at the same time: the conflict names the cluster,
	// and the bulletin it overlaps by its title (the answer's items;
	// before, "một bản tin", and its id in the tooltip's English).
	b.Go("#/programme", `document.querySelector('#place-form')`)
	b.Do("place one at the same time",
		chromedp.SetValue(chromedp.CSS(`#place-content`), tone.ID),
		chromedp.SetValue(chromedp.CSS(`#place-when`), "time"),
		chromedp.SetValue(chromedp.CSS(`#place-time`), at.Format("15:04")),
		chromedp.SetValue(chromedp.CSS(`#place-recurrence`), "once"),
		chromedp.SetValue(chromedp.CSS(`#place-start`), at.Format("02/01/2006")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#place-when').dispatchEvent(new Event('change'))`),
		chromedp.Click(chromedp.CSS(`#place-submit`)))
	b.Wait("the conflict", `document.querySelector('#place-conflicts li')`, 15*time.Second)
	if got := MustEval[string](b, text("#place-conflicts li")); !strings.HasPrefix(got, "Cụm loa chợ Lập Lễ: trùng giờ với bản tin “Thông báo” cùng mức ưu tiên lúc "+at.Format("15:04")) {
		t.Errorf("the conflict says %q, want it to begin with the cluster's name and the bulletin's title, “Cụm loa chợ Lập Lễ: trùng giờ với bản tin “Thông báo” cùng mức ưu tiên lúc %s”", got, at.Format("15:04"))
	}
	// The emergency board names it too, once it has read the names (its
	// rows are drawn by code first, so that the board shows at once).
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": tone.ID, "targets": []string{"11527"}, "repeat": 1, "drill": true}, &em)
	b.Go("#/emergency/"+em.ID, `document.querySelector('#ack-board tr[data-node="lap-le-01"]')`)
	b.Wait("the board's row named", text(`#ack-board tr[data-node="lap-le-01"] a`)+` === 'Cụm loa chợ Lập Lễ'`, 10*time.Second)
	named("the emergency board", `#ack-board tr[data-node="lap-le-01"] a`)
}
