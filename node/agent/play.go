package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// play is the occurrence on air.
type play struct {
	occ        protocol.Occurrence
	startedAt  time.Time // corrected clock
	base       time.Time // base clock, for the played time
	cancel     context.CancelFunc
	stopReason string // why the agent stopped it; "" while it plays on
}

func (p *play) stop(reason string) {
	p.stopReason = reason
	p.cancel()
}

// playResult is what the play goroutine reports back to the main loop.
type playResult struct {
	occ      string
	bytes    int64 // PCM bytes the output consumed
	openErr  error // the content could not be opened or is not node audio
	audioErr error // the output failed or was stopped
}

// startPlay puts o on air in its own goroutine; the main loop hears of the
// end on playDone.
func (a *Agent) startPlay(o protocol.Occurrence, now time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	a.play = &play{occ: o, startedAt: now, base: a.clock.Base.Now(), cancel: cancel}
	a.mu.Lock()
	a.status.playing = &protocol.Playing{Occurrence: o.ID, Content: o.Content, Priority: o.Priority, Since: now.UTC()}
	a.mu.Unlock()
	signal(a.dirty)
	a.log.Info("agent: playing", "occurrence", o.ID, "content", o.Content, "late_ms", now.Sub(o.Start).Milliseconds())
	go func() {
		a.playDone <- a.playContent(ctx, o)
	}()
}

// playContent plays o as one stream: the opening chime, the content as
// many times as o repeats with silence between, and the closing chime. One
// stream keeps the gaps exact (the output paces silence like sound) and
// keeps the amplifier on throughout.
func (a *Agent) playContent(ctx context.Context, o protocol.Occurrence) playResult {
	r := playResult{occ: o.ID}
	var parts []io.Reader
	var files []io.Closer
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(id string) (io.Reader, error) {
		f, err := a.cache.Open(id)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		return nodeaudio.NewReader(f)
	}
	chime := func(id string) {
		if id == "" {
			return
		}
		if !a.cache.Has(id) {
			a.log.Warn("agent: chime not cached; playing without it", "occurrence", o.ID, "content", id)
			return
		}
		pcm, err := open(id)
		if err != nil {
			a.log.Warn("agent: chime unplayable; playing without it", "occurrence", o.ID, "content", id, "err", err)
			return
		}
		parts = append(parts, pcm)
	}
	chime(o.OpeningChime)
	for i := range o.Plays() {
		if i > 0 && o.GapMS > 0 {
			parts = append(parts, io.LimitReader(zeros{}, nodeaudio.Bytes(time.Duration(o.GapMS)*time.Millisecond)))
		}
		pcm, err := open(o.Content)
		if err != nil {
			r.openErr = err
			return r
		}
		parts = append(parts, pcm)
	}
	chime(o.ClosingChime)
	c := &audio.Counter{R: io.MultiReader(parts...)}
	r.audioErr = a.cfg.Output.Play(ctx, c)
	r.bytes = c.N()
	return r
}

// zeros reads as silence.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// finishPlay reports how the play ended and switches the amplifier off.
func (a *Agent) finishPlay(r playResult) {
	p := a.play
	if p == nil || p.occ.ID != r.occ {
		return
	}
	a.play = nil
	p.cancel()
	if err := a.cfg.Board.SetAmplifier(false); err != nil {
		a.log.Error("agent: amplifier did not switch off", "err", err)
	}
	a.mu.Lock()
	a.status.playing = nil
	a.mu.Unlock()

	now := a.clock.Now()
	mark := a.mark(p.occ, PhaseDone)
	mark.StartedAt = p.startedAt
	e := occurrenceEvent(protocol.EventCompleted, mark, now)
	// The output may have read ahead of what was heard when stopped, so the
	// played time is the elapsed time, bounded by what was read.
	elapsed := a.clock.Base.Now().Sub(p.base)
	e.PlayedMS = min(elapsed, playDuration(r.bytes)).Milliseconds()
	switch {
	case r.openErr != nil:
		e.Type, e.Reason, e.PlayedMS = protocol.EventFailed, protocol.ReasonContentMissing, 0
		a.log.Error("agent: content unplayable", "occurrence", p.occ.ID, "content", p.occ.Content, "err", r.openErr)
	case p.stopReason != "":
		e.Reason = p.stopReason
		e.Type, mark.Phase = CutOff(p.occ, p.stopReason, now, a.lateGrace())
		if mark.Phase == PhaseSuspended {
			mark.CutBy = p.stopReason
		}
	case r.audioErr != nil:
		e.Type, e.Reason = protocol.EventFailed, protocol.ReasonAudioDevice
		if errors.Is(r.audioErr, context.Canceled) {
			e.Reason = protocol.ReasonInterrupted
		}
		a.log.Error("agent: audio output failed", "occurrence", p.occ.ID, "err", r.audioErr)
	default:
		e.PlayedMS = playDuration(r.bytes).Milliseconds()
	}
	a.log.Info("agent: play ended", "occurrence", p.occ.ID, "event", e.Type, "reason", e.Reason, "played_ms", e.PlayedMS)
	a.record([]protocol.Event{e}, []Progress{mark})
	signal(a.dirty)
}

// stopPlay stops what plays, waits for it and reports it with reason.
func (a *Agent) stopPlay(reason string) {
	if a.play == nil {
		return
	}
	if a.play.stopReason == "" {
		a.play.stop(reason)
	}
	a.finishPlay(<-a.playDone)
}
