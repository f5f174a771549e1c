package alsatest

import "math"

// InsertedRun is the shortest run of exact zeros FindAcrossSilence takes
// for silence the device inserted: 2 ms. Sound of any level a test plays
// has no such run, while a starved writer leaves the device a buffer's
// worth of silence or more.
const InsertedRun = SampleRate / 500

// Spread is a snippet found in a capture, whole or in pieces with silence
// the device inserted between them.
type Spread struct {
	// Match gives where the snippet's first sample lies and how well the
	// snippet, with the inserted silence left out, correlates.
	Match
	// Len is the snippet's length in samples.
	Len int
	// Inserted is how many samples of exact silence the device played
	// inside the snippet: 0 when it came out whole.
	Inserted int
}

// End returns the index just past the snippet's last sample.
func (s Spread) End() int { return s.Offset + s.Len + s.Inserted }

// FindAcrossSilence is Find for a capture whose device may have played
// silence in the middle of the snippet: a node's writer starved of the CPU
// on a busy machine has nothing ready, and the device plays exact silence
// until it has, so the snippet comes out late and in pieces, but whole. It
// looks for the snippet in haystack with every run of at least InsertedRun
// exact zeros left out, and counts the zeros inside the match as inserted.
// A snippet whose pieces do not all come out, in order, is not found.
//
// The snippet's own quiet beginning and end (quieter than 1% of its peak,
// which a low volume rounds to zeros) are left out of the search, so that
// they are not taken for inserted silence. A snippet with silence of its
// own inside (a run of InsertedRun quiet samples) cannot be told from one
// the device cut: it is looked for whole, as Find does.
func FindAcrossSilence(haystack, needle []int16) (Spread, bool) {
	lead, core := quietEdges(needle)
	if len(core) == 0 || quietRun(core, peak(needle)/100) {
		m, ok := Find(haystack, needle)
		return Spread{Match: m, Len: len(needle)}, ok
	}
	kept := make([]int16, 0, len(haystack))
	at := make([]int, 0, len(haystack)) // at[i] is kept[i]'s index in haystack
	for i := 0; i < len(haystack); {
		j := i
		for j < len(haystack) && haystack[j] == 0 {
			j++
		}
		if j-i < InsertedRun {
			j = max(j, i+1)
			for k := i; k < j; k++ {
				kept, at = append(kept, haystack[k]), append(at, k)
			}
		}
		i = j
	}
	// A piece a sample or two off (see align) lowers the score of the
	// search with the silence left out; candidateScore finds it still, and
	// align decides.
	m, _ := find(kept, core[:max(1, len(core)-2*maxEdgeZeros)], candidateScore)
	if m.Offset < 0 {
		return Spread{Match: m, Len: len(needle)}, false
	}
	first, last, score := align(haystack, at, m.Offset, core)
	return Spread{
		Match:    Match{Offset: first - lead, Score: score},
		Len:      len(needle),
		Inserted: last + 1 - first - len(core),
	}, score >= MinScore
}

// maxEdgeZeros is how many of a snippet's own samples next to a run of
// inserted silence may round to exact zeros, and so go with the run.
const maxEdgeZeros = 2

// candidateScore is the score from which the search with the silence left
// out takes an offset as the snippet's, to be aligned piece by piece: half
// a chirp one sample off still scores above it.
const candidateScore = 0.7

// align places each piece of core's match at kept offset k (the kept
// samples between two runs of silence left out) where it correlates best
// within maxEdgeZeros samples: a piece whose first or last sample was a
// zero of the snippet's own lost it with the silence beside it, and the
// search left out would otherwise put it a sample off. It returns the
// haystack indices of core's first and last samples and the correlation
// of core with the pieces so placed.
func align(haystack []int16, at []int, k int, core []int16) (first, last int, score float64) {
	var dot, energy, coreEnergy float64
	for _, v := range core {
		coreEnergy += float64(v) * float64(v)
	}
	shift := 0                       // the previous piece's: shifts add up along the snippet
	end := min(k+len(core), len(at)) // the last few may be missing: see FindAcrossSilence
	for i := k; i < end; {
		j := i + 1
		for j < end && at[j] == at[j-1]+1 {
			j++
		}
		piece := haystack[at[i] : at[j-1]+1]
		x := i - k // where the piece lies in core before alignment
		best, bestDot := shift, math.Inf(-1)
		for d := shift - maxEdgeZeros; d <= shift+maxEdgeZeros; d++ {
			var sum float64
			for n, v := range piece {
				if c := x + d + n; c >= 0 && c < len(core) {
					sum += float64(v) * float64(core[c])
				}
			}
			if sum > bestDot {
				best, bestDot = d, sum
			}
		}
		for _, v := range piece {
			energy += float64(v) * float64(v)
		}
		if i == k {
			first = at[i] - x - best
		}
		shift, dot = best, dot+bestDot
		last = at[j-1] + (len(core) - 1 - (x + best + len(piece) - 1))
		i = j
	}
	if energy == 0 {
		return first, last, 0
	}
	return first, last, dot / math.Sqrt(energy*coreEnergy)
}

// quietEdges returns how many samples of needle's quiet beginning it has,
// and needle without its quiet beginning and end (quieter than 1% of its
// peak).
func quietEdges(needle []int16) (lead int, core []int16) {
	quiet := peak(needle) / 100
	lo, hi := 0, len(needle)
	for lo < hi && abs(needle[lo]) <= quiet {
		lo++
	}
	for hi > lo && abs(needle[hi-1]) <= quiet {
		hi--
	}
	return lo, needle[lo:hi]
}

// quietRun reports whether s holds InsertedRun samples in a row no louder
// than quiet.
func quietRun(s []int16, quiet int) bool {
	run := 0
	for _, v := range s {
		if abs(v) > quiet {
			run = 0
		} else if run++; run >= InsertedRun {
			return true
		}
	}
	return false
}

func peak(s []int16) int {
	p := 0
	for _, v := range s {
		p = max(p, abs(v))
	}
	return p
}

func abs(v int16) int {
	if v < 0 {
		return -int(v)
	}
	return int(v)
}
