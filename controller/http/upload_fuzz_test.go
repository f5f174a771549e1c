package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
)

// FuzzUploadContent posts arbitrary multipart bodies, with an arbitrary
// boundary, to POST /api/v1/content (FuzzAPI sends JSON only): the answer
// is a success whose content is stored, or an error in the JSON error
// shape with a known code, never an internal error; and whatever the
// answer, every audio file the library holds is named by stored content
// (a refused upload keeps nothing).
func FuzzUploadContent(f *testing.F) {
	e := newEnv(f)
	const boundary = "b0undary"
	body := func(parts ...part) []byte {
		b, _ := multipartBodyWith(f, boundary, parts...)
		return b.Bytes()
	}
	audio := wav(8000, 1, 800)
	f.Add(boundary, body(part{"title", "", []byte("Thông báo")}, part{"file", "a.wav", audio}))
	f.Add(boundary, body(part{"file", "a.wav", audio}, part{"title", "", []byte("\x00")}))
	f.Add(boundary, body(part{"file", "a.wav", audio}, part{"file", "b.wav", audio}))
	f.Add(boundary, body(part{"file", "a.wav", audio}, part{"ghi-chu", "", []byte("x")}))
	f.Add(boundary, body(part{"file", "a.txt", []byte("không phải âm thanh")}))
	f.Add("", []byte("--\r\n"))
	codes := map[string]bool{}
	for _, c := range []string{loaxa.EConflict, loaxa.EInvalid, loaxa.ENotFound, loaxa.ETooLarge, loaxa.EUnsupported, loaxa.ETooMany} {
		codes[c] = true
	}
	f.Fuzz(func(t *testing.T, boundary string, b []byte) {
		if strings.ContainsFunc(boundary, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return // not a header value a client can send
		}
		req, err := http.NewRequest("POST", e.ts.URL+"/api/v1/content", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.admin)
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 {
			var c loaxa.Content
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
			}
			if _, err := e.stores.contents.FindContentByID(t.Context(), c.ID); err != nil {
				t.Fatalf("answered %d with content %s, not stored: %v", resp.StatusCode, c.ID, err)
			}
		} else {
			var answer struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(raw, &answer); err != nil || !codes[answer.Error.Code] || answer.Error.Message == "" {
				t.Fatalf("upload %q with boundary %q: %d %s", b, boundary, resp.StatusCode, raw)
			}
		}
		entries, err := os.ReadDir(filepath.Join(e.lib.Dir, "content"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range entries {
			id, _, _ := strings.Cut(d.Name(), ".")
			if _, err := e.stores.contents.FindContentByID(t.Context(), id); err != nil {
				t.Fatalf("audio %s kept, named by no content (%v); the answer was %d %s", d.Name(), err, resp.StatusCode, raw)
			}
		}
	})
}
