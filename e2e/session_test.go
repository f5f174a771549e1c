package e2e

import (
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
)

// TestChangedSessionReachesTheNode: an officer moves the morning session
// from 05:30 to 06:00 (PATCH /sessions/{id}) rather than deleting it and
// placing its bulletin again. The change is planned again and sent: a
// real agent's stored desired state has the daily bulletin placed in it
// at 06:00 from that day on, and none left at 05:30.
func TestChangedSessionReachesTheNode(t *testing.T) {
	t.Parallel()
	vn := time.FixedZone("+07", 7*3600)
	fc := clock.NewFake(time.Date(2026, 3, 2, 5, 0, 0, 0, vn))
	c := rig.StartControllerOn(t, "", fc)
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	n := rig.StartNode(t, c.CreateNode("tt-01", "12346"), rig.NodeOptions{Clock: fc})
	ct := c.Upload("thoi-tiet.wav", rig.ToneWAV(440, time.Second, 16000, 1))

	var morning loaxa.Session
	c.MustDo("POST", "/api/v1/sessions", map[string]any{"area": "12346", "name": "Buổi sáng", "start": "05:30", "max_minutes": 15}, &morning)
	var ann loaxa.Announcement
	c.MustDo("POST", "/api/v1/announcements", map[string]any{
		"title": "Bản tin thời tiết", "content_id": ct.ID, "priority": "normal", "rrule": "FREQ=DAILY", "session": morning.ID,
		"targets": map[string][]string{"areas": {"12346"}, "nodes": {}}, "start": time.Date(2026, 3, 2, 5, 30, 0, 0, vn).Format(time.RFC3339),
	}, &ann)
	// plays returns the local times of day at which the node's stored
	// desired state plays the bulletin, and whether it has any.
	plays := func() (map[string]bool, bool) {
		d, err := n.DB.Desired()
		if err != nil {
			t.Fatal(err)
		}
		at := map[string]bool{}
		if d == nil {
			return at, false // none received yet
		}
		for _, o := range d.Occurrences {
			if o.Announcement == ann.ID {
				at[o.Start.In(vn).Format("15:04")] = true
			}
		}
		return at, len(at) > 0
	}
	rig.Eventually(t, 15*time.Second, "the node holds the bulletin at 05:30", func() bool {
		at, ok := plays()
		return ok && at["05:30"] && len(at) == 1
	})

	c.MustDo("PATCH", "/api/v1/sessions/"+morning.ID, map[string]any{"start": "06:00"}, nil)
	rig.Eventually(t, 15*time.Second, "the node holds the bulletin at 06:00 only", func() bool {
		at, ok := plays()
		return ok && at["06:00"] && len(at) == 1
	})
}
