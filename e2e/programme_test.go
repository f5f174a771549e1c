package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// TestDailyProgrammeTwoDays runs two days of a commune's programme on a
// fake clock shared by the controller and two real agents (over the real
// broker and HTTP): a daily bulletin plays on both days; on day two a
// priority bulletin preempts a normal one mid-play, and the normal one
// plays again from the beginning afterwards; the broadcast report counts
// exactly what the nodes reported.
//
// A fake clock, not FREQ=SECONDLY: the library would expand per-second
// rules fine, but a daily rule is what stations use, and days have to pass
// for it; jumping the clock to just before each play and then stepping it
// in 100 ms ticks (the output's chunk) keeps the test at a few seconds.
func TestDailyProgrammeTwoDays(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	fc := clock.NewFake(time.Date(2026, 3, 2, 5, 0, 0, 0, vn))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	nodes := []string{"tt-01", "tt-02"}
	agents := map[string]*rig.Node{}
	for _, id := range nodes {
		agents[id] = rig.StartNode(t, c.CreateNode(id, "12346"), rig.NodeOptions{Clock: fc})
	}

	daily := c.Upload("daily.wav", rig.ToneWAV(440, 1500*time.Millisecond, 16000, 1))
	news := c.Upload("news.wav", rig.ToneWAV(523, 3*time.Second, 16000, 1))
	flood := c.Upload("flood.wav", rig.ToneWAV(880, time.Second, 16000, 1))
	start := time.Date(2026, 3, 2, 5, 30, 0, 0, vn)
	day2 := start.AddDate(0, 0, 1)
	announce := func(content, priority string, at time.Time, rrule string) string {
		var a loaxa.Announcement
		body := map[string]any{"title": "Bản tin", "content_id": content, "priority": priority,
			"targets": map[string][]string{"areas": {"12346"}, "nodes": {}}, "start": at.Format(time.RFC3339)}
		if rrule != "" {
			body["rrule"] = rrule
		}
		c.MustDo("POST", "/api/v1/announcements", body, &a)
		return a.ID
	}
	dailyID := announce(daily.ID, "normal", start, "FREQ=DAILY")
	newsID := announce(news.ID, "normal", day2.Add(10*time.Second), "")
	floodID := announce(flood.ID, "priority", day2.Add(11*time.Second), "")

	// The programme shows day 1 and day 2 for the node.
	var prog struct{ Items []loaxa.ProgrammeItem }
	c.MustDo("GET", "/api/v1/nodes/tt-01/programme?from=2026-03-02&to=2026-03-04", nil, &prog)
	var got []string
	for _, it := range prog.Items {
		got = append(got, fmt.Sprintf("%s %s", it.Announcement, it.Start.In(vn).Format("02 15:04:05")))
	}
	if want := []string{dailyID + " 02 05:30:00", dailyID + " 03 05:30:00", newsID + " 03 05:30:10", floodID + " 03 05:30:11"}; !slices.Equal(got, want) {
		t.Fatalf("programme %q, want %q", got, want)
	}

	ready := func() bool {
		for _, id := range nodes {
			st := c.Node(id).Status
			if st.State != loaxa.NodeOnline || st.DesiredVersion == 0 || st.RunningVersion != st.DesiredVersion || len(st.ContentMissing) > 0 {
				return false
			}
		}
		return true
	}
	// Agents wait for their starts and pace their plays on the fake clock:
	// tick it. (The scheduler recompiles after a change on real time.)
	tick := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for: %s", what)
			}
			fc.Advance(100 * time.Millisecond)
			time.Sleep(5 * time.Millisecond) // let agents run; outcomes do not depend on it
		}
	}
	tick(20*time.Second, "both nodes run the programme with its content", ready)

	events := func(occ string) map[string][]protocol.EventType {
		out := map[string][]protocol.EventType{}
		for _, e := range c.Events(url.Values{"area": {"12346"}, "limit": {"10000"}}) {
			if e.Occurrence == occ && e.Type != protocol.EventContentReady {
				out[e.Node] = append(out[e.Node], e.Type)
			}
		}
		return out
	}
	done := func(occ string, want ...protocol.EventType) func() bool {
		return func() bool {
			ev := events(occ)
			for _, id := range nodes {
				if !slices.Equal(ev[id], want) {
					return false
				}
			}
			return true
		}
	}
	played := []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted}

	// Day 1.
	fc.Set(start)
	tick(20*time.Second, "day 1 daily bulletin completed on both nodes", done(loaxa.OccurrenceID(dailyID, start), played...))

	// Day 2: jump to just before, sign in again (the token's 12 hours have
	// passed), let the scheduler roll its horizon.
	fc.Set(day2.Add(-2 * time.Second))
	c.SignIn()
	tick(20*time.Second, "day 2 daily bulletin completed on both nodes", done(loaxa.OccurrenceID(dailyID, day2), played...))
	newsOcc := loaxa.OccurrenceID(newsID, day2.Add(10*time.Second))
	fc.Set(day2.Add(10 * time.Second))
	rig.Eventually(t, 10*time.Second, "news started", done(newsOcc, protocol.EventReceived, protocol.EventStarted))
	fc.Set(day2.Add(11 * time.Second)) // one jump: the cut happens at this instant
	tick(20*time.Second, "news preempted by flood, then played again to the end",
		done(newsOcc, protocol.EventReceived, protocol.EventStarted, protocol.EventSuspended, protocol.EventStarted, protocol.EventCompleted))
	tick(10*time.Second, "flood completed", done(loaxa.OccurrenceID(floodID, day2.Add(11*time.Second)), played...))
	for _, id := range nodes {
		agents[id].Acknowledged(t, 15*time.Second)
	}

	// The report over the two days counts what the nodes reported.
	var rep loaxa.BroadcastReport
	c.MustDo("GET", "/api/v1/reports/broadcast?area=12346&from=2026-03-02&to=2026-03-04", nil, &rep)
	var completed, playedMS int
	for _, e := range c.Events(url.Values{"area": {"12346"}, "limit": {"10000"}}) {
		if e.Type == protocol.EventCompleted {
			completed++
			playedMS += int(e.PlayedMS)
		}
	}
	f := rep.Total
	if f.Scheduled != 8 || f.Completed != 8 || completed != 8 || f.Preempted+f.Failed+f.Missed+f.Open != 0 {
		t.Errorf("report totals %+v; %d completed events", f, completed)
	}
	if f.PlayedMS != int64(playedMS) || f.PlannedMS != 2*(2*1500+3000+1000) {
		t.Errorf("report played %d ms of %d planned; events say %d played", f.PlayedMS, f.PlannedMS, playedMS)
	}
	if len(rep.Nodes) != 2 || rep.Nodes[0].Completed != 4 || len(rep.Areas) != 1 || rep.Areas[0].Nodes != 2 {
		t.Errorf("report per node %+v, per area %+v", rep.Nodes, rep.Areas)
	}
	status, csv := c.Do("GET", "/api/v1/reports/broadcast?area=12346&from=2026-03-02&to=2026-03-04&format=csv", nil, nil)
	if status != 200 || !slices.Contains(splitLines(string(csv)), "node,tt-01,12346,Cụm loa tt-01,1,4,4,0,0,0,0,0,0,0.12,0.12,0,0") {
		t.Errorf("csv report %d:\n%s", status, csv)
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
