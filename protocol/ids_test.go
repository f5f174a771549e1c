package protocol_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"loaxa.vn/protocol"
)

func TestCheckID(t *testing.T) {
	long := strings.Repeat("a", protocol.MaxIDLen)
	tests := []struct {
		id      string
		wantErr string // substring of the error; "" means valid
	}{
		{"a", ""},
		{"0", ""},
		{"31", ""},
		{"n-11311-01", ""},
		{"a.b_c-d", ""},
		{"a-", ""},
		{"a.", ""},
		{long, ""},

		{"", "empty"},
		{long + "a", "65 bytes long, the limit is 64"},
		{"-a", `"-" at position 0`},
		{"_a", `"_" at position 0`},
		{".a", `"." at position 0`},
		{"a..b", `contains ".."`},
		{"..", `"." at position 0`},
		{"A", `"A" at position 0`},
		{"nodeA", `"A" at position 4`},
		{"a/b", `"/" at position 1`},
		{"a+b", `"+" at position 1`},
		{"+", `"+" at position 0`},
		{"a#", `"#" at position 1`},
		{"a b", `" " at position 1`},
		{"xã", `"ã" at position 1`},
		{"loa-xã-11311", `"ã" at position 5`},
		{"a\x00", `"\x00" at position 1`},
		{"a\n", `"\n" at position 1`},
		{"a:b", `":" at position 1`},
		{"a\xff", "\"\ufffd\" at position 1"},
	}
	for _, tt := range tests {
		err := protocol.CheckID(tt.id)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckID(%q) = %v, want nil", tt.id, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("CheckID(%q) = %v, want an error containing %q", tt.id, err, tt.wantErr)
		}
		if got := protocol.ValidID(tt.id); got != (tt.wantErr == "") {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.wantErr == "")
		}
	}
}

func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"a", "n-11311-01", "-a", "a..b", "A", "a/b", "+", "#", "xã", "a\xff", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	topics := protocol.NewTopics("")
	f.Fuzz(func(t *testing.T, s string) {
		err := protocol.CheckID(s)
		if protocol.ValidID(s) != (err == nil) {
			t.Fatalf("ValidID(%q) disagrees with CheckID: %v", s, err)
		}
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("CheckID(%q): error is not valid UTF-8: %q", s, err)
			}
			return
		}
		// What every topic and URL path relies on.
		switch {
		case len(s) == 0 || len(s) > protocol.MaxIDLen:
			t.Fatalf("valid id %q has length %d", s, len(s))
		case strings.ContainsAny(s, "/+#") || strings.Contains(s, ".."):
			t.Fatalf("valid id %q has a separator, wildcard or ..", s)
		case strings.ToLower(s) != s:
			t.Fatalf("valid id %q is not lower case", s)
		case strings.IndexFunc(s, func(r rune) bool { return r > 0x7e || r <= ' ' }) >= 0:
			t.Fatalf("valid id %q has a non-printable or non-ASCII character", s)
		case strings.IndexAny(s[:1], "-_.") == 0:
			t.Fatalf("valid id %q starts with punctuation", s)
		}
		tp, err := topics.Parse(topics.Node(s, protocol.ChanCmd))
		if err != nil || tp.ID != s {
			t.Fatalf("valid id %q does not survive a topic: %+v, %v", s, tp, err)
		}
	})
}
