package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// timeSamples is how many round trips one measurement takes; the one with
// the shortest round trip has the least uncertainty.
const timeSamples = 4

// syncClock measures the offset to the controller's clock at start, at
// every connect and every TimeSyncInterval, and corrects the agent's clock.
func (a *Agent) syncClock(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.syncNow:
			timer.Stop()
		}
		offset, rtt, err := a.MeasureOffset(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.Warn("agent: clock offset not measured", "err", err)
		default:
			old := a.clock.Get()
			a.clock.Set(offset)
			if d := (offset - old).Abs(); d >= time.Millisecond {
				level := a.log.Debug
				if d > time.Second {
					level = a.log.Info
				}
				level("agent: clock corrected", "offset", offset, "change", offset-old, "rtt", rtt)
				signal(a.clockMoved)
				signal(a.dirty)
			}
		}
		timer.Reset(a.cfg.TimeSyncInterval)
	}
}

// MeasureOffset asks the controller for its time a few times and returns
// the offset (controller minus this machine's base clock) from the sample
// with the smallest round trip, assuming the reply was stamped half-way.
func (a *Agent) MeasureOffset(ctx context.Context) (offset, rtt time.Duration, err error) {
	url := strings.TrimSuffix(a.cred.Controller, "/") + "/api/v1/time"
	rtt = -1
	var errs int
	var last error
	for range timeSamples {
		off, r, err := a.timeSample(ctx, url)
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

func (a *Agent) timeSample(ctx context.Context, url string) (offset, rtt time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	base := a.clock.Base
	t0 := base.Now()
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	server, err := parseTime(resp.Body)
	t3 := base.Now()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	rtt = t3.Sub(t0)
	mid := t0.Add(rtt / 2)
	return server.Sub(mid), rtt, nil
}

// parseTime reads the controller's answer {"time": "<RFC 3339>"}.
func parseTime(r io.Reader) (time.Time, error) {
	var body struct {
		Time time.Time `json:"time"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 4096)).Decode(&body); err != nil {
		return time.Time{}, fmt.Errorf("want {\"time\": RFC 3339}: %w", err)
	}
	if body.Time.IsZero() {
		return time.Time{}, errors.New(`want {"time": RFC 3339}: no time`)
	}
	return body.Time, nil
}
