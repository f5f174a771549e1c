package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"testing"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func archiveOf(machine uint16, name string) []byte {
	head := make([]byte, 64)
	copy(head, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(head[18:], machine)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(head))})
	tw.Write(head)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestArchivesPut(t *testing.T) {
	s := &Archives{Dir: t.TempDir()}
	a, err := s.Put(bytes.NewReader(archiveOf(uint16(elf.EM_AARCH64), "loaxa-node-1-linux-arm64/node")), "arm64", "x.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Open(a.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for name, raw := range map[string][]byte{
		"wrong machine":  archiveOf(uint16(elf.EM_X86_64), "d/node"),
		"nested too far": archiveOf(uint16(elf.EM_AARCH64), "a/b/c/node"),
		"no node":        archiveOf(uint16(elf.EM_AARCH64), "d/controller"),
		"not gzip":       []byte("#!/bin/sh\n"),
	} {
		if _, err := s.Put(bytes.NewReader(raw), "arm64", "x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := s.Open("../../etc/passwd"); err == nil {
		t.Error("opened a path outside the archives")
	}
}

// TestArchivesSum: the check before a rollout looked for the archive's
// file, not at its bytes, and took one cut short under its name. Sum
// hashes the file as it is on disk: the upload's SHA-256 and size while
// whole, another once cut short, ENotFound once gone.
func TestArchivesSum(t *testing.T) {
	s := &Archives{Dir: t.TempDir()}
	a, err := s.Put(bytes.NewReader(archiveOf(uint16(elf.EM_AARCH64), "loaxa-node-1-linux-arm64/node")), "arm64", "x.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if sum, size, err := s.Sum(a.SHA256); err != nil || sum != a.SHA256 || size != a.Size {
		t.Errorf("Sum = %s, %d, %v; want %s, %d", sum, size, err, a.SHA256, a.Size)
	}
	if err := os.Truncate(s.path(a.SHA256), a.Size/2); err != nil {
		t.Fatal(err)
	}
	if sum, size, err := s.Sum(a.SHA256); err != nil || sum == a.SHA256 || size != a.Size/2 {
		t.Errorf("Sum of the archive cut short = %s, %d, %v; want another SHA-256, %d bytes", sum, size, err, a.Size/2)
	}
	if err := s.Remove(a.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Sum(a.SHA256); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("Sum of a removed archive: %v, want ENotFound", err)
	}
}

func FuzzBinaryMachine(f *testing.F) {
	f.Add(archiveOf(uint16(elf.EM_AARCH64), "d/node"))
	f.Add(archiveOf(uint16(elf.EM_ARM), "node"))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Whatever the bytes, an answer, never a panic; and an accepted
		// archive is one that gzip reads.
		if _, err := binaryMachine(bytes.NewReader(raw)); err == nil {
			if _, err := gzip.NewReader(bytes.NewReader(raw)); err != nil {
				t.Fatalf("accepted a non-gzip archive: %v", err)
			}
		}
	})
}
