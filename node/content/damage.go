package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"loaxa.vn/protocol"
)

// DamageWindow is how far back Damaged counts: a board whose storage
// damaged a cached file within it is reported as such (the controller's
// storage-damaged alarm), and stops being so a day after the last one, or
// at once when its card is changed (the record is on it).
const DamageWindow = 24 * time.Hour

// damageFile records when cached files were found damaged, one RFC 3339
// time a line, in the cache directory: a failing card reboots the board
// too, and the count must survive that. Its name is no content id, so the
// index skips it.
const damageFile = ".damaged"

// Damaged returns how many cached files were found damaged (verified when
// stored, changed since: storage that loses or flips bits) within
// DamageWindow. One is already a sign of a failing card: files are checked
// when they are written, and a healthy card keeps what it was given.
func (c *Cache) Damaged() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.damaged = recent(c.damaged, c.cfg.Clock.Now())
	return len(c.damaged)
}

// saveDamage writes the damage record as it is now. It runs outside c.mu:
// the card it writes to is failing and may take its time, and plays must
// not wait for it; saveMu keeps two writes in order.
func (c *Cache) saveDamage() {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	ts := slices.Clone(c.damaged)
	c.mu.Unlock()
	if err := writeDamage(c.cfg.Dir, ts); err != nil {
		c.log.Warn("content: cannot record a damaged file", "err", err)
	}
}

// recent returns the times of ts within DamageWindow before now, reusing
// its array.
func recent(ts []time.Time, now time.Time) []time.Time {
	return slices.DeleteFunc(ts, func(t time.Time) bool { return now.Sub(t) >= DamageWindow })
}

// readDamage reads the damage record of dir; a missing record is none,
// and lines that do not parse are skipped (the card that damages files
// may damage this one too: losing a count is better than failing to
// start).
func readDamage(dir string) ([]time.Time, error) {
	b, err := os.ReadFile(filepath.Join(dir, damageFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read damage record: %w", err)
	}
	var out []time.Time
	for line := range bytes.Lines(b) {
		if t, err := time.Parse(time.RFC3339, string(bytes.TrimSpace(line))); err == nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// writeDamage replaces the damage record of dir with ts.
func writeDamage(dir string, ts []time.Time) error {
	var b bytes.Buffer
	for _, t := range ts {
		b.WriteString(t.UTC().Format(time.RFC3339))
		b.WriteByte('\n')
	}
	if err := writeWhole(filepath.Join(dir, damageFile), b.Bytes()); err != nil {
		return fmt.Errorf("write damage record: %w", err)
	}
	return nil
}

// writeWhole replaces the file name with b, whole or not at all: written
// beside it (tmpSuffix), synced, then renamed into place. A power cut in
// the middle of writing leaves the old file, or none, and a leftover Open
// deletes; never a file of the right size whose bytes never came (which,
// for a chunk list, would make plays take a good file for a damaged one).
func writeWhole(name string, b []byte) error {
	tmp := name + tmpSuffix
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// nextUnlisted picks a wanted file cached without its chunk list whose
// ref names the list's root, not tried since the node started.
func (c *Cache) nextUnlisted() (protocol.ContentRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.wanted {
		if e, ok := c.present[w.ID]; ok && !e.listed && w.Chunks != "" && !c.listTried[w.ID] {
			return w.ContentRef, true
		}
	}
	return protocol.ContentRef{}, false
}

// listCached makes the chunk list of a file cached without one (by an
// earlier build, or from a ref without a root) from the file itself, now
// that its signed ref names the root. The same root means the bytes
// verified when the file was stored, and from then on a play checks the
// file a chunk at a time as it reads; another root means the board's
// storage has changed them since (or cut the file short): the file is
// discarded (Damaged) and fetched again, before a play sounds it. Run
// lists files only while no download is due, and stops hashing when one
// is: the file is listed on a later pass.
func (c *Cache) listCached(ctx context.Context, ref protocol.ContentRef) {
	c.mu.Lock()
	c.listTried[ref.ID] = true
	c.mu.Unlock()
	f, err := os.Open(c.Path(ref.ID))
	if err != nil {
		c.log.Warn("content: cannot list a cached file", "content", ref.ID, "err", err)
		return
	}
	defer f.Close()
	var h protocol.ChunkHasher
	buf := make([]byte, protocol.ChunkSize)
	for {
		if _, _, due := c.next(); due || ctx.Err() != nil { // the download goes first
			c.mu.Lock()
			delete(c.listTried, ref.ID)
			c.mu.Unlock()
			return
		}
		n, err := io.ReadFull(f, buf)
		h.Write(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			c.log.Warn("content: cannot list a cached file", "content", ref.ID, "err", err)
			return
		}
	}
	list := h.List()
	if err := protocol.CheckChunkList(ref, list); err != nil {
		c.log.Error("content: cached file differs from its signed chunk root", "content", ref.ID, "err", err)
		c.Discard(ref.ID)
		return
	}
	if err := writeWhole(c.Path(ref.ID)+listSuffix, list); err != nil {
		c.log.Warn("content: cannot keep the chunk list of a cached file", "content", ref.ID, "err", err)
		return
	}
	c.mu.Lock()
	if e, ok := c.present[ref.ID]; ok {
		e.listed = true
		c.present[ref.ID] = e
	}
	c.mu.Unlock()
	c.log.Info("content: cached file listed", "content", ref.ID)
}
