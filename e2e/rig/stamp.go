package rig

import (
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"loaxa.vn/node/agent"
)

// StampOutput wraps an agent's output and notes the real time at which
// each play hands its first sample to it: when it would be heard.
// Benchmarks of start times use it.
type StampOutput struct {
	agent.Output
	mu     sync.Mutex
	starts []time.Time
}

// Play plays pcm through the wrapped output, noting its first read. A
// play begun a lead-in ahead of its instant (agent.PlayOffset < 0) is
// noted when its audio follows the lead-in's silence.
func (o *StampOutput) Play(ctx context.Context, pcm io.Reader) error {
	return o.Output.Play(ctx, &firstRead{r: pcm, o: o, lead: -min(agent.PlayOffset(ctx), 0)})
}

// Plays returns the start times noted so far, in order.
func (o *StampOutput) Plays() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.starts)
}

type firstRead struct {
	r    io.Reader
	o    *StampOutput
	lead time.Duration
	done bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.done {
		f.done = true
		now := time.Now().Add(f.lead)
		f.o.mu.Lock()
		f.o.starts = append(f.o.starts, now)
		f.o.mu.Unlock()
	}
	return f.r.Read(p)
}
