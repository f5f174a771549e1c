// Package tts is the built-in text-to-speech engine: espeak-ng, run as a
// subprocess, speaking Vietnamese. It implements loaxa.SpeechEngine; a
// cloud engine would implement the same interface.
//
// espeak-ng is a formant synthesiser: its Vietnamese is intelligible and
// robotic, which is enough for urgent notices typed in a hurry and needs
// no network. Text goes to espeak-ng on standard input (never on the
// command line, so no text is taken for an option), one piece of at most
// Espeak.MaxChunk characters at a time, cut at sentence ends: each run is
// short, bounded by Espeak.Timeout and stopped when the request is
// cancelled. The pieces' PCM is gathered in a temporary WAV file, so memory
// stays small whatever the length of the text.
package tts

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"loaxa.vn/controller/loaxa"
)

// Defaults of Espeak.
const (
	DefaultCommand  = "espeak-ng"
	DefaultTimeout  = 30 * time.Second
	DefaultMaxChunk = 400
	// normalWPM is espeak-ng's own default speed, words a minute: Rate 1.
	normalWPM = 175
	// silentPeak is the loudest sample (of 32768) of output that counts as
	// no speech at all (-50 dBFS).
	silentPeak = 104
)

// voices are espeak-ng's Vietnamese voices: Northern (the default, Hà
// Nội), Central and Southern.
var voices = []string{"vi", "vi-vn-x-central", "vi-vn-x-south"}

// Espeak speaks through espeak-ng. The zero value works with the defaults.
type Espeak struct {
	// Command is the espeak-ng program, looked up in PATH when it has no
	// slash.
	Command string
	// Timeout bounds one espeak-ng run (one piece of text).
	Timeout time.Duration
	// MaxChunk is the most characters given to one run.
	MaxChunk int
	// TempDir holds the audio being gathered; "" is os.TempDir().
	TempDir string
	Logger  *slog.Logger
}

var _ loaxa.SpeechEngine = (*Espeak)(nil)

// Name implements loaxa.SpeechEngine.
func (e *Espeak) Name() string { return "tts/espeak-ng" }

// Voices implements loaxa.SpeechEngine.
func (e *Espeak) Voices() []string { return slices.Clone(voices) }

// Check says whether espeak-ng can be run: the error Speak would answer
// (EUnavailable) when it is not installed. The controller checks it at
// start, so that a server set up without it says so before an officer's
// typed alert is refused.
func (e *Espeak) Check() error {
	_, err := e.program()
	return err
}

// program is the espeak-ng binary to run.
func (e *Espeak) program() (string, error) {
	bin, err := exec.LookPath(cmp(e.Command, DefaultCommand))
	if err != nil {
		return "", &loaxa.Error{Code: loaxa.EUnavailable, Reason: loaxa.ReasonSpeechUnavailable,
			Message: fmt.Sprintf("Text-to-speech is not available: espeak-ng is not installed on the controller, or the controller cannot see it (%q not found on its PATH: a service unit's sandbox can hide it); the administrator can install it with apt-get install espeak-ng.", cmp(e.Command, DefaultCommand))}
	}
	return bin, nil
}

// Speak implements loaxa.SpeechEngine: it returns a 16-bit mono WAV file
// (espeak-ng's 22,050 Hz) that is deleted when closed.
func (e *Espeak) Speak(ctx context.Context, req loaxa.SpeechRequest) (io.ReadCloser, error) {
	// espeak-ng reads Vietnamese diacritics only precomposed: decomposed
	// text (NFD, pasted from Word or typed on a Mac) is misread, "tiêm"
	// by English rules.
	req.Text = norm.NFC.String(req.Text)
	voice, wpm, err := e.check(req)
	if err != nil {
		return nil, err
	}
	bin, err := e.program()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(e.TempDir, "speech-*.wav")
	if err != nil {
		return nil, fmt.Errorf("speak: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(make([]byte, 44)); err != nil { // the header, once the size is known
		return nil, fmt.Errorf("speak: %w", err)
	}
	var (
		rate  int
		bytes int64
		peak  int
	)
	chunks := Split(req.Text, e.maxChunk())
	for i, chunk := range chunks {
		r, n, p, err := e.run(ctx, bin, voice, wpm, chunk, f)
		if err != nil {
			return nil, fmt.Errorf("speak piece %d of %d: %w", i+1, len(chunks), err)
		}
		if rate != 0 && r != rate {
			return nil, fmt.Errorf("speak: espeak-ng changed its sample rate from %d to %d Hz", rate, r)
		}
		rate, bytes, peak = r, bytes+n, max(peak, p)
	}
	if peak <= silentPeak {
		return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonSpeechNoWords, Message: "The text gives no speech; write it in Vietnamese words."}
	}
	if _, err := f.WriteAt(wavHeader(rate, bytes), 0); err != nil {
		return nil, fmt.Errorf("speak: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("speak: %w", err)
	}
	e.logger().Debug("speech synthesised", "voice", voice, "wpm", wpm, "pieces", len(chunks), "seconds", float64(bytes)/2/float64(rate))
	done = true
	return &tempFile{f}, nil
}

// check validates req and returns the voice and espeak-ng's speed.
func (e *Espeak) check(req loaxa.SpeechRequest) (string, int, error) {
	text := strings.TrimSpace(req.Text)
	switch {
	case text == "":
		return "", 0, loaxa.Errorf(loaxa.EInvalid, "text is empty; write what should be read out.")
	case !utf8.ValidString(text):
		return "", 0, loaxa.Errorf(loaxa.EInvalid, "text is not valid UTF-8; send it UTF-8 encoded.")
	case utf8.RuneCountInString(text) > loaxa.MaxSpeechText:
		return "", 0, loaxa.Errorf(loaxa.EInvalid, "text is %d characters long; split it into parts of at most %d.", utf8.RuneCountInString(text), loaxa.MaxSpeechText)
	case !Speakable(text):
		return "", 0, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonSpeechNoWords, Message: "text has no words to read out, only punctuation or symbols."}
	}
	voice := req.Voice
	if voice == "" {
		voice = voices[0]
	}
	if !slices.Contains(voices, voice) {
		return "", 0, loaxa.Errorf(loaxa.EInvalid, "voice %q is not one of %s.", voice, strings.Join(voices, ", "))
	}
	rate := req.Rate
	if rate == 0 {
		rate = 1
	}
	if math.IsNaN(rate) || rate < loaxa.MinSpeechRate || rate > loaxa.MaxSpeechRate {
		return "", 0, loaxa.Errorf(loaxa.EInvalid, "rate %v is out of range; give %.1f (slow) to %.1f (fast), 1 for the normal pace.", req.Rate, loaxa.MinSpeechRate, loaxa.MaxSpeechRate)
	}
	return voice, int(math.Round(normalWPM * rate)), nil
}

// run speaks one piece with espeak-ng and appends its PCM to out. It
// returns the sample rate, the bytes appended and the peak sample.
func (e *Espeak) run(ctx context.Context, bin, voice string, wpm int, text string, out io.Writer) (rate int, n int64, peak int, err error) {
	ctx, cancel := context.WithTimeout(ctx, cmpDur(e.Timeout, DefaultTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v", voice, "-s", strconv.Itoa(wpm), "-b", "1", "--stdout")
	cmd.Stdin = strings.NewReader(text)
	// espeak-ng opens its sound output even to write to stdout, and
	// libpulse then makes ~/.config/pulse in the home of the user it runs
	// as (the controller's service user's is its data directory) and
	// looks for a sound server. One that refuses at once: nothing made,
	// nothing looked up, the same speech (TestSpeakLeavesHomeAlone).
	cmd.Env = append(os.Environ(), "PULSE_SERVER=unix:/dev/null")
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 4096}
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("start espeak-ng: %w", err)
	}
	rate, n, peak, perr := copyPCM(stdout, out)
	if perr != nil {
		io.Copy(io.Discard, stdout) // let espeak-ng finish writing
	}
	werr := cmd.Wait()
	if werr != nil || perr != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return 0, 0, 0, fmt.Errorf("espeak-ng took longer than %v", cmpDur(e.Timeout, DefaultTimeout))
		case ctx.Err() != nil:
			return 0, 0, 0, fmt.Errorf("espeak-ng stopped: %w", ctx.Err())
		case werr != nil:
			return 0, 0, 0, fmt.Errorf("espeak-ng: %w: %s", werr, strings.TrimSpace(stderr.String()))
		}
		return 0, 0, 0, fmt.Errorf("read espeak-ng output: %w", perr)
	}
	return rate, n, peak, nil
}

// copyPCM reads the WAV espeak-ng writes to standard output — a 44-byte
// header with placeholder sizes, then 16-bit mono PCM to the end — and
// copies the PCM to out.
func copyPCM(r io.Reader, out io.Writer) (rate int, n int64, peak int, err error) {
	h := make([]byte, 44)
	if _, err := io.ReadFull(r, h); err != nil {
		return 0, 0, 0, fmt.Errorf("header: %w", err)
	}
	le := binary.LittleEndian
	if string(h[0:4]) != "RIFF" || string(h[8:16]) != "WAVEfmt " || le.Uint16(h[20:]) != 1 || le.Uint16(h[22:]) != 1 || le.Uint16(h[34:]) != 16 || string(h[36:40]) != "data" {
		return 0, 0, 0, fmt.Errorf("not the 16-bit mono PCM WAV expected: header %q", h)
	}
	rate = int(le.Uint32(h[24:]))
	buf := make([]byte, 32<<10) // even: every full read holds whole samples
	for {
		k, rerr := io.ReadFull(r, buf)
		if k%2 == 1 {
			return 0, 0, 0, fmt.Errorf("odd number of PCM bytes (%d)", n+int64(k))
		}
		for i := 0; i < k; i += 2 {
			v := int(int16(le.Uint16(buf[i:])))
			peak = max(peak, v, -v)
		}
		if _, err := out.Write(buf[:k]); err != nil {
			return 0, 0, 0, err
		}
		n += int64(k)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return rate, n, peak, nil
		}
		if rerr != nil {
			return 0, 0, 0, rerr
		}
	}
}

// wavHeader is the header of a 16-bit mono PCM WAV of size data bytes.
func wavHeader(rate int, data int64) []byte {
	h := make([]byte, 44)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+data))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], 1)
	le.PutUint16(h[22:], 1)
	le.PutUint32(h[24:], uint32(rate))
	le.PutUint32(h[28:], uint32(2*rate))
	le.PutUint16(h[32:], 2)
	le.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(data))
	return h
}

func (e *Espeak) maxChunk() int {
	if e.MaxChunk > 0 {
		return e.MaxChunk
	}
	return DefaultMaxChunk
}

func (e *Espeak) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cmpDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// tempFile deletes its file when closed.
type tempFile struct{ *os.File }

func (t *tempFile) Close() error {
	err := t.File.Close()
	os.Remove(t.File.Name())
	return err
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if rest := l.n - l.b.Len(); rest > 0 {
		l.b.Write(p[:min(len(p), rest)])
	}
	return len(p), nil
}
