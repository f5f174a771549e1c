package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
)

// ChunkSize is the span of content bytes each entry of a chunk list
// covers: 16 KiB, two seconds of node audio. A node that plays content as
// it downloads plays only whole chunks it has checked, so a chunk is also
// how far its speaker runs behind the download.
const ChunkSize = 16 << 10

// ChunkHashSize is the size of one entry of a chunk list: a SHA-256.
const ChunkHashSize = sha256.Size

// ErrChunkList: a chunk list does not match the ContentRef it is for.
var ErrChunkList = errors.New("chunk list does not match the content")

// Chunks returns how many chunks content of size bytes has.
func Chunks(size int64) int {
	if size <= 0 {
		return 0
	}
	return int((size + ChunkSize - 1) / ChunkSize)
}

// ChunkList reads r to its end and returns the SHA-256 of each ChunkSize
// span of it (the last may be shorter), one after another: the chunk list
// the controller serves at /api/v1/content/{id}/chunks.
func ChunkList(r io.Reader) ([]byte, error) {
	var h ChunkHasher
	if _, err := io.Copy(&h, r); err != nil {
		return nil, err
	}
	return h.List(), nil
}

// ChunkHasher makes the chunk list of what is written to it.
type ChunkHasher struct {
	list []byte
	h    hash.Hash
	n    int // bytes of the chunk under way
}

// Write hashes p; it never fails.
func (c *ChunkHasher) Write(p []byte) (int, error) {
	if c.h == nil {
		c.h = sha256.New()
	}
	total := len(p)
	for len(p) > 0 {
		k := min(len(p), ChunkSize-c.n)
		c.h.Write(p[:k])
		c.n += k
		p = p[k:]
		if c.n == ChunkSize {
			c.list = c.h.Sum(c.list)
			c.h.Reset()
			c.n = 0
		}
	}
	return total, nil
}

// List returns the chunk list of everything written.
func (c *ChunkHasher) List() []byte {
	list := slices.Clone(c.list)
	if c.n > 0 {
		list = c.h.Sum(list)
	}
	return list
}

// ChunkRoot is the hex SHA-256 of a chunk list: ContentRef.Chunks. It is
// signed with the rest of the ref, so a node can trust a list it fetched
// over any link once the list hashes to it.
func ChunkRoot(list []byte) string {
	sum := sha256.Sum256(list)
	return hex.EncodeToString(sum[:])
}

// CheckChunkList checks a fetched chunk list against the ref it is for:
// one entry per chunk of ref.Size, hashing to ref.Chunks.
func CheckChunkList(ref ContentRef, list []byte) error {
	if want := Chunks(ref.Size) * ChunkHashSize; len(list) != want {
		return fmt.Errorf("%w: %d bytes for %d bytes of content, want %d", ErrChunkList, len(list), ref.Size, want)
	}
	if got := ChunkRoot(list); got != ref.Chunks {
		return fmt.Errorf("%w: it hashes to %s, the ref names %s", ErrChunkList, got, ref.Chunks)
	}
	return nil
}

// CheckChunk reports whether b is chunk i of the content list describes.
func CheckChunk(list []byte, i int, b []byte) bool {
	if i < 0 || (i+1)*ChunkHashSize > len(list) {
		return false
	}
	sum := sha256.Sum256(b)
	return bytes.Equal(sum[:], list[i*ChunkHashSize:(i+1)*ChunkHashSize])
}
