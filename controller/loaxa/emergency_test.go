package loaxa_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"loaxa.vn/controller/loaxa"
)

func TestPercentilesOf(t *testing.T) {
	if p := loaxa.PercentilesOf(nil); p != nil {
		t.Errorf("of nothing: %+v, want nil", p)
	}
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(100 - i) // 100 … 1, unsorted
	}
	for _, tt := range []struct {
		ms   []int64
		want loaxa.Percentiles
	}{
		{[]int64{7}, loaxa.Percentiles{P50: 7, P99: 7, Max: 7}},
		{[]int64{300, 100}, loaxa.Percentiles{P50: 100, P99: 300, Max: 300}},
		{hundred, loaxa.Percentiles{P50: 50, P99: 99, Max: 100}},
	} {
		if got := loaxa.PercentilesOf(tt.ms); got == nil || *got != tt.want {
			t.Errorf("PercentilesOf(%d values) = %+v, want %+v", len(tt.ms), got, tt.want)
		}
	}
}

// TestTimingOf: receipts of every node that reported, sound and skew of
// every node that began, early starts counted by their distance.
func TestTimingOf(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	nodes := []loaxa.EmergencyNode{
		{Node: "a", ReceivedMS: ms(100), SoundMS: ms(1305), LateMS: 5},
		{Node: "b", ReceivedMS: ms(300), SoundMS: ms(1340), LateMS: 40},
		{Node: "c", ReceivedMS: ms(200), SoundMS: ms(1270), LateMS: -30},
		{Node: "d", ReceivedMS: ms(2500)}, // had it, has not begun
		{Node: "e"},                       // nothing yet
		// Began 800 ms late, 790 ms into its chime: 10 ms off the timeline.
		{Node: "f", ReceivedMS: ms(1900), SoundMS: ms(2100), LateMS: 800, ChimeSkippedMS: 790},
	}
	got := loaxa.TimingOf(nodes)
	want := loaxa.EmergencyTiming{
		Received: 5, ReceivedMS: &loaxa.Percentiles{P50: 300, P99: 2500, Max: 2500},
		Started: 4, SoundMS: &loaxa.Percentiles{P50: 1305, P99: 2100, Max: 2100},
		SkewMS: &loaxa.Percentiles{P50: 10, P99: 40, Max: 40}, OffStart: 2, ChimeSkipped: 1,
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("TimingOf = %s, want %s", g, w)
	}
	if empty := loaxa.TimingOf(nil); empty.ReceivedMS != nil || empty.SoundMS != nil || empty.Started != 0 {
		t.Errorf("TimingOf(nil) = %+v", empty)
	}
}

// TestMessageGridInStep: a 3 s chime, a 20 s message repeated three times,
// 1 s apart: the nodes that had it in time begin it 3, 24 and 45 s after
// their start.
func TestMessageGridInStep(t *testing.T) {
	g := loaxa.MessageGrid{BaseMS: 3000, PeriodMS: 21000, Repeats: 3}
	for ms, want := range map[int64]bool{
		3000: true, 3020: true, 2980: true, 3021: false, 2979: false,
		24000: true, 24015: true, 45000: true, 44990: true,
		13500: false, 66000: false, 1000: false, 0: false,
	} {
		if got := g.InStep(ms); got != want {
			t.Errorf("message begun %d ms in: in step %v, want %v", ms, got, want)
		}
	}
	if (loaxa.MessageGrid{}).InStep(0) {
		t.Error("an empty grid says in step")
	}
}
