package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// PlayThroughEvidence is how long a download must have run before its rate
// counts: the first moments of a connection say little about it.
const PlayThroughEvidence = 500 * time.Millisecond

// PlayThroughShare is the share of the content's play time within which
// the rest of the download must be expected for it to play as it arrives.
const PlayThroughShare = 0.75

// ErrStreamBroken: the download a stream reads ended without the verified
// content (its bytes did not match the id, nothing needs it any more) or
// brought nothing for the stall timeout. It wraps the cause.
var ErrStreamBroken = errors.New("content stream broken")

// stream is the progress of one content's download, shared by its
// attempts and read by its streams.
type stream struct {
	size int64         // bytes of the content (ContentRef.Size)
	play time.Duration // its play time (ContentRef.DurationMS)

	// Guarded by Cache.mu.
	have    int64         // bytes in the part file
	checked int64         // of them, the whole chunks checked: what streams read
	grew    chan struct{} // closed when have or checked changes or the stream ends
	ended   bool
	end     error // why it ended; nil: the verified file is in place
	running bool  // an attempt is under way
	// The rate of the attempt under way is measured from its first bytes:
	// the wait for the controller's answer says nothing of the link.
	from     int64     // have when they came
	began    time.Time // when they came; zero before
	playable bool
}

// streamable reports whether ref carries what a stream needs to judge the
// rate: its size and play time.
func streamable(size int64, play time.Duration) bool {
	return size > nodeaudio.HeaderSize && play > 0
}

// playThrough reports whether a download with have of size bytes, of which
// got arrived in the elapsed time of this attempt, would be complete within
// PlayThroughShare of the play time at that rate.
func playThrough(size, have, got int64, elapsed, play time.Duration) bool {
	if have >= size {
		return true
	}
	if have < nodeaudio.HeaderSize || got <= 0 || elapsed < PlayThroughEvidence {
		return false
	}
	rest := time.Duration(float64(size-have) / float64(got) * float64(elapsed))
	return rest <= time.Duration(PlayThroughShare*float64(play))
}

// moved records that the part file now holds have bytes, checked of
// them, and wakes the readers. c.mu is held.
func (s *stream) moved(have, checked int64) {
	if have == s.have && checked == s.checked {
		return
	}
	s.have, s.checked = have, checked
	close(s.grew)
	s.grew = make(chan struct{})
}

// finish ends the stream; err nil means the verified file is in place.
// c.mu is held.
func (s *stream) finish(err error) {
	if s.ended {
		return
	}
	if err == nil {
		// Verified whole against its id: every byte is checked, also
		// those of an attempt that came without a chunk list, which
		// readers would otherwise wait for until the stall timeout.
		s.have, s.checked = s.size, s.size
	}
	s.ended, s.end, s.playable = true, err, false
	close(s.grew)
	s.grew = make(chan struct{})
}

// attempt begins a download attempt of ref that starts from have bytes,
// making the stream if there is none. It returns nil for content a stream
// cannot be judged for.
func (c *Cache) attempt(id string, size int64, play time.Duration, have int64) *stream {
	if !streamable(size, play) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[id]
	if s == nil || s.ended {
		s = &stream{size: size, play: play, grew: make(chan struct{})}
		c.streams[id] = s
	}
	// The bytes of the partial file count as checked once the attempt's
	// chunk list has checked them (chunkCheck.begin).
	s.moved(have, min(s.checked, have))
	s.running, s.from, s.began = true, have, time.Time{}
	return s
}

// progress records the bytes the attempt has written so far, and how many
// of them are checked, and, the first time the download can play through,
// signals Changed.
func (c *Cache) progress(s *stream, have, checked int64) {
	if s == nil {
		return
	}
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	s.moved(have, checked)
	switch {
	case !s.running:
	case s.began.IsZero() && have > s.from, have < s.from:
		// The first bytes of the attempt: the rate counts from here. Or
		// it started again from zero (the server ignored the range).
		s.from, s.began = have, now
	}
	// A play reads checked chunks only: until the first is, it would
	// begin with a wait, however fast the bytes come.
	became := s.running && !s.playable && s.checked > 0 && (have >= s.size ||
		!s.began.IsZero() && playThrough(s.size, have, have-s.from, now.Sub(s.began), s.play))
	if became {
		s.playable = true
		c.turn()
	}
	c.mu.Unlock()
	if became {
		c.signal(c.note)
	}
}

// attemptEnded closes an attempt: err nil means the verified file is in
// place and the stream ends; otherwise the stream waits for the next
// attempt unless final says there will be none (the bytes were wrong, or
// nothing needs the content). It signals Changed if the content was
// Playable.
func (c *Cache) attemptEnded(id string, err error, final bool) {
	c.mu.Lock()
	c.endAttempt(id, err, final)
	c.mu.Unlock()
}

// news is what a wait for content learns of its downloads (Cache.news).
type news struct {
	came     time.Time // when bytes of its audio last came, on Config.Clock
	wrong    int       // Cache.wrongs after the last attempt that ended in wrong bytes
	wrongErr error     // why that attempt ended
}

// arrived records that bytes of content id's audio came now, from any
// download, with a chunk root or without.
func (c *Cache) arrived(id string) {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	n := c.news[id]
	n.came = now
	c.news[id] = n
	c.mu.Unlock()
}

// lastByte returns when a byte of content id's download last came, or
// since if none came after it. c.mu is held.
func (c *Cache) lastByte(id string, since time.Time) time.Time {
	if came := c.news[id].came; came.After(since) {
		return came
	}
	return since
}

// endAttempt is attemptEnded with c.mu held.
func (c *Cache) endAttempt(id string, err error, final bool) {
	if errors.Is(err, ErrMismatch) {
		// Whatever waits for the content learns of it now, not a stall
		// timeout later: the bytes that came are gone.
		c.wrongs++
		n := c.news[id]
		n.wrong, n.wrongErr = c.wrongs, err
		c.news[id] = n
		c.turn()
	}
	s := c.streams[id]
	if s == nil {
		return
	}
	was := s.playable
	s.running, s.playable, s.began = false, false, time.Time{}
	if err == nil || final {
		s.finish(err)
		delete(c.streams, id)
	}
	if was && err != nil {
		c.signal(c.note)
	}
}

// Playable reports whether content id can be played now: cached, or
// downloading fast enough to play as it arrives (see "Played as it
// arrives" in the package doc).
func (c *Cache) Playable(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.playable(id)
}

// playable is Playable with c.mu held.
func (c *Cache) playable(id string) bool {
	if _, ok := c.present[id]; ok {
		return true
	}
	s := c.streams[id]
	return s != nil && s.playable
}

// OpenStream opens content id for playing: the cached file if it is in
// place, else a reader of its download that waits for bytes still to come.
// Reads fail with ctx's error once ctx is done, and with ErrStreamBroken if
// the download ends without the content or brings nothing for the stall
// timeout. The reader does not mark the content used; the finished
// download does.
func (c *Cache) OpenStream(ctx context.Context, id string) (io.ReadCloser, error) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s == nil {
		return c.openCached(id)
	}
	f, err := os.Open(c.fresh(id) + partSuffix)
	if errors.Is(err, os.ErrNotExist) {
		// Finished (or failed) since: the file is in place, or not at all.
		return c.openCached(id)
	}
	if err != nil {
		return nil, fmt.Errorf("open content stream %s: %w", id, err)
	}
	return &streamReader{c: c, s: s, f: f, ctx: ctx, id: id, stall: c.cfg.StallTimeout}, nil
}

// openCached opens cached content id for a play: with the chunk list
// kept beside it, a reader that checks each chunk before giving its bytes
// (a file the node's storage damaged fails with ErrDamaged); without one
// (content cached before lists were kept, or from a controller without
// them), the file.
func (c *Cache) openCached(id string) (io.ReadCloser, error) {
	f, err := c.Open(id)
	if err != nil {
		return nil, err
	}
	list, err := os.ReadFile(c.Path(id) + listSuffix)
	st, serr := f.Stat()
	if err != nil || serr != nil {
		return f, nil
	}
	if want := len(list) / protocol.ChunkHashSize; len(list)%protocol.ChunkHashSize != 0 || protocol.Chunks(st.Size()) != want {
		// Cut short or lengthened on the card since it was verified (or
		// its list was): not what its id names. Fetched again, rather
		// than read to a clean end unchecked.
		f.Close()
		return nil, &DamagedError{ID: id, Err: fmt.Errorf("%d bytes on the card, and a chunk list of %d bytes", st.Size(), len(list))}
	}
	return &checkedFile{f: f, id: id, list: list, size: st.Size()}, nil
}

// DamagedError: cached content ID read for a play is not what was
// verified: it differs from its chunk list, or no longer decodes (the
// node's storage changed it). It is ErrDamaged.
type DamagedError struct {
	ID  string
	Err error
}

func (e *DamagedError) Error() string { return fmt.Sprintf("content %s damaged: %v", e.ID, e.Err) }

func (e *DamagedError) Unwrap() error { return e.Err }

// Is makes a DamagedError ErrDamaged.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// checkedFile reads a cached file a chunk at a time, checking each
// against its chunk list before giving its bytes.
type checkedFile struct {
	f     *os.File
	id    string
	list  []byte
	size  int64
	next  int64  // where the next chunk begins
	chunk []byte // the chunk being read, reused
	buf   []byte // checked bytes of it not read yet
	err   error
}

func (r *checkedFile) Read(p []byte) (int, error) {
	if len(r.buf) == 0 && r.err == nil {
		r.fill()
	}
	if len(r.buf) == 0 {
		return 0, r.err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// fill reads and checks the next chunk.
func (r *checkedFile) fill() {
	if r.next >= r.size {
		r.err = io.EOF
		return
	}
	if r.chunk == nil {
		r.chunk = make([]byte, protocol.ChunkSize)
	}
	chunk := r.chunk[:min(protocol.ChunkSize, r.size-r.next)]
	if _, err := io.ReadFull(r.f, chunk); err != nil {
		r.err = fmt.Errorf("content %s: %w", r.id, err)
		return
	}
	i := int(r.next / protocol.ChunkSize)
	if !protocol.CheckChunk(r.list, i, chunk) {
		r.err = &DamagedError{ID: r.id, Err: fmt.Errorf("bytes %d–%d (chunk %d) differ from its chunk list", r.next, r.next+int64(len(chunk))-1, i)}
		return
	}
	r.next += int64(len(chunk))
	r.buf = chunk
}

func (r *checkedFile) Close() error { return r.f.Close() }

// Streaming reports whether r, from OpenStream, reads a download as it
// arrives rather than a cached file.
func Streaming(r io.Reader) bool {
	_, ok := r.(*streamReader)
	return ok
}

// streamReader reads a download as it arrives.
type streamReader struct {
	c     *Cache
	s     *stream
	f     *os.File
	ctx   context.Context
	id    string
	off   int64
	stall time.Duration // Config.StallTimeout
}

func (r *streamReader) Read(p []byte) (int, error) {
	var stall clock.Timer
	var since time.Time // when the wait began, then the last byte after it
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	for {
		r.c.mu.Lock()
		have, ended, end, grew, size := r.s.checked, r.s.ended, r.s.end, r.s.grew, r.s.size
		r.c.mu.Unlock()
		if ended && end != nil {
			return 0, fmt.Errorf("content %s: %w: %w", r.id, ErrStreamBroken, end)
		}
		if ended && r.off >= size {
			return 0, io.EOF
		}
		if r.off < have {
			n, err := r.f.ReadAt(p[:min(int64(len(p)), have-r.off)], r.off)
			r.off += int64(n)
			if n > 0 {
				return n, nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("content %s: %w", r.id, err)
			}
			// The file is shorter than have: a restart emptied it since.
		}
		if stall == nil {
			stall = r.c.cfg.Clock.NewTimer(r.stall)
			since = r.c.cfg.Clock.Now()
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-grew:
		case <-stall.C():
			// A stall is no byte for the timeout, checked or not yet: a
			// chunk that a slow link has not completed, an attempt
			// without a chunk list (checked once it is whole), still come.
			r.c.mu.Lock()
			since = r.c.lastByte(r.id, since)
			idle := r.c.cfg.Clock.Now().Sub(since)
			r.c.mu.Unlock()
			if idle >= r.stall {
				return 0, fmt.Errorf("content %s: %w: %w", r.id, ErrStreamBroken, ErrStalled)
			}
			stall.Reset(r.stall - idle)
		}
	}
}

func (r *streamReader) Close() error { return r.f.Close() }

// turn wakes every AwaitPlayable. c.mu is held.
func (c *Cache) turn() {
	close(c.turned)
	c.turned = make(chan struct{})
}

// held reports whether the cache holds content id or still wants it.
// c.mu is held.
func (c *Cache) held(id string) bool {
	if _, ok := c.present[id]; ok {
		return true
	}
	return slices.ContainsFunc(c.wanted, func(w Wanted) bool { return w.ID == id })
}

// AwaitPlayable waits until content id is Playable (at once if it is). It
// fails with ErrStreamBroken wrapping ErrStalled if no byte of it arrives
// for the stall timeout (Config.StallTimeout, on Config.Clock) however
// many attempts that spans, wrapping ErrMismatch as soon as an attempt
// ends in wrong bytes (the download is retried as any failed one), wrapping
// a cause if nothing wants it any more, and with ctx's error once ctx is
// done. A play that begins before its content has come (an alert's
// opening chime) waits here for the rest.
func (c *Cache) AwaitPlayable(ctx context.Context, id string) error {
	stall := c.cfg.Clock.NewTimer(c.cfg.StallTimeout)
	defer stall.Stop()
	// since is when the last byte came, or the wait began if none has
	// come since: the stall is reported one timeout after it, not at the
	// next look a whole timeout after the look that saw the byte.
	since := c.cfg.Clock.Now()
	c.mu.Lock()
	wrongs := c.wrongs // attempts that ended in wrong bytes before the wait
	c.mu.Unlock()
	for {
		c.mu.Lock()
		playable := c.playable(id)
		wanted := c.held(id)
		n := c.news[id]
		turned := c.turned
		c.mu.Unlock()
		switch {
		case playable:
			return nil
		case !wanted:
			return fmt.Errorf("content %s: %w: %w", id, ErrStreamBroken, errUnwanted)
		case n.wrong > wrongs:
			return fmt.Errorf("content %s: %w: %w", id, ErrStreamBroken, n.wrongErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-turned:
		case <-stall.C():
			c.mu.Lock()
			since = c.lastByte(id, since)
			idle := c.cfg.Clock.Now().Sub(since)
			c.mu.Unlock()
			if idle >= c.cfg.StallTimeout {
				return fmt.Errorf("content %s: %w: %w", id, ErrStreamBroken, ErrStalled)
			}
			stall.Reset(c.cfg.StallTimeout - idle)
		}
	}
}

// Ref returns the wanted content's reference (its size and play time).
func (c *Cache) Ref(id string) (protocol.ContentRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.wanted {
		if w.ID == id {
			return w.ContentRef, true
		}
	}
	return protocol.ContentRef{}, false
}
