package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"golang.org/x/text/unicode/norm"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// uploadSlack is what an upload body may carry beyond MaxUploadBytes of
// audio: multipart boundaries, part headers and the title.
const uploadSlack = 64 << 10

// maxTitleBytes bounds the title part of an upload before it is checked
// as text.
const maxTitleBytes = 4 * MaxNameLen

// contentsResponse answers GET /api/v1/content.
type contentsResponse struct {
	Content []*loaxa.Content `json:"content"`
}

// handleListContent answers GET /api/v1/content?q=.
func (s *Server) handleListContent(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "q"); err != nil {
		return err
	}
	cs, err := s.ContentService.FindContents(r.Context(), loaxa.ContentFilter{Query: r.URL.Query().Get("q")})
	if err != nil {
		return fmt.Errorf("list content: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, contentsResponse{Content: nonNil(cs)})
	return nil
}

// handleGetContent answers GET /api/v1/content/{id}.
func (s *Server) handleGetContent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.findContent(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, c)
	return nil
}

// findContent returns content id or ENotFound saying where ids come from.
func (s *Server) findContent(ctx context.Context, id string) (*loaxa.Content, error) {
	if !protocol.ValidContentID(id) {
		return nil, loaxa.Errorf(loaxa.ENotFound,
			"There is no content %q; content ids are the 64 hex digits returned by POST /api/v1/content.", id)
	}
	c, err := s.ContentService.FindContentByID(ctx, id)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return nil, loaxa.Errorf(loaxa.ENotFound, "There is no content %s; list content with GET /api/v1/content.", id)
	} else if err != nil {
		return nil, fmt.Errorf("get content %s: %w", id, err)
	}
	return c, nil
}

// handleGetAudio answers GET /api/v1/content/{id}/audio?chunks= with the
// node format bytes, for users and for nodes (HTTP Basic). Range requests
// work, so a node on a flaky link resumes where it stopped. With
// chunks=1 the chunk list goes in front of the bytes
// (protocol.ChunkedAudioType), for nodes that check them as they come.
func (s *Server) handleGetAudio(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := checkQuery(r, "chunks"); err != nil {
		return err
	}
	withChunks := false
	switch v := r.URL.Query().Get("chunks"); v {
	case "", "0", "false":
	case "1", "true":
		withChunks = true
	default:
		return loaxa.Errorf(loaxa.EInvalid, "chunks=%q: say chunks=1 to have the chunk list in front of the audio, or leave it out.", v)
	}
	c, err := s.findContent(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	byteRange(r)
	if withChunks {
		list, err := s.MediaService.ChunkList(ctx, c.ID)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return loaxa.Errorf(loaxa.ENotFound, "The audio of content %s is missing from the library.", c.ID)
		} else if err != nil {
			return fmt.Errorf("chunk list of %s: %w", c.ID, err)
		}
		w = protocol.ChunkedAudioWriter(w, list)
		if strings.Contains(r.Header.Get("Range"), ",") {
			r.Header.Del("Range") // several ranges would be a multipart answer: the whole instead
		}
	}
	audio, err := s.MediaService.OpenAudio(ctx, c.ID)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "The audio of content %s is missing from the library.", c.ID)
	} else if err != nil {
		return fmt.Errorf("open audio %s: %w", c.ID, err)
	}
	defer audio.Close()
	h := w.Header()
	h.Set("Content-Type", "audio/wav")
	// The id is the SHA-256 of these bytes, so they never change.
	h.Set("ETag", `"`+c.ID+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(s.rangeRefusals(w, r, c.Size, "the audio of content "+c.ID), r, "", c.CreatedAt, audio)
	if n := nodeFrom(ctx); n != nil {
		s.logger().Debug("audio served to node", "node", n.ID, "content", c.ID, "range", r.Header.Get("Range"))
	}
	return nil
}

// handleGetChunks answers GET /api/v1/content/{id}/chunks with the chunk
// list of the audio (protocol.ChunkList), for nodes that check a download
// as it arrives.
func (s *Server) handleGetChunks(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, err := s.findContent(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	list, err := s.MediaService.ChunkList(ctx, c.ID)
	if loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "The audio of content %s is missing from the library.", c.ID)
	} else if err != nil {
		return fmt.Errorf("chunk list of %s: %w", c.ID, err)
	}
	byteRange(r)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+protocol.ChunkRoot(list)+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(s.rangeRefusals(w, r, int64(len(list)), "the chunk list of content "+c.ID), r, "", c.CreatedAt, bytes.NewReader(list))
	return nil
}

// byteRange makes the Range of r one http.ServeContent reads as RFC 9110
// has it. Range units are case-insensitive (14.1): "Bytes=0-99" is a byte
// range, which Go answers 416. A Range in a unit other than bytes must be
// ignored by an origin server (14.2), the whole answered 200; Go answers
// 416. A Range that is not a ranges-specifier at all ("0-99"), or a byte
// range that does not parse ("bytes=end-"), is left to ServeContent,
// which rejects it with 416, as 14.2 allows: its message says how to ask.
func byteRange(r *http.Request) {
	unit, set, ok := strings.Cut(r.Header.Get("Range"), "=")
	switch {
	case !ok || !isToken(unit):
	case unit == "bytes":
	case strings.EqualFold(unit, "bytes"):
		r.Header.Set("Range", "bytes="+set)
	default:
		r.Header.Del("Range")
	}
}

// isToken reports whether s is an RFC 9110 token (5.6.2), as a range unit
// is.
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool {
		return c > '~' || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}

// rangeRefusals wraps w for http.ServeContent of size bytes (what names
// them in the message): its plain-text 416, for a Range that holds no
// byte of them, becomes the API's JSON error with Content-Range: bytes
// */size (RFC 9110, 15.5.17). Any other answer passes through.
func (s *Server) rangeRefusals(w http.ResponseWriter, r *http.Request, size int64, what string) http.ResponseWriter {
	return &rangeWriter{ResponseWriter: w, s: s, r: r, size: size, what: what}
}

type rangeWriter struct {
	http.ResponseWriter
	s           *Server
	r           *http.Request
	size        int64
	what        string
	intercepted bool
}

func (f *rangeWriter) WriteHeader(code int) {
	if code != http.StatusRequestedRangeNotSatisfiable {
		f.ResponseWriter.WriteHeader(code)
		return
	}
	f.intercepted = true
	f.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
	f.s.writeJSON(f.ResponseWriter, f.r, code, errorResponse{Error: errorBody{
		Code: "range_not_satisfiable",
		Message: fmt.Sprintf("Range %q asks for no byte of %s, which has %d bytes; ask for bytes=N- with N under %d, or leave Range out for the whole.",
			f.r.Header.Get("Range"), f.what, f.size, f.size),
	}})
}

func (f *rangeWriter) Write(b []byte) (int, error) {
	if f.intercepted {
		return len(b), nil
	}
	return f.ResponseWriter.Write(b)
}

// ReadFrom keeps the connection's sendfile path for audio downloads.
func (f *rangeWriter) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := f.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{f.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the connection.
func (f *rangeWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// handleUploadContent answers POST /api/v1/content?trim=: a multipart
// upload with the audio in part "file" and an optional "title"; trim=true
// cuts the silence at the ends. The option is a query parameter because
// the body is streamed into the media library as it arrives, never held in
// memory, so what to do with the file must be known before it. The answer
// is 201 for new audio and 200 when identical audio was already stored.
func (s *Server) handleUploadContent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := checkQuery(r, "trim"); err != nil {
		return err
	}
	opt := loaxa.IngestOptions{}
	switch v := r.URL.Query().Get("trim"); v {
	case "", "false", "0":
	case "true", "1":
		opt.TrimSilence = true
	default:
		return loaxa.Errorf(loaxa.EInvalid, "trim=%q: say trim=true to cut the silence at the start and end, or leave it out.", v)
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "multipart/form-data" {
		return loaxa.Errorf(loaxa.EUnsupported,
			"Content-Type %q is not accepted here; send multipart/form-data with the audio in a part named \"file\" (curl -F file=@bulletin.wav -F title=…).", ct)
	}
	limit := s.MaxUploadBytes
	if limit <= 0 {
		limit = DefaultMaxUploadBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+uploadSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return loaxa.Errorf(loaxa.EInvalid, "The multipart body cannot be read (%v); send multipart/form-data with a boundary.", err)
	}

	var (
		c        *loaxa.Content
		filename string
		title    string
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return uploadError(ctx, &bodyError{err}, limit)
		}
		switch part.FormName() {
		case "file":
			if c != nil {
				return loaxa.Errorf(loaxa.EInvalid, "The upload has more than one part named \"file\"; send one file per request.")
			}
			filename = part.FileName()
			opt.Filename = filename
			file := &limitReader{r: bodyReader{part}, limit: limit}
			c, err = s.MediaService.Ingest(ctx, file, opt)
			if err != nil {
				return uploadError(ctx, fmt.Errorf("ingest upload %q: %w", filename, err), limit)
			}
			// The rest of the body may still be refused (a second file,
			// an unknown field, a bad title, a cut): the audio then goes.
			defer s.releaseAudio(ctx, c.ID)
		case "title":
			b, err := io.ReadAll(io.LimitReader(bodyReader{part}, maxTitleBytes+1))
			if err != nil {
				return uploadError(ctx, err, limit)
			}
			if len(b) > maxTitleBytes {
				return loaxa.Errorf(loaxa.EInvalid, "title is longer than %d characters; shorten it.", MaxNameLen)
			}
			// Checked as it comes: the web console sends it before the
			// file, which is then not converted for nothing.
			if title, err = contentTitle(string(b)); err != nil {
				return err
			}
		default:
			return loaxa.Errorf(loaxa.EInvalid, "Unknown form field %q; send only \"file\" and \"title\".", part.FormName())
		}
		part.Close()
	}
	if c == nil {
		return loaxa.Errorf(loaxa.EInvalid, "The upload has no part named \"file\"; send the audio as -F file=@bulletin.wav.")
	}

	return s.saveContent(w, r, c, title, filename)
}

// saveContent stores freshly ingested content c with title (or, when
// empty, fallback, or a name made from the id) and answers 201, or answers
// 200 with the content already stored under the same id.
func (s *Server) saveContent(w http.ResponseWriter, r *http.Request, c *loaxa.Content, title, fallback string) error {
	ctx := r.Context()
	if existing, err := s.ContentService.FindContentByID(ctx, c.ID); err == nil {
		s.writeJSON(w, r, http.StatusOK, existing)
		return nil
	} else if loaxa.ErrorCode(err) != loaxa.ENotFound {
		return fmt.Errorf("save content: find %s: %w", c.ID, err)
	}
	title, err := contentTitle(title)
	if err != nil {
		return err
	}
	if title == "" {
		if title, err = contentTitle(fallback); err != nil || title == "" {
			title = "Upload " + c.ID[:12]
		}
	}
	c.Title = title
	c.CreatedBy = userFrom(ctx).Username
	c.CreatedAt = s.now()
	stored, err := s.ContentService.CreateContent(ctx, c)
	if err != nil {
		return fmt.Errorf("save content %s: %w", c.ID, err)
	}
	s.audit(r, auditContentUpload, c.ID, "", "title="+stored.Title)
	s.logger().Info("content created", "content", c.ID, "title", stored.Title, "format", c.Source.Format, "duration_ms", stored.DurationMS, "by", c.CreatedBy)
	s.writeJSON(w, r, http.StatusCreated, stored)
	return nil
}

// contentTitle checks the title of content as cleanText does, in
// precomposed Unicode (NFC): a title typed or named on a Mac, or pasted
// from Word, often comes decomposed (NFD), which looks the same but is
// not found by a search typed the usual way.
func contentTitle(title string) (string, error) {
	return cleanText("title", norm.NFC.String(title), false)
}

// releaseAudio ends the hold of this request's Ingest on audio id
// (loaxa.MediaService.Release), kept when a content record names it: the
// audio of a request refused after the ingest is deleted, never the audio
// of stored content. It runs when the request is done, even cancelled.
func (s *Server) releaseAudio(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	_, err := s.ContentService.FindContentByID(ctx, id)
	// Kept unless surely not recorded: a store error keeps the audio.
	kept := loaxa.ErrorCode(err) != loaxa.ENotFound
	if err := s.MediaService.Release(ctx, id, kept); err != nil {
		s.logger().Warn("audio of a refused request not removed", "content", id, "err", err)
	}
}

// bodyError marks a failure reading the request body: the client's side
// (a cut connection, a broken multipart body, too many bytes), not ours.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read upload: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader marks read errors as bodyError for uploadError.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &bodyError{err}
	}
	return n, err
}

// limitReader fails with *http.MaxBytesError once more than limit bytes
// are read, so the file part itself is held to the upload limit.
type limitReader struct {
	r        io.Reader
	limit, n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > l.limit {
		return 0, &http.MaxBytesError{Limit: l.limit}
	}
	if rest := l.limit + 1 - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return n, &http.MaxBytesError{Limit: l.limit}
	}
	return n, err
}

// uploadError turns a failed upload into what the client should hear:
// too large names the limit, a broken body says so, and the media
// library's own complaints pass through.
func uploadError(ctx context.Context, err error, limit int64) error {
	var be *bodyError
	switch {
	case tooLarge(err):
		return &loaxa.Error{Code: loaxa.ETooLarge, Reason: loaxa.ReasonUploadTooLarge,
			Message: fmt.Sprintf("The upload is larger than the %s limit; send a shorter or more compressed file.", formatBytes(limit))}
	case errors.As(err, &be):
		return loaxa.Errorf(loaxa.EInvalid, "The upload broke off or is not well-formed multipart (%v); send it again.", be.err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return loaxa.Errorf(loaxa.EInvalid, "The upload was cancelled.")
	}
	return err
}
