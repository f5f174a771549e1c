package app

import (
	"context"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/upstream"
)

// upstreamLink serves the HTTP layer's Upstream from controller/upstream.
type upstreamLink struct {
	source *upstream.Source
	pusher *upstream.Pusher // nil without --upstream-url
}

func (u *upstreamLink) Export(ctx context.Context, area string, from, to, now time.Time) (any, error) {
	return u.source.Build(ctx, area, from, to, now)
}

func (u *upstreamLink) Status(ctx context.Context) (any, error) {
	if u.pusher == nil {
		return nil, loaxa.Errorf(loaxa.EConflict, "No upstream endpoint is configured: start the controller with --upstream-url (and LOAXA_UPSTREAM_KEY) to push exports.")
	}
	return u.pusher.Status(ctx)
}
