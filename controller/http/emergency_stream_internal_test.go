package http

import (
	"testing"

	"loaxa.vn/controller/loaxa"
)

// TestSameNode: a node's entry in two report builds is the same when what
// it says is, though each build makes its own optional times; a stream
// that compared those by address sent every node again after each
// refresh.
func TestSameNode(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	node := func() loaxa.EmergencyNode {
		return loaxa.EmergencyNode{Node: "n1", Area: "31", State: "started", ReceivedMS: ms(120), ContentReady: true, ContentReadyMS: ms(120),
			SoundMS: ms(1300), Online: true}
	}
	if a, b := node(), node(); !sameNode(a, b) {
		t.Errorf("two builds of the same entry differ: %+v, %+v", a, b)
	}
	for name, change := range map[string]func(*loaxa.EmergencyNode){
		"state":            func(n *loaxa.EmergencyNode) { n.State = "completed" },
		"received_ms":      func(n *loaxa.EmergencyNode) { *n.ReceivedMS = 121 },
		"no received_ms":   func(n *loaxa.EmergencyNode) { n.ReceivedMS = nil },
		"content_ready_ms": func(n *loaxa.EmergencyNode) { *n.ContentReadyMS = 900 },
		"no content ready": func(n *loaxa.EmergencyNode) { n.ContentReadyMS = nil },
		"sound_ms":         func(n *loaxa.EmergencyNode) { *n.SoundMS = 1305 },
	} {
		a, b := node(), node()
		change(&b)
		if sameNode(a, b) {
			t.Errorf("%s changed, but the entries are the same to the stream", name)
		}
	}
}
