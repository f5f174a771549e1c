package alsatest

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// place returns n samples of background with snippet written at offset.
func place(n int, background func(i int) int16, snippet []int16, offset int) []int16 {
	h := make([]int16, n)
	for i := range h {
		if background != nil {
			h[i] = background(i)
		}
	}
	copy(h[offset:], snippet)
	return h
}

// throughOto returns s as oto's mixer and the capture's decoder see it at a
// player volume: int16 → float32(v)/32768·volume → ×32768, rounded.
func throughOto(s []int16, volume float32) []int16 {
	out := make([]int16, len(s))
	for i, v := range s {
		f := float32(v) / (1 << 15) * volume
		out[i] = int16(math.Round(float64(f) * 32768))
	}
	return out
}

func noise(seed uint64, amp float64) func(int) int16 {
	r := rand.New(rand.NewPCG(seed, 1))
	return func(int) int16 { return int16(amp * (2*r.Float64() - 1)) }
}

func TestFind(t *testing.T) {
	chirp := Chirp(500*time.Millisecond, 12000)
	reversed := slices.Clone(chirp)
	slices.Reverse(reversed)
	long := Chirp(3*time.Second, 12000)

	tests := []struct {
		name     string
		haystack []int16
		needle   []int16
		want     int // offset; -1 for no match
	}{
		{"exact copy in silence", place(20000, nil, chirp, 1234), chirp, 1234},
		{"at the very start", place(9000, nil, chirp, 0), chirp, 0},
		{"at the very end", place(9000, nil, chirp, 9000-len(chirp)), chirp, 9000 - len(chirp)},
		{"haystack is the needle", slices.Clone(chirp), chirp, 0},
		{"played at volume 1/16", place(20000, nil, throughOto(chirp, 1.0/16), 777), chirp, 777},
		{"played at volume 1/2 over hiss", place(30000, noise(1, 200), throughOto(chirp, 0.5), 15000), chirp, 15000},
		{"after a different signal", slices.Concat(reversed, make([]int16, 100), chirp), chirp, len(reversed) + 100},
		// An alert's message plays twice, identically: the first copy,
		// not whichever rounding favours, and not a later one that is a
		// better copy.
		{"two identical copies", place(60000, nil, slices.Concat(throughOto(chirp, 0.1), make([]int16, 16000), throughOto(chirp, 0.1)), 3000), chirp, 3000},
		{"a worse copy first", place(60000, noise(5, 200), slices.Concat(throughOto(chirp, 0.5), make([]int16, 16000), chirp), 3000), chirp, 3000},
		{"copies in different FFT blocks", slices.Concat(place(250000, nil, chirp, 1000), place(100000, nil, chirp, 5000)), chirp, 1000},
		// The offset lies past the first FFT block, so overlap-save must
		// carry the search across blocks.
		{"long haystack across blocks", place(300000, noise(2, 50), long, 250001), long, 250001},
		{"absent: reversed chirp", place(20000, nil, reversed, 5000), chirp, -1},
		{"absent: only noise", place(20000, noise(3, 12000), nil, 0), chirp, -1},
		{"absent: only silence", make([]int16, 20000), chirp, -1},
		{"needle longer than haystack", chirp[:100], chirp, -1},
		{"silent needle", place(20000, nil, chirp, 0), make([]int16, 1000), -1},
		{"empty needle", chirp, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := Find(tt.haystack, tt.needle)
			if tt.want < 0 {
				if ok {
					t.Fatalf("Find matched at %d (score %.4f), want no match", m.Offset, m.Score)
				}
				return
			}
			if !ok || m.Offset != tt.want {
				t.Fatalf("Find = %+v, %v; want offset %d", m, ok, tt.want)
			}
			if m.Score < 0.999 {
				t.Errorf("score %.5f for a faithful copy, want ≥ 0.999", m.Score)
			}
		})
	}
}

func TestFloat32ToInt16RoundTrip(t *testing.T) {
	s := []int16{0, 1, -1, 32767, -32768, 12345, -23456}
	raw := make([]byte, 4*len(s))
	for i, v := range s {
		bits := math.Float32bits(float32(v) / (1 << 15))
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	raw = append(raw, 0xff, 0xff) // a partial sample is ignored
	if got := Float32ToInt16(raw); !slices.Equal(got, s) {
		t.Fatalf("round trip = %v, want %v", got, s)
	}
}

func TestFloat32ToInt16Clips(t *testing.T) {
	raw := make([]byte, 8)
	for i, f := range []float32{1.5, -2} {
		bits := math.Float32bits(f)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	if got, want := Float32ToInt16(raw), []int16{32767, -32768}; !slices.Equal(got, want) {
		t.Fatalf("clipped = %v, want %v", got, want)
	}
}

func BenchmarkFindTenSeconds(b *testing.B) {
	needle := Chirp(2*time.Second, 10000)
	h := place(10*SampleRate, noise(4, 100), needle, 7*SampleRate)
	for b.Loop() {
		if _, ok := Find(h, needle); !ok {
			b.Fatal("not found")
		}
	}
}

// TestStarvedSaysWhereSilenceCutTheSnippet: a full run at load 32 failed
// an alert's opening chime with "best score 0.893" and nothing more; a
// chime cut in two by silence the device played for a starved writer
// must be told apart from a chime that never played.
func TestStarvedSaysWhereSilenceCutTheSnippet(t *testing.T) {
	chime := Chirp(time.Second, 12000)
	gap := make([]int16, 2*starvedRun)
	cut := slices.Concat(make([]int16, 800), chime[:SampleRate/2], gap, chime[SampleRate/2:], make([]int16, 800))
	m, ok := Find(cut, chime)
	if ok {
		t.Fatalf("a chime cut by 20 ms of silence found whole (score %.3f)", m.Score)
	}
	if got := starved(cut, chime, m); !strings.Contains(got, "1 run(s) of exact silence") {
		t.Errorf("the failure says %q, want the silence that cut it", got)
	}
	// Silence the snippet has itself (a template's gap) says nothing.
	withGap := slices.Concat(chime[:SampleRate/2], gap, chime[SampleRate/2:])
	if got := starved(cut, withGap, m); got != "" {
		t.Errorf("a snippet with its own silence said to be cut: %q", got)
	}
	if got := starved(chime, chime, Match{Offset: 0}); got != "" {
		t.Errorf("a whole chime said to be cut: %q", got)
	}
}
