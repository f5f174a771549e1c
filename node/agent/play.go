package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/content"
	"loaxa.vn/node/relay"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// preload is how much of a prepared stream is read ahead, so that the
// output's first reads come from memory: oto reads half a second when a
// player starts.
const preload = 500 * time.Millisecond

// Cue states: what may begin a prepared play's audio.
const (
	cueHeld  int32 = iota // only the main loop, by begin
	cueFree               // its goroutine too, at its instant
	cueBegun              // the audio has begun
)

// play is one occurrence's audio. It is prepared ahead of its start (a cue:
// the content open and its first half second read, a goroutine waiting),
// then on air once begun. A cue that is free begins on its own at its
// instant, whatever the main loop is busy with (an fsync, a message); the
// main loop holds it while it decides, so that nothing begins behind its
// back, and frees it only when beginning at that instant is what it would
// decide itself: nothing else on air, or a lower level to preempt.
type play struct {
	occ     protocol.Occurrence
	at      atomic.Int64 // corrected clock, Unix ns: when the output is to begin
	stream  *audio.Counter
	files   []io.Closer
	length  time.Duration // how long the stream plays
	openErr error         // the content could not be opened; nothing to play
	skipped []string      // chimes left out because they were not cached
	// later: the content could not play when the play was prepared; it
	// began with its chime and reads the content once it can (ChimeFirst).
	later bool
	// ampFailed: the amplifier did not switch on when the play was
	// prepared; the cue stays held and the start tries once more.
	ampFailed bool

	ctx    context.Context
	cancel context.CancelFunc
	state  atomic.Int32
	begin  chan struct{}   // closed by the main loop: begin now
	nudge  chan struct{}   // the instant or the clock moved, or the cue was freed
	began  chan time.Time  // the base clock when the output began
	done   chan playResult // the goroutine's last word
	timer  clock.Timer     // owned by the goroutine once started

	// Set by the main loop once the play is on air.
	startedAt  time.Time // corrected clock, when the first sample is heard
	base       time.Time // base clock when the output began
	ends       time.Time // corrected clock, when the last sample will be heard
	stopReason string    // why the agent stopped it; "" while it plays on
}

// playResult is what a play's goroutine reports when it ends.
type playResult struct {
	begun    bool
	bytes    int64 // PCM bytes the output consumed
	audioErr error // the output failed or was stopped
}

// hold stops a free cue from beginning on its own; false means it has
// begun already.
func (p *play) hold() bool {
	return p.state.CompareAndSwap(cueFree, cueHeld) || p.state.Load() == cueHeld
}

// free lets a held cue begin on its own at its instant (at once if that
// has passed).
func (p *play) free() {
	if p.state.CompareAndSwap(cueHeld, cueFree) {
		signal(p.nudge)
	}
}

// setAt moves the instant the output is to begin.
func (p *play) setAt(at time.Time) {
	if p.at.Swap(at.UnixNano()) != at.UnixNano() {
		signal(p.nudge)
	}
}

func (p *play) instant() time.Time { return time.Unix(0, p.at.Load()) }

// cueUp prepares occurrence o to begin at at (corrected clock): opens its
// stream, reads the first of it, and starts the goroutine that begins it.
// The cue starts held. An occurrence whose content cannot be opened gets a
// cue with openErr and no goroutine.
func (a *Agent) cueUp(o protocol.Occurrence, at time.Time) *play {
	p := &play{occ: o}
	p.at.Store(at.UnixNano())
	// The context exists before the stream: a content still downloading
	// is read as it arrives, until the play ends.
	p.ctx, p.cancel = context.WithCancel(WithPlayOccurrence(context.Background(), o))
	if err := a.openStream(p); err != nil {
		p.cancel()
		for _, f := range p.files {
			f.Close()
		}
		p.files, p.openErr = nil, err
		return p
	}
	p.begin = make(chan struct{})
	p.nudge = make(chan struct{}, 1)
	p.began = make(chan time.Time, 1)
	p.done = make(chan playResult, 1)
	// The timer is made here, not in the goroutine, so that on a fake
	// clock it exists as soon as the cue does.
	p.timer = a.clock.NewTimer(max(at.Sub(a.clock.Now()), 0))
	go a.runPlay(p)
	return p
}

// openStream builds o's stream: the opening chime, the intro, the content
// as many times as o repeats with silence between, and the closing chime. One
// stream keeps the gaps exact (the output paces silence like sound) and
// keeps the amplifier on throughout.
func (a *Agent) openStream(p *play) error {
	o := p.occ
	if o.Stream != "" {
		return a.openRelay(p)
	}
	if o.Live != "" {
		return a.openLive(p)
	}
	var parts []io.Reader
	// ready is the PCM of the parts before the first one still
	// downloading: what can be read ahead without waiting for the link.
	var ready int64
	streaming := false
	open := func(id string) (pcmFile, error) {
		// Content the cache judged Playable while it downloads is read as
		// it arrives (content.Cache.OpenStream); its header is there.
		cached := a.cache.Has(id)
		f, err := a.cache.OpenStream(p.ctx, id)
		if err != nil {
			return pcmFile{}, err
		}
		p.files = append(p.files, f)
		r, err := openPCM(f)
		if err == nil && !streaming {
			if cached {
				ready += r.Size()
			} else {
				streaming = true
			}
		}
		return r, err
	}
	chime := func(id string) {
		if id == "" {
			return
		}
		if !a.cache.Has(id) {
			a.log.Warn("agent: chime not cached; playing without it", "occurrence", o.ID, "content", id)
			p.skipped = append(p.skipped, id)
			return
		}
		pcm, err := open(id)
		if err != nil {
			a.log.Warn("agent: chime unplayable; playing without it", "occurrence", o.ID, "content", id, "err", err)
			return
		}
		parts = append(parts, pcm)
		p.length += pcm.Duration()
	}
	// later adds a part read once it can play (laterPart), counting the
	// play time its reference gives.
	later := func(l *laterPart) {
		l.a, l.ctx, l.occ = a, p.ctx, o.ID
		if ref, ok := a.cache.Ref(l.id); ok {
			p.length += time.Duration(ref.DurationMS) * time.Millisecond
		}
		parts = append(parts, l)
		p.files = append(p.files, l)
		streaming = true
	}
	chime(o.OpeningChime)
	// An emergency that starts with its chime (Decide) gets here with
	// content that cannot play yet; so does a play whose download stopped
	// being playable (an attempt failed) after the executor decided.
	p.later = !a.cache.Playable(o.Content)
	if o.Intro != "" {
		// Kept on the node, it plays as the chime does; one still to
		// come is waited for like the message.
		if !a.cache.Playable(o.Intro) {
			later(&laterPart{id: o.Intro})
		} else if pcm, err := open(o.Intro); err != nil {
			return err
		} else {
			parts = append(parts, pcm)
			p.length += pcm.Duration()
		}
	}
	for i := range o.Plays() {
		if i > 0 && o.GapMS > 0 {
			gap := nodeaudio.Bytes(time.Duration(o.GapMS) * time.Millisecond)
			parts = append(parts, io.LimitReader(zeros{}, gap))
			p.length += nodeaudio.Duration(gap)
			if !streaming {
				ready += gap
			}
		}
		if p.later {
			l := &laterPart{id: o.Content}
			if i == 0 && len(parts) > 0 {
				l.chime = o.OpeningChime
			}
			later(l)
			continue
		}
		pcm, err := open(o.Content)
		if err != nil {
			return err
		}
		parts = append(parts, pcm)
		p.length += pcm.Duration()
	}
	if p.later && o.ClosingChime != "" && !a.cache.Has(o.ClosingChime) {
		// Fetched with the message: looked for when the message has played.
		later(&laterPart{id: o.ClosingChime, optional: true})
	} else {
		chime(o.ClosingChime)
	}
	var src io.Reader = io.MultiReader(parts...)
	if g := a.gain(o); g != 1 {
		src = &audio.Gain{R: src, Factor: g}
	}
	r := bufio.NewReaderSize(src, int(nodeaudio.Bytes(preload)))
	// Read the start now: errors show later, when the output reads. Not
	// past what is on disk: the main loop does not wait for the link.
	if !streaming {
		ready = nodeaudio.Bytes(preload)
	}
	r.Peek(int(min(ready, nodeaudio.Bytes(preload))))
	p.stream = &audio.Counter{R: r}
	return nil
}

// runPlay waits for the play's instant (if free) or the main loop's word,
// then plays it to the end or until cancelled.
func (a *Agent) runPlay(p *play) {
	defer func() {
		for _, f := range p.files {
			f.Close()
		}
	}()
	defer p.timer.Stop()
	due := func() bool { return !a.clock.Now().Before(p.instant()) }
wait:
	for {
		select {
		case <-p.ctx.Done():
			p.done <- playResult{}
			return
		case <-p.begin:
			break wait
		case <-p.timer.C():
			if p.state.CompareAndSwap(cueFree, cueBegun) {
				break wait
			}
		case <-p.nudge:
			if due() && p.state.CompareAndSwap(cueFree, cueBegun) {
				break wait
			}
			p.timer.Stop()
			p.timer.Reset(max(p.instant().Sub(a.clock.Now()), 0))
		}
	}
	p.began <- a.clock.Base.Now()
	signal(a.cueBegan)
	err := a.cfg.Output.Play(p.ctx, p.stream)
	p.done <- playResult{begun: true, bytes: p.stream.N(), audioErr: err}
}

// beginNow begins a held or free cue at once (unless it has begun on its
// own) and puts it on air.
func (a *Agent) beginNow(p *play) {
	for {
		s := p.state.Load()
		if s == cueBegun {
			break
		}
		if p.state.CompareAndSwap(s, cueBegun) {
			close(p.begin)
			break
		}
	}
	a.onAir(p)
}

// onAir puts a cue that has begun on air: it stops what played before it
// (a cue frees itself only to preempt), and notes the started event with
// the lateness measured at the speaker.
func (a *Agent) onAir(p *play) {
	base := <-p.began
	if a.cue == p {
		a.cue = nil
	}
	if a.play != nil {
		a.stopPlay(protocol.ReasonPreempted)
	}
	p.base = base
	p.startedAt = base.Add(a.clock.Get()).Add(a.latency)
	p.ends = p.startedAt.Add(p.length)
	a.play = p

	mark := a.mark(p.occ, PhaseStarted)
	mark.StartedAt = p.startedAt
	e := occurrenceEvent(protocol.EventStarted, mark, p.startedAt)
	e.LateMS = p.startedAt.Sub(p.occ.Start).Milliseconds()
	e.ContentPending = p.later && !a.cache.Playable(p.occ.Content)
	a.note([]protocol.Event{e}, mark)
	a.mu.Lock()
	a.status.playing = &protocol.Playing{Occurrence: p.occ.ID, Content: p.occ.Content, Priority: p.occ.Priority, Since: p.startedAt.UTC(), Drill: p.occ.Drill}
	a.mu.Unlock()
	signal(a.dirty)
	a.log.Info("agent: playing", "occurrence", p.occ.ID, "content", p.occ.Content, "priority", p.occ.Priority, "drill", p.occ.Drill, "late_ms", e.LateMS, "content_pending", e.ContentPending)
}

// dropCue discards the cue, which must be held (or never have begun).
func (a *Agent) dropCue() {
	p := a.cue
	if p == nil {
		return
	}
	a.cue = nil
	if p.openErr != nil {
		return
	}
	p.cancel()
	if r := <-p.done; r.begun {
		// Cannot happen: the loop holds a cue before it drops it.
		a.log.Error("agent: a dropped cue had begun", "occurrence", p.occ.ID)
	}
}

// playKey keys the occurrence in the context an Output's Play is given.
type playKey struct{}

// PlayOccurrence returns the occurrence whose audio an Output.Play call
// plays, from the context the agent passes it; false for a play of no
// occurrence (the self-test tone). Instruments (the firmware-sim fleet's
// sound log) use it to say what began when.
func PlayOccurrence(ctx context.Context) (protocol.Occurrence, bool) {
	o, ok := ctx.Value(playKey{}).(protocol.Occurrence)
	return o, ok
}

// WithPlayOccurrence returns ctx saying that a play is of o, as the agent
// passes it to Output.Play (tests of instruments make such a context).
func WithPlayOccurrence(ctx context.Context, o protocol.Occurrence) context.Context {
	return context.WithValue(ctx, playKey{}, o)
}

// laterPart is content a play reaches before it could be opened: the
// message of an emergency that began with its opening chime while the
// message could not play yet (ChimeFirst). Its first Read, when the output
// has played what came before, waits until the content can play (the
// output meanwhile runs dry: silence), then reads it; before the first
// repeat, after the opening chime once more if that wait reached
// Config.ChimeAgainAfter. It fails like a stream (content.ErrStreamBroken)
// if the content stops arriving, and with the play's context. An optional
// part (the closing chime) does not wait: it plays if it is cached by its
// turn, and is left out if not.
type laterPart struct {
	a        *Agent
	ctx      context.Context
	occ      string // for the log
	id       string
	chime    string // played again after a long wait; "" never
	optional bool
	r        io.Reader
	err      error
	files    []io.Closer
}

func (l *laterPart) Read(b []byte) (int, error) {
	if l.r == nil && l.err == nil {
		l.r, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(b)
}

func (l *laterPart) open() (io.Reader, error) {
	if l.optional {
		r, err := l.pcm(l.id)
		if err != nil {
			l.a.log.Warn("agent: chime not cached; playing without it", "occurrence", l.occ, "content", l.id, "err", err)
			return eof{}, nil
		}
		return r, nil
	}
	began := time.Now()
	if err := l.a.cache.AwaitPlayable(l.ctx, l.id); err != nil {
		return nil, err
	}
	waited := time.Since(began)
	var parts []io.Reader
	again := l.chime != "" && waited >= l.a.cfg.ChimeAgainAfter
	if again {
		if r, err := l.pcm(l.chime); err == nil {
			parts = append(parts, r)
		} else {
			again = false
			l.a.log.Warn("agent: chime unplayable; the message follows without it", "occurrence", l.occ, "content", l.chime, "err", err)
		}
	}
	msg, err := l.pcm(l.id)
	if err != nil {
		return nil, err
	}
	if l.chime != "" {
		l.a.log.Info("agent: the message follows its chime", "occurrence", l.occ, "waited_ms", waited.Milliseconds(), "chime_again", again)
	}
	return io.MultiReader(append(parts, msg)...), nil
}

// pcm opens content id's node audio for reading as it arrives.
func (l *laterPart) pcm(id string) (io.Reader, error) {
	f, err := l.a.cache.OpenStream(l.ctx, id)
	if err != nil {
		return nil, err
	}
	l.files = append(l.files, f)
	return openPCM(f)
}

// pcmFile is node audio decoded from a content file or download: at the
// end of its audio it reads the source to its end, which for a download
// still running waits for it to be verified, so a message played as it
// arrived ends in a failure (content.ErrStreamBroken) if its bytes were not
// what its id names. The decoder alone stops at the last sample and never
// learns that.
type pcmFile struct {
	*nodeaudio.Reader
	src io.Reader
}

func openPCM(src io.Reader) (pcmFile, error) {
	r, err := nodeaudio.NewReader(src)
	return pcmFile{r, src}, err
}

func (f pcmFile) Read(p []byte) (int, error) {
	n, err := f.Reader.Read(p)
	if _, cached := f.src.(*os.File); err == io.EOF && !cached {
		// A cached file was verified before it was put in place.
		if _, cerr := io.Copy(io.Discard, f.src); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

// Close closes what the part opened; the play's goroutine calls it once
// the output has returned.
func (l *laterPart) Close() error {
	for _, f := range l.files {
		f.Close()
	}
	return nil
}

// eof is an empty reader.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// zeros reads as silence.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// finishPlay notes how the play on air ended.
func (a *Agent) finishPlay(r playResult) {
	p := a.play
	a.play = nil
	p.cancel()
	a.mu.Lock()
	a.status.playing = nil
	a.mu.Unlock()

	now := a.clock.Now()
	a.lastSound = now.Add(a.latency)
	mark := a.mark(p.occ, PhaseDone)
	mark.StartedAt = p.startedAt
	e := occurrenceEvent(protocol.EventCompleted, mark, now)
	// The output may have read ahead of what was heard when stopped, so the
	// played time is the elapsed time, bounded by what was read.
	elapsed := a.clock.Base.Now().Sub(p.base)
	e.PlayedMS = min(elapsed, playDuration(r.bytes)).Milliseconds()
	switch {
	case r.audioErr == nil:
		// Played to the end, even if a stop came as it did.
		e.PlayedMS = playDuration(r.bytes).Milliseconds()
	case p.stopReason != "":
		e.Reason = p.stopReason
		e.Type, mark.Phase = CutOff(p.occ, p.stopReason, now, a.lateGrace())
		if mark.Phase == PhaseSuspended {
			mark.CutBy = p.stopReason
		}
	default:
		e.Type, e.Reason = protocol.EventFailed, protocol.ReasonAudioDevice
		switch {
		case errors.Is(r.audioErr, context.Canceled):
			e.Reason = protocol.ReasonInterrupted
		case errors.Is(r.audioErr, relay.ErrFailed):
			e.Reason = protocol.ReasonStream
		case errors.Is(r.audioErr, content.ErrStreamBroken):
			// Played as it downloaded (or waited for after the chime), and
			// the download did not finish or its bytes were wrong: not the
			// sound device's fault. It plays again once the content is
			// cached, before its deadline.
			e.Reason = protocol.ReasonContentMissing
			e.Type, mark.Phase = CutOff(p.occ, e.Reason, now, a.lateGrace())
			if mark.Phase == PhaseSuspended {
				mark.CutBy = e.Reason
			}
		}
		switch {
		case e.Reason == protocol.ReasonContentMissing && e.Type == protocol.EventSuspended:
			a.log.Error("agent: play stopped: its content stopped arriving, or was not what its id names; it plays again from the beginning once the content is cached", "occurrence", p.occ.ID, "err", r.audioErr)
		case e.Reason == protocol.ReasonContentMissing:
			a.log.Error("agent: play failed: its content stopped arriving, or was not what its id names", "occurrence", p.occ.ID, "err", r.audioErr)
		default:
			a.log.Error("agent: audio output failed", "occurrence", p.occ.ID, "err", r.audioErr)
		}
	}
	a.countLive(p, &e)
	a.log.Info("agent: play ended", "occurrence", p.occ.ID, "event", e.Type, "reason", e.Reason, "played_ms", e.PlayedMS)
	a.note([]protocol.Event{e}, mark)
	signal(a.dirty)
}

// stopPlay stops what plays, waits for it and notes it with reason.
func (a *Agent) stopPlay(reason string) {
	p := a.play
	if p == nil {
		return
	}
	a.log.Info("agent: stopping", "occurrence", p.occ.ID, "reason", reason)
	if p.stopReason == "" {
		p.stopReason = reason
	}
	p.cancel()
	a.finishPlay(<-p.done)
}

// playDone is the channel the play on air ends on; nil when nothing plays.
func (a *Agent) playDone() <-chan playResult {
	if a.play == nil {
		return nil
	}
	return a.play.done
}
