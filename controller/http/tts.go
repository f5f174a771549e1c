package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

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
		return &loaxa.Error{Code: loaxa.EUnavailable, Reason: loaxa.ReasonSpeechUnavailable,
			Message: "Text-to-speech is not set up on this controller; upload a recording with POST /api/v1/content instead."}
	}
	voice := req.Voice
	if voice == "" {
		voice = s.SpeechEngine.Voices()[0]
	}
	rate := req.Rate
	if rate == 0 {
		rate = 1
	}
	if _, err := contentTitle(req.Title); err != nil {
		return err
	}
	c, err := s.speak(ctx, loaxa.SpeechRequest{Text: speechText(req.Text), Voice: voice, Rate: rate})
	if err != nil {
		return err
	}
	defer s.releaseAudio(ctx, c.ID)
	return s.saveContent(w, r, c, req.Title, speechTitle(c.Source.Text))
}

// speechText is typed text as it is spoken and recorded: trimmed, and in
// precomposed Unicode (NFC). Vietnamese pasted from Word or typed on a
// Mac often comes decomposed (NFD: base letters followed by combining
// marks), which espeak-ng misreads; and the same words must make the same
// content however they were typed (docs/content.md, standing content).
func speechText(text string) string {
	return norm.NFC.String(strings.TrimSpace(text))
}

// speak reads req out with the speech engine and ingests the speech,
// trimmed, as content whose source is the text, voice and rate. Every
// route that speaks text comes here, with text made by speechText, so an
// emergency's typed text is the content of the same words spoken in the
// library. The caller releases the audio (releaseAudio).
func (s *Server) speak(ctx context.Context, req loaxa.SpeechRequest) (*loaxa.Content, error) {
	audio, err := s.SpeechEngine.Speak(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("text to speech: %w", err)
	}
	defer audio.Close()
	c, err := s.MediaService.Ingest(ctx, audio, loaxa.IngestOptions{TrimSilence: true})
	if err != nil {
		return nil, fmt.Errorf("text to speech: ingest the speech: %w", err)
	}
	c.Source.Format = s.SpeechEngine.Name()
	c.Source.Text, c.Source.Voice, c.Source.Rate = req.Text, req.Voice, req.Rate
	return c, nil
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
