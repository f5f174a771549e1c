package protocol

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the topic prefix used unless configured otherwise.
const DefaultPrefix = "loa/v1"

// Channel names the last segment of a topic: what flows on it.
type Channel string

// Channels of the wire contract.
const (
	ChanDesired Channel = "desired" // controller → node, retained desired state
	ChanCmd     Channel = "cmd"     // controller → node or area, commands
	ChanLive    Channel = "live"    // controller → area, live audio frames
	ChanState   Channel = "state"   // node → controller, retained state (Last Will: offline)
	ChanEvent   Channel = "event"   // node → controller, event batches
)

// Scope is the kind of addressee in a topic.
type Scope string

// Scopes of the wire contract.
const (
	ScopeNode Scope = "node"
	ScopeArea Scope = "area"
)

// Topic is a parsed loaxa topic: {prefix}/{scope}/{id}/{channel}.
type Topic struct {
	Scope   Scope
	ID      string
	Channel Channel
}

// Audience is the value of an envelope's "to" field for messages on this
// topic: "node/{id}" or "area/{id}". A signed message is bound to it, so it
// cannot be re-published to another node or area.
func (t Topic) Audience() string { return string(t.Scope) + "/" + t.ID }

// Topics builds and parses topics under one prefix.
type Topics struct {
	Prefix string
}

// NewTopics returns Topics for prefix, or DefaultPrefix when prefix is empty.
func NewTopics(prefix string) Topics {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Topics{Prefix: strings.TrimSuffix(prefix, "/")}
}

// Node returns the topic of channel c for node id.
func (t Topics) Node(id string, c Channel) string {
	return t.Prefix + "/node/" + id + "/" + string(c)
}

// Area returns the topic of channel c for area id.
func (t Topics) Area(id string, c Channel) string {
	return t.Prefix + "/area/" + id + "/" + string(c)
}

// AllNodes returns the wildcard subscription for channel c of every node.
func (t Topics) AllNodes(c Channel) string {
	return t.Prefix + "/node/+/" + string(c)
}

// Parse splits a topic into scope, id and channel. It fails for topics
// outside the prefix, unknown scopes or channels, and invalid ids.
func (t Topics) Parse(topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, t.Prefix+"/")
	if !ok {
		return Topic{}, fmt.Errorf("topic %q is not under prefix %q", topic, t.Prefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Topic{}, fmt.Errorf("topic %q: want %s/{node|area}/{id}/{channel}", topic, t.Prefix)
	}
	tp := Topic{Scope: Scope(parts[0]), ID: parts[1], Channel: Channel(parts[2])}
	if err := CheckID(tp.ID); err != nil {
		return Topic{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	switch tp.Scope {
	case ScopeNode:
		switch tp.Channel {
		case ChanDesired, ChanCmd, ChanState, ChanEvent:
			return tp, nil
		}
	case ScopeArea:
		switch tp.Channel {
		case ChanCmd, ChanLive:
			return tp, nil
		}
	default:
		return Topic{}, fmt.Errorf("topic %q: unknown scope %q", topic, tp.Scope)
	}
	return Topic{}, fmt.Errorf("topic %q: no channel %q for scope %q", topic, tp.Channel, tp.Scope)
}
