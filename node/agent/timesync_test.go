package agent

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Time
		ok   bool
	}{
		{`{"time":"2025-03-09T22:25:00.123456789Z"}`, time.Date(2025, 3, 9, 22, 25, 0, 123456789, time.UTC), true},
		{`{"time":"2025-03-10T05:25:00+07:00"}`, time.Date(2025, 3, 9, 22, 25, 0, 0, time.UTC), true},
		{`{"time":""}`, time.Time{}, false},
		{`{}`, time.Time{}, false},
		{`{"time":"yesterday"}`, time.Time{}, false},
		{`<html>`, time.Time{}, false},
	} {
		got, err := parseTime(strings.NewReader(tc.body))
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseTime(%s) = %v, %v", tc.body, got, err)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	f.Add(`{"time":"2025-03-09T22:25:00Z"}`)
	f.Add(`{"time":null}`)
	f.Add(`{"time":"0001-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, body string) {
		got, err := parseTime(strings.NewReader(body))
		if err == nil && got.IsZero() {
			t.Fatalf("parseTime(%q) accepted a zero time", body)
		}
	})
}
