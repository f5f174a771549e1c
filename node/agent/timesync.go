package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// timeSamples is how many round trips one measurement takes; the one with
// the shortest round trip has the least uncertainty. retrySamples: a
// measurement taken early because the estimate is uncertain.
const (
	timeSamples  = 4
	retrySamples = 2
)

// Bounding a measurement on a link that holds: a TCP connection that
// neither answers nor fails (a NAT mapping dropped under a pooled
// connection, a modem attached with no data path yet) held each request
// for 10 s, and a measurement of four for 40 s, during which nothing that
// waits for the first measurement (held acknowledgements, alerts kept
// aside, a desired state refused for its times) was judged. A request now
// waits timeSampleWait, after which the next one dials a new connection,
// and a whole measurement timeMeasureWait, keeping the samples that came
// in time; both on the board's clock. A round trip that long is worth
// little (its uncertainty is half of it), but it still corrects a clock
// hours off: 5 s is above a TLS handshake and a request over 2G.
const (
	timeSampleWait  = 5 * time.Second
	timeMeasureWait = 10 * time.Second
)

// Keeping the best measurement. A measurement's offset is within half its
// round trip of the truth, and the clocks drift apart after it, so an
// estimate grows less certain with age. A new measurement replaces the
// one in use only when it is at least as certain as that one has become,
// or when the two cannot both be right (a clock was stepped: the board's
// RTC, the controller's NTP). A measurement taken while the link or the
// controller was busy (a fleet enrolling, an alert's reports) therefore
// does not undo a precise one: at 1,000 simulated nodes, offsets measured
// during the enrolment put the starts up to 23 ms off the shared instant
// (BENCHMARKS.md).
const (
	// clockDrift bounds how fast two clocks drift apart: 100 ppm, a cheap
	// crystal at its worst, 30 ms in five minutes.
	clockDrift = 100e-6
	// syncGood is an uncertainty worth keeping for the whole
	// TimeSyncInterval; while the estimate is less certain, the agent
	// measures again sooner: syncRetry (30 s) and four times that (2 min)
	// after each connect (each ±50 %), then every interval. Over 4G, where no
	// measurement gets that good, that is two measurements more per
	// connect.
	syncGood  = 5 * time.Millisecond
	syncRetry = 30 * time.Second
)

// offsetEstimate is a measured offset, its round trip, and when it was
// measured (base clock).
type offsetEstimate struct {
	offset, rtt time.Duration
	at          time.Time
}

// uncertainty is how far from the true offset e may be at now.
func (e offsetEstimate) uncertainty(now time.Time) time.Duration {
	return e.rtt/2 + time.Duration(float64(now.Sub(e.at).Abs())*clockDrift)
}

// replacedBy reports whether the new estimate n should replace e.
func (e offsetEstimate) replacedBy(n offsetEstimate) bool {
	u := e.uncertainty(n.at)
	return n.rtt/2 <= u || (n.offset-e.offset).Abs() > u+n.rtt/2
}

// syncClock measures the offset to the controller's clock at start, at
// every connect and every TimeSyncInterval (sooner while the estimate is
// uncertain), and corrects the agent's clock with the best estimate.
func (a *Agent) syncClock(ctx context.Context) {
	// The waits between measurements run on the board's clock, as each
	// request's timeSampleWait and the measurement's timeMeasureWait do:
	// on real time, a board whose clock is not the machine's (a fake one
	// in tests) had its requests cut on one clock and retried on another.
	timer := a.clock.Base.NewTimer(0)
	defer timer.Stop()
	retry, early := syncRetry, false
	for {
		samples := timeSamples
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			if early {
				// A second look for a quieter moment: two round trips
				// are enough to find one, and a fleet's retries are load.
				samples = retrySamples
			}
		case <-a.syncNow:
			timer.Stop()
			// A clock.Timer's Stop leaves a tick that came meanwhile in
			// its channel: drained, it does not start a measurement just
			// after this one.
			select {
			case <-timer.C():
			default:
			}
			retry = syncRetry // a new link: it may be better or worse
		}
		offset, rtt, err := a.measureOffset(ctx, samples)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.Warn("agent: clock offset not measured", "err", err)
		default:
			n := offsetEstimate{offset: offset, rtt: rtt, at: a.clock.Base.Now()}
			best := a.clockEstimate.Load()
			if best != nil && !best.replacedBy(n) {
				a.log.Debug("agent: clock offset kept", "offset", best.offset, "uncertainty", best.uncertainty(n.at), "measured", offset, "rtt", rtt)
				break
			}
			a.clockEstimate.Store(&n)
			old := a.clock.Get()
			a.clock.Set(offset)
			d := (offset - old).Abs()
			if d >= time.Millisecond || best == nil {
				// The first measurement is signalled however little it
				// moves the clock: what waited for it is judged then
				// (alertstore.go).
				signal(a.clockMoved)
			}
			if d >= time.Millisecond {
				level := a.log.Debug
				if d > time.Second {
					level = a.log.Info
				}
				level("agent: clock corrected", "offset", offset, "change", offset-old, "rtt", rtt)
				if d > time.Second {
					// The state shows the offset (a 2 s one is alarmed);
					// smaller changes go with the next heartbeat.
					signal(a.dirty)
				}
			}
		}
		if e := a.clockEstimate.Load(); e != nil {
			a.measuredFloor(e)
		}
		signal(a.floorDue) // stored even unmeasured: the floor has run on
		var next time.Duration
		next, retry, early = nextSync(a.clockEstimate.Load(), a.clock.Base.Now(), retry, a.cfg.TimeSyncInterval)
		timer.Reset(next)
	}
}

// nextSync returns how long until the next measurement and the retry
// after it: the interval once the estimate is good, else the retry spread
// over ±50 % (a fleet that connected together must not measure together
// again), four times as long the next time, up to the interval. early
// says the next one comes before the interval.
func nextSync(best *offsetEstimate, now time.Time, retry, interval time.Duration) (next, nextRetry time.Duration, early bool) {
	if best != nil && best.uncertainty(now) <= syncGood {
		return interval, retry, false
	}
	next = retry/2 + mrand.N(retry+1)
	return min(interval, next), min(4*retry, interval), next < interval
}

// MeasureOffset asks the controller for its time a few times and returns
// the offset (controller minus this machine's base clock) from the sample
// with the smallest round trip, assuming the reply was stamped half-way.
func (a *Agent) MeasureOffset(ctx context.Context) (offset, rtt time.Duration, err error) {
	return a.measureOffset(ctx, timeSamples)
}

func (a *Agent) measureOffset(ctx context.Context, samples int) (offset, rtt time.Duration, err error) {
	url := strings.TrimSuffix(a.cred.Controller, "/") + "/api/v1/time"
	end := a.clock.Base.Now().Add(timeMeasureWait)
	rtt = -1
	var errs int
	var last error
	for range samples {
		left := end.Sub(a.clock.Base.Now())
		if left <= 0 {
			break // the measurement's time is up: what came in it counts
		}
		off, r, err := a.timeSample(ctx, url, min(timeSampleWait, left))
		if err != nil {
			errs++
			last = err
			if ctx.Err() != nil {
				return 0, 0, ctx.Err()
			}
			continue
		}
		if rtt < 0 || r < rtt {
			offset, rtt = off, r
		}
	}
	if rtt < 0 {
		return 0, 0, fmt.Errorf("measure clock offset: %d attempts failed: %w", errs, last)
	}
	return offset, rtt, nil
}

// timeSample asks the controller's time once, waiting up to wait on the
// board's clock for the answer.
func (a *Agent) timeSample(ctx context.Context, url string, wait time.Duration) (offset, rtt time.Duration, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := clock.NewWatchdog(a.clock.Base, wait, func() {
		cancel(fmt.Errorf("no answer within %v", wait))
	})
	defer w.Stop()
	// The cause says which wait ran out, where the client says only
	// "context canceled".
	why := func(err error) error {
		if c := context.Cause(sctx); c != nil && !errors.Is(c, context.Canceled) {
			return fmt.Errorf("GET %s: %w", url, c)
		}
		return err
	}
	nonce := rand.Text()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, url+"?nonce="+nonce, nil)
	if err != nil {
		return 0, 0, err
	}
	base := a.clock.Base
	t0 := base.Now()
	// Redirects stay on the controller (protocol.ErrRedirectAway): the
	// proof keeps another host from setting the clock, but it would learn
	// when the board asks.
	stay := *a.cfg.HTTPClient
	stay.CheckRedirect = protocol.StayOnController(a.cred.Controller)
	resp, err := stay.Do(req)
	if err != nil {
		return 0, 0, why(err)
	}
	defer resp.Body.Close()
	proof, err := readTimeAnswer(resp.Body)
	t3 := base.Now()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err != nil {
		return 0, 0, why(fmt.Errorf("GET %s: %w", url, err))
	}
	// Only a time the controller signed for this request moves the clock
	// every message is judged on (protocol/timeproof.go).
	server, err := a.verifier.OpenTimeProof(proof, nonce)
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	rtt = t3.Sub(t0)
	mid := t0.Add(rtt / 2)
	return server.Sub(mid), rtt, nil
}

// readTimeAnswer reads the controller's answer {"time": "<RFC 3339>",
// "proof": <signed envelope>} and returns the proof.
func readTimeAnswer(r io.Reader) ([]byte, error) {
	var body struct {
		Proof json.RawMessage `json:"proof"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 4096)).Decode(&body); err != nil {
		return nil, fmt.Errorf(`want {"time": RFC 3339, "proof": envelope}: %w`, err)
	}
	if len(body.Proof) == 0 {
		return nil, errors.New(`the answer has no "proof": the controller signs its time since this node's version; upgrade the controller first (docs/deploy.md)`)
	}
	return body.Proof, nil
}
