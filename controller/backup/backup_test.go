package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSnapshot is a store of fixed bytes.
type fakeSnapshot struct {
	store []byte
	ids   []string
}

func (f fakeSnapshot) Size() int64 { return int64(len(f.store)) }
func (f fakeSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.store)
	return int64(n), err
}
func (f fakeSnapshot) ContentIDs() []string { return f.ids }

var _ loaxa.Snapshot = fakeSnapshot{}

// archive writes a backup of one store and one content file.
func archive(t testing.TB) ([]byte, string) {
	t.Helper()
	raw, ids := archiveOf(t, []byte("RIFF-not-really-audio"))
	return raw, ids[0]
}

// archiveOf writes a backup of one store and a content file of each of
// audio, and returns it with the content's ids.
func archiveOf(t testing.TB, audio ...[]byte) ([]byte, []string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "content"), 0o750)
	var ids []string
	for _, a := range audio {
		sum := sha256.Sum256(a)
		id := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(dir, "content", id+".wav"), a, 0o600); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	snap := fakeSnapshot{store: []byte("bbolt store bytes"), ids: ids}
	var buf bytes.Buffer
	_, err := Write(context.Background(), &buf, Source{
		Snapshot: func(ctx context.Context, fn func(loaxa.Snapshot) error) error { return fn(snap) },
		DataDir:  dir, Version: "test", Now: time.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ids
}

func TestRestoreChecksEverything(t *testing.T) {
	raw, id := archive(t)
	if _, err := Check(context.Background(), bytes.NewReader(raw)); err != nil {
		t.Fatalf("check a good archive: %v", err)
	}
	// A changed byte anywhere is caught: by gzip's CRC, or the checksums.
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 0x40
	for name, bad := range map[string][]byte{
		"truncated":  raw[:len(raw)-20],
		"bit flip":   flipped,
		"not gzip":   []byte("hello"),
		"empty gzip": {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Restore(context.Background(), bytes.NewReader(bad), dir, RestoreOptions{}); err == nil {
				t.Fatal("restored a damaged archive")
			}
			if _, err := os.Stat(filepath.Join(dir, StoreFile)); !os.IsNotExist(err) {
				t.Fatalf("left a store behind: %v", err)
			}
		})
	}

	dir := t.TempDir()
	m, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{
		Verify: func(path string) ([]string, error) { return []string{id}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, StoreFile)); string(got) != "bbolt store bytes" || m.ControllerVersion != "test" {
		t.Fatalf("restored store %q, manifest %+v", got, m)
	}
	// With --force, the store there is kept beside the restored one.
	if _, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore over a store: %v", err)
	}
	if _, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, StoreFile+".before-restore-*"))
	if len(kept) != 1 {
		t.Fatalf("kept stores %v, want one", kept)
	}
	// A second one in the same second keeps its own: the first kept store
	// (the original) was replaced.
	now := func() time.Time { return time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC) }
	for range 2 {
		if _, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{Force: true, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	if kept, _ = filepath.Glob(filepath.Join(dir, StoreFile+".before-restore-*")); len(kept) != 3 {
		t.Fatalf("kept stores %v after two more restores in one second, want three", kept)
	}
	// The store refers to content the archive lacks: refused.
	if _, err := Restore(context.Background(), bytes.NewReader(raw), t.TempDir(), RestoreOptions{
		Verify: func(string) ([]string, error) { return []string{id, strings.Repeat("0", 64)}, nil },
	}); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Fatalf("store naming missing content: %v", err)
	}
}

// TestRestoreRefusesAStoreInUse: a controller running on the data
// directory holds bbolt's lock on its store; a restore there fails, says
// to stop the controller, and leaves the store as it was.
func TestRestoreRefusesAStoreInUse(t *testing.T) {
	raw, _ := archive(t)
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, StoreFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, err := os.ReadFile(filepath.Join(dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "stop the controller first") {
		t.Fatalf("restore onto a store in use: %v, want it refused", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StoreFile)); !bytes.Equal(after, before) {
		t.Error("the store in use was changed")
	}
}

func FuzzCheck(f *testing.F) {
	raw, _ := archive(f)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Check(context.Background(), bytes.NewReader(b))
		if err == nil && (m == nil || m.Format != Format || len(m.StoreSHA256) != 64) {
			t.Fatalf("accepted %d bytes with manifest %+v", len(b), m)
		}
	})
}

// TestRestoreReplacesDamagedContent: restoring into a data directory
// whose content file of the same id is damaged (the reason one restores:
// a failing disk) puts the archive's checked copy in its place. Restore
// skipped any content whose name existed, without checking its bytes, and
// threw the verified copy away.
func TestRestoreReplacesDamagedContent(t *testing.T) {
	raw, id := archive(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "content"), 0o750); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "content", id+".wav")
	if err := os.WriteFile(dst, []byte("RIFF-not"), 0o600); err != nil { // truncated
		t.Fatal(err)
	}
	if _, err := Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{
		Verify: func(string) ([]string, error) { return []string{id}, nil },
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, []byte("RIFF-not-really-audio")) {
		t.Fatalf("after restore content %s holds %q, not the archive's verified bytes", id[:8], got)
	}
}

// tree lists the paths under dir, relative to it, or nil if dir does not
// exist.
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		paths = append(paths, rel)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestARefusedRestoreLeavesTheDataDirectoryAsItWas: a restore refused
// (a damaged archive, a store there without --force, a store naming
// content the archive lacks) removes what it created and nothing else.
// It left an empty content/ directory behind, and created the data
// directory itself when it did not exist.
func TestARefusedRestoreLeavesTheDataDirectoryAsItWas(t *testing.T) {
	raw, id := archive(t)
	damaged := raw[:len(raw)-20]
	lacking := func(string) ([]string, error) { return []string{id, strings.Repeat("0", 64)}, nil }
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		archive []byte
		opt     RestoreOptions
	}{
		{"damaged archive into an empty directory", func(*testing.T, string) {}, damaged, RestoreOptions{}},
		{"damaged archive into a missing directory", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}, damaged, RestoreOptions{}},
		{"damaged archive beside an empty content directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "content"), 0o750); err != nil {
				t.Fatal(err)
			}
		}, damaged, RestoreOptions{}},
		{"a store there without --force", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, StoreFile), []byte("old store"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, raw, RestoreOptions{}},
		{"the store names content the archive lacks", func(*testing.T, string) {}, raw, RestoreOptions{Verify: lacking}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, dir)
			before := tree(t, dir)
			if _, err := Restore(context.Background(), bytes.NewReader(tc.archive), dir, tc.opt); err == nil {
				t.Fatal("restore not refused")
			}
			if after := tree(t, dir); !slices.Equal(after, before) {
				t.Fatalf("a refused restore changed the data directory from %q to %q", before, after)
			}
		})
	}
}

// TestARestoreThatFailsLateTakesBackWhatItMoved: a restore whose archive
// was read and verified can still fail while it puts the content in
// place (a full disk, a file the service cannot replace: here a
// directory where the last content file goes). The content files it had
// already moved in go again and the old store stays where it was, under
// its own name, untouched: the controller starts on what it had.
func TestARestoreThatFailsLateTakesBackWhatItMoved(t *testing.T) {
	raw, _ := archiveOf(t, []byte("RIFF-first"), []byte("RIFF-second"), []byte("RIFF-third"))
	m, err := Check(context.Background(), bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := []byte("the store the controller ran on")
	if err := os.WriteFile(filepath.Join(dir, StoreFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(dir, "content", m.Content[len(m.Content)-1]+".wav")
	if err := os.MkdirAll(filepath.Join(blocked, "in-the-way"), 0o750); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	_, err = Restore(context.Background(), bytes.NewReader(raw), dir, RestoreOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "restore content "+m.Content[len(m.Content)-1]) {
		t.Fatalf("restore: %v; want it refused naming the content it could not put in place", err)
	}
	if after := tree(t, dir); !slices.Equal(after, before) {
		t.Errorf("a restore that failed late changed the data directory from %q to %q", before, after)
	}
	if got, err := os.ReadFile(filepath.Join(dir, StoreFile)); err != nil || !bytes.Equal(got, old) {
		t.Errorf("the old store reads %q (%v); want it untouched", got, err)
	}
}

// FuzzRestore restores arbitrary archives, gzipped tar or (with tarOnly)
// a tar the target gzips, so that the fuzzer reaches the members, into an
// empty data directory: Restore must take exactly what Check takes; what
// it takes is in place (the store with the manifest's SHA-256, every
// content file named), and what it refuses leaves nothing behind, not
// even the content directory.
func FuzzRestore(f *testing.F) {
	raw, _ := archive(f)
	tarred := gunzip(f, raw)
	f.Add(raw, false)
	f.Add(tarred, true)
	f.Add(tarred[:len(tarred)/2], true)
	// The content member twice: Check took it, and Restore refused it
	// with "file exists".
	members := tarMembers(f, tarred)
	f.Add(tarOf(f, members[0], members[1], members[1], members[2]), true)
	f.Fuzz(func(t *testing.T, b []byte, tarOnly bool) {
		if tarOnly {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(b)
			zw.Close()
			b = buf.Bytes()
		}
		_, checkErr := Check(context.Background(), bytes.NewReader(b))
		dir := t.TempDir()
		m, err := Restore(context.Background(), bytes.NewReader(b), dir, RestoreOptions{})
		if (err == nil) != (checkErr == nil) {
			t.Fatalf("Check said %v, Restore %v", checkErr, err)
		}
		if err != nil {
			var left []string
			filepath.WalkDir(dir, func(p string, _ fs.DirEntry, _ error) error {
				if rel, _ := filepath.Rel(dir, p); rel != "." {
					left = append(left, rel)
				}
				return nil
			})
			if len(left) > 0 {
				t.Fatalf("a refused restore (%v) left %q", err, left)
			}
			return
		}
		store, rerr := os.ReadFile(filepath.Join(dir, StoreFile))
		if sum := sha256.Sum256(store); rerr != nil || hex.EncodeToString(sum[:]) != m.StoreSHA256 {
			t.Fatalf("restored store: %v, or not the manifest's", rerr)
		}
		for _, c := range m.Content {
			if !sameContent(filepath.Join(dir, contentDir, c+contentExt), c) {
				t.Fatalf("content %s named in the manifest not restored", c)
			}
		}
	})
}

func gunzip(t testing.TB, raw []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type tarMember struct {
	h    *tar.Header
	body []byte
}

func tarMembers(t testing.TB, raw []byte) []tarMember {
	var ms []tarMember
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, tarMember{h, body})
	}
}

func tarOf(t testing.TB, ms ...tarMember) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		if err := tw.WriteHeader(m.h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
