package schedule_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
)

// TestUndeliveredAlarmEndsAfterARestart: the broker refused the nodes'
// desired states for 5 minutes, so desired-undelivered opened for each.
// The operator restarted the controller (the first move when the broker
// misbehaves); its first pass republished every node and the broker took
// them all, yet the alarms stayed open for good: only the retry list,
// which lived in the old process, ended them. An accepted publish ends
// the node's alarm whether or not the node is on the list.
func TestUndeliveredAlarmEndsAfterARestart(t *testing.T) {
	r := newRig(t)
	alarms := bolt.NewAlarmService(r.db)
	monitor := func() *health.Monitor {
		m := health.NewMonitor()
		m.Clock, m.Nodes, m.Alarms, m.Tests, m.Messenger = r.clock, bolt.NewNodeService(r.db), alarms, alarms, r.msg
		r.must(t, m.Open(r.ctx))
		t.Cleanup(m.Close)
		return m
	}
	openUndelivered := func() []*loaxa.Alarm {
		as, err := alarms.FindAlarms(r.ctx, loaxa.AlarmFilter{Kind: loaxa.AlarmDesiredUndelivered, Open: "open"})
		r.must(t, err)
		return as
	}

	// The first controller: the broker refuses everything for 5 minutes.
	r.s.Alarms = monitor()
	r.msg.setFail(errors.New("broker did not accept it within 10s"))
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	waitFor(t, "first pass", func() bool { n, _ := r.s.Undelivered(); return n == 3 && r.clock.Timers() == 1 })
	r.clock.Advance(5 * time.Minute)
	waitFor(t, "desired-undelivered alarms", func() bool { return len(openUndelivered()) == 3 })
	cancel()
	r.must(t, <-done)

	// The restarted controller: a new scheduler and monitor on the same
	// store; the broker takes the first pass's republish of every node.
	r.msg.setFail(nil)
	r.clock.Advance(time.Minute)
	s2 := schedule.NewScheduler()
	s2.AreaService, s2.NodeService, s2.AnnouncementService = r.s.AreaService, r.s.NodeService, r.s.AnnouncementService
	s2.ContentService, s2.DeliveryService, s2.DesiredService = r.s.ContentService, r.s.DeliveryService, r.s.DesiredService
	s2.Messenger, s2.Clock, s2.Alarms = r.msg, r.clock, monitor()
	r.must(t, s2.CompileAll(r.ctx, true)) // Run's first pass after a start
	for _, node := range []string{"tt-01", "tt-02", "tm-01"} {
		if d := r.msg.last(node); d == nil {
			t.Fatalf("%s: no desired state accepted after the restart", node)
		}
	}
	if as := openUndelivered(); len(as) != 0 {
		for _, a := range as {
			t.Errorf("%s: alarm %s %s (%s) still open after the broker accepted its desired state", a.Node, a.ID, a.Kind, a.Detail)
		}
	}
}
