package http

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
)

// speechTitleLen is how much of the text makes the title of speech
// content that has none.
const speechTitleLen = 60

// speechRequest is the body of POST /api/v1/content/tts.
type speechRequest struct {
	Text  string  `json:"text"`
	Voice string  `json:"voice,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	Title string  `json:"title,omitempty"`
}

// handleSpeech answers POST /api/v1/content/tts: Vietnamese text read out
// by the speech engine, stored as content like an upload (silence at the
// ends trimmed). 201 for new audio, 200 when the same text, voice and
// rate were spoken before.
func (s *Server) handleSpeech(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req speechRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if s.SpeechEngine == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Text-to-speech is not set up on this controller; upload a recording with POST /api/v1/content instead.")
	}
	voice := req.Voice
	if voice == "" {
		voice = s.SpeechEngine.Voices()[0]
	}
	rate := req.Rate
	if rate == 0 {
		rate = 1
	}
	// As an emergency's typed text is spoken (emergencyContent): the same
	// words make the same content, so an alert typed as a kept warning
	// reads is the content its clusters already have.
	text := strings.TrimSpace(req.Text)
	if _, err := cleanText("title", req.Title, false); err != nil {
		return err
	}
	audio, err := s.SpeechEngine.Speak(ctx, loaxa.SpeechRequest{Text: text, Voice: voice, Rate: rate})
	if err != nil {
		return fmt.Errorf("text to speech: %w", err)
	}
	defer audio.Close()
	c, err := s.MediaService.Ingest(ctx, audio, loaxa.IngestOptions{TrimSilence: true})
	if err != nil {
		return fmt.Errorf("text to speech: ingest the speech: %w", err)
	}
	defer s.releaseAudio(ctx, c.ID)
	c.Source.Format = s.SpeechEngine.Name()
	c.Source.Text, c.Source.Voice, c.Source.Rate = text, voice, rate
	return s.saveContent(w, r, c, req.Title, speechTitle(text))
}

// speechTitle makes a title of the first words of text.
func speechTitle(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= speechTitleLen {
		return text
	}
	r := []rune(text)[:speechTitleLen]
	if i := strings.LastIndex(string(r), " "); i > speechTitleLen/2 {
		return string(r)[:i] + "…"
	}
	return string(r) + "…"
}
