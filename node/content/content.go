// Package content keeps the node's audio cache and fills it from the
// controller.
//
// Files live in one directory, named by content id (the hex SHA-256 of the
// bytes). A download goes to <id>.part, resumes with an HTTP Range request
// after a cut link, and is renamed into place only once its SHA-256 equals
// the id, so a file named by an id is always exactly that content. Failed
// downloads are retried with exponential backoff and full jitter, so a
// fleet that comes back online at once does not hit the controller in step.
package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Errors of a download attempt.
var (
	// ErrMismatch: the downloaded bytes do not hash to the content id; the
	// partial file is deleted and the next attempt starts from zero.
	ErrMismatch = errors.New("content does not match its id")
	// ErrStalled: no bytes arrived for Config.StallTimeout.
	ErrStalled = errors.New("download stalled")
)

// partSuffix marks a download in progress.
const partSuffix = ".part"

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
	Clock            clock.Clock   // times backoff waits; default clock.Real
	Logger           *slog.Logger  // default: discard
	BackoffMin       time.Duration // first retry cap; default 2s
	BackoffMax       time.Duration // retry cap; default 5m
	// StallTimeout aborts a download that receives nothing for this long;
	// default 60s. A slow 3G link is fine, a dead one is not.
	StallTimeout time.Duration
	// Jitter returns a number in [0, 1); default math/rand/v2.Float64.
	Jitter func() float64
}

// Cache is the content cache and its fetcher. Want names what the current
// desired state needs; Run downloads whatever of that is missing.
type Cache struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	note chan struct{}

	mu      sync.Mutex
	present map[string]bool
	wanted  []protocol.ContentRef
	retry   map[string]retry
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
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = time.Minute
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("content cache: %w", err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("content cache: %w", err)
	}
	c := &Cache{
		cfg:     cfg,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		note:    make(chan struct{}, 1),
		present: make(map[string]bool),
		retry:   make(map[string]retry),
	}
	for _, e := range entries {
		if e.Type().IsRegular() && protocol.ValidContentID(e.Name()) {
			c.present[e.Name()] = true
		}
	}
	return c, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.cfg.Dir }

// Path returns the file name of content id.
func (c *Cache) Path(id string) string { return filepath.Join(c.cfg.Dir, id) }

// Has reports whether content id is cached and verified.
func (c *Cache) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.present[id]
}

// Open opens cached content id for reading.
func (c *Cache) Open(id string) (*os.File, error) {
	if !protocol.ValidContentID(id) {
		return nil, fmt.Errorf("open content %q: not a content id", id)
	}
	f, err := os.Open(c.Path(id))
	if err != nil {
		return nil, fmt.Errorf("open content %s: %w", id, err)
	}
	return f, nil
}

// Changed signals (coalesced) that the set of missing content changed.
func (c *Cache) Changed() <-chan struct{} { return c.note }

// Want replaces the content the node needs, in the order it is needed, and
// deletes cached files and partial downloads nothing needs any more.
func (c *Cache) Want(refs []protocol.ContentRef) {
	keep := make(map[string]bool, len(refs))
	var valid []protocol.ContentRef
	for _, r := range refs {
		if protocol.ValidContentID(r.ID) && !keep[r.ID] {
			keep[r.ID] = true
			valid = append(valid, r)
		}
	}
	c.mu.Lock()
	c.wanted = valid
	for id := range c.retry {
		if !keep[id] {
			delete(c.retry, id)
		}
	}
	var drop []string
	for id := range c.present {
		if !keep[id] {
			delete(c.present, id)
			drop = append(drop, id)
		}
	}
	c.mu.Unlock()
	for _, id := range drop {
		if err := os.Remove(c.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("content: cannot delete unused content", "content", id, "err", err)
		}
	}
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

// Missing returns the wanted content that is not cached yet, in need order.
func (c *Cache) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.wanted {
		if !c.present[r.ID] {
			out = append(out, r.ID)
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
	for _, r := range c.wanted {
		if c.present[r.ID] {
			continue
		}
		rt := c.retry[r.ID]
		if d := rt.next.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		return r, 0, true
	}
	return protocol.ContentRef{}, wait, false
}

func (c *Cache) fetchOne(ctx context.Context, ref protocol.ContentRef) {
	err := c.Fetch(ctx, ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		delete(c.retry, ref.ID)
		return
	}
	if ctx.Err() != nil {
		return
	}
	if !slices.ContainsFunc(c.wanted, func(r protocol.ContentRef) bool { return r.ID == ref.ID }) {
		return
	}
	rt := c.retry[ref.ID]
	d := c.backoff(rt.attempts)
	rt.attempts++
	rt.next = c.cfg.Clock.Now().Add(d)
	c.retry[ref.ID] = rt
	c.log.Warn("content: download failed, will retry", "content", ref.ID, "attempt", rt.attempts, "retry_in", d.Round(time.Millisecond), "err", err)
}

// backoff is "full jitter" exponential backoff: a uniform wait between zero
// and a cap that doubles with every failure up to BackoffMax.
func (c *Cache) backoff(attempts int) time.Duration {
	ceil := c.cfg.BackoffMin
	for i := 0; i < attempts && ceil < c.cfg.BackoffMax; i++ {
		ceil *= 2
	}
	ceil = min(ceil, c.cfg.BackoffMax)
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
	part := c.Path(ref.ID) + partSuffix
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
	if ref.Size <= 0 || have < ref.Size {
		if err := c.download(ctx, ref, f, have); err != nil {
			return fmt.Errorf("fetch content %s: %w", ref.ID, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	if err := verify(f, ref.ID); err != nil {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	if err := os.Rename(part, c.Path(ref.ID)); err != nil {
		return fmt.Errorf("fetch content %s: %w", ref.ID, err)
	}
	syncDir(c.cfg.Dir)
	c.mu.Lock()
	c.present[ref.ID] = true
	c.mu.Unlock()
	c.signal(c.note)
	c.log.Info("content: cached", "content", ref.ID)
	return nil
}

// download appends the bytes after have to f.
func (c *Cache) download(ctx context.Context, ref protocol.ContentRef, f *os.File, have int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(ref), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.cfg.Username, c.cfg.Secret)
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	// The watchdog cancels the request when nothing arrives for a while;
	// an overall timeout would cut long downloads on slow links.
	watchdog := time.AfterFunc(c.cfg.StallTimeout, func() { cancel(ErrStalled) })
	defer watchdog.Stop()
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return stallCause(ctx, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if have > 0 {
			// The server ignored the range: take the whole file again.
			if _, err := restart(f); err != nil {
				return err
			}
		}
	case http.StatusPartialContent:
		start, err := rangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != have {
			if _, rerr := restart(f); rerr != nil {
				return rerr
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
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			watchdog.Reset(c.cfg.StallTimeout)
			if _, err := f.Write(buf[:n]); err != nil {
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
