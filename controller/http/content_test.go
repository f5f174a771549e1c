package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

func TestContentUploadAndRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12346", "name": "Xã Tiên Thắng"}, http.StatusCreated, nil)
	officer := e.addUser("can-bo", loaxa.RoleCommune, "12346")

	// One second of 8 kHz stereo: converted to the node format on upload.
	upload := wav(8000, 2, 8000)
	c := e.upload(officer, "lich-tiem-chung.wav", upload, "Thông báo lịch tiêm chủng", http.StatusCreated)
	if c.Title != "Thông báo lịch tiêm chủng" || c.CreatedBy != "can-bo" || c.Format != nodeaudio.Format || c.DurationMS != 1000 {
		t.Errorf("content %+v", c)
	}
	if c.Source.Filename != "lich-tiem-chung.wav" || c.Source.SampleRate != 8000 || c.Source.Channels != 2 || c.Source.Size != int64(len(upload)) {
		t.Errorf("source %+v", c.Source)
	}

	again := e.upload(e.admin, "copy.wav", upload, "Another title", http.StatusOK)
	if again.ID != c.ID || again.Title != c.Title || again.CreatedBy != "can-bo" {
		t.Errorf("second upload of the same audio gave %+v, want the first %+v", again, c)
	}
	untitled := e.upload(officer, "thong-bao-mua-bao.wav", wav(16000, 1, 800), "", http.StatusCreated)
	if untitled.Title != "thong-bao-mua-bao.wav" {
		t.Errorf("title without a title part %q, want the filename", untitled.Title)
	}

	var got loaxa.Content
	e.call("GET", "/api/v1/content/"+c.ID, officer, nil, http.StatusOK, &got)
	if got.ID != c.ID || got.Size != c.Size {
		t.Errorf("GET content %+v", got)
	}
	var list struct{ Content []loaxa.Content }
	e.call("GET", "/api/v1/content?q=ti%C3%AAm", officer, nil, http.StatusOK, &list)
	if len(list.Content) != 1 || list.Content[0].ID != c.ID {
		t.Errorf("search tiêm: %+v", list.Content)
	}

	path := "/api/v1/content/" + c.ID + "/audio"
	full := e.request("GET", path, officer, "", nil)
	if full.status != http.StatusOK || int64(len(full.body)) != c.Size {
		t.Fatalf("audio: status %d, %d bytes, want 200 and %d", full.status, len(full.body), c.Size)
	}
	if ct := full.header.Get("Content-Type"); ct != "audio/wav" {
		t.Errorf("Content-Type %q", ct)
	}
	if etag := full.header.Get("ETag"); etag != `"`+c.ID+`"` {
		t.Errorf("ETag %q", etag)
	}

	tests := []struct {
		name         string
		rng          string
		from, to     int // inclusive byte offsets
		contentRange string
	}{
		{"header and first samples", "bytes=0-99", 0, 99, "bytes 0-99/"},
		{"resume from the middle", "bytes=1000-", 1000, len(full.body) - 1, "bytes 1000-"},
		{"last bytes", "bytes=-10", len(full.body) - 10, len(full.body) - 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.request("GET", path, officer, "", nil, "Range", tt.rng)
			if r.status != http.StatusPartialContent {
				t.Fatalf("status %d, want 206: %s", r.status, r.body)
			}
			if !bytes.Equal(r.body, full.body[tt.from:tt.to+1]) {
				t.Errorf("range %s: got %d bytes that differ from bytes %d-%d", tt.rng, len(r.body), tt.from, tt.to)
			}
			if cr := r.header.Get("Content-Range"); !bytes.HasPrefix([]byte(cr), []byte(tt.contentRange)) {
				t.Errorf("Content-Range %q, want prefix %q", cr, tt.contentRange)
			}
		})
	}
	t.Run("unchanged since", func(t *testing.T) {
		r := e.request("GET", path, officer, "", nil, "If-None-Match", `"`+c.ID+`"`)
		if r.status != http.StatusNotModified {
			t.Errorf("If-None-Match with the id: status %d, want 304", r.status)
		}
	})
	t.Run("chunk list", func(t *testing.T) {
		r := e.request("GET", "/api/v1/content/"+c.ID+"/chunks", officer, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("chunks: status %d: %s", r.status, r.body)
		}
		want, err := protocol.ChunkList(bytes.NewReader(full.body))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.body, want) || c.Chunks != protocol.ChunkRoot(want) {
			t.Errorf("chunk list of %d bytes (content chunks %s); want the %d-byte list of the audio, root %s",
				len(r.body), c.Chunks, len(want), protocol.ChunkRoot(want))
		}
		if err := protocol.CheckChunkList(protocol.ContentRef{Size: c.Size, Chunks: c.Chunks}, r.body); err != nil {
			t.Error(err)
		}

		// The same list in front of the audio, whole or from a range.
		for _, tc := range []struct {
			rng    string
			status int
			from   int
		}{{"", http.StatusOK, 0}, {"bytes=1000-", http.StatusPartialContent, 1000}, {"bytes=0-9,20-29", http.StatusOK, 0}} {
			var hdr []string
			if tc.rng != "" {
				hdr = []string{"Range", tc.rng}
			}
			a := e.request("GET", path+"?chunks=1", officer, "", nil, hdr...)
			if a.status != tc.status || a.header.Get("Content-Type") != protocol.ChunkedAudioType ||
				!bytes.Equal(a.body, append(bytes.Clone(want), full.body[tc.from:]...)) {
				t.Errorf("audio?chunks=1, Range %q: status %d, type %q, %d bytes; want %d, the list and the audio from byte %d",
					tc.rng, a.status, a.header.Get("Content-Type"), len(a.body), tc.status, tc.from)
			}
			if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(a.body)) {
				t.Errorf("audio?chunks=1, Range %q: Content-Length %s for %d bytes", tc.rng, cl, len(a.body))
			}
			got, err := protocol.ReadChunkList(bytes.NewReader(a.body), protocol.ContentRef{Size: c.Size, Chunks: c.Chunks})
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("audio?chunks=1, Range %q: ReadChunkList %v", tc.rng, err)
			}
		}
		checkError(t, e.request("GET", path+"?chunks=2", officer, "", nil), http.StatusBadRequest, loaxa.EInvalid, `chunks="2"`)
	})
}

// TestRangePastTheEndIsAJSONError: a node resuming a download asked for a
// Range past the end of the audio (a part file already whole) and got
// Go's plain-text 416, the one answer of the API not in its JSON error
// shape. It must be the JSON error that says what was wrong, with
// Content-Range: bytes */size (RFC 9110) so the client learns the size,
// on the audio (with and without the chunk list) and on the chunk list.
func TestRangePastTheEndIsAJSONError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "", http.StatusCreated)
	list := e.request("GET", "/api/v1/content/"+c.ID+"/chunks", e.admin, "", nil)
	if list.status != http.StatusOK {
		t.Fatalf("chunks: status %d: %s", list.status, list.body)
	}
	for _, tc := range []struct {
		path, rng string
		size      int64
		what      string
	}{
		{"/api/v1/content/" + c.ID + "/audio", fmt.Sprintf("bytes=%d-", c.Size), c.Size, "the audio of content " + c.ID},
		{"/api/v1/content/" + c.ID + "/audio?chunks=1", fmt.Sprintf("bytes=%d-", c.Size+100), c.Size, "the audio of content " + c.ID},
		{"/api/v1/content/" + c.ID + "/chunks", fmt.Sprintf("bytes=%d-", len(list.body)), int64(len(list.body)), "the chunk list of content " + c.ID},
		{"/api/v1/content/" + c.ID + "/audio", "bytes=end-", c.Size, "the audio of content " + c.ID},
	} {
		r := e.request("GET", tc.path, e.admin, "", nil, "Range", tc.rng)
		checkError(t, r, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable",
			fmt.Sprintf("Range %q asks for no byte of %s, which has %d bytes", tc.rng, tc.what, tc.size))
		if cr, want := r.header.Get("Content-Range"), fmt.Sprintf("bytes */%d", tc.size); cr != want {
			t.Errorf("GET %s, Range %s: Content-Range %q, want %q", tc.path, tc.rng, cr, want)
		}
	}
}

// TestRangeUnitsAsRFC9110HasThem: a client asking for the audio with a
// Range in a unit the server does not know ("items=0-9") got 416 and no
// audio, where RFC 9110 (14.2) says an origin server MUST ignore such a
// Range and answer the whole; and "Bytes=0-99", a byte range (range units
// are case-insensitive, 14.1), got 416 too. A Range in another unit is
// answered 200 with the whole body, one in "bytes" in any case 206; a
// byte range past the end (or not a byte range at all) is still 416
// (TestRangePastTheEndIsAJSONError).
func TestRangeUnitsAsRFC9110HasThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "", http.StatusCreated)
	for _, path := range []string{"/api/v1/content/" + c.ID + "/audio", "/api/v1/content/" + c.ID + "/audio?chunks=1", "/api/v1/content/" + c.ID + "/chunks"} {
		whole := e.request("GET", path, e.admin, "", nil)
		if whole.status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", path, whole.status, whole.body)
		}
		for _, rng := range []string{"items=0-9", "seconds=1-2", "x-frames=0-"} {
			r := e.request("GET", path, e.admin, "", nil, "Range", rng)
			if r.status != http.StatusOK || !bytes.Equal(r.body, whole.body) || r.header.Get("Content-Range") != "" {
				t.Errorf("GET %s, Range %q: status %d, %d bytes, Content-Range %q; want 200 and the whole %d bytes, the Range ignored",
					path, rng, r.status, len(r.body), r.header.Get("Content-Range"), len(whole.body))
			}
		}
		for _, rng := range []string{"Bytes=0-9", "BYTES=0-9"} {
			r := e.request("GET", path, e.admin, "", nil, "Range", rng)
			if r.status != http.StatusPartialContent || !strings.HasPrefix(r.header.Get("Content-Range"), "bytes 0-9/") {
				t.Errorf("GET %s, Range %q: status %d, Content-Range %q; want 206, bytes 0-9", path, rng, r.status, r.header.Get("Content-Range"))
			}
		}
	}
}

func TestUploadLimit(t *testing.T) {
	t.Parallel()
	const limit = 16 << 10
	e := newEnv(t, func(s *lhttp.Server) { s.MaxUploadBytes = limit })
	frames := (limit - 44) / 2
	e.upload(e.admin, "exact.wav", wav(16000, 1, frames), "", http.StatusCreated)
	body, ct := multipartBody(t, part{"file", "over.wav", append(wav(16000, 1, frames), 0)})
	checkError(t, e.request("POST", "/api/v1/content", e.admin, ct, body), http.StatusRequestEntityTooLarge, loaxa.ETooLarge,
		"The upload is larger than the 16 KiB limit")
}

// TestRefusedUploadSaysWhichRefusal: the console showed "Tệp hoặc dữ liệu
// quá lớn." or "Định dạng không được hỗ trợ." followed by the API's
// English for an upload over the limit or of a file that is not audio,
// and "Thông tin chưa đúng." and the English for a recording with no sound
// in it (made with the microphone off, or an empty file). Each answer
// names its refusal (reason upload_too_large, audio_unknown, audio_silent),
// so that the console says it wholly in Vietnamese; a WAV of a kind not
// accepted keeps its own words and has no reason.
func TestRefusedUploadSaysWhichRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *lhttp.Server) { s.MaxUploadBytes = 16 << 10 })
	silent := wav(8000, 1, 4000)
	clear(silent[44:]) // half a second of zero samples
	for _, tc := range []struct {
		name   string
		file   string
		data   []byte
		status int
		reason string
	}{
		{"over the limit", "long.wav", wav(16000, 1, 16000), http.StatusRequestEntityTooLarge, loaxa.ReasonUploadTooLarge},
		{"not audio", "notice.txt", []byte("Thông báo họp thôn lúc 8 giờ sáng mai."), http.StatusUnsupportedMediaType, loaxa.ReasonAudioUnknown},
		{"a big-endian WAV", "rifx.wav", append([]byte("RIFX"), wav(16000, 1, 100)[4:]...), http.StatusUnsupportedMediaType, ""},
		{"a silent recording", "im-lang.wav", silent, http.StatusBadRequest, loaxa.ReasonAudioSilent},
		{"a WAV of no samples", "rong.wav", wav(16000, 1, 0), http.StatusBadRequest, loaxa.ReasonAudioSilent},
		{"an empty file", "rong.mp3", []byte{}, http.StatusBadRequest, loaxa.ReasonAudioSilent},
	} {
		body, ct := multipartBody(t, part{"file", tc.file, tc.data})
		r := e.request("POST", "/api/v1/content", e.admin, ct, body)
		var got struct{ Error struct{ Reason string } }
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != tc.status || got.Error.Reason != tc.reason {
			t.Errorf("%s: %d %s (%v), want %d with reason %q", tc.name, r.status, r.body, err, tc.status, tc.reason)
		}
	}
}

// storedAudio lists the audio files in the library's content/ directory.
func storedAudio(t *testing.T, e *env) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.lib.Dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range entries {
		names = append(names, d.Name())
	}
	return names
}

// TestRefusedUploadKeepsNoAudio: an upload refused with 400 left its
// audio in content/ for ever: it was converted and stored as the file part
// arrived, and the title, a second file, an unknown field or a body cut
// after the file were refused only then, with no record naming the audio
// and nothing deleting it (a user with content.upload could fill the
// disk). A refused upload must leave nothing behind; a refused upload of
// audio the library already holds as content must not take it away.
func TestRefusedUploadKeepsNoAudio(t *testing.T) {
	t.Parallel()
	// cut ends the body within its last part, as a dropped connection
	// does.
	cut := func(body io.Reader) io.Reader {
		b, _ := io.ReadAll(body)
		return bytes.NewReader(b[:bytes.LastIndex(b, []byte("\r\n--"))])
	}
	tests := []struct {
		name  string
		parts []part
		edit  func(io.Reader) io.Reader
		msg   string
	}{
		{"title too long", []part{{"file", "bao-so-3.wav", wav(16000, 1, 8000)}, {"title", "", []byte(strings.Repeat("Thông báo bão số 3 ", 12))}}, nil, "title is"},
		{"title on two lines", []part{{"file", "bao-so-3.wav", wav(16000, 1, 8001)}, {"title", "", []byte("Thông báo\nbão số 3")}}, nil, "control characters"},
		{"title on two lines before the file", []part{{"title", "", []byte("Thông báo\nbão số 3")}, {"file", "bao-so-3.wav", wav(16000, 1, 8001)}}, nil, "control characters"},
		{"two files", []part{{"file", "a.wav", wav(16000, 1, 8002)}, {"file", "b.wav", wav(16000, 1, 8003)}}, nil, "more than one part"},
		{"unknown field after the file", []part{{"file", "a.wav", wav(16000, 1, 8004)}, {"ghi_chu", "", []byte("x")}}, nil, "Unknown form field"},
		{"body cut after the file", []part{{"file", "a.wav", wav(16000, 1, 8005)}, {"title", "", []byte("Thông báo")}}, cut, "broke off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body, ct := multipartBody(t, tt.parts...)
			if tt.edit != nil {
				body = tt.edit(body)
			}
			checkError(t, e.request("POST", "/api/v1/content", e.admin, ct, body), http.StatusBadRequest, loaxa.EInvalid, tt.msg)
			if got := storedAudio(t, e); len(got) != 0 {
				t.Errorf("the refused upload left %v in content/", got)
			}
		})
	}
	t.Run("audio already stored", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		audio := wav(16000, 1, 8006)
		kept := e.upload(e.admin, "a.wav", audio, "Thông báo bão số 3", http.StatusCreated)
		body, ct := multipartBody(t, part{"file", "a.wav", audio}, part{"ghi_chu", "", []byte("x")})
		checkError(t, e.request("POST", "/api/v1/content", e.admin, ct, body), http.StatusBadRequest, loaxa.EInvalid, "Unknown form field")
		if got := storedAudio(t, e); len(got) != 1 || got[0] != kept.ID+".wav" {
			t.Errorf("content/ holds %v after a refused upload of stored audio; want [%s.wav]", got, kept.ID)
		}
		e.call("GET", "/api/v1/content/"+kept.ID+"/audio", e.admin, nil, http.StatusOK, nil)
	})
}

// TestSearchFindsDecomposedVietnameseTitle: a title stored in decomposed
// Unicode (NFD: a file name from a Mac, as the web console sends it as
// the title) was not found by a search typed precomposed, as Unikey types
// by default: GET /content?q=tiêm missed "Thông báo tiêm chủng". Titles
// are stored precomposed, and a search finds a title whatever the form of
// either.
func TestSearchFindsDecomposedVietnameseTitle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const nfc = "Thông báo tiêm chủng"
	nfd := "Tho\u0302ng ba\u0301o tie\u0302m chu\u0309ng"
	titled := e.upload(e.admin, nfd+".wav", wav(16000, 1, 8000), nfd, http.StatusCreated)
	named := e.upload(e.admin, nfd+".wav", wav(16000, 1, 8001), "", http.StatusCreated)
	if titled.Title != nfc || named.Title != nfc+".wav" {
		t.Errorf("titles %+q and %+q; want them precomposed, %+q and %+q", titled.Title, named.Title, nfc, nfc+".wav")
	}
	for _, q := range []string{"ti%C3%AAm", "tie%CC%82m"} { // tiêm precomposed, then decomposed
		var list struct{ Content []loaxa.Content }
		e.call("GET", "/api/v1/content?q="+q, e.admin, nil, http.StatusOK, &list)
		if len(list.Content) != 2 {
			t.Errorf("search q=%s found %d content; want both titled %q", q, len(list.Content), nfc)
		}
	}
}
