package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/protocol"
)

// Content stored by a build without chunk lists gets its chunk root when
// the controller opens; content already chunked is left as it is, and a
// record whose audio is gone is skipped, not an error.
func TestChunkOldContent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lib := media.NewLibrary(dir)
	if err := lib.Open(); err != nil {
		t.Fatal(err)
	}
	a := &App{Contents: bolt.NewContentService(db), Media: lib, Logger: slog.New(slog.DiscardHandler)}

	audio := bytes.Repeat([]byte("bão số 3 "), 5000) // 50,000 bytes: four chunks
	sum := sha256.Sum256(audio)
	old := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(dir, "content", old+".wav"), audio, 0o644); err != nil {
		t.Fatal(err)
	}
	gone := hex.EncodeToString(make([]byte, 32))
	kept := hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, c := range []*loaxa.Content{
		{ID: old, Title: "Bản tin cũ", Size: int64(len(audio))},
		{ID: gone, Title: "Âm thanh đã mất", Size: 10},
		{ID: kept, Title: "Đã có", Size: 10, Chunks: old},
	} {
		if _, err := a.Contents.CreateContent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	if err := a.chunkOldContent(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := protocol.ChunkList(bytes.NewReader(audio))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{old: protocol.ChunkRoot(list), gone: "", kept: old} {
		c, err := a.Contents.FindContentByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Chunks != want {
			t.Errorf("%s: chunks %q, want %q", c.Title, c.Chunks, want)
		}
	}
	if err := protocol.CheckChunkList(protocol.ContentRef{Size: int64(len(audio)), Chunks: protocol.ChunkRoot(list)}, list); err != nil || protocol.Chunks(int64(len(audio))) != 4 {
		t.Errorf("the list of 50,000 bytes: %v, %d chunks", err, protocol.Chunks(int64(len(audio))))
	}
}
