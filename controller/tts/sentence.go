package tts

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// sentenceEnd reports whether r ends a sentence: Vietnamese uses the Latin
// marks, plus the ellipsis character; a line break ends one too.
func sentenceEnd(r rune) bool {
	switch r {
	case '.', '!', '?', '…', ';', '\n':
		return true
	}
	return false
}

// Split cuts text into pieces of at most max characters for the engine,
// at sentence ends where it can: a sentence longer than max is cut after a
// comma or colon, then at a space, and only a single word longer than max
// is cut inside. Pieces are trimmed; empty ones are dropped.
func Split(text string, max int) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for _, s := range sentences(text) {
		if utf8.RuneCountInString(cur.String())+utf8.RuneCountInString(s) <= max {
			cur.WriteString(s)
			continue
		}
		flush()
		if utf8.RuneCountInString(s) <= max {
			cur.WriteString(s)
			continue
		}
		for _, p := range cutLong(s, max) {
			out = append(out, p)
		}
	}
	flush()
	return out
}

// sentences splits text after each run of sentence-ending marks that is
// followed by a space or the end (so "3.5" and "v.v." inside a word stay
// whole).
func sentences(text string) []string {
	var out []string
	start := 0
	runes := []rune(text)
	for i := 0; i < len(runes); i++ {
		if !sentenceEnd(runes[i]) {
			continue
		}
		j := i
		for j+1 < len(runes) && (sentenceEnd(runes[j+1]) || runes[j+1] == '"' || runes[j+1] == ')' || runes[j+1] == '”') {
			j++
		}
		if j+1 == len(runes) || unicode.IsSpace(runes[j+1]) || runes[i] == '\n' {
			out = append(out, string(runes[start:j+1]))
			start = j + 1
		}
		i = j
	}
	if start < len(runes) {
		out = append(out, string(runes[start:]))
	}
	return out
}

// cutLong cuts one long sentence into pieces of at most max characters.
func cutLong(s string, max int) []string {
	var out []string
	runes := []rune(strings.TrimSpace(s))
	for len(runes) > max {
		cut := -1
		for _, marks := range []string{",:", " \t"} {
			for i := max - 1; i > max/4; i-- {
				if strings.ContainsRune(marks, runes[i]) {
					cut = i + 1
					break
				}
			}
			if cut > 0 {
				break
			}
		}
		if cut < 0 {
			cut = max
		}
		if p := strings.TrimSpace(string(runes[:cut])); p != "" {
			out = append(out, p)
		}
		runes = []rune(strings.TrimSpace(string(runes[cut:])))
	}
	if len(runes) > 0 {
		out = append(out, string(runes))
	}
	return out
}

// Speakable reports whether text has anything to say: a letter or a digit.
func Speakable(text string) bool {
	return strings.IndexFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
}
