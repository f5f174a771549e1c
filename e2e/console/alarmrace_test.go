package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// TestAlarmDuringTheFirstReadIsShown: the alarms screen subscribes to the
// alarm stream, then reads the list. An alarm that opens while that read
// is on its way (its answer computed before the alarm) comes only on the
// stream, and the screen must show it then, not at its 30 s re-read. The
// browser holds the list's answer (Chromium's Fetch interception) until
// the alarm has opened at the controller.
func TestAlarmDuringTheFirstReadIsShown(t *testing.T) {
	t.Parallel()
	c, sim, b := technicianAtLapLe(t)
	defer b.checkErrors()

	// The first answer of the list is held for the test; later ones go
	// on at once.
	paused, cont := b.HoldResponses(`*/api/v1/alarms\?limit=*`)
	b.Do("open the alarms", chromedp.Evaluate[chromedp.Void](`location.hash = '#/alarms'`))
	first := b.AwaitHeld(paused, "the alarms screen did not read the list")
	sim.SetSpeakerLine(protocol.LineOpen)
	rig.Eventually(t, minWait, "the alarm open at the controller", func() bool {
		var l struct{ Alarms []loaxa.Alarm }
		c.MustDo("GET", "/api/v1/alarms", nil, &l)
		return len(l.Alarms) == 1
	})
	b.Wait("the alarm on the stream while the list is held", `document.querySelector('main').dataset.streamEvents === '1'`, 10*time.Second)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case id := <-paused:
				cont(id)
			case <-done:
				return
			}
		}
	}()
	if err := cont(first); err != nil {
		t.Fatal(err)
	}
	b.Wait("the alarm shown, not at the 30 s re-read", `document.querySelector('#alarms-open tr[data-kind="speaker-line-open"]')`, 10*time.Second)
}

// TestManyOpenAlarmsAreNotUndercounted: a typhoon cuts the power of a
// commune's clusters, and 501 alarms are open. The overview, which reads
// 100 of them, said "Cảnh báo đang mở: 100 (100 nghiêm trọng)", and the
// alarms screen, which reads 500, "Cảnh báo đang mở (500)": two counts
// that disagreed, each read as all. Each says there are more than it
// shows.
func TestManyOpenAlarmsAreNotUndercounted(t *testing.T) {
	t.Parallel()
	c := startLapLe(t)
	start := time.Now().Add(-time.Hour)
	var alarms []*loaxa.Alarm
	for i := range 501 {
		alarms = append(alarms, &loaxa.Alarm{Kind: "offline", Severity: "critical", Node: fmt.Sprintf("lap-le-%03d", i), Area: "11527", Start: start.Add(time.Duration(i) * time.Second)})
	}
	if err := c.App.Alarms.CreateAlarms(context.Background(), alarms); err != nil {
		t.Fatal(err)
	}

	b := StartBrowser(t)
	defer b.checkErrors()
	b.SignIn(c.URL, "can-bo-lap-le", officerPassword, "Cán bộ xã Lập Lễ")
	b.Wait("the overview's alarms", `document.querySelector('#h-alarms')`, 15*time.Second)
	if got := MustEval[string](b, text("#h-alarms")); got != "Cảnh báo đang mở: hơn 100 — xem tất cả ở màn hình Cảnh báo" {
		t.Errorf("the overview counts the open alarms as %q, want more than 100", got)
	}
	b.Go("#/alarms", `document.querySelector('#h-open')`)
	if got := MustEval[string](b, text("#h-open")); !strings.HasPrefix(got, "Cảnh báo đang mở (ít nhất 500, trong 500 cảnh báo mới nhất") {
		t.Errorf("the alarms screen counts the open alarms as %q, want at least 500", got)
	}
}
