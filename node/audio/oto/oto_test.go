package oto_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/internal/alsatest"
	"loaxa.vn/node/audio/oto"
	"loaxa.vn/protocol/nodeaudio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, alsatest.OtoLoops...) }

// gatedSource blocks its first Read until open is closed, then gives
// silence for ever, 10 ms at a time (a download, a live call's frames).
// It counts the Reads that began after Play returned.
type gatedSource struct {
	first    chan struct{} // closed when the first Read begins
	open     chan struct{}
	returned atomic.Bool // set by the test once Play has returned
	reading  atomic.Int64
	late     atomic.Int64 // Reads begun after Play returned
	started  atomic.Bool
}

func newGatedSource() *gatedSource {
	return &gatedSource{first: make(chan struct{}), open: make(chan struct{})}
}

func (g *gatedSource) Read(p []byte) (int, error) {
	if g.returned.Load() {
		g.late.Add(1)
	}
	g.reading.Add(1)
	defer g.reading.Add(-1)
	if g.started.CompareAndSwap(false, true) {
		close(g.first)
		<-g.open
	}
	n := min(len(p), int(nodeaudio.Bytes(10*time.Millisecond)))
	clear(p[:n])
	return n, nil
}

// TestPlay: oto allows one device per process, so the cases share it.
func TestPlay(t *testing.T) {
	alsatest.Setup(t)
	out, err := oto.Open()
	if err != nil {
		t.Fatalf("open sound device: %v", err)
	}

	// A play stopped while oto's first fill waited in the source's Read
	// returned at once, and oto went on reading the source for half a
	// second after: the agent had counted what was played and closed the
	// play's files, and a live call's frames were taken from its jitter
	// buffer by a play that was over. The stopped player then joined oto's
	// mixer, closed, for good. Play returns at once all the same (an alert
	// preempting a live call that waits for its first frames must not wait
	// for them), and no Read of the source begins after it returned.
	t.Run("a play stopped during a read of its source reads it no more once it returned", func(t *testing.T) {
		g := newGatedSource()
		ctx, cancel := context.WithCancel(context.Background())
		ret := make(chan error, 1)
		go func() {
			err := out.Play(ctx, g)
			g.returned.Store(true)
			ret <- err
		}()
		<-g.first // oto's first fill is inside the source's Read
		cancel()
		if err := <-ret; !errors.Is(err, context.Canceled) {
			t.Fatalf("Play after cancel = %v, want context.Canceled", err)
		}
		close(g.open) // the Read under way ends after Play returned
		// oto's fill, had it gone on, reads again at once.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if n := g.late.Load(); n > 0 {
				t.Fatalf("the source was read %d more times after Play returned: oto's player went on filling its buffer", n)
			}
		}
	})

	t.Run("a source is played to its end", func(t *testing.T) {
		pcm := &countingReader{r: io.LimitReader(zeros{}, nodeaudio.Bytes(100*time.Millisecond))}
		if err := out.Play(context.Background(), pcm); err != nil {
			t.Fatalf("Play = %v", err)
		}
		if got, want := pcm.n, nodeaudio.Bytes(100*time.Millisecond); got != want {
			t.Errorf("played %d bytes, want %d", got, want)
		}
	})
}

// zeros is silence without end.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
