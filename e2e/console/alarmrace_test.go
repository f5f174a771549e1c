package console

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
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
	var first fetch.RequestID
	select {
	case first = <-paused:
	case <-time.After(15 * time.Second):
		t.Fatal("the alarms screen did not read the list")
	}
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
