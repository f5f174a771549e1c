package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Defaults of the Pusher.
const (
	DefaultEvery      = 24 * time.Hour
	DefaultBackoffMin = 5 * time.Second
	DefaultBackoffMax = time.Hour
)

// ErrRedirectAway: the upstream system's answer redirected the export to
// another scheme, host or port. The export carries the key and the
// province's report, so it goes to the URL it was given alone.
var ErrRedirectAway = errors.New("redirected away from the upstream system; the export and its key go to --upstream-url alone: give it the address that takes them")

// Pusher exports on a schedule: every Every it builds the export of the
// period since the last one and queues it in the Outbox (durable); a
// sender posts queued documents in order to URL, each until it is taken
// (2xx), waiting longer after each failure (BackoffMin doubling to
// BackoffMax). Documents queue up while the endpoint is down; none is
// lost or sent out of order.
type Pusher struct {
	URL string
	// Key is sent as "Authorization: Bearer <key>".
	Key   string
	Every time.Duration
	// Location is the zone whose midnight the periods are counted from
	// (loaxa.DefaultTimeZone when nil): with Every 24h each export is one
	// day there, 00:00 to 24:00.
	Location *time.Location
	Source   *Source
	Outbox   loaxa.UpstreamOutbox
	Client   *http.Client
	Now      func() time.Time
	Logger   *slog.Logger

	BackoffMin, BackoffMax time.Duration

	mu      sync.Mutex
	status  Status
	queued  chan struct{}
	started bool
}

// Status is what GET /api/v1/upstream/outbox shows.
type Status struct {
	URL       string    `json:"url"`
	Every     string    `json:"every"`
	Pending   int       `json:"pending"`
	PeriodEnd time.Time `json:"period_end,omitzero"`
	LastSent  time.Time `json:"last_sent,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	LastTry   time.Time `json:"last_try,omitzero"`
}

func (p *Pusher) defaults() {
	if p.Every <= 0 {
		p.Every = DefaultEvery
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = DefaultBackoffMin
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMax
	}
	if p.Client == nil {
		p.Client = &http.Client{Timeout: time.Minute}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.queued == nil {
		p.queued = make(chan struct{}, 1)
	}
	if p.Location == nil {
		loc, err := loaxa.Location(loaxa.DefaultTimeZone)
		if err != nil { // time/tzdata is linked in by loaxa: cannot happen
			loc = time.FixedZone("ICT", 7*3600)
		}
		p.Location = loc
	}
}

// periodAnchor is a Monday midnight: periods of Every are counted from
// it, in the Pusher's zone, so that a day's export is that calendar day,
// an hour's a clock hour and a week's Monday to Monday.
var periodAnchor = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// periodStart is the start of the period that holds t.
func (p *Pusher) periodStart(t time.Time) time.Time {
	a := periodAnchor
	anchor := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, p.Location)
	n := t.Sub(anchor) / p.Every
	if t.Before(anchor.Add(n * p.Every)) {
		n-- // t before the anchor: round down, not toward zero
	}
	return anchor.Add(n * p.Every)
}

// Run exports and sends until ctx ends.
func (p *Pusher) Run(ctx context.Context) error {
	p.defaults()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.send(ctx)
	}()
	defer wg.Wait()
	for {
		if err := p.exportDue(ctx); err != nil && ctx.Err() == nil {
			p.Logger.Error("upstream: export not queued; trying again", "err", err)
		}
		wait := min(p.Every, time.Minute)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// exportDue queues the exports of every whole period since the last.
func (p *Pusher) exportDue(ctx context.Context) error {
	_, end, err := p.Outbox.ExportQueue(ctx)
	if err != nil {
		return err
	}
	now := p.Now()
	if end.IsZero() {
		// First start: the first period is the one under way (a day's
		// export covers the whole day the controller started on).
		return p.Outbox.AppendExport(ctx, nil, p.periodStart(now))
	}
	// A period that ended off the periods' boundaries (a store whose push
	// began before they were counted from midnight, or a changed
	// --upstream-every) is followed by a shorter one up to the next
	// boundary: no gap, no overlap.
	for {
		from, to := end, p.periodStart(end).Add(p.Every)
		if to.After(now) {
			return nil
		}
		x, err := p.Source.Build(ctx, "", from, to, now)
		if err != nil {
			return err
		}
		doc, err := json.Marshal(x)
		if err != nil {
			return err
		}
		if err := p.Outbox.AppendExport(ctx, doc, to); err != nil {
			return err
		}
		p.Logger.Info("upstream: export queued", "from", from, "to", to, "bytes", len(doc))
		end = to
		select {
		case p.queued <- struct{}{}:
		default:
		}
	}
}

// send posts queued documents in order.
func (p *Pusher) send(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		seq, doc, ok, err := p.Outbox.NextExport(ctx)
		switch {
		case err != nil:
			p.Logger.Error("upstream: outbox", "err", err)
			ok = false
		case ok:
			err = p.post(ctx, doc)
			p.mu.Lock()
			p.status.LastTry = p.Now()
			if err == nil {
				p.status.LastSent, p.status.LastError = p.status.LastTry, ""
			} else {
				p.status.LastError = err.Error()
			}
			p.mu.Unlock()
			if err == nil {
				if err := p.Outbox.RemoveExport(ctx, seq); err != nil {
					p.Logger.Error("upstream: outbox", "err", err)
				}
				backoff = 0
				continue
			}
			backoff = min(max(backoff*2, p.BackoffMin), p.BackoffMax)
			p.Logger.Warn("upstream: export not taken; trying again", "url", p.URL, "in", backoff, "err", err)
		}
		var (
			t    *time.Timer
			wake <-chan time.Time
		)
		if ok {
			t = time.NewTimer(backoff)
			wake = t.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-p.queued:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (p *Pusher) post(ctx context.Context, doc []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", p.URL, bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.Key != "" {
		req.Header.Set("Authorization", "Bearer "+p.Key)
	}
	// Go's client keeps the Authorization header on a redirect to another
	// port of the same host, to a subdomain and from https to http, and
	// sends the body again on a 307 or 308: redirects stay on p.URL's
	// origin.
	stay := *p.Client
	stay.CheckRedirect = protocol.StayOnOrigin(p.URL, "upstream system", ErrRedirectAway)
	resp, err := stay.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		if why := excerpt(raw, 200); why != "" {
			return fmt.Errorf("%s answered %s: %q", p.URL, resp.Status, why)
		}
		return fmt.Errorf("%s answered %s", p.URL, resp.Status)
	}
	return nil
}

// excerpt is the start of a refusal's body, as the operator reads it in
// the outbox's last_error: the receiver's own words for what is wrong (a
// key it does not know, a document it cannot read), at most limit runes,
// runs of white space and control characters as one space.
func excerpt(raw []byte, limit int) string {
	fields := strings.FieldsFunc(strings.ToValidUTF8(string(raw), "\uFFFD"), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	})
	s := strings.Join(fields, " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return s
}

// Status reports the outbox and the last attempts.
func (p *Pusher) Status(ctx context.Context) (Status, error) {
	pending, end, err := p.Outbox.ExportQueue(ctx)
	if err != nil {
		return Status{}, err
	}
	p.mu.Lock()
	st := p.status
	p.mu.Unlock()
	st.URL, st.Every, st.Pending, st.PeriodEnd = p.URL, p.Every.String(), pending, end
	return st, nil
}
