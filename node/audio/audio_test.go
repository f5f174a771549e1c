package audio_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/protocol/nodeaudio"
)

var _ agent.Output = (*audio.None)(nil)

// waitTimer polls until the code under test waits on the fake clock; Play
// returning first fails the test.
func waitTimer(t *testing.T, fc *clock.Fake, done <-chan error) {
	t.Helper()
	if ended, err := awaitTimer(t, fc, done); ended {
		t.Fatalf("Play returned early: %v", err)
	}
}

// awaitTimer polls until the code under test waits on the fake clock, or
// Play returns: then ended, with Play's error.
func awaitTimer(t *testing.T, fc *clock.Fake, done <-chan error) (ended bool, err error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fc.Timers() == 0 {
		select {
		case err := <-done:
			return true, err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Play neither waited on the clock nor returned")
		}
		time.Sleep(time.Millisecond)
	}
	return false, nil
}

func TestNonePacesInRealTime(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	out := audio.NewNone(fc)
	pcm := make([]byte, nodeaudio.Bytes(time.Second)+100) // a second and a bit
	done := make(chan error, 1)
	start := fc.Now()
	go func() { done <- out.Play(context.Background(), bytes.NewReader(pcm)) }()
	// Each step lets the clock run until Play waits on it again, or
	// returns.
	for {
		ended, err := awaitTimer(t, fc, done)
		if !ended {
			fc.Advance(audio.Chunk)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if played := fc.Now().Sub(start); played < time.Second || played > time.Second+audio.Chunk {
			t.Fatalf("Play took %v of clock time for ~1s of audio", played)
		}
		if out.Plays() != 1 {
			t.Fatalf("Plays() = %d", out.Plays())
		}
		return
	}
}

// stallingReader reads like r, except that its read at byte at keeps the
// caller waiting for stall on fc (a download that brought nothing).
type stallingReader struct {
	r     io.Reader
	fc    *clock.Fake
	at    int
	stall time.Duration
	n     int
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.n < s.at && s.n+len(p) > s.at {
		p = p[:s.at-s.n] // up to the stall
	} else if s.n == s.at && s.stall > 0 {
		s.fc.Advance(s.stall)
		s.stall = 0
	}
	n, err := s.r.Read(p)
	s.n += n
	return n, err
}

// TestNoneRunsDryWhileAReadWaits: a read that keeps None waiting 2 s
// halfway through a second of audio runs it dry, as a device: the second
// half is heard after the wait, so the play takes 3 s, not the 1 s it
// would take if None read the rest at once to catch up.
func TestNoneRunsDryWhileAReadWaits(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	out := audio.NewNone(fc)
	half := int(nodeaudio.Bytes(500 * time.Millisecond))
	src := &stallingReader{r: bytes.NewReader(make([]byte, 2*half)), fc: fc, at: half, stall: 2 * time.Second}
	done := make(chan error, 1)
	start := fc.Now()
	go func() { done <- out.Play(context.Background(), src) }()
	for {
		ended, err := awaitTimer(t, fc, done)
		if !ended {
			fc.Advance(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if played := fc.Now().Sub(start); played < 3*time.Second || played > 3*time.Second+20*time.Millisecond {
			t.Fatalf("Play took %v of clock time for 1 s of audio and a 2 s wait, want 3 s", played)
		}
		return
	}
}

func TestNoneStopsOnCancel(t *testing.T) {
	fc := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	out := audio.NewNone(fc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Play(ctx, bytes.NewReader(make([]byte, nodeaudio.Bytes(time.Minute)))) }()
	waitTimer(t, fc, done)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Play after cancel = %v, want context.Canceled", err)
	}
	if n := fc.Timers(); n != 0 {
		t.Fatalf("%d timers left behind", n)
	}
}

func TestNoneReportsReadErrors(t *testing.T) {
	out := audio.NewNone(clock.Real{})
	boom := errors.New("disk gone")
	if err := out.Play(context.Background(), iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("Play = %v, want the read error", err)
	}
	// Truncated node audio is an error, not a short play.
	r, err := nodeaudio.NewReader(io.MultiReader(bytes.NewReader(mustHeader(t, 64)), bytes.NewReader(make([]byte, 10))))
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Play(context.Background(), r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Play of truncated audio = %v, want io.ErrUnexpectedEOF", err)
	}
}

func mustHeader(t *testing.T, n int64) []byte {
	h, err := nodeaudio.PCMHeader(n)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReadChunk(t *testing.T) {
	buf := make([]byte, 8)
	n, eof, err := audio.ReadChunk(iotest.OneByteReader(bytes.NewReader([]byte("abcdefghij"))), buf)
	if n != 8 || eof || err != nil || string(buf) != "abcdefgh" {
		t.Fatalf("ReadChunk = %d, %v, %v (%q)", n, eof, err, buf)
	}
	n, eof, err = audio.ReadChunk(bytes.NewReader([]byte("xy")), buf)
	if n != 2 || !eof || err != nil {
		t.Fatalf("ReadChunk at the end = %d, %v, %v", n, eof, err)
	}
	c := &audio.Counter{R: bytes.NewReader([]byte("12345"))}
	io.Copy(io.Discard, c)
	if c.N() != 5 {
		t.Fatalf("Counter.N() = %d", c.N())
	}
}
