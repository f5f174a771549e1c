package http

import (
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// MaxNameLen is the longest name or title accepted, in characters.
const MaxNameLen = 200

// checkID explains why id, given as field, cannot name an area, node or
// user.
func checkID(field, id string) error {
	if err := protocol.CheckID(id); err != nil {
		if id == "" {
			return loaxa.Errorf(loaxa.EInvalid, "%s is required.", field)
		}
		return loaxa.Errorf(loaxa.EInvalid, "%s: %v.", field, err)
	}
	return nil
}

// cleanText trims s and checks that it is printable text of at most
// MaxNameLen characters; required says whether it may be empty.
func cleanText(field, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		return "", loaxa.Errorf(loaxa.EInvalid, "%s is required.", field)
	case !utf8.ValidString(s):
		return "", loaxa.Errorf(loaxa.EInvalid, "%s is not valid UTF-8 text; send it UTF-8 encoded.", field)
	case utf8.RuneCountInString(s) > MaxNameLen:
		return "", loaxa.Errorf(loaxa.EInvalid, "%s is %d characters long; shorten it to at most %d.",
			field, utf8.RuneCountInString(s), MaxNameLen)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", loaxa.Errorf(loaxa.EInvalid, "%s contains control characters (such as line breaks); write it on one line.", field)
	}
	return s, nil
}

// checkQuery refuses query parameters other than allowed, so a misspelt
// filter does not silently return everything.
func checkQuery(r *http.Request, allowed ...string) error {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return loaxa.Errorf(loaxa.EInvalid, "Unknown query parameter %q; this route takes none.", name)
			}
			return loaxa.Errorf(loaxa.EInvalid, "Unknown query parameter %q; the accepted ones are %s.",
				name, strings.Join(allowed, ", "))
		}
	}
	return nil
}
