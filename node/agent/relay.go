package agent

import (
	"errors"
	"io"
	"net/http"
	"time"

	"loaxa.vn/node/audio"
	"loaxa.vn/node/relay"
	"loaxa.vn/protocol/nodeaudio"
)

// relayClient fetches stations' streams: their own public servers, so not
// the client pinned to the controller's certificate.
var relayClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: relay.DefaultStallTimeout}}

// openRelay makes the stream of a relay occurrence: the station, live,
// from the play's instant to the end of its window (a relay resumed after
// a preemption plays what remains, live). It connects in the background,
// so the main loop never waits on a station.
func (a *Agent) openRelay(p *play) error {
	o := p.occ
	end := o.Start.Add(time.Duration(o.DurationMS) * time.Millisecond)
	from := p.instant()
	if from.Before(o.Start) {
		from = o.Start
	}
	p.length = end.Sub(from)
	if p.length <= 0 {
		return errors.New("relay window is over")
	}
	s := relay.Open(o.Stream, relay.Options{Client: relayClient, Logger: a.log.With("occurrence", o.ID), Clock: a.clock})
	p.files = append(p.files, s)
	p.interrupt = s
	// At the node's volume, like any play: a station relayed at night on
	// a turned-down commune must not sound at full scale.
	p.gain = audio.NewGain(io.LimitReader(s, nodeaudio.Bytes(p.length)), a.gain(o))
	p.stream = &audio.Counter{R: p.gain}
	return nil
}

// hasContent is what the executor asks before a start: content that is
// cached or downloading fast enough to play as it arrives
// (content.Cache.Playable); a relay (no content, a stream) has all it
// needs: its station is reached at the start, and a failure then is a
// failed play with ReasonStream.
func (a *Agent) hasContent(id string) bool { return id == "" || a.cache.Playable(id) }
