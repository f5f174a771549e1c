// Package release hosts node agent releases and rolls them out: it keeps
// the archives (by SHA-256, under DataDir/releases), checks an uploaded
// archive holds a node binary for the architecture it claims, and runs
// rollouts — canaries first, then the rest, halting when a canary fails.
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Archives stores release archives as Dir/<sha256>.tar.gz.
type Archives struct {
	Dir string
	// MaxBytes bounds an upload (0: 256 MiB).
	MaxBytes int64
}

// machines maps GOARCH to the ELF machine of a node binary for it.
var machines = map[string]elf.Machine{"arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "amd64": elf.EM_X86_64}

// Put stores the archive read from r, checking that it is a gzip tar with
// a node binary for arch (any binary is accepted for arch "", which the
// caller must refuse). It returns the archive's description.
func (s *Archives) Put(r io.Reader, arch, filename string) (*loaxa.ReleaseArchive, error) {
	want, ok := machines[arch]
	if !ok {
		return nil, loaxa.Errorf(loaxa.EInvalid, "Architecture %q is not one of arm64, arm, amd64.", arch)
	}
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("release archives: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".upload-*")
	if err != nil {
		return nil, fmt.Errorf("release archives: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	max := s.MaxBytes
	if max <= 0 {
		max = 256 << 20
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("release upload: %w", err)
	}
	if n > max {
		return nil, loaxa.Errorf(loaxa.ETooLarge, "The archive is larger than %d bytes.", max)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	got, err := binaryMachine(tmp)
	if err != nil {
		return nil, loaxa.Errorf(loaxa.EInvalid, "The file is not a node release archive from scripts/build-boards.sh: %v.", err)
	}
	if got != want {
		// Named as the officer gives it (arch=), not as ELF does (EM_ARM).
		for other, m := range machines {
			if m == got {
				return nil, loaxa.Errorf(loaxa.EInvalid, "The archive's node binary is built for %s, not %s: upload it with arch=%s, or upload the archive built for %s.", other, arch, other, arch)
			}
		}
		return nil, loaxa.Errorf(loaxa.EInvalid, "The archive's node binary is built for %v, not %s; upload the archive built for %s.", got, arch, arch)
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), s.path(sum)); err != nil {
		return nil, fmt.Errorf("release archives: %w", err)
	}
	return &loaxa.ReleaseArchive{Arch: arch, SHA256: sum, Size: n, Filename: filepath.Base(filename)}, nil
}

// Open opens a stored archive.
func (s *Archives) Open(sha string) (*os.File, error) {
	if !protocol.ValidContentID(sha) {
		return nil, loaxa.Errorf(loaxa.ENotFound, "No release archive %q.", sha)
	}
	f, err := os.Open(s.path(sha))
	if errors.Is(err, os.ErrNotExist) {
		return nil, loaxa.Errorf(loaxa.ENotFound, "No release archive %q.", sha)
	}
	return f, err
}

// Sum returns the SHA-256 and size of the stored archive sha as it is on
// disk now, for a check against those recorded at upload before a
// rollout starts: a copy cut short, a disk fault or a file replaced by
// hand keeps the name, and every board would fetch it and refuse it. An
// archive that is not on disk (a restore leaves them out while the store
// still names their releases) is ENotFound.
func (s *Archives) Sum(sha string) (sum string, size int64, err error) {
	f, err := s.Open(sha)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if size, err = io.Copy(h, f); err != nil {
		return "", 0, fmt.Errorf("release archive %s: %w", sha, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// Remove deletes a stored archive; one that is not there is no error.
func (s *Archives) Remove(sha string) error {
	if !protocol.ValidContentID(sha) {
		return loaxa.Errorf(loaxa.EInvalid, "Release archive id %q is not a SHA-256.", sha)
	}
	if err := os.Remove(s.path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove release archive %s: %w", sha, err)
	}
	return nil
}

func (s *Archives) path(sha string) string { return filepath.Join(s.Dir, sha+".tar.gz") }

// binaryMachine finds the node binary in a release archive (a member
// named "node" in its top directory) and returns its ELF machine; a node
// binary that is not ELF (a script) is refused.
func binaryMachine(r io.Reader) (elf.Machine, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return 0, errors.New("no node binary in it")
		}
		if err != nil {
			return 0, fmt.Errorf("not a tar archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg || path.Base(h.Name) != "node" || strings.Count(strings.Trim(h.Name, "/"), "/") > 1 {
			continue
		}
		// The ELF header: magic, class, data encoding, …, e_machine at 18.
		head := make([]byte, 20)
		if _, err := io.ReadFull(tr, head); err != nil || !bytes.Equal(head[:4], []byte(elf.ELFMAG)) {
			return 0, errors.New("its node is not an ELF program")
		}
		var order binary.ByteOrder = binary.LittleEndian
		if elf.Data(head[elf.EI_DATA]) == elf.ELFDATA2MSB {
			order = binary.BigEndian
		}
		return elf.Machine(order.Uint16(head[18:])), nil
	}
}
