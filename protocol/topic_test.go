package protocol_test

import (
	"strings"
	"testing"

	"loaxa.vn/protocol"
)

func TestTopicsBuild(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{protocol.NewTopics("").Node("n-1", protocol.ChanDesired), "loa/v1/node/n-1/desired"},
		{protocol.NewTopics("").Area("31", protocol.ChanCmd), "loa/v1/area/31/cmd"},
		{protocol.NewTopics("").AllNodes(protocol.ChanState), "loa/v1/node/+/state"},
		{protocol.NewTopics("hp/loa/").Node("n-1", protocol.ChanEvent), "hp/loa/node/n-1/event"},
		{protocol.NewTopics("x").Area("a", protocol.ChanLive), "x/area/a/live"},
		{protocol.Topic{Scope: protocol.ScopeNode, ID: "n-1"}.Audience(), "node/n-1"},
		{protocol.Topic{Scope: protocol.ScopeArea, ID: "31"}.Audience(), "area/31"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestTopicsRoundTrip builds every topic of the contract and parses it back.
func TestTopicsRoundTrip(t *testing.T) {
	valid := []protocol.Topic{
		{Scope: protocol.ScopeNode, ID: "n-11311-01", Channel: protocol.ChanDesired},
		{Scope: protocol.ScopeNode, ID: "n-11311-01", Channel: protocol.ChanCmd},
		{Scope: protocol.ScopeNode, ID: "n-11311-01", Channel: protocol.ChanState},
		{Scope: protocol.ScopeNode, ID: "n-11311-01", Channel: protocol.ChanEvent},
		{Scope: protocol.ScopeArea, ID: "31", Channel: protocol.ChanCmd},
		{Scope: protocol.ScopeArea, ID: "31", Channel: protocol.ChanLive},
	}
	for _, prefix := range []string{"", "loa/v1", "hp/loa/v2", "single"} {
		topics := protocol.NewTopics(prefix)
		for _, want := range valid {
			var s string
			if want.Scope == protocol.ScopeNode {
				s = topics.Node(want.ID, want.Channel)
			} else {
				s = topics.Area(want.ID, want.Channel)
			}
			got, err := topics.Parse(s)
			if err != nil || got != want {
				t.Errorf("prefix %q: Parse(%q) = %+v, %v; want %+v", prefix, s, got, err, want)
			}
		}
	}
}

func TestTopicsParseErrors(t *testing.T) {
	topics := protocol.NewTopics("")
	tests := []struct {
		topic   string
		wantErr string
	}{
		{"", `not under prefix "loa/v1"`},
		{"loa/v1", `not under prefix`},
		{"loa/v2/node/n1/cmd", `not under prefix`},
		{"loa/v1x/node/n1/cmd", `not under prefix`},
		{"/loa/v1/node/n1/cmd", `not under prefix`},
		{"loa/v1/", `want loa/v1/{node|area}/{id}/{channel}`},
		{"loa/v1/node/n1", `want loa/v1/{node|area}/{id}/{channel}`},
		{"loa/v1/node/n1/cmd/x", `want loa/v1/{node|area}/{id}/{channel}`},
		{"loa/v1/node/n1/cmd/", `want loa/v1/{node|area}/{id}/{channel}`},
		{"loa/v1/node//cmd", `id is empty`},
		{"loa/v1/node/+/cmd", `"+" at position 0`},
		{"loa/v1/node/#/cmd", `"#" at position 0`},
		{"loa/v1/node/N1/cmd", `"N" at position 0`},
		{"loa/v1/node/xã/cmd", `"ã" at position 1`},
		{"loa/v1/group/g1/cmd", `unknown scope "group"`},
		{"loa/v1//n1/cmd", `unknown scope ""`},
		{"loa/v1/node/n1/live", `no channel "live" for scope "node"`},
		{"loa/v1/node/n1/foo", `no channel "foo" for scope "node"`},
		{"loa/v1/node/n1/", `no channel "" for scope "node"`},
		{"loa/v1/area/a1/desired", `no channel "desired" for scope "area"`},
		{"loa/v1/area/a1/state", `no channel "state" for scope "area"`},
		{"loa/v1/area/a1/event", `no channel "event" for scope "area"`},
	}
	for _, tt := range tests {
		got, err := topics.Parse(tt.topic)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q) = %+v, %v; want an error containing %q", tt.topic, got, err, tt.wantErr)
		}
		if got != (protocol.Topic{}) {
			t.Errorf("Parse(%q) returned %+v with its error", tt.topic, got)
		}
	}
}

func FuzzTopicsParse(f *testing.F) {
	f.Add("", "loa/v1/node/n-1/cmd")
	f.Add("loa/v1", "loa/v1/area/31/live")
	f.Add("a/", "a/node/x/state")
	f.Add("", "loa/v1/node/+/cmd")
	f.Add("", "loa/v1/area/a1/desired")
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		topics := protocol.NewTopics(prefix)
		tp, err := topics.Parse(topic)
		if err != nil {
			return
		}
		if err := protocol.CheckID(tp.ID); err != nil {
			t.Fatalf("Parse(%q) accepted id %q: %v", topic, tp.ID, err)
		}
		var rebuilt string
		switch tp.Scope {
		case protocol.ScopeNode:
			rebuilt = topics.Node(tp.ID, tp.Channel)
		case protocol.ScopeArea:
			rebuilt = topics.Area(tp.ID, tp.Channel)
		default:
			t.Fatalf("Parse(%q) accepted scope %q", topic, tp.Scope)
		}
		if rebuilt != topic {
			t.Fatalf("Parse(%q) = %+v, which builds %q", topic, tp, rebuilt)
		}
	})
}
