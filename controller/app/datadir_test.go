package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/syncbuf"
)

// otherUID stands for the service's user in tests that run as someone
// else: no file of the test is its.
const otherUID = 64123

// TestDataOwnerFindsOtherUsersFiles: every file and directory of the data
// directory that is not the given user's is found, under directories too,
// and none of its own.
func TestDataOwnerFindsOtherUsersFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file owners are not read on this system")
	}
	dir := t.TempDir()
	for _, f := range []string{"loaxa.db", "content/a.wav", "content/b.wav", "tmp/.keep"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mine := &dataOwner{dir: dir, uid: os.Geteuid()}
	if found, err := mine.check(); err != nil || len(found) != 0 {
		t.Errorf("checked as the files' owner: %v, %v; want nothing", found, err)
	}
	other := &dataOwner{dir: dir, uid: otherUID, gid: otherUID}
	found, err := other.check()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range found {
		paths = append(paths, f.Path)
	}
	if want := []string{".", "content", "content/a.wav", "content/b.wav", "loaxa.db", "tmp", "tmp/.keep"}; !slices.Equal(paths, want) {
		t.Errorf("found %q, want %q", paths, want)
	}
	msg := other.problem(found)
	for _, want := range []string{"7 files in the data directory " + dir, "content (", "and 2 more", fmt.Sprintf("chown -R %d:%d %s", otherUID, otherUID, dir)} {
		if !strings.Contains(msg, want) {
			t.Errorf("problem says %q; want %q in it", msg, want)
		}
	}
	// Root may write everything: not checked.
	root := &dataOwner{dir: dir, uid: 0}
	if found, err := root.check(); err != nil || len(found) != 0 {
		t.Errorf("checked as root: %v, %v; want nothing", found, err)
	}
}

// TestStartSaysWhoseFilesAreInTheDataDirectory: a data directory restored
// or copied as root holds root's files, mode 0600. The controller, running
// as its own user, started and answered GET /health "ok" while the audio
// files it could not read failed every board's download with 500 (and it
// failed to start, saying only "permission denied" for one file, when the
// store or content/ was root's). It now names them at start in the log and
// in GET /health's "files" check, with the command that gives them back;
// the check passes again once they are, without a restart.
func TestStartSaysWhoseFilesAreInTheDataDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the data directory to another user")
	}
	cfg := testConfig(t)
	first := New(cfg, slog.New(slog.DiscardHandler))
	if err := first.Open(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	// The service's user owns everything but the audio, as a restore by
	// root left it.
	var audio []string
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".wav") {
			audio = append(audio, path)
			return nil
		}
		return os.Lchown(path, otherUID, otherUID)
	})
	if err != nil || len(audio) == 0 {
		t.Fatalf("walk: %v, audio files %q", err, audio)
	}

	var logs syncbuf.Buffer
	a := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	a.EUID = func() int { return otherUID }
	fc := clock.NewFake(time.Now())
	a.Clock = fc
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fix := fmt.Sprintf("chown -R %d:%d %s", otherUID, os.Getegid(), cfg.DataDir)
	rel, _ := filepath.Rel(cfg.DataDir, audio[0])
	for _, want := range []string{"level=ERROR", "files belong to another user than this controller's", "count=" + fmt.Sprint(len(audio)), rel + " (root)", fix} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, logs.String())
		}
	}
	files := func() (string, error) {
		t.Helper()
		for _, c := range a.healthChecks() {
			if c.Name == "files" {
				return c.Check(context.Background())
			}
		}
		t.Fatal("no files check")
		return "", nil
	}
	// GET /health is public: how many and whose, not which files nor where.
	_, err = files()
	if err == nil {
		t.Fatal("files check passed with root's audio in the data directory")
	}
	for _, want := range []string{fmt.Sprintf("%d file", len(audio)), "belong", " to root, not to this controller's user (uid 64123)", fmt.Sprintf("chown -R %d:%d on the data directory", otherUID, os.Getegid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("files check with root's audio says %q; want %q in it", err, want)
		}
	}
	for _, secret := range []string{cfg.DataDir, rel} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("files check says %q; it names %s to anyone", err, secret)
		}
	}
	for _, p := range audio {
		if err := os.Chown(p, otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
	}
	// Walked again at most once a minute (TestFilesCheckWalksAtMostOnceAMinute).
	fc.Advance(ownersRecheck)
	if detail, err := files(); err != nil || !strings.Contains(detail, "every file in the data directory belongs to") {
		t.Errorf("files check a minute after they were given back: %q, %v", detail, err)
	}
}

// TestStartFailingOnAnotherUsersFileSaysSo: a start that fails with
// "permission denied" on a file of another user adds which files and the
// command; other failures are left as they are.
func TestStartFailingOnAnotherUsersFileSaysSo(t *testing.T) {
	o := &dataOwner{dir: "/var/lib/loaxa-controller", uid: otherUID, gid: otherUID,
		found: []foreignFile{{Path: "loaxa.db", Owner: "root"}}}
	a := &App{owner: o}
	open := func(err error) error { return a.explainOpen(err) }
	denied := fmt.Errorf("open store: %w", &fs.PathError{Op: "open", Path: "/var/lib/loaxa-controller/loaxa.db", Err: fs.ErrPermission})
	got := open(denied)
	if !errors.Is(got, fs.ErrPermission) || !strings.Contains(got.Error(), "loaxa.db (root)") || !strings.Contains(got.Error(), "chown -R ") {
		t.Errorf("permission denied became %v", got)
	}
	other := errors.New("listen tcp: address in use")
	if got := open(other); got != other {
		t.Errorf("another failure became %v", got)
	}
	a.owner = &dataOwner{dir: o.dir, uid: otherUID}
	if got := open(denied); got != denied {
		t.Errorf("permission denied with no foreign file became %v", got)
	}
}

// TestFilesCheckWalksAtMostOnceAMinute: GET /api/v1/health is public, and
// while its "files" check failed each request walked the whole data
// directory again (45–106 ms for 10,000 files): anyone could make the
// controller walk its disk in a loop. Now many requests, at once or one
// after another, share one walk a minute (the first request's, then one a
// minute); the files given back show as fixed within that minute, and a
// clean directory is not walked again.
func TestFilesCheckWalksAtMostOnceAMinute(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file owners are not read on this system")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loaxa.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC))
	a := &App{Clock: fc, owner: &dataOwner{dir: dir, uid: otherUID}}
	if found, err := a.owner.check(); err != nil || len(found) != 2 { // as the start
		t.Fatalf("start's check found %v, %v", found, err)
	}
	var files lhttp.HealthCheck
	for _, c := range a.healthChecks() {
		if c.Name == "files" {
			files = c
		}
	}
	walks := func() int {
		a.owner.mu.Lock()
		defer a.owner.mu.Unlock()
		return a.owner.walks
	}
	ask := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		fails := make(chan error, n)
		for range n {
			wg.Go(func() {
				if _, err := files.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "2 files in the data directory belong") {
					fails <- fmt.Errorf("files check: %v", err)
				}
			})
		}
		wg.Wait()
		close(fails)
		for err := range fails {
			t.Error(err)
			break
		}
	}

	ask(200)
	fc.Advance(59 * time.Second)
	ask(200)
	if n := walks(); n != 2 {
		t.Errorf("400 requests in the first minute walked %d times in all; want 2 (the start's, the first request's)", n)
	}
	fc.Advance(time.Second)
	ask(200)
	if n := walks(); n != 3 {
		t.Errorf("200 requests at once a minute on walked %d times in all; want 3", n)
	}

	// The admin gives the files back: the answer stands until the minute
	// is over, then says so, and the clean directory is not walked again.
	if os.Geteuid() == 0 {
		for _, p := range []string{dir, filepath.Join(dir, "loaxa.db")} {
			if err := os.Lchown(p, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}
	} else { // the files' owner becomes the controller's user
		a.owner.uid = os.Geteuid()
	}
	fc.Advance(30 * time.Second)
	ask(10)
	fc.Advance(30 * time.Second)
	for range 100 {
		if detail, err := files.Check(context.Background()); err != nil || !strings.Contains(detail, "every file in the data directory belongs to") {
			t.Fatalf("files check a minute after the files were given back: %q, %v", detail, err)
		}
	}
	fc.Advance(time.Hour)
	if _, err := files.Check(context.Background()); err != nil {
		t.Error(err)
	}
	if n := walks(); n != 4 {
		t.Errorf("walked %d times in all; want 4 (start, first request, a minute on, once given back)", n)
	}
}

// BenchmarkDataOwnerCheck: what the start (and GET /health's "files"
// check, while it finds something, once a minute) spends walking a data
// directory of 10,000 audio files, and what a GET /health costs between.
func BenchmarkDataOwnerCheck(b *testing.B) {
	dir := b.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "content"), 0o750); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if err := os.WriteFile(filepath.Join(dir, "content", fmt.Sprintf("%064x.wav", i)), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	owner := os.Geteuid()
	if owner == 0 {
		// Root is not checked: give the files to a user who is.
		owner = otherUID
		err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, owner, owner)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name  string
		uid   int
		found int
	}{
		{"theirs", owner, 0},                   // every start
		{"restored-as-root", owner + 1, 10002}, // every file foreign
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := &dataOwner{dir: dir, uid: bc.uid}
			for b.Loop() {
				if found, err := o.check(); err != nil || len(found) != bc.found {
					b.Fatalf("found %d, %v", len(found), err)
				}
			}
		})
	}
	// GET /health's "files" check, asked in a loop while it fails: the
	// start's walk is shared for a minute.
	b.Run("restored-as-root-health", func(b *testing.B) {
		now := time.Now()
		o := &dataOwner{dir: dir, uid: owner + 1, walked: now}
		if _, err := o.check(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if found, err := o.current(now); err != nil || len(found) != 10002 {
				b.Fatalf("found %d, %v", len(found), err)
			}
		}
	})
}

// TestFilesCheckAfterAFailedWalk: a start whose walk of the data directory
// failed left the "files" check saying "every file in the data directory
// belongs to …" for the controller's life, never walked again. It now
// walks again at the first request; and a walk that fails is said without
// the directory's path (GET /health is public), which the log has.
func TestFilesCheckAfterAFailedWalk(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file owners are not read on this system")
	}
	dir := filepath.Join(t.TempDir(), "data")
	var logged bytes.Buffer
	fc := clock.NewFake(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	a := &App{Clock: fc, Config: Config{DataDir: dir}, Logger: slog.New(slog.NewTextHandler(&logged, nil)), EUID: func() int { return otherUID }}
	a.checkDataOwner() // the directory is not there: the walk fails
	if !strings.Contains(logged.String(), "were not checked") {
		t.Fatalf("the start's failed walk was not logged: %s", logged.String())
	}
	var files lhttp.HealthCheck
	for _, c := range a.healthChecks() {
		if c.Name == "files" {
			files = c
		}
	}
	if _, err := files.Check(context.Background()); err == nil || strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "could not be checked") {
		t.Errorf("files check after a failed walk, the directory still missing: %v; want it said not checked, without the path", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loaxa.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Minute)
	if detail, err := files.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "2 files in the data directory belong") {
		t.Errorf("files check once the directory can be walked: %q, %v; want the 2 files of another user", detail, err)
	}
}
