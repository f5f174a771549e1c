package protocol_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// envAt returns an accepted-looking envelope from key kid with sequence seq
// that expires at exp (Unix ms).
func envAt(kid string, seq uint64, exp int64) *protocol.Envelope {
	return &protocol.Envelope{V: protocol.Version, Type: protocol.TypeCommand, KeyID: kid, Seq: seq, Expires: exp}
}

func TestReplayGuard(t *testing.T) {
	now := prototest.Now()
	ms := now.UnixMilli()
	exp := ms + 60_000

	t.Run("accepts once and refuses a copy", func(t *testing.T) {
		g := protocol.NewReplayGuard(nil)
		entry, err := g.Check(envAt("k1", 7, exp), now)
		if err != nil {
			t.Fatal(err)
		}
		if entry != (protocol.ReplayEntry{KeyID: "k1", Seq: 7, Expires: exp}) {
			t.Errorf("entry = %+v", entry)
		}
		entry, err = g.Check(envAt("k1", 7, exp), now.Add(time.Second))
		wantRefusal(t, "copy", nil, err, protocol.ErrReplay)
		if entry != (protocol.ReplayEntry{}) {
			t.Errorf("a refused copy returned entry %+v to persist", entry)
		}
		// Same sequence from another key is another message.
		if _, err := g.Check(envAt("k2", 7, exp), now); err != nil {
			t.Errorf("same seq, other key: %v", err)
		}
		if g.Len() != 2 {
			t.Errorf("Len() = %d, want 2", g.Len())
		}
	})

	t.Run("accepts reordered sequences", func(t *testing.T) {
		g := protocol.NewReplayGuard(nil)
		for _, seq := range []uint64{5, 4, 6, 1} {
			if _, err := g.Check(envAt("k1", seq, exp), now); err != nil {
				t.Errorf("seq %d: %v", seq, err)
			}
		}
		_, err := g.Check(envAt("k1", 4, exp), now)
		wantRefusal(t, "seq 4 again", nil, err, protocol.ErrReplay)
	})

	t.Run("forgets at expiry", func(t *testing.T) {
		g := protocol.NewReplayGuard(nil)
		if _, err := g.Check(envAt("k1", 1, exp), now); err != nil {
			t.Fatal(err)
		}
		_, err := g.Check(envAt("k1", 1, exp), time.UnixMilli(exp-1))
		wantRefusal(t, "a millisecond before expiry", nil, err, protocol.ErrReplay)
		// From exp on, Verifier.Open refuses the message as expired, so
		// the guard need not remember it.
		if _, err := g.Check(envAt("k2", 1, exp+60_000), time.UnixMilli(exp)); err != nil {
			t.Fatal(err)
		}
		if g.Len() != 1 {
			t.Errorf("Len() = %d after expiry, want 1", g.Len())
		}
		if _, err := g.Check(envAt("k1", 1, exp), time.UnixMilli(exp)); err != nil {
			t.Errorf("an expired entry was not forgotten: %v", err)
		}
	})

	t.Run("reloaded entries still refuse", func(t *testing.T) {
		g := protocol.NewReplayGuard(nil)
		var persisted []protocol.ReplayEntry
		for seq := range uint64(3) {
			entry, err := g.Check(envAt("k1", seq, exp+int64(seq)), now)
			if err != nil {
				t.Fatal(err)
			}
			persisted = append(persisted, entry)
		}
		restarted := protocol.NewReplayGuard(persisted)
		if restarted.Len() != 3 {
			t.Errorf("Len() = %d after reload, want 3", restarted.Len())
		}
		for seq := range uint64(3) {
			_, err := restarted.Check(envAt("k1", seq, exp+int64(seq)), now)
			wantRefusal(t, fmt.Sprintf("seq %d after reload", seq), nil, err, protocol.ErrReplay)
		}
		// Entries that expired while the receiver was down go at once.
		if _, err := restarted.Check(envAt("k1", 9, exp+60_000), time.UnixMilli(exp+10)); err != nil {
			t.Fatal(err)
		}
		if restarted.Len() != 1 {
			t.Errorf("Len() = %d, want the expired reloaded entries forgotten", restarted.Len())
		}
	})

	t.Run("a pair reloaded twice keeps its latest expiry", func(t *testing.T) {
		for _, entries := range [][]protocol.ReplayEntry{
			{{KeyID: "k1", Seq: 1, Expires: exp}, {KeyID: "k1", Seq: 1, Expires: exp + 60_000}},
			{{KeyID: "k1", Seq: 1, Expires: exp + 60_000}, {KeyID: "k1", Seq: 1, Expires: exp}},
		} {
			g := protocol.NewReplayGuard(entries)
			_, err := g.Check(envAt("k1", 1, exp+60_000), time.UnixMilli(exp+1))
			wantRefusal(t, "after the earlier expiry", nil, err, protocol.ErrReplay)
			if _, err := g.Check(envAt("k1", 1, exp+60_000), time.UnixMilli(exp+60_000)); err != nil {
				t.Errorf("after the later expiry: %v", err)
			}
		}
	})
}

// TestReplayGuardConcurrent checks the same envelopes from many goroutines
// at once (run with -race): each is accepted exactly once.
func TestReplayGuardConcurrent(t *testing.T) {
	const workers, msgs = 8, 200
	now := prototest.Now()
	g := protocol.NewReplayGuard(nil)
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range msgs {
				seq := uint64((i + w*7) % msgs) // each worker in its own order
				_, err := g.Check(envAt("k1", seq, now.UnixMilli()+1000), now)
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, protocol.ErrReplay):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != msgs || refused.Load() != (workers-1)*msgs {
		t.Errorf("accepted %d, refused %d; want %d and %d", accepted.Load(), refused.Load(), msgs, (workers-1)*msgs)
	}
}

// TestReplayGuardModel drives the guard with random checks on a clock that
// moves forward, alongside the obvious model (a map scanned in full on every
// call), and expects the same answer and size at every step.
func TestReplayGuardModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct {
		kid string
		seq uint64
	}
	var initial []protocol.ReplayEntry
	model := map[key]int64{}
	for range 200 {
		e := protocol.ReplayEntry{KeyID: "k" + fmt.Sprint(rng.IntN(2)), Seq: rng.Uint64N(300), Expires: rng.Int64N(5000)}
		initial = append(initial, e)
		k := key{e.KeyID, e.Seq}
		model[k] = max(model[k], e.Expires)
	}
	g := protocol.NewReplayGuard(initial)
	ms := int64(0)
	for step := range 20_000 {
		ms += rng.Int64N(3)
		for k, exp := range model {
			if exp <= ms {
				delete(model, k)
			}
		}
		k := key{"k" + fmt.Sprint(rng.IntN(2)), rng.Uint64N(300)}
		exp := ms + 1 + rng.Int64N(2000)
		_, dup := model[k]
		if !dup {
			model[k] = exp
		}
		_, err := g.Check(envAt(k.kid, k.seq, exp), time.UnixMilli(ms))
		if dup != errors.Is(err, protocol.ErrReplay) || (!dup && err != nil) {
			t.Fatalf("step %d at %d ms: %+v: err = %v, model says replay=%v", step, ms, k, err, dup)
		}
		if g.Len() != len(model) {
			t.Fatalf("step %d: Len() = %d, model has %d", step, g.Len(), len(model))
		}
	}
}

// BenchmarkReplayGuardCheck measures Check in a steady state of 10,000
// remembered messages, one expiring for each one accepted.
func BenchmarkReplayGuardCheck(b *testing.B) {
	const remembered = 10_000
	var entries []protocol.ReplayEntry
	for i := range remembered {
		entries = append(entries, protocol.ReplayEntry{KeyID: "k1", Seq: uint64(i), Expires: int64(i + 1)})
	}
	g := protocol.NewReplayGuard(entries)
	env := envAt("k1", 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// At i ms the entry that expires at i goes; the new one expires
		// 10,000 ms later.
		env.Seq, env.Expires = uint64(remembered+i), int64(remembered+i+1)
		if _, err := g.Check(env, time.UnixMilli(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	if g.Len() > remembered+1 {
		b.Fatalf("Len() = %d: the guard is not forgetting", g.Len())
	}
}
