// Package update installs node agent releases on a board: it fetches the
// release archive for the board's architecture from the controller,
// checks its size and SHA-256 against the signed update command, extracts
// the agent binary beside the running one and swaps it in with a rename,
// keeping the previous binary to roll back to.
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

// Fetch downloads a (from the controller at base, as node user with
// secret), checks it against the command, and writes the node binary in
// it to dst (mode 0755, synced). Nothing is left at dst on error.
func Fetch(ctx context.Context, client *http.Client, base, user, secret string, a protocol.UpdateArchive, dst string) (err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(base, "/")+a.Path, nil)
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	req.SetBasicAuth(user, secret)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch release %s: %s", a.Path, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".release-*.tar.gz")
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, a.Size+1))
	if err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	if n != a.Size || hex.EncodeToString(h.Sum(nil)) != a.SHA256 {
		return fmt.Errorf("fetch release %s: %w", a.Path, ErrTampered)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("fetch release: %w", err)
	}
	return extract(tmp, dst)
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
// binary or the new one at exe, never a partial file.
func Install(newBin, exe string) error {
	prev := Previous(exe)
	if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Link(exe, prev); err != nil {
		return fmt.Errorf("install: keep the previous agent: %w", err)
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
