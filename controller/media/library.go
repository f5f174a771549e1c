// Package media turns uploaded audio into the node format (see
// protocol/nodeaudio) and keeps the bytes on disk under their SHA-256.
//
// Layout under Library.Dir:
//
//	content/<id>.wav   node-format audio, id = hex SHA-256 of the file
//	tmp/               uploads and conversions in progress; emptied by Open
//
// A file appears in content/ only complete and synced (written in tmp/,
// then renamed), so a crash leaves at most leftovers in tmp/. Ingest holds
// the file it returns until its caller releases it (Release); a file that
// an ingest stored new and that no caller kept goes with the last release,
// so audio of a refused request is not left in content/.
package media

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Defaults for Library limits.
const (
	DefaultMaxUploadBytes = 200 << 20
	DefaultMaxDuration    = 2 * time.Hour
)

// Content.Source.Format of uploads.
const (
	SourceWAV      = "wav/pcm"
	SourceWAVFloat = "wav/float"
	SourceMP3      = "mp3"
)

// Library is the content store on disk; it implements loaxa.MediaService.
// Its methods are safe for concurrent use once Open has returned.
type Library struct {
	Dir            string
	MaxUploadBytes int64         // larger uploads are ETooLarge; 0 means the default
	MaxDuration    time.Duration // longer audio is ETooLarge; 0 means the default
	Logger         *slog.Logger

	// storeMu orders the creation and removal of files in content/ with
	// the holds on them.
	storeMu sync.Mutex
	holds   map[string]*hold // content id → the ingests of it not yet released

	mu         sync.Mutex
	open       map[string]*sharedAudio // content id → its file while some reader has it open
	chunks     map[string][]byte       // content id → its chunk list, made once
	chunkBytes int                     // the lists' bytes, at most maxChunkCache
}

// hold is what the ingests of one content id that are not yet released
// did: how many there are, whether one of them stored the file new, and
// whether a released one was kept.
type hold struct {
	n       int
	created bool
	kept    bool
}

// maxChunkCache bounds the chunk lists kept in memory: a list is 0.2 % of
// its audio (56 KB for an hour), so 4 MiB keeps some 70 hours of audio's.
// What falls out is hashed again from the file when asked for.
const maxChunkCache = 4 << 20

// sharedAudio is one open file of a content's audio, shared by every
// reader at once: an alert's message fetched by a province's 10,000 nodes
// together is one open file at the controller, not 10,000 (each a file
// descriptor, next to each node's connection, against the service's
// LimitNOFILE). Readers read at their own offsets (ReadAt).
type sharedAudio struct {
	f    *os.File
	size int64
	refs int
}

// audioReader is one reader of a sharedAudio.
type audioReader struct {
	*io.SectionReader
	l      *Library
	id     string
	s      *sharedAudio
	closed bool
}

// Close releases the reader; the file closes with its last reader.
func (r *audioReader) Close() error {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.s.refs--
	if r.s.refs > 0 {
		return nil
	}
	if r.l.open[r.id] == r.s {
		delete(r.l.open, r.id)
	}
	return r.s.f.Close()
}

// openAudioFiles says how many audio files are open (tests).
func (l *Library) openAudioFiles() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

var _ loaxa.MediaService = (*Library)(nil)

// NewLibrary returns a library in dir with default limits; call Open.
func NewLibrary(dir string) *Library {
	return &Library{
		Dir:            dir,
		MaxUploadBytes: DefaultMaxUploadBytes,
		MaxDuration:    DefaultMaxDuration,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// Open creates the directories and removes what an interrupted ingest left
// in tmp/.
func (l *Library) Open() error {
	for _, d := range []string{l.contentDir(), l.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("open media library: %w", err)
		}
	}
	entries, err := os.ReadDir(l.tmpDir())
	if err != nil {
		return fmt.Errorf("open media library: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(l.tmpDir(), e.Name())); err != nil {
			return fmt.Errorf("open media library: remove leftover: %w", err)
		}
	}
	if len(entries) > 0 {
		l.logger().Info("removed leftovers of interrupted ingests", "dir", l.tmpDir(), "count", len(entries))
	}
	return nil
}

// Ingest reads a WAV or MP3 upload, converts it to the node format at the
// common loudness (see process.go), optionally without the silence at its
// ends, and stores it under its SHA-256; identical audio is stored once.
// It returns the content with ID, Format, Size, DurationMS, Source,
// Loudness, Trim and Waveform set; the caller fills in the rest and calls
// Release. Bad input is EInvalid, EUnsupported or ETooLarge with a message
// that names the problem, and nothing is kept.
func (l *Library) Ingest(ctx context.Context, r io.Reader, opt loaxa.IngestOptions) (*loaxa.Content, error) {
	filename := opt.Filename
	up, err := os.CreateTemp(l.tmpDir(), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", filename, err)
	}
	defer removeTemp(up)

	limit := l.maxUpload()
	size, err := io.Copy(up, io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return nil, fmt.Errorf("ingest %q: receive upload: %w", filename, err)
	}
	if size > limit {
		return nil, loaxa.Errorf(loaxa.ETooLarge, "%s is larger than the %s upload limit", displayName(filename), formatBytes(limit))
	}
	src, err := probe(up, size, filename)
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", filename, err)
	}
	length := time.Duration(src.frames) * time.Second / time.Duration(src.rate)
	if maxLen := l.maxDuration(); length > maxLen {
		return nil, loaxa.Errorf(loaxa.ETooLarge, "%s plays for %s, longer than the %s limit; split it into shorter parts",
			displayName(filename), formatDuration(length), formatDuration(maxLen))
	}

	c, err := l.store(ctx, up, src, opt)
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", filename, err)
	}
	c.Source.Filename = filename
	c.Source.Size = size
	l.logger().Info("content ingested", "id", c.ID, "filename", filename, "duration_ms", c.DurationMS,
		"format", c.Source.Format, "sample_rate", c.Source.SampleRate, "channels", c.Source.Channels,
		"input_lufs", c.Loudness.InputLUFS, "gain_db", c.Loudness.GainDB)
	return c, nil
}

// store converts the probed upload into a temp file, hashing as it writes,
// and moves it into content/ under its hash.
func (l *Library) store(ctx context.Context, up *os.File, src *upload, opt loaxa.IngestOptions) (*loaxa.Content, error) {
	out, err := os.CreateTemp(l.tmpDir(), "convert-*.wav")
	if err != nil {
		return nil, err
	}
	moved := false
	defer func() {
		if !moved {
			removeTemp(out)
		}
	}()

	h := sha256.New()
	var chunks protocol.ChunkHasher
	w := bufio.NewWriterSize(io.MultiWriter(out, h, &chunks), 64<<10)
	c, err := l.process(ctx, up, src, opt, w)
	if err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write node audio: %w", err)
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("sync node audio: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("close node audio: %w", err)
	}

	id := hex.EncodeToString(h.Sum(nil))
	created, err := l.place(id, out.Name())
	if err != nil {
		return nil, err
	}
	moved = created
	if created {
		if err := syncDir(l.contentDir()); err != nil {
			if rerr := l.Release(ctx, id, false); rerr != nil {
				l.logger().Warn("could not remove unsynced content", "id", id, "err", rerr)
			}
			return nil, fmt.Errorf("store content %s: %w", id, err)
		}
	}
	c.ID = id
	list := chunks.List()
	c.Chunks = protocol.ChunkRoot(list)
	l.keepChunks(id, list)
	return c, nil
}

// place moves the converted file at tmp into content/ as id, unless
// identical audio is there already, and holds id for the caller. It says
// whether it stored the file.
func (l *Library) place(id, tmp string) (created bool, err error) {
	l.storeMu.Lock()
	defer l.storeMu.Unlock()
	final := l.path(id)
	if _, err := os.Stat(final); err == nil {
		// Identical audio is stored once; the temp file goes.
		l.logger().Debug("content already stored", "id", id)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("check %s: %w", final, err)
	} else {
		if err := os.Rename(tmp, final); err != nil {
			return false, fmt.Errorf("store content %s: %w", id, err)
		}
		created = true
	}
	h := l.holds[id]
	if h == nil {
		if l.holds == nil {
			l.holds = make(map[string]*hold)
		}
		h = &hold{}
		l.holds[id] = h
	}
	h.n++
	h.created = h.created || created
	return created, nil
}

// Release ends the hold an Ingest put on content id's audio; kept says
// whether the caller's content record names it. Once the last ingest of
// id is released, audio that one of them stored new and none kept is
// deleted: a request refused after its audio was ingested leaves nothing
// behind. Audio that was in the library before is never deleted.
func (l *Library) Release(ctx context.Context, id string, kept bool) error {
	l.storeMu.Lock()
	defer l.storeMu.Unlock()
	h := l.holds[id]
	if h == nil {
		return fmt.Errorf("release content %s: it is not held by an ingest", id)
	}
	h.n--
	h.kept = h.kept || kept
	if h.n > 0 {
		return nil
	}
	delete(l.holds, id)
	if !h.created || h.kept {
		return nil
	}
	l.mu.Lock()
	if list, ok := l.chunks[id]; ok {
		delete(l.chunks, id)
		l.chunkBytes -= len(list)
	}
	l.mu.Unlock()
	if err := os.Remove(l.path(id)); err != nil {
		return fmt.Errorf("release content %s: %w", id, err)
	}
	l.logger().Info("removed audio no content record names", "id", id)
	return nil
}

// ChunkList returns the chunk list of content id's audio, made from the
// file the first time and kept in memory (up to maxChunkCache): a
// province's nodes ask for an alert's list together. ENotFound if the
// library does not hold the audio.
func (l *Library) ChunkList(ctx context.Context, id string) ([]byte, error) {
	l.mu.Lock()
	list, ok := l.chunks[id]
	l.mu.Unlock()
	if ok {
		return list, nil
	}
	f, err := l.OpenAudio(ctx, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list, err = protocol.ChunkList(ctxReader{ctx, f})
	if err != nil {
		return nil, fmt.Errorf("chunk list of %s: %w", id, err)
	}
	l.keepChunks(id, list)
	return list, nil
}

// keepChunks keeps id's chunk list, letting others go to stay within
// maxChunkCache.
func (l *Library) keepChunks(id string, list []byte) {
	if len(list) > maxChunkCache {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.chunks[id]; ok {
		return
	}
	if l.chunks == nil {
		l.chunks = make(map[string][]byte)
	}
	for k, v := range l.chunks {
		if l.chunkBytes+len(list) <= maxChunkCache {
			break
		}
		delete(l.chunks, k)
		l.chunkBytes -= len(v)
	}
	l.chunks[id] = list
	l.chunkBytes += len(list)
}

// OpenAudio opens the node-format bytes of content id; ENotFound if the
// library does not hold them.
func (l *Library) OpenAudio(ctx context.Context, id string) (io.ReadSeekCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !protocol.ValidContentID(id) {
		return nil, loaxa.Errorf(loaxa.EInvalid, "content id %q is not a lower-case hex SHA-256", id)
	}
	if r := l.share(id, nil, 0); r != nil {
		return r, nil
	}
	f, err := os.Open(l.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, loaxa.Errorf(loaxa.ENotFound, "no audio stored for content %s", id)
	} else if err != nil {
		return nil, fmt.Errorf("open audio %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audio %s: %w", id, err)
	}
	return l.share(id, f, st.Size()), nil
}

// share returns a reader of the shared file of id: the one open already
// (closing f, opened meanwhile, if given), or f of size if none is and f
// is given; nil if none is open and no f is given. Content is named by
// its bytes, so a file open already is the same audio.
func (l *Library) share(id string, f *os.File, size int64) io.ReadSeekCloser {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.open[id]
	switch {
	case s != nil && f != nil:
		f.Close()
	case s == nil && f == nil:
		return nil
	case s == nil:
		s = &sharedAudio{f: f, size: size}
		if l.open == nil {
			l.open = make(map[string]*sharedAudio)
		}
		l.open[id] = s
	}
	s.refs++
	return &audioReader{SectionReader: io.NewSectionReader(s.f, 0, s.size), l: l, id: id, s: s}
}

// TempDir is where work in progress goes; Open empties it, so other parts
// (the speech engine) may stage files there too.
func (l *Library) TempDir() string { return l.tmpDir() }

func (l *Library) contentDir() string    { return filepath.Join(l.Dir, "content") }
func (l *Library) tmpDir() string        { return filepath.Join(l.Dir, "tmp") }
func (l *Library) path(id string) string { return filepath.Join(l.contentDir(), id+".wav") }

func (l *Library) maxUpload() int64 {
	if l.MaxUploadBytes > 0 {
		return l.MaxUploadBytes
	}
	return DefaultMaxUploadBytes
}

func (l *Library) maxDuration() time.Duration {
	if l.MaxDuration > 0 {
		return l.MaxDuration
	}
	return DefaultMaxDuration
}

func (l *Library) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// removeTemp closes and deletes a temp file; errors do not matter here
// because Open sweeps tmp/ anyway.
func removeTemp(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops an upload when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// formatBytes writes a limit the way people say it.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// formatDuration writes a length as 1h30m, 2h, 45m10s, 3s.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	out := ""
	if h > 0 {
		out += fmt.Sprintf("%dh", h)
	}
	if m > 0 {
		out += fmt.Sprintf("%dm", m)
	}
	if s > 0 || out == "" {
		out += fmt.Sprintf("%ds", s)
	}
	return out
}
