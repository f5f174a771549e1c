package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// TestBusyDayEndsEveryDeliveryOnce runs a busy day of one commune on a fake
// clock shared by the controller and three real agents: a morning session
// cut into by a priority bulletin, background music dropped for an
// emergency, a bulletin cancelled while it plays, a node rebooted mid-play,
// a node off through a bulletin's start and back within the grace, and off
// through another's and back too late. At the end every occurrence on
// every node is in exactly one final state, the one its single final event
// says, and the broadcast report counts exactly those states.
func TestBusyDayEndsEveryDeliveryOnce(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	day := func(hh, mm, ss int) time.Time { return time.Date(2026, 3, 2, hh, mm, ss, 0, vn) }
	fc := clock.NewFake(day(5, 0, 0))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	ids := []string{"tt-01", "tt-02", "tt-03"}
	creds, dirs, nodes := map[string]*protocol.Credentials{}, map[string]string{}, map[string]*rig.Node{}
	start := func(id string) {
		nodes[id] = rig.StartNode(t, creds[id], rig.NodeOptions{Clock: fc, Dir: dirs[id]})
	}
	for _, id := range ids {
		creds[id], dirs[id] = c.CreateNode(id, "12346"), t.TempDir()
		start(id)
	}

	tone := func(name string, d time.Duration) string { return c.Upload(name, rig.ToneWAV(440, d, 16000, 1)).ID }
	news1, news2, flood := tone("news1.wav", 2*time.Second), tone("news2.wav", 1500*time.Millisecond), tone("flood.wav", time.Second)
	music, alarm, long := tone("music.wav", 3*time.Second), tone("alarm.wav", time.Second), tone("long.wav", 20*time.Second)
	noonTone, eveningTone := tone("noon.wav", 3*time.Second), tone("evening.wav", time.Second)

	var morning loaxa.Session
	c.MustDo("POST", "/api/v1/sessions", map[string]any{"area": "12346", "name": "Buổi sáng", "start": "05:30", "max_minutes": 15}, &morning)
	announce := func(content, priority string, at time.Time, extra map[string]any) string {
		t.Helper()
		body := map[string]any{"title": "Bản tin", "content_id": content, "priority": priority,
			"targets": map[string][]string{"areas": {"12346"}, "nodes": {}}, "start": at.Format(time.RFC3339)}
		for k, v := range extra {
			body[k] = v
		}
		var a loaxa.Announcement
		c.MustDo("POST", "/api/v1/announcements", body, &a)
		return a.ID
	}
	inSession := map[string]any{"session": morning.ID}
	anns := map[string]string{
		"news1":     announce(news1, "normal", day(5, 30, 0), inSession), // 05:30:00 in the session
		"news2":     announce(news2, "normal", day(5, 30, 0), inSession), // packed after it: 05:30:02
		"flood":     announce(flood, "priority", day(5, 30, 1), nil),     // cuts news1 off; news1 plays again
		"music":     announce(music, "background", day(6, 0, 0), map[string]any{"on_preempt": "drop"}),
		"emergency": announce(alarm, "emergency", day(6, 0, 1), nil),     // music ends preempted
		"cancelled": announce(long, "normal", day(7, 0, 0), nil),         // cancelled while it plays
		"noon":      announce(noonTone, "normal", day(12, 0, 0), nil),    // tt-02 reboots in it; tt-03 off, back at 12:05
		"evening":   announce(eveningTone, "normal", day(17, 0, 0), nil), // tt-03 off, back at 17:20: too late
	}
	occ := map[string]string{}
	for name, at := range map[string]time.Time{"news1": day(5, 30, 0), "news2": day(5, 30, 2), "flood": day(5, 30, 1), "music": day(6, 0, 0),
		"emergency": day(6, 0, 1), "cancelled": day(7, 0, 0), "noon": day(12, 0, 0), "evening": day(17, 0, 0)} {
		occ[name] = loaxa.OccurrenceID(anns[name], at)
	}

	// tick lets the fake clock run in 100 ms steps (the output's chunk)
	// until cond holds.
	tick := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for: %s", what)
			}
			fc.Advance(100 * time.Millisecond)
			time.Sleep(5 * time.Millisecond) // let the agents run; outcomes do not depend on it
		}
	}
	events := func() []*loaxa.Event { return c.Events(url.Values{"area": {"12346"}, "limit": {"10000"}}) }
	// has reports whether every node in on has reported the event types
	// of occurrence name, in order.
	has := func(name string, on []string, want ...protocol.EventType) func() bool {
		return func() bool {
			got := map[string][]protocol.EventType{}
			for _, e := range events() {
				// content-ready comes whenever the download finishes; the
				// story is about what played.
				if e.Occurrence == occ[name] && e.Type != protocol.EventContentReady {
					got[e.Node] = append(got[e.Node], e.Type)
				}
			}
			for _, id := range on {
				if !slices.Equal(got[id], want) {
					return false
				}
			}
			return true
		}
	}
	const (
		rcv  = protocol.EventReceived
		st   = protocol.EventStarted
		done = protocol.EventCompleted
		susp = protocol.EventSuspended
	)
	ready := func(on []string) func() bool {
		return func() bool {
			for _, id := range on {
				s := nodes[id].Agent.Status()
				if s.DesiredVersion == 0 || len(s.ContentMissing) > 0 || s.DesiredVersion != c.Node(id).Status.DesiredVersion {
					return false
				}
			}
			return true
		}
	}
	tick("every node runs the day's programme with its content", ready(ids))
	// onAir waits, the clock standing still, until every node in on plays
	// occurrence name: a decision due at an instant is taken at that
	// instant, however slowly the agents run (under the race detector).
	onAir := func(name string, on []string) {
		t.Helper()
		rig.Eventually(t, 10*time.Second, name+" on air", func() bool {
			for _, id := range on {
				if p := nodes[id].Agent.Status().Playing; p == nil || p.Occurrence != occ[name] {
					return false
				}
			}
			return true
		})
	}

	// 05:30 The morning session; a priority bulletin cuts into it.
	fc.Set(day(5, 30, 0))
	onAir("news1", ids)
	fc.Set(day(5, 30, 1))
	onAir("flood", ids)
	tick("flood, then news1 again and news2", func() bool {
		return has("news1", ids, rcv, st, susp, st, done)() && has("news2", ids, rcv, st, done)() && has("flood", ids, rcv, st, done)()
	})

	// 06:00 Background music, dropped for an emergency.
	fc.Set(day(6, 0, 0))
	onAir("music", ids)
	fc.Set(day(6, 0, 1))
	onAir("emergency", ids)
	tick("music preempted, emergency played", func() bool {
		return has("music", ids, rcv, st, protocol.EventPreempted)() && has("emergency", ids, rcv, st, done)()
	})

	// 07:00 A bulletin cancelled while it plays.
	fc.Set(day(7, 0, 0))
	onAir("cancelled", ids)
	fc.Set(day(7, 0, 2))
	c.MustDo("POST", "/api/v1/announcements/"+anns["cancelled"]+"/cancel", nil, nil)
	rig.Eventually(t, 10*time.Second, "cancelled bulletin stopped", has("cancelled", ids, rcv, st, protocol.EventFailed))

	// 12:00 tt-03 is off through the start and back at 12:05; tt-02
	// reboots one second into the bulletin and is back at 12:00:30.
	fc.Set(day(11, 59, 0))
	c.SignIn()
	nodes["tt-03"].Stop(t)
	fc.Set(day(12, 0, 0))
	onAir("noon", ids[:2])
	fc.Set(day(12, 0, 1))
	nodes["tt-02"].Stop(t)
	fc.Set(day(12, 0, 30))
	start("tt-02")
	tick("noon played on tt-01, and again from the start on tt-02", func() bool {
		return has("noon", ids[:1], rcv, st, done)() && has("noon", ids[1:2], rcv, st, susp, st, done)()
	})
	fc.Set(day(12, 5, 0))
	start("tt-03")
	tick("noon played late on tt-03", has("noon", ids[2:], rcv, st, done))

	// 17:00 tt-03 is off through the start and back at 17:20, past the
	// 10-minute grace.
	fc.Set(day(16, 59, 0))
	c.SignIn()
	nodes["tt-03"].Stop(t)
	fc.Set(day(17, 0, 0))
	onAir("evening", ids[:2])
	tick("evening played on tt-01 and tt-02", has("evening", ids[:2], rcv, st, done))
	fc.Set(day(17, 20, 0))
	start("tt-03")
	rig.Eventually(t, 10*time.Second, "evening missed on tt-03", has("evening", ids[2:], rcv, protocol.EventMissed))
	for _, id := range ids {
		nodes[id].Acknowledged(t, 15*time.Second)
	}

	// Every (occurrence, node): exactly one final event, and the delivery
	// in the state it names, with its reason.
	final := map[string][]*loaxa.Event{} // occurrence/node → final events
	for _, e := range events() {
		switch e.Type {
		case protocol.EventCompleted, protocol.EventFailed, protocol.EventPreempted, protocol.EventMissed:
			final[e.Occurrence+"/"+e.Node] = append(final[e.Occurrence+"/"+e.Node], e)
		}
	}
	var all []*loaxa.Delivery
	for _, id := range anns {
		all = append(all, c.Deliveries(id)...)
	}
	if len(all) != len(anns)*len(ids) {
		t.Fatalf("%d deliveries, want %d: %s", len(all), len(anns)*len(ids), rig.Describe(all))
	}
	want := map[string]string{
		"news1": "completed", "news2": "completed", "flood": "completed", "music": "preempted preempted", "emergency": "completed",
		"cancelled": "failed removed", "noon": "completed", "evening": "completed",
	}
	tally := map[string]*loaxa.BroadcastFigures{}
	for _, d := range all {
		key := d.Occurrence + "/" + d.Node
		fe := final[key]
		if len(fe) != 1 {
			t.Errorf("%s: %d final events, want 1", key, len(fe))
			continue
		}
		delete(final, key)
		if string(fe[0].Type) != string(d.State) || fe[0].Reason != d.Reason || !d.State.Terminal() {
			t.Errorf("%s: delivery %s %q, its final event %s %q", key, d.State, d.Reason, fe[0].Type, fe[0].Reason)
		}
		name := ""
		for n, o := range occ {
			if o == d.Occurrence {
				name = n
			}
		}
		expect := want[name]
		if name == "evening" && d.Node == "tt-03" {
			expect = "missed too-late"
		}
		if got := strings.TrimSpace(string(d.State) + " " + d.Reason); got != expect {
			t.Errorf("%s on %s: %s, want %s", name, d.Node, got, expect)
		}
		if tally[d.Node] == nil {
			tally[d.Node] = &loaxa.BroadcastFigures{}
		}
		d.CheckSilence(fc.Now(), loaxa.SilenceBound)
		tally[d.Node].Add(d)
	}
	for key := range final {
		t.Errorf("final events for %s, which has no delivery", key)
	}
	for _, e := range events() {
		if e.Occurrence == occ["noon"] && e.Node == "tt-03" && e.Type == st && e.LateMS < (5*time.Minute).Milliseconds() {
			t.Errorf("tt-03 started noon %d ms late, want the 5 minutes it was off", e.LateMS)
		}
	}

	var rep loaxa.BroadcastReport
	c.MustDo("GET", "/api/v1/reports/broadcast?area=12346&from=2026-03-02&to=2026-03-03", nil, &rep)
	for _, n := range rep.Nodes {
		if f := tally[n.Node]; f == nil || n.BroadcastFigures != *f {
			t.Errorf("report for %s: %+v, deliveries add up to %+v", n.Node, n.BroadcastFigures, f)
		}
	}
	if f := rep.Total; f.Scheduled != 24 || f.Completed != 17 || f.Preempted != 3 || f.Failed != 3 || f.Missed != 1 || f.Open != 0 ||
		f.FailedToSound != 0 || f.Emergency != 3 || len(rep.Nodes) != 3 {
		t.Errorf("report total %s", fmt.Sprintf("%+v", f))
	}
}
