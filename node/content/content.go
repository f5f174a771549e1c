// Package content keeps the node's audio cache and fills it from the
// controller.
//
// Files live in one directory, named by content id (the hex SHA-256 of the
// bytes). A download goes to <id>.part, resumes with an HTTP Range request
// after a cut link, and is renamed into place only once its SHA-256 equals
// the id, so a file named by an id is always exactly that content.
//
// # Not all at once
//
// A fleet must not hit the controller in step: when a new desired state
// names content for a whole province, or when nodes come back after an
// outage, 2,000 boards would otherwise ask within the same second. The
// first download of newly wanted content, and the retry of missing content
// after the agent reconnects (Reconnected), wait a random time up to
// Config.Spread — less when the content is needed sooner: at most a quarter
// of the time until its first play. Failed downloads are retried with
// exponential backoff and full jitter.
//
// # The sooner need first
//
// Downloads run one at a time, in need order. Content needed at once (an
// emergency alert's message, typed text made into speech a moment ago)
// must not wait behind a long download of tomorrow's bulletin over a slow
// link: when Want names missing content that is to be fetched within
// MakeWayMargin and needed more than MakeWayMargin before the content
// downloading, that download is paused (ErrMakeWay) and resumes, from its
// partial file, once the sooner one is in. A download of content nothing wants any more stops too.
//
// The node's other downloads that no play needs (a release of the agent
// itself, node/update) make way the same way: Lend gives such a download
// a context that ends, with cause ErrMakeWay, as soon as missing content a
// play needs is to be fetched within MakeWayMargin, and AwaitWay waits
// until none is, so that the download goes on from where it stopped once
// the alert's message is in.
//
// # Played as it arrives
//
// An alert's message typed a moment ago is on no cluster yet. Waiting for
// the whole file before the first sound costs the whole download: over a
// weak 4G link, or with a province fetching from one controller at once,
// that is many seconds of a warning not heard. Node audio plays at 64
// kbit/s, so a download that comes in faster than that, or one far enough
// along that the rest arrives before the speaker needs it, can be played
// as it arrives, as a radio plays a stream.
//
// Content is Playable while its download runs once the download has run
// for PlayThroughEvidence since its first bytes and, at the rate measured
// since then (not counting the wait for the controller's answer), would
// be complete within PlayThroughShare of the content's play time
// (ContentRef.DurationMS): a play from the beginning then does
// not catch up with the download, with a margin for the rate to drop.
// Its first chunk must also be checked (see below), so a play that
// begins has sound to begin with. Once Playable it stays so until the attempt ends, so a play being
// prepared is not dropped and made again; Changed signals when content
// becomes Playable and when an attempt of Playable content fails.
//
// OpenStream returns a reader of the download that waits for bytes not
// yet arrived, across a resumed attempt too, and ends at the content's
// size once the download is verified.
//
// Nothing unverified is played. Only content whose ref carries a chunk
// root (ContentRef.Chunks, signed with the rest of the desired state or
// alert) is played as it arrives: the download first fetches the chunk
// list (protocol.ChunkList) and checks it against the root, then checks
// each 16 KiB (protocol.ChunkSize) as it completes, and a stream reads
// only checked chunks. So a network that alters the bytes of a download
// over plain HTTP, or a controller that serves a damaged file, cannot put
// a sound on the speaker: the chunk that differs ends the download
// (ErrMismatch), the stream and a wait for the content (AwaitPlayable)
// fail at once (ErrStreamBroken wrapping ErrMismatch), and the cache keeps
// nothing of it. A resumed download checks the chunks
// already in its partial file first. Content without a chunk root plays
// once the whole file is verified.
//
// # Size limit
//
// The cache holds at most Config.MaxBytes. Content the current desired
// state names is never evicted (if it alone exceeds the limit, the cache
// grows past it and Usage says so); other content stays, in case a later
// schedule plays it again, until room is needed, and then the least
// recently used goes first. A file's modification time is its last use
// (Open touches it), so the order survives restarts.
package content

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Errors of a download attempt.
var (
	// ErrMakeWay: the download was paused for content needed sooner (see
	// the package doc); it resumes from where it stopped, with no backoff.
	ErrMakeWay = errors.New("paused for content needed sooner")
	// errUnwanted: nothing needs the content any more.
	errUnwanted = errors.New("no longer wanted")
	// ErrMismatch: the downloaded bytes do not hash to the content id; the
	// partial file is deleted and the next attempt starts from zero.
	ErrMismatch = errors.New("content does not match its id")
	// ErrDamaged: a cached file read for a play is not what was verified
	// (DamagedError names it).
	ErrDamaged = errors.New("cached content damaged")
	// ErrStalled: no bytes arrived for Config.StallTimeout.
	ErrStalled = errors.New("download stalled")
	// ErrNotContent: a 200 answer that is not the content whole (a
	// captive portal's page): refused before it touches the partial file.
	ErrNotContent = errors.New("answer is not the content")
)

// partSuffix marks a download in progress.
const partSuffix = ".part"

// listSuffix marks the chunk list kept beside a cached file.
const listSuffix = ".chunks"

// tmpSuffix marks a file being written, renamed into place once whole.
const tmpSuffix = ".tmp"

// DefaultMaxBytes is the default cache size: 512 MiB, about 18 hours of
// node audio at 64 kbit/s.
const DefaultMaxBytes = 512 << 20

// Config configures a Cache. Dir, BaseURL, Username and Secret are
// required; the rest have defaults.
type Config struct {
	// Dir holds the cached files; it is created if missing.
	Dir string
	// BaseURL is the controller's HTTP base URL.
	BaseURL string
	// Username and Secret are the node's credentials (HTTP Basic).
	Username, Secret string
	Client           *http.Client  // default: http.DefaultClient's transport, no overall timeout
	Clock            clock.Clock   // times backoff waits and stalls; default clock.Real
	Logger           *slog.Logger  // default: discard
	BackoffMin       time.Duration // first retry cap; default 2s
	BackoffMax       time.Duration // retry cap; default 5m
	// BackoffUrgent caps the retries of content needed before a longer
	// wait would end (an alert's message, a play due): default 15s.
	// Minutes between attempts spare a controller that is down, but not
	// while a warning waits for its words.
	BackoffUrgent time.Duration
	// StallTimeout aborts a download that receives nothing for this long
	// (no byte of the answer: its chunk list counts as much as its audio),
	// and fails a stream whose download brings nothing for it; default
	// 60s. A slow 3G link is fine, a dead one is not.
	StallTimeout time.Duration
	// Jitter returns a number in [0, 1); default math/rand/v2.Float64.
	Jitter func() float64
	// MaxBytes is the cache size limit; 0 means DefaultMaxBytes.
	MaxBytes int64
	// Spread is the longest wait before the first download of newly wanted
	// content and after a reconnect (see the package doc); 0 means none.
	Spread time.Duration
	// KeepSpread is that wait for content wanted with no play (Need
	// zero): content kept at all times, which a whole province may be
	// told to keep at once. 0 means Spread.
	KeepSpread time.Duration
	// ReadOnlyDir, if set, is a cache directory on storage that takes no
	// writes now (an SD card gone read-only, full, or failing), and Dir
	// one in memory: the files cached in ReadOnlyDir before are played
	// from there, never deleted and not counted against MaxBytes, and
	// what is downloaded goes to Dir. The record of damaged files is read
	// from ReadOnlyDir and kept in Dir.
	ReadOnlyDir string
}

// Wanted is content the desired state names and when it first plays.
type Wanted struct {
	protocol.ContentRef
	// Need is when the first occurrence plays it, on Config.Clock; zero
	// when no occurrence does.
	Need time.Time
}

// Cache is the content cache and its fetcher. Want names what the current
// desired state needs; Run downloads whatever of that is missing.
type Cache struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	note chan struct{}

	mu      sync.Mutex
	present map[string]entry
	bytes   int64 // of present files
	wanted  []Wanted
	retry   map[string]retry
	current *downloading // nil when no download runs
	// lent are the downloads no play needs running outside the cache
	// (Lend), paused with the cache's own.
	lent    map[*downloading]bool
	streams map[string]*stream
	// turned is closed (and replaced) whenever content may have become
	// Playable, stopped being wanted, or its download turned out wrong:
	// AwaitPlayable waits on it.
	turned chan struct{}
	// news are, by content whose download has run, what a wait for it
	// (AwaitPlayable, a stream's reader) learns of its attempts: when its
	// bytes last came, whether one ended in wrong bytes; forgotten once it
	// is cached or no longer wanted. wrongs counts the attempts that ended
	// in wrong bytes, across all content: a wait fails of those after its
	// start.
	news   map[string]news
	wrongs int
	// damaged are the times cached files were found damaged (Damaged);
	// saveMu orders the writes of their record (saveDamage).
	damaged []time.Time
	saveMu  sync.Mutex
	// listTried are the files cached without a list that Run has tried
	// to list since the node started (listCached).
	listTried map[string]bool
}

// downloading is the download Run has under way.
type downloading struct {
	id     string
	ctx    context.Context // the download's; done once paused or stopped
	cancel context.CancelCauseFunc
}

// MakeWayMargin is how much sooner content must be needed than the one
// downloading for that download to pause for it: two bulletins of one
// session do not take turns.
const MakeWayMargin = time.Minute

// entry is a verified file in the cache.
type entry struct {
	size int64
	used time.Time // last play or download
	// listed: its chunk list is kept beside it, so plays check it as
	// they read (openCached).
	listed bool
	// kept: the file is in Config.ReadOnlyDir: read from there, not
	// counted in the cache's bytes, never evicted.
	kept bool
}

type retry struct {
	attempts int
	next     time.Time
}

// Open creates the cache directory if needed and indexes what it holds.
func Open(cfg Config) (*Cache, error) {
	if cfg.Dir == "" || cfg.BaseURL == "" {
		return nil, fmt.Errorf("content cache: Dir and BaseURL are required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 2 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.BackoffUrgent <= 0 {
		cfg.BackoffUrgent = 15 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = time.Minute
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	mkErr := os.MkdirAll(cfg.Dir, 0o755)
	entries, err := os.ReadDir(cfg.Dir)
	switch {
	case mkErr != nil && errors.Is(err, fs.ErrNotExist):
		// A card gone read-only before the cache was made: the agent runs
		// with an empty cache, every download failing until the card is
		// changed, rather than not at all.
		cfg.Logger.Error("content: the cache directory cannot be made; the node has nothing cached and can download nothing", "dir", cfg.Dir, "err", mkErr)
	case err != nil:
		return nil, fmt.Errorf("content cache: %w", errors.Join(mkErr, err))
	}
	c := &Cache{
		cfg:     cfg,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		note:    make(chan struct{}, 1),
		present: make(map[string]entry),
		retry:   make(map[string]retry),
		streams: make(map[string]*stream),
		turned:  make(chan struct{}),
		news:    make(map[string]news),
		lent:    make(map[*downloading]bool),

		listTried: make(map[string]bool),
	}
	damageDir := cfg.Dir
	if cfg.ReadOnlyDir != "" {
		damageDir = cfg.ReadOnlyDir // the card's record; Dir starts empty
	}
	if c.damaged, err = readDamage(damageDir); err != nil {
		c.log.Warn("content: damage record unreadable; counting from none", "err", err)
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if id, list := strings.CutSuffix(e.Name(), listSuffix); strings.HasSuffix(e.Name(), tmpSuffix) || list && !names[id] {
			// A record or list the power went off in the middle of
			// writing, or the list of a file gone: nothing reads them.
			if err := os.Remove(filepath.Join(cfg.Dir, e.Name())); err != nil {
				c.log.Warn("content: cannot delete a leftover file", "file", e.Name(), "err", err)
			}
			continue
		}
		if !protocol.ValidContentID(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone since the listing
		}
		c.present[e.Name()] = entry{size: info.Size(), used: info.ModTime(), listed: names[e.Name()+listSuffix]}
		c.bytes += info.Size()
	}
	if cfg.ReadOnlyDir != "" {
		c.addKept()
	}
	return c, nil
}

// addKept adds the verified files of Config.ReadOnlyDir to the cache, as
// kept: what a failing card still holds plays.
func (c *Cache) addKept() {
	entries, err := os.ReadDir(c.cfg.ReadOnlyDir)
	if errors.Is(err, fs.ErrNotExist) {
		return // nothing was ever cached on the card
	}
	if err != nil {
		c.log.Error("content: the cache on the card cannot be read; nothing of it plays", "dir", c.cfg.ReadOnlyDir, "err", err)
		return
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		id := e.Name()
		if _, ok := c.present[id]; ok || !e.Type().IsRegular() || !protocol.ValidContentID(id) {
			continue
		}
		if info, err := e.Info(); err == nil {
			c.present[id] = entry{size: info.Size(), used: info.ModTime(), listed: names[id+listSuffix], kept: true}
		}
	}
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.cfg.Dir }

// Path returns the file name of content id: in Dir, or in ReadOnlyDir if
// it is there and not in Dir.
func (c *Cache) Path(id string) string {
	p := c.fresh(id)
	if c.cfg.ReadOnlyDir != "" {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if q := filepath.Join(c.cfg.ReadOnlyDir, id); fileExists(q) {
				return q
			}
		}
	}
	return p
}

// fresh is where a download of content id goes: in Dir.
func (c *Cache) fresh(id string) string { return filepath.Join(c.cfg.Dir, id) }

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// Has reports whether content id is cached and verified.
func (c *Cache) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.present[id]
	return ok
}

// Open opens cached content id for reading and marks it used now.
func (c *Cache) Open(id string) (*os.File, error) {
	if !protocol.ValidContentID(id) {
		return nil, fmt.Errorf("open content %q: not a content id", id)
	}
	f, err := os.Open(c.Path(id))
	if err != nil {
		return nil, fmt.Errorf("open content %s: %w", id, err)
	}
	now := c.cfg.Clock.Now()
	// The modification time is the use mark that survives a restart; a
	// failure only makes the file look older.
	if err := os.Chtimes(c.Path(id), now, now); err != nil {
		c.log.Debug("content: cannot mark use", "content", id, "err", err)
	}
	c.mu.Lock()
	if e, ok := c.present[id]; ok {
		e.used = now
		c.present[id] = e
	}
	c.mu.Unlock()
	return f, nil
}

// Usage returns the bytes the cached content takes, the limit, and how
// many files there are. Used exceeds the limit only when the wanted
// content alone does.
func (c *Cache) Usage() (used, limit int64, files int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.cfg.MaxBytes, len(c.present)
}

// Changed signals (coalesced) that the set of missing content changed.
func (c *Cache) Changed() <-chan struct{} { return c.note }

// Want replaces the content the node needs, in the order it is needed,
// deletes partial downloads nothing needs any more, and evicts unneeded
// content down to the size limit. Newly wanted content that is missing is
// first fetched after a random wait (see the package doc).
func (c *Cache) Want(wants []Wanted) {
	keep := make(map[string]bool, len(wants))
	var valid []Wanted
	for _, w := range wants {
		if protocol.ValidContentID(w.ID) && !keep[w.ID] {
			keep[w.ID] = true
			valid = append(valid, w)
		}
	}
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	known := make(map[string]bool, len(c.wanted))
	for _, w := range c.wanted {
		known[w.ID] = true
	}
	c.wanted = valid
	for id := range c.retry {
		if !keep[id] {
			delete(c.retry, id)
		}
	}
	for id := range c.news {
		if !keep[id] {
			delete(c.news, id)
		}
	}
	for id, s := range c.streams {
		if !keep[id] {
			s.finish(errUnwanted)
			delete(c.streams, id)
		}
	}
	for _, w := range valid {
		if _, ok := c.present[w.ID]; ok {
			continue
		}
		next := now.Add(c.spread(w, now))
		rt, waiting := c.retry[w.ID]
		switch {
		case !known[w.ID]:
			c.retry[w.ID] = retry{next: next}
		case waiting && next.Before(rt.next) && (rt.attempts == 0 || !w.Need.IsZero() && w.Need.Before(rt.next)):
			// Needed sooner than when its fetch was due: the emergency
			// chimes every node keeps, or a kept warning whose download
			// failed and backs off for minutes, now in an alert. It gets
			// the shorter wait of the sooner need; a failed one keeps its
			// count of failures, so its backoff grows on if it fails again.
			rt.next = next
			c.retry[w.ID] = rt
		}
	}
	c.makeWay(now)
	drop := c.evict(0)
	c.turn()
	c.mu.Unlock()
	c.remove(drop)
	if entries, err := os.ReadDir(c.cfg.Dir); err == nil {
		for _, e := range entries {
			if id, ok := strings.CutSuffix(e.Name(), partSuffix); ok && !keep[id] {
				os.Remove(filepath.Join(c.cfg.Dir, e.Name()))
			}
		}
	}
	c.signal(c.wake)
	c.signal(c.note)
}

// Reconnected tells the cache that the node's link is back: missing
// content is tried again soon, after a random wait rather than at the end
// of a backoff that grew while the link was down.
func (c *Cache) Reconnected() {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	for _, w := range c.wanted {
		if _, ok := c.present[w.ID]; !ok {
			c.retry[w.ID] = retry{next: now.Add(c.spread(w, now))}
		}
	}
	c.makeWay(now)
	c.mu.Unlock()
	c.signal(c.wake)
}

// makeWay stops the download under way when nothing wants its content any
// more, or pauses it when missing content is needed more than
// MakeWayMargin sooner (content no occurrence plays is needed last) and
// is to be fetched within MakeWayMargin: due now, at the end of its first
// fetch's spread (an alert's message waits at most a quarter of the lead),
// or at a retry that Want brought forward for an alert. The paused
// download waits until then, so that Run takes the sooner one first. c.mu
// is held.
func (c *Cache) makeWay(now time.Time) {
	if id, ok := c.wayWanted(now); ok {
		for d := range c.lent {
			c.log.Info("content: pausing a download no play needs for content a play needs", "paused", d.id, "for", id)
			d.cancel(ErrMakeWay)
			delete(c.lent, d)
		}
	}
	cur := c.current
	if cur == nil {
		return
	}
	i := slices.IndexFunc(c.wanted, func(w Wanted) bool { return w.ID == cur.id })
	if i < 0 {
		cur.cancel(errUnwanted)
		return
	}
	curNeed := c.wanted[i].Need
	for _, w := range c.wanted {
		if w.ID == cur.id || w.Need.IsZero() {
			continue
		}
		rt := c.retry[w.ID]
		if _, ok := c.present[w.ID]; ok || rt.next.After(now.Add(MakeWayMargin)) {
			continue
		}
		if curNeed.IsZero() || w.Need.Before(curNeed.Add(-MakeWayMargin)) {
			c.log.Info("content: pausing a download for content needed sooner", "paused", cur.id, "for", w.ID, "needed_at", w.Need)
			paused := c.retry[cur.id]
			paused.next = rt.next
			c.retry[cur.id] = paused
			cur.cancel(ErrMakeWay)
			return
		}
	}
}

// wayWanted returns missing content a play needs that is to be fetched
// within MakeWayMargin (as makeWay judges it), if there is one: what a
// download no play needs makes way for. c.mu is held.
func (c *Cache) wayWanted(now time.Time) (string, bool) {
	for _, w := range c.wanted {
		if w.Need.IsZero() {
			continue
		}
		if _, ok := c.present[w.ID]; ok || c.retry[w.ID].next.After(now.Add(MakeWayMargin)) {
			continue
		}
		return w.ID, true
	}
	return "", false
}

// Lend returns the context for a download of the node's that no play
// needs and the cache does not make (what names it: a release of the
// agent), and done, to call once that download ends. The context ends,
// with cause ErrMakeWay, as soon as missing content a play needs is to be
// fetched within MakeWayMargin — at once if some is: wait with AwaitWay
// first. The download then stops and, after AwaitWay, goes on from where
// it was.
func (c *Cache) Lend(ctx context.Context, what string) (context.Context, func()) {
	lctx, cancel := context.WithCancelCause(ctx)
	d := &downloading{id: what, ctx: lctx, cancel: cancel}
	c.mu.Lock()
	c.lent[d] = true
	c.makeWay(c.cfg.Clock.Now())
	c.mu.Unlock()
	return lctx, func() {
		c.mu.Lock()
		delete(c.lent, d)
		c.mu.Unlock()
		cancel(nil)
	}
}

// AwaitWay waits until no missing content a play needs is to be fetched
// within MakeWayMargin (see Lend), or ctx is done.
func (c *Cache) AwaitWay(ctx context.Context) error {
	for {
		c.mu.Lock()
		_, busy := c.wayWanted(c.cfg.Clock.Now())
		turned := c.turned
		c.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-turned:
		}
	}
}

// spread is the random wait before fetching w: up to Config.Spread (and
// Config.KeepSpread for content no play needs), and up to a quarter of
// the time until w first plays.
func (c *Cache) spread(w Wanted, now time.Time) time.Duration {
	ceil := c.cfg.Spread
	if w.Need.IsZero() && c.cfg.KeepSpread > 0 {
		ceil = c.cfg.KeepSpread
	}
	if !w.Need.IsZero() {
		ceil = min(ceil, w.Need.Sub(now)/4)
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(c.cfg.Jitter() * float64(ceil))
}

// evict picks unwanted files to delete, least recently used first, until
// the cached bytes plus room fit the limit, and forgets them; the caller
// deletes them (remove) outside the lock. c.mu is held.
func (c *Cache) evict(room int64) []string {
	if c.bytes+room <= c.cfg.MaxBytes {
		return nil
	}
	var drop []string
	for _, id := range c.unwanted() {
		if c.bytes+room <= c.cfg.MaxBytes {
			break
		}
		c.bytes -= c.present[id].size
		delete(c.present, id)
		drop = append(drop, id)
	}
	return drop
}

// unwanted returns the cached content no one wants any more and that is
// not kept, least recently used first: what may go to make room. c.mu is
// held.
func (c *Cache) unwanted() []string {
	wanted := make(map[string]bool, len(c.wanted))
	for _, w := range c.wanted {
		wanted[w.ID] = true
	}
	var ids []string
	for id, e := range c.present {
		if !wanted[id] && !e.kept {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(c.present[a].used.Compare(c.present[b].used), strings.Compare(a, b))
	})
	return ids
}

// makeRoom deletes cached content no one wants any more (least recently
// used first, kept content never) until need bytes are freed, or all of it
// if need is not known: the card is full below MaxBytes.
func (c *Cache) makeRoom(id string, need int64) {
	c.mu.Lock()
	var drop []string
	var freed int64
	for _, cid := range c.unwanted() {
		if need > 0 && freed >= need {
			break
		}
		freed += c.present[cid].size
		c.bytes -= c.present[cid].size
		delete(c.present, cid)
		drop = append(drop, cid)
	}
	c.mu.Unlock()
	c.remove(drop)
	if len(drop) > 0 {
		c.log.Warn("content: the card is full; deleted content no longer wanted to make room", "content", id, "deleted", len(drop), "freed_bytes", freed)
		c.signal(c.note)
	} else {
		c.log.Error("content: the card is full, and nothing cached can go: every file is wanted", "content", id, "need_bytes", need)
	}
}

// NoteDamaged counts, in Damaged, a file of the node's other than a cached
// one found damaged on the same storage: the node's store, set aside and
// started anew (store.OpenBoltOrSetAside). It is the same failing card.
func (c *Cache) NoteDamaged() {
	c.mu.Lock()
	now := c.cfg.Clock.Now()
	c.damaged = append(recent(c.damaged, now), now)
	c.mu.Unlock()
	c.saveDamage()
}

// Discard drops content id from the cache because its file turned out
// damaged as it played (storage that lost or flipped bits): the file is
// deleted, and fetched again at once if wanted. It counts in Damaged.
func (c *Cache) Discard(id string) {
	c.mu.Lock()
	e, ok := c.present[id]
	if ok {
		// The files go before the entry does: once it is gone the content
		// is fetched again, and a delete after that would take the new
		// copy (the damage record below can be slow on a failing card).
		if err := os.Remove(c.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("content: cannot delete damaged content", "content", id, "err", err)
		}
		os.Remove(c.Path(id) + listSuffix)
		delete(c.present, id)
		delete(c.retry, id)
		if !e.kept {
			c.bytes -= e.size
		}
		c.turn()
		now := c.cfg.Clock.Now()
		c.damaged = append(recent(c.damaged, now), now)
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	c.saveDamage()
	c.log.Error("content: cached file damaged; fetching it again", "content", id)
	c.signal(c.note)
	c.signal(c.wake)
}

// remove deletes evicted files.
func (c *Cache) remove(ids []string) {
	for _, id := range ids {
		os.Remove(c.Path(id) + listSuffix)
		if err := os.Remove(c.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("content: cannot delete evicted content", "content", id, "err", err)
		} else {
			c.log.Info("content: evicted", "content", id)
		}
	}
}

// Missing returns the wanted content that is not cached yet, in need order.
func (c *Cache) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, w := range c.wanted {
		if _, ok := c.present[w.ID]; !ok {
			out = append(out, w.ID)
		}
	}
	return out
}

func (c *Cache) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run downloads missing wanted content, one file at a time in need order,
// until ctx is cancelled.
func (c *Cache) Run(ctx context.Context) error {
	timer := c.cfg.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ref, wait, ok := c.next()
		if ok {
			c.fetchOne(ctx, ref)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if ref, ok := c.nextUnlisted(); ok {
			c.listCached(ctx, ref)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-tc:
		}
	}
}

// next picks the first missing wanted content that is due for an attempt,
// or says how long until the earliest retry (0: nothing to wait for).
func (c *Cache) next() (protocol.ContentRef, time.Duration, bool) {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var wait time.Duration
	for _, w := range c.wanted {
		if _, ok := c.present[w.ID]; ok {
			continue
		}
		rt := c.retry[w.ID]
		if d := rt.next.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		return w.ContentRef, 0, true
	}
	return protocol.ContentRef{}, wait, false
}

func (c *Cache) fetchOne(ctx context.Context, ref protocol.ContentRef) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.mu.Lock()
	c.current = &downloading{id: ref.ID, ctx: fctx, cancel: cancel}
	c.makeWay(c.cfg.Clock.Now()) // for a Want since next picked ref
	c.mu.Unlock()
	err := c.Fetch(fctx, ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = nil
	if err == nil {
		delete(c.retry, ref.ID)
		return
	}
	if ctx.Err() != nil {
		return
	}
	switch cause := context.Cause(fctx); {
	case errors.Is(cause, ErrMakeWay):
		return // no failure: next picks the sooner one, then this again
	case errors.Is(cause, errUnwanted):
		c.endAttempt(ref.ID, errUnwanted, true)
		c.log.Info("content: download stopped, nothing needs it any more", "content", ref.ID)
		return
	}
	i := slices.IndexFunc(c.wanted, func(w Wanted) bool { return w.ID == ref.ID })
	if i < 0 {
		return
	}
	rt := c.retry[ref.ID]
	now := c.cfg.Clock.Now()
	most := c.cfg.BackoffMax
	if need := c.wanted[i].Need; !need.IsZero() && need.Before(now.Add(most)) {
		// Needed before the longest wait would end: tried again sooner.
		most = min(most, c.cfg.BackoffUrgent)
	}
	d := c.backoff(rt.attempts, most)
	rt.attempts++
	rt.next = now.Add(d)
	c.retry[ref.ID] = rt
	c.turn() // a retry later than MakeWayMargin frees the link (AwaitWay)
	c.log.Warn("content: download failed, will retry", "content", ref.ID, "attempt", rt.attempts, "retry_in", d.Round(time.Millisecond), "err", err)
}

// backoff is "full jitter" exponential backoff: a uniform wait between zero
// and a cap that doubles with every failure up to most.
func (c *Cache) backoff(attempts int, most time.Duration) time.Duration {
	ceil := c.cfg.BackoffMin
	for i := 0; i < attempts && ceil < most; i++ {
		ceil *= 2
	}
	ceil = min(ceil, most)
	return time.Duration(c.cfg.Jitter() * float64(ceil))
}

// URL returns where ref is downloaded from.
func (c *Cache) URL(ref protocol.ContentRef) string {
	p := ref.Path
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		// Only a path on the controller is acceptable, never another host.
		p = "/api/v1/content/" + ref.ID + "/audio"
	}
	return strings.TrimSuffix(c.cfg.BaseURL, "/") + p
}

// Fetch makes one attempt to download ref into the cache, resuming a
// partial download. It returns nil once the verified file is in place.
func (c *Cache) Fetch(ctx context.Context, ref protocol.ContentRef) error {
	if !protocol.ValidContentID(ref.ID) {
		return fmt.Errorf("fetch content %q: not a content id", ref.ID)
	}
	if c.Has(ref.ID) {
		return nil
	}
	// Make room first, so the cache does not outgrow its limit while the
	// download runs.
	c.mu.Lock()
	drop := c.evict(max(ref.Size, 0))
	c.mu.Unlock()
	c.remove(drop)
	part := c.fresh(ref.ID) + partSuffix
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	if ref.Size > 0 && have > ref.Size {
		if have, err = restart(f); err != nil {
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
	}
	if tail := have % protocol.ChunkSize; ref.Chunks != "" && tail != 0 && have < ref.Size {
		// Less than a chunk at the end has never been checked, and a power
		// cut can leave it torn (written, never synced): asked for again,
		// so that only bytes checked against the chunk list are kept, and
		// a torn tail is not taken for wrong bytes from the controller.
		have -= tail
		if err := f.Truncate(have); err != nil {
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
		if _, err := f.Seek(have, io.SeekStart); err != nil {
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
	}
	var (
		list    []byte // the chunk list the signed ref names, if the download had it
		checked bool
	)
	if ref.Size <= 0 || have < ref.Size {
		if list, checked, err = c.fetchRest(ctx, ref, f, have); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// The card filled before the cache reached its size
				// (other files on it, a size set above what it holds):
				// what no one wants any more makes room for what is
				// wanted, and the next attempt goes on from here.
				c.makeRoom(ref.ID, ref.Size-have)
			}
			mismatch := errors.Is(err, ErrMismatch)
			if mismatch {
				f.Close()
				os.Remove(part)
			}
			c.attemptEnded(ref.ID, err, mismatch)
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
	}
	if got, err := f.Seek(0, io.SeekEnd); err == nil && ref.Size > 0 && got < ref.Size {
		// An answer that ended cleanly before the content's size (a body
		// without a length, closed early on the way) is a cut link, not
		// wrong bytes: the next attempt asks for the rest.
		err := fmt.Errorf("the answer ended after %d of %d bytes: %w", got, ref.Size, io.ErrUnexpectedEOF)
		c.attemptEnded(ref.ID, err, false)
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	if err := f.Sync(); err != nil {
		c.attemptEnded(ref.ID, err, false)
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	// Every chunk checked against the list the signed ref names is the
	// file the controller named by its id: hashing it again would only
	// cost a board its time.
	if !checked {
		if err := verify(f, ref.ID); err != nil {
			f.Close()
			os.Remove(part)
			c.attemptEnded(ref.ID, err, errors.Is(err, ErrMismatch))
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
	}
	listed := false
	if list != nil {
		// Kept beside the file, so that plays check it as they read
		// (openCached). Written before the file is in place: a file never
		// has a list of other bytes.
		if err := writeWhole(c.fresh(ref.ID)+listSuffix, list); err != nil {
			c.log.Warn("content: cannot keep the chunk list; plays will not check the file", "content", ref.ID, "err", err)
		} else {
			listed = true
		}
	}
	if err := os.Rename(part, c.fresh(ref.ID)); err != nil {
		c.attemptEnded(ref.ID, err, false)
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	now := c.cfg.Clock.Now()
	if err := os.Chtimes(c.fresh(ref.ID), now, now); err != nil {
		c.log.Debug("content: cannot mark use", "content", ref.ID, "err", err)
	}
	syncDir(c.cfg.Dir)
	size, _ := f.Seek(0, io.SeekEnd)
	// Closed before it counts as present: whoever sees it there (a play
	// opening it) finds no download still holding it.
	f.Close()
	c.mu.Lock()
	c.present[ref.ID] = entry{size: size, used: now, listed: listed}
	c.bytes += size
	delete(c.news, ref.ID)
	drop = c.evict(0)
	c.turn()
	c.mu.Unlock()
	c.attemptEnded(ref.ID, nil, true)
	c.remove(drop)
	c.signal(c.note)
	c.log.Info("content: cached", "content", ref.ID)
	return nil
}

// fetchRest downloads the bytes of ref after the have in f. With a chunk
// root it asks for the chunk list in front of them (protocol.ChunkedAudioType),
// checks each chunk as it completes and lets streams read the checked
// bytes; an answer without a list, or with a list that is not the one the
// root names, checks nothing, and the content plays only once the whole
// file is verified. It returns the list, if it had the right one, and
// whether every byte of the file was checked.
func (c *Cache) fetchRest(ctx context.Context, ref protocol.ContentRef, f *os.File, have int64) ([]byte, bool, error) {
	if ref.Chunks == "" || ref.Size <= 0 {
		return nil, false, c.download(ctx, ref, f, have, nil)
	}
	s := c.attempt(ref.ID, ref.Size, time.Duration(ref.DurationMS)*time.Millisecond, have)
	k := &chunkCheck{c: c, s: s, ref: ref, h: sha256.New()}
	err := c.download(ctx, ref, f, have, k)
	return k.list, err == nil && k.list != nil && k.at == ref.Size, err
}

// checkPart checks the whole chunks of the have bytes in a partial file
// (from an earlier attempt, perhaps an earlier run) against list, for
// content of size bytes, and returns the end of the last good one.
func checkPart(f *os.File, list []byte, size, have int64) (int64, error) {
	buf := make([]byte, protocol.ChunkSize)
	good := int64(0)
	for i := 0; ; i++ {
		end := min(good+protocol.ChunkSize, size)
		if end > have || end == good {
			break
		}
		n, err := f.ReadAt(buf[:end-good], good)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, err
		}
		if !protocol.CheckChunk(list, i, buf[:n]) {
			break
		}
		good = end
	}
	return good, nil
}

// chunkCheck checks a download chunk by chunk as its bytes come and tells
// the stream (if any) how far they are checked.
type chunkCheck struct {
	c    *Cache
	s    *stream
	ref  protocol.ContentRef
	list []byte // nil: nothing is checked
	at   int64  // bytes checked: the end of the last good chunk
	got  int64  // bytes of the file so far
	h    hash.Hash
	n    int64 // bytes of the chunk after at hashed so far
}

// begin reads the chunk list from the front of the answer's body, if
// the answer has one (its Content-Type says), and checks the have bytes
// already in f against it: the whole chunks, and the start of the next is
// hashed for the bytes to come. A partial file with a chunk that differs
// is cut after the last good one and the attempt fails, so the next one
// asks from there.
func (k *chunkCheck) begin(contentType string, body io.Reader, f *os.File, have int64) error {
	if k == nil {
		return nil
	}
	k.at, k.got, k.n, k.list = have, have, 0, nil
	k.h.Reset()
	// Without a list nothing is checked as it comes: the content plays
	// once the whole file is verified.
	unchecked := func(why string, attr ...any) error {
		k.c.log.Warn("content: "+why+"; it plays once the whole file is verified", append([]any{"content", k.ref.ID}, attr...)...)
		k.at = 0
		k.c.progress(k.s, have, 0)
		return nil
	}
	if contentType != protocol.ChunkedAudioType {
		return unchecked("answer without a chunk list", "content_type", contentType)
	}
	list, err := protocol.ReadChunkList(body, k.ref)
	if errors.Is(err, protocol.ErrChunkList) {
		return unchecked("wrong chunk list", "err", err)
	} else if err != nil {
		return err
	}
	if have == 0 {
		k.list = list
		k.c.progress(k.s, 0, 0)
		return nil
	}
	good, err := checkPart(f, list, k.ref.Size, have)
	if err != nil {
		return err
	}
	if whole := have - have%protocol.ChunkSize; good < whole {
		if err := f.Truncate(good); err != nil {
			return err
		}
		k.c.progress(k.s, good, good)
		return fmt.Errorf("partial file differs from the chunk list after byte %d; kept that much", good)
	}
	if _, err := io.Copy(k.h, io.NewSectionReader(f, good, have-good)); err != nil {
		return err
	}
	k.list, k.at, k.n = list, good, have-good
	k.c.progress(k.s, have, good)
	return nil
}

// write takes the next bytes of the download; a chunk that differs from
// the list is ErrMismatch. A nil check takes them unchecked.
func (k *chunkCheck) write(p []byte) error {
	if k == nil {
		return nil
	}
	k.got += int64(len(p))
	if k.list != nil {
		for len(p) > 0 {
			chunk := min(protocol.ChunkSize, k.ref.Size-k.at)
			if chunk <= 0 {
				return fmt.Errorf("%w: more than its %d bytes", ErrMismatch, k.ref.Size)
			}
			take := min(int64(len(p)), chunk-k.n)
			k.h.Write(p[:take])
			k.n += take
			p = p[take:]
			if k.n < chunk {
				break
			}
			i := int(k.at / protocol.ChunkSize)
			if !bytes.Equal(k.h.Sum(nil), k.list[i*protocol.ChunkHashSize:(i+1)*protocol.ChunkHashSize]) {
				return fmt.Errorf("%w: bytes %d–%d (chunk %d) differ from the chunk list", ErrMismatch, k.at, k.at+chunk-1, i)
			}
			k.at += chunk
			k.n = 0
			k.h.Reset()
		}
	}
	k.c.progress(k.s, k.got, k.at)
	return nil
}

// download appends the bytes after have to f, passing them to check (if
// any), which tells the stream how far they are checked.
func (c *Cache) download(ctx context.Context, ref protocol.ContentRef, f *os.File, have int64, check *chunkCheck) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	url := c.URL(ref)
	if check != nil {
		url += "?chunks=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.cfg.Username, c.cfg.Secret)
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	// The watchdog cancels the request when nothing arrives for the stall
	// timeout: every byte of the answer sets it again, those of the chunk
	// list in front included (an hour's list is 56 KB, a minute's reading
	// over a weak link). An overall timeout would cut long downloads on
	// slow links.
	watchdog := clock.NewWatchdog(c.cfg.Clock, c.cfg.StallTimeout, func() { cancel(ErrStalled) })
	defer watchdog.Stop()
	// Redirects too stay on the controller (protocol.ErrRedirectAway).
	stay := *c.cfg.Client
	stay.CheckRedirect = protocol.StayOnController(c.cfg.BaseURL)
	resp, err := stay.Do(req)
	if err != nil {
		return stallCause(ctx, err)
	}
	defer resp.Body.Close()
	watchdog.Feed()
	var body io.Reader = watchedBody{resp.Body, watchdog}
	switch resp.StatusCode {
	case http.StatusOK:
		if body, err = wholeAnswer(ref, resp, body, f, have, check != nil); err != nil {
			return err
		}
		if have > 0 {
			// The server ignored the range: take the whole file again.
			if _, err := restart(f); err != nil {
				return err
			}
			have = 0
		}
	case http.StatusPartialContent:
		start, err := rangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != have {
			if _, rerr := restart(f); rerr != nil {
				return rerr
			}
			if check != nil {
				c.progress(check.s, 0, 0)
			}
			return fmt.Errorf("server resumed at %q, asked from byte %d", resp.Header.Get("Content-Range"), have)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// The part file may already hold everything; verify decides.
		return nil
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", req.URL.Redacted(), resp.Status)
	}
	if err := check.begin(resp.Header.Get("Content-Type"), body, f, have); err != nil {
		return stallCause(ctx, err)
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			have += int64(n)
			c.arrived(ref.ID)
			if err := check.write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return stallCause(ctx, rerr)
		}
	}
}

// portalPrefix is how many first bytes of a partial file a 200 answer
// to its Range request must repeat: a WAV header and then some, which no
// captive portal's page begins with.
const portalPrefix = 512

// wholeAnswer checks that a 200 answer to a request for ref from byte
// have is the content whole, before the partial file f is given up for
// it: a captive portal (a 4G provider's, a guest Wi-Fi's) answers any
// request with 200 and its own page. Its length, if it says one, must be
// the content's (with the chunk list in front, if its type says so and
// chunked asked for it), and, answering a Range, its first bytes must be
// those of the partial file when it says no length. It returns the body
// to read, the bytes it read still in front; the hash of the id checks the
// rest.
//
// An answer of the content's exact length is taken without comparing its
// first bytes: a partial file whose start the card damaged would refuse
// the real content for ever through a proxy that ignores ranges.
func wholeAnswer(ref protocol.ContentRef, resp *http.Response, body io.Reader, f *os.File, have int64, chunked bool) (io.Reader, error) {
	ct := resp.Header.Get("Content-Type")
	front := 0 // the chunk list's bytes
	if chunked && ct == protocol.ChunkedAudioType {
		front = protocol.Chunks(ref.Size) * protocol.ChunkHashSize
	}
	want := int64(front) + ref.Size
	if ref.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != want {
		return nil, fmt.Errorf("%w: %s with %d bytes of %q, want %d (a captive portal's page?); the %d bytes downloaded are kept",
			ErrNotContent, resp.Status, resp.ContentLength, ct, want, have)
	}
	if resp.ContentLength < 0 && !servedType(ct) {
		// Refused at its header: read on, a portal's page would spend
		// the link (a thin 4G one) and the time before the hash or the
		// first bytes refused it.
		return nil, fmt.Errorf("%w: %s of %q without a length, where the controller answers with audio/wav or %s (a captive portal's page?); the %d bytes downloaded are kept",
			ErrNotContent, resp.Status, ct, protocol.ChunkedAudioType, have)
	}
	if have == 0 || ref.Size > 0 && resp.ContentLength == want {
		return body, nil
	}
	head := make([]byte, front+int(min(have, portalPrefix)))
	if _, err := io.ReadFull(body, head); err != nil {
		return nil, fmt.Errorf("%w: %s to a request from byte %d ended after its first bytes: %v; the partial file is kept", ErrNotContent, resp.Status, have, err)
	}
	mine := make([]byte, len(head)-front)
	if _, err := f.ReadAt(mine, 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(head[front:], mine) {
		return nil, fmt.Errorf("%w: %s of %q to a request from byte %d does not begin as the %d bytes downloaded (a captive portal's page?); they are kept",
			ErrNotContent, resp.Status, ct, have, have)
	}
	return io.MultiReader(bytes.NewReader(head), body), nil
}

// servedTypes are the media types the controller gives content
// (controller/http: the audio, audio/wav or with its chunk list in front
// protocol.ChunkedAudioType; the chunk list alone, application/octet-stream)
// and the other names of WAV a proxy may give it. A 200 without a length
// must say one of them: nothing else can be checked before its bytes are
// read, and no captive portal sends its page as one.
var servedTypes = []string{"audio/wav", "audio/wave", "audio/x-wav", "audio/vnd.wave", protocol.ChunkedAudioType, "application/octet-stream"}

// servedType reports whether the Content-Type ct is one of servedTypes.
func servedType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && slices.Contains(servedTypes, mt)
}

// watchedBody feeds the watchdog with every byte read from the answer.
type watchedBody struct {
	r io.Reader
	w *clock.Watchdog
}

func (b watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.w.Feed()
	}
	return n, err
}

func stallCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
		return fmt.Errorf("%w: %v", ErrStalled, err)
	}
	return err
}

// restart empties f for a download from zero.
func restart(f *os.File) (int64, error) {
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	return f.Seek(0, io.SeekStart)
}

// rangeStart parses the first byte of a Content-Range "bytes a-b/n".
func rangeStart(v string) (int64, error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, fmt.Errorf("content-range %q", v)
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("content-range %q", v)
	}
	return strconv.ParseInt(a, 10, 64)
}

// verify checks that the whole of f hashes to id.
func verify(f *os.File, id string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return fmt.Errorf("%w: SHA-256 is %s", ErrMismatch, got)
	}
	return nil
}

// syncDir makes a rename durable; failure only risks a re-download.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
