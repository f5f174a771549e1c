package fleet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"loaxa.vn/node/agent"
)

// A sound log has one line per play an agent began, written when its
// output took the play's first sample (the instant it would be heard, on
// the real wall clock of the machine), and how far into the occurrence's
// stream that sample lies (a late emergency skips into its opening chime
// to play on its area's timeline; agent.PlayOffset), 0 for a play from its
// beginning; negative for a play begun a lead-in ahead of its instant
// with that much silence, whose stream's first sample is heard at the
// time less the offset:
//
//	<node id> <occurrence id> <Unix time in ns> <offset in ns>
//
// Benchmarks on one machine read it to measure alert-to-sound and start
// skew across processes.

// soundLine is one play's start.
type soundLine struct {
	node, occurrence string
	at               time.Time
	offset           time.Duration
}

// soundLog writes lines off the audio path: an output hands its line to a
// goroutine that writes and flushes whenever it has nothing more to write.
type soundLog struct {
	lines chan soundLine
	done  chan error
}

func newSoundLog(w io.Writer) *soundLog {
	l := &soundLog{lines: make(chan soundLine, 4096), done: make(chan error, 1)}
	go func() {
		bw := bufio.NewWriterSize(w, 64<<10)
		var err error
		for ln := range l.lines {
			if err == nil {
				_, err = fmt.Fprintf(bw, "%s %s %d %d\n", ln.node, ln.occurrence, ln.at.UnixNano(), ln.offset)
			}
			if len(l.lines) == 0 && err == nil {
				err = bw.Flush()
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			err = fmt.Errorf("fleet: sound log: %w", err)
		}
		l.done <- err
	}()
	return l
}

// close writes what is left; the outputs must have stopped.
func (l *soundLog) close() error {
	close(l.lines)
	return <-l.done
}

// soundOutput wraps a node's output and logs the start of each play of
// an occurrence. The fleet's outputs (audio.None) have no latency to
// pass on.
type soundOutput struct {
	agent.Output
	node string
	log  *soundLog
}

// Err is the wrapped output's (agent.CheckedOutput), nil if it cannot tell.
func (o *soundOutput) Err() error {
	if c, ok := o.Output.(agent.CheckedOutput); ok {
		return c.Err()
	}
	return nil
}

func (o *soundOutput) Play(ctx context.Context, pcm io.Reader) error {
	occ, ok := agent.PlayOccurrence(ctx)
	if !ok {
		return o.Output.Play(ctx, pcm)
	}
	offset := agent.PlayOffset(ctx)
	return o.Output.Play(ctx, &firstRead{r: pcm, at: func() {
		o.log.lines <- soundLine{node: o.node, occurrence: occ.ID, at: time.Now(), offset: offset}
	}})
}

// firstRead calls at before the first read of r.
type firstRead struct {
	r    io.Reader
	at   func()
	done bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.done {
		f.done = true
		f.at()
	}
	return f.r.Read(p)
}
