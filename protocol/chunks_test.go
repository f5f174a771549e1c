package protocol

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestChunkList(t *testing.T) {
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 100} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i * 31)
		}
		list, err := ChunkList(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != Chunks(int64(size))*ChunkHashSize {
			t.Fatalf("%d bytes: list of %d bytes, want %d chunks", size, len(list), Chunks(int64(size)))
		}
		for i := range Chunks(int64(size)) {
			chunk := b[i*ChunkSize : min((i+1)*ChunkSize, size)]
			sum := sha256.Sum256(chunk)
			if !bytes.Equal(list[i*ChunkHashSize:(i+1)*ChunkHashSize], sum[:]) {
				t.Fatalf("%d bytes: entry %d is not the SHA-256 of chunk %d", size, i, i)
			}
			if !CheckChunk(list, i, chunk) {
				t.Errorf("%d bytes: CheckChunk refuses chunk %d", size, i)
			}
			if size > 0 {
				bad := bytes.Clone(chunk)
				bad[len(bad)/2] ^= 1
				if CheckChunk(list, i, bad) {
					t.Errorf("%d bytes: CheckChunk takes chunk %d with a bit flipped", size, i)
				}
			}
		}
		if CheckChunk(list, Chunks(int64(size)), nil) || CheckChunk(list, -1, nil) {
			t.Errorf("%d bytes: CheckChunk takes a chunk outside the list", size)
		}

		// Written in odd pieces, the hasher gives the same list.
		var h ChunkHasher
		for rest := b; len(rest) > 0; {
			k := min(len(rest), 7000)
			h.Write(rest[:k])
			rest = rest[k:]
		}
		if !bytes.Equal(h.List(), list) {
			t.Errorf("%d bytes: written in 7,000-byte pieces, the list differs", size)
		}

		ref := ContentRef{Size: int64(size), Chunks: ChunkRoot(list)}
		if err := CheckChunkList(ref, list); err != nil {
			t.Errorf("%d bytes: %v", size, err)
		}
		if size > 0 {
			bad := bytes.Clone(list)
			bad[0] ^= 1
			if err := CheckChunkList(ref, bad); !errors.Is(err, ErrChunkList) {
				t.Errorf("%d bytes: a changed list: %v, want ErrChunkList", size, err)
			}
		}
		if err := CheckChunkList(ContentRef{Size: int64(size) + ChunkSize, Chunks: ref.Chunks}, list); !errors.Is(err, ErrChunkList) {
			t.Errorf("%d bytes: a list one chunk short: %v, want ErrChunkList", size, err)
		}
	}
}

// FuzzReadChunkList feeds arbitrary answers and sizes to ReadChunkList: it
// never panics, and it accepts an answer only if its front is the list of
// the content the ref's root names.
func FuzzReadChunkList(f *testing.F) {
	content := bytes.Repeat([]byte("cảnh báo lũ "), 3000)
	list, err := ChunkList(bytes.NewReader(content))
	if err != nil {
		f.Fatal(err)
	}
	root := ChunkRoot(list)
	f.Add(append(bytes.Clone(list), content...), int64(len(content)))
	f.Add(list[:len(list)-1], int64(len(content)))
	f.Add([]byte{}, int64(0))
	f.Add(list, int64(len(content))+ChunkSize)
	f.Fuzz(func(t *testing.T, answer []byte, size int64) {
		if size < 0 || size > 1<<30 {
			return // refs come signed from the controller; no list that large is read
		}
		ref := ContentRef{Size: size, Chunks: root}
		got, err := ReadChunkList(bytes.NewReader(answer), ref)
		if err != nil {
			return
		}
		if !bytes.Equal(got, list) || Chunks(size) != Chunks(int64(len(content))) {
			t.Fatalf("accepted a list of %d bytes for %d bytes of content; only the content's own list (%d bytes, %d bytes of content) may pass",
				len(got), size, len(list), len(content))
		}
	})
}
