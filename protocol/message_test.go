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
