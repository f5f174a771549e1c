package health_test

import (
	"context"
	"testing"

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
