package protocol_test

import (
	"strings"
	"testing"
	"time"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

func TestPriority(t *testing.T) {
	tests := []struct {
		p    protocol.Priority
		rank int
	}{
		{protocol.PriorityBackground, 0},
		{protocol.PriorityNormal, 1},
		{protocol.PriorityHigh, 2},
		{protocol.PriorityEmergency, 3},
		{"", -1},
		{"Emergency", -1},
		{"urgent", -1},
		{"khẩn cấp", -1},
	}
	for _, tt := range tests {
		if got := tt.p.Rank(); got != tt.rank {
			t.Errorf("Priority(%q).Rank() = %d, want %d", tt.p, got, tt.rank)
		}
		if got := tt.p.Valid(); got != (tt.rank >= 0) {
			t.Errorf("Priority(%q).Valid() = %v", tt.p, got)
		}
	}
}

func TestDesiredStateValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(d *protocol.DesiredState)
		wantErr string
	}{
		{"valid", func(*protocol.DesiredState) {}, ""},
		{"no occurrences", func(d *protocol.DesiredState) { d.Occurrences, d.Content = nil, nil }, ""},
		{"unused content", func(d *protocol.DesiredState) { d.Occurrences = nil }, ""},
		{"bad node", func(d *protocol.DesiredState) { d.Node = "Node/1" }, "desired state: node:"},
		{"no node", func(d *protocol.DesiredState) { d.Node = "" }, "node: id is empty"},
		{"version 0", func(d *protocol.DesiredState) { d.Version = 0 }, "version 0"},
		{"content id upper case", func(d *protocol.DesiredState) { d.Content[0].ID = strings.ToUpper(d.Content[0].ID) }, "is not a hex SHA-256"},
		{"content id short", func(d *protocol.DesiredState) { d.Content[0].ID = d.Content[0].ID[:63] }, "is not a hex SHA-256"},
		{"occurrence without id", func(d *protocol.DesiredState) { d.Occurrences[1].ID = "" }, `occurrence id "" empty or repeated`},
		{"occurrence id repeated", func(d *protocol.DesiredState) { d.Occurrences[1].ID = d.Occurrences[0].ID }, "empty or repeated"},
		{"content not listed", func(d *protocol.DesiredState) { d.Occurrences[0].Content = strings.Repeat("0", 64) }, "that is not listed"},
		{"unknown priority", func(d *protocol.DesiredState) { d.Occurrences[0].Priority = "urgent" }, `unknown priority "urgent"`},
		{"no start", func(d *protocol.DesiredState) { d.Occurrences[1].Start = time.Time{} }, "has no start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := prototest.Desired()
			tt.change(&d)
			err := d.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidContentID(t *testing.T) {
	for s, want := range map[string]bool{
		prototest.ContentID:            true,
		strings.Repeat("0", 64):        true,
		strings.Repeat("f", 64):        true,
		strings.Repeat("F", 64):        false,
		strings.Repeat("g", 64):        false,
		strings.Repeat("0", 63):        false,
		strings.Repeat("0", 65):        false,
		"":                             false,
		prototest.ContentID[:62] + "é": false,
	} {
		if got := protocol.ValidContentID(s); got != want {
			t.Errorf("ValidContentID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestEventValidate: the controller keeps what a node reports in its
// store's keys and in JSON; an event it cannot hold there is refused by
// Validate, before the store fails the whole batch, while anything a node
// really reports (a newer node's types, a board whose clock reads 1970)
// passes.
func TestEventValidate(t *testing.T) {
	at := time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)
	ok := func(e protocol.Event) protocol.Event {
		if e.Type == "" {
			e.Type = protocol.EventStarted
		}
		return e
	}
	tests := []struct {
		name  string
		e     protocol.Event
		valid bool
	}{
		{"a start", ok(protocol.Event{At: at, Occurrence: "a000001@20260301T220000.000Z", Announcement: "a000001", Content: strings.Repeat("f", 64), LateMS: 120}), true},
		{"no time", ok(protocol.Event{}), true},
		{"a clock never set", ok(protocol.Event{At: time.Unix(0, 0)}), true},
		{"a type of a newer node", protocol.Event{Type: "update-staged", At: at}, true},
		{"a self-test", protocol.Event{Type: protocol.EventSelfTest, Test: &protocol.TestResult{ID: "t1", Kind: protocol.TestSilent, Problems: []string{protocol.ProblemLineOpen}}}, true},
		{"late by a year", ok(protocol.Event{At: at, LateMS: 365 * 24 * 3600 * 1000}), true},
		{"a reason in Vietnamese", ok(protocol.Event{Reason: "mất điện\tlưới"}), true},
		{"no type", protocol.Event{At: at}, false},
		{"a type in capitals", protocol.Event{Type: "Started"}, false},
		{"a type too long", protocol.Event{Type: protocol.EventType(strings.Repeat("a", protocol.MaxEventTypeLen+1))}, false},
		{"an occurrence too long", ok(protocol.Event{Occurrence: strings.Repeat("a", protocol.MaxEventIDLen+1)}), false},
		{"a long error chain as reason", ok(protocol.Event{Reason: strings.Repeat("a", 1000)}), true},
		{"a reason too long", ok(protocol.Event{Reason: strings.Repeat("a", protocol.MaxEventTextLen+1)}), false},
		{"NUL in an occurrence", ok(protocol.Event{Occurrence: "a1\x00n2"}), false},
		{"invalid UTF-8 in a content id", ok(protocol.Event{Content: "\xff"}), false},
		{"a newline in a version", ok(protocol.Event{Version: "1.0\n"}), false},
		{"year 9999", ok(protocol.Event{At: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}), false},
		{"year 1", ok(protocol.Event{At: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}), false},
		{"late beyond ten years", ok(protocol.Event{LateMS: protocol.MaxEventSpanMS + 1}), false},
		{"early beyond ten years", ok(protocol.Event{LateMS: -protocol.MaxEventSpanMS - 1}), false},
		{"too many problems", protocol.Event{Type: protocol.EventSelfTest, Test: &protocol.TestResult{Problems: make([]string, protocol.MaxEventProblems+1)}}, false},
		{"a self-test id too long", protocol.Event{Type: protocol.EventSelfTest, Test: &protocol.TestResult{ID: strings.Repeat("a", protocol.MaxEventIDLen+1)}}, false},
	}
	for _, tt := range tests {
		err := tt.e.Validate()
		if (err == nil) != tt.valid {
			t.Errorf("%s: Validate() = %v, want valid %v", tt.name, err, tt.valid)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("%s: a refusal of %d bytes, which the controller stores and logs", tt.name, len(err.Error()))
		}
	}
}
