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
	// Chunks is the protocol.ChunkRoot of the audio's chunk list, which
	// nodes check a download against as it arrives (ContentRef.Chunks).
	Chunks string `json:"chunks,omitempty"`
	// Source describes what was uploaded.
	Source Source `json:"source"`
	// Loudness says how the audio was brought to the common level.
	Loudness *Loudness `json:"loudness,omitempty"`
	// Trim says how much silence was cut from the ends, if asked to.
	Trim *Trim `json:"trim,omitempty"`
	// Waveform summarises the audio for display.
	Waveform  *Waveform `json:"waveform,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Source describes an uploaded file before conversion, or the text and
// voice speech was made from.
type Source struct {
	Filename   string `json:"filename,omitempty"`
	Format     string `json:"format"` // "wav/pcm", "wav/float", "mp3", "tts/espeak-ng"
	SampleRate int    `json:"sample_rate"`
	Channels   int    `json:"channels"`
	BitDepth   int    `json:"bit_depth,omitempty"` // WAV only
	BitRate    int    `json:"bit_rate,omitempty"`  // MP3 only: average bits a second
	Size       int64  `json:"size"`
	// DurationMS is the play time of the source, before any trimming.
	DurationMS int64 `json:"duration_ms,omitempty"`
	// Text, Voice and Rate are what text-to-speech content was made from.
	Text  string  `json:"text,omitempty"`
	Voice string  `json:"voice,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
}

// Loudness records the normalisation of content: the source's integrated
// loudness, the gain applied, and the result, in LUFS (ITU-R BS.1770) and
// dB. docs/content.md has the target and why.
type Loudness struct {
	InputLUFS  float64 `json:"input_lufs"`
	GainDB     float64 `json:"gain_db"`
	OutputLUFS float64 `json:"output_lufs"`
	// PeakDBFS is the highest sample of the output.
	PeakDBFS float64 `json:"peak_dbfs"`
	// LimitedDB is the deepest gain reduction of the peak limiter (0: it
	// never acted).
	LimitedDB float64 `json:"limited_db"`
}

// Trim records the silence cut from the start and end of content.
type Trim struct {
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms"`
}

// WaveformScale is full scale in Waveform values.
const WaveformScale = 1000

// Waveform is the shape of content for display: the peak and RMS of equal
// slices of the audio, in order, each 0 (silence) to WaveformScale (full
// scale), linear in amplitude.
type Waveform struct {
	Peak []uint16 `json:"peak"`
	RMS  []uint16 `json:"rms"`
}

// IngestOptions are the choices an upload comes with.
type IngestOptions struct {
	// Filename names the upload in messages and in Source.
	Filename string
	// TrimSilence cuts silence from the start and the end.
	TrimSilence bool
}

// ContentFilter selects content.
type ContentFilter struct {
	Query string // case-insensitive substring of the title
}

// ContentService stores content metadata.
type ContentService interface {
	// CreateContent stores c. If content with the same id exists, it
	// returns that one and no error: identical audio is stored once (its
	// Chunks is filled in if it had none).
	CreateContent(ctx context.Context, c *Content) (*Content, error)
	// FindContentByID returns the content or ENotFound.
	FindContentByID(ctx context.Context, id string) (*Content, error)
	// FindContents returns content newest first.
	FindContents(ctx context.Context, f ContentFilter) ([]*Content, error)
	// SetContentChunks records the chunk root of content stored before
	// chunk lists were made; ENotFound if there is no such content.
	SetContentChunks(ctx context.Context, id, chunks string) error
}

// MediaService turns uploads into node-format audio and keeps the bytes.
type MediaService interface {
	// Ingest reads an upload (WAV or MP3), validates it, converts it to the
	// node format at the common loudness, stores the bytes under their
	// SHA-256, and returns the content with ID, Chunks, Format, Size, DurationMS,
	// Source, Loudness, Trim and Waveform filled in. Bad input is EInvalid,
	// EUnsupported or ETooLarge with a message naming the problem; nothing
	// is kept. The audio is held for the caller, who calls Release once it
	// has recorded the content or given up.
	Ingest(ctx context.Context, r io.Reader, opt IngestOptions) (*Content, error)
	// Release ends the hold of a successful Ingest on content id's audio;
	// kept says whether a content record names it. Audio the ingests of
	// id stored new goes with the last release if none kept it, so a
	// request refused after its audio was ingested leaves nothing behind;
	// audio stored before is never deleted.
	Release(ctx context.Context, id string, kept bool) error
	// OpenAudio opens the stored node-format bytes of content id.
	OpenAudio(ctx context.Context, id string) (io.ReadSeekCloser, error)
	// ChunkList returns the chunk list of content id's audio
	// (protocol.ChunkList); ENotFound if the library does not hold it.
	ChunkList(ctx context.Context, id string) ([]byte, error)
}
