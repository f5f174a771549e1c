// Package backup writes and restores the controller's backups: one
// tar.gz archive holding the store file as of one read transaction and
// every content file the store refers to, with a manifest last.
//
// Layout of an archive:
//
//	loaxa.db              the bbolt store, as of the snapshot
//	content/<id>.wav      each content file; <id> is the SHA-256 of its bytes
//	loaxa-backup.json     Manifest: format, time, version, the store's
//	                      SHA-256 and size, the content ids
//
// The manifest comes last so that it can carry the store's checksum, and so
// that a truncated archive (a backup cut off mid-stream) has none and is
// refused. Content is content-addressed and never changes once written, and
// a content file is written before the record that names it, so copying the
// files after the store's transaction has ended still gives a consistent
// pair.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
)

// Names inside an archive and in the data directory.
const (
	StoreFile    = "loaxa.db"
	ManifestFile = "loaxa-backup.json"
	contentDir   = "content"
	contentExt   = ".wav"
	// Format is the archive layout this package writes and reads.
	Format = 1
)

// Manifest describes an archive; it is its last member.
type Manifest struct {
	Format            int       `json:"format"`
	CreatedAt         time.Time `json:"created_at"`
	ControllerVersion string    `json:"controller_version"`
	StoreSize         int64     `json:"store_size"`
	StoreSHA256       string    `json:"store_sha256"`
	Content           []string  `json:"content"`
}

// Source is what Write copies.
type Source struct {
	// Snapshot runs fn in one read transaction of the store (bolt.DB.Snapshot).
	Snapshot func(ctx context.Context, fn func(loaxa.Snapshot) error) error
	// DataDir holds content/<id>.wav.
	DataDir string
	// Version is the controller's version, recorded in the manifest.
	Version string
	// Now stamps the manifest.
	Now func() time.Time
}

// Write writes a backup archive of src to w while the controller runs.
func Write(ctx context.Context, w io.Writer, src Source) (*Manifest, error) {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	m := &Manifest{Format: Format, CreatedAt: src.Now().UTC(), ControllerVersion: src.Version}
	err := src.Snapshot(ctx, func(s loaxa.Snapshot) error {
		m.StoreSize = s.Size()
		m.Content = slices.Clone(s.ContentIDs())
		if err := tw.WriteHeader(header(StoreFile, m.StoreSize, m.CreatedAt)); err != nil {
			return err
		}
		h := sha256.New()
		n, err := s.WriteTo(io.MultiWriter(tw, h))
		if err != nil {
			return fmt.Errorf("write store: %w", err)
		}
		if n != m.StoreSize {
			return fmt.Errorf("write store: wrote %d bytes of %d", n, m.StoreSize)
		}
		m.StoreSHA256 = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	for _, id := range m.Content {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if err := copyContent(tw, src.DataDir, id); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := tw.WriteHeader(header(ManifestFile, int64(len(raw)), m.CreatedAt)); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(raw); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

func copyContent(tw *tar.Writer, dataDir, id string) error {
	f, err := os.Open(filepath.Join(dataDir, contentDir, id+contentExt))
	if err != nil {
		return fmt.Errorf("content %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("content %s: %w", id, err)
	}
	if err := tw.WriteHeader(header(contentDir+"/"+id+contentExt, fi.Size(), fi.ModTime())); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("content %s: %w", id, err)
	}
	return nil
}

func header(name string, size int64, mod time.Time) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: mod.UTC().Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
}

var contentName = regexp.MustCompile(`^content/([0-9a-f]{64})\.wav$`)

// read walks an archive, checking every member against its name and the
// manifest, and hands each file to put (which may be nil: only check). It
// returns the manifest.
func read(ctx context.Context, r io.Reader, put func(name string, r io.Reader) error) (*Manifest, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a loaxa backup (gzip): %w", err)
	}
	tr := tar.NewReader(zr)
	var (
		m         *Manifest
		storeSum  string
		storeSize int64 = -1
		content         = map[string]bool{}
	)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("backup archive is damaged or cut short: %w", err)
		}
		if m != nil {
			return nil, fmt.Errorf("backup archive has %s after its manifest", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("backup archive member %s: want a regular file", h.Name)
		}
		if sparse(h) {
			// A sparse member reads as its whole size of zeros from a
			// few bytes: 169 bytes of archive made 100 GB of store file.
			return nil, fmt.Errorf("backup archive member %s is a sparse file of %d bytes: it was not written by loaxa backup", h.Name, h.Size)
		}
		hash := sha256.New()
		body := io.TeeReader(tr, hash)
		switch sub := contentName.FindStringSubmatch(h.Name); {
		case h.Name == StoreFile:
			if storeSize >= 0 {
				return nil, fmt.Errorf("backup archive has two %s", StoreFile)
			}
			if err := store(put, h.Name, body); err != nil {
				return nil, err
			}
			storeSum, storeSize = hex.EncodeToString(hash.Sum(nil)), h.Size
		case sub != nil:
			if content[sub[1]] {
				// Write never makes one; Restore could not put it in
				// place, so Check must not pass it either.
				return nil, fmt.Errorf("backup archive has %s twice: it was not written by loaxa backup", h.Name)
			}
			if err := store(put, h.Name, body); err != nil {
				return nil, err
			}
			if got := hex.EncodeToString(hash.Sum(nil)); got != sub[1] {
				return nil, fmt.Errorf("backup archive member %s is damaged: its SHA-256 is %s", h.Name, got)
			}
			content[sub[1]] = true
		case h.Name == ManifestFile:
			m = new(Manifest)
			if err := json.NewDecoder(io.LimitReader(tr, 64<<20)).Decode(m); err != nil {
				return nil, fmt.Errorf("backup manifest: %w", err)
			}
		default:
			return nil, fmt.Errorf("backup archive has an unexpected member %q", h.Name)
		}
	}
	// Reading to EOF checked gzip's CRC and length.
	switch {
	case m == nil:
		return nil, fmt.Errorf("backup archive has no %s: it was cut short or is not a loaxa backup", ManifestFile)
	case m.Format != Format:
		return nil, fmt.Errorf("backup format %d: this controller reads format %d", m.Format, Format)
	case storeSize < 0:
		return nil, fmt.Errorf("backup archive has no %s", StoreFile)
	case storeSum != m.StoreSHA256 || storeSize != m.StoreSize:
		return nil, fmt.Errorf("backup store %s does not match the manifest (SHA-256 %s, want %s)", StoreFile, storeSum, m.StoreSHA256)
	}
	for _, id := range m.Content {
		if !content[id] {
			return nil, fmt.Errorf("backup archive lacks content %s named in its manifest", id)
		}
	}
	return m, nil
}

// sparse reports whether h is a GNU sparse file in PAX records, which
// archive/tar reads as a regular file whose holes are zeros. Write never
// makes one.
func sparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func store(put func(string, io.Reader) error, name string, r io.Reader) error {
	if put == nil {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return put(name, r)
}

// Check reads a whole archive and verifies it without writing anything.
func Check(ctx context.Context, r io.Reader) (*Manifest, error) {
	return read(ctx, r, nil)
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Force replaces a store already in the data directory; the old one is
	// kept beside it as loaxa.db.before-restore-<time>.
	Force bool
	// Verify checks the restored store file and returns the content it
	// refers to (bolt.VerifyFile).
	Verify func(path string) ([]string, error)
	// Now names the kept store.
	Now func() time.Time
}

// ErrStoreExists is returned by Restore into a data directory that has a
// store, without RestoreOptions.Force.
var ErrStoreExists = errors.New("the data directory already holds a store")

// sameContent reports whether the file at path holds content id: its
// SHA-256 is the id.
func sameContent(path, id string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == id
}

// Restore unpacks an archive into dataDir. The controller must be stopped:
// Restore takes the store's file lock. Nothing is put in place until the
// whole archive has been read and verified; the store file is renamed in
// last, in one step.
func Restore(ctx context.Context, r io.Reader, dataDir string, opt RestoreOptions) (m *Manifest, err error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	// A refused restore leaves the data directory as it found it: what it
	// created (the directories up to content/, content files that were
	// missing) goes again, deepest first; nothing that was there before
	// is removed.
	var created []string
	defer func() {
		if err == nil {
			return
		}
		for _, path := range slices.Backward(created) {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("restore: remove %s it created: %w", path, rerr))
			}
		}
	}()
	for dir := filepath.Join(dataDir, contentDir); ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = slices.Insert(created, 0, dir)
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if err := os.MkdirAll(filepath.Join(dataDir, contentDir), 0o750); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// Run as root into a service's data directory, what is written must
	// be the service user's, or the controller cannot open its store.
	chown, err := ownerOf(dataDir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := chown(filepath.Join(dataDir, contentDir)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	target := filepath.Join(dataDir, StoreFile)
	unlock, exists, err := lockStore(target)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	if exists && !opt.Force {
		return nil, fmt.Errorf("restore into %s: %w; pass --force to replace it (the old store is kept beside it)", dataDir, ErrStoreExists)
	}

	stage, err := os.MkdirTemp(dataDir, "restore-")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := os.Mkdir(filepath.Join(stage, contentDir), 0o750); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	m, err = read(ctx, r, func(name string, r io.Reader) error {
		path := filepath.Join(stage, filepath.FromSlash(name))
		if err := writeFile(path, r); err != nil {
			return err
		}
		return chown(path)
	})
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if opt.Verify != nil {
		ids, err := opt.Verify(filepath.Join(stage, StoreFile))
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		for _, id := range ids {
			if !slices.Contains(m.Content, id) {
				return nil, fmt.Errorf("restore: the store refers to content %s that the archive lacks", id)
			}
		}
	}

	for _, id := range m.Content {
		name := filepath.Join(contentDir, id+contentExt)
		dst := filepath.Join(dataDir, name)
		if sameContent(dst, id) {
			continue // content-addressed: the same bytes are there
		}
		_, lerr := os.Lstat(dst)
		missing := errors.Is(lerr, fs.ErrNotExist)
		// Missing, or damaged (a failing disk is why one restores): the
		// archive's checked copy takes its place.
		if err := os.Rename(filepath.Join(stage, name), dst); err != nil {
			return nil, fmt.Errorf("restore content %s: %w", id, err)
		}
		if missing {
			created = append(created, dst)
		}
	}
	if err := syncDir(filepath.Join(dataDir, contentDir)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	kept := ""
	if exists {
		kept = target + ".before-restore-" + opt.Now().UTC().Format("20060102T150405Z")
		// A second restore within the same second would replace the
		// first one's kept store, the original: it gets a name of its own.
		for i := 2; ; i++ {
			if _, err := os.Lstat(kept); errors.Is(err, os.ErrNotExist) {
				break
			}
			kept = fmt.Sprintf("%s.before-restore-%s-%d", target, opt.Now().UTC().Format("20060102T150405Z"), i)
		}
		if err := os.Rename(target, kept); err != nil {
			return nil, fmt.Errorf("restore: keep the old store: %w", err)
		}
	}
	if err := os.Rename(filepath.Join(stage, StoreFile), target); err != nil {
		err = fmt.Errorf("restore: %w", err)
		if kept != "" {
			if rerr := os.Rename(kept, target); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore: put the old store back from %s: %w", kept, rerr))
			}
		}
		return nil, err
	}
	// The restored store is in place and names the content moved in: from
	// here a failure is reported, and nothing is taken back.
	created = nil
	if err := syncDir(dataDir); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return m, nil
}

// lockStore takes the exclusive lock bbolt takes on the store file, so
// that a running controller makes Restore fail rather than pull its store
// from under it.
func lockStore(path string) (unlock func(), exists bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if inUse, err := tryLock(f); err != nil || inUse {
		f.Close()
		if inUse {
			return nil, false, fmt.Errorf("%s is in use: stop the controller first (systemctl stop loaxa-controller)", path)
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, true, nil
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := io.Copy(f, r)
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
