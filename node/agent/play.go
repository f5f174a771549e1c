package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
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

// leadIn is how long before its instant a prepared play may begin on its
// own when nothing sounds: its output begins then with silence up to the
// instant, so that the first sample of its audio is placed at the instant
// by the output's own pace, not by when the board gives the play's
// goroutine the processor. On a busy processor that wake-up came 17–32 ms
// after the instant at the median and up to 800 ms after it
// (BENCHMARKS.md, "Start instant to first sample"); begun a lead-in
// ahead, the play sounds at its instant unless the wake-up is later than
// that: under that contention it woke with 40 ms of the 80 left at
// least. A play that preempts another, and a live call or a relay, begin
// at the instant: nothing is cut off early, and a live source is not
// read ahead. It is well within the amplifier's warm-up, so the
// amplifier is on; a play stopped within its lead-in has started and
// played nothing, as one stopped at once.
const leadIn = 80 * time.Millisecond

// Cue states: what may begin a prepared play's audio.
const (
	cueHeld  int32 = iota // only the main loop, by begin
	cueFree               // its goroutine too, at its instant
	cueBegun              // the audio has begun
)

// play is one occurrence's audio. It is prepared ahead of its start (a cue:
// the content open and its first half second read, a goroutine waiting),
// then on air once begun. A cue that is free begins on its own at its
// instant (a lead-in ahead if nothing sounds, leadIn), whatever the main
// loop is busy with (an fsync, a message); the main loop holds it while
// it decides, so that nothing begins behind its back, and frees it only
// when beginning at that instant is what it would decide itself: nothing
// else on air, or a lower level to preempt.
type play struct {
	occ     protocol.Occurrence
	at      atomic.Int64 // corrected clock, Unix ns: when the output is to begin
	stream  *audio.Counter
	gain    *audio.Gain // the level it plays at, set again when the node's volume changes
	files   []io.Closer
	length  time.Duration // how long the stream plays
	openErr error         // the content could not be opened; nothing to play
	skipped []string      // chimes left out because they were not cached
	// chime is the length of an emergency's opening chime, read from the
	// cache with everything after it (nothing to wait for), 0 otherwise;
	// buf is the stream's read-ahead. A play that begins late skips into
	// the chime (intoChime, set as it begins) to stay on its area's
	// timeline (lateSkip).
	chime     time.Duration
	buf       *bufio.Reader
	intoChime time.Duration
	// later: the content could not play when the play was prepared; it
	// began with its chime and reads the content once it can (ChimeFirst).
	later bool
	// ampFailed: the amplifier did not switch on when the play was
	// prepared; the cue stays held and the start tries once more.
	ampFailed bool
	// heardAt (corrected clock, Unix ns) is when the output's first sample
	// is heard, set by the play's goroutine as the output begins; inserted
	// is the play time the parts waited for (laterPart) added to the
	// stream (silence, a chime again). Both are read by the output's reads
	// of those parts.
	heardAt  atomic.Int64
	inserted atomic.Int64
	// messageAt is when the content's first repeat begins in the stream,
	// for a play whose content came after its place (Event.MessageMS).
	messageAt atomic.Int64
	// awaiting: the speaker reached the message's place before it could
	// play (its first repeat waits for it); placed: the message's place
	// in the stream is decided since (messageAt, if it is late), or
	// waiting for it failed. The main loop holds the content-ready event
	// from awaiting to placed, noting when the content could play in
	// readySeen (its own), so that the event says where the message
	// plays.
	awaiting  atomic.Bool
	placed    atomic.Bool
	readySeen time.Time

	ctx    context.Context
	cancel context.CancelFunc
	// preempt cancels ctx as the play that begins after it does
	// (errPreempted); silent is closed once its output has returned,
	// nothing more of it to be mixed with what follows.
	preempt func()
	silent  chan struct{}
	// interrupt is a live call's jitter buffer or a relay's station
	// stream: closed when the play is cut off, as a read waiting for the
	// call's frames or the station's bytes holds an output that waits
	// for the read under way (audio.None).
	interrupt io.Closer
	state     atomic.Int32
	begin     chan struct{}   // closed by the main loop: begin now
	nudge     chan struct{}   // the instant or the clock moved, or the cue was freed
	began     chan began      // when the output began
	done      chan playResult // the goroutine's last word
	timer     clock.Timer     // owned by the goroutine once started

	// Set by the main loop once the play is on air.
	startedAt  time.Time // corrected clock, when the first sample is heard
	base       time.Time // base clock when the output began
	ends       time.Time // corrected clock, when the last sample will be heard
	stopReason string    // why the agent stopped it; "" while it plays on
}

// began is when a play's output began: base, on the base clock, and
// heard, when its first sample is heard, on the corrected clock as it was
// then.
type began struct{ base, heard time.Time }

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

// sameSound reports whether a cue prepared for occurrence x plays what
// occurrence y should: they are one occurrence (id) and its audio is made
// of the same parts, at the same level. A correction sent under the
// occurrence's id (a wrong recording replaced, a chime added) arriving
// while the old one is prepared must not play the old audio.
func sameSound(x, y protocol.Occurrence) bool {
	return sameAudio(x, y) && x.DurationMS == y.DurationMS && x.Priority == y.Priority && x.Volume == y.Volume
}

// sameAudio reports whether occurrences x and y are one occurrence (id)
// made of the same parts: a correction that changes any of them (a wrong
// recording replaced, a chime added, repeats) stops the play on air, which
// begins again with the corrected audio (correctsPlay). One that changes
// only its level, its length or window, or its deadline does not.
func sameAudio(x, y protocol.Occurrence) bool {
	return x.ID == y.ID && x.Content == y.Content &&
		x.OpeningChime == y.OpeningChime && x.Intro == y.Intro && x.ClosingChime == y.ClosingChime &&
		x.Repeat == y.Repeat && x.GapMS == y.GapMS && x.Stream == y.Stream && x.Live == y.Live
}

// correctsPlay reports whether the desired state holds a correction of the
// play on air: its occurrence under the same id with other audio. Alerts
// and live calls are not corrected so: they come with their own messages.
func (a *Agent) correctsPlay() bool {
	if a.play == nil || a.desired == nil {
		return false
	}
	for _, o := range a.desired.Occurrences {
		if o.ID == a.play.occ.ID {
			return !sameAudio(o, a.play.occ)
		}
	}
	return false
}

// cueUp prepares occurrence o to begin at at (corrected clock): opens its
// stream, reads the first of it, and starts the goroutine that begins it.
// The cue starts held. An occurrence whose content cannot be opened gets a
// cue with openErr and no goroutine.
func (a *Agent) cueUp(o protocol.Occurrence, at time.Time) *play {
	p := &play{occ: o}
	p.at.Store(at.UnixNano())
	// The context exists before the stream: a content still downloading
	// is read as it arrives, until the play ends.
	ctx, cancel := context.WithCancelCause(WithPlayOccurrence(context.Background(), o))
	p.ctx = ctx
	p.cancel = func() { cancel(nil) }
	p.preempt = func() { cancel(errPreempted) }
	if err := a.openStream(p); err != nil {
		p.cancel()
		for _, f := range p.files {
			f.Close()
		}
		p.files, p.openErr = nil, err
		return p
	}
	if pr, ok := a.progress[o.ID]; ok && (pr.Phase == PhaseSuspended || !pr.StartedAt.IsZero()) {
		// Cut off before, it plays again from the beginning, chimes and
		// all (its resume policy): not on its area's timeline.
		p.chime = 0
	}
	p.begin = make(chan struct{})
	p.nudge = make(chan struct{}, 1)
	p.began = make(chan began, 1)
	p.done = make(chan playResult, 1)
	p.silent = make(chan struct{})
	// The timer is made here, not in the goroutine, so that on a fake
	// clock it exists as soon as the cue does.
	p.timer = a.clock.NewTimer(max(at.Add(-leadIn).Sub(a.clock.Now()), 0))
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
		r, err := openPCM(f, id)
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
			p.skipped = append(p.skipped, id)
			if ref, ok := a.cache.Ref(id); ok && ref.DurationMS > 0 && len(parts) == 0 {
				// The opening chime keeps its place on the area's
				// timeline, so the message after it sounds with the
				// neighbours' and not a chime's length before theirs.
				a.log.Warn("agent: opening chime not cached; its place kept in silence until it comes", "occurrence", o.ID, "content", id)
				s := &chimeSlot{a: a, p: p, id: id, size: nodeaudio.Bytes(time.Duration(ref.DurationMS) * time.Millisecond)}
				parts = append(parts, s)
				p.files = append(p.files, s)
				p.length += nodeaudio.Duration(s.size)
				streaming = true
				return
			}
			a.log.Warn("agent: chime not cached; playing without it", "occurrence", o.ID, "content", id)
			return
		}
		pcm, err := open(id)
		if err != nil {
			a.log.Warn("agent: chime unplayable; playing without it", "occurrence", o.ID, "content", id, "err", err)
			a.discardDamaged(err)
			return
		}
		if len(parts) == 0 && o.Priority == protocol.PriorityEmergency {
			p.chime = pcm.Duration()
		}
		parts = append(parts, pcm)
		p.length += pcm.Duration()
	}
	// later adds a part read once it can play (laterPart), counting the
	// play time its reference gives.
	later := func(l *laterPart) {
		l.a, l.ctx, l.occ, l.p, l.offset = a, p.ctx, o.ID, p, p.length
		if ref, ok := a.cache.Ref(l.id); ok {
			p.length += time.Duration(ref.DurationMS) * time.Millisecond
		}
		parts = append(parts, l)
		p.files = append(p.files, l)
		streaming = true
		if !l.optional {
			// It keeps its place by waiting, from the play's own
			// start: no skip into the chime (lateSkip).
			p.chime = 0
		}
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
			if i == 0 {
				l.plays, l.gap = o.Plays(), time.Duration(o.GapMS)*time.Millisecond
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
	if o.ClosingChime != "" && !a.cache.Has(o.ClosingChime) {
		// Fetched with the message, or after it: looked for when the
		// message has played.
		later(&laterPart{id: o.ClosingChime, optional: true})
	} else {
		chime(o.ClosingChime)
	}
	r := bufio.NewReaderSize(io.MultiReader(parts...), int(nodeaudio.Bytes(preload)))
	// Read the start now: errors show later, when the output reads. Not
	// past what is on disk: the main loop does not wait for the link.
	if !streaming {
		ready = nodeaudio.Bytes(preload)
	}
	r.Peek(int(min(ready, nodeaudio.Bytes(preload))))
	// The gain after the read-ahead: a volume set during the play is
	// heard from the output's next read (setVolume).
	p.gain = audio.NewGain(r, a.gain(o))
	p.stream, p.buf = &audio.Counter{R: p.gain}, r
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
	// begins is when the cue may begin on its own: a lead-in before its
	// instant if nothing sounds (leadIn), else at its instant.
	begins := func() time.Time {
		if p.leadsIn() && !a.soundingNow() {
			return p.instant().Add(-leadIn)
		}
		return p.instant()
	}
	due := func() bool { return !a.clock.Now().Before(begins()) }
wait:
	for {
		select {
		case <-p.ctx.Done():
			p.done <- playResult{}
			return
		case <-p.begin:
			break wait
		case <-p.timer.C():
			// Set for the lead-in: a play that preempts waits on to its
			// instant.
			if !due() {
				p.timer.Reset(max(begins().Sub(a.clock.Now()), 0))
			} else if p.state.CompareAndSwap(cueFree, cueBegun) {
				break wait
			}
		case <-p.nudge:
			if due() && p.state.CompareAndSwap(cueFree, cueBegun) {
				break wait
			}
			p.timer.Stop()
			p.timer.Reset(max(begins().Sub(a.clock.Now()), 0))
		}
	}
	preempted := a.takeOutput(p)
	// One reading of the clocks for when the first sample is heard, the
	// chime it skips into and the lateness the started event reports: read
	// again after the skip's read (a loaded machine: 4 ms), the report said
	// 541 ms late for a skip of 537, and the cluster looked off its area's
	// timeline by what was only the time the node took to skip.
	base := a.clock.Base.Now()
	now := base.Add(a.clock.Get())
	// Begun ahead of its instant, the output plays silence up to it.
	var silence int64
	if !preempted && p.leadsIn() {
		// Rounded up to a whole sample: not heard before its instant.
		d := max(p.instant().Sub(now), 0)
		if silence = nodeaudio.Bytes(d); nodeaudio.Duration(silence) < d {
			silence = nodeaudio.Bytes(d + time.Second/nodeaudio.SampleRate)
		}
	}
	lead := nodeaudio.Duration(silence)
	heard := now.Add(lead).Add(a.latency)
	p.heardAt.Store(heard.UnixNano())
	if skip := p.lateSkip(heard); skip > 0 {
		n, _ := p.buf.Discard(int(nodeaudio.Bytes(skip)))
		p.intoChime = nodeaudio.Duration(int64(n))
	}
	p.began <- began{base: base.Add(lead), heard: heard}
	signal(a.cueBegan)
	ctx := p.ctx
	var stream io.Reader = p.stream
	switch {
	case p.intoChime > 0:
		ctx = WithPlayOffset(ctx, p.intoChime)
	case silence > 0:
		ctx = WithPlayOffset(ctx, -lead)
		stream = io.MultiReader(io.LimitReader(zeros{}, silence), p.stream)
	}
	err := a.cfg.Output.Play(ctx, stream)
	a.releaseOutput(p)
	p.done <- playResult{begun: true, bytes: p.stream.N(), audioErr: err}
}

// errPreempted is the cause of a play's cancellation by the play that
// began after it (takeOutput).
var errPreempted = errors.New("preempted by the play that began")

// takeOutput makes p the play the output sounds. A play still sounding
// is one p preempts (a cue begins while another is on air only to
// preempt it, onAir): it is stopped here, and p waits until its output
// has returned, so that none of it is mixed under p's first samples. The
// main loop's stop (onAir, stopPlay) comes later, when it is free; on a
// busy board that was long enough for an alert's opening chime to sound
// over the bulletin it cut off.
// It reports whether p preempted a play.
func (a *Agent) takeOutput(p *play) bool {
	a.outputMu.Lock()
	old := a.sounding
	a.sounding = p
	a.outputMu.Unlock()
	if old == nil {
		return false
	}
	old.preempt()
	if old.interrupt != nil {
		old.interrupt.Close()
	}
	<-old.silent
	return true
}

// soundingNow reports whether a play's output runs.
func (a *Agent) soundingNow() bool {
	a.outputMu.Lock()
	defer a.outputMu.Unlock()
	return a.sounding != nil
}

// leadsIn reports whether p may begin a lead-in ahead of its instant
// (leadIn): not a live call or a relay, whose source is read as it comes.
func (p *play) leadsIn() bool {
	return p.occ.Live == "" && p.interrupt == nil && p.stream.ReadAhead() == 0
}

// releaseOutput notes that p's output has returned.
func (a *Agent) releaseOutput(p *play) {
	a.outputMu.Lock()
	if a.sounding == p {
		a.sounding = nil
	}
	a.outputMu.Unlock()
	close(p.silent)
}

// chimeLeft is how much of its opening chime a late emergency plays at
// least: the last note ringing. A play later than its chime's length
// less this plays the whole chime, as late as it is.
const chimeLeft = 500 * time.Millisecond

// lateSkip is how far into its opening chime a play heard first at heard
// begins: an emergency that begins late (it came late, or its node was
// slow) leaves out as much of the chime's beginning as it is late, so
// that the rest (the chime's end, the message and every repeat) sounds
// with the nodes of its area that began on time, not an echo of theirs.
// Only a play whose opening chime is cached and whose message can play
// skips: one whose message is still to come keeps its place by waiting
// (laterPart), and one that plays again after it was cut off (a restart,
// a preemption) plays from the beginning.
func (p *play) lateSkip(heard time.Time) time.Duration {
	late := heard.Sub(p.occ.Start)
	if p.chime <= 0 || late <= inStepTolerance || late > p.chime-chimeLeft {
		return 0
	}
	return late
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
// (a cue frees itself only to preempt; its output was silenced as the cue
// began, takeOutput), and notes the started event with the lateness
// measured at the speaker.
func (a *Agent) onAir(p *play) {
	b := <-p.began
	if a.cue == p {
		a.cue = nil
	}
	if a.play != nil {
		a.stopPlay(protocol.ReasonPreempted)
	}
	p.base = b.base
	// The instant the skip into the chime was measured from (runPlay), on
	// the clock as it was then: the report's lateness is what the node
	// skipped for.
	p.startedAt = b.heard
	p.ends = p.startedAt.Add(p.length - p.intoChime)
	a.play = p

	mark := a.mark(p.occ, PhaseStarted)
	mark.StartedAt = p.startedAt
	e := occurrenceEvent(protocol.EventStarted, mark, p.startedAt)
	e.LateMS = p.startedAt.Sub(p.occ.Start).Milliseconds()
	e.ChimeSkippedMS = p.intoChime.Milliseconds()
	e.ContentPending = p.later && !a.cache.Playable(p.occ.Content)
	a.note([]protocol.Event{e}, mark)
	a.mu.Lock()
	a.status.playing = &protocol.Playing{Occurrence: p.occ.ID, Content: p.occ.Content, Priority: p.occ.Priority, Since: p.startedAt.UTC(), Drill: p.occ.Drill}
	a.mu.Unlock()
	signal(a.dirty)
	a.log.Info("agent: playing", "occurrence", p.occ.ID, "content", p.occ.Content, "priority", p.occ.Priority, "drill", p.occ.Drill, "late_ms", e.LateMS, "chime_skipped_ms", e.ChimeSkippedMS, "content_pending", e.ContentPending)
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

// offsetKey keys a play's offset in the context an Output's Play is given.
type offsetKey struct{}

// PlayOffset returns how far into its occurrence's stream the first
// sample of an Output.Play call lies, from the context the agent passes
// it: a late emergency skips into its opening chime (lateSkip); 0 for a
// play from the beginning; negative for a play begun ahead of its
// instant (leadIn) with that much silence before its stream. Instruments
// use it to place a play on its area's timeline.
func PlayOffset(ctx context.Context) time.Duration {
	d, _ := ctx.Value(offsetKey{}).(time.Duration)
	return d
}

// WithPlayOffset returns ctx saying that a play begins d into its stream,
// as the agent passes it to Output.Play.
func WithPlayOffset(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, offsetKey{}, d)
}

// laterPart is content a play reaches before it could be opened: the
// message of an emergency that began with its opening chime while the
// message could not play yet (ChimeFirst). Its first Read, when the output
// has played what came before, waits until the content can play (giving
// the output silence meanwhile, await), then reads it; before the first
// repeat, after the opening chime once more if the message came
// Config.ChimeAgainAfter or more after the chime ended. A first repeat
// that comes late waits on in silence, at most Config.InStepWait, for the
// instant one of the repeats begins on the clusters that had the message
// in time (planJoin), so that it plays in step with them rather than as an
// echo. It fails like a stream (content.ErrStreamBroken) if the content
// stops arriving, and with the play's context. An optional part (the
// closing chime) does not wait: it plays if it is cached by its turn, and
// is left out if not.
type laterPart struct {
	a        *Agent
	ctx      context.Context
	occ      string // for the log
	id       string
	chime    string // played again after a long wait; "" never
	optional bool
	p        *play
	// offset is where the part lies in the play's stream when nothing
	// before it waited: it is heard at p.heardAt + offset.
	offset time.Duration
	// plays and gap are the occurrence's repeats and the silence between
	// them, set on its first repeat only: the one that may wait to join
	// the others' repeats.
	plays int
	gap   time.Duration
	// ready brings the wait's end; silence counts the bytes of silence
	// given meanwhile.
	ready   chan error
	silence int64
	r       io.Reader
	err     error
	files   []io.Closer
}

func (l *laterPart) Read(b []byte) (int, error) {
	if l.r == nil && l.err == nil {
		if l.optional {
			l.r = l.openOptional()
		} else if n := l.await(b); n > 0 || l.r == nil && l.err == nil {
			return n, nil
		}
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(b)
}

// openOptional opens a part that does not wait: if it cannot play yet, it
// is left out.
func (l *laterPart) openOptional() io.Reader {
	r, err := l.pcm(l.id)
	if err != nil {
		l.a.log.Warn("agent: chime not cached; playing without it", "occurrence", l.occ, "content", l.id, "err", err)
		return eof{}
	}
	return r
}

// silenceAhead is how much silence a part waiting for its content gives
// the output ahead of the speaker, so that it never runs dry: the stream
// stays whole, and the instant each of its bytes is heard stays known.
// More than audio.None reads at a time.
const silenceAhead = 150 * time.Millisecond

// silenceDue fills b with the silence due for a part whose place in the
// stream is heard from due on and that has given given bytes of it: as
// much as brings it silenceAhead past the speaker (the bytes returned).
// If none is due yet it returns 0 and a timer for when some is.
func (a *Agent) silenceDue(b []byte, due time.Time, given int64) (int64, clock.Timer) {
	now := a.clock.Now().Add(a.latency)
	if n := min(nodeaudio.Bytes(now.Sub(due)+silenceAhead)-given, int64(len(b))) &^ 1; n > 0 {
		clear(b[:n])
		return n, nil
	}
	return 0, a.clock.NewTimer(due.Add(nodeaudio.Duration(given) - silenceAhead + 10*time.Millisecond).Sub(now))
}

// await waits for the content and opens the part (l.r or l.err set, 0
// returned), or fills b with silence if the speaker is about to reach
// the part first (the bytes returned). It waits as long as the output
// still has sound from before the part.
func (l *laterPart) await(b []byte) int {
	if l.ready == nil {
		if l.a.cache.Playable(l.id) {
			l.r, l.err = l.open()
			return 0
		}
		l.ready = make(chan error, 1)
		if l.plays > 0 {
			l.p.awaiting.Store(true)
		}
		go func() { l.ready <- l.a.cache.AwaitPlayable(l.ctx, l.id) }()
	}
	came := func(err error) int {
		if l.err = err; err == nil {
			l.r, l.err = l.open()
		}
		if l.plays > 0 {
			l.p.placed.Store(true)
			signal(l.a.messagePlaced)
		}
		return 0
	}
	due := time.Unix(0, l.p.heardAt.Load()).Add(l.offset + time.Duration(l.p.inserted.Load()))
	for {
		select {
		case err := <-l.ready:
			return came(err)
		default:
		}
		n, t := l.a.silenceDue(b, due, l.silence)
		if n > 0 {
			l.silence += n
			return int(n)
		}
		select {
		case err := <-l.ready:
			t.Stop()
			return came(err)
		case <-t.C():
		}
	}
}

// open opens the content once it can play: after the silence given while
// it was awaited, the part begins its stream that much late, or later in
// step with a repeat of the clusters that had it in time (planJoin), after
// the chime again if it is that late.
func (l *laterPart) open() (io.Reader, error) {
	// Late by what was given in its place, and by what earlier parts of
	// the play inserted before it.
	late := nodeaudio.Duration(l.silence) + time.Duration(l.p.inserted.Load())
	msg, err := l.pcm(l.id)
	if err != nil {
		return nil, err
	}
	var chimeLen time.Duration
	var chime io.Reader // nil, not a nil pcmFile, when there is none
	if l.chime != "" && late >= l.a.cfg.ChimeAgainAfter {
		if r, err := l.pcm(l.chime); err == nil {
			chime, chimeLen = r, r.Duration()
		} else {
			l.a.log.Warn("agent: chime unplayable; the message follows without it", "occurrence", l.occ, "content", l.chime, "err", err)
		}
	}
	join := joinPlan{}
	if l.plays > 1 && l.a.cfg.InStepWait > 0 && late > inStepTolerance {
		// Behind the area's timeline by that and by how late the play
		// itself began (it had the alert late, or its start was slow).
		behind := late + time.Unix(0, l.p.heardAt.Load()).Sub(l.p.occ.Start)
		join = planJoin(behind, msg.Duration()+l.gap, chimeLen, l.plays, l.a.cfg.InStepWait)
	}
	if l.plays > 0 && late > inStepTolerance {
		l.p.messageAt.Store(int64(l.offset + late + join.pad + chimeLen))
	}
	l.p.inserted.Add(int64(nodeaudio.Duration(l.silence) + join.pad + chimeLen))
	if l.chime != "" || join.repeat > 0 {
		l.a.log.Info("agent: the message follows its chime", "occurrence", l.occ, "late_ms", late.Milliseconds(),
			"chime_again", chime != nil, "in_step_with_repeat", join.repeat+1, "silence_ms", join.pad.Milliseconds())
	}
	parts := []io.Reader{io.LimitReader(zeros{}, nodeaudio.Bytes(join.pad))}
	if chime != nil {
		parts = append(parts, chime)
	}
	return io.MultiReader(append(parts, msg)...), nil
}

// inStepTolerance is how far from its area's timeline a play may sound and
// still count as in step (the skew bound).
const inStepTolerance = 20 * time.Millisecond

// joinPlan is where a message that came late begins: after pad of silence,
// with the clusters that had it in time as they begin their repeat
// (0-based; 0: not joined, it plays at once).
type joinPlan struct {
	pad    time.Duration
	repeat int
}

// planJoin places a message's first repeat that can play late after the
// instant the clusters of its area that had it in time began it, each
// repeat period apart (the message and the gap), plays times in all:
// at the next of their repeats, chime (its length, 0 for none) played
// just before it, if the silence it waits for that is at most maxWait.
// Past their last repeat, or waiting longer, it plays at once.
// It plays every repeat from there, so its own listeners hear the whole
// alert, in step with the others while they play.
func planJoin(late, period, chime time.Duration, plays int, maxWait time.Duration) joinPlan {
	if late <= inStepTolerance || period <= 0 {
		return joinPlan{}
	}
	need := late + chime
	k := int((need + period - 1) / period)
	if k >= plays {
		return joinPlan{}
	}
	pad := time.Duration(k)*period - need
	if pad > maxWait {
		return joinPlan{}
	}
	return joinPlan{pad: pad, repeat: k}
}

// pcm opens content id's node audio for reading as it arrives.
func (l *laterPart) pcm(id string) (pcmFile, error) {
	f, err := l.a.cache.OpenStream(l.ctx, id)
	if err != nil {
		return pcmFile{}, err
	}
	l.files = append(l.files, f)
	return openPCM(f, id)
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
	id  string // the content, to name it if its audio turns out damaged
}

func openPCM(src io.Reader, id string) (pcmFile, error) {
	r, err := nodeaudio.NewReader(src)
	return pcmFile{Reader: r, src: src, id: id}, asDamaged(src, id, err)
}

// asDamaged names content id in a decode error of its cached file read
// from src: the file was verified when it was cached, so the node's
// storage changed it since.
func asDamaged(src io.Reader, id string, err error) error {
	if err == nil || content.Streaming(src) || !errors.Is(err, nodeaudio.ErrFormat) || errors.Is(err, content.ErrDamaged) {
		return err
	}
	return &content.DamagedError{ID: id, Err: err}
}

func (f pcmFile) Read(p []byte) (int, error) {
	n, err := f.Reader.Read(p)
	err = asDamaged(f.src, f.id, err)
	if err == io.EOF && !content.Streaming(f.src) {
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

// chimeSlot is the place of an opening chime the node did not have when
// its play was prepared (a cluster enrolled minutes ago, or whose chime
// was found damaged and is fetched again): the chime's length, by its ref,
// of silence, given no further ahead of the speaker than silenceAhead.
// If the chime is cached while its place plays, the rest of the chime
// plays from there: the clusters of the area that had it are at that point
// of theirs. The parts after it stay where they are on the area's
// timeline either way.
type chimeSlot struct {
	a     *Agent
	p     *play
	id    string
	size  int64     // the place's PCM bytes
	given int64     // bytes read so far, silence or chime
	r     io.Reader // the chime past what was given, once it came
	done  bool      // the chime came (or failed to open): stop looking
	files []io.Closer
}

func (s *chimeSlot) Read(b []byte) (int, error) {
	left := s.size - s.given
	if left <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), left)]
	for {
		if !s.done && s.a.cache.Has(s.id) {
			s.done = true
			s.r = s.open()
		}
		if s.r != nil {
			n, err := s.r.Read(b)
			s.given += int64(n)
			if err != nil {
				// Shorter than its ref says, or unreadable: silence for
				// the rest of its place.
				if err != io.EOF {
					s.a.log.Warn("agent: opening chime unreadable; silence for the rest of its place", "occurrence", s.p.occ.ID, "content", s.id, "err", err)
					s.a.discardDamaged(err)
				}
				s.r = nil
			}
			return n, nil
		}
		// The slot is the stream's first part: its place is heard from
		// the play's first sample on.
		n, t := s.a.silenceDue(b, time.Unix(0, s.p.heardAt.Load()), s.given)
		if n > 0 {
			s.given += n
			return int(n), nil
		}
		select {
		case <-s.p.ctx.Done():
			t.Stop()
			return 0, s.p.ctx.Err()
		case <-t.C():
		}
	}
}

// open opens the cached chime past the bytes its place has given; nil if
// it cannot.
func (s *chimeSlot) open() io.Reader {
	f, err := s.a.cache.OpenStream(s.p.ctx, s.id)
	if err == nil {
		s.files = append(s.files, f)
		var r pcmFile
		if r, err = openPCM(f, s.id); err == nil {
			if _, err = io.CopyN(io.Discard, r, s.given); err == nil {
				s.a.log.Info("agent: opening chime came during its place; it plays from there", "occurrence", s.p.occ.ID, "content", s.id,
					"from_ms", nodeaudio.Duration(s.given).Milliseconds())
				return r
			}
		}
	}
	s.a.log.Warn("agent: opening chime unplayable; silence for the rest of its place", "occurrence", s.p.occ.ID, "content", s.id, "err", err)
	s.a.discardDamaged(err)
	return nil
}

// discardDamaged has the cache fetch content again if err says its cached
// file changed.
func (a *Agent) discardDamaged(err error) {
	if damaged := (*content.DamagedError)(nil); errors.As(err, &damaged) {
		a.cache.Discard(damaged.ID)
	}
}

// Close closes the chime if it was opened; the play's goroutine calls it
// once the output has returned.
func (s *chimeSlot) Close() error {
	for _, f := range s.files {
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
	if p.occ.Priority == protocol.PriorityEmergency {
		a.emergencyEnded = now.Add(a.latency)
	}
	var lost error // the output failed for good: the agent restarts (Config.Restart)
	mark := a.mark(p.occ, PhaseDone)
	mark.StartedAt = p.startedAt
	e := occurrenceEvent(protocol.EventCompleted, mark, now)
	// The output may have read ahead of what was heard when stopped, so the
	// played time is the elapsed time, bounded by what was read.
	elapsed := max(a.clock.Base.Now().Sub(p.base), 0) // 0 if stopped in its lead-in
	e.PlayedMS = min(elapsed, playDuration(r.bytes)).Milliseconds()
	switch {
	case r.audioErr == nil:
		// Played to the end, even if a stop came as it did.
		e.PlayedMS = playDuration(r.bytes).Milliseconds()
	case p.stopReason == "" && errors.Is(context.Cause(p.ctx), errPreempted):
		// Stopped by the play that began after it (takeOutput), before
		// the main loop took that play on air (onAir).
		p.stopReason = protocol.ReasonPreempted
		fallthrough
	case p.stopReason != "":
		e.Reason = p.stopReason
		e.Type, mark.Phase = CutOff(p.occ, p.stopReason, now, a.lateGrace())
		if mark.Phase == PhaseSuspended {
			mark.CutBy = p.stopReason
		}
	default:
		e.Type, e.Reason = protocol.EventFailed, protocol.ReasonAudioDevice
		var damaged *content.DamagedError
		switch {
		case errors.Is(r.audioErr, audio.ErrDeviceLost) && a.cfg.Restart != nil:
			// Cut off like a play the agent's stop interrupted: it plays
			// again from the beginning once the agent has restarted with
			// the device open again, before its deadline. The reason
			// stays audio-device, for the failed-to-sound alarm.
			e.Type, mark.Phase = CutOff(p.occ, protocol.ReasonInterrupted, now, a.lateGrace())
			if mark.Phase == PhaseSuspended {
				mark.CutBy = protocol.ReasonInterrupted
			}
			lost = r.audioErr
		case errors.Is(r.audioErr, context.Canceled):
			e.Reason = protocol.ReasonInterrupted
		case errors.Is(r.audioErr, relay.ErrFailed) && p.occ.Live != "":
			// A live call's frames stopped coming (the node's link
			// dropped): off the air, amplifier released, until they come
			// again (Decide).
			e.Type, e.Reason = protocol.EventSuspended, protocol.ReasonStream
			mark.Phase, mark.CutBy = PhaseSuspended, protocol.ReasonStream
		case errors.Is(r.audioErr, relay.ErrFailed):
			e.Reason = protocol.ReasonStream
		case errors.As(r.audioErr, &damaged):
			// A cached file that no longer decodes: the storage's fault,
			// not the sound device's. It is fetched again, and the play
			// begins again once it is cached, before its deadline.
			a.cache.Discard(damaged.ID)
			e.Reason = protocol.ReasonContentMissing
			e.Type, mark.Phase = CutOff(p.occ, e.Reason, now, a.lateGrace())
			if mark.Phase == PhaseSuspended {
				mark.CutBy = e.Reason
			}
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
		case e.Reason == protocol.ReasonStream && e.Type == protocol.EventSuspended:
			a.log.Warn("agent: live call's frames stopped; it plays again when they come", "occurrence", p.occ.ID, "drill", p.occ.Drill, "err", r.audioErr)
		case e.Reason == protocol.ReasonContentMissing && e.Type == protocol.EventSuspended:
			a.log.Error("agent: play stopped: its content stopped arriving, or was not what its id names; it plays again from the beginning once the content is cached", "occurrence", p.occ.ID, "err", r.audioErr)
		case e.Reason == protocol.ReasonContentMissing:
			a.log.Error("agent: play failed: its content stopped arriving, or was not what its id names", "occurrence", p.occ.ID, "err", r.audioErr)
		default:
			a.log.Error("agent: audio output failed", "occurrence", p.occ.ID, "err", r.audioErr)
		}
	}
	if at := time.Duration(p.messageAt.Load()); at > 0 {
		e.MessageMS = at.Milliseconds()
	}
	a.countLive(p, &e)
	a.log.Info("agent: play ended", "occurrence", p.occ.ID, "event", e.Type, "reason", e.Reason, "played_ms", e.PlayedMS)
	a.note([]protocol.Event{e}, mark)
	signal(a.dirty)
	if lost != nil {
		a.flush() // the suspended mark and its report, stored before the agent ends
		a.log.Error("agent: the sound device is lost for this process; restarting the agent to open it again", "err", lost)
		a.cfg.Restart(lost)
	}
}

// setVolume applies the node's volume to the play on air and the one
// prepared, at once rather than from the next play: a bulletin turned down
// at night is heard quieter within the output's buffer. An emergency, and
// a play at an alert's own level, keep theirs (gain). A mute is the
// executor's (Situation.Muted): the next decision stops the play on air.
func (a *Agent) setVolume() {
	for _, p := range []*play{a.play, a.cue} {
		if p != nil && p.gain != nil {
			p.gain.SetFactor(a.gain(p.occ))
		}
	}
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
	if p.interrupt != nil {
		// A live call waiting for its first frames holds the output's
		// read until its frame timeout, a stalled station until its
		// stall timeout and retries (an output that waits for the read
		// under way, as audio.None does): a stopped call is not resumed
		// (on_preempt drop), so its buffer is closed now, and a relay
		// resumed later opens its station again.
		p.interrupt.Close()
	}
	a.finishPlay(<-p.done)
}

// playDone is the channel the play on air ends on; nil when nothing plays.
func (a *Agent) playDone() <-chan playResult {
	if a.play == nil {
		return nil
	}
	return a.play.done
}
