package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// bulletinWorld is w with the district 318 of province 31 above a second
// commune 12347 (node m1), and a district bulletin that a scheduler pass
// could not schedule (its closing chime missing) on nodes clusters.
func bulletinWorld(t *testing.T) (*world, map[string]loaxa.AlarmFacts) {
	t.Helper()
	w := newWorld(t)
	ctx := context.Background()
	for _, a := range []loaxa.Area{{ID: "31", Name: "Hải Phòng"}, {ID: "318", Name: "Tiên Lãng", Parent: "31"}, {ID: "12347", Name: "Tiên Minh", Parent: "318"}} {
		if err := w.areas.CreateArea(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: "m1", Name: "m1", Area: "12347", Credentials: loaxa.CredentialsActive}); err != nil {
		t.Fatal(err)
	}
	w.m.ReloadNodes(ctx)
	bad := map[string]loaxa.AlarmFacts{"an-7": {Title: "Cảnh báo mưa lớn", FromArea: "318", FromAreaName: "Tiên Lãng",
		Part: loaxa.UnplayableClosingChime, Content: strings.Repeat("5c", 32), Error: "There is no content.", Nodes: 1}}
	return w, bad
}

func (w *world) bulletinAlarms() []*loaxa.Alarm {
	w.t.Helper()
	as, err := w.alarms.FindAlarms(context.Background(), loaxa.AlarmFilter{Kind: loaxa.AlarmBulletinUnschedulable, Open: "open"})
	if err != nil {
		w.t.Fatal(err)
	}
	return as
}

// TestAreaHealthCountsAnUnschedulableBulletin: a district's bulletin that
// played nowhere (its chime missing from the library) had its critical
// alarm open, and GET /areas/318/health said 0 critical alarms, score
// 100: AreaHealth counted only the alarms of nodes, and this one has
// none. It is counted now for the sender's area and those above it, where
// it is listed and can be acted on, and not for the communes below, whose
// officers can neither see it listed nor cancel it.
func TestAreaHealthCountsAnUnschedulableBulletin(t *testing.T) {
	w, bad := bulletinWorld(t)
	ctx := context.Background()
	w.m.BulletinsUnschedulable(ctx, bad, nil, w.clock.Now())
	if open := w.bulletinAlarms(); len(open) != 1 {
		t.Fatalf("%d bulletin-unschedulable alarms open, want 1", len(open))
	}
	critical := func(area string) int {
		t.Helper()
		h, err := w.m.AreaHealth(ctx, area)
		if err != nil {
			t.Fatal(err)
		}
		return h.Critical
	}
	for area, want := range map[string]int{"318": 1, "31": 1, "": 1, "12347": 0, "12346": 0} {
		if got := critical(area); got != want {
			t.Errorf("area %s: %d critical alarms with the district's bulletin unschedulable, want %d", area, got, want)
		}
	}

	// A node's critical alarm in the district still counts beside it.
	w.clock.Advance(time.Second)
	w.state("m1", online(healthy()))
	b := healthy()
	b.SpeakerLine = "open"
	w.state("m1", online(b))
	if got := critical("318"); got != 2 {
		t.Errorf("district 318: %d critical alarms with a cut speaker line in 12347 too, want 2", got)
	}
	if got := critical("12347"); got != 1 {
		t.Errorf("commune 12347: %d critical alarms with its cut speaker line, want 1 (the district's bulletin not counted)", got)
	}

	// Cancelled: the next pass no longer meets it, and the count goes.
	w.clock.Advance(time.Minute)
	w.m.BulletinsUnschedulable(ctx, map[string]loaxa.AlarmFacts{}, nil, w.clock.Now())
	if got := critical("318"); got != 1 {
		t.Errorf("district 318: %d critical alarms once the bulletin's alarm ended, want 1 (the speaker line)", got)
	}
}

// TestUnschedulableBulletinAlarmCountsAgain: the alarm's count of the
// clusters its bulletin misses was the first pass's for as long as it
// stayed open, so a bulletin sent on to more communes, or to clusters
// enrolled since, still said "1 cluster". A pass that counts another
// number now updates the same alarm's facts and words (and tells the
// console's stream), without a second alarm.
func TestUnschedulableBulletinAlarmCountsAgain(t *testing.T) {
	w, bad := bulletinWorld(t)
	ctx := context.Background()
	w.m.BulletinsUnschedulable(ctx, bad, nil, w.clock.Now())
	first := w.bulletinAlarms()
	if len(first) != 1 || first[0].Facts.Nodes != 1 {
		t.Fatalf("after the first pass: %v, want one alarm on 1 node", first)
	}
	changes, cancel := w.m.SubscribeAlarms(nil)
	defer cancel()

	w.clock.Advance(30 * time.Second)
	f := bad["an-7"]
	f.Nodes = 4
	w.m.BulletinsUnschedulable(ctx, map[string]loaxa.AlarmFacts{"an-7": f}, nil, w.clock.Now())
	again := w.bulletinAlarms()
	if len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("after a pass that counted 4: %v, want alarm %s alone", again, first[0].ID)
	}
	a := again[0]
	if a.Facts.Nodes != 4 || !strings.Contains(a.Detail, "4 clusters") || !a.Start.Equal(first[0].Start) || a.Facts.Announcement != "an-7" {
		t.Errorf("alarm %+v (facts %+v): want the first's start %v, 4 nodes, \"4 clusters\" in its words", a, a.Facts, first[0].Start)
	}
	select {
	case c := <-changes:
		if c.ID != a.ID || c.Facts.Nodes != 4 || !c.Open() {
			t.Errorf("stream told %+v, want alarm %s open on 4 nodes", c, a.ID)
		}
	default:
		t.Error("the stream was not told of the new count")
	}

	// The same count again: nothing written, nothing told.
	w.clock.Advance(30 * time.Second)
	w.m.BulletinsUnschedulable(ctx, map[string]loaxa.AlarmFacts{"an-7": f}, nil, w.clock.Now())
	select {
	case c := <-changes:
		t.Errorf("stream told %+v after a pass that counted the same", c)
	default:
	}

	// A restarted monitor takes back the alarm with its new count.
	w.m.Close()
	if err := w.m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	f.Nodes = 2
	w.m.BulletinsUnschedulable(ctx, map[string]loaxa.AlarmFacts{"an-7": f}, nil, w.clock.Now())
	if after := w.bulletinAlarms(); len(after) != 1 || after[0].ID != a.ID || after[0].Facts.Nodes != 2 {
		t.Errorf("after a restart and a pass that counted 2: %v, want alarm %s alone on 2 nodes", after, a.ID)
	}
}

// BenchmarkAreaHealthInAMassOutage measures GET /areas/{id}/health's
// model part in a commune of 5,001 clusters, 5,000 of them offline with
// their alarms open (the most open alarms the alarm end index holds in a
// typhoon): without a bulletin-unschedulable alarm open (none/), and with
// one (bulletin/), when AreaHealth also reads the open alarms from the
// store to place the bulletin's alarm in the area tree.
func BenchmarkAreaHealthInAMassOutage(b *testing.B) {
	ctx := context.Background()
	m, _, _, _ := massOutage(b, b.TempDir())
	m.SweepNow(ctx)
	run := func(b *testing.B, want int) {
		b.ReportAllocs()
		for b.Loop() {
			h, err := m.AreaHealth(ctx, "12346")
			if err != nil {
				b.Fatal(err)
			}
			if h.Critical != want {
				b.Fatalf("%d critical alarms, want %d", h.Critical, want)
			}
		}
	}
	b.Run("none", func(b *testing.B) { run(b, outageNodes) })
	bad := map[string]loaxa.AlarmFacts{"an-7": {Title: "Lịch cắt điện", FromArea: "12346", Part: loaxa.UnplayableContent,
		Content: strings.Repeat("5c", 32), Error: "There is no content.", Nodes: 1}}
	m.BulletinsUnschedulable(ctx, bad, nil, time.Now())
	b.Run("bulletin", func(b *testing.B) { run(b, outageNodes+1) })
}
