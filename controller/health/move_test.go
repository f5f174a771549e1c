package health_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestMovedNodeAlarmsInItsNewArea: the monitor took a node's area once,
// when it first saw the node, so a cluster moved to the neighbouring
// commune raised its alarms in its old commune, where that commune's
// technician saw them and its own did not. Once reloaded (the API's
// Changed after a move), its open alarm is filed under its new commune
// and announced there, and its next alarm is raised there.
func TestMovedNodeAlarmsInItsNewArea(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.areas.CreateArea(ctx, &loaxa.Area{ID: "12347", Name: "Xã Tiên Minh"}); err != nil {
		t.Fatal(err)
	}
	b := healthy()
	b.DoorOpen = ptr(true)
	w.state("n1", online(b))
	if a := w.open("n1")[loaxa.AlarmDoorOpen]; a == nil || a.Area != "12346" {
		t.Fatalf("door-open alarm before the move: %+v", a)
	}
	changes, cancel := w.m.SubscribeAlarms(func(area string) bool { return area == "12347" })
	defer cancel()
	if _, _, err := w.nodes.UpdateNodePlace(ctx, "n1", loaxa.NodePlace{Name: "n1", Area: "12347"}); err != nil {
		t.Fatal(err)
	}
	w.m.ReloadNodes(ctx)
	a := w.open("n1")[loaxa.AlarmDoorOpen]
	if a == nil || a.Area != "12347" {
		t.Fatalf("door-open alarm of the moved node: %+v; want it filed in 12347", a)
	}
	select {
	case got := <-changes:
		if got.ID != a.ID || got.Area != "12347" {
			t.Errorf("announced in 12347: %+v", got)
		}
	default:
		t.Error("the moved alarm was not announced to 12347's subscribers")
	}
	for area, want := range map[string]int{"12346": 0, "12347": 1} {
		as, err := w.alarms.FindAlarms(ctx, loaxa.AlarmFilter{Within: area, Open: "open"})
		if err != nil || len(as) != want {
			t.Errorf("open alarms within %s after the move: %v, %v; want %d", area, as, err, want)
		}
	}
	b.SpeakerLine = protocol.LineOpen
	w.state("n1", online(b))
	if a := w.open("n1")[loaxa.AlarmSpeakerOpen]; a == nil || a.Area != "12347" {
		t.Fatalf("speaker-line alarm raised after the move: %+v; want it in 12347", a)
	}
	h, err := w.m.AreaHealth(ctx, "12347")
	if err != nil {
		t.Fatal(err)
	}
	if h.Nodes != 1 || h.Warning+h.Critical != 2 {
		t.Errorf("health of 12347 after the move: %+v; want its one node and its two alarms", h)
	}
}

// TestMovedClusterAreaUnheardAlarmNamesTheAreasItDoesNotHear: a cluster
// whose broker refused it its commune's topics (area-unheard, naming
// 12346) was moved to the neighbouring commune, and the broker refused
// it the new one's too. Its alarm, filed under 12347, went on naming
// 12346, a commune the cluster no longer belongs to, while the cluster
// said 12347: its technician was sent to fix the old commune's ACL. The
// open alarm names the areas the node says it does not hear now, and is
// announced again; it ends once it hears them all.
func TestMovedClusterAreaUnheardAlarmNamesTheAreasItDoesNotHear(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.areas.CreateArea(ctx, &loaxa.Area{ID: "12347", Name: "Xã Tiên Minh"}); err != nil {
		t.Fatal(err)
	}
	deaf := func(areas ...string) protocol.State {
		st := online(healthy())
		st.DiskFreeBytes = ptr(int64(1 << 30))
		st.AreasUnheard = areas
		return st
	}
	w.state("n1", deaf("12346"))
	w.clock.Advance(2 * time.Minute)
	w.state("n1", deaf("12346"))
	a := w.open("n1")[loaxa.AlarmAreaUnheard]
	if a == nil || !slices.Equal(a.Facts.Areas, []string{"12346"}) {
		t.Fatalf("area-unheard before the move: %+v", a)
	}
	if _, _, err := w.nodes.UpdateNodePlace(ctx, "n1", loaxa.NodePlace{Name: "n1", Area: "12347"}); err != nil {
		t.Fatal(err)
	}
	w.m.ReloadNodes(ctx)
	changes, cancel := w.m.SubscribeAlarms(func(area string) bool { return area == "12347" })
	defer cancel()
	w.clock.Advance(time.Minute)
	w.state("n1", deaf("12347"))
	got := w.open("n1")[loaxa.AlarmAreaUnheard]
	if got == nil || got.ID != a.ID || got.Area != "12347" || !slices.Equal(got.Facts.Areas, []string{"12347"}) ||
		!strings.Contains(got.Detail, "12347") || strings.Contains(got.Detail, "12346") {
		t.Fatalf("area-unheard of the moved cluster, which does not hear 12347: %+v; want the same alarm naming 12347", got)
	}
	select {
	case c := <-changes:
		if c.ID != a.ID || !slices.Equal(c.Facts.Areas, []string{"12347"}) {
			t.Errorf("announced in 12347: %+v", c)
		}
	default:
		t.Error("the alarm's new areas were not announced to 12347's subscribers")
	}
	w.clock.Advance(time.Minute)
	w.state("n1", deaf())
	if a := w.open("n1")[loaxa.AlarmAreaUnheard]; a != nil {
		t.Errorf("the cluster hears its chain: %+v still open", a)
	}
}
