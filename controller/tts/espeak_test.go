package tts

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"sentences fit together", "Kính gửi bà con. Chiều nay có mưa!", 100, []string{"Kính gửi bà con. Chiều nay có mưa!"}},
		{"a piece per sentence", "Kính gửi bà con thôn Đông. Chiều nay có mưa lớn? Đề nghị bà con chú ý…", 30,
			[]string{"Kính gửi bà con thôn Đông.", "Chiều nay có mưa lớn?", "Đề nghị bà con chú ý…"}},
		{"numbers and abbreviations stay whole", "Mực nước 3.5 m, v.v. Hết.", 12, []string{"Mực nước", "3.5 m, v.v.", "Hết."}},
		{"line breaks end sentences", "Thông báo\nLịch tiêm chủng", 12, []string{"Thông báo", "Lịch tiêm", "chủng"}},
		{"long sentence cut at a comma", "Bà con thôn Đông, thôn Tây, thôn Nam và thôn Bắc", 20, []string{"Bà con thôn Đông,", "thôn Tây,", "thôn Nam và thôn Bắc"}},
		{"a word longer than max", "Aaaaaaaaaaaaaaaaaaaa", 8, []string{"Aaaaaaaa", "aaaaaaaa", "aaaa"}},
		{"blank", "  \n ", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.text, tt.max)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Split = %q\nwant    %q", got, tt.want)
			}
			for _, p := range got {
				if n := utf8.RuneCountInString(p); n > tt.max {
					t.Errorf("piece %q has %d characters, over %d", p, n, tt.max)
				}
			}
		})
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("Kính gửi bà con. Chiều nay có mưa lớn!", 10)
	f.Add("a.b.c...d", 3)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 1 || max > 1000 || !utf8.ValidString(text) {
			return
		}
		var letters, got int
		for _, r := range text {
			if !unicode.IsSpace(r) {
				letters++
			}
		}
		for _, p := range Split(text, max) {
			if utf8.RuneCountInString(p) > max || p == "" {
				t.Fatalf("piece %q (max %d)", p, max)
			}
			for _, r := range p {
				if !unicode.IsSpace(r) {
					got++
				}
			}
		}
		if got != letters {
			t.Fatalf("pieces hold %d non-space characters, the text %d", got, letters)
		}
	})
}

// pcm reads the 16-bit mono WAV Speak returned.
func pcm(t *testing.T, r io.Reader) (int, []int16) {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(b) < 44 || string(b[:4]) != "RIFF" || int(le.Uint32(b[40:])) != len(b)-44 || int(le.Uint32(b[4:])) != len(b)-8 {
		t.Fatalf("not a complete WAV: %d bytes, header %q", len(b), b[:min(44, len(b))])
	}
	s := make([]int16, (len(b)-44)/2)
	for i := range s {
		s[i] = int16(le.Uint16(b[44+2*i:]))
	}
	return int(le.Uint32(b[24:])), s
}

const bulletin = "Kính gửi bà con thôn Đông. Theo dự báo của Đài khí tượng thủy văn, chiều nay có mưa lớn kèm theo dông và gió giật mạnh. " +
	"Đề nghị bà con chằng chống nhà cửa, không ra đồng khi trời mưa, và theo dõi thông báo tiếp theo trên loa truyền thanh của xã."

func TestSpeak(t *testing.T) {
	dir := t.TempDir()
	e := &Espeak{TempDir: dir}
	for _, tt := range []struct {
		name  string
		req   loaxa.SpeechRequest
		chunk int
	}{
		{"one piece", loaxa.SpeechRequest{Text: bulletin}, 0},
		{"many pieces", loaxa.SpeechRequest{Text: bulletin}, 60},
		{"southern voice, faster", loaxa.SpeechRequest{Text: bulletin, Voice: "vi-vn-x-south", Rate: 1.5}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.MaxChunk = tt.chunk
			r, err := e.Speak(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			rate, s := pcm(t, r)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			seconds := float64(len(s)) / float64(rate)
			// Speech runs at 10–20 characters a second; the bulletin has 257.
			chars := float64(utf8.RuneCountInString(bulletin))
			speed := tt.req.Rate
			if speed == 0 {
				speed = 1
			}
			t.Logf("%d Hz, %.1f s, %.1f characters a second", rate, seconds, chars/seconds)
			if cps := chars / seconds / speed; cps < 8 || cps > 25 {
				t.Errorf("%.1f s for %.0f characters at rate %.1f: not speech-length", seconds, chars, speed)
			}
			var sum float64
			for _, v := range s {
				sum += float64(v) * float64(v)
			}
			if level := 20 * math.Log10(math.Sqrt(sum/float64(len(s)))/32768); level < -35 {
				t.Errorf("speech at %.1f dBFS RMS: too quiet to be speech", level)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
				t.Errorf("temp files left after Close: %v", left)
			}
		})
	}
}

func TestSpeakRefuses(t *testing.T) {
	tests := []struct {
		name string
		e    *Espeak
		req  loaxa.SpeechRequest
		code string
		msg  string
	}{
		{"empty", &Espeak{}, loaxa.SpeechRequest{Text: "  "}, loaxa.EInvalid, "text is empty"},
		{"punctuation only", &Espeak{}, loaxa.SpeechRequest{Text: "!!! … ?"}, loaxa.EInvalid, "no words to read out"},
		{"too long", &Espeak{}, loaxa.SpeechRequest{Text: strings.Repeat("a", loaxa.MaxSpeechText+1)}, loaxa.EInvalid, "split it into parts"},
		{"unknown voice", &Espeak{}, loaxa.SpeechRequest{Text: "Xin chào", Voice: "en"}, loaxa.EInvalid, `voice "en" is not one of vi, vi-vn-x-central, vi-vn-x-south`},
		{"too fast", &Espeak{}, loaxa.SpeechRequest{Text: "Xin chào", Rate: 3}, loaxa.EInvalid, "rate 3 is out of range"},
		{"not installed", &Espeak{Command: "/nonexistent/espeak-ng"}, loaxa.SpeechRequest{Text: "Xin chào"}, loaxa.EUnavailable, "espeak-ng is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.e.Speak(context.Background(), tt.req)
			if err == nil {
				r.Close()
				t.Fatal("Speak succeeded")
			}
			if loaxa.ErrorCode(err) != tt.code || !strings.Contains(loaxa.ErrorMessage(err), tt.msg) {
				t.Errorf("error %v, want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

func TestSpeakStops(t *testing.T) {
	dir := t.TempDir()
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := (&Espeak{TempDir: dir}).Speak(ctx, loaxa.SpeechRequest{Text: bulletin})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, err := (&Espeak{TempDir: dir, Timeout: time.Millisecond}).Speak(context.Background(), loaxa.SpeechRequest{Text: strings.Repeat(bulletin, 5)})
		if err == nil || !strings.Contains(err.Error(), "took longer than 1ms") {
			t.Errorf("error %v, want a timeout", err)
		}
	})
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestSpeakIsDeterministic: the same text, voice and rate give the same
// audio, byte for byte. Content is named by its bytes, so a warning typed
// again as it was kept on the clusters (docs/content.md, standing
// content) is the content they already have, and an alert of it downloads
// nothing.
func TestSpeakIsDeterministic(t *testing.T) {
	e := &Espeak{TempDir: t.TempDir()}
	speak := func() []byte {
		t.Helper()
		r, err := e.Speak(context.Background(), loaxa.SpeechRequest{Text: bulletin, Voice: "vi", Rate: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first, second := speak(), speak()
	if len(first) < 1000 || !bytes.Equal(first, second) {
		t.Errorf("the same text spoken twice: %d and %d bytes, equal %v", len(first), len(second), bytes.Equal(first, second))
	}
}

// TestSpeakReadsDecomposedTextAsPrecomposed: espeak-ng reads Vietnamese
// diacritics only precomposed; text typed decomposed (NFD: pasted from
// Word, typed on a Mac) was misread ("Thông" as "thong", "tiêm" with
// English rules). The same words in either form must give the same audio,
// byte for byte.
func TestSpeakReadsDecomposedTextAsPrecomposed(t *testing.T) {
	e := &Espeak{TempDir: t.TempDir()}
	speak := func(text string) []byte {
		t.Helper()
		r, err := e.Speak(context.Background(), loaxa.SpeechRequest{Text: text, Voice: "vi", Rate: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nfc := speak("Thông báo tiêm chủng.")
	nfd := speak("Tho\u0302ng ba\u0301o tie\u0302m chu\u0309ng.")
	if !bytes.Equal(nfc, nfd) {
		t.Errorf("the same words decomposed gave %d bytes of other audio than precomposed (%d bytes)", len(nfd), len(nfc))
	}
}

// TestSpeakLeavesHomeAlone: espeak-ng, through libpulse, made
// ~/.config/pulse/<machine-id>-runtime in the home of the user it ran as
// even when it wrote to its standard output, and the controller's service
// user's home is its data directory (found running the units under
// systemd): a directory of the controller's nobody asked for, and a
// connection tried to a sound server. Its sound server is now one that
// refuses at once.
func TestSpeakLeavesHomeAlone(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"} { // unset, as for a service
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	r, err := (&Espeak{TempDir: t.TempDir()}).Speak(context.Background(), loaxa.SpeechRequest{Text: "Xin chào bà con"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("espeak-ng left %s in the home directory", e.Name())
	}
}
