package loaxa

import (
	"context"
	"io"
	"time"
)

// Content (tệp âm thanh) is an audio item in the node format, identified by
// the hex SHA-256 of the bytes nodes receive.
type Content struct {
	ID         string `json:"id"`
	Title      string `json:"title"`
	Format     string `json:"format"` // node format, see protocol/nodeaudio
	Size       int64  `json:"size"`
	DurationMS int64  `json:"duration_ms"`
	// Source describes what was uploaded.
	Source    Source    `json:"source"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Source describes an uploaded file before conversion.
type Source struct {
	Filename   string `json:"filename,omitempty"`
	Format     string `json:"format"` // e.g. "wav/pcm"
	SampleRate int    `json:"sample_rate"`
	Channels   int    `json:"channels"`
	BitDepth   int    `json:"bit_depth"`
	Size       int64  `json:"size"`
}

// ContentFilter selects content.
type ContentFilter struct {
	Query string // case-insensitive substring of the title
}

// ContentService stores content metadata.
type ContentService interface {
	// CreateContent stores c. If content with the same id exists, it
	// returns that one unchanged and no error: identical audio is stored once.
	CreateContent(ctx context.Context, c *Content) (*Content, error)
	// FindContentByID returns the content or ENotFound.
	FindContentByID(ctx context.Context, id string) (*Content, error)
	// FindContents returns content newest first.
	FindContents(ctx context.Context, f ContentFilter) ([]*Content, error)
}

// MediaService turns uploads into node-format audio and keeps the bytes.
type MediaService interface {
	// Ingest reads an upload, validates and converts it, stores the node
	// format bytes under their SHA-256, and returns the content with ID,
	// Format, Size, DurationMS and Source filled in. Bad input is EInvalid
	// or EUnsupported with a message naming the problem; nothing is kept.
	Ingest(ctx context.Context, r io.Reader, filename string) (*Content, error)
	// OpenAudio opens the stored node-format bytes of content id.
	OpenAudio(ctx context.Context, id string) (io.ReadSeekCloser, error)
}
