package health_test

import (
	"context"
	"testing"

	"loaxa.vn/controller/loaxa"
)

// TestMovedNodeAlarmsInItsNewArea: the monitor took a node's area once,
// when it first saw the node, so a cluster moved to the neighbouring
// commune raised its alarms in its old commune, where that commune's
// technician saw them and its own did not. Once reloaded (the API's
// Changed after a move), its next alarm is its new commune's.
func TestMovedNodeAlarmsInItsNewArea(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.areas.CreateArea(ctx, &loaxa.Area{ID: "12347", Name: "Xã Tiên Minh"}); err != nil {
		t.Fatal(err)
	}
	w.state("n1", online(healthy()))
	if _, _, err := w.nodes.UpdateNodePlace(ctx, "n1", loaxa.NodePlace{Name: "n1", Area: "12347"}); err != nil {
		t.Fatal(err)
	}
	w.m.ReloadNodes(ctx)
	b := healthy()
	b.DoorOpen = ptr(true)
	w.state("n1", online(b))
	a := w.open("n1")[loaxa.AlarmDoorOpen]
	if a == nil || a.Area != "12347" {
		t.Fatalf("door-open alarm of the moved node: %+v; want one in 12347", a)
	}
	h, err := w.m.AreaHealth(ctx, "12347")
	if err != nil {
		t.Fatal(err)
	}
	if h.Nodes != 1 || h.Warning+h.Critical != 1 {
		t.Errorf("health of 12347 after the move: %+v; want its one node and its alarm", h)
	}
}
