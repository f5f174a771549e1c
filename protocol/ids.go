package protocol

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxIDLen is the longest id accepted for an area, node or announcement.
const MaxIDLen = 64

// ValidID reports whether s can name an area or a node. Ids appear inside MQTT
// topics and URL paths, so they are limited to lower-case ASCII letters,
// digits, '-', '_' and '.', start with a letter or digit, and are at most
// MaxIDLen bytes. That keeps the MQTT wildcards '+' and '#', the separator
// '/', and anything needing escaping out of topics.
func ValidID(s string) bool {
	return CheckID(s) == nil
}

// CheckID explains why s is not a valid id, or returns nil.
func CheckID(s string) error {
	if s == "" {
		return fmt.Errorf("id is empty")
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("id %.20q… is %d bytes long, the limit is %d", s, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			// Name the whole character, not its first byte, for non-ASCII input.
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("id %q has %q at position %d: use lower-case letters a-z, digits, and '-', '_' or '.' after the first character", s, string(r), i)
		}
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("id %q contains \"..\"", s)
	}
	return nil
}
