package emergency

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestP99(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(5), 5 * time.Millisecond},
		{ms(9, 1, 5), 9 * time.Millisecond},
	} {
		if got := p99(c.in); got != c.want {
			t.Errorf("p99(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond
	}
	if got := p99(hundred); got != 99*time.Millisecond {
		t.Errorf("p99 of 1..100 ms = %v, want 99ms", got)
	}
}

// TestLead: estimated from the node count until an alert to the area was
// measured, then from its fan-out; always within the bounds; and only
// receives of the area publish count: a node's receipt after its first
// resend does not, one before it does.
func TestLead(t *testing.T) {
	s := NewService()
	if d, from := s.lead("31", 1000); d != 400*time.Millisecond || from != LeadEstimated {
		t.Errorf("1,000 nodes unmeasured: %v %s, want 400ms estimated", d, from)
	}
	if d, _ := s.lead("31", 100000); d != s.Lead.Max {
		t.Errorf("100,000 nodes: %v, want the bound %v", d, s.Lead.Max)
	}
	issued := time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)
	tr := &tracking{issued: issued, nodeArea: map[string]string{"n1": "31", "n2": "31", "n3": "31", "n4": "31"},
		received: map[string]time.Time{}, resends: map[string]int{"n3": 1, "n4": 1},
		resentAt: map[string]time.Time{"n3": issued.Add(2 * time.Second), "n4": issued.Add(2 * time.Second)}, done: map[string]bool{}, fanout: map[string][]time.Duration{}}
	tr.em.ID, tr.em.Occurrence = "e000001", "e000001@x"
	s.live = map[string]*tracking{"e000001": tr}
	s.fanout = map[string]*tracking{"31": tr}
	s.Events("n1", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: "e000001@x", At: issued.Add(100 * time.Millisecond)}})
	s.Events("n2", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: "e000001@x", At: issued.Add(200 * time.Millisecond)}})
	s.Events("n2", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: "e000001@x", At: issued.Add(5 * time.Second)}})        // a copy
	s.Events("n3", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: "e000001@x", At: issued.Add(9 * time.Second)}})        // after a resend
	s.Events("n4", "e1", []protocol.Event{{Type: protocol.EventReceived, Occurrence: "e000001@x", At: issued.Add(300 * time.Millisecond)}}) // resent to, but had the publish first
	if d, from := s.lead("31", 4); d != 460*time.Millisecond || from != LeadMeasured {
		t.Errorf("measured p99 300ms: %v %s, want 1.2 × 300 + 100 = 460ms measured", d, from)
	}
	if d, _ := s.lead("32", 3); d != 300*time.Millisecond+300*time.Microsecond {
		t.Errorf("another area: %v, want its own estimate", d)
	}
}
