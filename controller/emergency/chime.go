package emergency

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"loaxa.vn/controller/loaxa"
)

// The emergency template (after Japan's J-Alert): an opening chime that
// rises, the message Repeat times with a second of silence between, and a
// closing chime that falls. The chimes are made here, so that every
// controller has them without an upload, and stored as ordinary content.

// chimeNotes are the notes of the opening chime, lowest first (C5 E5 G5
// C6); the closing chime plays them downwards.
var chimeNotes = []float64{523.25, 659.25, 783.99, 1046.50}

const (
	chimeRate = 16000
	chimeNote = 260 * time.Millisecond // from one note to the next
	chimeRing = 900 * time.Millisecond // how long each note rings
)

// chimeWAV synthesises a bell-like arpeggio of notes as 16-bit mono WAV.
func chimeWAV(notes []float64) []byte {
	total := time.Duration(len(notes)-1)*chimeNote + chimeRing
	n := int(total.Seconds() * chimeRate)
	mix := make([]float64, n)
	for i, f := range notes {
		at := int((time.Duration(i) * chimeNote).Seconds() * chimeRate)
		ring := int(chimeRing.Seconds() * chimeRate)
		for k := 0; k < ring && at+k < n; k++ {
			t := float64(k) / chimeRate
			env := math.Exp(-4*t) * math.Min(1, float64(k)/80) // soft attack, bell decay
			mix[at+k] += env * (math.Sin(2*math.Pi*f*t) + 0.35*math.Sin(2*math.Pi*2*f*t) + 0.1*math.Sin(2*math.Pi*3*f*t))
		}
	}
	peak := 0.0
	for _, v := range mix {
		peak = math.Max(peak, math.Abs(v))
	}
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1))
	w(uint16(1))
	w(uint32(chimeRate))
	w(uint32(2 * chimeRate))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(2 * n))
	for _, v := range mix {
		w(int16(v / peak * 0.7 * math.MaxInt16))
	}
	return b.Bytes()
}

// ChimeIDs returns the content ids of the opening and closing chimes
// (stored if need be), for the scheduler to keep them on every node: an
// alert then fetches at most its message.
func (s *Service) ChimeIDs(ctx context.Context) ([]string, error) {
	opening, closing, err := s.ensureChimes(ctx)
	if err != nil {
		return nil, err
	}
	return []string{opening.ID, closing.ID}, nil
}

// ensureChimes stores the opening and closing chimes (once: identical
// audio is stored once) and returns their content.
func (s *Service) ensureChimes(ctx context.Context) (opening, closing *loaxa.Content, err error) {
	s.mu.Lock()
	opening, closing = s.opening, s.closing
	s.mu.Unlock()
	if opening != nil && closing != nil {
		return opening, closing, nil
	}
	down := make([]float64, len(chimeNotes))
	for i, f := range chimeNotes {
		down[len(down)-1-i] = f
	}
	if opening, err = s.storeChime(ctx, chimeWAV(chimeNotes), "Chuông mở đầu báo động khẩn cấp"); err != nil {
		return nil, nil, err
	}
	if closing, err = s.storeChime(ctx, chimeWAV(down), "Chuông kết thúc báo động khẩn cấp"); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.opening, s.closing = opening, closing
	s.mu.Unlock()
	return opening, closing, nil
}

func (s *Service) storeChime(ctx context.Context, wav []byte, title string) (*loaxa.Content, error) {
	c, err := s.Media.Ingest(ctx, bytes.NewReader(wav), loaxa.IngestOptions{Filename: "chime.wav"})
	if err != nil {
		return nil, fmt.Errorf("emergency chime %q: %w", title, err)
	}
	c.Title, c.CreatedBy, c.CreatedAt = title, "system", s.Clock.Now()
	stored, err := s.Contents.CreateContent(ctx, c)
	if rerr := s.Media.Release(context.WithoutCancel(ctx), c.ID, err == nil); rerr != nil {
		s.Logger.Warn("emergency chime: release its audio", "content", c.ID, "err", rerr)
	}
	if err != nil {
		return nil, fmt.Errorf("emergency chime %q: %w", title, err)
	}
	return stored, nil
}
