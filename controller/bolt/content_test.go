package bolt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
)

// contentID returns a valid content id derived from s.
func contentID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// mustContent stores content with the given title and returns its id.
func mustContent(tb testing.TB, db *bolt.DB, title string) string {
	tb.Helper()
	id := contentID(title)
	_, err := bolt.NewContentService(db).CreateContent(context.Background(), &loaxa.Content{ID: id, Title: title, Format: "pcm", Size: 100, DurationMS: 1000})
	must(tb, err)
	return id
}

func TestContentService_CreateContent_Idempotent(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewContentService(db)
	ctx := context.Background()
	id := contentID("bytes")

	first, err := s.CreateContent(ctx, &loaxa.Content{ID: id, Title: "Bản tin sáng", Size: 10, CreatedBy: "an"})
	must(t, err)
	if !first.CreatedAt.Equal(clk.Now()) || first.Title != "Bản tin sáng" {
		t.Fatalf("first create returned %+v", first)
	}

	// The same audio uploaded again later by someone else: the first
	// record stays, unchanged, and no error.
	clk.Advance(time.Hour)
	again, err := s.CreateContent(ctx, &loaxa.Content{ID: id, Title: "Another title", Size: 10, CreatedBy: "binh"})
	must(t, err)
	if *again != *first {
		t.Errorf("second create returned %+v, want the first record %+v", again, first)
	}
	got, err := s.FindContentByID(ctx, id)
	must(t, err)
	if *got != *first {
		t.Errorf("stored %+v, want %+v", got, first)
	}
}

// Content stored before chunk lists were made gets its chunk root: from
// the backfill at start (SetContentChunks) or from the same audio uploaded
// again; a root once recorded stays.
func TestContentService_Chunks(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewContentService(db)
	ctx := context.Background()
	old, again := contentID("old"), contentID("again")
	for _, id := range []string{old, again} {
		_, err := s.CreateContent(ctx, &loaxa.Content{ID: id, Title: "Bản tin cũ", Size: 10})
		must(t, err)
	}
	root, other := contentID("root"), contentID("other")

	must(t, s.SetContentChunks(ctx, old, root))
	got, err := s.FindContentByID(ctx, old)
	must(t, err)
	if got.Chunks != root || got.Title != "Bản tin cũ" {
		t.Errorf("after SetContentChunks: %+v, want chunks %s and the rest kept", got, root)
	}

	up, err := s.CreateContent(ctx, &loaxa.Content{ID: again, Title: "Tải lại", Size: 10, Chunks: root})
	must(t, err)
	if up.Chunks != root || up.Title != "Bản tin cũ" {
		t.Errorf("uploaded again: %+v, want the first record with chunks %s", up, root)
	}
	up, err = s.CreateContent(ctx, &loaxa.Content{ID: again, Size: 10, Chunks: other})
	must(t, err)
	if up.Chunks != root {
		t.Errorf("a third upload changed the chunk root to %s", up.Chunks)
	}

	wantCode(t, s.SetContentChunks(ctx, contentID("none"), root), loaxa.ENotFound)
	wantCode(t, s.SetContentChunks(ctx, old, "not hex"), loaxa.EInvalid)
}

func TestContentService_CreateContent_Invalid(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := bolt.NewContentService(db)
	for name, c := range map[string]loaxa.Content{
		"empty id":          {},
		"upper-case hex":    {ID: "AB" + contentID("x")[2:]},
		"short id":          {ID: contentID("x")[:63]},
		"negative size":     {ID: contentID("x"), Size: -1},
		"negative duration": {ID: contentID("x"), DurationMS: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.CreateContent(context.Background(), &c)
			wantCode(t, err, loaxa.EInvalid)
		})
	}
}

func TestContentService_FindContentByID_NotFound(t *testing.T) {
	db, _ := MustOpenDB(t)
	_, err := bolt.NewContentService(db).FindContentByID(context.Background(), contentID("none"))
	wantCode(t, err, loaxa.ENotFound)
}

func TestContentService_FindContents(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewContentService(db)
	titles := []string{"Bản tin sáng", "Thông báo tiêm chủng", "BẢN TIN chiều", "Nhạc"}
	for _, title := range titles {
		mustContent(t, db, title)
		clk.Advance(time.Minute)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"Nhạc", "BẢN TIN chiều", "Thông báo tiêm chủng", "Bản tin sáng"}},
		{"bản tin", []string{"BẢN TIN chiều", "Bản tin sáng"}},
		{"  TIÊM ", []string{"Thông báo tiêm chủng"}},
		{"nothing like it", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			cs, err := s.FindContents(context.Background(), loaxa.ContentFilter{Query: tt.query})
			must(t, err)
			var got []string
			for _, c := range cs {
				got = append(got, c.Title)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("titles %q, want %q", got, tt.want)
			}
		})
	}
}

// TestContentService_FindContents_UnicodeForm: Vietnamese in decomposed
// Unicode (NFD: a Mac's file names, text pasted from Word) looks like the
// precomposed text people type but differs byte for byte, so a search in
// one form missed titles in the other. A title stored decomposed (before
// titles were made precomposed on the way in) is found by a precomposed
// search, and a decomposed search finds precomposed titles.
func TestContentService_FindContents_UnicodeForm(t *testing.T) {
	db, clk := MustOpenDB(t)
	s := bolt.NewContentService(db)
	old := mustContent(t, db, "Tho\u0302ng ba\u0301o tie\u0302m chu\u0309ng") // Thông báo tiêm chủng, NFD
	clk.Advance(time.Minute)
	typed := mustContent(t, db, "Bão số 3")
	tests := []struct {
		query string
		want  string
	}{
		{"tiêm", old},
		{"TIÊM CHỦNG", old},
		{"ba\u0303o so\u0302\u0301", typed}, // bão số, NFD
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			cs, err := s.FindContents(context.Background(), loaxa.ContentFilter{Query: tt.query})
			must(t, err)
			if len(cs) != 1 || cs[0].ID != tt.want {
				t.Errorf("search %+q found %d content; want %s", tt.query, len(cs), tt.want)
			}
		})
	}
}
