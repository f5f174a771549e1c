package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"time"

	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// Test tone: a 1 kHz sine at half scale for two seconds, played at
// protocol.TestVolume.
const (
	toneHz     = 1000
	toneLength = 2 * time.Second
)

// selfTest is an audible self-test on air: its tone plays in a goroutine.
type selfTest struct {
	result protocol.TestResult
	cancel context.CancelFunc
	done   chan error // the output's answer
}

// startTest runs the self-test cmd asks for. The silent test is done at
// once: the amplifier is switched on (if it is not), then the relay
// feedback, the amplifier's fault output and the speaker line are read.
// The audible test does the same and plays a tone at TestVolume; it gives
// way to any play that becomes due. A test that cannot run now (a play on
// air or due, another test) reports ProblemBusy.
func (a *Agent) startTest(cmd protocol.Command) {
	now := a.clock.Now()
	r := protocol.TestResult{ID: cmd.TestID, Kind: cmd.Test}
	switch {
	case cmd.Test != protocol.TestSilent && cmd.Test != protocol.TestAudible:
		a.log.Warn("agent: unknown self-test", "test", cmd.Test)
		r.Problems = []string{"unknown-test"}
		a.reportTest(r, now)
		a.flush()
		return
	case a.test != nil || cmd.Test == protocol.TestAudible && (a.play != nil || a.cue != nil):
		r.Problems = []string{protocol.ProblemBusy}
		a.reportTest(r, now)
		a.flush()
		return
	}
	r.Problems = a.checkHardware(&r)
	if cmd.Test == protocol.TestSilent {
		r.Pass = len(r.Problems) == 0
		a.reportTest(r, now)
		a.flush()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &selfTest{result: r, cancel: cancel, done: make(chan error, 1)}
	a.test = t
	tone := audio.NewGain(testTone(), audio.VolumeGain(protocol.TestVolume))
	go func() { t.done <- a.cfg.Output.Play(ctx, tone) }()
	a.log.Info("agent: audible self-test playing", "test", cmd.TestID)
}

// checkHardware switches the amplifier on and reads the board: the
// problems it finds, and the line reading into r.
func (a *Agent) checkHardware(r *protocol.TestResult) []string {
	var problems []string
	if err := a.amplifierOn(); err != nil {
		a.log.Warn("agent: self-test: amplifier did not switch on", "err", err)
		problems = append(problems, protocol.ProblemRelay)
	}
	b := a.cfg.Board.Snapshot()
	if b.AmplifierCommand != nil && *b.AmplifierCommand != b.Amplifier && len(problems) == 0 {
		problems = append(problems, protocol.ProblemRelay)
	}
	if b.AmplifierFault != nil && *b.AmplifierFault {
		problems = append(problems, protocol.ProblemAmplifier)
	}
	r.Line, r.Ohms = b.SpeakerLine, b.SpeakerOhms
	switch b.SpeakerLine {
	case protocol.LineOpen:
		problems = append(problems, protocol.ProblemLineOpen)
	case protocol.LineShort:
		problems = append(problems, protocol.ProblemLineShort)
	case "":
		problems = append(problems, protocol.ProblemNoLine)
	}
	return problems
}

// testDone is the running audible test's channel, or nil.
func (a *Agent) testDone() <-chan error {
	if a.test == nil {
		return nil
	}
	return a.test.done
}

// finishTest reports the audible test whose tone ended with err.
func (a *Agent) finishTest(err error) {
	t := a.test
	a.test = nil
	t.cancel()
	if err != nil {
		t.result.Problems = append(t.result.Problems, protocol.ProblemAudio)
		a.log.Warn("agent: self-test tone failed", "err", err)
	}
	t.result.Pass = len(t.result.Problems) == 0
	a.reportTest(t.result, a.clock.Now())
	a.flush()
}

// stopTest cuts an audible test short for a play: it reports busy.
func (a *Agent) stopTest(now time.Time) {
	t := a.test
	if t == nil {
		return
	}
	t.cancel()
	<-t.done // the output returns at once when cancelled
	a.test = nil
	t.result.Problems = append(t.result.Problems, protocol.ProblemBusy)
	t.result.Pass = false
	a.reportTest(t.result, now)
}

// reportTest notes the result as an event, for the next flush (which a
// step does after any play began).
func (a *Agent) reportTest(r protocol.TestResult, now time.Time) {
	a.log.Info("agent: self-test", "test", r.ID, "kind", r.Kind, "pass", r.Pass, "problems", r.Problems)
	a.note([]protocol.Event{{Type: protocol.EventSelfTest, At: now.UTC(), Test: &r}})
}

// testTone returns the test tone as node PCM.
func testTone() io.Reader {
	n := int(toneLength.Seconds() * nodeaudio.SampleRate)
	pcm := make([]byte, 0, 2*n)
	for i := range n {
		v := int16(0.5 * math.MaxInt16 * math.Sin(2*math.Pi*toneHz*float64(i)/nodeaudio.SampleRate))
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
	}
	return bytes.NewReader(pcm)
}
