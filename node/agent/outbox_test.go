package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
)

// TestResendsBackOffWhileTheClockIsNotMeasured: a board two hours behind
// (no RTC battery, no clock floor yet) whose controller never signs its
// time (an older one) refuses every acknowledgement as issued in its
// future until a measurement that never comes, and sent its outbox again
// every AckTimeout for as long as it ran: on 4G, traffic without end.
// While the clock is not measured, each resend that brought no
// acknowledgement doubles the wait for the next (up to 30 minutes), and
// the events stay in the outbox, none lost.
func TestResendsBackOffWhileTheClockIsNotMeasured(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	// The old controller answers its time without a proof: never measured.
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"time":%q}`, time.Now().UTC().Format(time.RFC3339Nano))
	}))
	defer old.Close()
	cred := ctl.Credentials("n1", "x1")
	cred.Controller = old.URL
	start := time.Now().Add(-2 * time.Hour) // the controller's acknowledgements look not yet valid on it
	clk := clock.NewFake(start)
	reports := []protocol.Event{
		{Type: protocol.EventUpdated, At: start.UTC(), Version: "test", Reason: "from 1.0"},
		{Type: protocol.EventUpdateFailed, At: start.UTC(), Version: "2.0", Reason: "download failed"},
	}
	// The measurements, which fail, are tried again within 20 s of the
	// board's clock: sooner than any wait of the sender's.
	n := startAgent(t, cred, options{clock: clk, timeSync: 20 * time.Second, tune: func(c *agent.Config) {
		c.AckTimeout = 30 * time.Second
		c.StartupEvents = reports
	}})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "the events sent", func() bool { return len(ctl.Events("n1")) == len(reports) })

	// The sender's wait for the acknowledgement is the only timer of the
	// fake clock due from AckTimeout on and within the first hour (a time
	// request's wait is 5 s, the next measurement within 20 s, the main
	// loop's and the cache's idle waits an hour): step to it, each time,
	// and see the outbox come again. The shorter timers fire on the way.
	var at []time.Duration
	for range 6 {
		var next time.Time
		nodetest.Eventually(t, 10*time.Second, "the sender waiting for an acknowledgement", func() bool {
			var ok bool
			next, ok = clk.NextAfter(clk.Now().Add(30 * time.Second))
			return ok && next.Before(start.Add(50*time.Minute))
		})
		before := ctl.Log("n1").Batches
		clk.Set(next)
		nodetest.Eventually(t, 10*time.Second, "the events sent again", func() bool { return ctl.Log("n1").Batches > before })
		at = append(at, next.Sub(start))
	}
	want := []time.Duration{30 * time.Second, 90 * time.Second, 210 * time.Second, 450 * time.Second, 930 * time.Second, 1890 * time.Second}
	if !slices.Equal(at, want) {
		t.Errorf("the unacknowledged events were sent again at %v after the first send; want %v (each wait twice the last)", at, want)
	}
	if st := n.a.Status(); st.Outbox != len(reports) || st.Rejected == 0 {
		t.Errorf("outbox %d, rejected %d; want the %d events kept, their acknowledgements refused", st.Outbox, st.Rejected, len(reports))
	}
	if got := nodetest.Summary(ctl.Events("n1")); len(got) != len(reports) {
		t.Errorf("the controller stored %q, want the %d events once each", got, len(reports))
	}
}

// TestNewEventsSentWhileAcknowledgementsAreHeld: a board two hours fast
// whose controller never signs its time holds every acknowledgement
// unjudged. It sent its outbox again every AckTimeout, and once 500
// events waited for acknowledgements it sent no new one: the controller
// heard nothing more from it. A held acknowledgement is taken for what the
// controller signed it stored, so what it covers is neither sent again
// nor counted in the window, and the outbox keeps every event until the
// acknowledgement can be judged.
func TestNewEventsSentWhileAcknowledgementsAreHeld(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"time":%q}`, time.Now().UTC().Format(time.RFC3339Nano))
	}))
	defer old.Close()
	cred := ctl.Credentials("n1", "x1")
	cred.Controller = old.URL
	start := time.Now().Add(2 * time.Hour) // the controller's acknowledgements look expired on it
	clk := clock.NewFake(start)
	var reports []protocol.Event
	for i := range 600 {
		reports = append(reports, protocol.Event{Type: protocol.EventUpdateFailed, At: start.UTC(), Version: "2.0", Reason: fmt.Sprintf("attempt %d", i)})
	}
	// The measurements, which fail, are tried again within 20 s of the
	// board's clock: sooner than the sender's wait.
	n := startAgent(t, cred, options{clock: clk, timeSync: 20 * time.Second, tune: func(c *agent.Config) {
		c.AckTimeout = 30 * time.Second
		c.StartupEvents = reports
	}})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "all 600 events at the controller", func() bool { return len(ctl.Events("n1")) == len(reports) })
	// Once the held acknowledgements cover them all, the sender waits for
	// none: no timer of the fake clock from AckTimeout on within the hour
	// (a time request's is 5 s, the next measurement within 20 s, the
	// idle ones an hour).
	nodetest.Eventually(t, 10*time.Second, "the sender waiting for no acknowledgement", func() bool {
		next, ok := clk.NextAfter(clk.Now().Add(30 * time.Second))
		return !ok || !next.Before(start.Add(50*time.Minute))
	})
	if st := n.a.Status(); st.Outbox != len(reports) || st.Rejected != 0 {
		t.Errorf("outbox %d, rejected %d; want all %d kept until an acknowledgement is judged, none refused", st.Outbox, st.Rejected, len(reports))
	}
}

// TestGapSentAgainAtOnce: a node whose batch the controller dropped (its
// ingest queue full) had the batch after it skipped, past the gap, and
// sent the gap again only after its AckTimeout (30 s): an alert's receipt
// lost that way was missing from the alert's report all that time. The
// controller says at once that it took a batch past a gap
// (protocol.Command.Gap), and the node sends from the gap then, on a
// clock that does not move, and once: nothing comes a third time.
func TestGapSentAgainAtOnce(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	clk := clock.NewFake(time.Now())
	n := startAgent(t, ctl.Credentials("n1", "x1"), options{clock: clk, tune: func(c *agent.Config) { c.AckTimeout = 30 * time.Second }})
	waitConnected(t, n)
	test := func(id string) {
		ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdSelfTest, Test: protocol.TestSilent, TestID: id})
	}
	// Past the start (whose reconnect sends everything again anyway).
	test("st0")
	nodetest.Eventually(t, 10*time.Second, "st0 stored", func() bool { return len(selfTests(ctl, "n1")) == 1 })

	ctl.DropBatches.Store(1)
	test("st1")
	nodetest.Eventually(t, 10*time.Second, "st1's batch dropped", func() bool { return ctl.DropBatches.Load() == 0 })
	test("st2") // its batch comes past the gap
	nodetest.Eventually(t, 10*time.Second, "st1 and st2 stored with no AckTimeout passed", func() bool { return len(selfTests(ctl, "n1")) == 3 })
	nodetest.Eventually(t, 10*time.Second, "the outbox acknowledged", func() bool { return n.a.Status().Outbox == 0 })
	var ids []string
	for _, r := range selfTests(ctl, "n1") {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"st0", "st1", "st2"}) {
		t.Errorf("self-tests stored %v, want st0, st1, st2 in order", ids)
	}
	if l := ctl.Log("n1"); l.Resent != 0 {
		t.Errorf("%d events received again once stored (%d batches); want none: the gap sent again once", l.Resent, l.Batches)
	}
}
