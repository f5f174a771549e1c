// Package update installs node agent releases on a board: it fetches the
// release archive for the board's architecture from the controller,
// checks its size and SHA-256 against the signed update command, extracts
// the agent binary beside the running one and swaps it in with a rename,
// keeping the previous binary to roll back to. The installed release is
// on probation until it has run healthy for a while; one that crashes
// before is rolled back at its next start, and one that never connects to
// the broker its link reaches, while it runs (probation.go).
//
// The trial of a new binary — run it, wait for it to connect and report
// healthy, and otherwise throw it away and carry on with the running one —
// is the node command's (node/main.go), because it needs processes.
package update

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"loaxa.vn/protocol"
)

// Errors of Fetch.
var (
	// ErrTampered: the archive's bytes are not those the signed command
	// names.
	ErrTampered = errors.New("release archive does not match the signed update (SHA-256 or size)")
	// ErrNoBinary: the archive holds no node binary.
	ErrNoBinary = errors.New("release archive has no node binary")
)

// maxBinary bounds the extracted binary (a node agent is about 15 MB).
const maxBinary = 256 << 20

// Way is what a release download makes way for: the node's downloads of
// content its plays need (content.Cache), an alert's message above all. A
// release is needed by no play, so over a thin 4G link it waits.
type Way interface {
	// Lend returns the context for a download no play needs, named by
	// what, which ends as soon as content a play needs is to be fetched,
	// and done, called once the download ends.
	Lend(ctx context.Context, what string) (context.Context, func())
	// AwaitWay waits until no content a play needs is to be fetched.
	AwaitWay(ctx context.Context) error
}

// Fetch downloads a (from the controller at base, as node user with
// secret), checks it against the command, and writes the node binary in
// it to dst (mode 0755, synced). Nothing is left at dst on error.
//
// With way set, the download makes way for content a play needs: it
// stops when way's loan ends, waits for way, and goes on from where it
// was, with an HTTP Range request. The bytes so far are kept beside dst
// (partPath) after any failure but wrong bytes, so a cut link or a
// restart resumes too.
func Fetch(ctx context.Context, client *http.Client, base, user, secret string, a protocol.UpdateArchive, dst string, way Way) error {
	removeStaleParts(dst, a)
	for {
		if way == nil {
			return fetchOnce(ctx, client, base, user, secret, a, dst)
		}
		if err := way.AwaitWay(ctx); err != nil {
			return fmt.Errorf("fetch release: %w", err)
		}
		lctx, done := way.Lend(ctx, "release "+a.Path)
		err := fetchOnce(lctx, client, base, user, secret, a, dst)
		paused := lctx.Err() != nil && ctx.Err() == nil
		done()
		if err == nil || !paused {
			return err
		}
	}
}

// partPath is where the bytes of a downloaded so far are kept: named by
// its SHA-256, so that a download never goes on from another release's.
func partPath(dst string, a protocol.UpdateArchive) string {
	return dst + "." + a.SHA256 + ".part"
}

// removeStaleParts deletes what downloads of other releases left beside
// dst.
func removeStaleParts(dst string, a protocol.UpdateArchive) {
	parts, _ := filepath.Glob(dst + ".*.part")
	for _, p := range parts {
		if p != partPath(dst, a) {
			os.Remove(p)
		}
	}
}

// fetchOnce makes one attempt to download a, going on from its partial
// file, and extracts the binary once the whole archive is checked.
func fetchOnce(ctx context.Context, client *http.Client, base, user, secret string, a protocol.UpdateArchive, dst string) error {
	part := partPath(dst, a)
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	if have > a.Size {
		if have, err = restart(f, h); err != nil {
			return fmt.Errorf("fetch release: %w", err)
		}
	}
	if have < a.Size {
		if have, err = fetchRest(ctx, client, base, user, secret, a, f, h, have); err != nil {
			return err
		}
	}
	if have != a.Size || hex.EncodeToString(h.Sum(nil)) != a.SHA256 {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("fetch release %s: %w", a.Path, ErrTampered)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	if err := extract(f, dst); err != nil {
		return err
	}
	f.Close()
	os.Remove(part)
	return nil
}

// fetchRest asks for the bytes of a after the have in f (all of them if
// the controller does not answer the Range), appends them to f and h, and
// returns how many f holds.
func fetchRest(ctx context.Context, client *http.Client, base, user, secret string, a protocol.UpdateArchive, f *os.File, h hash.Hash, have int64) (int64, error) {
	// Checked here too, not only in the command's Validate: a node fetches
	// its agent from its controller alone.
	u, err := protocol.ArchiveURL(base, a.Path)
	if err != nil {
		return have, fmt.Errorf("fetch release: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return have, fmt.Errorf("fetch release: %w", err)
	}
	req.SetBasicAuth(user, secret)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	// Redirects too stay on the controller (protocol.ErrRedirectAway).
	stay := *client
	stay.CheckRedirect = protocol.StayOnController(base)
	resp, err := stay.Do(req)
	if err != nil {
		return have, fmt.Errorf("fetch release: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && have > 0:
		// The whole archive again: what f holds goes.
		if have, err = restart(f, h); err != nil {
			return have, fmt.Errorf("fetch release: %w", err)
		}
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusPartialContent && have > 0:
	default:
		return have, fmt.Errorf("fetch release %s: %s", a.Path, resp.Status)
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, a.Size-have+1))
	have += n
	if err != nil {
		return have, fmt.Errorf("fetch release %s after %d of %d bytes: %w", a.Path, have, a.Size, err)
	}
	if err := f.Sync(); err != nil {
		return have, fmt.Errorf("fetch release: %w", err)
	}
	return have, nil
}

// restart empties the partial file f and resets h.
func restart(f *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	_, err := f.Seek(0, io.SeekStart)
	return 0, err
}

// extract writes the archive's node binary (a member named "node" in its
// top directory) to dst.
func extract(r io.Reader, dst string) (err error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("release archive: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ErrNoBinary
		}
		if err != nil {
			return fmt.Errorf("release archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg || path.Base(h.Name) != "node" || strings.Count(strings.Trim(h.Name, "/"), "/") > 1 {
			continue
		}
		if h.Size > maxBinary {
			return fmt.Errorf("release archive: node binary of %d bytes is too large", h.Size)
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		if err != nil {
			return fmt.Errorf("write new agent: %w", err)
		}
		_, werr := io.Copy(f, io.LimitReader(tr, h.Size))
		serr := f.Sync()
		cerr := f.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			os.Remove(dst)
			return fmt.Errorf("write new agent: %w", err)
		}
		return nil
	}
}

// Previous is where Install keeps the binary it replaced.
func Previous(exe string) string { return exe + ".previous" }

// Install makes newBin the binary at exe: the current one is kept as
// Previous(exe) (a hard link, so exe never disappears), then newBin is
// renamed over exe and the directory synced. A crash leaves the old
// binary or the new one at exe, never a partial file. Put the release on
// probation first (BeginProbation).
func Install(newBin, exe string) error {
	prev := Previous(exe)
	if err := step("keep previous"); err != nil {
		return err
	}
	if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Link(exe, prev); err != nil {
		return fmt.Errorf("install: keep the previous agent: %w", err)
	}
	if err := step("install new"); err != nil {
		return err
	}
	if err := os.Rename(newBin, exe); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return syncDir(filepath.Dir(exe))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
