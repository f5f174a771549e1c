package e2e

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/protocol"
)

// TestCancelStopsWhatPlays: cancelling a daily bulletin while it plays
// stops it on every node at once (the desired state without the
// occurrence reaches the nodes, which stop it as removed), each delivery
// ends failed with reason removed, and the days still to come are no
// longer scheduled or counted.
func TestCancelStopsWhatPlays(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	nodes := map[string]*rig.Node{}
	for _, id := range []string{"tt-01", "tt-02"} {
		nodes[id] = rig.StartNode(t, c.CreateNode(id, "12346"), rig.NodeOptions{})
	}
	for id := range nodes {
		rig.Eventually(t, 15*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })
	}

	const length = 30 * time.Second
	ct := c.Upload("dai.wav", rig.ToneWAV(440, length, 16000, 1))
	start := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	var ann loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{
		"title": "Bản tin dài", "content_id": ct.ID, "priority": "normal", "rrule": "FREQ=DAILY",
		"targets": map[string][]string{"areas": {"12346"}, "nodes": {}}, "start": start.Format(time.RFC3339),
	}, &ann)
	occ := loaxa.OccurrenceID(ann.ID, start)
	rig.Eventually(t, 15*time.Second, "a week of deliveries scheduled", func() bool { return len(c.Deliveries(ann.ID)) == 14 })

	playing := func(id string) bool {
		p := nodes[id].Agent.Status().Playing
		return p != nil && p.Occurrence == occ
	}
	for id := range nodes {
		rig.Eventually(t, 15*time.Second, id+" playing", func() bool { return playing(id) })
	}
	// A node is playing from its lead-in on, 80 ms before the start, with
	// silence: cancelled then, it has played nothing yet (it did, once, in
	// a full run). Cancelled a second into the bulletin, it has played
	// part of it.
	time.Sleep(time.Until(start.Add(time.Second)))
	c.MustDo("POST", "/api/v1/announcements/"+ann.ID+"/cancel", nil, nil)
	for id := range nodes {
		rig.Eventually(t, 10*time.Second, id+" stopped", func() bool { return !playing(id) })
	}
	rig.Eventually(t, 15*time.Second, "both deliveries failed as removed", func() bool {
		ds := c.Deliveries(ann.ID)
		if len(ds) != 2 {
			return false
		}
		for _, d := range ds {
			if d.Occurrence != occ || d.State != loaxa.DeliveryFailed || d.Reason != protocol.ReasonRemoved {
				return false
			}
		}
		return true
	})
	for _, d := range c.Deliveries(ann.ID) {
		if d.PlayedMS <= 0 || d.PlayedMS >= length.Milliseconds() {
			t.Errorf("%s played %d ms of a %v bulletin cancelled while it played", d.Node, d.PlayedMS, length)
		}
	}
	for id := range nodes {
		nodes[id].Acknowledged(t, 15*time.Second)
	}
	for id, got := range rig.CountEvents(c.Events(url.Values{"area": {"12346"}}), occ) {
		want := map[protocol.EventType]int{protocol.EventReceived: 1, protocol.EventStarted: 1, protocol.EventFailed: 1}
		for _, typ := range []protocol.EventType{protocol.EventReceived, protocol.EventStarted, protocol.EventCompleted, protocol.EventFailed, protocol.EventSuspended} {
			if got[typ] != want[typ] {
				t.Errorf("%s: events %v, want %v", id, got, want)
				break
			}
		}
	}

	var rep loaxa.BroadcastReport
	day := start.Format(loaxa.DateLayout)
	c.MustDo("GET", "/api/v1/reports/broadcast?area=12346&from="+start.Add(-time.Hour).Format(time.RFC3339)+"&to="+start.AddDate(0, 0, 8).Format(time.RFC3339), nil, &rep)
	if f := rep.Total; f.Scheduled != 2 || f.Failed != 2 || f.Completed+f.Open+f.Missed+f.Preempted != 0 {
		t.Errorf("report from %s for 8 days: %+v, want the 2 cancelled plays failed and nothing else", day, f)
	}
	var ids []string
	for _, n := range rep.Nodes {
		ids = append(ids, n.Node)
	}
	if !slices.Equal(ids, []string{"tt-01", "tt-02"}) {
		t.Errorf("report nodes %v", ids)
	}
}
