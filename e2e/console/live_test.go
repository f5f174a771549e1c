package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// TestLiveFromTheBrowserMicrophone: a commune officer opens Phát trực
// tiếp, picks the commune and goes on air with the browser's (fake)
// microphone; the commune's cluster plays the call, and stopping ends it
// on the cluster.
func TestLiveFromTheBrowserMicrophone(t *testing.T) {
	t.Parallel()
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
	emulatePhone(b, 1) // an officer speaks from wherever they are
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	if w := MustEval[int](b, `document.documentElement.scrollWidth`); w > 412 {
		t.Errorf("Phát trực tiếp is %d px wide on a 412 px screen: the page scrolls sideways", w)
	}
	// The page is drawn; wait for the commune's choice itself, so that a
	// failure says whether it never came (the page text and a screenshot).
	b.Wait("the commune among the areas", `document.querySelector('#live-areas option[value="11527"]')`, 10*time.Second)
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
	// The call on air is listed as a card whose cut button is on the
	// screen, not off to the right of a table.
	b.Wait("the call among those on air", `document.querySelector('tr[data-call] button.cut')`, 10*time.Second)
	if right := MustEval[float64](b, `document.querySelector('tr[data-call] button.cut').getBoundingClientRect().right`); right > 412 {
		t.Errorf("the cut button ends %.0f px from the left of a 412 px screen", right)
	}
	b.Shot("live-dang-phat")
	b.Do("stop", chromedp.Click(chromedp.CSS(`#live-stop`)))
	b.Wait("ended", text("#live-state")+`.startsWith('Đã kết thúc')`, 15*time.Second)
	if why, _ := Eval[string](b, text("#live-ended-why")); why != "" {
		t.Errorf("the call the officer stopped is told as gone wrong: %q", why)
	}
	// The end says how long the call was on air, from its recorded times,
	// in minutes and seconds; before, "Đã kết thúc: 69 khung âm thanh.",
	// a count of audio frames. The count is the tooltip, for a technician.
	var rec loaxa.LiveCallReport
	c.MustDo("GET", "/api/v1/live/calls/"+call, nil, &rec)
	want := "Đã kết thúc: đã phát trực tiếp " + vnDuration(time.Duration(rec.Ended.UnixMilli()-rec.Started.UnixMilli())*time.Millisecond) + "."
	if got := MustEval[[]string](b, `[`+text("#live-state")+`, document.querySelector('#live-state').title]`); got[0] != want || got[1] != fmt.Sprintf("%d khung âm thanh đã gửi tới các cụm loa", rec.FramesSent) {
		t.Errorf("the call's end says %q (tooltip %q), want %q (tooltip the %d frames sent)", got[0], got[1], want, rec.FramesSent)
	}
	rig.Eventually(t, 10*time.Second, "the call off the cluster", func() bool {
		p := n.Agent.Status().Playing
		return p == nil || p.Occurrence != call
	})
}

// TestLiveCallsOnAirAndCut: a colleague speaks a drill live to the commune
// from the Go client; the commune officer's Phát trực tiếp screen lists
// the call on air — who speaks, the commune, since when, DIỄN TẬP, the
// cluster playing it — and "Ngắt cuộc gọi", once confirmed, ends it: the
// speaker is told who cut it, the cluster stops, the list empties. Then
// the officer goes on air from the browser with "Diễn tập" ticked: the
// screen and the cluster say it is a drill.
func TestLiveCallsOnAirAndCut(t *testing.T) {
	t.Parallel()
	c, n := lapLeWithTwoOfficers(t)

	var tok struct{ Token string }
	c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": "can-bo-phat", "password": officerPassword}, &tok)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: tok.Token, Areas: []string{"11527"}, Title: "Diễn tập sơ tán", Drill: true, Volume: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Three minutes of quiet voice: the call stays on air until it is cut.
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(make([]byte, nodeaudio.Bytes(3*time.Minute)))) }()
	var id string
	rig.Eventually(t, 15*time.Second, "the cluster plays the drill", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && strings.HasPrefix(p.Occurrence, "live-") && p.Drill {
			id = p.Occurrence
			return true
		}
		return false
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	row := fmt.Sprintf(`#live-calls tr[data-call=%q]`, id)
	b.Wait("the call listed on air with its cluster playing", text(row+" td.playing")+` === '1 / 1'`, 15*time.Second)
	if got := MustEval[string](b, text(row)); !contains(got, "can-bo-phat", "Xã Lập Lễ", "DIỄN TẬP") {
		t.Errorf("the row of the call on air says %q", got)
	}
	if got := MustEval[string](b, `document.querySelector('#h-live-calls').innerText`); got != "Cuộc gọi đang phát" {
		t.Errorf("list heading %q", got)
	}
	// The list and the clusters playing come in one request per refresh
	// (GET /live/calls with summary=true), not one more per call on air.
	reqs := MustEval[[]string](b, `performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.includes('/api/v1/live/calls'))`)
	for _, u := range reqs {
		if !strings.Contains(u, "/api/v1/live/calls?") || !strings.Contains(u, "summary=true") {
			t.Errorf("the screen requested %s; want only the list with its summaries", u)
		}
	}
	if len(reqs) == 0 {
		t.Error("no request for the list of calls seen")
	}
	b.Shot("live-cuoc-goi-dang-phat")
	b.Do("cut it", chromedp.Click(chromedp.CSS(row+` button.cut`)))
	b.Wait("the confirmation", `document.querySelector('dialog[open] #live-cut-confirm')`, 5*time.Second)
	if got := MustEval[string](b, text("dialog[open]")); !contains(got, "Ngắt cuộc gọi trực tiếp này?", "can-bo-phat đang nói tới Xã Lập Lễ", "DIỄN TẬP") {
		t.Errorf("confirmation says %q", got)
	}
	confirmDanger(b, "confirm")
	b.Wait("the list empty", `document.querySelector('#live-calls-none') !== null`, 15*time.Second)

	if err := <-streamed; !errors.Is(err, liveclient.ErrEnded) {
		t.Errorf("the speaker's stream after the cut: %v, want ErrEnded", err)
	}
	if st, err := call.End(ctx); err != nil || st.Reason != loaxa.LiveEndCut || st.CutBy != "can-bo-lap-le" || !st.Drill {
		t.Errorf("speaker's last status %+v, %v; want the drill cut by can-bo-lap-le", st, err)
	}
	rig.Eventually(t, 10*time.Second, "the cluster stops the call", func() bool {
		p := n.Agent.Status().Playing
		return p == nil || p.Occurrence != id
	})
	var rec loaxa.LiveCallReport
	c.MustDo("GET", "/api/v1/live/calls/"+id, nil, &rec)
	if rec.Active() || rec.CutBy != "can-bo-lap-le" || !rec.Drill {
		t.Errorf("record after the cut %+v", rec.LiveCall)
	}

	// A call of the city above: listed, but the commune may not cut it.
	city, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: c.Token, Areas: []string{"31"}, Title: "Thông báo của thành phố"})
	if err != nil {
		t.Fatal(err)
	}
	cityRow := fmt.Sprintf(`#live-calls tr[data-call=%q]`, city.ID())
	b.Wait("the city's call listed", `document.querySelector('`+cityRow+`') !== null`, 15*time.Second)
	if got := MustEval[bool](b, `document.querySelector('`+cityRow+` button.cut') === null`); !got {
		t.Error("the commune officer is offered to cut the city's call")
	}
	if st, err := city.End(ctx); err != nil || st.Reason != loaxa.LiveEndSpeakerStopped {
		t.Fatalf("city call's end %+v, %v", st, err)
	}
	b.Wait("the list empty again", `document.querySelector('#live-calls-none') !== null`, 15*time.Second)

	// A drill from the browser.
	b.Do("tick Diễn tập, pick the commune and go on air",
		chromedp.Click(chromedp.CSS(`#live-drill`)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#live-areas option[value="11527"]').selected = true`),
		chromedp.Click(chromedp.CSS(`#live-start`)))
	if got := MustEval[string](b, `document.querySelector('#live-volume').value`); got != "3" {
		t.Errorf("volume for a drill %q, want 3 (quiet)", got)
	}
	b.Wait("on air as a drill", text("#live-state")+` === 'ĐANG PHÁT TRỰC TIẾP — DIỄN TẬP'`, 15*time.Second)
	var own string
	rig.Eventually(t, 10*time.Second, "the cluster plays the browser's drill", func() bool {
		p := n.Agent.Status().Playing
		if p != nil && strings.HasPrefix(p.Occurrence, "live-") && p.Occurrence != id && p.Drill {
			own = p.Occurrence
			return true
		}
		return false
	})
	b.Wait("the browser's drill listed", fmt.Sprintf(`document.querySelector('#live-calls tr[data-call=%q][data-drill="true"]') !== null`, own), 15*time.Second)
	b.Shot("live-dien-tap")
	b.Do("stop", chromedp.Click(chromedp.CSS(`#live-stop`)))
	b.Wait("ended", text("#live-state")+`.startsWith('Đã kết thúc')`, 15*time.Second)
	rig.Eventually(t, 10*time.Second, "the browser's drill off the cluster", func() bool {
		p := n.Agent.Status().Playing
		return p == nil || p.Occurrence != own
	})
	rec = loaxa.LiveCallReport{}
	c.MustDo("GET", "/api/v1/live/calls/"+own, nil, &rec)
	if !rec.Drill || rec.Volume != 3 || rec.CreatedBy != "can-bo-lap-le" || rec.EndReason != loaxa.LiveEndSpeakerStopped {
		t.Errorf("record of the browser's drill %+v", rec.LiveCall)
	}
}

// TestLiveCallHeldBehindAnAlertShown: an officer speaks to the commune
// while a storm alert still plays on its cluster. The cluster held the
// call back behind the alert and, the alert outlasting the call's 5 s
// start window, missed it; the speaker and the commune's Phát trực tiếp
// screen showed "0 / 1" clusters playing and nothing of why. The speaker
// is told, as it happens, that the cluster waits for that alert to finish
// and then that it missed the call, and the screen's list of calls on air
// says so under the clusters playing, in Vietnamese. Both name the alert
// by its title, beside its id: "e000001" alone was no alert an officer
// knew.
func TestLiveCallHeldBehindAnAlertShown(t *testing.T) {
	t.Parallel()
	c, n := lapLeWithTwoOfficers(t)

	storm := c.Upload("bao.wav", rig.ToneWAV(440, 40*time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": storm.ID, "targets": []string{"11527"}, "repeat": 1, "title": "Bão số 3"}, &em)
	rig.Eventually(t, 30*time.Second, "the cluster plays the storm alert", func() bool {
		p := n.Agent.Status().Playing
		return p != nil && p.Priority == protocol.PriorityEmergency
	})

	var tok struct{ Token string }
	c.MustDo("POST", "/api/v1/auth/token", map[string]string{"username": "can-bo-phat", "password": officerPassword}, &tok)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	holds := make(chan liveclient.Hold, 64)
	call, err := liveclient.Dial(ctx, liveclient.Options{URL: c.URL, Token: tok.Token, Areas: []string{"11527"}, Title: "Họp dân",
		OnStatus: func(st liveclient.Status) {
			for _, h := range st.Held {
				holds <- h
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- call.Stream(ctx, bytes.NewReader(make([]byte, nodeaudio.Bytes(3*time.Minute)))) }()
	// told waits for the speaker's status saying want.
	told := func(what string, want liveclient.Hold) {
		t.Helper()
		for {
			select {
			case h := <-holds:
				if h == want {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the speaker was not told %s (%+v)", what, want)
			}
		}
	}
	told("that the cluster waits for the alert", liveclient.Hold{Alert: em.ID, Title: "Bão số 3", Waiting: 1})
	told("that the cluster missed the call behind the alert", liveclient.Hold{Alert: em.ID, Title: "Bão số 3", Missed: 1})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	row := fmt.Sprintf(`#live-calls tr[data-call=%q]`, call.ID())
	b.Wait("the call listed with the cluster that missed it behind the alert", text(row+" td.playing")+`.includes('bản tin khẩn cấp “Bão số 3” (`+em.ID+`)')`, 15*time.Second)
	if got := MustEval[string](b, text(row+" td.playing")); !contains(got, "0 / 1", "1 cụm loa không phát được cuộc gọi: bản tin khẩn cấp “Bão số 3” ("+em.ID+") vẫn phát quá 5 giây") {
		t.Errorf("the call's clusters playing say %q", got)
	}
	b.Shot("live-cho-ban-tin-khan-cap")

	if _, err := call.End(ctx); err != nil {
		t.Fatal(err)
	}
	<-streamed
}

// TestLiveCallCutOffByAnAlertShown: a commune officer speaks from the
// browser to the commune's two clusters when a storm alert to one village
// cuts the call off there, and then a flood alert to the whole commune
// cuts it off on the other. The speaker's WebSocket said so ("preempted":
// n) but the Phát trực tiếp screen showed nothing: the officer went on
// speaking, at the end to no one. The screen says on how many of the
// call's clusters an alert cut it off, and, once on every one, that
// nobody hears the call any more, with a button that ends it.
func TestLiveCallCutOffByAnAlertShown(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("11527", "Xã Lập Lễ", "31")
	c.CreateArea("1152701", "Thôn Đông", "11527")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	nodes := map[string]*rig.Node{}
	for _, n := range []struct{ id, name, area string }{{"lap-le-01", "Cụm loa chợ Lập Lễ", "11527"}, {"lap-le-02", "Cụm loa thôn Đông", "1152701"}} {
		var created struct{ Credentials protocol.Credentials }
		c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": n.id, "name": n.name, "area": n.area, "lat": 20.86, "lon": 106.74}, &created)
		nodes[n.id] = rig.StartNode(t, &created.Credentials, rig.NodeOptions{})
	}
	rig.Eventually(t, 15*time.Second, "both clusters online", func() bool {
		return c.Node("lap-le-01").Status.State == loaxa.NodeOnline && c.Node("lap-le-02").Status.State == loaxa.NodeOnline
	})

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	b.Wait("the commune among the areas", `document.querySelector('#live-areas option[value="11527"]')`, 10*time.Second)
	b.Do("pick the commune and go on air", chromedp.Evaluate[chromedp.Void](
		`document.querySelector('#live-areas option[value="11527"]').selected = true`),
		chromedp.Click(chromedp.CSS(`#live-start`)))
	b.Wait("on air", text("#live-state")+` === 'ĐANG PHÁT TRỰC TIẾP'`, 15*time.Second)
	playing := func(id string) func() bool {
		return func() bool {
			p := nodes[id].Agent.Status().Playing
			return p != nil && strings.HasPrefix(p.Occurrence, "live-")
		}
	}
	rig.Eventually(t, 15*time.Second, "both clusters play the call", func() bool { return playing("lap-le-01")() && playing("lap-le-02")() })
	if got, _ := Eval[bool](b, `document.querySelector('#live-preempted') !== null`); got {
		t.Errorf("before any alert the screen says the call was cut off: %q", MustEval[string](b, text("#live-preempted")))
	}

	storm := c.Upload("bao.wav", rig.ToneWAV(440, 2*time.Second, 16000, 1))
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": storm.ID, "targets": []string{"1152701"}, "repeat": 1, "title": "Bão số 3"}, nil)
	b.Wait("the screen says the alert cut the call off on one of two clusters", `(document.querySelector('#live-preempted') || {}).dataset?.every === 'false'`, 30*time.Second)
	if got := MustEval[string](b, text("#live-preempted")); !contains(got, "Bản tin khẩn cấp đã cắt ngang cuộc gọi trên 1 / 2 cụm loa", "1 cụm loa còn lại vẫn phát lời bạn nói") {
		t.Errorf("one cluster cut off reads %q", got)
	}
	if MustEval[bool](b, `document.querySelector('#live-preempted-stop') !== null`) {
		t.Error("with one cluster still playing the call, the screen offers to end it as heard by no one")
	}
	if !playing("lap-le-01")() {
		t.Error("the commune's other cluster no longer plays the call")
	}

	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": storm.ID, "targets": []string{"11527"}, "repeat": 1, "title": "Lũ quét"}, nil)
	b.Wait("the screen says nobody hears the call", `(document.querySelector('#live-preempted') || {}).dataset?.every === 'true'`, 30*time.Second)
	if got := MustEval[string](b, text("#live-preempted")); !contains(got, "trên cả 2 cụm loa", "không ai còn nghe thấy bạn nói", "Hãy kết thúc cuộc gọi") {
		t.Errorf("every cluster cut off reads %q", got)
	}
	if st := MustEval[string](b, text("#live-state")); st != "ĐANG PHÁT TRỰC TIẾP" {
		t.Errorf("the state line reads %q; the call is still open to the controller", st)
	}
	b.Shot("live-bi-cat-ngang")
	b.Do("end the call from the box", chromedp.Click(chromedp.CSS(`#live-preempted-stop`)))
	b.Wait("ended", text("#live-state")+`.startsWith('Đã kết thúc') && document.querySelector('#live-stop').disabled`, 15*time.Second)
	if MustEval[bool](b, `document.querySelector('#live-preempted-stop') !== null`) {
		t.Error("the call over, the screen still offers to end it")
	}
}

// TestLiveCallWithoutBrokerSaysWhy: the controller has lost its MQTT
// broker (the province's Mosquitto down in the storm) and a commune
// officer goes on air. The call ends at once with reason "broker
// unavailable" (docs/live.md), but the console said only "Đã kết thúc: 0
// khung âm thanh.", as for a call the officer ended: nothing said that
// nobody heard them, why, or to call again once the broker is back. Each
// reason an abnormal end comes with is said in the user's language.
func TestLiveCallWithoutBrokerSaysWhy(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c := rig.StartControllerWith(t, rig.ControllerOptions{Broker: m.ControllerBroker()})
	c.CreateArea("11527", "Xã Lập Lễ", "")
	c.MustDo("POST", "/api/v1/users", map[string]string{"username": "can-bo-lap-le", "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	m.Install(t, c, c.CreateNode("lap-le-01", "11527"))
	m.Stop()
	rig.Eventually(t, minWait, "the controller sees the broker gone", func() bool { return !c.App.MQTT.Connected() })

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Go("#/live", `document.querySelector('#live-start')`)
	b.Wait("the commune among the areas", `document.querySelector('#live-areas option[value="11527"]')`, 10*time.Second)
	b.Do("pick the commune and go on air", chromedp.Evaluate[chromedp.Void](
		`document.querySelector('#live-areas option[value="11527"]').selected = true`),
		chromedp.Click(chromedp.CSS(`#live-start`)))
	// The start cannot be published: the call ends at once.
	b.Wait("the call over", `!document.querySelector('#live-start').disabled && document.querySelector('#live-stop').disabled && `+
		text("#live-state")+`.startsWith('Đã kết thúc')`, 30*time.Second)
	b.Shot("live-mat-may-chu-mqtt")
	if got := MustEval[string](b, text("#live-ended-why")); !contains(got, "mất kết nối tới máy chủ MQTT", "các cụm loa không nghe được", "gọi lại khi kết nối được khôi phục") {
		t.Errorf("the call ended for the broker is told as %q (state %q); want why, that nobody heard it and to call again once the broker is back",
			got, MustEval[string](b, text("#live-state")))
	}

	// The broker back, the officer calls again: on air, the reason gone.
	m.Restart()
	rig.Eventually(t, minWait, "the controller back on the broker", c.App.MQTT.Connected)
	b.Do("go on air again", chromedp.Click(chromedp.CSS(`#live-start`)))
	b.Wait("on air", text("#live-state")+` === 'ĐANG PHÁT TRỰC TIẾP' && !document.querySelector('#live-ended-why')`, 15*time.Second)
	b.Do("stop", chromedp.Click(chromedp.CSS(`#live-stop`)))
	b.Wait("ended by the officer, nothing said wrong", text("#live-state")+`.startsWith('Đã kết thúc') && !document.querySelector('#live-ended-why')`, 15*time.Second)
}

// lapLeWithTwoOfficers starts a controller with commune 11527 (Xã Lập Lễ)
// of city 31, its officers can-bo-lap-le and can-bo-phat, and its one
// cluster lap-le-01, online.
func lapLeWithTwoOfficers(t *testing.T) (*rig.Controller, *rig.Node) {
	t.Helper()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("11527", "Xã Lập Lễ", "31")
	for _, u := range []string{"can-bo-lap-le", "can-bo-phat"} {
		c.MustDo("POST", "/api/v1/users", map[string]string{"username": u, "password": officerPassword, "role": "commune", "area": "11527"}, nil)
	}
	var created struct{ Credentials protocol.Credentials }
	c.MustDo("POST", "/api/v1/nodes", map[string]any{"id": "lap-le-01", "name": "Cụm loa thôn 1", "area": "11527", "lat": 20.86, "lon": 106.74}, &created)
	n := rig.StartNode(t, &created.Credentials, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("lap-le-01").Status.State == loaxa.NodeOnline })
	return c, n
}

// vnDuration says d as the console's fmtDuration does (ui.js), rounded to
// the second: "1 phút 5 giây", "4 giây".
func vnDuration(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	var parts []string
	for _, p := range []struct {
		n    int64
		unit string
	}{{s / 3600, "giờ"}, {s % 3600 / 60, "phút"}, {s % 60, "giây"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.unit))
		}
	}
	if len(parts) == 0 {
		return "0 giây"
	}
	return strings.Join(parts, " ")
}
