package http

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// TestSameNode: a node's entry in two report builds is the same when what
// it says is, though each build makes its own optional times; a stream
// that compared those by address sent every node again after each
// refresh (and, until message_ms and message_in_step compared by value
// too, every node whose message came after its chime).
func TestSameNode(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	yes := func() *bool { v := true; return &v }
	node := func() loaxa.EmergencyNode {
		return loaxa.EmergencyNode{Node: "n1", Area: "31", State: "started", ReceivedMS: ms(120), ContentReady: true, ContentReadyMS: ms(120),
			SoundMS: ms(1300), MessageMS: ms(1680), MessageInStep: yes(), Online: true, SilencedBy: &[]string{loaxa.AlarmSpeakerOpen}}
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
		"message_ms":       func(n *loaxa.EmergencyNode) { *n.MessageMS = 15960 },
		"message in step":  func(n *loaxa.EmergencyNode) { *n.MessageInStep = false },
		"no message_ms":    func(n *loaxa.EmergencyNode) { n.MessageMS, n.MessageInStep = nil, nil },
		"silenced_by":      func(n *loaxa.EmergencyNode) { *n.SilencedBy = []string{loaxa.AlarmAmplifier} },
		"no silenced_by":   func(n *loaxa.EmergencyNode) { n.SilencedBy = nil },
	} {
		a, b := node(), node()
		change(&b)
		if sameNode(a, b) {
			t.Errorf("%s changed, but the entries are the same to the stream", name)
		}
	}
}

// BenchmarkStreamBurst writes the first burst of a province's emergency
// stream, its 10,000 clusters (half of them through the alert), and a
// later burst of one change, as a gzip client and a plain one get them:
// the bytes on the wire and what the stream's writer allocates.
//
//	go test -run '^$' -bench StreamBurst -benchmem ./controller/http
func BenchmarkStreamBurst(b *testing.B) {
	nodes := make([]loaxa.EmergencyNode, 10000)
	for i := range nodes {
		n := loaxa.EmergencyNode{Node: fmt.Sprintf("cum-%05d", i), Area: fmt.Sprintf("31%03d", i%100), State: "offline"}
		if i%2 == 0 {
			received, sound := int64(300+i%700), int64(1400+i%20)
			n.State, n.ReceivedMS, n.SoundMS, n.ContentReady, n.ContentReadyMS, n.Online = "started", &received, &sound, true, &received, true
		}
		nodes[i] = n
	}
	for _, accept := range []string{"gzip", "identity"} {
		b.Run(accept, func(b *testing.B) {
			var wire int
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/api/v1/emergency/e000001/stream", nil)
				req.Header.Set("Accept-Encoding", accept)
				out := newBurstWriter(rec, req)
				for _, n := range nodes {
					out.event("node", n)
				}
				out.event("summary", streamSummary{ID: "e000001"})
				out.flush()
				out.event("node", nodes[1])
				out.flush()
				out.close()
				wire = rec.Body.Len()
			}
			b.ReportMetric(float64(wire)/1e3, "wire-KB")
		})
	}
}

// TestResumePointsBounded: a report kept again keeps its token; an
// emergency keeps its last resumeKeep reports, each for resumeFor; tokens
// are per emergency and have the form validResumeToken accepts.
func TestResumePointsBounded(t *testing.T) {
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	p := &resumePoints{now: func() time.Time { return now }}
	var reps []*loaxa.EmergencyReport
	var tokens []string
	for range resumeKeep + 2 {
		rep := &loaxa.EmergencyReport{Emergency: &loaxa.Emergency{ID: "e000001"}}
		reps, tokens = append(reps, rep), append(tokens, p.remember(rep))
		now = now.Add(time.Second)
	}
	for i, tok := range tokens {
		if !validResumeToken(tok) {
			t.Errorf("token %q is not valid", tok)
		}
		want := reps[i]
		if i < 2 {
			want = nil // pushed out by the newer ones
		}
		if got := p.find("e000001", tok); got != want {
			t.Errorf("find(token %d) = %p, want %p", i, got, want)
		}
	}
	if got := p.remember(reps[4]); got != tokens[4] {
		t.Errorf("kept again: token %q, want %q", got, tokens[4])
	}
	if p.find("e000002", tokens[7]) != nil {
		t.Error("another emergency found by this one's token")
	}
	// Kept again, reps[4] is the newest: the others go first.
	now = now.Add(resumeFor - 3*time.Second)
	if p.find("e000001", tokens[2]) != nil || p.find("e000001", tokens[4]) != reps[4] || p.find("e000001", tokens[7]) != reps[7] {
		t.Error("after resumeFor of the older ones, want them forgotten and the newest kept")
	}
	now = now.Add(resumeFor)
	if p.find("e000001", tokens[4]) != nil || len(p.byID) != 0 {
		t.Errorf("after resumeFor of every one: %d emergencies kept", len(p.byID))
	}
	for _, bad := range []string{"", "x", "0badcafe", "0badcafe-", "0badcafz-1", "0badcafe-1-2", "0badcafe0-1", "0badcafe-99999999999999999999999"} {
		if validResumeToken(bad) {
			t.Errorf("validResumeToken(%q) = true", bad)
		}
	}
}
