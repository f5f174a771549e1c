package http

import (
	"testing"
	"time"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
)

// FuzzParseRangeTime feeds the from and to of the programme and report
// routes: a value is a date, an RFC 3339 time, or refused with EInvalid
// and a readable message, never anything else.
func FuzzParseRangeTime(f *testing.F) {
	for _, s := range []string{"2026-03-02", "2026-03-02T05:30:00+07:00", "2026-03-02T05:30:00Z", "", "hôm nay", "02/03/2026", "2026-13-01", "2026-03-02T25:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseRangeTime("from", v)
		switch {
		case err != nil:
			if loaxa.ErrorCode(err) != loaxa.EInvalid || !utf8.ValidString(loaxa.ErrorMessage(err)) && utf8.ValidString(v) {
				t.Fatalf("%q: %v", v, err)
			}
		case v == "":
			if !got.IsZero() {
				t.Fatalf("empty value gave %v", got)
			}
		default:
			if _, err := time.Parse(loaxa.DateLayout, v); err != nil {
				if _, err := time.Parse(time.RFC3339, v); err != nil {
					t.Fatalf("%q is neither a date nor RFC 3339 but gave %v", v, got)
				}
			}
		}
	})
}
