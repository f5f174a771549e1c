package loaxa

import (
	"context"
	"io"
)

// Limits of a speech request.
const (
	// MaxSpeechText is the longest text accepted, in characters: about
	// fifteen minutes of speech.
	MaxSpeechText = 10000
	MinSpeechRate = 0.5
	MaxSpeechRate = 2.0
)

// SpeechRequest is text to be spoken (text-to-speech, đọc văn bản).
type SpeechRequest struct {
	// Text is Vietnamese text with its diacritics.
	Text string
	// Voice names one of the engine's voices; "" is its default.
	Voice string
	// Rate is the speed relative to the voice's normal pace, MinSpeechRate
	// to MaxSpeechRate; 0 means 1.
	Rate float64
}

// SpeechEngine turns text into speech. The built-in engine drives
// espeak-ng (controller/tts); a cloud engine implements the same interface
// and replaces it in the wiring.
type SpeechEngine interface {
	// Name names the engine in Content.Source.Format, e.g.
	// "tts/espeak-ng".
	Name() string
	// Voices lists the voices Speak accepts; the first is the default.
	Voices() []string
	// Speak returns req spoken as one complete WAV or MP3 file, which
	// MediaService.Ingest accepts; the caller closes it. Empty or
	// unspeakable text, an unknown voice or a rate out of range is
	// EInvalid; an engine that cannot run (not installed, service down) is
	// EUnavailable. It never returns silence for text.
	Speak(ctx context.Context, req SpeechRequest) (io.ReadCloser, error)
}
