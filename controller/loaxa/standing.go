package loaxa

import (
	"context"
	"time"
)

// StandingContent is content kept on every node of some areas at all
// times, whether or not a schedule plays it: the warnings an officer may
// have to send at once (a typhoon's standard message, a dyke breach, an
// evacuation order). An emergency with standing content sounds at the end
// of its lead on every node that has it, with no download: typed text made
// into speech a moment before has to reach each node over its link first,
// and at a province's alert that is one download per cluster at the same
// moment. The emergency chimes are kept on every node the same way.
type StandingContent struct {
	Content string `json:"content"`
	// Areas are the areas whose nodes keep it (each with its subtree).
	Areas []string `json:"areas"`
	// By and At are who changed the areas last, and when.
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// StandingMaxBytes bounds the standing content one node keeps: about two
// hours of node audio at 64 kbit/s, an eighth of the node's default cache.
const StandingMaxBytes = 64 << 20

// StandingService stores which content is standing where.
type StandingService interface {
	// SetStanding replaces the areas that keep content; none makes it
	// standing nowhere (and forgets it). It returns what is stored (nil
	// for none).
	SetStanding(ctx context.Context, content string, areas []string, by string) (*StandingContent, error)
	// FindStanding returns every standing content, by content id.
	FindStanding(ctx context.Context) ([]*StandingContent, error)
}
