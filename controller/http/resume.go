package http

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
)

// Resume points of the emergency stream.
const (
	// resumeKeep is how many reports of one emergency are remembered:
	// the board's load and the last bursts of its streams.
	resumeKeep = 6
	// resumeFor is how long one is remembered: the time between a
	// board's load and its stream, or a phone's reconnect over a weak
	// link.
	resumeFor = 2 * time.Minute
)

// resumePoints remembers the emergency reports clients were recently given
// (a board's GET /emergency/{id}, each burst of a stream) under a token, so
// that a stream can begin from what its client already shows and send only
// what changed since. Without it a stream begins with every cluster again:
// at a province's alert that is 10,000 events, 120 KB over 4G and about
// 1.5 s of a phone's processor (BENCHMARKS.md), right after the board loaded
// the same clusters. A token is the controller's boot nonce and a sequence
// number, so one from before a restart matches nothing; an unknown or
// forgotten token only means a stream begins with every cluster, as before.
//
// The reports are immutable once built (streams share them), so keeping a
// pointer costs only the memory of reports that would otherwise be freed:
// at most resumeKeep per emergency watched in the last resumeFor, about
// 1.3 MB each at 10,000 clusters.
type resumePoints struct {
	now func() time.Time // real time; tests replace it

	once  sync.Once
	nonce string

	mu   sync.Mutex
	seq  uint64
	byID map[string][]resumePoint
}

type resumePoint struct {
	token string
	rep   *loaxa.EmergencyReport
	kept  time.Time
}

func (p *resumePoints) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// remember keeps rep and returns its token (the same token for the same
// report).
func (p *resumePoints) remember(rep *loaxa.EmergencyReport) string {
	p.once.Do(func() {
		b := make([]byte, 4)
		rand.Read(b) // never fails (crypto/rand)
		p.nonce = hex.EncodeToString(b)
	})
	now := p.clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prune(now)
	if p.byID == nil {
		p.byID = map[string][]resumePoint{}
	}
	kept := p.byID[rep.ID]
	for i, k := range kept {
		if k.rep == rep { // kept again: it moves to the end, the newest
			k.kept = now
			p.byID[rep.ID] = append(append(kept[:i:i], kept[i+1:]...), k)
			return k.token
		}
	}
	p.seq++
	token := p.nonce + "-" + strconv.FormatUint(p.seq, 10)
	if len(kept) >= resumeKeep {
		kept = append(kept[:0], kept[1:]...) // the oldest goes
	}
	p.byID[rep.ID] = append(kept, resumePoint{token: token, rep: rep, kept: now})
	return token
}

// validResumeToken reports whether token has the form remember gives: a
// hex nonce, a dash and a number.
func validResumeToken(token string) bool {
	nonce, seq, ok := strings.Cut(token, "-")
	if !ok || len(nonce) != 8 || len(seq) == 0 || len(seq) > 20 {
		return false
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return false
	}
	_, err := strconv.ParseUint(seq, 10, 64)
	return err == nil
}

// find returns the report of emergency id remembered under token, or nil.
func (p *resumePoints) find(id, token string) *loaxa.EmergencyReport {
	if token == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prune(p.clock())
	for _, k := range p.byID[id] {
		if k.token == token {
			return k.rep
		}
	}
	return nil
}

// prune forgets what was kept longer than resumeFor. Called with p.mu held.
func (p *resumePoints) prune(now time.Time) {
	for id, kept := range p.byID {
		i := 0
		for i < len(kept) && now.Sub(kept[i].kept) >= resumeFor {
			i++
		}
		switch {
		case i == len(kept):
			delete(p.byID, id)
		case i > 0:
			p.byID[id] = append(kept[:0], kept[i:]...)
		}
	}
}
