package alsatest

import (
	"math"
	"slices"
	"testing"
	"time"
)

// bell returns a note with a soft attack and a decay, like an alert's
// chime: its first and last samples are near silence, which a low volume
// rounds to exact zeros.
func bell(d time.Duration) []int16 {
	s := make([]int16, int(d*SampleRate/time.Second))
	for k := range s {
		t := float64(k) / SampleRate
		env := math.Exp(-4*t) * math.Min(1, float64(k)/80)
		s[k] = int16(math.Round(20000 * env * (math.Sin(2*math.Pi*523.25*t) + 0.35*math.Sin(2*math.Pi*1046.5*t)) / 1.35))
	}
	return s
}

// TestFindAcrossSilenceCountsWhatTheDeviceInserted: a full run at load 32
// failed an alert's opening chime with "best score 0.893": the node's
// writer, starved of the CPU, had nothing ready and the device played
// silence in the middle of the chime, which then came out whole but in two
// pieces. Such a snippet must be found where its first piece begins, with
// the silence counted; one with a piece missing, out of order or wrong
// must not.
func TestFindAcrossSilenceCountsWhatTheDeviceInserted(t *testing.T) {
	chirp := throughOto(Chirp(time.Second, 12000), 0.1) // −20 dB, as an alert at volume 5
	half := len(chirp) / 2
	reversed := slices.Clone(chirp)
	slices.Reverse(reversed)
	chime := bell(1680 * time.Millisecond)
	quietChime := throughOto(chime, 0.1)
	silence := func(n int) []int16 { return make([]int16, n) }

	tests := []struct {
		name         string
		haystack     []int16
		needle       []int16
		want         int // offset; -1 for no match
		wantInserted int
	}{
		{"whole, after silence", slices.Concat(silence(5000), chirp, silence(5000)), Chirp(time.Second, 12000), 5000, 0},
		{"cut in two by 20 ms where it crosses zero", slices.Concat(silence(800), chirp[:half], silence(320), chirp[half:], silence(800)), Chirp(time.Second, 12000), 800, 320},
		{"cut by 2 ms near its end", slices.Concat(silence(800), chirp[:len(chirp)-300], silence(InsertedRun), chirp[len(chirp)-300:]), Chirp(time.Second, 12000), 800, InsertedRun},
		{"cut three times", slices.Concat(silence(100), chirp[:1000], silence(500), chirp[1000:9000], silence(64), chirp[9000:12000], silence(1600), chirp[12000:]), Chirp(time.Second, 12000), 100, 500 + 64 + 1600},
		{"a chime with a soft attack after silence, cut", slices.Concat(silence(3000), quietChime[:7000], silence(480), quietChime[7000:], silence(100)), chime, 3000, 480},
		{"the first of two copies, cut", slices.Concat(silence(10), chirp[:half], silence(200), chirp[half:], silence(16000), chirp), Chirp(time.Second, 12000), 10, 200},
		{"absent: its second half missing", slices.Concat(silence(800), chirp[:half], silence(16000)), Chirp(time.Second, 12000), -1, 0},
		{"absent: its second half replaced", slices.Concat(silence(800), chirp[:half], silence(320), reversed[:half]), Chirp(time.Second, 12000), -1, 0},
		{"absent: its pieces in the wrong order", slices.Concat(silence(800), chirp[half:], silence(320), chirp[:half], silence(800)), Chirp(time.Second, 12000), -1, 0},
		{"absent: a piece dropped, not delayed", slices.Concat(silence(800), chirp[:half], silence(320), chirp[half+1600:]), Chirp(time.Second, 12000), -1, 0},
		{"absent: only silence", silence(40000), Chirp(time.Second, 12000), -1, 0},
		// A snippet with its own silence inside (a template's gap) is
		// looked for whole: its gap cannot be told from an inserted one.
		{"with its own gap, whole", slices.Concat(silence(100), chirp[:half], silence(1600), chirp[half:]), slices.Concat(Chirp(time.Second, 12000)[:half], silence(1600), Chirp(time.Second, 12000)[half:]), 100, 0},
		{"absent: with its own gap, longer", slices.Concat(silence(100), chirp[:half], silence(3200), chirp[half:]), slices.Concat(Chirp(time.Second, 12000)[:half], silence(1600), Chirp(time.Second, 12000)[half:]), -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := FindAcrossSilence(tt.haystack, tt.needle)
			if tt.want < 0 {
				if ok {
					t.Fatalf("found at %d with %d samples inserted (score %.4f), want no match", m.Offset, m.Inserted, m.Score)
				}
				return
			}
			if !ok || m.Offset != tt.want || m.Inserted != tt.wantInserted {
				t.Fatalf("FindAcrossSilence = %+v, %v; want offset %d with %d samples inserted", m, ok, tt.want, tt.wantInserted)
			}
			if m.Score < 0.999 {
				t.Errorf("score %.5f for a faithful copy, want ≥ 0.999", m.Score)
			}
			if want := tt.want + len(tt.needle) + tt.wantInserted; m.End() != want {
				t.Errorf("End = %d, want %d", m.End(), want)
			}
		})
	}
}
