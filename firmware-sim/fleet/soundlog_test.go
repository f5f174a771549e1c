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
// occurrence and the real time the output took its first sample; a play
// of no occurrence (the self-test tone) writes none.
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
	if err := out.Play(agent.WithPlayOccurrence(context.Background(), protocol.Occurrence{ID: "em-2"}), pcm()); err != nil {
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
	for i, want := range []string{"em-1", "em-2"} {
		f := strings.Fields(lines[i])
		if len(f) != 3 || f[0] != "sim-0001" || f[1] != want {
			t.Fatalf("line %d %q: want sim-0001 %s <ns>", i, lines[i], want)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if at := time.Unix(0, ns); err != nil || at.Before(before) || at.After(after) {
			t.Fatalf("line %d %q: time not between the calls (%v)", i, lines[i], err)
		}
	}
}
