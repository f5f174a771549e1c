package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// ChunkSize is the span of content bytes each entry of a chunk list
// covers: 16 KiB, two seconds of node audio. A node that plays content as
// it downloads plays only whole chunks it has checked, so a chunk is also
// how far its speaker runs behind the download.
//
// It is part of the wire contract, like ContentRef.Chunks: a node takes a
// cached file whose own chunk list does not hash to its ref's root for a
// file its storage damaged (node/content). Another size needs another ref
// field, or every node would discard its cache as damaged.
const ChunkSize = 16 << 10

// ChunkHashSize is the size of one entry of a chunk list: a SHA-256.
const ChunkHashSize = sha256.Size

// ChunkedAudioType is the media type of content answered with its chunk
// list in front: GET /api/v1/content/{id}/audio?chunks=1 answers the
// list, then the audio (from the start of a Range "bytes=N-", with 206 and
// a Content-Range of the audio), so a node that checks as it downloads
// needs one request, not two.
const ChunkedAudioType = "application/vnd.loaxa.chunked-audio"

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

// ReadChunkList reads ref's chunk list from the front of a ChunkedAudioType
// answer and checks it (CheckChunkList).
func ReadChunkList(r io.Reader, ref ContentRef) ([]byte, error) {
	list := make([]byte, Chunks(ref.Size)*ChunkHashSize)
	if _, err := io.ReadFull(r, list); err != nil {
		return nil, fmt.Errorf("read chunk list: %w", err)
	}
	return list, CheckChunkList(ref, list)
}

// ChunkedAudioWriter wraps w so that an answer of content bytes (200, or
// 206 for a Range) goes out as ChunkedAudioType: list, then the bytes, its
// Content-Length counting both. Other answers pass unchanged. Made for
// http.ServeContent, which then answers ranges as for the audio alone.
func ChunkedAudioWriter(w http.ResponseWriter, list []byte) http.ResponseWriter {
	return &chunkedWriter{ResponseWriter: w, list: list}
}

type chunkedWriter struct {
	http.ResponseWriter
	list   []byte
	headed bool
	err    error // writing the list failed
}

func (c *chunkedWriter) WriteHeader(code int) {
	if c.headed {
		return
	}
	c.headed = true
	if code != http.StatusOK && code != http.StatusPartialContent {
		c.ResponseWriter.WriteHeader(code)
		return
	}
	h := c.Header()
	h.Set("Content-Type", ChunkedAudioType)
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
		h.Set("Content-Length", strconv.FormatInt(n+int64(len(c.list)), 10))
	}
	c.ResponseWriter.WriteHeader(code)
	_, c.err = c.ResponseWriter.Write(c.list)
}

func (c *chunkedWriter) Write(p []byte) (int, error) {
	if !c.headed {
		c.WriteHeader(http.StatusOK)
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.ResponseWriter.Write(p)
}

// Flush passes a flush on, for answers written as they come.
func (c *chunkedWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (c *chunkedWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
