package fleet

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
)

// TestSoundLog: a play of an occurrence writes one line with the node, the
// occurrence, the real time the output took its first sample and how far
// into its stream that sample lies; a play of no occurrence (the
// self-test tone) writes none.
func TestSoundLog(t *testing.T) {
	var buf bytes.Buffer
	l := newSoundLog(&buf)
	out := &soundOutput{Output: audio.NewNone(clock.Real{}), node: "sim-0001", log: l}
	pcm := func() io.Reader { return bytes.NewReader(make([]byte, 320)) } // 10 ms
	before := time.Now()
	ctx := agent.WithPlayOccurrence(context.Background(), protocol.Occurrence{ID: "em-1"})
	if err := out.Play(ctx, pcm()); err != nil {
		t.Fatal(err)
	}
	if err := out.Play(context.Background(), pcm()); err != nil {
		t.Fatal(err)
	}
	late := agent.WithPlayOffset(agent.WithPlayOccurrence(context.Background(), protocol.Occurrence{ID: "em-2"}), 300*time.Millisecond)
	if err := out.Play(late, pcm()); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("sound log %q: want 2 lines", buf.String())
	}
	for i, want := range []struct{ occ, offset string }{{"em-1", "0"}, {"em-2", "300000000"}} {
		f := strings.Fields(lines[i])
		if len(f) != 4 || f[0] != "sim-0001" || f[1] != want.occ || f[3] != want.offset {
			t.Fatalf("line %d %q: want sim-0001 %s <ns> %s", i, lines[i], want.occ, want.offset)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if at := time.Unix(0, ns); err != nil || at.Before(before) || at.After(after) {
			t.Fatalf("line %d %q: time not between the calls (%v)", i, lines[i], err)
		}
	}
}
