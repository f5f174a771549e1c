package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
)

// FuzzDecodeJSON: whatever the body, decodeJSON either fills the request
// from exactly one valid JSON value, or answers with a user error (never an
// internal one) whose message is readable text.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"title":"Bản tin","content_id":"ab","targets":{"areas":["31"],"nodes":["n-1"]},"priority":"normal","start":"2026-11-28T17:00:00+07:00","repeat":2}`,
		`{"rrule":null,"repeat":null}`,
		`{"title":"x"} {"title":"y"}`,
		`{"title":"x"}x`,
		`{"colour":"red"}`,
		`{"targets":{"area":[]}}`,
		`{"repeat":"2"}`,
		`{"repeat":1.5}`,
		`{"repeat":1e400}`,
		`{"targets":{"areas":[31]}}`,
		`[]`,
		`null`,
		``,
		`   `,
		`{"title":"\ud800"}`,
		"{\"title\":\"\xff\"}",
		`{"title":` + strings.Repeat(`[`, 200),
		`{"TITLE":"case-insensitive match"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/announcements", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var req announcementRequest
		err := decodeJSON(httptest.NewRecorder(), r, &req)
		if err != nil {
			var e *loaxa.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *loaxa.Error", err)
			}
			if e.Code != loaxa.EInvalid && e.Code != loaxa.ETooLarge {
				t.Errorf("code %q for a bad body, want invalid or too_large", e.Code)
			}
			if e.Message == "" || !utf8.ValidString(e.Message) {
				t.Errorf("message %q is empty or not UTF-8", e.Message)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not valid JSON", body)
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var again announcementRequest
		r = httptest.NewRequest("POST", "/api/v1/announcements", bytes.NewReader(b))
		if err := decodeJSON(httptest.NewRecorder(), r, &again); err != nil {
			t.Fatalf("re-encoded request %s refused: %v", b, err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Errorf("round trip changed %+v into %+v", req, again)
		}
	})
}

func TestFieldList(t *testing.T) {
	if got, want := fieldList(&announcementRequest{}), "title, content_id, targets.areas, targets.nodes, priority, start, rrule, repeat, until, count, exdates, on_holidays, session, gap_ms, on_preempt, opening_chime, closing_chime, force, stream_url, duration_ms"; got != want {
		t.Errorf("fieldList = %q, want %q", got, want)
	}
	if got := fieldList(new(int)); got != "(none)" {
		t.Errorf("fieldList(*int) = %q", got)
	}
}

func TestCheckJSONContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"application/merge-patch+json":      true,
		"application/x-www-form-urlencoded": true, // curl -d
		"text/plain":                        false,
		"multipart/form-data; boundary=x":   false,
		"application/xml":                   false,
		"garbage;;":                         false,
	} {
		if err := checkJSONContentType(ct); (err == nil) != ok {
			t.Errorf("checkJSONContentType(%q) = %v, want ok %v", ct, err, ok)
		} else if err != nil && loaxa.ErrorCode(err) != loaxa.EUnsupported {
			t.Errorf("checkJSONContentType(%q) code %q", ct, loaxa.ErrorCode(err))
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		512:          "512 bytes",
		1 << 10:      "1 KiB",
		16 << 10:     "16 KiB",
		1 << 20:      "1 MiB",
		200 << 20:    "200 MiB",
		3 << 30:      "3 GiB",
		1536<<10 + 1: "1.5 MiB (1572865 bytes)",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
